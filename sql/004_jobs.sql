-- Sync jobs (docs/contract.md section 7): one request over several stores of an organisation,
-- each store its own sync queue under the job. A job has no counters or state of its own: both
-- are derived from its queues when read (shared/repository/jobs.py), so a job of one store is
-- the same as that store's sync. Queues keep working, and are pruned, exactly as without a job.

CREATE TABLE sync_job (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id           uuid NOT NULL REFERENCES organization(id) ON DELETE CASCADE,
    job_name         text NOT NULL,
    idempotency_key  text,
    created_by       text,
    options          jsonb NOT NULL DEFAULT '{}'::jsonb,
    store_count      integer NOT NULL CHECK (store_count >= 1),
    created_at       timestamptz NOT NULL DEFAULT now(),
    cancelled_at     timestamptz,
    cancelled_by     text
);
CREATE UNIQUE INDEX sync_job_idempotency_key ON sync_job (org_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX idx_sync_job_org_created ON sync_job (org_id, created_at DESC);

-- The queues of a job, in the order the request listed their stores. A queue belongs to one
-- job at most; deleting a queue (retention) or a job removes the link only.
CREATE TABLE sync_job_queue (
    queue_id   uuid PRIMARY KEY REFERENCES woo_customer_sync_queue(id) ON DELETE CASCADE,
    job_id     uuid NOT NULL REFERENCES sync_job(id) ON DELETE CASCADE,
    position   integer NOT NULL CHECK (position >= 0),
    UNIQUE (job_id, position)
);
