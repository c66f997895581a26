"""The consumer's business steps for a micro-batch of customer lines.

claim the lines -> fetch the orders of each active line whose sync is `per_customer`
(concurrently, bounded per store) and write them into the order mirror -> read every line's
order summary from the mirror, one statement for the batch (a `bulk` sync's producer filled it
before publishing the lines) -> map -> one transaction: upsert customers, record every line's
outcome and its activity -> decisions. Both strategies map from the mirror's aggregate, so the
rows are the same whichever ran (docs/architecture.md "Orders: the mirror").
Everything after the claim uses the line's row (its organisation, queue, store, customer id and
customer data), never the message's fields: a message only names its line, and one that
disagrees with the row is never worked on (docs/contract.md section 3).
What to do with each message is decided by the pure functions of decisions.py; this module
does the I/O between them. Nothing here touches the broker; settle.py turns the decisions into
ack / retry / dead-letter.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone

import asyncpg

from services.consumer.decisions import (
    Cancel, Decision, Delivery, Failed, GaveUp, Held, Outcome, Step, Synced, TryAgain, Work, decide, judge,
    plan_batch, stated_lines,
)
from services.consumer.store_clients import StoreClients
from shared.errors import InvalidCustomer, PermanentError, RetryableError
from shared.mapping import ORDER_FIELDS, CustomerRow, InvalidOrder, MirroredOrder, OrderSummary, map_customer_summary, mirror_order
from shared.metrics import Metrics
from shared.repository.activity import ActivityRow, append_activity
from shared.repository import enumeration, orders
from shared.repository.conflicts import LineConflicts, record_conflicts
from shared.repository.customers import CustomerWrite, EmailTaken, write_customers
from shared.repository.queue_lines import (
    ClaimedLine, cancel_lines_of_cancelled_queues, claim_lines, mark_lines_done, mark_lines_failed,
    return_lines_to_draft,
)
from shared.settings import Settings

log = logging.getLogger(__name__)

__all__ = ["Delivery", "LineHandler"]


class LineHandler:
    def __init__(self, pool: asyncpg.Pool, stores: StoreClients, settings: Settings, metrics: Metrics) -> None:
        self._pool = pool
        self._stores = stores
        self._settings = settings
        self._metrics = metrics
        self._strategies: dict = {}

    async def process(self, deliveries: list[Delivery]) -> list[Decision]:
        """Decisions in the order of `deliveries`. Raises when the database is unavailable:
        nothing is settled then, and the caller runs the batch again once it is back."""
        claims: list[ClaimedLine | None] = []
        if stated := stated_lines(deliveries):
            async with self._pool.acquire() as conn:  # a transaction of its own, committed asynchronously
                claims = await claim_lines(conn, stated, commit_async=True)
        plan = plan_batch(deliveries, claims, max_attempts=self._settings.max_attempts)

        work = [(index, step) for index, step in enumerate(plan) if isinstance(step, Work)]
        now = datetime.now(timezone.utc)
        results, requests = await self._map_lines([step.line for _, step in work], now)
        to_commit: dict[int, Cancel | Outcome] = {index: step for index, step in enumerate(plan) if isinstance(step, Cancel)}
        for (index, step), result in zip(work, results):
            to_commit[index] = judge(step, result, max_attempts=self._settings.max_attempts)
        to_commit = dict(sorted(to_commit.items()))
        if not to_commit:
            return plan  # type: ignore[return-value]  # every step is already a decision

        decisions: list[Step] = list(plan)
        for index, decision in zip(to_commit, await self._commit(list(to_commit.values()), requests)):
            decisions[index] = decision
        return decisions  # type: ignore[return-value]

    async def _map_lines(self, lines: list[ClaimedLine], now: datetime) -> tuple[list[CustomerRow | Exception], dict]:
        """Each line's row, or the error that stopped it, in order; and the store requests made
        for each queue."""
        if not lines:
            return [], {}
        strategies = await self._order_strategies({line.queue_id for line in lines})
        fetched = await asyncio.gather(*(
            self._fetch_orders(line, per_customer=strategies.get(line.queue_id) != enumeration.BULK) for line in lines))
        summaries = await self._mirror_and_summarize(lines, fetched)
        requests: dict = {}
        for line, got in zip(lines, fetched):
            if not isinstance(got, Exception) and got[2]:
                requests[line.queue_id] = requests.get(line.queue_id, 0) + got[2]
        results: list[CustomerRow | Exception] = []
        for line, got in zip(lines, fetched):
            if isinstance(got, Exception):
                results.append(got)
                continue
            try:
                summary = summaries[(line.store_id, line.woo_customer_id)]
                results.append(map_customer_summary(line.customer_data, summary, store_url=got[0], now=now))
            except PermanentError as exc:
                results.append(exc)
            except Exception as exc:  # a bug, not the line's fault: retried, then dead-lettered
                log.exception("unexpected error mapping line %s (customer %s)", line.line_id, line.woo_customer_id)
                results.append(RetryableError(f"unexpected {type(exc).__name__}: {exc}"))
        return results, requests

    async def _order_strategies(self, queue_ids: set) -> dict:
        """The order strategy of each queue (it never changes once its lines are published)."""
        missing = [queue_id for queue_id in queue_ids if queue_id not in self._strategies]
        if missing:
            async with self._pool.acquire() as conn:
                found = await enumeration.order_strategies(conn, missing)
            if len(self._strategies) > 4096:
                self._strategies.clear()
            self._strategies.update(found)
        return self._strategies

    async def _fetch_orders(self, line: ClaimedLine, *, per_customer: bool
                            ) -> tuple[str, list[MirroredOrder] | None, int] | Exception:
        """(the store's URL, the customer's orders as the mirror keeps them, store requests made);
        the orders are None for a `bulk` sync, whose orders are in the mirror already."""
        try:
            if line.store_id is None:
                raise PermanentError("the queue's store is no longer recorded (it was deleted)")
            client, store_url = await self._stores.get(line.store_id)
            if not per_customer:
                return store_url, None, 0
            listed = await client.list_orders(line.woo_customer_id, fields=ORDER_FIELDS)
            try:
                mirrored = [mirror_order(order, customer_id=line.woo_customer_id) for order in listed]
            except InvalidOrder as exc:
                raise InvalidCustomer(f"customer {line.woo_customer_id} has {exc}") from None
            return store_url, mirrored, max(1, -(-len(listed) // 100))
        except (PermanentError, RetryableError) as exc:
            return exc
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug, not the line's fault: retried, then dead-lettered
            log.exception("unexpected error on line %s (customer %s)", line.line_id, line.woo_customer_id)
            return RetryableError(f"unexpected {type(exc).__name__}: {exc}")

    async def _mirror_and_summarize(self, lines: list[ClaimedLine], fetched: list) -> dict:
        """One transaction: the fetched orders into the mirror (each customer's other orders gone),
        then every line's summary, one statement each. It does not touch the queue row (the store
        requests are counted in the batch's commit, which updates that row anyway), so consumers
        do not queue behind each other on it here."""
        wanted = [(line.store_id, line.woo_customer_id) for line, got in zip(lines, fetched)
                  if not isinstance(got, Exception)]
        if not wanted:
            return {}
        listings: dict = {}
        for line, got in zip(lines, fetched):
            if not isinstance(got, Exception) and got[1] is not None:
                store = listings.setdefault(line.store_id, ([], [], line.org_id))
                store[0].extend(got[1])
                store[1].append((line.woo_customer_id, [order.order_id for order in got[1]]))
        async with self._pool.acquire() as conn, conn.transaction():
            for store_id in sorted(listings):
                mirrored, customer_orders, org_id = listings[store_id]
                await orders.record_orders(conn, store_id=store_id, org_id=org_id, orders=mirrored)
                await orders.forget_customers_other_orders(conn, store_id, sorted(customer_orders))
            return await orders.order_summaries(conn, wanted)

    async def _commit(self, steps: list[Cancel | Outcome], requests: dict) -> list[Decision]:
        """One transaction: upsert, record the activity and conflicts, then move the lines (each
        line's outcome, cancels) and add the store requests made for them to their queues' plans;
        then the decision for each step, in order. A line whose new email belongs to another
        customer fails on its own instead of sinking the batch."""
        cancelled = [step.line for step in steps if isinstance(step, Cancel)]
        synced = [step for step in steps if isinstance(step, Synced)]
        async with self._pool.acquire() as conn, conn.transaction():
            # Written only when changed, under the queue's conflict policy; never for a preview.
            upserted = iter(await write_customers(
                conn, [CustomerWrite(step.work.line.queue_id, step.work.line.org_id, step.row) for step in synced]))
            committed: list[Cancel | Outcome] = []
            done = []
            for step in steps:
                if isinstance(step, Synced):
                    customer = next(upserted)
                    if isinstance(customer, EmailTaken):
                        step = Failed(step.work, f"email {customer.email!r} already belongs to another customer of this organisation")
                    else:
                        done.append((step.work.line, customer))
                committed.append(step)
            failed = [(step.work.line, step.error) for step in committed if isinstance(step, Failed)]
            gave_up = [(step.work.line, step.error) for step in committed if isinstance(step, GaveUp)]
            retried = [step for step in committed if isinstance(step, TryAgain)]
            held = [step for step in committed if isinstance(step, Held)]
            # Conflicts and activity first: the line moves below update the sync's queue row (its
            # counts), which every other batch of the sync waits for until this commit.
            conflicts = [LineConflicts(line.queue_id, line.line_id, line.org_id, c.customer_id, line.woo_customer_id,
                                       c.conflicts) for line, c in done if c.conflicts]
            if conflicts:
                await record_conflicts(conn, conflicts)
            await append_activity(
                conn,
                [
                    *(_activity(line, "success", "customer synced", {"customer_id": str(c.customer_id), "was_update": c.was_update,
                                                                     "outcome": c.outcome, "conflicts": len(c.conflicts)})
                      for line, c in done),
                    *(_activity(line, "failed", error, {"permanent": True}) for line, error in failed),
                    *(_activity(line, "failed", error, {"dead_lettered": True}) for line, error in gave_up),
                    *(_activity(s.work.line, "retry", s.error, {"attempt": s.work.attempt}) for s in retried),
                    *(_activity(s.work.line, "throttled", s.error, {"attempt": s.work.attempt, "held_for_s": round(s.held_for_s, 1)})
                      for s in held),
                    *(_activity(line, "cancelled", "queue was cancelled", None) for line in cancelled),
                ],
            )
            if cancelled:
                await cancel_lines_of_cancelled_queues(conn, [line.line_id for line in cancelled])
            if done:
                await mark_lines_done(conn, [(line.line_id, c.customer_id, c.was_update) for line, c in done],
                                      outcomes={line.line_id: (c.outcome, c.changes) for line, c in done})
            if failed or gave_up:
                await mark_lines_failed(conn, [(line.line_id, error) for line, error in failed + gave_up])
            if retried:
                await return_lines_to_draft(conn, [(step.work.line.line_id, step.error) for step in retried])
            if held:  # the store's limit, not the line's failure: no error counted, no try spent
                await return_lines_to_draft(conn, [(step.work.line.line_id, step.error) for step in held],
                                            count_error=False)
            if requests:  # the queue row the line statements above locked already
                await enumeration.add_store_requests(conn, requests)

        now = time.monotonic()
        for step in committed:
            if isinstance(step, Synced | Failed | GaveUp):
                self._metrics.line_processing_seconds.observe(now - step.work.received_at)
        self._metrics.batch_size.observe(len(committed))
        for _, customer in done:
            for conflict in customer.conflicts:
                self._metrics.conflicts.labels(conflict.resolution).inc()
        if held:
            self._metrics.lines_held.inc(len(held))
        return [decide(step, retry_delay_ms=self._settings.retry_delay_ms) for step in committed]


def _activity(line: ClaimedLine, status: str, message: str, details: dict | None) -> ActivityRow:
    return ActivityRow(
        queue_id=line.queue_id,
        org_id=line.org_id,
        queue_line_id=line.line_id,
        activity_type="customer_sync",
        status=status,
        message=message,
        details=details,
    )
