"""A sync's plan and its enumeration's pages (sql/005_order_mirror.sql; docs/contract.md section 10).

The plan is kept on the queue row: the order strategy chosen, how many pages of customers and of
orders the store has and how many are done, and the store requests the sync has made. Each page
of the enumeration is a row of `woo_sync_page`, recorded done in the transaction that commits its
work: a page is never done twice, and one not done is taken again. A full sync's pages are page
work (sql/014_page_work.sql, below): pending, leased by one producer, or done; the plan's
counters follow the pages in batches (`flush_page_counts`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal
from uuid import UUID

from shared.db import transaction as _transaction
from shared.repository import orders, sweeps, sync_queues
from shared.repository.sql import Executor

BULK = "bulk"
PER_CUSTOMER = "per_customer"
OrderStrategy = Literal["bulk", "per_customer"]
PageKind = Literal["customers", "orders"]


@dataclass(frozen=True, slots=True)
class Plan:
    order_strategy: str | None
    customer_pages_total: int | None
    customer_pages_done: int
    order_pages_total: int | None
    order_pages_done: int
    store_requests: int
    orders_mirrored: bool


async def order_strategies(conn: Executor, queue_ids: Iterable[UUID]) -> dict[UUID, str | None]:
    """Each queue's order strategy (None: not chosen yet, or a queue from before the mirror)."""
    rows = await conn.fetch("SELECT id, order_strategy FROM woo_customer_sync_queue WHERE id = ANY($1::uuid[])",
                            list(queue_ids))
    return {row["id"]: row["order_strategy"] for row in rows}


async def set_plan(conn: Executor, queue_id: UUID, org_id: UUID, *, order_strategy: str, options: Mapping,
                   customer_pages_total: int | None, order_pages_total: int | None, store_requests: int) -> None:
    """Record the strategy chosen (also in the queue's resolved `options`) and the pages ahead.
    Kept when a plan is already recorded (a redelivered request resumes the same plan)."""
    await conn.execute(
        """
        UPDATE woo_customer_sync_queue
           SET order_strategy = $3, options = options || $4::jsonb,
               customer_pages_total = $5, order_pages_total = $6, store_requests = store_requests + $7
         WHERE id = $1 AND org_id = $2 AND order_strategy IS NULL
        """,
        queue_id, org_id, order_strategy, dict(options), customer_pages_total, order_pages_total, store_requests,
    )


async def plan_of(conn: Executor, queue_id: UUID) -> Plan | None:
    row = await conn.fetchrow(
        """
        SELECT order_strategy, customer_pages_total, customer_pages_done, order_pages_total, order_pages_done,
               store_requests, orders_mirrored
          FROM woo_customer_sync_queue WHERE id = $1
        """, queue_id)
    return Plan(**dict(row)) if row is not None else None


async def done_pages(conn: Executor, queue_id: UUID, kind: PageKind) -> set[int]:
    rows = await conn.fetch("SELECT page FROM woo_sync_page WHERE queue_id = $1 AND kind = $2", queue_id, kind)
    return {row["page"] for row in rows}


async def record_page_done(conn: Executor, queue_id: UUID, kind: PageKind, page: int, *, row_count: int,
                           store_requests: int = 1) -> bool:
    """Record a page as done, with the store requests it took; False when it already was (then
    nothing changes). Call it in the transaction that committed the page's work."""
    inserted = await conn.fetchval(
        """
        INSERT INTO woo_sync_page (queue_id, kind, page, row_count) VALUES ($1, $2, $3, $4)
        ON CONFLICT DO NOTHING RETURNING true
        """,
        queue_id, kind, page, row_count,
    )
    if not inserted:
        return False
    column = "customer_pages_done" if kind == "customers" else "order_pages_done"
    await conn.execute(
        f"UPDATE woo_customer_sync_queue SET {column} = {column} + 1, store_requests = store_requests + $2 WHERE id = $1",
        queue_id, store_requests,
    )
    return True


async def set_pages_total(conn: Executor, queue_id: UUID, kind: PageKind, total: int) -> None:
    """The store's page count, as the latest answer said it."""
    column = "customer_pages_total" if kind == "customers" else "order_pages_total"
    await conn.execute(f"UPDATE woo_customer_sync_queue SET {column} = $2 WHERE id = $1", queue_id, total)


async def mark_orders_mirrored(conn: Executor, queue_id: UUID) -> None:
    await conn.execute("UPDATE woo_customer_sync_queue SET orders_mirrored = true WHERE id = $1", queue_id)


async def add_store_requests(conn: Executor, requests: Mapping[UUID, int]) -> None:
    """Add store requests made for each queue (consumers' per-customer order requests)."""
    queue_ids = sorted(requests)
    await conn.execute(
        """
        UPDATE woo_customer_sync_queue q SET store_requests = q.store_requests + r.n
          FROM unnest($1::uuid[], $2::bigint[]) AS r(id, n) WHERE q.id = r.id
        """,
        queue_ids, [requests[queue_id] for queue_id in queue_ids],
    )


async def fail_draft_lines(conn: Executor, queue_id: UUID, org_id: UUID, error: str) -> int:
    """Lines still in draft that will never be published (a bulk sync whose order pages failed)
    fail with the sync's error, so the queue ends failed instead of waiting forever."""
    status = await conn.execute(
        """
        UPDATE woo_customer_sync_queue_line
           SET state = 'failed', error_message = $3, updated_at = now()
         WHERE queue_id = $1 AND org_id = $2 AND state = 'draft'
        """,
        queue_id, org_id, error,
    )
    return int(status.rsplit(" ", 1)[-1])


# ---------------------------------------------------------------------------------------------
# Page work (sql/014_page_work.sql): each page of a sync's enumeration is a row any producer may
# take. Locks are taken enumeration row first, then page rows, then lines, then the queue row
# (a customer page's line insert updates the queue's counts through its trigger), and the counter
# flush takes page rows only with SKIP LOCKED: nothing here waits in a cycle.

# A page any producer may take now: not done, not leased by a producer whose lease still runs,
# and (past page 1) page 1 of its kind done in this pass: page 1's answer says how many pages
# there are and sets the count the other pages' answers are compared with. Page 1 is looked up by
# its key for each candidate: written as EXISTS, PostgreSQL hashed every page of every sync
# for each claim (10 ms at 82,000 pages, one claim per few pages: quadratic in a store's size).
_CLAIMABLE = """
    p.state <> 'done' AND (p.state = 'pending' OR p.lease_until < now())
    AND (p.page = 1 OR (SELECT f.state FROM woo_sync_page f
                         WHERE f.queue_id = p.queue_id AND f.kind = p.kind AND f.page = 1) = 'done')
"""
# Customer pages of one sync leased at once while its order pages remain (see claim_pages).
CUSTOMER_PAGES_BESIDE_ORDERS = 2


@dataclass(frozen=True, slots=True)
class PageWork:
    """A sync enumerated as page work: what reading and recording any of its pages needs."""

    queue_id: UUID
    org_id: UUID
    store_id: UUID
    role: str
    customer_limit: int | None
    mirroring: bool
    whole_store: bool

    @property
    def customer_page_cap(self) -> int | None:
        """The last customer page a sync with `limit` reads."""
        return None if self.customer_limit is None else -(-self.customer_limit // PAGE_SIZE)


@dataclass(frozen=True, slots=True)
class ClaimedPage:
    work: PageWork
    kind: PageKind
    page: int

    @property
    def key(self) -> tuple[UUID, str, int]:
        return (self.work.queue_id, self.kind, self.page)


# Rows per page the producer asks for (the store's maximum, shared.woocommerce.client.MAX_PER_PAGE).
PAGE_SIZE = 100


async def start_page_work(conn: Executor, *, queue_id: UUID, org_id: UUID, store_id: UUID, role: str,
                          customer_limit: int | None, mirroring: bool, whole_store: bool, pass_started,
                          customer_pages: int | None, order_pages: int | None) -> bool:
    """Record a sync's enumeration as page work: its row and its pending pages (page 1 of
    customers, and of orders when `mirroring`, and the further pages the plan already knows).
    Idempotent: a redelivered request finds them recorded (pages done stay done). True when the
    enumeration row is new."""
    work = PageWork(queue_id, org_id, store_id, role, customer_limit, mirroring, whole_store)
    cap = work.customer_page_cap
    customers = max(1, customer_pages or 1)
    if cap is not None:
        customers = min(customers, cap)
    async with _transaction(conn) as tx:
        created = await tx.fetchval(
            """
            INSERT INTO woo_sync_enumeration (queue_id, org_id, store_id, role, customer_limit, mirroring,
                                              whole_store, pass_started)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            ON CONFLICT (queue_id) DO NOTHING RETURNING true
            """,
            queue_id, org_id, store_id, role, customer_limit, mirroring, whole_store, pass_started,
        )
        await _add_pending_pages(tx, queue_id, "customers", 1, customers)
        if mirroring:
            await _add_pending_pages(tx, queue_id, "orders", 1, max(1, order_pages or 1))
    return bool(created)


async def _add_pending_pages(conn: Executor, queue_id: UUID, kind: PageKind, first: int, last: int) -> None:
    await conn.execute(
        """
        INSERT INTO woo_sync_page (queue_id, kind, page, state, done_at, counted)
        SELECT $1, $2, g, 'pending', NULL, false FROM generate_series($3::int, $4::int) AS g
        ON CONFLICT DO NOTHING
        """,
        queue_id, kind, first, last,
    )


async def extend_pages(conn: Executor, queue_id: UUID, kind: PageKind, total_pages: int) -> None:
    """The store says it has `total_pages` pages of `kind`: the ones past those recorded become
    pending (orders or customers created meanwhile land on later pages)."""
    await conn.execute(
        """
        INSERT INTO woo_sync_page (queue_id, kind, page, state, done_at, counted)
        SELECT $1, $2, g, 'pending', NULL, false
          FROM generate_series((SELECT coalesce(max(page), 0) + 1 FROM woo_sync_page WHERE queue_id = $1 AND kind = $2),
                               $3::int) AS g
        ON CONFLICT DO NOTHING
        """,
        queue_id, kind, total_pages,
    )


# A producer's heartbeat counts this long (it beats every second while it runs).
WORKER_FRESH_S = 5.0


async def claim_pages(pool, *, taken_by: str, room: int, per_sync: int, lease_s: float,
                      skip: Iterable[UUID] = ()) -> tuple[UUID, list[ClaimedPage]] | None:
    """Lease up to `room` pages of the next sync that has pages to take (the one served least
    recently, other than those in `skip`), keeping its pages leased across every producer at
    `per_sync` at most, and this producer's at its share when several have room. Returns
    (queue_id, pages; empty when the sync is at its bound) or None when no sync has pages to
    take. One transaction, the sync's row locked (SKIP LOCKED: another producer takes another
    sync meanwhile); it commits without waiting for the disk: a claim lost in a server crash
    leaves its pages to be taken again once the lease expires."""
    async with _transaction(pool) as tx:
        row = await tx.fetchrow(
            f"""
            SELECT e.queue_id, e.org_id, e.store_id, e.role, e.customer_limit, e.mirroring, e.whole_store,
                   set_config('synchronous_commit', 'off', true) AS _
              FROM woo_sync_enumeration e JOIN woo_customer_sync_queue q ON q.id = e.queue_id
             WHERE e.state = 'paging' AND q.cancelled_at IS NULL AND e.queue_id <> ALL($1::uuid[])
               AND EXISTS (SELECT 1 FROM woo_sync_page p WHERE p.queue_id = e.queue_id AND {_CLAIMABLE})
             ORDER BY e.claimed_at NULLS FIRST, e.created_at
             LIMIT 1
               FOR UPDATE OF e SKIP LOCKED
            """,
            list(skip),
        )
        if row is None:
            return None
        work = PageWork(*(row[name] for name in ("queue_id", "org_id", "store_id", "role", "customer_limit",
                                                 "mirroring", "whole_store")))
        # Counted under the sync's lock, in a statement of its own: it sees every claim committed.
        # Leased pages through their own index (sql/015_page_indexes.sql), the first open order
        # page through the open pages' index in page order: neither reads the sync's other pages.
        counts = await tx.fetchrow(
            """
            SELECT count(*) AS in_flight, count(*) FILTER (WHERE taken_by = $2) AS mine,
                   count(*) FILTER (WHERE kind = 'customers') AS customers,
                   (SELECT page FROM woo_sync_page WHERE queue_id = $1 AND kind = 'orders' AND state <> 'done'
                     ORDER BY page LIMIT 1) IS NOT NULL AS orders_open,
                   (SELECT count(*) FROM woo_page_worker WHERE room > 0 AND seen_at > now() - make_interval(secs => $3))
                       AS sharing
              FROM woo_sync_page WHERE queue_id = $1 AND state = 'leased' AND lease_until > now()
            """,
            work.queue_id, taken_by, WORKER_FRESH_S)
        # A fair share per producer when several have room: ceil(per_sync / those producers).
        share = -(-per_sync // max(1, counts["sharing"]))
        wanted = min(room, per_sync - counts["in_flight"], share - counts["mine"])
        if wanted <= 0:
            return work.queue_id, []
        # A customer page's lines update the queue row (its counts' trigger), so a sync's customer
        # pages are recorded one after another whatever their number: while order pages remain,
        # a few customer pages at a time and order pages for the other places.
        customers = wanted
        if counts["orders_open"]:
            customers = min(wanted, max(0, CUSTOMER_PAGES_BESIDE_ORDERS - counts["customers"]))
        rows = await tx.fetch(
            f"""
            WITH customer_pages AS (
                SELECT p.queue_id, p.kind, p.page FROM woo_sync_page p
                 WHERE p.queue_id = $1 AND p.kind = 'customers' AND {_CLAIMABLE}
                 ORDER BY p.page LIMIT $2
                   FOR UPDATE SKIP LOCKED
            ), order_pages AS (
                SELECT p.queue_id, p.kind, p.page FROM woo_sync_page p
                 WHERE p.queue_id = $1 AND p.kind = 'orders' AND {_CLAIMABLE}
                 ORDER BY p.page LIMIT $3
                   FOR UPDATE SKIP LOCKED
            ), served AS (
                UPDATE woo_sync_enumeration SET claimed_at = clock_timestamp() WHERE queue_id = $1
            )
            UPDATE woo_sync_page p
               SET state = 'leased', lease_until = now() + make_interval(secs => $4), taken_by = $5
              FROM (SELECT * FROM customer_pages UNION ALL SELECT * FROM order_pages) AS picked
             WHERE p.queue_id = picked.queue_id AND p.kind = picked.kind AND p.page = picked.page
            RETURNING p.kind, p.page
            """,
            work.queue_id, customers, wanted - customers, lease_s, taken_by,
        )
    return work.queue_id, [ClaimedPage(work, r["kind"], r["page"]) for r in sorted(rows, key=lambda r: (r["kind"], r["page"]))]


async def page_worker_heartbeat(conn: Executor, producer_id: str, *, room: int) -> None:
    """This producer runs and has `room` places for pages (0: it takes no share)."""
    await conn.execute(
        """
        INSERT INTO woo_page_worker (producer_id, room) VALUES ($1, $2)
        ON CONFLICT (producer_id) DO UPDATE SET room = EXCLUDED.room, seen_at = now()
        """,
        producer_id, room)
    await conn.execute("DELETE FROM woo_page_worker WHERE seen_at < now() - interval '1 hour'")


async def page_worker_gone(conn: Executor, producer_id: str) -> None:
    await conn.execute("DELETE FROM woo_page_worker WHERE producer_id = $1", producer_id)


async def renew_leases(conn: Executor, pages: Iterable[ClaimedPage], *, taken_by: str, lease_s: float) -> int:
    """Extend the leases of the pages this producer is working on; how many it still holds."""
    keys = [page.key for page in pages]
    if not keys:
        return 0
    status = await conn.execute(
        """
        UPDATE woo_sync_page p SET lease_until = now() + make_interval(secs => $5)
          FROM unnest($1::uuid[], $2::text[], $3::int[]) AS k(queue_id, kind, page)
         WHERE p.queue_id = k.queue_id AND p.kind = k.kind AND p.page = k.page
           AND p.state = 'leased' AND p.taken_by = $4
        """,
        [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys], taken_by, lease_s,
    )
    return int(status.rsplit(" ", 1)[-1])


async def finish_page(conn: Executor, page: ClaimedPage, *, taken_by: str, row_count: int,
                      store_total: int | None) -> bool:
    """Mark the page done, first in the transaction that records its rows (the page row is locked
    before the lines and the queue row), and let that transaction commit asynchronously. False when it is done already or no longer exists (a
    producer whose lease had expired, or a cancelled or failed sync): then roll the page's work back."""
    # The transaction's commit does not wait for the disk (set_config(..., true): this
    # transaction only; in this statement to spare a round trip): a page record lost in a server
    # crash is lost together with its rows, so the page is still leased or pending and is read
    # again. Nothing outside the database acts on the commit before a later synchronous commit
    # (the dispatcher's, the enumeration's end), and that one flushes the write-ahead log up to
    # itself, this page's record included.
    return bool(await conn.fetchval(
        """
        UPDATE woo_sync_page
           SET state = 'done', done_at = now(), lease_until = NULL, taken_by = $4, row_count = $5,
               store_total = $6, uncounted_requests = uncounted_requests + 1, last_error = NULL
         WHERE queue_id = $1 AND kind = $2 AND page = $3 AND state <> 'done'
        RETURNING set_config('synchronous_commit', 'off', true) IS NOT NULL
        """,
        *page.key, taken_by, row_count, store_total,
    ))


async def release_page(conn: Executor, page: ClaimedPage, *, taken_by: str, error: str | None = None) -> int | None:
    """Give a leased page back, pending for any producer; with `error` the store failed it once
    more. Returns its failures so far (None when this producer no longer held it)."""
    return await conn.fetchval(
        """
        UPDATE woo_sync_page
           SET state = 'pending', lease_until = NULL,
               failures = failures + CASE WHEN $5::text IS NULL THEN 0 ELSE 1 END,
               last_error = coalesce($5, last_error)
         WHERE queue_id = $1 AND kind = $2 AND page = $3 AND state = 'leased' AND taken_by = $4
        RETURNING failures
        """,
        *page.key, taken_by, error,
    )


async def flush_page_counts(conn: Executor, queue_ids: Iterable[UUID]) -> None:
    """Add the pages done and the store requests made since the last flush to the queues' plan
    counters, and set the page totals from the pages recorded: one statement, outside the pages'
    own transactions, so that recording a page never waits for the queue row (which consumers'
    counters update all the time). Exactly once: a page is counted and cleared together; pages
    locked by their own transaction are skipped and counted by a later flush."""
    ids = sorted(set(queue_ids))
    if not ids:
        return
    await conn.execute(
        """
        WITH due AS MATERIALIZED (
            SELECT queue_id, kind, page, uncounted_requests AS requests, (state = 'done' AND NOT counted) AS newly_done
              FROM woo_sync_page
             WHERE queue_id = ANY($1::uuid[]) AND (uncounted_requests > 0 OR (state = 'done' AND NOT counted))
             ORDER BY queue_id, kind, page
               FOR UPDATE SKIP LOCKED
        ), cleared AS (
            UPDATE woo_sync_page p SET uncounted_requests = 0, counted = p.counted OR due.newly_done
              FROM due WHERE p.queue_id = due.queue_id AND p.kind = due.kind AND p.page = due.page
        ), sums AS (
            SELECT queue_id, sum(requests) AS requests,
                   count(*) FILTER (WHERE newly_done AND kind = 'customers') AS customers_done,
                   count(*) FILTER (WHERE newly_done AND kind = 'orders') AS orders_done
              FROM due GROUP BY queue_id
        )
        UPDATE woo_customer_sync_queue q
           SET store_requests = q.store_requests + s.requests,
               customer_pages_done = q.customer_pages_done + s.customers_done,
               order_pages_done = q.order_pages_done + s.orders_done,
               customer_pages_total = coalesce((SELECT max(page) FROM woo_sync_page
                                                 WHERE queue_id = q.id AND kind = 'customers'), q.customer_pages_total),
               order_pages_total = coalesce((SELECT max(page) FROM woo_sync_page
                                              WHERE queue_id = q.id AND kind = 'orders'), q.order_pages_total)
          FROM sums s
         WHERE q.id = s.queue_id
        """,
        ids,
    )


@dataclass(frozen=True, slots=True)
class Finished:
    """What finishing a sync's page work did: `outcome` is finished, cancelled, or read_again
    (`kinds` read again: the store's count fell while they were paged)."""

    queue_id: UUID
    outcome: str
    kinds: tuple[str, ...] = ()
    orders_gone: int = 0


async def finish_next(pool, *, max_passes: int) -> Finished | None:
    """Finish one sync whose pages are all done (or that was cancelled), if any: in one
    transaction, under its row lock. A kind whose count fell while paged (a page's total below
    page 1's) is read again, up to `max_passes` passes; else a bulk pass marks the store's orders
    it did not see gone and the orders mirrored (the lines may be published), the plan's counters
    are brought up to date, and the enumeration is done."""
    async with _transaction(pool) as tx:
        row = await tx.fetchrow(
            """
            SELECT e.queue_id, e.org_id, e.store_id, e.mirroring, e.whole_store, e.customer_pass, e.order_pass,
                   e.pass_started, q.cancelled_at IS NOT NULL AS cancelled
              FROM woo_sync_enumeration e JOIN woo_customer_sync_queue q ON q.id = e.queue_id
             WHERE e.state = 'paging'
               AND (q.cancelled_at IS NOT NULL
                    OR (SELECT p.page FROM woo_sync_page p WHERE p.queue_id = e.queue_id AND p.state <> 'done'
                         ORDER BY p.kind, p.page LIMIT 1) IS NULL)
             LIMIT 1
               FOR UPDATE OF e SKIP LOCKED
            """)
        if row is None:
            return None
        queue_id = row["queue_id"]
        if row["cancelled"]:
            await tx.execute("DELETE FROM woo_sync_page WHERE queue_id = $1 AND state <> 'done'", queue_id)
            await _end_page_work(tx, queue_id, row["org_id"])
            return Finished(queue_id, "cancelled")
        again = []
        for kind, passes in (("customers", row["customer_pass"]), ("orders", row["order_pass"])):
            if passes + 1 < max_passes and await _count_fell(tx, queue_id, kind):
                again.append(kind)
                column = "customer_pass" if kind == "customers" else "order_pass"
                await tx.execute(f"UPDATE woo_sync_enumeration SET {column} = {column} + 1 WHERE queue_id = $1", queue_id)
                await tx.execute(
                    """
                    UPDATE woo_sync_page SET state = 'pending', store_total = NULL, lease_until = NULL, failures = 0
                     WHERE queue_id = $1 AND kind = $2
                    """, queue_id, kind)
        if again:
            return Finished(queue_id, "read_again", tuple(again))
        gone = 0
        if row["mirroring"]:
            gone = await orders.forget_orders_not_seen(tx, row["store_id"], row["pass_started"])
            await mark_orders_mirrored(tx, queue_id)
        await flush_page_counts(tx, [queue_id])
        await _end_page_work(tx, queue_id, row["org_id"])
        if row["whole_store"]:
            await sweeps.record_sweep(tx, store_id=row["store_id"], org_id=row["org_id"], queue_id=queue_id)
    return Finished(queue_id, "finished", orders_gone=gone)


async def _count_fell(conn: Executor, queue_id: UUID, kind: PageKind) -> bool:
    """Whether a page of this pass saw fewer rows in the store than page 1 did (read first)."""
    return bool(await conn.fetchval(
        """
        SELECT EXISTS (SELECT 1 FROM woo_sync_page p
                        WHERE p.queue_id = $1 AND p.kind = $2 AND p.page > 1
                          AND p.store_total < (SELECT store_total FROM woo_sync_page
                                                WHERE queue_id = $1 AND kind = $2 AND page = 1))
        """,
        queue_id, kind,
    ))


async def _end_page_work(conn: Executor, queue_id: UUID, org_id: UUID) -> None:
    await conn.execute("UPDATE woo_sync_enumeration SET state = 'finished', finished_at = now() WHERE queue_id = $1",
                       queue_id)
    await sync_queues.mark_enumeration_done(conn, queue_id, org_id)


async def fail_page_work(pool, queue_id: UUID, org_id: UUID, error: str) -> bool:
    """A page kept failing (or failed for good): the sync's enumeration ends, its open pages are
    dropped, lines waiting in draft for the orders fail with the error, and the queue records it
    (is_action_required; it ends failed, or partial once its other lines finish). False when the
    enumeration had ended already (another producer failed or finished it)."""
    async with _transaction(pool) as tx:
        mirroring = await tx.fetchval(
            "SELECT mirroring FROM woo_sync_enumeration WHERE queue_id = $1 AND state = 'paging' FOR UPDATE", queue_id)
        if mirroring is None:
            return False
        await tx.execute("DELETE FROM woo_sync_page WHERE queue_id = $1 AND state <> 'done'", queue_id)
        if mirroring:  # lines that waited for the orders never run: the sync is not half done
            await fail_draft_lines(tx, queue_id, org_id, f"the store's orders could not be listed: {error}")
        await flush_page_counts(tx, [queue_id])
        await tx.execute("UPDATE woo_sync_enumeration SET state = 'failed', finished_at = now() WHERE queue_id = $1",
                         queue_id)
        # Ends the enumeration too: the queue ends failed (or partial) once its other lines finish.
        await sync_queues.record_queue_error(tx, queue_id, org_id, f"enumeration stopped: {error}")
    return True
