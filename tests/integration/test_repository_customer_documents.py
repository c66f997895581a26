"""shared.repository.customer_documents against a real PostgreSQL: recording a page's lines keeps
each customer's latest document per store (the mirror incremental sweeps read), in the same
statement, and nothing for a cancelled queue or another store."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from shared.repository import customer_documents, queue_lines, stores, sync_queues
from tests.integration.repository_setup import customer, new_org

pytestmark = pytest.mark.integration


async def store_queue(pool: asyncpg.Pool, org_id: uuid.UUID, url: str, key: str) -> tuple[uuid.UUID, uuid.UUID]:
    store_id = await stores.record_store(pool, org_id=org_id, url=url, consumer_key="ck_x", consumer_secret="cs_x",
                                         cipher=None)
    queue, _ = await sync_queues.find_or_create_queue(
        pool, org_id=org_id, queue_name="nightly", idempotency_key=key, store_id=store_id, store_url=url,
        created_by="tests", options={"role": "all"})
    return store_id, queue.id


def changed(n: int, name: str) -> dict:
    return {**customer(n), "first_name": name}


async def test_recorded_lines_keep_each_customers_latest_document_per_store(db_pool: asyncpg.Pool) -> None:
    org_id = await new_org(db_pool)
    store_id, first = await store_queue(db_pool, org_id, "https://a.example", "first")
    other_store, other = await store_queue(db_pool, org_id, "https://b.example", "other")

    # One page holding customer 2 twice: the later document is the one kept.
    await queue_lines.add_lines(db_pool, queue_id=first, org_id=org_id,
                                customers=[(1, customer(1)), (2, customer(2)), (2, changed(2, "Grace"))])
    await queue_lines.add_lines(db_pool, queue_id=other, org_id=org_id, customers=[(1, changed(1, "Other"))])
    assert await customer_documents.documents_of(db_pool, store_id, [1, 2, 3]) == {1: customer(1), 2: changed(2, "Grace")}
    assert await customer_documents.documents_of(db_pool, other_store, [1, 2]) == {1: changed(1, "Other")}

    # A later sync of the store (a sweep, a webhook's one-customer sync) replaces the document.
    _, later = await store_queue(db_pool, org_id, "https://a.example", "later")
    await queue_lines.add_lines(db_pool, queue_id=later, org_id=org_id, customers=[(1, changed(1, "Ada II"))])
    assert await customer_documents.documents_of(db_pool, store_id, [1]) == {1: changed(1, "Ada II")}
    seen_by = await db_pool.fetchval(
        "SELECT seen_by_queue FROM woo_customer_document WHERE store_id = $1 AND woo_customer_id = 1", store_id)
    assert seen_by == later


async def test_a_cancelled_queue_records_no_document(db_pool: asyncpg.Pool) -> None:
    org_id = await new_org(db_pool)
    store_id, queue_id = await store_queue(db_pool, org_id, "https://c.example", "cancelled")
    await sync_queues.cancel_queue(db_pool, queue_id, org_id, cancelled_by="ops")
    assert await queue_lines.add_lines(db_pool, queue_id=queue_id, org_id=org_id, customers=[(5, customer(5))]) == []
    assert await customer_documents.documents_of(db_pool, store_id, [5]) == {}


async def test_another_organisations_queue_records_no_document(db_pool: asyncpg.Pool) -> None:
    org_id, intruder = await new_org(db_pool), await new_org(db_pool, "Intruder")
    store_id, queue_id = await store_queue(db_pool, org_id, "https://d.example", "mine")
    assert await queue_lines.add_lines(db_pool, queue_id=queue_id, org_id=intruder, customers=[(7, customer(7))]) == []
    assert await customer_documents.documents_of(db_pool, store_id, [7]) == {}


async def test_a_customer_the_store_deleted_is_not_taken_from_the_mirror(db_pool: asyncpg.Pool) -> None:
    """A sweep asks the store for it again (a deleted customer is not listed) instead of syncing its old document."""
    org_id = await new_org(db_pool)
    store_id, queue_id = await store_queue(db_pool, org_id, "https://e.example", "deleted")
    await queue_lines.add_lines(db_pool, queue_id=queue_id, org_id=org_id, customers=[(8, customer(8)), (9, customer(9))])
    for woo_id, metadata in ((8, {"woo_deleted": {"by": "webhook customer.deleted"}}), (9, {"note": "kept"})):
        await db_pool.execute(
            "INSERT INTO customer (org_id, email, name, woo_store_url, woo_customer_id, metadata) "
            "VALUES ($1, $2, 'Ada', 'https://e.example', $3, $4)", org_id, f"customer{woo_id}@example.com", woo_id, metadata)
    assert await customer_documents.documents_of(db_pool, store_id, [8, 9]) == {9: customer(9)}
