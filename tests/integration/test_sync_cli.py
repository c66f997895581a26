"""`woosync sync start|status|retry|cancel` run as a user runs them (the installed console
script, in a subprocess), against a real broker and the status API on a loopback port.

`start` is answered by a stand-in for the producer's reply contract (docs/contract.md section 3: it
consumes woosync.sync_requests and answers on reply_to with correlation_id); the producer
itself has its own tests.
"""

from __future__ import annotations

import asyncio
import os
import pty
import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aio_pika
import orjson
import pytest

from shared import topology
from shared.amqp import connect, declare_topology
from shared.messages import StartSync
from shared.repository import queue_lines, sync_queues
from shared.settings import load_settings
from tests.integration.status_harness import STORE_URL, a_customer, a_queue, an_organization, serve, status_service
from tests.waiting import eventually

pytestmark = pytest.mark.integration

WOOSYNC = shutil.which("woosync", path=str(Path(sys.executable).parent)) or "woosync"


async def woosync(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> tuple[int, str, str]:
    """Run `woosync ARGS...` with stdout and stderr captured (so stdout is not a terminal)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WOOSYNC_")}
    process = await asyncio.create_subprocess_exec(
        WOOSYNC, *args, env={**clean, **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()
        raise
    return process.returncode, stdout.decode(), stderr.decode()


class RunningWoosync:
    """`woosync ARGS...` still running, its output collected as it comes (stdout is a pipe, so
    the plain-lines display, flushed line by line), for tests that act on what it printed."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self._stdout = asyncio.create_task(self._collect())
        self._stderr = asyncio.create_task(process.stderr.read())

    @classmethod
    async def start(cls, *args: str, env: dict[str, str]) -> RunningWoosync:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("WOOSYNC_")}
        process = await asyncio.create_subprocess_exec(
            WOOSYNC, *args, env={**clean, **env}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        return cls(process)

    async def _collect(self) -> None:
        async for line in self.process.stdout:
            self.lines.append(line.decode())

    async def printed(self, fragment: str, timeout: float = 30) -> str:
        """The first line printed that contains `fragment`, once it is printed."""

        def seen() -> list[str]:
            found = [line for line in self.lines if fragment in line]
            if not found and self._stdout.done():
                raise AssertionError(f"woosync ended without printing {fragment!r}:\n{''.join(self.lines)}")
            return found

        return (await eventually(seen, timeout=timeout, interval=0.05, what=f"woosync to print {fragment!r}"))[0]

    async def result(self, timeout: float = 30) -> tuple[int, str, str]:
        """Wait for the exit: (exit code, stdout, stderr)."""
        try:
            code = await asyncio.wait_for(self.process.wait(), timeout)
        except asyncio.TimeoutError:
            self.process.kill()
            await self.process.wait()
            raise
        await self._stdout
        return code, "".join(self.lines), (await self._stderr).decode()


Replier = Callable[[StartSync], Awaitable[dict[str, Any] | None]]


@pytest.fixture
async def producer_stand_in(amqp_url) -> AsyncIterator[Callable[[Replier], Awaitable[list[StartSync]]]]:
    """start(answer) consumes sync requests and replies answer(request) to reply_to; returns
    the list the requests are collected in."""
    connection = await connect(amqp_url)
    channel = await connection.channel()
    await declare_topology(channel, load_settings())

    async def start(answer: Replier) -> list[StartSync]:
        received: list[StartSync] = []
        queue = await channel.declare_queue(topology.SYNC_REQUESTS_QUEUE, passive=True)

        async def on_request(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            async with message.process():
                request = StartSync.model_validate_json(message.body)
                received.append(request)
                reply = await answer(request)
                if reply is not None and message.reply_to:
                    await channel.default_exchange.publish(
                        aio_pika.Message(orjson.dumps(reply), correlation_id=message.correlation_id,
                                         content_type="application/json"),
                        routing_key=message.reply_to,
                    )

        await queue.consume(on_request)
        return received

    try:
        yield start
    finally:
        await connection.close()


@pytest.fixture
async def status_api(db_pool, amqp_url) -> AsyncIterator[str]:
    async with status_service(db_pool, amqp_url) as status:
        async with serve(status.app, status.ctx.hub) as base_url:
            yield base_url


def start_args(org_id: uuid.UUID, *extra: str) -> list[str]:
    return ["sync", "start", "--org", str(org_id), "--url", STORE_URL, *extra]


STORE_SECRETS = {"WOOSYNC_STORE_CONSUMER_KEY": "ck_from_env", "WOOSYNC_STORE_CONSUMER_SECRET": "cs_from_env"}


# ------------------------------------------------------------------------------------- start
async def test_start_publishes_the_request_and_prints_the_producers_reply(amqp_url, producer_stand_in) -> None:
    queue_id = uuid.uuid4()

    async def accept(request: StartSync) -> dict[str, Any]:
        return {"queue_id": str(queue_id), "state": "draft", "total_count": 0}

    received = await producer_stand_in(accept)
    org_id = uuid.uuid4()
    code, stdout, stderr = await woosync(
        *start_args(org_id, "--idempotency-key", "nightly-7", "--limit", "25", "--email", "Ada@Example.com",
                    "--requested-by", "cron", "--json"),
        env={"WOOSYNC_AMQP_URL": amqp_url, **STORE_SECRETS},
    )
    assert code == 0, stderr
    assert orjson.loads(stdout) == {"queue_id": str(queue_id), "state": "draft", "total_count": 0}
    assert len(stdout.strip().splitlines()) == 1  # exactly one JSON object

    [request] = received
    assert request.org_id == org_id and request.store.url == STORE_URL and request.idempotency_key == "nightly-7"
    assert request.store.consumer_key.get_secret_value() == "ck_from_env"
    assert request.store.consumer_secret.get_secret_value() == "cs_from_env"
    assert (request.options.limit, request.options.email, request.options.role) == (25, "Ada@Example.com", "all")
    assert request.requested_by == "cron"
    assert "cs_from_env" not in stdout + stderr


async def test_start_says_what_the_producer_refused_and_exits_1(amqp_url, producer_stand_in) -> None:
    async def refuse(request: StartSync) -> dict[str, Any]:
        return {"error": f"organisation {request.org_id} is not registered"}

    await producer_stand_in(refuse)
    code, stdout, stderr = await woosync(*start_args(uuid.uuid4()), env={"WOOSYNC_AMQP_URL": amqp_url, **STORE_SECRETS})
    assert code == 1
    assert "refused the sync request" in stderr and "is not registered" in stderr


async def test_start_without_a_producer_gives_up_after_the_reply_timeout_and_exits_1(amqp_url) -> None:
    connection = await connect(amqp_url)
    await declare_topology(await connection.channel(), load_settings())
    await connection.close()
    code, _, stderr = await woosync(*start_args(uuid.uuid4(), "--reply-timeout", "1"),
                                    env={"WOOSYNC_AMQP_URL": amqp_url, **STORE_SECRETS})
    assert code == 1
    assert "no answer from the producer within 1 s" in stderr and "woosync run producer" in stderr


@pytest.mark.parametrize(
    ("args", "env", "fragment"),
    [
        (["sync", "start", "--org", "not-a-uuid", "--url", STORE_URL], STORE_SECRETS, "--org"),
        (["sync", "start", "--org", str(uuid.uuid4()), "--url", "ftp://shop"], STORE_SECRETS, "--url"),
        (["sync", "start", "--org", str(uuid.uuid4()), "--url", STORE_URL], {}, "WOOSYNC_STORE_CONSUMER_SECRET"),
        (["sync", "start", "--org", str(uuid.uuid4()), "--url", STORE_URL, "--limit", "0"], STORE_SECRETS, "--limit"),
        (["sync", "start", "--org", str(uuid.uuid4()), "--url", STORE_URL, "--wait"], STORE_SECRETS, "WOOSYNC_API_TOKEN"),
        (["sync", "status", "12345"], {"WOOSYNC_API_TOKEN": "wsk_x"}, "QUEUE_ID must be a UUID"),
        (["sync", "status", str(uuid.uuid4())], {}, "WOOSYNC_API_TOKEN"),
        (["sync", "frobnicate"], {}, "invalid choice"),
    ],
)
async def test_usage_errors_exit_2_naming_the_problem(args, env, fragment) -> None:
    # No broker or API is contacted: nothing here may hang.
    code, _, stderr = await woosync(*args, env={"WOOSYNC_AMQP_URL": "amqp://guest:guest@127.0.0.1:1/", **env}, timeout=30)
    assert code == 2, stderr
    assert fragment in stderr


# ------------------------------------------------------------------------------------ status
async def finish(pool, org_id, line_ids, *, fail: int = 0) -> None:
    await queue_lines.claim_lines(pool, line_ids)
    await queue_lines.mark_lines_failed(pool, [(line_id, "no valid email") for line_id in line_ids[:fail]])
    await queue_lines.mark_lines_done(pool, [(line_id, None, False) for line_id in line_ids[fail:]])


async def test_status_watches_until_done_with_plain_lines_and_exits_0(db_pool, status_api) -> None:
    org_id, token = await an_organization(db_pool)
    queue, line_ids = await a_queue(db_pool, org_id, lines=4)

    watcher = await RunningWoosync.start("sync", "status", str(queue.id), "--interval", "0.2",
                                         env={"WOOSYNC_API_URL": status_api, "WOOSYNC_API_TOKEN": token})
    await watcher.printed("remaining 4 of 4")  # it follows the queue: now the lines move
    await queue_lines.claim_lines(db_pool, line_ids[:2])
    await queue_lines.mark_lines_done(db_pool, [(line_id, None, False) for line_id in line_ids[:2]])
    await watcher.printed("done 2, failed 0")
    await finish(db_pool, org_id, line_ids[2:])
    await sync_queues.mark_enumeration_done(db_pool, queue.id, org_id)
    code, stdout, stderr = await watcher.result()

    assert code == 0, stderr
    assert "\x1b" not in stdout, "control codes in non-terminal output"
    lines = stdout.strip().splitlines()
    assert any("done 2, failed 0" in line and "remaining 2 of 4" in line for line in lines), stdout
    assert "done 4, failed 0, cancelled 0" in lines[-2] and "100%" in lines[-2]
    assert lines[-1].startswith(f"sync {queue.id} finished: 4 done, 0 failed")


@pytest.mark.parametrize(("failed", "verdict"), [(1, "finished with failures"), (3, "failed")])
async def test_a_sync_that_ended_with_failures_exits_1_and_says_how_to_retry(db_pool, status_api, failed, verdict) -> None:
    org_id, token = await an_organization(db_pool)
    queue, line_ids = await a_queue(db_pool, org_id, lines=3, enumerated=True)
    await finish(db_pool, org_id, line_ids, fail=failed)
    code, stdout, _ = await woosync("sync", "status", str(queue.id),
                                    env={"WOOSYNC_API_URL": status_api, "WOOSYNC_API_TOKEN": token})
    assert code == 1
    assert f"sync {queue.id} {verdict}" in stdout and f"woosync sync retry {queue.id}" in stdout


async def test_status_once_json_prints_the_status_object(db_pool, status_api) -> None:
    org_id, token = await an_organization(db_pool)
    queue, _ = await a_queue(db_pool, org_id, lines=2)
    code, stdout, _ = await woosync("sync", "status", str(queue.id), "--once", "--json",
                                    env={"WOOSYNC_API_URL": status_api, "WOOSYNC_API_TOKEN": token})
    assert code == 0
    status = orjson.loads(stdout)
    assert status["id"] == str(queue.id) and status["draft_count"] == 2


async def test_another_organisations_queue_or_a_bad_token_exits_2(db_pool, status_api) -> None:
    org_a, _ = await an_organization(db_pool, "A")
    _, token_b = await an_organization(db_pool, "B")
    queue, _ = await a_queue(db_pool, org_a, lines=1)
    code, _, stderr = await woosync("sync", "status", str(queue.id), "--once",
                                    env={"WOOSYNC_API_URL": status_api, "WOOSYNC_API_TOKEN": token_b})
    assert code == 2 and f"no sync queue {queue.id}" in stderr
    code, _, stderr = await woosync("sync", "status", str(queue.id), "--once",
                                    env={"WOOSYNC_API_URL": status_api, "WOOSYNC_API_TOKEN": "wsk_" + "x" * 43})
    assert code == 2 and "refused the token" in stderr


async def test_an_unreachable_status_api_exits_2_naming_the_url() -> None:
    code, _, stderr = await woosync("sync", "status", str(uuid.uuid4()), "--once",
                                    env={"WOOSYNC_API_URL": "http://127.0.0.1:1", "WOOSYNC_API_TOKEN": "wsk_x"})
    assert code == 2 and "http://127.0.0.1:1" in stderr and "woosync run status" in stderr


# ----------------------------------------------------------------------------- retry, cancel
async def test_retry_and_cancel_act_through_the_api(db_pool, status_api) -> None:
    org_id, token = await an_organization(db_pool)
    queue, line_ids = await a_queue(db_pool, org_id, lines=3, enumerated=True)
    await queue_lines.claim_lines(db_pool, line_ids[:1])
    await queue_lines.mark_lines_failed(db_pool, [(line_ids[0], "timed out")])
    env = {"WOOSYNC_API_URL": status_api, "WOOSYNC_API_TOKEN": token}

    code, stdout, stderr = await woosync("sync", "retry", str(queue.id), "--requested-by", "ops", env=env)
    assert code == 0, stderr
    assert "1 failed line(s) back to draft" in stdout

    code, stdout, _ = await woosync("sync", "cancel", str(queue.id), "--json", env=env)
    assert code == 0
    assert orjson.loads(stdout)["state"] == "cancelled"
    status = await sync_queues.queue_status(db_pool, queue.id, org_id)
    assert status.state == "cancelled" and status.cancelled_count == 3

    code, _, stderr = await woosync("sync", "retry", str(queue.id), env=env)
    assert code == 2 and "cancelled" in stderr


# ------------------------------------------------------------------------------ start --wait
async def test_start_wait_follows_the_new_queue_to_the_end(db_pool, amqp_url, status_api, producer_stand_in) -> None:
    org_id, token = await an_organization(db_pool)
    lines_of_the_sync: list[uuid.UUID] = []

    async def producer(request: StartSync) -> dict[str, Any]:
        # What the producer does, in short: a queue row and its lines; the test then syncs them.
        queue, line_ids = await a_queue(db_pool, request.org_id, lines=3, enumerated=True)
        lines_of_the_sync.extend(line_ids)
        return {"queue_id": str(queue.id), "state": queue.state, "total_count": queue.total_count}

    await producer_stand_in(producer)
    cli = await RunningWoosync.start(
        *start_args(org_id, "--wait"),
        env={"WOOSYNC_AMQP_URL": amqp_url, "WOOSYNC_API_URL": status_api, "WOOSYNC_API_TOKEN": token, **STORE_SECRETS},
    )
    await cli.printed("remaining 3 of 3")  # following the new queue while nothing is synced yet
    await finish(db_pool, org_id, lines_of_the_sync)
    code, stdout, stderr = await cli.result()
    assert code == 0, stderr
    assert "sync started: queue" in stdout and "finished: 3 done, 0 failed" in stdout


async def test_on_a_terminal_status_draws_a_progress_bar_and_ends_with_the_summary(db_pool, status_api) -> None:
    org_id, token = await an_organization(db_pool)
    queue, line_ids = await a_queue(db_pool, org_id, lines=2, enumerated=True)
    leader, follower = pty.openpty()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WOOSYNC_")}
    process = await asyncio.create_subprocess_exec(
        WOOSYNC, "sync", "status", str(queue.id),
        env={**clean, "WOOSYNC_API_URL": status_api, "WOOSYNC_API_TOKEN": token, "COLUMNS": "120", "TERM": "xterm"},
        stdout=follower, stderr=follower,
    )
    os.close(follower)
    output = bytearray()

    def read_terminal() -> None:
        while True:
            try:
                chunk = os.read(leader, 65536)
            except BlockingIOError:  # nothing more for now
                return
            except OSError:  # the terminal closed with the process
                return
            if not chunk:
                return
            output.extend(chunk)

    def bar_shows_the_queue() -> bool:
        read_terminal()
        return b"remaining 2" in output

    os.set_blocking(leader, False)
    await eventually(bar_shows_the_queue, timeout=30, interval=0.05, what="the bar to show the queue's first status")
    await finish(db_pool, org_id, line_ids)
    assert await asyncio.wait_for(process.wait(), 30) == 0
    os.set_blocking(leader, True)
    read_terminal()
    os.close(leader)
    text = output.decode(errors="replace")
    assert "\x1b[" in text  # drawn with control codes: a live bar
    assert "━" in text and "done 2" in text
    assert f"sync {queue.id} finished: 2 done, 0 failed" in text


# ----------------------------------------------------------------------------------- preview
async def a_preview_started_by_the_cli(pool, org_id, idempotency_key: str) -> sync_queues.QueueStatus:
    """The preview queue `woosync sync preview` started through the status API, once it exists."""

    async def started() -> list[sync_queues.QueueStatus]:
        queues = await sync_queues.list_queues(pool, org_id, limit=10, offset=0)
        return [queue for queue in queues if queue.idempotency_key == idempotency_key]

    [queue] = await eventually(started, timeout=30, interval=0.05, what="the preview queue to be created")
    return queue


async def run_the_preview(pool, queue: sync_queues.QueueStatus) -> None:
    """What the producer and consumers do for a preview, done here: four customers, one a sync
    would create, one it would update (its phone), one unchanged and one that would fail."""
    added = await queue_lines.add_lines(pool, queue_id=queue.id, org_id=queue.org_id,
                                        customers=[(n, a_customer(n)) for n in range(1, 5)])
    line = {woo_id: line_id for line_id, woo_id in added}
    await queue_lines.claim_lines(pool, list(line.values()))
    await queue_lines.mark_lines_done(
        pool, [(line[1], None, False), (line[2], None, False), (line[3], None, False)],
        outcomes={line[1]: ("would_create", {"email": [None, "customer1@example.com"]}),
                  line[2]: ("would_update", {"phone": ["+44 20 0000 0000", "+44 20 1111 1111"]}),
                  line[3]: ("unchanged", None)},
    )
    await queue_lines.mark_lines_failed(pool, [(line[4], "email is not a valid address")])
    await sync_queues.mark_enumeration_done(pool, queue.id, queue.org_id)


def preview_args(key: str, *extra: str) -> list[str]:
    return ["sync", "preview", "--url", STORE_URL, "--idempotency-key", key, "--conflict-policy", "local_wins", *extra]


async def test_preview_prints_the_report_readably(db_pool, status_api) -> None:
    org_id, token = await an_organization(db_pool)
    env = {"WOOSYNC_API_URL": status_api, "WOOSYNC_API_TOKEN": token, **STORE_SECRETS}
    previewing = await RunningWoosync.start(*preview_args("look-first"), env=env)
    queue = await a_preview_started_by_the_cli(db_pool, org_id, "look-first")
    await run_the_preview(db_pool, queue)
    code, stdout, stderr = await previewing.result()

    # A line would fail, so the preview ends partial: exit 1, as a sync that ended so.
    assert code == 1, stderr
    assert f"preview {queue.id} (partial), under local_wins:" in stdout
    assert "would create 1, would update 1, unchanged 1, would fail 1, conflicts 0" in stdout
    assert "fails (1): email is not a valid address" in stdout
    assert "changes per field: phone 1" in stdout
    assert "store requests" in stdout
    assert "update 2 <customer2@example.com>:" in stdout
    assert "phone: '+44 20 0000 0000' -> '+44 20 1111 1111'" in stdout
    assert await db_pool.fetchval("SELECT kind FROM woo_customer_sync_queue WHERE id = $1", queue.id) == "preview"


async def test_preview_json_prints_the_status_object_with_its_report(db_pool, status_api) -> None:
    org_id, token = await an_organization(db_pool)
    env = {"WOOSYNC_API_URL": status_api, "WOOSYNC_API_TOKEN": token, **STORE_SECRETS}
    previewing = await RunningWoosync.start(*preview_args("look-first-json", "--json"), env=env)
    queue = await a_preview_started_by_the_cli(db_pool, org_id, "look-first-json")
    await run_the_preview(db_pool, queue)
    code, stdout, stderr = await previewing.result()

    assert code == 1, stderr
    status = orjson.loads(stdout)  # the object alone: no progress lines around it
    assert status["id"] == str(queue.id) and status["state"] == "partial"
    report = status["preview"]
    assert (report["would_create"], report["would_update"], report["unchanged"], report["would_fail"]) == (1, 1, 1, 1)
    assert report["field_changes"] == {"phone": 1}
    assert report["fail_reasons"] == [{"reason": "email is not a valid address", "count": 1}]
    assert {sample["woo_customer_id"]: sample["action"] for sample in report["samples"]} == {1: "create", 2: "update"}
    assert report["estimate"]["store_requests"] >= 1


async def test_preview_mode_incremental_asks_for_a_preview_of_the_sweep(db_pool, status_api) -> None:
    org_id, token = await an_organization(db_pool)
    env = {"WOOSYNC_API_URL": status_api, "WOOSYNC_API_TOKEN": token, **STORE_SECRETS}
    previewing = await RunningWoosync.start(*preview_args("sweep-first", "--mode", "incremental", "--json"), env=env)
    queue = await a_preview_started_by_the_cli(db_pool, org_id, "sweep-first")
    await run_the_preview(db_pool, queue)
    code, stdout, stderr = await previewing.result()

    assert code == 1, stderr
    assert orjson.loads(stdout)["options"]["mode"] == "incremental"
    assert await db_pool.fetchval("SELECT options->>'mode' FROM woo_customer_sync_queue WHERE id = $1", queue.id) == "incremental"
