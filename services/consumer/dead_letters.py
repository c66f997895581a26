"""Records every dead-lettered customer line as `failed` in Postgres, whoever dead-lettered it:
this consumer after WOOSYNC_MAX_ATTEMPTS, or the broker past the quorum queue's delivery limit
(a message that kept killing its consumer). Reads the audit copy; the copy in
woosync.customer_lines.dead stays for inspection and replay.

A message dead-lettered as `tampered` or `malformed` says nothing true about its line (it
disagreed with the line's row, or could not be read): its line is left as it is, and the
genuine message for it may still come.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import asyncpg
from aio_pika.abc import AbstractIncomingMessage
from pydantic import ValidationError

from shared import topology
from shared.db import transaction
from shared.messages import CustomerLine
from shared.metrics import Metrics
from shared.outage import wait_out_database_outage
from shared.repository.activity import ActivityRow, append_activity
from shared.repository.queue_lines import mark_lines_failed

log = logging.getLogger(__name__)

# Dead-letter reasons that leave the line alone: the message, not the line, was at fault.
NOT_ABOUT_THE_LINE = frozenset({"tampered", "malformed"})


def dead_letter_reason(headers: Mapping[str, object] | None) -> tuple[str, bool]:
    """From a dead letter's headers: (the error to record, whether the broker rather than
    woosync dead-lettered it)."""
    headers = headers or {}
    error = headers.get(topology.ERROR_HEADER)
    if headers.get(topology.DEAD_REASON_HEADER):
        return str(error or headers[topology.DEAD_REASON_HEADER]), False
    deaths = headers.get("x-death") or []
    reason = deaths[0].get("reason") if deaths and isinstance(deaths[0], dict) else None  # type: ignore[index]
    count = headers.get("x-delivery-count")
    detail = f"; last error: {error}" if error else ""
    if reason in ("delivery_limit", b"delivery_limit"):
        return (
            f"dead-lettered by the broker after {count or 'too many'} deliveries that were never settled "
            f"(the consumer crashed or was killed while handling it){detail}",
            True,
        )
    return f"dead-lettered by the broker ({reason or 'unknown reason'}){detail}", True


class DeadLetterRecorder:
    def __init__(self, pool: asyncpg.Pool, metrics: Metrics) -> None:
        self._pool = pool
        self._metrics = metrics

    async def __call__(self, message: AbstractIncomingMessage) -> None:
        reason = (message.headers or {}).get(topology.DEAD_REASON_HEADER)
        if reason in NOT_ABOUT_THE_LINE:
            log.info("a %s message was dead-lettered; its line is left as it is (the message stays in %s)",
                     reason, topology.CUSTOMER_LINES_DEAD_QUEUE)
            await message.ack()
            return
        try:
            line = CustomerLine.model_validate_json(message.body)
        except ValidationError:
            log.error("an unreadable message was dead-lettered; it stays in %s for inspection",
                      topology.CUSTOMER_LINES_DEAD_QUEUE)
            await message.ack()
            return
        error, by_broker = dead_letter_reason(message.headers)
        failed = await wait_out_database_outage(lambda: self._record(line, error),
                                                doing=f"recording dead line {line.line_id}", first_delay_s=1.0)
        if failed:
            log.warning("line %s dead-lettered and marked failed: %s", line.line_id, error)
        if by_broker:
            self._metrics.lines_processed.labels("dead_lettered").inc()
            if failed:
                self._metrics.lines_processed.labels("failed").inc()
        await message.ack()

    async def _record(self, line: CustomerLine, error: str) -> int:
        """Mark the line failed (unless it already finished) with its activity; how many moved."""
        async with transaction(self._pool) as conn:
            failed = await mark_lines_failed(conn, [(line.line_id, error)])
            if failed:
                await append_activity(conn, [ActivityRow(
                    queue_id=line.queue_id, org_id=line.org_id, queue_line_id=line.line_id,
                    activity_type="customer_sync", status="failed", message=error, details={"dead_lettered": True})])
            return failed
