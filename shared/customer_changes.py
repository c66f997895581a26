"""What a sync does to one customer row: create, update or leave it unchanged, and the conflicts
between local edits and the store (docs/contract.md section 10, "Conflicts").

Pure: the mapped row, the current row (as read) and the values woosync last wrote in, the
decision out. The consumer runs it for every line, for syncs and previews alike, so a preview
reports exactly what a sync would do.

- A field is *edited locally* when its current value differs from the value woosync last wrote
  there. With nothing recorded (a row woosync never wrote, or written before woosync recorded
  its writes) no field counts as edited.
- A *conflict* is a field edited locally whose store value differs from its current value.
  Under `store_wins` the store's value is written; under `local_wins` the local value is kept.
  A local edit the store agrees with is no conflict.
- The row is *unchanged* when the values to write equal the current ones: no UPDATE at all.
- Tags are not compared field by field: the sync owns its tags and keeps everyone else's
  (shared.mapping.merge_tags); a change of the sync's tags is a change like any other.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from shared.mapping import CustomerRow, merge_tags

ConflictPolicy = Literal["store_wins", "local_wins"]
CONFLICT_POLICIES: tuple[str, ...] = ("store_wins", "local_wins")
DEFAULT_CONFLICT_POLICY: ConflictPolicy = "store_wins"

# The mapped fields a local edit may touch, in the order they are reported.
FIELDS: tuple[str, ...] = (
    "email", "name", "phone", "company", "segment", "status", "lifetime_value", "acquisition_date",
    "last_interaction_date", "address", "metadata",
)

Action = Literal["create", "update", "unchanged"]


@dataclass(frozen=True, slots=True)
class Conflict:
    field: str
    local_value: Any  # JSON form (see json_value)
    store_value: Any
    resolution: Literal["kept_local", "store_written"]


@dataclass(frozen=True, slots=True)
class CustomerChange:
    """The decision for one customer. `row`: the values to write (the store's, with the local
    values kept under local_wins); `changes`: {field: (old, new)} in JSON form, for every field
    that a write changes (all of them for a new row); `written`: what woosync will have written
    (the JSON record of customer_sync_written) once `row` is written."""

    action: Action
    row: CustomerRow
    changes: dict[str, tuple[Any, Any]]
    conflicts: tuple[Conflict, ...]
    written: dict[str, Any]


def json_value(value: Any) -> Any:
    """A field's value in the one JSON form used for comparing, recording and reporting:
    money as a string with two decimals, times as ISO 8601 in UTC, everything else as is."""
    if isinstance(value, Decimal):
        return f"{value:.2f}"
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return value


def row_values(row: CustomerRow) -> dict[str, Any]:
    """The mapped fields of a row in JSON form."""
    return {field: json_value(getattr(row, field)) for field in FIELDS}


def decide_change(
    mapped: CustomerRow,
    current: Mapping[str, Any] | None,
    written: Mapping[str, Any] | None,
    policy: str,
) -> CustomerChange:
    """What to do with `mapped` given the `current` row (None: no row yet; otherwise its columns,
    tags included) and the values woosync last `written` there (None: nothing recorded)."""
    if policy not in CONFLICT_POLICIES:
        raise ValueError(f"unknown conflict policy {policy!r}: expected one of {', '.join(CONFLICT_POLICIES)}")
    store = row_values(mapped)
    if current is None:
        changes = {field: (None, value) for field, value in store.items() if value is not None}
        changes["tags"] = (None, list(mapped.tags))
        return CustomerChange("create", mapped, changes, (), store)

    local = {field: json_value(current[field]) for field in FIELDS}
    conflicts: list[Conflict] = []
    kept: dict[str, Any] = {}
    new_written = dict(store)
    for field in FIELDS:
        if written is None or field not in written or local[field] == written[field]:
            continue  # not edited locally
        if store[field] == local[field]:
            continue  # edited locally, and the store now agrees: no conflict
        if policy == "local_wins":
            conflicts.append(Conflict(field, local[field], store[field], "kept_local"))
            kept[field] = current[field]
            new_written[field] = written[field]  # still edited locally next time
        else:
            conflicts.append(Conflict(field, local[field], store[field], "store_written"))

    row = dataclasses.replace(mapped, **kept) if kept else mapped
    values = row_values(row)
    changes = {field: (local[field], values[field]) for field in FIELDS if local[field] != values[field]}
    current_tags = list(current["tags"] or [])
    tags = merge_tags(current_tags, list(mapped.tags))
    if tags != current_tags:
        changes["tags"] = (current_tags, tags)
    # A row found by its email is linked to the store's customer by the write.
    for column, value in (("woo_store_url", mapped.store_url), ("woo_customer_id", mapped.woo_customer_id)):
        if current.get(column) != value:
            changes[column] = (current.get(column), value)
    return CustomerChange("update" if changes else "unchanged", row, changes, tuple(conflicts), new_written)
