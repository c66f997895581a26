"""The data layer: every statement woosync runs on its tables, one module per concept.

Rules that hold for every function here:
- Anything that reads or writes a sync queue on behalf of a caller is scoped by `org_id`:
  another organisation's queue id behaves exactly like an unknown one (None, [] or 0, no effect).
- Queue counters and the queue `state` are never written here: the triggers of
  sql/001_foundation.sql derive them from line transitions, in the same transaction.
- Batch operations are one statement each, and take line ids in sorted order so that two
  consumers updating overlapping batches lock rows in the same order.
- `conn` is an asyncpg Connection (possibly inside the caller's transaction) or a Pool;
  functions that need several statements open their own transaction (a savepoint when the
  caller already has one).
"""
