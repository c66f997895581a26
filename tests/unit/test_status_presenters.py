"""services.status.presenters: the status API's JSON of a queue, a line and an activity entry
(docs/contract.md section 7), key for key and in order, ready for any JSON encoder."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from services.status.presenters import activity_json, line_json, queue_status_json
from shared.repository.activity import ActivityEntry
from shared.repository.queue_lines import QueueLine
from shared.repository.sync_queues import QueueStatus

pytestmark = pytest.mark.unit

NOW = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)
QUEUE_ID, LINE_ID, CUSTOMER_ID, ENTRY_ID = (uuid.UUID(int=n) for n in (1, 2, 3, 4))


def test_a_queue_status_is_the_contracts_object_in_a_fixed_key_order() -> None:
    status = QueueStatus(
        id=QUEUE_ID, org_id=uuid.uuid4(), queue_name="nightly", state="processing", total_count=10, draft_count=4,
        processing_count=1, done_count=4, failed_count=1, cancelled_count=0, progress=50, is_action_required=True,
        items_per_min=2.5, eta_seconds=120, created_at=NOW, updated_at=NOW, enumeration_done=False, error_message=None,
        store_url="https://shop.example.com", idempotency_key="k", store_id=uuid.uuid4(), created_by="ops",
        options={"role": "all"}, started_at=NOW - timedelta(minutes=2), finished_at=None, cancelled_at=None,
    )
    data = queue_status_json(status)
    assert list(data.items()) == [
        ("id", str(QUEUE_ID)), ("queue_name", "nightly"), ("state", "processing"), ("total_count", 10),
        ("draft_count", 4), ("queued_count", 0), ("processing_count", 1), ("done_count", 4), ("failed_count", 1), ("cancelled_count", 0),
        ("progress", 50), ("is_action_required", True), ("items_per_min", 2.5), ("eta_seconds", 120),
        ("created_at", "2026-01-01T12:00:00.123456+00:00"), ("updated_at", "2026-01-01T12:00:00.123456+00:00"),
        ("enumeration_done", False), ("error_message", None), ("store_url", "https://shop.example.com"),
        ("idempotency_key", "k"), ("started_at", "2026-01-01T11:58:00.123456+00:00"), ("finished_at", None),
        ("cancelled_at", None), ("plan", None), ("kind", "sync"), ("options", {"role": "all"}), ("conflict_count", 0),
    ]
    json.dumps(data)


def test_a_line_shows_its_outcome_and_errors_with_ids_and_times_as_text() -> None:
    line = QueueLine(
        id=LINE_ID, woo_customer_id=7, email="ada@example.com", state="done", process_count=2, error_count=1,
        error_message=None, result_customer_id=CUSTOMER_ID, was_update=True, last_process_date=NOW, created_at=NOW,
        updated_at=NOW,
    )
    assert list(line_json(line).items()) == [
        ("id", str(LINE_ID)), ("woo_customer_id", 7), ("email", "ada@example.com"), ("state", "done"),
        ("process_count", 2), ("error_count", 1), ("error_message", None), ("result_customer_id", str(CUSTOMER_ID)),
        ("was_update", True), ("outcome", None), ("last_process_date", NOW.isoformat()), ("created_at", NOW.isoformat()),
        ("updated_at", NOW.isoformat()),
    ]
    pending = line_json(QueueLine(
        id=LINE_ID, woo_customer_id=8, email=None, state="draft", process_count=0, error_count=0, error_message=None,
        result_customer_id=None, was_update=None, last_process_date=None, created_at=NOW, updated_at=NOW,
    ))
    assert (pending["email"], pending["result_customer_id"], pending["was_update"], pending["last_process_date"]) == (
        None, None, None, None)


def test_an_activity_entry_keeps_its_details_as_recorded() -> None:
    entry = ActivityEntry(id=ENTRY_ID, queue_line_id=LINE_ID, activity_type="customer_sync", status="retry",
                          message="attempt 1 of 3", details={"attempt": 1, "reasons": ["store 503"]}, created_at=NOW)
    assert list(activity_json(entry).items()) == [
        ("id", str(ENTRY_ID)), ("queue_line_id", str(LINE_ID)), ("activity_type", "customer_sync"), ("status", "retry"),
        ("message", "attempt 1 of 3"), ("details", {"attempt": 1, "reasons": ["store 503"]}),
        ("created_at", NOW.isoformat()),
    ]
    queue_wide = activity_json(ActivityEntry(id=ENTRY_ID, queue_line_id=None, activity_type="cancel", status="cancelled",
                                             message=None, details=None, created_at=NOW))
    assert (queue_wide["queue_line_id"], queue_wide["details"]) == (None, None)
