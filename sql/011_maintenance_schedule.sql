-- Maintenance the producers run on a schedule (docs/contract.md section 10, "Schedules"): today
-- retention, the `woosync prune` of queues finished more than WOOSYNC_PRUNE_KEEP_DAYS ago, every
-- WOOSYNC_PRUNE_EVERY_S. One row per task. A producer runs a task only while it holds the row
-- (FOR UPDATE SKIP LOCKED, in the transaction that does the work and moves `next_run_at` on):
-- one runner at a time however many producers run, and a runner that dies mid-way rolls back,
-- leaving the task due for the next.
CREATE TABLE maintenance_task (
    task         text PRIMARY KEY CHECK (task IN ('prune')),
    next_run_at  timestamptz NOT NULL DEFAULT now(),
    last_run_at  timestamptz,
    -- What the last run did, e.g. {"deleted_queues": 12, "keep_days": 30}.
    last_result  jsonb,
    last_error   text,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
INSERT INTO maintenance_task (task) VALUES ('prune');
