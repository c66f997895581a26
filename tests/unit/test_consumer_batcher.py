"""The consumer's micro-batcher on its own: a batch leaves when it is full or when its linger
runs out, never holds more than its size, and at most `max_in_flight` batches run at once."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from services.consumer.batcher import Batcher
from tests.waiting import eventually

pytestmark = pytest.mark.unit


class Recorder:
    """A batch handler that records each batch (and when it came) and can be held."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.started_at: list[float] = []
        self.running = 0
        self.most_running = 0
        self.release = asyncio.Event()
        self.release.set()

    async def __call__(self, batch: list[int]) -> None:
        self.batches.append(batch)
        self.started_at.append(time.monotonic())
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await self.release.wait()
        finally:
            self.running -= 1


@contextlib.asynccontextmanager
async def batching(handled: Recorder, *, size: int, linger_s: float, max_in_flight: int) -> AsyncIterator[Batcher]:
    """A batcher whose batching loop runs for the block."""
    batcher = Batcher(handled, size=size, linger_s=linger_s, max_in_flight=max_in_flight)  # type: ignore[arg-type]
    task = asyncio.create_task(batcher.run())
    try:
        yield batcher
    finally:
        task.cancel()


async def add(batcher: Batcher, messages) -> None:
    for message in messages:
        await batcher.add(message)


async def test_a_full_batch_leaves_at_once_without_waiting_for_the_linger():
    handled = Recorder()
    async with batching(handled, size=3, linger_s=60.0, max_in_flight=2) as batcher:
        await add(batcher, range(3))
        await eventually(lambda: handled.batches, timeout=5, what="the full batch")
    assert handled.batches == [[0, 1, 2]]


async def test_a_partial_batch_leaves_when_its_linger_runs_out():
    handled = Recorder()
    linger_s = 0.2
    async with batching(handled, size=100, linger_s=linger_s, max_in_flight=2) as batcher:
        added_at = time.monotonic()
        await add(batcher, [1, 2])
        await eventually(lambda: handled.batches, timeout=5, what="the lingering batch")
    assert handled.batches == [[1, 2]]
    assert handled.started_at[0] - added_at >= linger_s * 0.9  # it waited for company first


async def test_a_batch_never_holds_more_than_its_size_and_keeps_delivery_order():
    handled = Recorder()
    handled.release.clear()  # the first batch holds the only slot while the rest arrive
    async with batching(handled, size=3, linger_s=0.01, max_in_flight=1) as batcher:
        await add(batcher, range(10))
        await eventually(lambda: handled.batches, timeout=5, what="the first batch")
        handled.release.set()
        await eventually(lambda: sum(map(len, handled.batches)) == 10, timeout=5, what="every message handled")
    assert all(len(batch) <= 3 for batch in handled.batches)
    assert [m for batch in handled.batches for m in batch] == list(range(10))


async def test_no_more_batches_run_at_once_than_max_in_flight():
    handled = Recorder()
    handled.release.clear()
    async with batching(handled, size=2, linger_s=0.01, max_in_flight=2) as batcher:
        await add(batcher, range(8))
        await eventually(lambda: handled.running == 2, timeout=5, what="two batches at work")
        assert len(handled.batches) == 2 and batcher.busy  # the other messages wait for a slot
        handled.release.set()
        await eventually(lambda: not batcher.busy, timeout=5, what="the batcher to go idle")
    assert handled.most_running == 2 and sum(map(len, handled.batches)) == 8


async def test_drain_hands_over_the_partial_batch_at_once_and_waits_for_it():
    handled = Recorder()
    batcher = Batcher(handled, size=100, linger_s=60.0, max_in_flight=2)  # type: ignore[arg-type]
    loop = asyncio.create_task(batcher.run())
    await batcher.add(1)  # type: ignore[arg-type]
    await asyncio.wait_for(batcher.drain(), 5)  # a linger of 60 s would time this out
    assert handled.batches == [[1]] and not batcher.busy
    await asyncio.wait_for(loop, 5)  # the batching loop ends after the drain
