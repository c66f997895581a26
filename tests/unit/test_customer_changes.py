"""shared.customer_changes: create / update / unchanged, and conflicts under each policy."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from shared.customer_changes import decide_change, row_values
from shared.mapping import CustomerRow

pytestmark = pytest.mark.unit

MAPPED = CustomerRow(
    email="ada@example.com", name="Ada Lovelace", phone="+44 1", company="Engines", segment="individual",
    status="active", lifetime_value=Decimal("12.50"), acquisition_date=datetime(2024, 1, 2, tzinfo=UTC),
    last_interaction_date=datetime(2024, 3, 4, tzinfo=UTC), address={"city": "London"}, metadata={"woocommerce_id": 7},
    tags=["woocommerce"], woo_customer_id=7, store_url="https://shop.example.com",
)


def current(row: CustomerRow = MAPPED, **changed) -> dict:
    values = {field.name: getattr(row, field.name) for field in dataclasses.fields(row)}
    values.update({"tags": list(row.tags), "woo_store_url": row.store_url, "woo_customer_id": row.woo_customer_id})
    values.update(changed)
    return values


def test_a_row_equal_to_the_mapped_values_is_unchanged_with_no_changes():
    change = decide_change(MAPPED, current(), row_values(MAPPED), "store_wins")
    assert change.action == "unchanged" and change.changes == {} and change.conflicts == ()


def test_a_new_customer_is_created_with_every_value_as_a_change():
    change = decide_change(MAPPED, None, None, "local_wins")
    assert change.action == "create" and change.changes["lifetime_value"] == (None, "12.50")
    assert change.written == row_values(MAPPED)


def test_a_field_the_store_changed_and_nobody_edited_is_written_under_both_policies():
    written = row_values(dataclasses.replace(MAPPED, company="Old Co"))
    for policy in ("store_wins", "local_wins"):
        change = decide_change(MAPPED, current(company="Old Co"), written, policy)
        assert change.action == "update" and change.row.company == "Engines" and change.conflicts == ()
        assert change.changes == {"company": ("Old Co", "Engines")}


def test_a_local_edit_is_kept_under_local_wins_and_recorded_as_a_conflict():
    change = decide_change(MAPPED, current(phone="+44 9"), row_values(MAPPED), "local_wins")
    assert change.action == "unchanged" and change.row.phone == "+44 9"
    [conflict] = change.conflicts
    assert (conflict.field, conflict.local_value, conflict.store_value, conflict.resolution) == (
        "phone", "+44 9", "+44 1", "kept_local")
    assert change.written["phone"] == "+44 1"  # still an edit the next time


def test_a_local_edit_is_overwritten_under_store_wins_and_recorded_as_a_conflict():
    change = decide_change(MAPPED, current(phone="+44 9"), row_values(MAPPED), "store_wins")
    assert change.action == "update" and change.row.phone == "+44 1"
    assert [c.resolution for c in change.conflicts] == ["store_written"]


def test_without_a_record_of_what_woosync_wrote_no_field_counts_as_edited():
    change = decide_change(MAPPED, current(phone="+44 9"), None, "local_wins")
    assert change.action == "update" and change.row.phone == "+44 1" and change.conflicts == ()


def test_a_local_edit_the_store_agrees_with_is_no_conflict():
    written = row_values(dataclasses.replace(MAPPED, phone="+44 0"))
    change = decide_change(MAPPED, current(), written, "local_wins")
    assert change.action == "unchanged" and change.conflicts == ()


def test_foreign_tags_are_kept_and_a_row_found_by_email_is_linked():
    change = decide_change(MAPPED, current(tags=["vip", "woocommerce"], woo_store_url=None, woo_customer_id=None),
                           None, "store_wins")
    assert change.action == "update" and "tags" not in change.changes
    assert change.changes["woo_customer_id"] == (None, 7)


def test_an_unknown_policy_names_the_allowed_values():
    with pytest.raises(ValueError, match="store_wins, local_wins"):
        decide_change(MAPPED, None, None, "newest_wins")
