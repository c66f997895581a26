"""What every route reads off its request: the service's StatusContext and the authenticated caller."""

from __future__ import annotations

from starlette.requests import Request

from services.status.auth import Caller, authenticate
from services.status.context import StatusContext


def context(request: Request) -> StatusContext:
    return request.app.state.context


async def caller_of(request: Request) -> Caller:
    """The caller the request's API token names (NotAuthenticated otherwise), on a connection
    held only for the check."""
    async with context(request).pool.acquire() as conn:
        return await authenticate(conn, request)
