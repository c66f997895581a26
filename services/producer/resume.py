"""Resuming an interrupted enumeration: lines recorded but perhaps never published."""

from __future__ import annotations

from uuid import UUID

import asyncpg
from aio_pika.abc import AbstractChannel

from shared import amqp, queue_repository
from shared.messages import CustomerLine


async def republish_draft_lines(pool: asyncpg.Pool, channel: AbstractChannel, queue_id: UUID, org_id: UUID,
                                store_id: UUID, *, page_size: int = 500) -> int:
    """Publish every draft line of the queue again, a page at a time (memory stays flat)."""
    after = 0
    published = 0
    while True:
        async with pool.acquire() as conn:
            lines = await queue_repository.pending_lines(conn, queue_id, org_id, limit=page_size, after_woo_customer_id=after)
        if not lines:
            return published
        published += await amqp.publish_customer_lines(
            channel,
            [CustomerLine(line_id=line.line_id, queue_id=queue_id, org_id=org_id, store_id=store_id,
                          woo_customer_id=line.woo_customer_id, customer=line.customer_data) for line in lines],
        )
        after = lines[-1].woo_customer_id


async def draft_lines_of(conn: asyncpg.Connection, queue_id: UUID, org_id: UUID, woo_customer_ids: list[int]) -> list[tuple[UUID, int]]:
    """(line id, woo customer id) of the given customers' lines that are still in draft."""
    rows = await conn.fetch(
        "SELECT id, woo_customer_id FROM woo_customer_sync_queue_line "
        "WHERE queue_id = $1 AND org_id = $2 AND woo_customer_id = ANY($3::bigint[]) AND state = 'draft'",
        queue_id, org_id, woo_customer_ids)
    return [(row["id"], row["woo_customer_id"]) for row in rows]
