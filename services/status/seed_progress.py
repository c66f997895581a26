"""GET /api/v1/integrations/sync/progress/{jobId}: the seeds' progress stream (Server-Sent Events),
for a sync job or a single sync queue id, so MantisNXT screens work with either
(docs/contract.md section 7).

Each event is an unnamed `data:` line (EventSource's `onmessage`) holding the seed's metrics,
{processedCount, failedCount, itemsPerMin, etaSeconds, completionPercent}, with woosync's state and
counts beside them. One event on connect, one whenever a state or count changes, the last at the
terminal state, after which the stream ends; a comment every heartbeat in between.

The queues are followed through the process's one poller (services/status/sse.py: one query per
tick for every watched queue), and the stream holds one of the organisation's event-stream places
(WOOSYNC_ORG_MAX_EVENT_STREAMS), as the queues' own event streams do.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from typing import Any
from uuid import UUID

import orjson
from sse_starlette import ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.status.errors import JobNotFound
from services.status.http import only_query, path_uuid
from services.status.presenters import queue_status_json
from services.status.request_context import caller_of, context
from services.status.routes_queues import _CountedEventStream
from services.status.sse import QueueWatchHub
from shared.repository import jobs, sync_queues
from shared.repository.jobs import JobTotals

PATH = "/api/v1/integrations/sync/progress/{job_id}"


def progress_event(totals: JobTotals, *, id_key: str, target_id: UUID) -> dict[str, Any]:
    """The seed's progress metrics, then woosync's. processedCount counts lines synced (done),
    failedCount the failed ones; completionPercent counts every finished line (done, failed,
    cancelled), so it reaches 100 when the sync ends."""
    return {
        "processedCount": totals.done_count,
        "failedCount": totals.failed_count,
        "itemsPerMin": totals.items_per_min,
        "etaSeconds": totals.eta_seconds,
        "completionPercent": totals.progress,
        id_key: str(target_id),
        "state": totals.state,
        "totalCount": totals.total_count,
        "cancelledCount": totals.cancelled_count,
        "pendingCount": totals.draft_count + totals.processing_count,
        "isActionRequired": totals.is_action_required,
    }


def _change_key(event: Mapping[str, Any]) -> tuple[Any, ...]:
    # Throughput and ETA drift every read; an event is worth sending when a count or the state moves.
    return tuple(value for key, value in event.items() if key not in ("itemsPerMin", "etaSeconds"))


async def progress_snapshots(hub: QueueWatchHub, org_id: UUID, initial: dict[UUID, dict[str, Any]],
                             *, cancelled: bool) -> AsyncIterator[JobTotals]:
    """The totals of the queues `initial` names (their statuses as just read) each time one of
    them changes, through the hub's watches; ends once they have all ended (a queue deleted
    meanwhile counts with its last status) or the hub closes."""
    latest = dict(initial)
    changed = asyncio.Event()

    async def follow(queue_id: UUID) -> None:
        async with aclosing(hub.watch(org_id, queue_id, initial=initial[queue_id])) as snapshots:
            async for status in snapshots:
                if status is not None:
                    latest[queue_id] = status
                changed.set()

    followers = [asyncio.create_task(follow(queue_id), name=f"progress of {queue_id}") for queue_id in initial]
    try:
        while True:
            totals = JobTotals.of(list(latest.values()), cancelled=cancelled)
            yield totals
            if totals.is_terminal or all(follower.done() for follower in followers):
                return
            await changed.wait()
            changed.clear()
    finally:
        for follower in followers:
            follower.cancel()
        await asyncio.gather(*followers, return_exceptions=True)


async def progress(request: Request) -> Response:
    ctx = context(request)
    caller = await caller_of(request)
    target_id = path_uuid(request, "job_id")
    only_query(request)
    # A job id first, then a queue id; neither (or another organisation's): 404 before the stream starts.
    job = await jobs.job_status(ctx.pool, target_id, caller.org_id)
    if job is not None:
        id_key, queues, cancelled = "jobId", job.queues, job.cancelled_at is not None
    else:
        queue = await sync_queues.queue_status(ctx.pool, target_id, caller.org_id)
        if queue is None:
            raise JobNotFound(target_id, or_queue=True)
        id_key, queues, cancelled = "queueId", (queue,), False
    initial = {queue.id: queue_status_json(queue) for queue in queues}
    release = ctx.event_streams.reserve(caller.org_id, ctx.settings.org_max_event_streams)

    async def stream() -> AsyncIterator[ServerSentEvent]:
        last_sent: tuple[Any, ...] | None = None
        async with aclosing(progress_snapshots(ctx.hub, caller.org_id, initial, cancelled=cancelled)) as snapshots:
            async for totals in snapshots:
                if totals.is_terminal and job is not None:
                    # The job may have been cancelled as a whole since the stream began.
                    ended = await jobs.job_status(ctx.pool, target_id, caller.org_id)
                    if ended is not None and ended.is_terminal:
                        totals = ended.totals
                event = progress_event(totals, id_key=id_key, target_id=target_id)
                if _change_key(event) == last_sent and not totals.is_terminal:
                    continue
                last_sent = _change_key(event)
                yield ServerSentEvent(data=orjson.dumps(event).decode())

    return _CountedEventStream(stream(), release=release, ping=ctx.heartbeat_s,
                               headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


ROUTES = [Route(PATH, progress, methods=["GET"])]
