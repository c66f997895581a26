"""The status service's HTTP server against abusive clients, as a process (`woosync run status`).

An unauthenticated client must not be able to exhaust its memory with huge or endless request
headers, nor hold its connections with headers sent a byte at a time or with idle sockets; normal
requests and long-lived event streams keep working under these limits.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from tests.integration.status_harness import a_queue, an_organization
from tests.processes import WoosyncProcess, free_port, service_env
from tests.waiting import eventually

pytestmark = pytest.mark.integration

HEADER_TIMEOUT_S = 1.0
KEEP_ALIVE_S = 1.0
MB = 1024 * 1024


@dataclass
class StatusProcess:
    process: WoosyncProcess
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss(self) -> int:
        assert self.process.proc is not None
        return psutil.Process(self.process.proc.pid).memory_info().rss

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)


@contextlib.asynccontextmanager
async def status_process(database_url: str, amqp_url: str, log_dir: Path, **settings: str | int | float) -> AsyncIterator[StatusProcess]:
    """`woosync run status` on a free loopback port, ready; stopped (SIGTERM) afterwards."""
    port = free_port()
    settings = {"http_header_timeout_s": HEADER_TIMEOUT_S, "http_keep_alive_s": KEEP_ALIVE_S, **settings}
    process = WoosyncProcess("status", ["run", "status", "--host", "127.0.0.1", "--port", str(port)],
                             service_env(database_url, amqp_url, **settings), log_dir).start()
    service = StatusProcess(process, port)
    try:
        async with httpx.AsyncClient(base_url=service.base_url, timeout=5) as client:
            async def ready() -> bool:
                if not process.running:
                    raise AssertionError(f"status service exited:\n{process.output()[-3000:]}")
                try:
                    return (await client.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(ready, timeout=30, what="the status service to be ready")
        yield service
    finally:
        code = await asyncio.to_thread(process.stop)
        assert code == 0, process.output()[-3000:]


async def read_until_closed(reader: asyncio.StreamReader, limit: int = 64 * 1024) -> bytes:
    """What the server sends until it closes the connection (a reset counts as closed)."""
    received = b""
    try:
        while len(received) < limit:
            chunk = await reader.read(4096)
            if not chunk:
                break
            received += chunk
    except ConnectionError:
        pass
    return received


async def send_big_headers(service: StatusProcess, *, lines: int, line_bytes: int) -> bytes:
    """One connection sending a request with `lines` header lines of `line_bytes` each, reading
    the answer as it sends; returns the answer's status line (b"" when the server just closed)."""
    reader, writer = await service.connect()
    answer = asyncio.create_task(reader.readline())
    value = b"a" * line_bytes
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        for n in range(lines):
            if answer.done():
                break
            writer.write(b"X-Padding-%d: %s\r\n" % (n, value))
            await writer.drain()
        if not answer.done():
            writer.write(b"\r\n")
            await writer.drain()
    except ConnectionError:
        pass
    try:
        return await asyncio.wait_for(answer, 30)
    except ConnectionError:
        return b""
    finally:
        writer.close()


async def test_huge_request_headers_are_refused_with_431_without_growing_the_service_memory(database_url, amqp_url, tmp_path) -> None:
    # The probe that found it: 4 connections each sending 100 header lines of 1 MB.
    async with status_process(database_url, amqp_url, tmp_path) as service:
        baseline = service.rss()
        peak = baseline
        attacking = True

        async def sample_rss() -> None:
            nonlocal peak
            while attacking:
                peak = max(peak, service.rss())
                await asyncio.sleep(0.02)

        sampler = asyncio.create_task(sample_rss())
        try:
            answers = await asyncio.wait_for(
                asyncio.gather(*(send_big_headers(service, lines=100, line_bytes=MB) for _ in range(4))), 120)
        finally:
            attacking = False
            await sampler
        peak = max(peak, service.rss())
        print(f"status service RSS: {baseline / MB:.0f} MB before, {peak / MB:.0f} MB at most during the attack")
        assert peak - baseline < 50 * MB, f"RSS grew from {baseline / MB:.0f} MB to {peak / MB:.0f} MB"
        assert all(answer.startswith(b"HTTP/1.1 431 ") for answer in answers), answers
        async with httpx.AsyncClient(base_url=service.base_url) as client:
            assert (await client.get("/healthz")).status_code == 200  # the service still serves


async def test_too_many_header_lines_or_header_bytes_get_431_and_the_connection_closes(database_url, amqp_url, tmp_path) -> None:
    async with status_process(database_url, amqp_url, tmp_path, http_max_headers=50, http_max_header_bytes=16384) as service:
        many_lines = b"".join(b"X-Line-%d: 1\r\n" % n for n in range(51))
        one_big_line = b"X-Big: " + b"b" * 20000 + b"\r\n"
        for headers in (many_lines, one_big_line):
            reader, writer = await service.connect()
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers + b"\r\n")
            await writer.drain()
            answer = await asyncio.wait_for(read_until_closed(reader), 10)
            writer.close()
            assert answer.startswith(b"HTTP/1.1 431 "), answer
            assert b"connection: close" in answer.lower()
        # Exactly at the limit is fine: Host and 49 more lines.
        reader, writer = await service.connect()
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                     + b"".join(b"X-Line-%d: 1\r\n" % n for n in range(48)) + b"\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(read_until_closed(reader), 10)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 200 "), answer


async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, each: bytes, *, every: float = 0.2,
                  at_most: int = 150) -> float | None:
    """Send `each` every `every` s until the server closes the connection; how long that took
    (None when it was still open after `at_most` sends)."""
    started = time.monotonic()
    try:
        for _ in range(at_most):
            writer.write(each)
            await writer.drain()
            with contextlib.suppress(asyncio.TimeoutError):
                if await asyncio.wait_for(reader.read(4096), every):
                    await read_until_closed(reader)  # it answered (408): it closes next
                return time.monotonic() - started
        return None
    except ConnectionError:
        return time.monotonic() - started
    finally:
        writer.close()


async def a_served_request(service: StatusProcess) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A keep-alive connection that has had one request answered."""
    reader, writer = await service.connect()
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    await writer.drain()
    assert (await asyncio.wait_for(reader.readuntil(b'{"ok":true}'), 5)).startswith(b"HTTP/1.1 200 ")
    return reader, writer


async def test_slow_headers_are_timed_out_and_their_connections_closed(database_url, amqp_url, tmp_path) -> None:
    # Slowloris: 50 sockets each sending a header one byte every 0.2 s.
    async with status_process(database_url, amqp_url, tmp_path) as service:
        async def slow_headers() -> float | None:
            reader, writer = await service.connect()
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            return await trickle(reader, writer, b"a")

        closed_after = await asyncio.wait_for(asyncio.gather(*(slow_headers() for _ in range(50))), 60)
        # After a keep-alive request, blank lines (which start no request) a byte at a time.
        blank_lines = await trickle(*await a_served_request(service), b"\r\n")
        times = [t for t in closed_after if t is not None] or [0.0]
        print(f"slow-header sockets closed after {min(times):.1f}-{max(times):.1f} s, blank lines after {blank_lines} s")
        assert None not in closed_after, f"{closed_after.count(None)} of 50 slow-header connections were still open"
        assert max(closed_after) < HEADER_TIMEOUT_S + 5
        assert blank_lines is not None and blank_lines < HEADER_TIMEOUT_S + 5


async def test_idle_connections_are_closed_before_and_between_requests(database_url, amqp_url, tmp_path) -> None:
    async with status_process(database_url, amqp_url, tmp_path) as service:
        silent = [await service.connect() for _ in range(20)]  # connect and never send a byte
        kept_alive = await a_served_request(service)  # one request, then idle on keep-alive
        started = time.monotonic()
        everything = [*silent, kept_alive]
        closings = [asyncio.create_task(read_until_closed(reader)) for reader, _ in everything]
        try:
            await eventually(lambda: _all_done(closings), timeout=HEADER_TIMEOUT_S + KEEP_ALIVE_S + 10,
                             what="the server to close idle connections")
        finally:
            for task in closings:
                task.cancel()
            for _, writer in everything:
                writer.close()
        print(f"idle connections closed within {time.monotonic() - started:.1f} s")


async def _all_done(tasks: list[asyncio.Task[bytes]]) -> bool:
    return all(task.done() for task in tasks)


async def test_connections_over_the_limit_get_503_and_those_within_hold_bounded_memory(database_url, amqp_url, tmp_path) -> None:
    async with status_process(database_url, amqp_url, tmp_path, http_max_connections=200, http_header_timeout_s=30) as service:
        baseline = service.rss()
        # Every connection the service accepts holds a head just under the limit, never finished.
        held = [await service.connect() for _ in range(200)]
        for _, writer in held:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Almost: " + b"a" * 30_000)
            await writer.drain()

        reader, writer = await service.connect()
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = await asyncio.wait_for(read_until_closed(reader), 10)
        writer.close()
        holding = service.rss()  # the heads were sent before this connection was refused
        print(f"status service RSS: {baseline / MB:.0f} MB before, {holding / MB:.0f} MB holding 200 heads of 30 KB")
        assert answer.startswith(b"HTTP/1.1 503 "), answer
        assert holding - baseline < 50 * MB
        for _, held_writer in held:
            held_writer.close()
        async with httpx.AsyncClient(base_url=service.base_url) as client:
            async def served() -> bool:
                return (await client.get("/healthz")).status_code == 200

            await eventually(served, timeout=10, what="a request to be served once connections were freed")


async def test_requests_and_event_streams_outlive_the_header_timeout(database_url, db_pool, amqp_url, tmp_path) -> None:
    org_id, token = await an_organization(db_pool)
    queue, _ = await a_queue(db_pool, org_id, lines=2)
    auth = {"Authorization": f"Bearer {token}"}
    async with status_process(database_url, amqp_url, tmp_path) as service:
        async with httpx.AsyncClient(base_url=service.base_url, headers=auth, timeout=10) as client:
            # Keep-alive requests on one connection, each well within the limits.
            for _ in range(3):
                assert (await client.get(f"/api/v1/sync/queues/{queue.id}")).status_code == 200
            # A body larger than the header limit is the application's to judge (it arrives with the head).
            big_body = await client.post("/api/v1/sync/queues", json={"queue_name": "x" * 200_000})
            assert big_body.status_code in (400, 413, 422), big_body.text
        # An event stream (on a raw socket, to watch the connection itself).
        reader, writer = await service.connect()
        try:
            writer.write(f"GET /api/v1/sync/queues/{queue.id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         f"Authorization: Bearer {token}\r\n\r\n".encode())
            await writer.drain()
            assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"HTTP/1.1 200 ")
            received = b""
            while b"event: status" not in received:
                chunk = await asyncio.wait_for(reader.read(4096), 5)
                assert chunk, "the event stream ended"
                received += chunk
            # Nothing changes for three header timeouts: the stream must stay open, silent.
            with pytest.raises(TimeoutError):
                while True:
                    assert await asyncio.wait_for(reader.read(4096), 3 * HEADER_TIMEOUT_S), "the event stream was cut"
            # Then a change still reaches it, on the same connection.
            async with httpx.AsyncClient(base_url=service.base_url, headers=auth) as other:
                assert (await other.post(f"/api/v1/sync/queues/{queue.id}/cancel")).status_code == 200
            received = b""
            while b'"cancelled"' not in received:
                chunk = await asyncio.wait_for(reader.read(4096), 10)
                assert chunk, f"the event stream ended before the change: {received!r}"
                received += chunk
        finally:
            writer.close()
