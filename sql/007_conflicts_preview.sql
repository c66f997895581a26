-- Local edits a sync does not trample, unchanged rows left alone, and previews
-- (docs/contract.md sections 4, 7 and 10).

-- The conflict policy of an organisation: what a sync does with a field edited locally since
-- woosync last wrote it. A sync request may override it (options.conflict_policy).
ALTER TABLE organization
    ADD COLUMN conflict_policy text NOT NULL DEFAULT 'store_wins'
        CHECK (conflict_policy IN ('store_wins', 'local_wins'));

-- A queue is a sync or a preview. A preview runs the same enumeration and mapping and writes
-- no customer row: its lines record what a sync would do instead.
ALTER TABLE woo_customer_sync_queue
    ADD COLUMN kind text NOT NULL DEFAULT 'sync' CHECK (kind IN ('sync', 'preview')),
    -- Conflicts recorded for the queue's lines (customer_sync_conflict), kept by
    -- shared/repository/conflicts.py in the statement that records them.
    ADD COLUMN conflict_count integer NOT NULL DEFAULT 0 CHECK (conflict_count >= 0);

-- Every queue records the conflict policy it runs under, as resolved when it was created: the
-- request's options.conflict_policy, else its organisation's. So a change of the organisation's
-- policy never changes a sync already under way, and the status object shows what applies.
CREATE FUNCTION woo_sync_queue_resolve_conflict_policy() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT (NEW.options ? 'conflict_policy') THEN
        NEW.options := NEW.options || jsonb_build_object('conflict_policy',
            coalesce((SELECT conflict_policy FROM organization WHERE id = NEW.org_id), 'store_wins'));
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER woo_sync_queue_conflict_policy
    BEFORE INSERT ON woo_customer_sync_queue
    FOR EACH ROW EXECUTE FUNCTION woo_sync_queue_resolve_conflict_policy();

-- What a finished line did to its customer row. Sync: created | updated | unchanged (no UPDATE:
-- the mapped values equal the row). Preview: would_create | would_update | unchanged.
-- was_update keeps its meaning: the customer row existed (true) or was created (false).
-- `changes` (previews only): {field: [old, new]} of what the sync would write.
ALTER TABLE woo_customer_sync_queue_line
    ADD COLUMN outcome text CHECK (outcome IN ('created', 'updated', 'unchanged', 'would_create', 'would_update')),
    ADD COLUMN changes jsonb;

-- The values woosync last wrote to each customer row, field by field (JSON: numbers as
-- strings with two decimals, times as ISO 8601 in UTC). A field whose current value differs
-- from its value here was edited locally. Kept apart from the customer table so that writing
-- it never touches a customer row.
CREATE TABLE customer_sync_written (
    customer_id  uuid PRIMARY KEY REFERENCES customer(id) ON DELETE CASCADE,
    org_id       uuid NOT NULL REFERENCES organization(id) ON DELETE CASCADE,
    written      jsonb NOT NULL,
    written_at   timestamptz NOT NULL DEFAULT now()
);

-- A conflict: a field edited locally that the store now says otherwise, and what the sync did
-- (kept_local under local_wins, store_written under store_wins; for a preview, what it would do).
CREATE TABLE customer_sync_conflict (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    queue_id      uuid NOT NULL REFERENCES woo_customer_sync_queue(id) ON DELETE CASCADE,
    queue_line_id uuid NOT NULL REFERENCES woo_customer_sync_queue_line(id) ON DELETE CASCADE,
    org_id        uuid NOT NULL,
    customer_id   uuid REFERENCES customer(id) ON DELETE SET NULL,
    woo_customer_id bigint NOT NULL,
    field         text NOT NULL,
    local_value   jsonb,
    store_value   jsonb,
    resolution    text NOT NULL CHECK (resolution IN ('kept_local', 'store_written')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (queue_line_id, field)  -- a redelivered line records its conflicts once
);
CREATE INDEX idx_customer_sync_conflict_queue ON customer_sync_conflict (queue_id, woo_customer_id, field);
