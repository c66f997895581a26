"""Set-up shared by the tests of the data layer (shared/repository/): organisations, queues with
draft lines, and the true line counts to check the trigger-kept counters against."""

from __future__ import annotations

import uuid

import asyncpg

from shared.organizations import create_organization
from shared.repository import queue_lines, sync_queues
from shared.states import LINE_STATES


async def new_org(pool: asyncpg.Pool, name: str = "Acme") -> uuid.UUID:
    org_id, _ = await create_organization(pool, name=name)
    return org_id


async def new_queue(
    pool: asyncpg.Pool, org_id: uuid.UUID, *, key: str | None = None, customers: int = 0
) -> tuple[sync_queues.QueueStatus, list[uuid.UUID]]:
    """A queue of the organisation with `customers` draft lines (woo ids 1..customers); their ids in that order."""
    queue, _ = await sync_queues.find_or_create_queue(
        pool, org_id=org_id, queue_name="nightly", idempotency_key=key, store_id=None,
        store_url="https://shop.example.com", created_by="tests", options={"role": "all"},
    )
    lines = await queue_lines.add_lines(pool, queue_id=queue.id, org_id=org_id, customers=[(n, customer(n)) for n in range(1, customers + 1)])
    return queue, [line_id for line_id, _ in sorted(lines, key=lambda pair: pair[1])]


def customer(n: int) -> dict:
    return {"id": n, "email": f"customer{n}@example.com", "first_name": "Ada", "meta_data": [{"key": "k", "value": n}]}


async def status(pool: asyncpg.Pool, queue: sync_queues.QueueStatus) -> sync_queues.QueueStatus:
    found = await sync_queues.queue_status(pool, queue.id, queue.org_id)
    assert found is not None
    return found


async def true_counts(pool: asyncpg.Pool, queue_id: uuid.UUID) -> dict[str, int]:
    rows = await pool.fetch("SELECT state, count(*) FROM woo_customer_sync_queue_line WHERE queue_id = $1 GROUP BY state", queue_id)
    return {state: 0 for state in LINE_STATES} | {row["state"]: row["count"] for row in rows}


def counts(queue: sync_queues.QueueStatus) -> dict[str, int]:
    return {state: getattr(queue, f"{state}_count") for state in LINE_STATES}


async def line_states(pool: asyncpg.Pool, line_ids: list[uuid.UUID]) -> list[str]:
    rows = await pool.fetch("SELECT id, state FROM woo_customer_sync_queue_line WHERE id = ANY($1::uuid[])", line_ids)
    by_id = {row["id"]: row["state"] for row in rows}
    return [by_id[line_id] for line_id in line_ids]
