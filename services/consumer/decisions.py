"""What should happen to a delivered message; settle.py carries it out, in one place."""

from __future__ import annotations

from dataclasses import dataclass

from shared.messages import LineOutcome


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
