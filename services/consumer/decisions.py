"""The consumer's decisions, as pure functions of what it knows (no broker, no database).

A micro-batch goes through three steps, each a function here:

1. `plan_batch(deliveries, claims, max_attempts)`: what to do with each delivered message,
   knowing its claim (the line's row after `claim_lines`): `Work` on it, `Cancel` it, or settle
   it at once with a `Decision` (ack a redelivery of finished work, dead-letter a malformed one).
2. `judge(work, result, max_attempts)`: what a worked line's result means: `Synced`, `Failed`
   for good, `TryAgain` later, or `GaveUp` on its last attempt.
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
from shared.errors import PermanentError
from shared.mapping import CustomerRow
from shared.messages import CustomerLine, LineOutcome, describe_validation_error
from shared.repository.queue_lines import ClaimedLine

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
        return cls(message, time.monotonic(), line, attempt)


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
    """A transient failure: try again after `delay_ms`, as attempt `next_attempt`."""

    error: str
    next_attempt: int
    delay_ms: int


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
    """The line is claimed for this delivery: fetch its orders, map it, commit the outcome."""

    line: CustomerLine
    attempt: int
    received_at: float


@dataclass(frozen=True, slots=True)
class Cancel:
    """The line's queue was cancelled: the line becomes cancelled, then the message is acked."""

    line: CustomerLine


Step = Work | Cancel | Decision


def lines_to_claim(deliveries: Iterable[Delivery]) -> list[UUID]:
    """The lines a batch names, each once, in order of first delivery."""
    return list(dict.fromkeys(d.line.line_id for d in deliveries if d.line is not None))


def plan_batch(deliveries: Sequence[Delivery], claims: Iterable[ClaimedLine], *, max_attempts: int) -> list[Step]:
    """One step per delivery, in order. `claims` are the rows `claim_lines` returned for
    `lines_to_claim(deliveries)`: a line absent from them no longer exists."""
    by_line = {claim.line_id: claim for claim in claims}
    seen: set[UUID] = set()
    plan: list[Step] = []
    for delivery in deliveries:
        line = delivery.line
        if line is None:
            log.warning("dead-lettering an unreadable message: %s", delivery.problem)
            plan.append(DeadLetter("malformed", delivery.problem or "malformed"))
            continue
        if line.line_id in seen:
            plan.append(Ack())  # the same line twice in one batch: one is enough
            continue
        seen.add(line.line_id)
        claim = by_line.get(line.line_id)
        if claim is None:
            log.warning("line %s no longer exists (its queue was deleted): acking", line.line_id)
            plan.append(Ack())
        elif claim.claimed:
            plan.append(Work(line, delivery.attempt, delivery.received_at))
        elif claim.queue_cancelled:
            plan.append(Cancel(line))
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


Outcome = Synced | Failed | TryAgain | GaveUp


def judge(work: Work, result: CustomerRow | Exception, *, max_attempts: int) -> Outcome:
    """`result` is the mapped row, or the error that stopped it (a PermanentError, or anything
    else, which counts as transient)."""
    if isinstance(result, CustomerRow):
        return Synced(work, result)
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
    delay = topology.retry_delay_ms(retry_delay_ms, step.work.attempt)
    log.warning("line %s will retry in %.1f s (%s)", line_id, delay / 1000, step.error)
    return Retry(step.error, step.work.attempt + 1, delay)
