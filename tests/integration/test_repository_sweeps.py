"""shared.repository.sweeps against a real PostgreSQL: a sync that completed its enumeration moves
the store's watermark forward (never back); a preview moves nothing, so the changes it saw are
still there for the next sweep to sync."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from shared.repository import queue_lines, stores, sweeps, sync_queues
from tests.integration.repository_setup import customer, new_org

pytestmark = pytest.mark.integration


async def a_queue(pool: asyncpg.Pool, org_id: uuid.UUID, store_id: uuid.UUID, key: str, *, kind: str = "sync") -> uuid.UUID:
    queue, _ = await sync_queues.find_or_create_queue(
        pool, org_id=org_id, queue_name="sweep", idempotency_key=key, store_id=store_id, store_url="https://s.example",
        created_by="tests", options={"role": "all", "mode": "incremental"}, kind=kind)
    return queue.id


async def test_a_sync_moves_the_watermark_forward_and_a_preview_does_not_move_it(db_pool: asyncpg.Pool) -> None:
    org_id = await new_org(db_pool)
    store_id = await stores.record_store(db_pool, org_id=org_id, url="https://s.example", consumer_key="ck_x",
                                         consumer_secret="cs_x", cipher=None)
    first = await a_queue(db_pool, org_id, store_id, "first")
    await queue_lines.add_lines(db_pool, queue_id=first, org_id=org_id, customers=[(7, customer(7)), (3, customer(3))])
    await sweeps.record_sweep(db_pool, store_id=store_id, org_id=org_id, queue_id=first)
    swept = await sweeps.last_sweep(db_pool, store_id)
    created = await db_pool.fetchval("SELECT created_at FROM woo_customer_sync_queue WHERE id = $1", first)
    assert swept is not None and swept.watermark == created and swept.highest_customer_id == 7

    preview = await a_queue(db_pool, org_id, store_id, "preview", kind="preview")
    await queue_lines.add_lines(db_pool, queue_id=preview, org_id=org_id, customers=[(9, customer(9))])
    await sweeps.record_sweep(db_pool, store_id=store_id, org_id=org_id, queue_id=preview)
    assert await sweeps.last_sweep(db_pool, store_id) == swept

    later = await a_queue(db_pool, org_id, store_id, "later")
    await sweeps.record_sweep(db_pool, store_id=store_id, org_id=org_id, queue_id=later)
    moved = await sweeps.last_sweep(db_pool, store_id)
    assert moved.watermark > swept.watermark and moved.highest_customer_id == 7  # no line: never lower
