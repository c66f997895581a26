"""PostgreSQL access: the connection pool every service uses, and the one place where asyncpg's
errors are sorted into "the database is unavailable, try again" and everything else.
"""

from __future__ import annotations

import asyncio
import decimal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import orjson

from shared.errors import DatabaseUnavailable

# SQLSTATEs after which the same work can succeed once the server is back or the conflict is gone.
_RETRYABLE_SQLSTATES = {
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
    "53300",  # too_many_connections
    "55P03",  # lock_not_available (lock_timeout)
    "57014",  # query_canceled (statement_timeout)
    "57P01",  # admin_shutdown
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now (starting up, in recovery)
}
_RETRYABLE_SQLSTATE_CLASSES = ("08",)  # connection_exception and its subclasses


def _json_default(value: Any) -> Any:
    # orjson knows UUID and datetime; Decimal is the one type our documents may carry besides.
    if isinstance(value, decimal.Decimal):
        return str(value)
    raise TypeError(f"cannot store a {type(value).__name__} as JSON")


def encode_json(value: Any) -> bytes:
    return orjson.dumps(value, default=_json_default, option=orjson.OPT_NON_STR_KEYS)


async def register_codecs(conn: asyncpg.Connection) -> None:
    """jsonb and json columns and parameters become dicts and lists (orjson both ways).

    jsonb uses the binary wire format: a version byte (1) followed by the JSON text, which
    saves the server a text round trip. numeric stays Decimal (asyncpg's default).
    """
    await conn.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        format="binary",
        encoder=lambda value: b"\x01" + encode_json(value),
        decoder=lambda data: orjson.loads(data[1:]),
    )
    await conn.set_type_codec(
        "json",
        schema="pg_catalog",
        format="binary",
        encoder=encode_json,
        decoder=orjson.loads,
    )


async def create_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    init: Callable[[asyncpg.Connection], Awaitable[None]] | None = None,
    **kw: Any,
) -> asyncpg.Pool:
    """A pool whose every connection speaks JSON as Python objects. Extra keywords go to
    asyncpg.create_pool; an `init` of the caller's runs after the codecs are registered.

    Cannot connect -> DatabaseUnavailable (retryable), with the cause chained.
    """

    async def _init(conn: asyncpg.Connection) -> None:
        await register_codecs(conn)
        if init is not None:
            await init(conn)

    try:
        pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, init=_init, **kw)
    except Exception as exc:
        translated = translate_db_error(exc)
        if translated is None:
            raise
        raise translated from exc
    assert pool is not None
    return pool


async def connect(dsn: str, *, timeout: float = 10.0) -> asyncpg.Connection:
    """One connection with the same codecs as the pool (for CLI commands and tools)."""
    try:
        conn = await asyncpg.connect(dsn, timeout=timeout)
    except Exception as exc:
        translated = translate_db_error(exc)
        if translated is None:
            raise
        raise translated from exc
    await register_codecs(conn)
    return conn


def translate_db_error(exc: BaseException) -> DatabaseUnavailable | None:
    """DatabaseUnavailable for failures that may go away by themselves (connection lost or
    refused, server shutting down or starting, too many connections, serialization failure,
    deadlock, lock or statement timeout); None for everything else, which callers re-raise.
    """
    if isinstance(exc, DatabaseUnavailable):
        return exc
    if isinstance(exc, asyncpg.PostgresError):
        sqlstate = getattr(exc, "sqlstate", None) or ""
        if sqlstate in _RETRYABLE_SQLSTATES or sqlstate.startswith(_RETRYABLE_SQLSTATE_CLASSES):
            return DatabaseUnavailable(f"database unavailable ({sqlstate} {type(exc).__name__}): {exc}")
        return None
    if isinstance(exc, asyncpg.exceptions.ConnectionDoesNotExistError):
        return DatabaseUnavailable(f"database connection lost: {exc}")
    if isinstance(exc, asyncpg.InterfaceError) and "connection is closed" in str(exc):
        return DatabaseUnavailable(f"database connection lost: {exc}")
    # A connection the server terminated mid-operation sometimes surfaces as asyncpg's internal
    # protocol-state error ("cannot switch to state ...") instead (seen in ~1 in 15 kills here).
    if isinstance(exc, asyncpg.exceptions.InternalClientError):
        return DatabaseUnavailable(f"database connection broken: {exc}")
    # Refused, reset, unreachable host, DNS failure; and a connect() that timed out.
    if isinstance(exc, (OSError, asyncio.TimeoutError, ConnectionError)):
        return DatabaseUnavailable(f"cannot reach the database: {type(exc).__name__}: {exc}")
    return None


@asynccontextmanager
async def transaction(conn: asyncpg.Connection | asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A transaction on `conn`, or on a connection taken from it when it is a pool."""
    if isinstance(conn, asyncpg.Pool):
        async with conn.acquire() as acquired, acquired.transaction():
            yield acquired
    else:
        async with conn.transaction():
            yield conn
