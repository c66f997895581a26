"""Organisations (tenants) and their API tokens.

A token is "wsk_" + 43 url-safe characters (256 random bits). Only its SHA-256 digest and a
short prefix (to recognise it in a list) are stored: the clear token is shown once, at creation.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from uuid import UUID

import asyncpg

from shared.db import transaction
from shared.errors import PermanentError

TOKEN_SCHEME = "wsk_"
_PREFIX_LENGTH = len(TOKEN_SCHEME) + 8
# Anything much shorter or longer than a minted token is refused before touching the database.
_TOKEN_LENGTH_RANGE = (len(TOKEN_SCHEME) + 16, len(TOKEN_SCHEME) + 128)
# last_used_at is bookkeeping, not an audit log: write it at most this often per token.
_LAST_USED_RESOLUTION = "1 minute"


class DuplicateOrganization(PermanentError):
    """An organisation with this id already exists."""


class InvalidOrganizationName(PermanentError):
    pass


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def mint_token() -> str:
    return TOKEN_SCHEME + secrets.token_urlsafe(32)



async def create_organization(
    conn: asyncpg.Connection | asyncpg.Pool, *, name: str, org_id: UUID | None = None
) -> tuple[UUID, str]:
    """Register an organisation and mint its first API token: (org_id, clear token).

    Raises DuplicateOrganization when `org_id` is taken, InvalidOrganizationName for a blank name.
    """
    name = name.strip()
    if not name:
        raise InvalidOrganizationName("an organisation needs a non-blank name")
    async with transaction(conn) as tx:
        try:
            created = await tx.fetchval(
                "INSERT INTO organization (id, name) VALUES (coalesce($1, gen_random_uuid()), $2) RETURNING id",
                org_id,
                name,
            )
        except asyncpg.UniqueViolationError:
            raise DuplicateOrganization(f"organisation {org_id} already exists") from None
        token = await _insert_token(tx, created, label="created with the organisation")
    return created, token


async def create_token(conn: asyncpg.Connection | asyncpg.Pool, org_id: UUID, *, label: str | None = None) -> str:
    """Mint another API token for an existing organisation; returns the clear token."""
    async with transaction(conn) as tx:
        return await _insert_token(tx, org_id, label=label)


async def _insert_token(conn: asyncpg.Connection, org_id: UUID, *, label: str | None) -> str:
    token = mint_token()
    await conn.execute(
        "INSERT INTO api_token (org_id, token_hash, token_prefix, label) VALUES ($1, $2, $3, $4)",
        org_id,
        token_digest(token),
        token[:_PREFIX_LENGTH],
        label,
    )
    return token


def _plausible(token: str) -> bool:
    low, high = _TOKEN_LENGTH_RANGE
    return isinstance(token, str) and token.startswith(TOKEN_SCHEME) and low <= len(token) <= high


async def authenticate_token(conn: asyncpg.Connection | asyncpg.Pool, token: str) -> UUID | None:
    """The organisation of a valid, unrevoked token; None for anything else."""
    if not _plausible(token):
        return None
    digest = token_digest(token)
    row = await conn.fetchrow(
        f"""
        WITH found AS (
            SELECT id, org_id, token_hash, last_used_at FROM api_token
            WHERE token_hash = $1 AND revoked_at IS NULL
        ), touched AS (
            UPDATE api_token t SET last_used_at = now()
              FROM found
             WHERE t.id = found.id
               AND (found.last_used_at IS NULL OR found.last_used_at < now() - interval '{_LAST_USED_RESOLUTION}')
        )
        SELECT org_id, token_hash FROM found
        """,
        digest,
    )
    # The lookup is by digest (an index probe); comparing again in constant time costs nothing.
    if row is None or not hmac.compare_digest(bytes(row["token_hash"]), digest):
        return None
    return row["org_id"]


async def revoke_token(conn: asyncpg.Connection | asyncpg.Pool, token: str) -> bool:
    """Revoke a token; True if it was valid until now."""
    if not _plausible(token):
        return False
    revoked = await conn.fetchval(
        "UPDATE api_token SET revoked_at = now() WHERE token_hash = $1 AND revoked_at IS NULL RETURNING id",
        token_digest(token),
    )
    return revoked is not None


async def organization_exists(conn: asyncpg.Connection | asyncpg.Pool, org_id: UUID) -> bool:
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM organization WHERE id = $1)", org_id))
