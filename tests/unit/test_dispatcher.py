"""The dispatcher outlives what one round meets: a round that fails is logged and the next one
runs (a task that ended would leave every sync's draft lines unpublished, silently)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from services.producer import dispatcher as dispatcher_module
from services.producer.dispatcher import Dispatcher
from shared.metrics import Metrics
from shared.settings import Settings

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("failure", [
    asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.exceptions._base.InternalClientError("cannot switch to state 15; another operation (2) is in progress"),
    ValueError("a bug"),
], ids=["connection-lost", "internal-client-error", "unexpected"])
async def test_a_failed_round_is_followed_by_the_next_one(monkeypatch, failure: Exception) -> None:
    rounds = 0
    stop = asyncio.Event()

    async def next_window(pool, *, window, skip):
        nonlocal rounds
        rounds += 1
        if rounds == 1:
            raise failure
        stop.set()
        return None

    async def no_stale_lines(pool, *, older_than_s, limit):
        return []

    monkeypatch.setattr(dispatcher_module.dispatch, "queue_next_window", next_window)
    monkeypatch.setattr(dispatcher_module.dispatch, "stale_queued_lines", no_stale_lines)
    settings = Settings(dispatch_window=10, dispatch_interval_s=0.01)
    await asyncio.wait_for(Dispatcher(None, None, settings, Metrics()).run(stop), timeout=10)
    assert rounds == 2
