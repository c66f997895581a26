"""`woosync run status` as a process: serves, drains and exits 0 on SIGTERM, refuses a taken port."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time

import aiohttp
import pytest

from tests.integration.status_harness import a_queue, an_organization
from tests.integration.test_sync_cli import WOOSYNC

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def start_status(database_url: str, amqp_url: str, port: int) -> asyncio.subprocess.Process:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WOOSYNC_")}
    return await asyncio.create_subprocess_exec(
        WOOSYNC, "run", "status", "--host", "127.0.0.1", "--port", str(port),
        env={**clean, "WOOSYNC_DATABASE_URL": database_url, "WOOSYNC_AMQP_URL": amqp_url},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )


async def wait_until_ready(session: aiohttp.ClientSession, base_url: str, process, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise AssertionError(f"status service exited {process.returncode}: {(await process.stderr.read()).decode()}")
        try:
            async with session.get(f"{base_url}/readyz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError("status service not ready in time")


async def test_the_service_serves_then_exits_0_on_sigterm_ending_open_event_streams(database_url, db_pool, amqp_url) -> None:
    org_id, token = await an_organization(db_pool)
    queue, _ = await a_queue(db_pool, org_id, lines=2)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    process = await start_status(database_url, amqp_url, port)
    try:
        async with aiohttp.ClientSession() as session:
            await wait_until_ready(session, base_url, process)
            async with session.get(f"{base_url}/api/v1/sync/queues/{queue.id}",
                                   headers={"Authorization": f"Bearer {token}"}) as response:
                assert response.status == 200
            async with session.get(f"{base_url}/api/v1/sync/queues/{queue.id}/events",
                                   headers={"Authorization": f"Bearer {token}"}) as stream:
                assert (await stream.content.readline()).startswith(b"event: status")
                stopped_at = time.monotonic()
                process.send_signal(signal.SIGTERM)
                await asyncio.wait_for(stream.content.read(), 10)  # the server ends the stream
            code = await asyncio.wait_for(process.wait(), 15)
            assert time.monotonic() - stopped_at < 10
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    stderr = (await process.stderr.read()).decode()
    assert code == 0, stderr
    assert "status service stopped" in stderr
    assert token not in stderr


async def test_a_taken_port_is_a_clear_start_up_error(database_url, amqp_url) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = await start_status(database_url, amqp_url, port)
        code = await asyncio.wait_for(process.wait(), 30)
    assert code != 0
    assert f"cannot listen on 127.0.0.1:{port}" in (await process.stderr.read()).decode()
