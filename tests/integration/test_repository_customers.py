"""Upserting customers in batches against a real PostgreSQL (docs/contract.md section 5 identity rules)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import datetime, timezone
from decimal import Decimal

import asyncpg
import pytest

from shared.repository.customers import EmailTaken, upsert_customers, upsert_customers_isolating_taken_emails
from shared.mapping import CustomerRow

pytestmark = pytest.mark.integration

STORE = "http://shop.example"


def row(woo_id: int, email: str, **changes) -> CustomerRow:
    base = CustomerRow(
        email=email, name=f"Customer {woo_id}", phone=None, company=None, segment="individual",
        status="prospect", lifetime_value=Decimal("12.30"),
        acquisition_date=datetime(2025, 1, 1, tzinfo=timezone.utc),
        last_interaction_date=datetime(2025, 2, 1, tzinfo=timezone.utc),
        address={"street": "", "city": "", "state": "", "postal_code": "", "country": ""},
        metadata={"woocommerce_id": woo_id, "store_url": STORE}, tags=["woocommerce", "prospect"],
        woo_customer_id=woo_id, store_url=STORE,
    )
    return replace(base, **changes)


@pytest.fixture
async def org(db_pool: asyncpg.Pool) -> uuid.UUID:
    return await db_pool.fetchval("INSERT INTO organization (name) VALUES ('acme') RETURNING id")


async def upsert(pool: asyncpg.Pool, org: uuid.UUID, *rows: CustomerRow):
    async with pool.acquire() as conn, conn.transaction():
        return await upsert_customers(conn, [(org, r) for r in rows])


async def test_new_customers_are_inserted_and_known_ones_updated(db_pool, org):
    first = await upsert(db_pool, org, row(1, "a@x.io"), row(2, "b@x.io"))
    assert [c.was_update for c in first] == [False, False]
    again = await upsert(db_pool, org, row(2, "b@x.io", name="Bee"), row(3, "c@x.io"))
    assert [c.was_update for c in again] == [True, False]
    assert again[0].customer_id == first[1].customer_id
    assert await db_pool.fetchval("SELECT name FROM customer WHERE id = $1", first[1].customer_id) == "Bee"
    assert await db_pool.fetchval("SELECT count(*) FROM customer") == 3


async def test_same_store_customer_keeps_its_row_when_its_email_changes(db_pool, org):
    [before] = await upsert(db_pool, org, row(7, "old@x.io"))
    [after] = await upsert(db_pool, org, row(7, "new@x.io"))
    assert after == replace(before, was_update=True)
    assert await db_pool.fetchval("SELECT email FROM customer WHERE id = $1", before.customer_id) == "new@x.io"


async def test_a_row_with_the_same_email_from_elsewhere_is_updated_and_linked(db_pool, org):
    existing = await db_pool.fetchval(
        "INSERT INTO customer (org_id, email, name, tags) VALUES ($1, 'Mixed@X.io', 'CRM', '{vip,active}') RETURNING id", org
    )
    [result] = await upsert(db_pool, org, row(9, "mixed@x.io"))
    assert result.customer_id == existing and result.was_update
    record = await db_pool.fetchrow("SELECT tags, woo_customer_id, woo_store_url FROM customer WHERE id = $1", existing)
    # The CRM's own tag stays; the sync-owned ones are recomputed ("active" was not earned).
    assert record["tags"] == ["vip", "woocommerce", "prospect"]
    assert (record["woo_customer_id"], record["woo_store_url"]) == (9, STORE)


async def test_one_batch_may_carry_the_same_email_twice(db_pool, org):
    results = await upsert(db_pool, org, row(1, "dup@x.io"), row(2, "dup@x.io", name="Second"))
    assert results[0].customer_id == results[1].customer_id
    assert [r.was_update for r in results] == [False, True]
    assert await db_pool.fetchval("SELECT count(*) FROM customer") == 1


async def test_organisations_do_not_share_customers(db_pool, org):
    other = await db_pool.fetchval("INSERT INTO organization (name) VALUES ('other') RETURNING id")
    [a] = await upsert(db_pool, org, row(1, "same@x.io"))
    [b] = await upsert(db_pool, other, row(1, "same@x.io"))
    assert a.customer_id != b.customer_id and not b.was_update


async def test_concurrent_upserts_of_the_same_customers_make_one_row_each(db_pool, org):
    rows = [row(i, f"c{i}@x.io") for i in range(1, 201)]
    await asyncio.gather(*(upsert(db_pool, org, *rows) for _ in range(6)))
    assert await db_pool.fetchval("SELECT count(*) FROM customer") == 200


async def test_an_email_taken_by_another_row_is_refused(db_pool, org):
    await upsert(db_pool, org, row(1, "one@x.io"), row(2, "two@x.io"))
    with pytest.raises(asyncpg.UniqueViolationError) as caught:
        await upsert(db_pool, org, row(1, "two@x.io"))
    assert caught.value.constraint_name == "customer_org_email_key"


async def test_a_taken_email_fails_only_its_own_row_when_isolated(db_pool, org):
    await upsert(db_pool, org, row(1, "one@x.io"), row(2, "two@x.io"))
    async with db_pool.acquire() as conn, conn.transaction():
        results = await upsert_customers_isolating_taken_emails(
            conn, [(org, row(3, "three@x.io")), (org, row(1, "two@x.io")), (org, row(4, "four@x.io"))])
    assert results[1] == EmailTaken("two@x.io")
    assert [r.was_update for r in (results[0], results[2])] == [False, False]
    emails = await db_pool.fetchval("SELECT array_agg(email ORDER BY email) FROM customer")
    assert emails == ["four@x.io", "one@x.io", "three@x.io", "two@x.io"]
