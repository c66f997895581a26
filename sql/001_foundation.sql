-- woosync foundation: organisations, API tokens, stores, customers, sync queues and their lines,
-- and the append-only activity log.
--
-- Queue counters are kept by statement-level triggers that apply per-state deltas from the
-- transition tables: O(lines changed) per statement and one lock on each queue row, never a
-- COUNT(*) recount (the seed's trigger was O(queue size) per row and lost updates under
-- concurrency). The queue's `state` is derived from its counters in one BEFORE UPDATE trigger,
-- so every writer sees the same rule (SPEC section 4).

CREATE TABLE organization (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL CHECK (btrim(name) <> ''),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- API tokens are stored as SHA-256 digests; the clear token is shown once, at creation.
CREATE TABLE api_token (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id        uuid NOT NULL REFERENCES organization(id) ON DELETE CASCADE,
    token_hash    bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    token_prefix  text NOT NULL,
    label         text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz,
    last_used_at  timestamptz
);
CREATE INDEX api_token_org_idx ON api_token (org_id);

-- A store's credentials, kept so that consumers can fetch orders without the secret travelling
-- in line messages. `credentials` is JSON {"consumer_key", "consumer_secret"}; when
-- WOOSYNC_SECRET_KEY is set it is a Fernet token instead (credentials_format = 'fernet').
CREATE TABLE woo_store (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id              uuid NOT NULL REFERENCES organization(id) ON DELETE CASCADE,
    url                 text NOT NULL,
    credentials         text NOT NULL,
    credentials_format  text NOT NULL DEFAULT 'plain' CHECK (credentials_format IN ('plain', 'fernet')),
    key_hint            text NOT NULL DEFAULT '',
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, url)
);

CREATE TABLE customer (
    id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id                 uuid NOT NULL REFERENCES organization(id) ON DELETE CASCADE,
    email                  text NOT NULL,
    name                   text NOT NULL,
    phone                  text,
    company                text,
    segment                text NOT NULL DEFAULT 'individual'
                           CHECK (segment IN ('enterprise', 'mid_market', 'smb', 'startup', 'individual')),
    status                 text NOT NULL DEFAULT 'prospect',
    lifetime_value         numeric(14,2) NOT NULL DEFAULT 0,
    acquisition_date       timestamptz,
    last_interaction_date  timestamptz,
    address                jsonb NOT NULL DEFAULT '{}'::jsonb,
    metadata               jsonb NOT NULL DEFAULT '{}'::jsonb,
    tags                   text[] NOT NULL DEFAULT '{}',
    -- Identity within a store (SPEC 5): the same store + woocommerce id is the same row even
    -- when the email changes.
    woo_store_url          text,
    woo_customer_id        bigint,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX customer_org_email_key ON customer (org_id, lower(email));
CREATE UNIQUE INDEX customer_org_woo_identity_key ON customer (org_id, woo_store_url, woo_customer_id)
    WHERE woo_customer_id IS NOT NULL;

CREATE TABLE woo_customer_sync_queue (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id              uuid NOT NULL REFERENCES organization(id) ON DELETE CASCADE,
    store_id            uuid REFERENCES woo_store(id) ON DELETE SET NULL,
    store_url           text,
    queue_name          text NOT NULL,
    source_system       text NOT NULL DEFAULT 'woocommerce',
    state               text NOT NULL DEFAULT 'draft'
                        CHECK (state IN ('draft', 'processing', 'partial', 'done', 'failed', 'cancelled')),

    -- Maintained by triggers on woo_customer_sync_queue_line; never written by the application.
    total_count         integer NOT NULL DEFAULT 0 CHECK (total_count >= 0),
    draft_count         integer NOT NULL DEFAULT 0 CHECK (draft_count >= 0),
    processing_count    integer NOT NULL DEFAULT 0 CHECK (processing_count >= 0),
    done_count          integer NOT NULL DEFAULT 0 CHECK (done_count >= 0),
    failed_count        integer NOT NULL DEFAULT 0 CHECK (failed_count >= 0),
    cancelled_count     integer NOT NULL DEFAULT 0 CHECK (cancelled_count >= 0),
    CHECK (total_count = draft_count + processing_count + done_count + failed_count + cancelled_count),

    process_count       integer NOT NULL DEFAULT 0,
    is_processing       boolean NOT NULL DEFAULT false,
    is_action_required  boolean NOT NULL DEFAULT false,
    -- Set by the producer once every customer of the store has a line.
    enumeration_done    boolean NOT NULL DEFAULT false,
    enumerated_at       timestamptz,
    cancelled_at        timestamptz,
    cancelled_by        text,
    started_at          timestamptz,
    finished_at         timestamptz,
    error_message       text,

    batch_size          integer DEFAULT 50,
    batch_delay_ms      integer DEFAULT 2000,
    idempotency_key     text,
    created_by          text,
    options             jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX woo_sync_queue_idempotency_key ON woo_customer_sync_queue (org_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX idx_woo_sync_queue_org_created ON woo_customer_sync_queue (org_id, created_at DESC);
CREATE INDEX idx_woo_sync_queue_org_state ON woo_customer_sync_queue (org_id, state);
CREATE INDEX idx_woo_sync_queue_unfinished ON woo_customer_sync_queue (state)
    WHERE state IN ('draft', 'processing');

CREATE TABLE woo_customer_sync_queue_line (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    queue_id            uuid NOT NULL REFERENCES woo_customer_sync_queue(id) ON DELETE CASCADE,
    org_id              uuid NOT NULL REFERENCES organization(id) ON DELETE CASCADE,
    woo_customer_id     bigint NOT NULL,
    customer_data       jsonb NOT NULL,
    external_id         text,
    state               text NOT NULL DEFAULT 'draft'
                        CHECK (state IN ('draft', 'processing', 'done', 'failed', 'cancelled')),
    process_count       integer NOT NULL DEFAULT 0,
    error_count         integer NOT NULL DEFAULT 0,
    error_message       text,
    result_customer_id  uuid REFERENCES customer(id) ON DELETE SET NULL,
    was_update          boolean,
    idempotency_token   text UNIQUE,
    last_process_date   timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT line_idempotency UNIQUE (queue_id, woo_customer_id)
);
CREATE INDEX idx_woo_queue_line_state ON woo_customer_sync_queue_line (queue_id, state);

CREATE TABLE woo_sync_activity (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    queue_id       uuid NOT NULL REFERENCES woo_customer_sync_queue(id) ON DELETE CASCADE,
    queue_line_id  uuid REFERENCES woo_customer_sync_queue_line(id) ON DELETE CASCADE,
    org_id         uuid NOT NULL,
    activity_type  text NOT NULL,
    status         text NOT NULL,
    message        text,
    details        jsonb,
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX idx_woo_sync_activity_queue ON woo_sync_activity (queue_id, created_at DESC);
CREATE INDEX idx_woo_sync_activity_line ON woo_sync_activity (queue_line_id) WHERE queue_line_id IS NOT NULL;

-- ---------------------------------------------------------------------------------------------
-- Activity is append-only.
CREATE FUNCTION woo_sync_activity_refuse_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'woo_sync_activity is append-only: rows cannot be updated'
        USING ERRCODE = 'restrict_violation';
END;
$$;
CREATE TRIGGER woo_sync_activity_append_only
    BEFORE UPDATE ON woo_sync_activity
    FOR EACH ROW EXECUTE FUNCTION woo_sync_activity_refuse_update();

-- ---------------------------------------------------------------------------------------------
-- Line transitions: a terminal line (done, failed, cancelled) never moves, except failed -> draft
-- (an explicit retry). Writers filter by state in their WHERE clauses; this is the last guard.
CREATE FUNCTION woo_sync_line_guard_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.queue_id <> OLD.queue_id OR NEW.org_id <> OLD.org_id THEN
        RAISE EXCEPTION 'a sync line cannot move to another queue or organisation'
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.state <> OLD.state
       AND OLD.state IN ('done', 'failed', 'cancelled')
       AND NOT (OLD.state = 'failed' AND NEW.state = 'draft') THEN
        RAISE EXCEPTION 'sync line % is % and cannot become %', OLD.id, OLD.state, NEW.state
            USING ERRCODE = 'check_violation';
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;
CREATE TRIGGER woo_sync_line_guard
    BEFORE UPDATE ON woo_customer_sync_queue_line
    FOR EACH ROW EXECUTE FUNCTION woo_sync_line_guard_transition();

-- ---------------------------------------------------------------------------------------------
-- Counter deltas, once per statement. Queue rows are updated in id order so that concurrent
-- statements touching several queues cannot deadlock on them.
CREATE FUNCTION woo_sync_apply_count_deltas() RETURNS trigger LANGUAGE plpgsql AS $$
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
               sum(n) FILTER (WHERE state = 'processing') AS processing,
               sum(n) FILTER (WHERE state = 'done') AS done,
               sum(n) FILTER (WHERE state = 'failed') AS failed,
               sum(n) FILTER (WHERE state = 'cancelled') AS cancelled
        FROM moves
        GROUP BY queue_id
        ORDER BY queue_id
    LOOP
        CONTINUE WHEN delta.total = 0
            AND coalesce(delta.draft, 0) = 0 AND coalesce(delta.processing, 0) = 0
            AND coalesce(delta.done, 0) = 0 AND coalesce(delta.failed, 0) = 0
            AND coalesce(delta.cancelled, 0) = 0;
        UPDATE woo_customer_sync_queue
           SET total_count      = total_count      + delta.total,
               draft_count      = draft_count      + coalesce(delta.draft, 0),
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

-- PostgreSQL allows transition tables only on single-event triggers: one function per event.
CREATE FUNCTION woo_sync_counts_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    delta record;
BEGIN
    FOR delta IN
        SELECT queue_id,
               count(*) AS total,
               count(*) FILTER (WHERE state = 'draft') AS draft,
               count(*) FILTER (WHERE state = 'processing') AS processing,
               count(*) FILTER (WHERE state = 'done') AS done,
               count(*) FILTER (WHERE state = 'failed') AS failed,
               count(*) FILTER (WHERE state = 'cancelled') AS cancelled
        FROM new_lines GROUP BY queue_id ORDER BY queue_id
    LOOP
        UPDATE woo_customer_sync_queue
           SET total_count      = total_count      + delta.total,
               draft_count      = draft_count      + delta.draft,
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

CREATE FUNCTION woo_sync_counts_after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    delta record;
BEGIN
    FOR delta IN
        SELECT queue_id,
               count(*) AS total,
               count(*) FILTER (WHERE state = 'draft') AS draft,
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
               processing_count = processing_count - delta.processing,
               done_count       = done_count       - delta.done,
               failed_count     = failed_count     - delta.failed,
               cancelled_count  = cancelled_count  - delta.cancelled
         WHERE id = delta.queue_id;
    END LOOP;
    RETURN NULL;
END;
$$;

CREATE TRIGGER woo_sync_line_counts_insert
    AFTER INSERT ON woo_customer_sync_queue_line
    REFERENCING NEW TABLE AS new_lines
    FOR EACH STATEMENT EXECUTE FUNCTION woo_sync_counts_after_insert();
CREATE TRIGGER woo_sync_line_counts_update
    AFTER UPDATE ON woo_customer_sync_queue_line
    REFERENCING OLD TABLE AS old_lines NEW TABLE AS new_lines
    FOR EACH STATEMENT EXECUTE FUNCTION woo_sync_apply_count_deltas();
CREATE TRIGGER woo_sync_line_counts_delete
    AFTER DELETE ON woo_customer_sync_queue_line
    REFERENCING OLD TABLE AS old_lines
    FOR EACH STATEMENT EXECUTE FUNCTION woo_sync_counts_after_delete();

-- ---------------------------------------------------------------------------------------------
-- The queue's state, derived from its counters on every write (SPEC section 4).
CREATE FUNCTION woo_sync_queue_derive_state() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    pending  integer := NEW.draft_count + NEW.processing_count;
    -- Once started, a queue stays started: retrying every line of an all-failed queue puts
    -- them all back in draft, and that is `processing` again, not `draft`.
    started  boolean := NEW.started_at IS NOT NULL
                        OR NEW.processing_count + NEW.done_count + NEW.failed_count + NEW.cancelled_count > 0;
BEGIN
    IF NEW.cancelled_at IS NOT NULL THEN
        NEW.state := 'cancelled';
    ELSIF NOT NEW.enumeration_done OR pending > 0 THEN
        NEW.state := CASE WHEN started THEN 'processing' ELSE 'draft' END;
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
CREATE TRIGGER woo_sync_queue_state
    BEFORE INSERT OR UPDATE ON woo_customer_sync_queue
    FOR EACH ROW EXECUTE FUNCTION woo_sync_queue_derive_state();
