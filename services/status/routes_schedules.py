"""/api/v1/sync/schedules: a store's periodic incremental sweep and periodic full sync
(docs/contract.md section 10, "Schedules"), run by the producers' schedulers.

- PUT sets one schedule of a store the organisation has synced (creates or updates it);
- GET lists the organisation's schedules with their last and next runs;
- DELETE removes a store's schedule of one kind, or both.

A schedule runs with the credentials the store last accepted (woo_store), so only a store an
earlier sync of the organisation verified can have one: any other answers 409, saying to sync it
first. As on every route the token is checked first and only the token's organisation is seen.
The request and answer models are here (not in schemas.py) since only these routes use them;
the OpenAPI document takes them from here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.status.errors import InvalidRequest, InvalidRequestBody
from services.status.http import ok, only_query, page, page_params, parse_body
from services.status.request_context import caller_of, context
from services.status.schemas import page_of
from shared.messages import STORE_URL_MAX_LENGTH, STORE_URL_PATTERN, normal_store_url
from shared.repository import schedules
from shared.states import QueueState

ScheduleKind = Literal["incremental", "full"]
# As schemas.py's requests: unknown fields refused, patterns checked as schema tools check them.
_STRICT = ConfigDict(extra="forbid", regex_engine="python-re")


class ScheduleRequest(BaseModel):
    """PUT /api/v1/sync/schedules: set one schedule of a store the organisation has synced."""

    model_config = _STRICT

    store_url: str = Field(max_length=STORE_URL_MAX_LENGTH, pattern=STORE_URL_PATTERN,
                           description="the store's base URL, as its syncs name it", examples=["https://shop.example.com"])
    kind: ScheduleKind = Field(description="incremental: a sweep of what changed since the last one; full: a full sync")
    every_s: int | None = Field(
        default=None, ge=schedules.MIN_EVERY_S, le=schedules.MAX_EVERY_S,
        description="seconds between runs, at least 60; required to create a schedule, kept when omitted",
    )
    enabled: bool = Field(default=True, description="false keeps the schedule but runs it no more")


class SyncSchedule(BaseModel):
    """A store's schedule: when it runs next, and what its last run did."""

    store_url: str
    kind: ScheduleKind
    every_s: int = Field(ge=schedules.MIN_EVERY_S)
    enabled: bool
    next_run_at: datetime = Field(description="when the next run is due (a disabled schedule's is not run)")
    last_run_at: datetime | None = Field(description="when the last sync request was published")
    last_queue_key: str | None = Field(description="that request's idempotency key")
    last_queue_id: UUID | None = Field(description="its sync queue, once the producer created it")
    last_queue_state: QueueState | None
    last_error: str | None = Field(description="why the last run failed or was skipped; null after a run published")
    created_at: datetime
    updated_at: datetime


class SchedulesDeleted(BaseModel):
    deleted: int = Field(ge=0, description="schedules deleted (0 when there was none)")


SchedulePage = page_of(SyncSchedule, "SchedulePage")


def schedule_json(schedule: schedules.Schedule) -> dict[str, Any]:
    return {
        "store_url": schedule.store_url,
        "kind": schedule.kind,
        "every_s": schedule.every_s,
        "enabled": schedule.enabled,
        "next_run_at": schedule.next_run_at.isoformat(),
        "last_run_at": schedule.last_run_at.isoformat() if schedule.last_run_at else None,
        "last_queue_key": schedule.last_queue_key,
        "last_queue_id": str(schedule.last_queue_id) if schedule.last_queue_id else None,
        "last_queue_state": schedule.last_queue_state,
        "last_error": schedule.last_error,
        "created_at": schedule.created_at.isoformat() if schedule.created_at else None,
        "updated_at": schedule.updated_at.isoformat() if schedule.updated_at else None,
    }


def _store_url(value: str, *, field: str) -> str:
    try:
        return normal_store_url(value)
    except ValueError as exc:
        raise InvalidRequestBody(f"invalid request body: {field}: {exc}",
                                 details=[{"field": field, "message": str(exc)}]) from None


async def set_schedule(request: Request) -> Response:
    ctx = context(request)
    caller = await caller_of(request)
    only_query(request)
    body = await parse_body(request, ScheduleRequest)
    assert body is not None
    url = _store_url(body.store_url, field="store_url")
    async with ctx.pool.acquire() as conn:
        store_id = await schedules.synced_store(conn, caller.org_id, url)
        schedule = await schedules.set_schedule(conn, org_id=caller.org_id, store_id=store_id, kind=body.kind,
                                                every_s=body.every_s, enabled=body.enabled)
    if schedule is None:
        message = f"every_s is required to create the {body.kind} schedule of {url}: seconds between runs, at least 60"
        raise InvalidRequestBody(f"invalid request body: {message}",
                                 details=[{"field": "every_s", "message": message}])
    return ok(schedule_json(schedule))


async def list_schedules(request: Request) -> Response:
    ctx = context(request)
    caller = await caller_of(request)
    limit, offset = page_params(request)
    async with ctx.pool.acquire() as conn:
        found = await schedules.list_schedules(conn, caller.org_id, limit=limit + 1, offset=offset)
    return ok(page([schedule_json(schedule) for schedule in found], limit=limit, offset=offset))


async def delete_schedules(request: Request) -> Response:
    ctx = context(request)
    caller = await caller_of(request)
    only_query(request, "store_url", "kind")
    raw_url = request.query_params.get("store_url")
    if not raw_url:
        raise InvalidRequest("query parameter store_url is required: the store whose schedule to delete")
    try:
        url = normal_store_url(raw_url)
    except ValueError as exc:
        raise InvalidRequest(f"query parameter store_url {exc}") from None
    kind = request.query_params.get("kind")
    if kind is not None and kind not in schedules.KINDS:
        raise InvalidRequest(f"query parameter kind must be one of {', '.join(schedules.KINDS)} (or left out for "
                             f"both), got {kind[:64]!r}")
    async with ctx.pool.acquire() as conn:
        try:
            store_id = await schedules.synced_store(conn, caller.org_id, url)
        except schedules.StoreNotSynced:
            return ok({"deleted": 0})  # a store never synced has no schedule
        deleted = await schedules.delete_schedules(conn, caller.org_id, store_id, kind=kind)
    return ok({"deleted": deleted})


async def schedules_collection(request: Request) -> Response:
    # One route for every method, so that a 405 lists them all in its Allow header.
    handler = {"PUT": set_schedule, "DELETE": delete_schedules}.get(request.method, list_schedules)  # GET, HEAD
    return await handler(request)


ROUTES = [
    Route("/api/v1/sync/schedules", schedules_collection, methods=["GET", "PUT", "DELETE"]),
]
