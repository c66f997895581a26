"""The states of sync queue lines and of sync queues: the one definition every module uses.

The database holds the same sets in its CHECK constraints and triggers (sql/001_foundation.sql,
sql/009_dispatch.sql); docs/architecture.md draws the state machines. A line is pending (draft:
recorded; queued: published, not yet claimed; processing) until it ends done, failed or
cancelled; a queue's state is derived from its lines' counts, and `paused` while it is paused
with work pending.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

LineState = Literal["draft", "queued", "processing", "done", "failed", "cancelled"]
QueueState = Literal["draft", "processing", "paused", "partial", "done", "failed", "cancelled"]

# In lifecycle order: the order of counters, gauges and listings.
LINE_STATES: Final[tuple[LineState, ...]] = get_args(LineState)
PENDING_LINE_STATES: Final[frozenset[LineState]] = frozenset({"draft", "queued", "processing"})
TERMINAL_LINE_STATES: Final[frozenset[LineState]] = frozenset({"done", "failed", "cancelled"})

QUEUE_STATES: Final[tuple[QueueState, ...]] = get_args(QueueState)
TERMINAL_QUEUE_STATES: Final[frozenset[QueueState]] = frozenset({"done", "failed", "partial", "cancelled"})
