"""/healthz, /readyz, /metrics and /openapi.json: no authentication."""

from __future__ import annotations

import asyncio
import logging
import time

from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.status.context import StatusContext
from services.status.http import JSONResponse
from services.status.openapi import openapi_document
from services.status.request_context import context
from shared.repository import sweeps, sync_queues
from shared.db import translate_db_error

log = logging.getLogger(__name__)
READY_TIMEOUT_S = 2.0


async def healthz(request: Request) -> Response:
    # Liveness: the event loop answers. Dependencies belong to readiness, or a database outage
    # would make Kubernetes restart every replica for nothing.
    return JSONResponse({"ok": True})


async def readiness(ctx: StatusContext) -> tuple[bool, str]:
    """Postgres answers a query and the RabbitMQ connection is up, within READY_TIMEOUT_S."""
    try:
        await asyncio.wait_for(ctx.pool.fetchval("SELECT 1"), READY_TIMEOUT_S)
    except asyncio.TimeoutError:
        return False, f"PostgreSQL did not answer within {READY_TIMEOUT_S:g} s"
    except Exception as exc:
        if translate_db_error(exc) is None:
            log.exception("readiness probe: unexpected database error")
        return False, f"PostgreSQL does not answer: {type(exc).__name__}: {exc}"
    connection = ctx.amqp_connection
    connected = getattr(connection, "connected", None)  # robust connections: an Event, cleared while reconnecting
    if connection.is_closed or (connected is not None and not connected.is_set()) or ctx.channel.is_closed:
        return False, "RabbitMQ connection is down (reconnecting)"
    return True, ""


async def readyz(request: Request) -> Response:
    ok, reason = await readiness(context(request))
    if ok:
        return JSONResponse({"ok": True})
    return JSONResponse({"ok": False, "reason": reason}, status_code=503)


async def metrics(request: Request) -> Response:
    ctx = context(request)
    now = time.monotonic()
    if now - ctx._gauge_refreshed_at >= ctx.queue_gauge_max_age_s:
        try:
            counts, fleet = await asyncio.wait_for(_gauge_values(ctx), READY_TIMEOUT_S)
        except Exception as exc:  # a scrape still answers with the last values and the HTTP metrics
            if translate_db_error(exc) is None and not isinstance(exc, asyncio.TimeoutError):
                raise
            log.warning("cannot refresh woosync_queue_lines and the sweep gauges (%s); serving the last values", exc)
        else:
            for state, count in counts.items():
                ctx.metrics.queue_lines.labels(state).set(count)
            ctx.metrics.sweep_oldest_age.set(fleet.oldest_age_s)
            ctx.metrics.sweeps_overdue.set(fleet.overdue_stores)
            ctx._gauge_refreshed_at = now
    return Response(generate_latest(ctx.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _gauge_values(ctx: StatusContext) -> tuple[dict[str, int], sweeps.FleetFreshness]:
    """The database-wide figures behind the gauges: lines of unfinished queues by state, and the
    freshness of the stores with an incremental schedule."""
    async with ctx.pool.acquire() as conn:
        return (await sync_queues.line_counts_by_state_of_unfinished_queues(conn), await sweeps.fleet_freshness(conn))


async def openapi(request: Request) -> Response:
    return JSONResponse(openapi_document())


ROUTES = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/openapi.json", openapi, methods=["GET"]),
]
