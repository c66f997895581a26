"""Opening a service's connections at start-up.

A service started before its database or broker (a Kubernetes rollout, `docker compose up`)
waits for them, logging what it waits for, for up to WOOSYNC_STARTUP_TIMEOUT_S; a problem that
waiting cannot fix (a database that does not exist or has no woosync tables) stops it at once.
Either way the operator gets one line that names the problem and the fix, not a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import aio_pika
import asyncpg
from aio_pika.abc import AbstractRobustConnection

from shared import amqp
from shared.db import create_pool
from shared.errors import DatabaseUnavailable, StartupError
from shared.settings import Settings, mask_url

log = logging.getLogger(__name__)
T = TypeVar("T")


class StopRequested(Exception):
    """SIGTERM/SIGINT arrived while waiting: stop quietly (exit 0)."""


async def open_database(settings: Settings, stop: asyncio.Event | None = None) -> asyncpg.Pool:
    url = settings.database_url.get_secret_value()
    where = f"PostgreSQL at {mask_url(url)} (WOOSYNC_DATABASE_URL)"

    async def attempt() -> asyncpg.Pool:
        try:
            return await create_pool(url, min_size=settings.db_pool_min, max_size=settings.db_pool_max)
        except asyncpg.InvalidCatalogNameError:
            raise StartupError(f"{where}: the database does not exist; create it with 'woosync migrate'") from None
        except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError) as exc:
            raise StartupError(f"{where} refused the credentials: {exc}") from None

    pool = await _waiting_for(where, attempt, (DatabaseUnavailable,), settings.startup_timeout_s, stop)
    try:
        if await pool.fetchval("SELECT to_regclass('woo_customer_sync_queue')") is None:
            raise StartupError(f"{where} has no woosync tables: run 'woosync migrate' first")
    except BaseException:
        await pool.close()
        raise
    return pool


async def open_broker(settings: Settings, name: str, stop: asyncio.Event | None = None) -> AbstractRobustConnection:
    url = settings.amqp_url.get_secret_value()
    where = f"RabbitMQ at {mask_url(url)} (WOOSYNC_AMQP_URL)"

    async def attempt() -> AbstractRobustConnection:
        try:
            return await amqp.connect(url, name=name)
        except aio_pika.exceptions.ProbableAuthenticationError as exc:
            raise StartupError(f"{where} refused the credentials or the vhost: {exc}") from None
        except aio_pika.exceptions.InvalidFrameError:
            # The broker closes the connection instead of opening it: a vhost that does not exist
            # or that the user may not use (aiormq drops the broker's reason).
            raise StartupError(f"{where} closed the connection while opening it: does the vhost in the URL "
                               "exist, and may this user use it?") from None

    return await _waiting_for(where, attempt, (aio_pika.exceptions.AMQPConnectionError, OSError, asyncio.TimeoutError),
                              settings.startup_timeout_s, stop)


async def _waiting_for(where: str, attempt: Callable[[], Awaitable[T]], transient: tuple[type[BaseException], ...],
                       timeout_s: float, stop: asyncio.Event | None) -> T:
    deadline = time.monotonic() + timeout_s
    delay = 0.5
    while True:
        try:
            return await attempt()
        except transient as exc:
            if time.monotonic() + delay > deadline:
                raise StartupError(f"cannot reach {where} after {timeout_s:g} s: {exc}. Is it running? "
                                   "(WOOSYNC_STARTUP_TIMEOUT_S sets how long to wait)") from None
            log.warning("waiting for %s: %s; trying again in %.1f s", where, exc, delay)
            try:
                await asyncio.wait_for((stop or asyncio.Event()).wait(), delay)
            except asyncio.TimeoutError:
                pass
            else:
                raise StopRequested(f"stopped while waiting for {where}")
            delay = min(delay * 2, 5.0)


@contextlib.asynccontextmanager
async def open_connections(settings: Settings, name: str,
                           stop: asyncio.Event) -> AsyncIterator[tuple[asyncpg.Pool, AbstractRobustConnection]]:
    """The database pool and the broker connection of a worker service, in that order; both are
    closed on leaving, whatever ends the service (use it with the service's AsyncExitStack)."""
    pool = await open_database(settings, stop)
    try:
        connection = await open_broker(settings, name=name, stop=stop)
        try:
            yield pool, connection
        finally:
            await connection.close()
    finally:
        await pool.close()


async def connections_ready(pool: asyncpg.Pool, connection: AbstractRobustConnection) -> tuple[bool, str]:
    """Readiness of a worker service: its broker connection is up and PostgreSQL answers."""
    if connection.is_closed:
        return False, "RabbitMQ connection is down"
    try:
        await pool.fetchval("SELECT 1", timeout=3)
    except Exception as exc:
        return False, f"PostgreSQL does not answer: {type(exc).__name__}"
    return True, "ok"
