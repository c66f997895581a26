"""What the status service's routes share, built once by the composition root (main.py) or a test."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg
from aio_pika.abc import AbstractChannel, AbstractConnection

from services.status.sse import EventStreamSlots, QueueWatchHub
from shared.metrics import Metrics
from shared.settings import Settings
from shared.woocommerce.client import WooCommerceClient


@dataclass
class StatusContext:
    settings: Settings
    pool: asyncpg.Pool
    amqp_connection: AbstractConnection
    channel: AbstractChannel  # publisher confirms, on_return_raises (shared.amqp.open_publisher_channel)
    metrics: Metrics
    hub: QueueWatchHub
    # Event streams open per organisation on this process (WOOSYNC_ORG_MAX_EVENT_STREAMS).
    event_streams: EventStreamSlots = field(default_factory=EventStreamSlots)
    heartbeat_s: float = 15.0  # SSE keep-alive comment interval
    # /metrics refreshes the woosync_queue_lines gauge at most this often (one aggregate query).
    queue_gauge_max_age_s: float = 1.0
    _gauge_refreshed_at: float = field(default=0.0, repr=False)
    # Builds the store client of the seeds' connection test on `start` (tests pass a fake store).
    store_client: Callable[..., WooCommerceClient] = WooCommerceClient
