"""Upserting mapped customers, many per statement, race-free with any number of consumers.

Identity (docs/contract.md section 5): a row already synced from the same store with the same WooCommerce
id is the same customer even if its email changed; otherwise the row with the same
(org_id, lower(email)); otherwise a new row. Two statements per round:

1. UPDATE the rows found by (org_id, woo_store_url, woo_customer_id);
2. INSERT the rest ... ON CONFLICT (org_id, lower(email)) DO UPDATE, linking the row to the store.

Two consumers inserting the same customer at once meet on the unique index, and the second
becomes an update. A statement may not touch one row twice, so a batch is split into rounds in
which every email and every store identity appears once.

`write_customers` is what a consumer calls: one statement reads (and locks) the batch's current
rows with the values woosync last wrote there and each queue's kind and conflict policy;
shared.customer_changes decides, row by row, create / update / unchanged and the conflicts; then
only the rows that change are written (a row whose values are unchanged gets no UPDATE, so its
updated_at stays), and what woosync wrote is recorded in one statement. A preview's rows are
decided the same way and nothing is written (docs/contract.md section 10).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from shared.customer_changes import DEFAULT_CONFLICT_POLICY, Conflict, decide_change
from shared.mapping import SYNC_OWNED_TAGS, CustomerRow


@dataclass(frozen=True, slots=True)
class UpsertedCustomer:
    """A line's customer row after its write (or, for a preview, what the write would do).

    was_update: the row existed before (true) or is (would be) created (false); customer_id is
    None only for a preview's new customer. outcome: created | updated | unchanged, or for a
    preview would_create | would_update | unchanged. changes: a preview's {field: [old, new]}."""

    customer_id: UUID | None
    was_update: bool
    outcome: str | None = None
    changes: dict[str, list[Any]] | None = None
    conflicts: tuple[Conflict, ...] = ()


@dataclass(frozen=True, slots=True)
class CustomerWrite:
    """A mapped customer of a line: its queue (whose kind and conflict policy apply) and organisation."""

    queue_id: UUID
    org_id: UUID
    row: CustomerRow


@dataclass(frozen=True, slots=True)
class EmailTaken:
    """The customer's new email already belongs to another customer row of the organisation."""

    email: str


EMAIL_KEY = "customer_org_email_key"  # the unique index on (org_id, lower(email))


_ALIAS = (
    "i(ord, org_id, store_url, woo_customer_id, email, name, phone, company, segment, status, "
    "lifetime_value, acquisition_date, last_interaction_date, address, metadata, tags)"
)
_UNNEST = (
    "unnest($1::int[], $2::uuid[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[], "
    "$8::text[], $9::text[], $10::text[], $11::numeric[], $12::timestamptz[], $13::timestamptz[], "
    "$14::text[], $15::text[], $16::text[])"
)
# Other systems' tags first, in their order, then the tags this sync owns (shared.mapping.merge_tags).
_FOREIGN_TAGS = (
    "ARRAY(SELECT f.t FROM (SELECT u.t, min(u.n) AS n FROM unnest(c.tags) WITH ORDINALITY AS u(t, n)"
    " WHERE u.t IS NOT NULL AND u.t <> ALL($17::text[]) GROUP BY u.t) f ORDER BY f.n)"
)
_SYNCED_TAGS = "ARRAY(SELECT jsonb_array_elements_text(i.tags::jsonb))"

UPDATE_BY_STORE_IDENTITY = f"""
UPDATE customer AS c
   SET email = i.email, name = i.name, phone = i.phone, company = i.company, segment = i.segment,
       status = i.status, lifetime_value = i.lifetime_value, acquisition_date = i.acquisition_date,
       last_interaction_date = i.last_interaction_date, address = i.address::jsonb,
       metadata = i.metadata::jsonb, tags = {_FOREIGN_TAGS} || {_SYNCED_TAGS},
       updated_at = now()
  FROM {_UNNEST} AS {_ALIAS}
 WHERE c.org_id = i.org_id AND c.woo_store_url = i.store_url AND c.woo_customer_id = i.woo_customer_id
RETURNING i.ord, c.id
"""

INSERT_OR_UPDATE_BY_EMAIL = f"""
INSERT INTO customer AS c (org_id, email, name, phone, company, segment, status, lifetime_value,
                           acquisition_date, last_interaction_date, address, metadata, tags,
                           woo_store_url, woo_customer_id)
SELECT i.org_id, i.email, i.name, i.phone, i.company, i.segment, i.status, i.lifetime_value,
       i.acquisition_date, i.last_interaction_date, i.address::jsonb, i.metadata::jsonb,
       {_SYNCED_TAGS}, i.store_url, i.woo_customer_id
  FROM {_UNNEST} AS {_ALIAS}
ON CONFLICT (org_id, lower(email)) DO UPDATE
   SET email = EXCLUDED.email, name = EXCLUDED.name, phone = EXCLUDED.phone,
       company = EXCLUDED.company, segment = EXCLUDED.segment, status = EXCLUDED.status,
       lifetime_value = EXCLUDED.lifetime_value, acquisition_date = EXCLUDED.acquisition_date,
       last_interaction_date = EXCLUDED.last_interaction_date, address = EXCLUDED.address,
       metadata = EXCLUDED.metadata,
       tags = {_FOREIGN_TAGS} || EXCLUDED.tags,
       woo_store_url = EXCLUDED.woo_store_url, woo_customer_id = EXCLUDED.woo_customer_id,
       updated_at = now()
RETURNING c.org_id, lower(c.email) AS email_key, c.id, (xmax <> 0) AS was_update
"""


def _arguments(ords: Sequence[int], org_ids: Sequence[UUID], rows: Sequence[CustomerRow]) -> list[object]:
    return [
        list(ords),
        list(org_ids),
        [r.store_url for r in rows],
        [r.woo_customer_id for r in rows],
        [r.email for r in rows],
        [r.name for r in rows],
        [r.phone for r in rows],
        [r.company for r in rows],
        [r.segment for r in rows],
        [r.status for r in rows],
        [r.lifetime_value for r in rows],
        [r.acquisition_date for r in rows],
        [r.last_interaction_date for r in rows],
        [orjson.dumps(r.address).decode() for r in rows],
        [orjson.dumps(r.metadata).decode() for r in rows],
        [orjson.dumps(r.tags).decode() for r in rows],
        sorted(SYNC_OWNED_TAGS),
    ]


def _rounds(items: Sequence[tuple[UUID, CustomerRow]]) -> list[list[int]]:
    """Split indexes into rounds where no email and no store identity repeats."""
    rounds: list[tuple[set, list[int]]] = []
    for index, (org_id, row) in enumerate(items):
        keys = {("email", org_id, row.email), ("woo", org_id, row.store_url, row.woo_customer_id)}
        for seen, members in rounds:
            if not keys & seen:
                seen.update(keys)
                members.append(index)
                break
        else:
            rounds.append((set(keys), [index]))
    return [members for _, members in rounds]


async def upsert_customers(
    conn: asyncpg.Connection, items: Sequence[tuple[UUID, CustomerRow]], *, linked: Sequence[bool] | None = None
) -> list[UpsertedCustomer]:
    """Upsert (org_id, row) pairs inside the caller's transaction; results in input order.
    `linked` (when known) says which rows already exist with their store identity: the UPDATE
    by store identity is only run for those.

    Raises asyncpg.UniqueViolationError when a row's new email belongs to another customer
    (`upsert_customers_isolating_taken_emails` isolates that row instead)."""
    results: list[UpsertedCustomer | None] = [None] * len(items)
    for members in _rounds(items):
        by_identity = [i for i in members if linked is None or linked[i]]
        if by_identity:
            rows = [items[i][1] for i in by_identity]
            orgs = [items[i][0] for i in by_identity]
            updated = await conn.fetch(UPDATE_BY_STORE_IDENTITY, *_arguments(by_identity, orgs, rows))
            for record in updated:
                results[record["ord"]] = UpsertedCustomer(record["id"], True)
        rest = [i for i in members if results[i] is None]
        if not rest:
            continue
        inserted = await conn.fetch(
            INSERT_OR_UPDATE_BY_EMAIL,
            *_arguments(rest, [items[i][0] for i in rest], [items[i][1] for i in rest]),
        )
        by_email = {(r["org_id"], r["email_key"]): r for r in inserted}
        for i in rest:
            record = by_email[(items[i][0], items[i][1].email.lower())]
            results[i] = UpsertedCustomer(record["id"], record["was_update"])
    return [r for r in results if r is not None]


async def upsert_customers_isolating_taken_emails(
    conn: asyncpg.Connection, items: Sequence[tuple[UUID, CustomerRow]], *, linked: Sequence[bool] | None = None
) -> list[UpsertedCustomer | EmailTaken]:
    """Like `upsert_customers`, but a row whose new email belongs to another customer comes
    back as EmailTaken instead of sinking the batch: after such a conflict the rows are upserted
    again one by one, each under its own savepoint. Runs inside the caller's transaction.

    Any other unique violation (two consumers inserting the same store customer at once) is
    raised: the caller runs the batch again."""
    if not items:
        return []
    try:
        async with conn.transaction():
            return list(await upsert_customers(conn, items, linked=linked))
    except asyncpg.UniqueViolationError:
        pass
    results: list[UpsertedCustomer | EmailTaken] = []
    for index, item in enumerate(items):
        try:
            async with conn.transaction():
                results.extend(await upsert_customers(conn, [item], linked=None if linked is None else [linked[index]]))
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name != EMAIL_KEY:
                raise
            results.append(EmailTaken(item[1].email))
    return results


# Each line's queue (kind, conflict policy) and its customer's current row, found as the upsert
# finds it (store identity first, then email), locked until the transaction ends, with the
# values woosync last wrote there.
READ_CURRENT = """
SELECT i.ord, q.kind, coalesce(q.options->>'conflict_policy', o.conflict_policy) AS policy,
       m.id, m.email, m.name, m.phone, m.company, m.segment, m.status, m.lifetime_value,
       m.acquisition_date, m.last_interaction_date, m.address, m.metadata, m.tags,
       m.woo_store_url, m.woo_customer_id, w.written
  FROM unnest($1::int[], $2::uuid[], $3::uuid[], $4::text[], $5::bigint[], $6::text[])
       AS i(ord, queue_id, org_id, store_url, woo_customer_id, email)
  JOIN woo_customer_sync_queue q ON q.id = i.queue_id
  JOIN organization o ON o.id = q.org_id
  LEFT JOIN LATERAL (
      SELECT c.* FROM customer c
       WHERE c.org_id = i.org_id
         AND ((c.woo_store_url = i.store_url AND c.woo_customer_id = i.woo_customer_id) OR lower(c.email) = i.email)
       ORDER BY (c.woo_store_url = i.store_url AND c.woo_customer_id = i.woo_customer_id) IS TRUE DESC
       LIMIT 1
       FOR UPDATE
  ) m ON true
  LEFT JOIN customer_sync_written w ON w.customer_id = m.id
"""

RECORD_WRITTEN = """
INSERT INTO customer_sync_written AS w (customer_id, org_id, written)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::jsonb[])
ON CONFLICT (customer_id) DO UPDATE SET written = EXCLUDED.written, written_at = now()
 WHERE w.written IS DISTINCT FROM EXCLUDED.written
"""

_PREVIEW_OUTCOMES = {"create": "would_create", "update": "would_update", "unchanged": "unchanged"}


async def write_customers(conn: asyncpg.Connection, items: Sequence[CustomerWrite]) -> list[UpsertedCustomer | EmailTaken]:
    """Decide and write the batch's customers inside the caller's transaction; results in input
    order. A sync's row is written only when it changes, under its queue's conflict policy; a
    preview's is never written (its result says what a sync would do, with the changes). A row
    whose new email belongs to another customer comes back as EmailTaken."""
    if not items:
        return []
    found = await conn.fetch(
        READ_CURRENT,
        list(range(len(items))),
        [item.queue_id for item in items],
        [item.org_id for item in items],
        [item.row.store_url for item in items],
        [item.row.woo_customer_id for item in items],
        [item.row.email for item in items],
    )
    current = {record["ord"]: record for record in found}
    results: list[UpsertedCustomer | EmailTaken | None] = [None] * len(items)
    to_write: list[int] = []
    decided = []
    for index, item in enumerate(items):
        record = current[index]
        row = record if record["id"] is not None else None
        change = decide_change(item.row, row, record["written"], record["policy"] or DEFAULT_CONFLICT_POLICY)
        decided.append(change)
        if record["kind"] == "preview":
            results[index] = UpsertedCustomer(
                record["id"], row is not None, _PREVIEW_OUTCOMES[change.action],
                {field: [old, new] for field, (old, new) in change.changes.items()}, change.conflicts)
        elif change.action == "unchanged":
            results[index] = UpsertedCustomer(record["id"], True, "unchanged", None, change.conflicts)
        else:
            to_write.append(index)
    if to_write:
        written = await upsert_customers_isolating_taken_emails(
            conn,
            [(items[i].org_id, decided[i].row) for i in to_write],
            linked=[current[i]["id"] is not None and current[i]["woo_customer_id"] == items[i].row.woo_customer_id
                    and current[i]["woo_store_url"] == items[i].row.store_url for i in to_write],
        )
        for index, result in zip(to_write, written):
            if isinstance(result, EmailTaken):
                results[index] = result
            else:
                results[index] = UpsertedCustomer(result.customer_id, result.was_update,
                                                  "updated" if result.was_update else "created", None,
                                                  decided[index].conflicts)
    records: dict[UUID, tuple[UUID, dict[str, Any]]] = {}
    for index, result in enumerate(results):
        if isinstance(result, UpsertedCustomer) and current[index]["kind"] != "preview" and result.customer_id is not None:
            if decided[index].written != current[index]["written"] or current[index]["id"] != result.customer_id:
                records[result.customer_id] = (items[index].org_id, decided[index].written)
    if records:
        await conn.execute(RECORD_WRITTEN, list(records), [org for org, _ in records.values()],
                           [written for _, written in records.values()])
    return [r for r in results if r is not None]
