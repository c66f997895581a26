"""Running an asyncio service: the event loop (uvloop where installed) and the stop signal."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine
from typing import Any


def run_service(service: Coroutine[Any, Any, int]) -> int:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; a slower loop still works
        return asyncio.run(service)
    return uvloop.run(service)


def stop_event() -> asyncio.Event:
    """An event set by the first SIGTERM or SIGINT (Kubernetes' stop, Ctrl-C)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop
