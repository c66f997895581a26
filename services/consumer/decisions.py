"""The consumer's decisions, as pure functions of what it knows (no broker, no database).

A micro-batch goes through three steps, each a function here:

1. `plan_batch(deliveries, claims, max_attempts)`: what to do with each delivered message,
   knowing its claim (the line's row after `claim_lines`): `Work` on it, `Cancel` it, or settle
   it at once with a `Decision` (ack a redelivery of finished work, dead-letter a malformed one
   or one that disagrees with the line's row).

The line's row is the authority (docs/contract.md section 3): a message only names its line.
Work and Cancel carry the row as `claim_lines` read it, never the message's fields.
2. `judge(work, result, max_attempts)`: what a worked line's result means: `Synced`, `Failed`
   for good, `TryAgain` later, `GaveUp` on its last attempt, or `Held`: its store said slow down,
   so it waits out the hold as the same attempt (rate limits never cost a line its tries).
3. `decide(step, retry_delay_ms)`: once the outcome is committed in Postgres (handler.py),
   the Decision for its message: ack, retry, or dead-letter. settle.py carries it out.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from uuid import UUID

from aio_pika.abc import AbstractIncomingMessage
from pydantic import ValidationError

from shared import topology
from shared.db import encode_json
from shared.errors import PermanentError
from shared.mapping import CustomerRow
from shared.messages import CustomerLine, LineOutcome, describe_validation_error
from shared.repository.queue_lines import ClaimedLine, StatedLine
from shared.woocommerce.budget import StoreHeld

log = logging.getLogger(__name__)


# ---- what came in --------------------------------------------------------------------------


@dataclass(slots=True)
class Delivery:
    """A delivered message, decoded: its customer line, or the problem that made it unreadable."""

    message: AbstractIncomingMessage
    received_at: float
    line: CustomerLine | None
    attempt: int
    problem: str | None = None

    @classmethod
    def decode(cls, message: AbstractIncomingMessage) -> Delivery:
        attempt = attempt_of(message.headers)
        try:
            line = CustomerLine.model_validate_json(message.body)
        except ValidationError as exc:
            problem = f"malformed customer line: {describe_validation_error(exc, most=3)}"
            return cls(message, time.monotonic(), None, attempt, problem)
        if problem := unrecordable(line):
            return cls(message, time.monotonic(), None, attempt, f"malformed customer line: {problem}")
        return cls(message, time.monotonic(), line, attempt)


_BIGINT = range(-(2**63), 2**63)


def unrecordable(line: CustomerLine) -> str | None:
    """Why the line's row could never hold what the message says (None when it could). Such a
    message cannot be genuine; refused here, it never reaches the claim's comparison (where
    PostgreSQL would refuse it and fail the whole batch)."""
    if line.woo_customer_id not in _BIGINT:
        return "woo_customer_id: out of range"
    try:
        document = encode_json(line.customer)
    except (TypeError, ValueError) as exc:  # orjson: an integer past 64 bits, nesting too deep
        return f"customer: not a storable JSON document ({exc})"
    if b"\\u0000" in document and _holds_nul(line.customer):
        return "customer: a NUL character (PostgreSQL's jsonb cannot hold it)"
    return None


def _holds_nul(document: object) -> bool:
    if isinstance(document, str):
        return "\x00" in document
    if isinstance(document, dict):
        return any(_holds_nul(key) or _holds_nul(value) for key, value in document.items())
    if isinstance(document, list):
        return any(_holds_nul(value) for value in document)
    return False


def attempt_of(headers: dict[str, object] | None) -> int:
    """The attempt a delivery is (1 for a first delivery or a header that makes no sense)."""
    try:
        return max(int((headers or {}).get(topology.ATTEMPT_HEADER, 1)), 1)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return 1


# ---- what should happen to a message -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ack:
    """The line's outcome is committed (or there was nothing to do): remove the message."""

    outcome: LineOutcome | None = None


@dataclass(frozen=True, slots=True)
class Retry:
    """A transient failure: try again after `delay_ms`, as attempt `next_attempt` (`held`: the
    store said slow down, and the same attempt comes again)."""

    error: str
    next_attempt: int
    delay_ms: int
    held: bool = False


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Give up on the message: park it in woosync.customer_lines.dead with the reason."""

    reason: str
    error: str
    line_failed: bool = False  # the line was marked failed in Postgres along with it


Decision = Ack | Retry | DeadLetter


# ---- step 1: the plan ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Work:
    """The line is claimed for this delivery: fetch its orders, map it, commit the outcome, all
    from its row (`line`)."""

    line: ClaimedLine
    attempt: int
    received_at: float


@dataclass(frozen=True, slots=True)
class Cancel:
    """The line's queue was cancelled: the line becomes cancelled, then the message is acked."""

    line: ClaimedLine


Step = Work | Cancel | Decision


def stated_lines(deliveries: Iterable[Delivery]) -> list[StatedLine]:
    """What each readable delivery says about its line, in order: the batch's claim."""
    return [
        StatedLine(line_id=line.line_id, org_id=line.org_id, queue_id=line.queue_id, store_id=line.store_id,
                   woo_customer_id=line.woo_customer_id, customer_data=line.customer)
        for line in (delivery.line for delivery in deliveries) if line is not None
    ]


def plan_batch(deliveries: Sequence[Delivery], claims: Iterable[ClaimedLine | None], *, max_attempts: int) -> list[Step]:
    """One step per delivery, in order. `claims` is what `claim_lines` answered for
    `stated_lines(deliveries)`, one per readable delivery in the same order (None: the line no
    longer exists).

    A message that disagrees with its line's row is dead-lettered as `tampered`; the line was
    not claimed for it and is left as it is (its genuine message may still come)."""
    answers = iter(claims)
    seen: set[UUID] = set()
    plan: list[Step] = []
    for delivery in deliveries:
        line = delivery.line
        if line is None:
            log.warning("dead-lettering an unreadable message: %s", delivery.problem)
            plan.append(DeadLetter("malformed", delivery.problem or "malformed"))
            continue
        claim = next(answers)
        if claim is None:
            log.warning("line %s no longer exists (its queue was deleted): acking", line.line_id)
            plan.append(Ack())
            continue
        if claim.disagreeing:
            fields = ", ".join(claim.disagreeing)
            # Never the customer data: only which fields disagreed.
            log.warning("tampering: a message for line %s disagrees with the line's row on %s: dead-lettered, "
                        "the line is left as it is", claim.line_id, fields)
            plan.append(DeadLetter("tampered", f"the message disagrees with line {claim.line_id} as recorded: {fields}"))
            continue
        if claim.line_id in seen:
            plan.append(Ack())  # the same line twice in one batch: one is enough
            continue
        seen.add(claim.line_id)
        if claim.claimed:
            plan.append(Work(claim, delivery.attempt, delivery.received_at))
        elif claim.queue_cancelled:
            plan.append(Cancel(claim))
        elif claim.state == "failed" and delivery.attempt >= max_attempts:
            # Its last try failed and was committed, but the dead letter may never have been
            # published (the commit's answer was lost, or we died before settling): publish
            # it (again); a duplicate dead letter is harmless, a missing one is not.
            plan.append(DeadLetter("max_attempts", f"line failed after {delivery.attempt} attempts"))
        else:
            plan.append(Ack())  # a redelivery of finished work
    return plan


# ---- step 2: what a worked line's result means ---------------------------------------------


@dataclass(frozen=True, slots=True)
class Synced:
    """Mapped: the customer row to upsert."""

    work: Work
    row: CustomerRow


@dataclass(frozen=True, slots=True)
class Failed:
    """Trying again cannot help: the line fails, the message is acked."""

    work: Work
    error: str


@dataclass(frozen=True, slots=True)
class TryAgain:
    """A transient failure with attempts left: the line returns to draft, the message is retried."""

    work: Work
    error: str


@dataclass(frozen=True, slots=True)
class GaveUp:
    """A transient failure on the last attempt: the line fails, the message is dead-lettered."""

    work: Work
    error: str


@dataclass(frozen=True, slots=True)
class Held:
    """The line's store is held (it said slow down): the line returns to draft and its message
    comes back after the hold as the same attempt; no try is spent."""

    work: Work
    error: str
    held_for_s: float


Outcome = Synced | Failed | TryAgain | GaveUp | Held


def judge(work: Work, result: CustomerRow | Exception, *, max_attempts: int) -> Outcome:
    """`result` is the mapped row, or the error that stopped it (a PermanentError, or anything
    else, which counts as transient)."""
    if isinstance(result, CustomerRow):
        return Synced(work, result)
    if isinstance(result, StoreHeld):
        return Held(work, str(result), result.retry_after or 0.0)
    if isinstance(result, PermanentError):
        return Failed(work, str(result))
    if work.attempt >= max_attempts:
        return GaveUp(work, f"gave up after {work.attempt} attempts: {result}")
    return TryAgain(work, f"attempt {work.attempt} of {max_attempts}: {result}")


# ---- step 3: the message's fate, once the outcome is committed -----------------------------


def decide(step: Cancel | Outcome, *, retry_delay_ms: int) -> Decision:
    """The Decision for a committed step (`retry_delay_ms` is WOOSYNC_RETRY_DELAY_MS)."""
    if isinstance(step, Cancel):
        return Ack("cancelled")
    line_id = step.work.line.line_id
    if isinstance(step, Synced):
        return Ack("done")
    if isinstance(step, Failed):
        log.info("line %s failed for good: %s", line_id, step.error)
        return Ack("failed")
    if isinstance(step, GaveUp):
        log.warning("line %s dead-lettered: %s", line_id, step.error)
        return DeadLetter("max_attempts", step.error, line_failed=True)
    if isinstance(step, Held):
        delay = topology.hold_delay_ms(step.held_for_s)
        log.info("line %s waits %.0f s for its store, which said slow down (attempt %d not spent)",
                 line_id, delay / 1000, step.work.attempt)
        return Retry(step.error, step.work.attempt, delay, held=True)
    delay = topology.retry_delay_ms(retry_delay_ms, step.work.attempt)
    log.warning("line %s will retry in %.1f s (%s)", line_id, delay / 1000, step.error)
    return Retry(step.error, step.work.attempt + 1, delay)
