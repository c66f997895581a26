"""The consumer's business steps for a micro-batch of customer lines.

claim the lines -> fetch each active line's orders (concurrently, bounded per store) -> map ->
one transaction: upsert customers, record every line's outcome and its activity -> decisions.
Nothing here touches the broker; settle.py turns the decisions into ack / retry / dead-letter.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from uuid import UUID

import asyncpg
from aio_pika.abc import AbstractIncomingMessage
from pydantic import ValidationError

from services.consumer.customer_store import upsert_customers
from services.consumer.decisions import Ack, DeadLetter, Decision, Retry
from services.consumer.stores import StoreClients
from shared import queue_repository, topology
from shared.errors import PermanentError, RetryableError
from shared.mapping import ORDER_FIELDS, CustomerRow, map_customer
from shared.messages import CustomerLine
from shared.metrics import Metrics
from shared.settings import Settings

log = logging.getLogger(__name__)

TERMINAL = frozenset({"done", "failed", "cancelled"})
EMAIL_KEY = "customer_org_email_key"


@dataclass(slots=True)
class Delivery:
    message: AbstractIncomingMessage
    received_at: float
    line: CustomerLine | None
    attempt: int
    problem: str | None = None

    @classmethod
    def decode(cls, message: AbstractIncomingMessage) -> "Delivery":
        attempt = _attempt_of(message)
        try:
            line = CustomerLine.model_validate_json(message.body)
        except ValidationError as exc:
            problem = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()[:3])
            return cls(message, time.monotonic(), None, attempt, f"malformed customer line: {problem}")
        return cls(message, time.monotonic(), line, attempt)


def _attempt_of(message: AbstractIncomingMessage) -> int:
    try:
        return max(int((message.headers or {}).get(topology.ATTEMPT_HEADER, 1)), 1)
    except (TypeError, ValueError):
        return 1


@dataclass(frozen=True, slots=True)
class _Mapped:
    row: CustomerRow


class LineHandler:
    def __init__(self, pool: asyncpg.Pool, stores: StoreClients, settings: Settings, metrics: Metrics) -> None:
        self._pool = pool
        self._stores = stores
        self._settings = settings
        self._metrics = metrics

    async def process(self, deliveries: list[Delivery]) -> list[Decision]:
        """Decisions in the order of `deliveries`. Raises when the database is unavailable:
        nothing is settled then, and the caller runs the batch again once it is back."""
        decisions: list[Decision | None] = [None] * len(deliveries)
        lines: dict[UUID, int] = {}
        for index, delivery in enumerate(deliveries):
            if delivery.line is None:
                log.warning("dead-lettering an unreadable message: %s", delivery.problem)
                decisions[index] = DeadLetter("malformed", delivery.problem or "malformed")
            elif delivery.line.line_id in lines:
                decisions[index] = Ack()  # the same line twice in one batch: one is enough
            else:
                lines[delivery.line.line_id] = index
        if not lines:
            return decisions  # type: ignore[return-value]

        async with self._pool.acquire() as conn:
            claims = {claim.line_id: claim for claim in await queue_repository.claim_lines(conn, list(lines))}
        active: list[int] = []
        cancelled: list[int] = []
        for line_id, index in lines.items():
            claim = claims.get(line_id)
            if claim is None:
                log.warning("line %s no longer exists (its queue was deleted): acking", line_id)
                decisions[index] = Ack()
            elif claim.claimed:
                active.append(index)
            elif claim.queue_cancelled:
                cancelled.append(index)
            elif claim.state == "failed" and deliveries[index].attempt >= self._settings.max_attempts:
                # Its last try failed and was committed, but the dead letter may never have been
                # published (the commit's answer was lost, or we died before settling): publish
                # it (again); a duplicate dead letter is harmless, a missing one is not.
                decisions[index] = DeadLetter("max_attempts", f"line failed after {deliveries[index].attempt} attempts")
            else:
                decisions[index] = Ack()  # a redelivery of finished work

        now = datetime.now(timezone.utc)
        results = await asyncio.gather(*(self._enrich(deliveries[i].line, now) for i in active))  # type: ignore[arg-type]

        done: list[tuple[int, CustomerRow]] = []
        failed: list[tuple[int, str]] = []
        retried: list[tuple[int, str]] = []
        exhausted: list[tuple[int, str]] = []
        for index, result in zip(active, results):
            attempt = deliveries[index].attempt
            if isinstance(result, _Mapped):
                done.append((index, result.row))
            elif isinstance(result, PermanentError):
                failed.append((index, str(result)))
            elif attempt >= self._settings.max_attempts:
                exhausted.append((index, f"gave up after {attempt} attempts: {result}"))
            else:
                retried.append((index, f"attempt {attempt} of {self._settings.max_attempts}: {result}"))

        await self._commit(deliveries, cancelled, done, failed, retried, exhausted, decisions)
        return decisions  # type: ignore[return-value]

    async def _enrich(self, line: CustomerLine, now: datetime) -> _Mapped | Exception:
        try:
            client, store_url = await self._stores.get(line.store_id)
            orders = await client.list_orders(line.woo_customer_id, fields=ORDER_FIELDS)
            return _Mapped(map_customer(line.customer, orders, store_url=store_url, now=now))
        except (PermanentError, RetryableError) as exc:
            return exc
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug, not the line's fault: retried, then dead-lettered
            log.exception("unexpected error on line %s (customer %s)", line.line_id, line.woo_customer_id)
            return RetryableError(f"unexpected {type(exc).__name__}: {exc}")

    async def _commit(self, deliveries, cancelled, done, failed, retried, exhausted, decisions) -> None:
        def line_of(index: int) -> CustomerLine:
            return deliveries[index].line

        async with self._pool.acquire() as conn, conn.transaction():
            if cancelled:
                await queue_repository.cancel_lines_of_cancelled_queues(conn, [line_of(i).line_id for i in cancelled])
            upserted = await self._upsert(conn, deliveries, done, failed)
            ok = [(i, customer) for (i, _), customer in zip(done, upserted) if customer is not None]
            if ok:
                await queue_repository.mark_lines_done(
                    conn, [(line_of(i).line_id, c.customer_id, c.was_update) for i, c in ok]
                )
            if failed or exhausted:
                await queue_repository.mark_lines_failed(conn, [(line_of(i).line_id, e) for i, e in failed + exhausted])
            if retried:
                await queue_repository.return_lines_to_draft(conn, [(line_of(i).line_id, e) for i, e in retried])
            await queue_repository.append_activity(
                conn,
                [
                    *(_activity(line_of(i), "success", "customer synced", {"customer_id": str(c.customer_id), "was_update": c.was_update}) for i, c in ok),
                    *(_activity(line_of(i), "failed", e, {"permanent": True}) for i, e in failed),
                    *(_activity(line_of(i), "failed", e, {"dead_lettered": True}) for i, e in exhausted),
                    *(_activity(line_of(i), "retry", e, {"attempt": deliveries[i].attempt}) for i, e in retried),
                    *(_activity(line_of(i), "cancelled", "queue was cancelled", None) for i in cancelled),
                ],
            )

        for index in cancelled:
            decisions[index] = Ack("cancelled")
        for index, _customer in ok:
            decisions[index] = Ack("done")
        for index, error in failed:
            log.info("line %s failed for good: %s", line_of(index).line_id, error)
            decisions[index] = Ack("failed")
        for index, error in exhausted:
            log.warning("line %s dead-lettered: %s", line_of(index).line_id, error)
            decisions[index] = DeadLetter("max_attempts", error, line_failed=True)
        for index, error in retried:
            attempt = deliveries[index].attempt
            delay = topology.retry_delay_ms(self._settings.retry_delay_ms, attempt)
            log.warning("line %s will retry in %.1f s (%s)", line_of(index).line_id, delay / 1000, error)
            decisions[index] = Retry(error, attempt + 1, delay)
        now = time.monotonic()
        for index in [i for i, _ in ok] + [i for i, _ in failed] + [i for i, _ in exhausted]:
            self._metrics.line_processing_seconds.observe(now - deliveries[index].received_at)
        self._metrics.batch_size.observe(len(done) + len(failed) + len(retried) + len(exhausted) + len(cancelled))

    async def _upsert(self, conn, deliveries, done, failed):
        """Upsert the mapped customers; a line whose new email belongs to another customer fails
        on its own (found by retrying one by one under savepoints) instead of sinking the batch."""
        if not done:
            return []
        items = [(deliveries[index].line.org_id, row) for index, row in done]
        try:
            async with conn.transaction():
                return await upsert_customers(conn, items)
        except asyncpg.UniqueViolationError:
            pass
        results = []
        for (index, row), item in zip(done, items):
            try:
                async with conn.transaction():
                    results.extend(await upsert_customers(conn, [item]))
            except asyncpg.UniqueViolationError as exc:
                if exc.constraint_name != EMAIL_KEY:
                    raise  # a concurrent insert of the same store customer: run the batch again
                failed.append((index, f"email {row.email!r} already belongs to another customer of this organisation"))
                results.append(None)
        return results


def _activity(line: CustomerLine, status: str, message: str, details: dict | None) -> queue_repository.ActivityRow:
    return queue_repository.ActivityRow(
        queue_id=line.queue_id,
        org_id=line.org_id,
        queue_line_id=line.line_id,
        activity_type="customer_sync",
        status=status,
        message=message,
        details=details,
    )
