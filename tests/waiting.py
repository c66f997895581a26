"""Waiting for asynchronous effects: poll with a deadline, never a fixed sleep."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T] | T], *, timeout: float = 30.0, interval: float = 0.1,
                     what: str = "condition") -> T:
    """Call `probe()` (awaiting it when it is a coroutine function) until it returns a truthy
    value, and return that value; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = probe()
        if inspect.isawaitable(last):
            last = await last
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}; last value: {last!r}")
        await asyncio.sleep(interval)
