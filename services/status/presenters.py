"""The JSON of the status API's objects (docs/contract.md section 7), from the data layer's
typed rows: the one place that decides how a queue, a line or an activity entry looks on the wire.
Every value is JSON-ready (ids and times as strings), keys in a fixed order."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.repository.activity import ActivityEntry
from shared.repository.conflicts import ConflictRecord
from shared.repository.queue_lines import QueueLine
from shared.repository.store_budget import Throttle
from shared.repository.sweeps import StoreFreshness
from shared.repository.sync_queues import QueueStatus


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def queue_status_json(status: QueueStatus) -> dict[str, Any]:
    """The queue status object (plus a few extra keys)."""
    return {
        "id": str(status.id),
        "queue_name": status.queue_name,
        "state": status.state,
        "total_count": status.total_count,
        "draft_count": status.draft_count,
        "queued_count": status.queued_count,
        "processing_count": status.processing_count,
        "done_count": status.done_count,
        "failed_count": status.failed_count,
        "cancelled_count": status.cancelled_count,
        "progress": status.progress,
        "is_action_required": status.is_action_required,
        "items_per_min": status.items_per_min,
        "eta_seconds": status.eta_seconds,
        "created_at": status.created_at.isoformat(),
        "updated_at": status.updated_at.isoformat(),
        "enumeration_done": status.enumeration_done,
        "error_message": status.error_message,
        "store_url": status.store_url,
        "idempotency_key": status.idempotency_key,
        "started_at": _iso(status.started_at),
        "finished_at": _iso(status.finished_at),
        "cancelled_at": _iso(status.cancelled_at),
        # The order strategy chosen and the enumeration's pages and store requests (section 10).
        "plan": status.plan,
        "kind": status.kind,
        "options": status.options,
        "conflict_count": status.conflict_count,
    }


def store_throttle_json(throttle: Throttle | None) -> dict[str, Any]:
    """The queue's store as the fleet's request budget sees it (GET of one queue): held until
    when (null when it is not held), and the share of its rate it runs at (1 when at full rate; a
    store that said slow down runs at half, recovering over minutes)."""
    return {
        "store_throttled_until": _iso(throttle.held_until) if throttle is not None else None,
        "store_budget_share": round(throttle.factor, 3) if throttle is not None else 1.0,
    }


def store_freshness_json(store: StoreFreshness) -> dict[str, Any]:
    """A store of the organisation and how current its customers are: its last completed sweep
    (or full bulk sync), the seconds since, and the incremental schedule's interval and verdict."""
    return {
        "store_id": str(store.store_id),
        "url": store.url,
        "last_sweep_at": _iso(store.last_sweep_at),
        "seconds_since_sweep": round(store.seconds_since_sweep, 3) if store.seconds_since_sweep is not None else None,
        "watermark": _iso(store.watermark),
        "sweep_every_s": store.sweep_every_s,
        "sweep_overdue": store.overdue,
    }


def line_json(line: QueueLine) -> dict[str, Any]:
    """A line of a queue's listing, errors included."""
    return {
        "id": str(line.id),
        "woo_customer_id": line.woo_customer_id,
        "email": line.email,
        "state": line.state,
        "process_count": line.process_count,
        "error_count": line.error_count,
        "error_message": line.error_message,
        "result_customer_id": str(line.result_customer_id) if line.result_customer_id is not None else None,
        "was_update": line.was_update,
        "outcome": line.outcome,
        "last_process_date": _iso(line.last_process_date),
        "created_at": line.created_at.isoformat(),
        "updated_at": line.updated_at.isoformat(),
    }


def activity_json(entry: ActivityEntry) -> dict[str, Any]:
    """An entry of a queue's activity log."""
    return {
        "id": str(entry.id),
        "queue_line_id": str(entry.queue_line_id) if entry.queue_line_id is not None else None,
        "activity_type": entry.activity_type,
        "status": entry.status,
        "message": entry.message,
        "details": entry.details,
        "created_at": entry.created_at.isoformat(),
    }


def conflict_json(conflict: ConflictRecord) -> dict[str, Any]:
    """A conflict of a queue: a field edited locally that the store says otherwise, and what the sync did."""
    return {
        "id": str(conflict.id),
        "queue_line_id": str(conflict.queue_line_id),
        "customer_id": str(conflict.customer_id) if conflict.customer_id is not None else None,
        "woo_customer_id": conflict.woo_customer_id,
        "field": conflict.field,
        "local_value": conflict.local_value,
        "store_value": conflict.store_value,
        "resolution": conflict.resolution,
        "created_at": conflict.created_at.isoformat(),
    }
