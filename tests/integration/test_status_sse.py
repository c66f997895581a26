"""GET /api/v1/sync/queues/{id}/events: Server-Sent Events over a real socket (uvicorn)."""

from __future__ import annotations

import asyncio
import time
import uuid

import aiohttp
import orjson
import pytest

from services.status.sse import QueueWatchHub
from shared.repository import queue_lines, sync_queues
from tests.integration.status_harness import a_queue, an_organization, serve, status_service
from tests.waiting import eventually

pytestmark = pytest.mark.integration


class EventStream:
    """Reads an SSE response: `event`/`data` pairs and comment lines, until the server ends it."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.comments: list[str] = []

    async def next_event(self, timeout: float = 10.0) -> tuple[str, dict] | None:
        """The next event within `timeout` seconds (comments in between are collected), or None
        when the stream ended."""
        return await asyncio.wait_for(self._next_event(), timeout)

    async def _next_event(self) -> tuple[str, dict] | None:
        event: str | None = None
        data: list[str] = []
        while True:
            raw = await self.response.content.readline()
            if not raw:
                return None
            line = raw.decode().rstrip("\r\n")
            if line.startswith(":"):
                self.comments.append(line)
            elif line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                data.append(line.split(":", 1)[1].strip())
            elif line == "" and event is not None:
                return event, orjson.loads("\n".join(data))


@pytest.fixture
async def live(db_pool, amqp_url):
    async with status_service(db_pool, amqp_url, hub_interval=0.05, heartbeat_s=0.3) as status:
        async with serve(status.app, status.ctx.hub) as base_url:
            async with aiohttp.ClientSession(base_url) as session:
                yield status, session


async def test_a_watcher_sees_each_change_and_the_stream_ends_at_the_terminal_state(live, db_pool) -> None:
    status_service_, session = live
    org_id, token = await an_organization(db_pool)
    queue, line_ids = await a_queue(db_pool, org_id, lines=6)

    async with session.get(f"/api/v1/sync/queues/{queue.id}/events", headers={"Authorization": f"Bearer {token}"}) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        stream = EventStream(response)

        first = await stream.next_event()
        assert first is not None and first[0] == "status"
        assert (first[1]["state"], first[1]["draft_count"]) == ("draft", 6)

        seen = [first[1]]
        # Move the lines in steps, each step waiting for its snapshot: the watcher sees every change.
        steps = [
            lambda: queue_lines.claim_lines(db_pool, line_ids[:3]),
            lambda: queue_lines.mark_lines_done(db_pool, [(line_id, None, False) for line_id in line_ids[:2]]),
            lambda: queue_lines.mark_lines_failed(db_pool, [(line_ids[2], "no valid email")]),
            lambda: queue_lines.claim_lines(db_pool, line_ids[3:]),
            lambda: queue_lines.mark_lines_done(db_pool, [(line_id, None, False) for line_id in line_ids[3:]]),
            lambda: sync_queues.mark_enumeration_done(db_pool, queue.id, org_id),
        ]
        for step in steps:
            await step()
            event = await stream.next_event()
            assert event is not None and event[0] == "status"
            seen.append(event[1])

        assert [s["done_count"] for s in seen] == [0, 0, 2, 2, 2, 5, 5]
        assert [s["processing_count"] for s in seen] == [0, 3, 1, 0, 3, 0, 0]
        assert seen[-1]["state"] == "partial" and seen[-1]["progress"] == 100
        # After the terminal snapshot the server ends the stream.
        assert await stream.next_event() is None


async def test_heartbeat_comments_keep_an_idle_stream_alive(live, db_pool) -> None:
    _, session = live
    org_id, token = await an_organization(db_pool)
    queue, _ = await a_queue(db_pool, org_id, lines=1)
    async with session.get(f"/api/v1/sync/queues/{queue.id}/events", headers={"Authorization": f"Bearer {token}"}) as response:
        stream = EventStream(response)
        await stream.next_event()
        with pytest.raises(asyncio.TimeoutError):
            await stream.next_event(timeout=1.0)  # nothing changes...
        assert stream.comments, "no heartbeat comment within 1 s at a 0.3 s interval"  # ...but comments flow


async def test_an_already_finished_queue_gets_one_snapshot_and_the_end(live, db_pool) -> None:
    _, session = live
    org_id, token = await an_organization(db_pool)
    queue, _ = await a_queue(db_pool, org_id, lines=0, enumerated=True)
    async with session.get(f"/api/v1/sync/queues/{queue.id}/events", headers={"Authorization": f"Bearer {token}"}) as response:
        stream = EventStream(response)
        event = await stream.next_event()
        assert event is not None and event[1]["state"] == "done"
        assert await stream.next_event() is None


async def test_events_of_another_organisations_queue_are_404_before_any_stream(live, db_pool) -> None:
    _, session = live
    org_a, _ = await an_organization(db_pool, "A")
    _, token_b = await an_organization(db_pool, "B")
    queue, _ = await a_queue(db_pool, org_a, lines=1)
    async with session.get(f"/api/v1/sync/queues/{queue.id}/events", headers={"Authorization": f"Bearer {token_b}"}) as response:
        assert response.status == 404
        assert (await response.json())["success"] is False


async def test_a_deleted_queue_ends_its_watchers_streams(live, db_pool) -> None:
    _, session = live
    org_id, token = await an_organization(db_pool)
    queue, _ = await a_queue(db_pool, org_id, lines=2)
    async with session.get(f"/api/v1/sync/queues/{queue.id}/events", headers={"Authorization": f"Bearer {token}"}) as response:
        stream = EventStream(response)
        await stream.next_event()
        await db_pool.execute("DELETE FROM woo_customer_sync_queue WHERE id = $1", queue.id)
        event = await stream.next_event()
        assert event == ("gone", {"id": str(queue.id)})
        assert await stream.next_event() is None


async def test_two_hundred_watchers_of_one_queue_share_one_poller() -> None:
    reads = 0
    counts = {"state": "processing", "done_count": 0}

    async def read_statuses(keys):
        nonlocal reads
        reads += 1
        return {key: dict(counts) for key in keys}

    hub = QueueWatchHub(read_statuses, interval=0.05)
    org_id, queue_id = uuid.uuid4(), uuid.uuid4()
    received = [0] * 200

    async def watcher(index: int) -> None:
        async for status in hub.watch(org_id, queue_id):
            received[index] += 1
            if status["state"] == "done":
                return

    watchers = [asyncio.create_task(watcher(i)) for i in range(200)]
    started = time.monotonic()
    await eventually(lambda: sum(received) == 200, timeout=10, interval=0.01, what="every watcher's first snapshot")
    assert hub.watched_queues == 1
    counts["done_count"] = 1
    counts["state"] = "done"
    await asyncio.wait_for(asyncio.gather(*watchers), 5)
    elapsed = time.monotonic() - started
    assert received == [2] * 200  # the first snapshot and the change, each exactly once
    # Reads follow the poll interval, not the number of watchers.
    assert reads <= elapsed / 0.05 + 3, (reads, elapsed)
    assert hub.watched_queues == 0  # the poller is gone with its last watcher


async def test_watchers_in_different_organisations_never_share_a_watch() -> None:
    asked: list[tuple[uuid.UUID, uuid.UUID]] = []
    queue_id = uuid.uuid4()
    org_a, org_b = uuid.uuid4(), uuid.uuid4()

    async def read_statuses(keys):
        asked.extend(keys)
        return {key: {"state": "done", "org": str(key[0])} for key in keys}

    hub = QueueWatchHub(read_statuses, interval=0.05)
    [a] = [s async for s in hub.watch(org_a, queue_id)]
    [b] = [s async for s in hub.watch(org_b, queue_id)]
    assert set(asked) == {(org_a, queue_id), (org_b, queue_id)}
    assert (a["org"], b["org"]) == (str(org_a), str(org_b))


async def test_closing_the_hub_ends_open_streams(db_pool, amqp_url) -> None:
    async with status_service(db_pool, amqp_url, hub_interval=0.05) as status:
        org_id, token = await an_organization(db_pool)
        queue, _ = await a_queue(db_pool, org_id, lines=1)
        async with serve(status.app, status.ctx.hub) as base_url:
            async with aiohttp.ClientSession(base_url) as session:
                async with session.get(f"/api/v1/sync/queues/{queue.id}/events",
                                       headers={"Authorization": f"Bearer {token}"}) as response:
                    stream = EventStream(response)
                    await stream.next_event()
                    await status.ctx.hub.close()  # what the service does on SIGTERM
                    assert await stream.next_event(timeout=5) is None
