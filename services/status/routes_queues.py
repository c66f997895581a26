"""/api/v1/sync/queues...: start, list, read, watch, retry and cancel syncs (docs/contract.md section 7).

Every route authenticates first (so that nothing about input or queues is revealed to a
caller without a valid token), then validates its input, then reads within the token's
organisation: another organisation's queue is indistinguishable from an unknown one (404).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import aclosing
from typing import Any

import orjson
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from services.status import actions
from services.status.auth import authenticate
from services.status.errors import InvalidRequest, QueueNotFound
from services.status.http import ok, only_query, page, page_params, parse_body, path_uuid
from services.status.presenters import activity_json, line_json, queue_status_json, store_throttle_json
from services.status.preview_report import preview_json
from services.status.request_context import caller_of, context
from services.status.schemas import ActionRequest, StartSyncRequest
from shared.repository import activity, queue_lines, store_budget, sync_queues
from shared.states import LINE_STATES


async def start_sync(request: Request) -> Response:
    ctx = context(request)
    caller = await caller_of(request)
    only_query(request)
    body = await parse_body(request, StartSyncRequest)
    assert body is not None
    store = actions.store_config(body.store.url, body.store.consumer_key, body.store.consumer_secret, field="store")
    options = actions.sync_options(**body.options.model_dump())
    status, _ = await actions.start_sync(
        ctx, caller, store=store, idempotency_key=body.idempotency_key, options=options, requested_by=body.requested_by
    )
    return ok(queue_status_json(status), status=202)


async def list_queues(request: Request) -> Response:
    ctx = context(request)
    async with ctx.pool.acquire() as conn:
        caller = await authenticate(conn, request)
        limit, offset = page_params(request)
        found = await sync_queues.list_queues(conn, caller.org_id, limit=limit + 1, offset=offset)
    return ok(page([queue_status_json(status) for status in found], limit=limit, offset=offset))


async def get_queue(request: Request) -> Response:
    ctx = context(request)
    async with ctx.pool.acquire() as conn:
        caller = await authenticate(conn, request)
        queue_id = path_uuid(request)
        only_query(request)
        status = await sync_queues.queue_status(conn, queue_id, caller.org_id)
        if status is not None and status.kind == "preview":
            return ok(await preview_json(conn, status))
        # Whether the fleet holds the queue's store now (it said slow down), and until when.
        throttle = (await store_budget.throttles(conn, [status.store_url])).get(status.store_url) \
            if status is not None and status.store_url else None
    if status is None:
        raise QueueNotFound(queue_id)
    return ok(queue_status_json(status) | store_throttle_json(throttle))


def _line_state(request: Request) -> str | None:
    state = request.query_params.get("state")
    if state is None:
        return None
    if state not in LINE_STATES:
        raise InvalidRequest(f"query parameter state must be one of {', '.join(LINE_STATES)}, got {state[:64]!r}")
    return state


async def list_lines(request: Request) -> Response:
    ctx = context(request)
    async with ctx.pool.acquire() as conn:
        caller = await authenticate(conn, request)
        queue_id = path_uuid(request)
        limit, offset = page_params(request, "state")
        state = _line_state(request)
        if await sync_queues.queue_status(conn, queue_id, caller.org_id) is None:
            raise QueueNotFound(queue_id)
        lines = await queue_lines.list_lines(conn, queue_id, caller.org_id, state=state, limit=limit + 1, offset=offset)
    return ok(page([line_json(line) for line in lines], limit=limit, offset=offset))


async def list_activity(request: Request) -> Response:
    ctx = context(request)
    async with ctx.pool.acquire() as conn:
        caller = await authenticate(conn, request)
        queue_id = path_uuid(request)
        limit, offset = page_params(request)
        if await sync_queues.queue_status(conn, queue_id, caller.org_id) is None:
            raise QueueNotFound(queue_id)
        entries = await activity.read_activity(conn, queue_id, caller.org_id, limit=limit + 1, offset=offset)
    return ok(page([activity_json(entry) for entry in entries], limit=limit, offset=offset))


async def retry(request: Request) -> Response:
    caller = await caller_of(request)
    queue_id = path_uuid(request)
    only_query(request)
    body = await parse_body(request, ActionRequest, optional=True)
    retried, status = await actions.retry_failed(
        context(request), caller, queue_id, requested_by=body.requested_by if body else None
    )
    return ok({"retried": retried, "queue": queue_status_json(status)})


async def cancel(request: Request) -> Response:
    caller = await caller_of(request)
    queue_id = path_uuid(request)
    only_query(request)
    body = await parse_body(request, ActionRequest, optional=True)
    status = await actions.cancel(context(request), caller, queue_id, requested_by=body.requested_by if body else None)
    return ok(queue_status_json(status))


async def pause(request: Request) -> Response:
    return await _set_paused(request, paused=True)


async def resume(request: Request) -> Response:
    return await _set_paused(request, paused=False)


async def _set_paused(request: Request, *, paused: bool) -> Response:
    caller = await caller_of(request)
    queue_id = path_uuid(request)
    only_query(request)
    body = await parse_body(request, ActionRequest, optional=True)
    status = await actions.set_paused(context(request), caller, queue_id, paused=paused,
                                      requested_by=body.requested_by if body else None)
    return ok(queue_status_json(status))


async def events(request: Request) -> Response:
    """Server-Sent Events: `event: status` with the status JSON on connect and whenever the
    counts or state change; a comment every heartbeat; the stream ends after the terminal state."""
    ctx = context(request)
    caller = await caller_of(request)
    queue_id = path_uuid(request)
    only_query(request)
    current = await actions.queue_status(ctx, caller, queue_id)  # QueueNotFound before the stream starts
    # TooManyEventStreams (429) beyond the organisation's cap on this process; the place is
    # given back when the response ends, however it ends.
    release = ctx.event_streams.reserve(caller.org_id, ctx.settings.org_max_event_streams)

    async def stream() -> Any:
        watch = ctx.hub.watch(caller.org_id, queue_id, initial=queue_status_json(current))
        async with aclosing(watch) as snapshots:
            async for status in snapshots:
                if status is None:
                    yield ServerSentEvent(event="gone", data=orjson.dumps({"id": str(queue_id)}).decode())
                    return
                yield ServerSentEvent(event="status", data=orjson.dumps(status).decode())

    return _CountedEventStream(
        stream(),
        release=release,
        ping=ctx.heartbeat_s,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


class _CountedEventStream(EventSourceResponse):
    """An event stream that gives its organisation's place back when it ends (the client left,
    the queue finished, or the service stops), even if its body never started."""

    def __init__(self, *args: Any, release: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()


async def queues_collection(request: Request) -> Response:
    # One route for both methods, so that a 405 elsewhere lists both in its Allow header.
    return await (start_sync(request) if request.method == "POST" else list_queues(request))


ROUTES = [
    Route("/api/v1/sync/queues", queues_collection, methods=["GET", "POST"]),
    Route("/api/v1/sync/queues/{queue_id}", get_queue, methods=["GET"]),
    Route("/api/v1/sync/queues/{queue_id}/lines", list_lines, methods=["GET"]),
    Route("/api/v1/sync/queues/{queue_id}/activity", list_activity, methods=["GET"]),
    Route("/api/v1/sync/queues/{queue_id}/events", events, methods=["GET"]),
    Route("/api/v1/sync/queues/{queue_id}/retry", retry, methods=["POST"]),
    Route("/api/v1/sync/queues/{queue_id}/cancel", cancel, methods=["POST"]),
    Route("/api/v1/sync/queues/{queue_id}/pause", pause, methods=["POST"]),
    Route("/api/v1/sync/queues/{queue_id}/resume", resume, methods=["POST"]),
]
