"""Bearer tokens: each API token belongs to one organisation and sees only its queues."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

import asyncpg
from starlette.requests import Request

from services.status.errors import NotAuthenticated
from shared.organizations import TOKEN_SCHEME, authenticate_token

# Enough of a token to recognise it in the activity log (as stored in api_token.token_prefix),
# far too little to use it.
TOKEN_PREFIX_LENGTH = len(TOKEN_SCHEME) + 8
_REQUESTED_BY_ROOM = 200


@dataclass(frozen=True)
class Caller:
    org_id: UUID
    token_prefix: str

    def actor(self, requested_by: str | None = None) -> str:
        """Who asked, for the activity log: the token's prefix, and the caller's own words
        (shortened so the whole fits the 255 characters a sync request allows)."""
        actor = f"api token {self.token_prefix}…"
        if not requested_by:
            return actor
        if len(requested_by) > _REQUESTED_BY_ROOM:
            requested_by = requested_by[: _REQUESTED_BY_ROOM - 1] + "…"
        return f"{requested_by} via {actor}"


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization")
    if header is None:
        raise NotAuthenticated("missing Authorization header: send 'Authorization: Bearer <api_token>'")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("malformed Authorization header: expected 'Bearer <api_token>'")
    return token.strip()


async def authenticate(conn: asyncpg.Connection | asyncpg.Pool, request: Request) -> Caller:
    token = bearer_token(request)
    org_id = await authenticate_token(conn, token)
    if org_id is None:
        raise NotAuthenticated("invalid or revoked API token")
    return Caller(org_id=org_id, token_prefix=token[:TOKEN_PREFIX_LENGTH])
