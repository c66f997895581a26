"""The producer's background work in-process, for tests that hand requests to its handler: the
page worker (a full sync's pages) and the dispatcher (publishing recorded lines)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg
from aio_pika.abc import AbstractChannel

from services.producer.dispatcher import Dispatcher
from services.producer.page_worker import PageWorker
from shared.metrics import Metrics
from shared.settings import Settings
from shared.woocommerce.budget import FleetBudgets


@contextlib.asynccontextmanager
async def page_work_and_dispatch(pool: asyncpg.Pool, channel: AbstractChannel, settings: Settings, *,
                                 dispatch: bool = True) -> AsyncIterator[PageWorker]:
    """A page worker (and with `dispatch` a dispatcher) running while the block runs."""
    stop = asyncio.Event()
    metrics = Metrics()
    worker = PageWorker(pool, settings, metrics, FleetBudgets(pool, default_rate=settings.store_rate_limit, metrics=metrics))
    tasks = [asyncio.create_task(worker.run(stop))]
    if dispatch:
        tasks.append(asyncio.create_task(Dispatcher(pool, channel, settings, metrics).run(stop)))
    try:
        yield worker
    finally:
        stop.set()
        await asyncio.gather(*tasks)
