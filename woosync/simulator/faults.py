"""Fault injection: the slowness, throttling and failures real stores and their hosts produce.

Host-level faults (429s, 502/503/504 from the proxy, a request rate limit, a 429 storm) strike before
WordPress sees the request, as they do in front of a real store: they hit every route and come
with the proxy's HTML bodies, not JSON. A PHP fatal error (500) comes from WordPress itself, with
its JSON "critical error" body. `fail-orders-*` make chosen customers' orders always fail: the
poison lines a sync must dead-letter after its retries.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from woosync.simulator.config import SimulatorConfig


@dataclass(frozen=True, slots=True)
class HostFault:
    """A response produced in front of WordPress."""

    status: int
    reason: str
    retry_after_s: int | None = None

    def html(self) -> bytes:
        return (
            f"<html>\r\n<head><title>{self.status} {self.reason}</title></head>\r\n<body>\r\n"
            f"<center><h1>{self.status} {self.reason}</h1></center>\r\n<hr><center>nginx</center>\r\n"
            "</body>\r\n</html>\r\n"
        ).encode()


# Shares of each 5xx among injected errors (a PHP fatal is a 500 with WordPress' JSON body).
_SERVER_ERRORS = ((500, 0.4), (502, 0.2), (503, 0.3), (504, 0.1))
PHP_FATAL = 500


class TokenBucket:
    """A request rate limit with a burst of one second's worth."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self._tokens = self.capacity
        self._clock = clock
        self._updated = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


class FaultInjector:
    def __init__(self, config: SimulatorConfig, *, rng: random.Random | None = None, worker: int = 0) -> None:
        self.config = config
        seed = config.fault_seed if config.fault_seed is not None else config.seed
        self._rng = rng or random.Random(f"faults:{seed}:{worker}")
        # With several worker processes each gets its share of the rate.
        self._bucket = TokenBucket(config.max_rps / config.workers) if config.max_rps > 0 else None
        self._clock = time.monotonic
        self._arrivals: deque[float] = deque()  # arrivals of the last second
        self._busiest_second = 0  # most requests that arrived within any one second
        self._arrived = 0
        self._storm_until: float | None = None
        low, high = config.latency_ms
        self._latency = (low / 1000.0, high / 1000.0)
        self._per_item_s = config.latency_per_item_ms / 1000.0

    async def delay(self, items: int = 0) -> None:
        """The store's thinking time: the base latency plus a cost per listed item."""
        low, high = self._latency
        seconds = (low if low == high else self._rng.uniform(low, high)) + items * self._per_item_s
        if seconds > 0:
            await asyncio.sleep(seconds)

    def host_fault(self) -> HostFault | int | None:
        """A fault decided before WordPress runs: a HostFault, PHP_FATAL (500 from WordPress), or None."""
        config = self.config
        now = self._count_arrival()
        if config.storm_after and config.storm_s > 0:
            if self._storm_until is None and self._arrived > config.storm_after:
                self._storm_until = now + config.storm_s
            if self._storm_until is not None and now < self._storm_until:
                return HostFault(429, "Too Many Requests", config.retry_after_s)
        if self._bucket is not None and not self._bucket.take():
            return HostFault(429, "Too Many Requests", max(1, math.ceil(1 / self._bucket.rate)))
        if config.rate_limit_rate or config.error_rate:
            draw = self._rng.random()
            if draw < config.rate_limit_rate:
                return HostFault(429, "Too Many Requests", config.retry_after_s)
            if draw < config.rate_limit_rate + config.error_rate:
                status = self._server_error_status()
                if status == PHP_FATAL:
                    return PHP_FATAL
                reason = {502: "Bad Gateway", 503: "Service Temporarily Unavailable", 504: "Gateway Time-out"}[status]
                return HostFault(status, reason, config.retry_after_s if status == 503 else None)
        return None

    def _count_arrival(self) -> float:
        now = self._clock()
        self._arrived += 1
        arrivals = self._arrivals
        arrivals.append(now)
        while arrivals[0] <= now - 1.0:
            arrivals.popleft()
        self._busiest_second = max(self._busiest_second, len(arrivals))
        return now

    def rate_stats(self) -> dict[str, object]:
        """What the host saw of the request rate: the most requests within any one second (a
        sliding window over arrivals), and the storm's state."""
        return {"busiest_second": self._busiest_second, "arrived": self._arrived,
                "storm_started": self._storm_until is not None}

    def _server_error_status(self) -> int:
        draw = self._rng.random()
        for status, share in _SERVER_ERRORS:
            if draw < share:
                return status
            draw -= share
        return _SERVER_ERRORS[-1][0]
