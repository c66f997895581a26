-- Fair, bounded dispatch and pause/resume (docs/contract.md sections 4 and 10,
-- docs/architecture.md "Dispatch").
--
-- Lines gain `queued` between `draft` and `processing`: published, not yet claimed. The
-- dispatcher moves draft lines to queued in the transaction that picks them (SKIP LOCKED), then
-- publishes them; a line left queued longer than the re-publish timeout (its message lost with
-- a dispatcher that died between commit and publish) is published again. `updated_at` of a
-- queued line is the time it was (last) published: only its claim updates it next.
--
-- Queues gain `paused`: `paused_at` set, work still pending. A paused queue publishes nothing
-- more; lines already queued finish (docs/contract.md section 10).
--
-- The counters keep the statement-level, transition-table design of 001_foundation.sql: the
-- three trigger functions are replaced with the same shape plus `queued`.

ALTER TABLE woo_customer_sync_queue
    ADD COLUMN queued_count  integer NOT NULL DEFAULT 0 CHECK (queued_count >= 0),
    ADD COLUMN paused_at     timestamptz,
    ADD COLUMN paused_by     text,
    -- When the dispatcher last published lines of this queue: round-robin order across syncs.
    ADD COLUMN dispatched_at timestamptz;

ALTER TABLE woo_customer_sync_queue DROP CONSTRAINT woo_customer_sync_queue_check;
ALTER TABLE woo_customer_sync_queue ADD CONSTRAINT woo_customer_sync_queue_counts_sum
    CHECK (total_count = draft_count + queued_count + processing_count + done_count + failed_count + cancelled_count);
ALTER TABLE woo_customer_sync_queue DROP CONSTRAINT woo_customer_sync_queue_state_check;
ALTER TABLE woo_customer_sync_queue ADD CONSTRAINT woo_customer_sync_queue_state_check
    CHECK (state IN ('draft', 'processing', 'paused', 'partial', 'done', 'failed', 'cancelled'));
ALTER TABLE woo_customer_sync_queue_line DROP CONSTRAINT woo_customer_sync_queue_line_state_check;
ALTER TABLE woo_customer_sync_queue_line ADD CONSTRAINT woo_customer_sync_queue_line_state_check
    CHECK (state IN ('draft', 'queued', 'processing', 'done', 'failed', 'cancelled'));

-- The dispatcher's scan: unfinished, unpaused queues with draft lines.
CREATE INDEX idx_woo_sync_queue_dispatchable ON woo_customer_sync_queue (dispatched_at NULLS FIRST)
    WHERE state IN ('draft', 'processing') AND draft_count > 0 AND paused_at IS NULL AND cancelled_at IS NULL;
-- Queued lines by age: the re-publish sweep.
CREATE INDEX idx_woo_queue_line_queued ON woo_customer_sync_queue_line (updated_at) WHERE state = 'queued';
-- Unfinished queues now include paused ones (the 001 index still serves draft/processing).
CREATE INDEX idx_woo_sync_queue_paused ON woo_customer_sync_queue (org_id) WHERE state = 'paused';

-- ---------------------------------------------------------------------------------------------
-- Counter deltas, once per statement, in queue id order (as in 001).
CREATE OR REPLACE FUNCTION woo_sync_apply_count_deltas() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    delta record;
BEGIN
    FOR delta IN
        WITH moves AS (
            SELECT queue_id, state, 1 AS n FROM new_lines
            UNION ALL
            SELECT queue_id, state, -1 AS n FROM old_lines
        )
        SELECT queue_id,
               sum(n) AS total,
               sum(n) FILTER (WHERE state = 'draft') AS draft,
               sum(n) FILTER (WHERE state = 'queued') AS queued,
               sum(n) FILTER (WHERE state = 'processing') AS processing,
               sum(n) FILTER (WHERE state = 'done') AS done,
               sum(n) FILTER (WHERE state = 'failed') AS failed,
               sum(n) FILTER (WHERE state = 'cancelled') AS cancelled
        FROM moves
        GROUP BY queue_id
        ORDER BY queue_id
    LOOP
        CONTINUE WHEN delta.total = 0
            AND coalesce(delta.draft, 0) = 0 AND coalesce(delta.queued, 0) = 0
            AND coalesce(delta.processing, 0) = 0
            AND coalesce(delta.done, 0) = 0 AND coalesce(delta.failed, 0) = 0
            AND coalesce(delta.cancelled, 0) = 0;
        UPDATE woo_customer_sync_queue
           SET total_count      = total_count      + delta.total,
               draft_count      = draft_count      + coalesce(delta.draft, 0),
               queued_count     = queued_count     + coalesce(delta.queued, 0),
               processing_count = processing_count + coalesce(delta.processing, 0),
               done_count       = done_count       + coalesce(delta.done, 0),
               failed_count     = failed_count     + coalesce(delta.failed, 0),
               cancelled_count  = cancelled_count  + coalesce(delta.cancelled, 0)
         WHERE id = delta.queue_id;
        PERFORM pg_notify('woosync_queue_changed', delta.queue_id::text);
    END LOOP;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION woo_sync_counts_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    delta record;
BEGIN
    FOR delta IN
        SELECT queue_id,
               count(*) AS total,
               count(*) FILTER (WHERE state = 'draft') AS draft,
               count(*) FILTER (WHERE state = 'queued') AS queued,
               count(*) FILTER (WHERE state = 'processing') AS processing,
               count(*) FILTER (WHERE state = 'done') AS done,
               count(*) FILTER (WHERE state = 'failed') AS failed,
               count(*) FILTER (WHERE state = 'cancelled') AS cancelled
        FROM new_lines GROUP BY queue_id ORDER BY queue_id
    LOOP
        UPDATE woo_customer_sync_queue
           SET total_count      = total_count      + delta.total,
               draft_count      = draft_count      + delta.draft,
               queued_count     = queued_count     + delta.queued,
               processing_count = processing_count + delta.processing,
               done_count       = done_count       + delta.done,
               failed_count     = failed_count     + delta.failed,
               cancelled_count  = cancelled_count  + delta.cancelled
         WHERE id = delta.queue_id;
        PERFORM pg_notify('woosync_queue_changed', delta.queue_id::text);
    END LOOP;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION woo_sync_counts_after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    delta record;
BEGIN
    FOR delta IN
        SELECT queue_id,
               count(*) AS total,
               count(*) FILTER (WHERE state = 'draft') AS draft,
               count(*) FILTER (WHERE state = 'queued') AS queued,
               count(*) FILTER (WHERE state = 'processing') AS processing,
               count(*) FILTER (WHERE state = 'done') AS done,
               count(*) FILTER (WHERE state = 'failed') AS failed,
               count(*) FILTER (WHERE state = 'cancelled') AS cancelled
        FROM old_lines GROUP BY queue_id ORDER BY queue_id
    LOOP
        -- A cascading delete of the queue itself leaves nothing to update.
        UPDATE woo_customer_sync_queue
           SET total_count      = total_count      - delta.total,
               draft_count      = draft_count      - delta.draft,
               queued_count     = queued_count     - delta.queued,
               processing_count = processing_count - delta.processing,
               done_count       = done_count       - delta.done,
               failed_count     = failed_count     - delta.failed,
               cancelled_count  = cancelled_count  - delta.cancelled
         WHERE id = delta.queue_id;
    END LOOP;
    RETURN NULL;
END;
$$;

-- ---------------------------------------------------------------------------------------------
-- The queue's state (001's rule, with queued lines pending and `paused` while work remains).
CREATE OR REPLACE FUNCTION woo_sync_queue_derive_state() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    pending  integer := NEW.draft_count + NEW.queued_count + NEW.processing_count;
    -- Once started, a queue stays started: retrying every line of an all-failed queue puts
    -- them all back in draft, and that is `processing` again, not `draft`.
    started  boolean := NEW.started_at IS NOT NULL
                        OR NEW.queued_count + NEW.processing_count + NEW.done_count + NEW.failed_count
                           + NEW.cancelled_count > 0;
BEGIN
    IF NEW.cancelled_at IS NOT NULL THEN
        NEW.state := 'cancelled';
    ELSIF NOT NEW.enumeration_done OR pending > 0 THEN
        NEW.state := CASE WHEN NEW.paused_at IS NOT NULL THEN 'paused'
                          WHEN started THEN 'processing' ELSE 'draft' END;
    -- A sync request that failed (store unreachable, credentials refused...) ends the queue
    -- like a failed line would.
    ELSIF NEW.failed_count = 0 AND NEW.error_message IS NULL THEN
        NEW.state := 'done';
    ELSIF NEW.done_count = 0 THEN
        NEW.state := 'failed';
    ELSE
        NEW.state := 'partial';
    END IF;

    IF NEW.failed_count > coalesce(OLD.failed_count, 0) THEN
        NEW.is_action_required := true;
    END IF;
    IF started AND NEW.started_at IS NULL THEN
        NEW.started_at := now();
    END IF;
    IF NEW.state IN ('done', 'failed', 'partial', 'cancelled') THEN
        NEW.finished_at := coalesce(NEW.finished_at, now());
    ELSE
        NEW.finished_at := NULL;
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;
