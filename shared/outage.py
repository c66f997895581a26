"""Waiting out a database outage: the one backoff loop every service uses.

A write that fails because PostgreSQL is away (connection lost or refused, server restarting,
serialization failure, ...: `shared.db.translate_db_error`) is tried again after a pause that
doubles up to a ceiling, for as long as the outage lasts. Everything else is raised at once.
The caller's work stays unsettled meanwhile (an unacked message), so a crash loses nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from shared.db import translate_db_error

log = logging.getLogger(__name__)
T = TypeVar("T")


async def wait_out_database_outage(
    attempt: Callable[[], Awaitable[T]],
    *,
    doing: str,
    first_delay_s: float = 0.5,
    max_delay_s: float = 10.0,
    also_retry: tuple[type[BaseException], ...] = (),
) -> T:
    """`await attempt()` until it succeeds while the database is unavailable. `doing` names the
    work in the log line ("recording dead line ..."); `also_retry` lists further exceptions
    worth running the same work again for (a deadlock, a concurrent insert)."""
    delay = first_delay_s
    while True:
        try:
            return await attempt()
        except Exception as exc:
            unavailable = translate_db_error(exc)
            if unavailable is None and not isinstance(exc, also_retry):
                raise
            log.warning("%s did not go through (%s): will try again in %.1f s",
                        doing, unavailable or type(exc).__name__, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay_s)
