"""Organisations (tenants), their API tokens, and the broker users that publish for them.

A token is "wsk_" + 43 url-safe characters (256 random bits). Only its SHA-256 digest and a
short prefix (to recognise it in a list) are stored: the clear token is shown once, at creation.
A revoked token authenticates nobody from the next request on; a disabled organisation's tokens
are refused (OrganizationDisabled) and its sync requests dead-lettered until it is enabled again.

Publishers (organization_publisher): the RabbitMQ users allowed to publish sync requests for an
organisation, checked against the request's `user_id` property, which RabbitMQ guarantees is
the publishing connection's user (docs/contract.md section 4). An organisation with none accepts
requests from any user of the vhost.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
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


class OrganizationDisabled(PermanentError):
    """A valid API token of an organisation an operator disabled (`woosync org disable`)."""

    def __init__(self, org_id: UUID) -> None:
        super().__init__(
            f"organisation {org_id} is disabled: its API tokens are refused until the woosync operator enables it again"
        )
        self.org_id = org_id


class OrganizationNotFound(PermanentError):
    """No organisation by that id or name, or a name several organisations share."""


class TokenNotFound(PermanentError):
    """No token of the organisation matches, or a prefix matches several."""


class InvalidPublisher(PermanentError):
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
    """The organisation of a valid, unrevoked token; None for anything else. A valid token of a
    disabled organisation raises OrganizationDisabled."""
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
        SELECT found.org_id, found.token_hash, organization.disabled_at
          FROM found JOIN organization ON organization.id = found.org_id
        """,
        digest,
    )
    # The lookup is by digest (an index probe); comparing again in constant time costs nothing.
    if row is None or not hmac.compare_digest(bytes(row["token_hash"]), digest):
        return None
    if row["disabled_at"] is not None:
        raise OrganizationDisabled(row["org_id"])
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


# --- Operators' view (woosync org ...) ----------------------------------------------------------


@dataclass(frozen=True)
class Organization:
    id: UUID
    name: str
    created_at: datetime
    disabled_at: datetime | None
    active_tokens: int
    publishers: int


@dataclass(frozen=True)
class TokenRecord:
    id: UUID
    token_prefix: str
    label: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


_ORGANIZATIONS = """
    SELECT o.id, o.name, o.created_at, o.disabled_at,
           (SELECT count(*) FROM api_token t WHERE t.org_id = o.id AND t.revoked_at IS NULL) AS active_tokens,
           (SELECT count(*) FROM organization_publisher p WHERE p.org_id = o.id) AS publishers
      FROM organization o
"""


async def list_organizations(conn: asyncpg.Connection | asyncpg.Pool) -> list[Organization]:
    rows = await conn.fetch(_ORGANIZATIONS + " ORDER BY o.created_at, o.id")
    return [Organization(**dict(row)) for row in rows]


async def find_organization(conn: asyncpg.Connection | asyncpg.Pool, ref: str) -> Organization:
    """The organisation an operator named: by id, or by its exact name when no other has it.
    OrganizationNotFound otherwise (naming the ids to choose from when a name is shared)."""
    try:
        org_id = UUID(ref.strip())
    except ValueError:
        rows = await conn.fetch(_ORGANIZATIONS + " WHERE o.name = $1 ORDER BY o.created_at", ref.strip())
        if len(rows) > 1:
            ids = ", ".join(str(row["id"]) for row in rows)
            raise OrganizationNotFound(f"{len(rows)} organisations are named {ref.strip()!r}: name one by id ({ids})") from None
    else:
        rows = await conn.fetch(_ORGANIZATIONS + " WHERE o.id = $1", org_id)
    if not rows:
        raise OrganizationNotFound(f"no organisation {ref.strip()!r} (woosync org list shows them)")
    return Organization(**dict(rows[0]))


async def set_organization_disabled(conn: asyncpg.Connection | asyncpg.Pool, org_id: UUID, disabled: bool) -> bool:
    """Disable (or enable) an organisation; True if that changed anything."""
    changed = await conn.fetchval(
        """
        UPDATE organization SET disabled_at = CASE WHEN $2 THEN now() END
         WHERE id = $1 AND (disabled_at IS NOT NULL) <> $2
        RETURNING id
        """,
        org_id,
        disabled,
    )
    return changed is not None


async def list_tokens(conn: asyncpg.Connection | asyncpg.Pool, org_id: UUID) -> list[TokenRecord]:
    rows = await conn.fetch(
        """
        SELECT id, token_prefix, label, created_at, last_used_at, revoked_at FROM api_token
         WHERE org_id = $1 ORDER BY created_at, id
        """,
        org_id,
    )
    return [TokenRecord(**dict(row)) for row in rows]


async def revoke_organization_token(
    conn: asyncpg.Connection | asyncpg.Pool, org_id: UUID, *, token_id: UUID | None = None, prefix: str | None = None
) -> tuple[TokenRecord, bool]:
    """Revoke one of the organisation's tokens, named by id or by the prefix `woosync org token
    list` shows: (the token, whether it was valid until now). TokenNotFound when none matches,
    or when a prefix matches several live tokens."""
    if (token_id is None) == (prefix is None):
        raise ValueError("name the token by id or by prefix")
    async with transaction(conn) as tx:
        if token_id is not None:
            rows = await tx.fetch("SELECT id FROM api_token WHERE org_id = $1 AND id = $2 FOR UPDATE", org_id, token_id)
            named = f"id {token_id}"
        else:
            rows = await tx.fetch(
                "SELECT id FROM api_token WHERE org_id = $1 AND token_prefix = $2 ORDER BY revoked_at IS NULL DESC FOR UPDATE",
                org_id, prefix,
            )
            live = await tx.fetchval(
                "SELECT count(*) FROM api_token WHERE org_id = $1 AND token_prefix = $2 AND revoked_at IS NULL", org_id, prefix
            )
            if live > 1:
                raise TokenNotFound(f"{live} live tokens of organisation {org_id} start with {prefix!r}: name one by --token-id")
            named = f"prefix {prefix!r}"
        if not rows:
            raise TokenNotFound(f"organisation {org_id} has no token with {named} (woosync org token list shows them)")
        revoked = await tx.fetchval(
            "UPDATE api_token SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL RETURNING id", rows[0]["id"]
        )
        row = await tx.fetchrow(
            "SELECT id, token_prefix, label, created_at, last_used_at, revoked_at FROM api_token WHERE id = $1", rows[0]["id"]
        )
    return TokenRecord(**dict(row)), revoked is not None


# --- Publishers: which broker users may publish sync requests for an organisation --------------


def _publisher_name(amqp_user: str) -> str:
    if not amqp_user or amqp_user != amqp_user.strip() or len(amqp_user) > 255:
        raise InvalidPublisher(f"not a RabbitMQ user name: {amqp_user!r} (1-255 characters, no surrounding spaces)")
    return amqp_user


async def allow_publisher(conn: asyncpg.Connection | asyncpg.Pool, org_id: UUID, amqp_user: str) -> bool:
    """Let a RabbitMQ user publish sync requests for the organisation; True if it was not allowed yet."""
    added = await conn.fetchval(
        "INSERT INTO organization_publisher (org_id, amqp_user) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING org_id",
        org_id,
        _publisher_name(amqp_user),
    )
    return added is not None


async def revoke_publisher(conn: asyncpg.Connection | asyncpg.Pool, org_id: UUID, amqp_user: str) -> bool:
    """Stop a RabbitMQ user publishing for the organisation; True if it was allowed until now."""
    removed = await conn.fetchval(
        "DELETE FROM organization_publisher WHERE org_id = $1 AND amqp_user = $2 RETURNING org_id", org_id, amqp_user
    )
    return removed is not None


async def list_publishers(conn: asyncpg.Connection | asyncpg.Pool, org_id: UUID) -> list[str]:
    rows = await conn.fetch("SELECT amqp_user FROM organization_publisher WHERE org_id = $1 ORDER BY amqp_user", org_id)
    return [row["amqp_user"] for row in rows]


@dataclass(frozen=True)
class SyncRequestPolicy:
    """What the producer checks of a sync request's organisation before serving it."""

    disabled: bool
    publishers: frozenset[str]

    def allows_publisher(self, user_id: str | None, *, service_user: str) -> bool:
        """With no publishers registered, anyone on the broker (trust-everyone mode); else the
        request's `user_id` must be one of them, or woosync's own service user (the status API
        and the CLI publish as it)."""
        if not self.publishers:
            return True
        return user_id is not None and (user_id == service_user or user_id in self.publishers)


async def sync_request_policy(conn: asyncpg.Connection | asyncpg.Pool, org_id: UUID) -> SyncRequestPolicy | None:
    """The organisation's policy for sync requests; None when it is not registered."""
    row = await conn.fetchrow(
        """
        SELECT o.disabled_at IS NOT NULL AS disabled,
               coalesce(array_agg(p.amqp_user) FILTER (WHERE p.amqp_user IS NOT NULL), '{}') AS publishers
          FROM organization o LEFT JOIN organization_publisher p ON p.org_id = o.id
         WHERE o.id = $1
         GROUP BY o.id
        """,
        org_id,
    )
    if row is None:
        return None
    return SyncRequestPolicy(disabled=row["disabled"], publishers=frozenset(row["publishers"]))
