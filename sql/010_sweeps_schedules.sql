-- Incremental sweeps and schedules (docs/contract.md section 10, README "Keeping Postgres current").
--
-- woo_store_sweep: per store, where the next incremental sweep starts. `watermark` is the moment
-- (the database's clock, when the sweep's queue was created) up to which every order modified is
-- in the order mirror; the next sweep asks the store for orders modified after it, less an
-- overlap for clock skew and slow transactions. `highest_customer_id` is the highest customer id
-- seen: customers registered since have higher ids (WooCommerce hands ids out in order), so a
-- sweep finds them on the first pages of `orderby=id&order=desc`. A row is written only when a
-- sweep (or a full bulk sync, which mirrors every order) completes its enumeration.
CREATE TABLE woo_store_sweep (
    store_id            uuid PRIMARY KEY REFERENCES woo_store(id) ON DELETE CASCADE,
    org_id              uuid NOT NULL REFERENCES organization(id) ON DELETE CASCADE,
    watermark           timestamptz NOT NULL,
    highest_customer_id bigint NOT NULL DEFAULT 0,
    -- The sync that completed last, and when.
    queue_id            uuid,
    completed_at        timestamptz NOT NULL DEFAULT now()
);

-- woo_sync_schedule: per store and kind (`incremental` sweep or `full` sync), a sync request
-- published every `every_s` seconds by whichever producer takes the due row first (FOR UPDATE
-- SKIP LOCKED: one runner at a time however many replicas). The store's credentials are not
-- kept here: the producer publishes with the store's verified credentials (woo_store).
CREATE TABLE woo_sync_schedule (
    org_id       uuid NOT NULL REFERENCES organization(id) ON DELETE CASCADE,
    store_id     uuid NOT NULL REFERENCES woo_store(id) ON DELETE CASCADE,
    kind         text NOT NULL CHECK (kind IN ('incremental', 'full')),
    every_s      integer NOT NULL CHECK (every_s >= 60),
    enabled      boolean NOT NULL DEFAULT true,
    next_run_at  timestamptz NOT NULL DEFAULT now(),
    last_run_at  timestamptz,
    last_queue_key text,      -- the idempotency key of the last request published
    last_error   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (store_id, kind)
);
CREATE INDEX woo_sync_schedule_due ON woo_sync_schedule (next_run_at) WHERE enabled;
