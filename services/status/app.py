"""The status API as a Starlette app, built from a StatusContext (so tests pass their own).

Routes and actions raise domain errors (services.status.errors, shared.errors); this module alone
turns them into HTTP answers, through EXCEPTION_HANDLERS and its table of ERROR_ANSWERS.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.status import (
    routes_jobs, routes_ops, routes_preview, routes_queues, routes_schedules, routes_seed, routes_stores,
)
from services.status.console import routes as console_routes
from services.status.context import StatusContext
from services.status.errors import (
    BrokerUnavailable,
    InvalidRequest,
    InvalidRequestBody,
    JobAlreadyFinished,
    JobCancelled,
    JobNotFound,
    NoSyncedStores,
    NotAuthenticated,
    OrganizationMismatch,
    QueueAlreadyFinished,
    QueueCancelled,
    QueueNotFound,
    RequestTooLarge,
    StoreConnectionFailed,
    StoreListedTwice,
    SyncStartRateExceeded,
    TooManyEventStreams,
)
from services.status.http import error_response
from shared.db import translate_db_error
from shared.errors import DatabaseUnavailable, TooManyOpenSyncs, UnknownOrganization
from shared.metrics import Metrics
from shared.organizations import OrganizationDisabled
from shared.repository.schedules import StoreNotSynced

log = logging.getLogger(__name__)


class RequestMetrics:
    """Counts and times every request by route template (never the raw path: ids would make
    the label set unbounded)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.metrics.http_requests.labels(template, scope["method"], str(status)).inc()
            self.metrics.http_request_seconds.labels(template).observe(time.perf_counter() - started)


@dataclass(frozen=True)
class ErrorAnswer:
    """How the API answers one kind of error: its status, any extra headers, and fixed words
    where the error's own would tell the caller more than it should hear."""

    status: int
    headers: Mapping[str, str] | None = None
    message: str | None = None


_BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="woosync"'}

# Every domain error a route or action raises, and its answer in the error envelope
# (docs/contract.md section 7). The body is {"success": false, "error": <the error's message>}
# with the error's `details` when it has them, and a Retry-After header when the error has a
# `retry_after_s`.
ERROR_ANSWERS: dict[type[Exception], ErrorAnswer] = {
    InvalidRequest: ErrorAnswer(400),
    NotAuthenticated: ErrorAnswer(401, headers=_BEARER_CHALLENGE),
    UnknownOrganization: ErrorAnswer(401, message="the API token's organisation is no longer registered"),
    OrganizationMismatch: ErrorAnswer(403),
    OrganizationDisabled: ErrorAnswer(403),
    QueueNotFound: ErrorAnswer(404),
    JobNotFound: ErrorAnswer(404),
    QueueCancelled: ErrorAnswer(409),
    QueueAlreadyFinished: ErrorAnswer(409),
    JobCancelled: ErrorAnswer(409),
    JobAlreadyFinished: ErrorAnswer(409),
    NoSyncedStores: ErrorAnswer(409),
    StoreListedTwice: ErrorAnswer(409),
    StoreNotSynced: ErrorAnswer(409),  # a schedule's store: sync it first
    RequestTooLarge: ErrorAnswer(413),
    InvalidRequestBody: ErrorAnswer(422),
    # Limits per organisation; the rate limit's error carries its Retry-After (retry_after_s).
    SyncStartRateExceeded: ErrorAnswer(429),
    TooManyOpenSyncs: ErrorAnswer(429),
    TooManyEventStreams: ErrorAnswer(429),
    BrokerUnavailable: ErrorAnswer(503),
    # The seeds' start: the store failed its connection test; the seed's own status for it.
    StoreConnectionFailed: ErrorAnswer(500),
}


def error_answer(exc: Exception) -> ErrorAnswer:
    """The answer of the most specific class of `exc` in ERROR_ANSWERS (KeyError if none)."""
    for kind in type(exc).__mro__:
        answer = ERROR_ANSWERS.get(kind)
        if answer is not None:
            return answer
    raise KeyError(type(exc).__name__)


async def _domain_error(request: Request, exc: Exception) -> Response:
    answer = error_answer(exc)
    headers = dict(answer.headers) if answer.headers else None
    retry_after_s = getattr(exc, "retry_after_s", None)
    if retry_after_s is not None:
        headers = {**(headers or {}), "Retry-After": str(retry_after_s)}
    return error_response(answer.status, answer.message or str(exc), details=getattr(exc, "details", None),
                          headers=headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    messages = {404: f"no route {request.url.path}", 405: f"method {request.method} is not allowed on {request.url.path}"}
    return error_response(exc.status_code, messages.get(exc.status_code, str(exc.detail)), headers=exc.headers)


async def _dependency_error(request: Request, exc: Exception) -> Response:
    """The database (or the broker's confirm) is unavailable: 503, try again; anything else
    is a bug and goes on to the 500 handler with its traceback."""
    unavailable = translate_db_error(exc)
    if unavailable is None and not isinstance(exc, asyncio.TimeoutError):
        raise exc
    log.warning("%s %s: %s; answering 503", request.method, request.url.path, unavailable or "timed out")
    return error_response(503, "a dependency is unavailable (database or message broker); try again shortly",
                          headers={"Retry-After": "2"})


async def _server_error(request: Request, exc: Exception) -> Response:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal error: the status service failed to answer; see its log")


# The one handler table: Starlette answers an exception with the handler of its most specific
# class here.
EXCEPTION_HANDLERS: dict[Any, Any] = {
    **{kind: _domain_error for kind in ERROR_ANSWERS},
    HTTPException: _http_error,  # no such route (404) or method (405)
    DatabaseUnavailable: _dependency_error,
    asyncpg.PostgresError: _dependency_error,
    asyncpg.InterfaceError: _dependency_error,
    OSError: _dependency_error,
    asyncio.TimeoutError: _dependency_error,
    Exception: _server_error,
}


def create_app(ctx: StatusContext) -> Starlette:
    app = Starlette(
        routes=[*routes_ops.ROUTES, *routes_queues.ROUTES, *routes_preview.ROUTES, *routes_jobs.ROUTES, *routes_seed.ROUTES,
                *routes_schedules.ROUTES, *routes_stores.ROUTES, *console_routes.ROUTES],
        middleware=[Middleware(RequestMetrics, metrics=ctx.metrics)],
        exception_handlers=EXCEPTION_HANDLERS,
    )
    app.state.context = ctx
    return app
