"""/api/v1/sync/stores: the organisation's stores and how current each is in Postgres
(docs/contract.md section 10, "Freshness"): when its last sweep completed, the seconds since,
and whether its incremental schedule is overdue. The answer's model is here (only this route
uses it); the OpenAPI document takes it from here."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.status.auth import authenticate
from services.status.http import ok, page, page_params
from services.status.presenters import store_freshness_json
from services.status.request_context import context
from services.status.schemas import page_of
from shared.repository import sweeps


class StoreFreshness(BaseModel):
    """A store of the organisation and how current its customers are in Postgres."""

    store_id: UUID
    url: str
    last_sweep_at: datetime | None = Field(
        description="when its last incremental sweep, or full bulk sync of the whole store, completed its "
                    "enumeration; null when none has")
    seconds_since_sweep: float | None = Field(description="seconds since last_sweep_at")
    watermark: datetime | None = Field(description="the next sweep asks for orders modified after this (less the overlap)")
    sweep_every_s: int | None = Field(description="the enabled incremental schedule's interval; null without one")
    sweep_overdue: bool = Field(
        description="the store has an enabled incremental schedule and its last sweep (or, never swept, the "
                    f"schedule's creation) is older than {sweeps.OVERDUE_INTERVALS} intervals and "
                    f"{sweeps.OVERDUE_MIN_S} s")


StorePage = page_of(StoreFreshness, "StorePage")


async def list_stores(request: Request) -> Response:
    ctx = context(request)
    async with ctx.pool.acquire() as conn:
        caller = await authenticate(conn, request)
        limit, offset = page_params(request)
        found = await sweeps.freshness(conn, caller.org_id, limit=limit + 1, offset=offset)
    return ok(page([store_freshness_json(store) for store in found], limit=limit, offset=offset))


ROUTES = [Route("/api/v1/sync/stores", list_stores, methods=["GET"])]
