"""Resuming an interrupted enumeration: lines recorded but perhaps never published."""

from __future__ import annotations

from uuid import UUID

import asyncpg
from aio_pika.abc import AbstractChannel

from shared import amqp
from shared.messages import CustomerLine
from shared.repository import queue_lines


async def republish_draft_lines(pool: asyncpg.Pool, channel: AbstractChannel, queue_id: UUID, org_id: UUID,
                                store_id: UUID, *, page_size: int = 500) -> int:
    """Publish every draft line of the queue again, a page at a time in woo_customer_id order
    (memory stays flat); returns how many were published."""
    after = 0
    published = 0
    while True:
        async with pool.acquire() as conn:
            lines = await queue_lines.pending_lines(conn, queue_id, org_id, limit=page_size, after_woo_customer_id=after)
        if not lines:
            return published
        published += await amqp.publish_customer_lines(
            channel,
            [CustomerLine.from_recorded(line, store_id=store_id) for line in lines],
        )
        after = lines[-1].woo_customer_id
