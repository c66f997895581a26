-- The customer-document mirror (docs/contract.md section 10, "Incremental sweeps"): per store and
-- WooCommerce customer id, the latest customer document woosync read from the store. Written in
-- the statement that records a page's lines (full syncs, sweeps, one-customer syncs from
-- webhooks), so a sweep whose changed orders affect a customer already seen records that
-- customer's line from here instead of asking the store again: a sweep's customer requests stay
-- one page of new registrations plus one per 100 customers never seen. Kept apart from the lines,
-- which `woosync prune` deletes with their queues; a customer's document lasts as long as its store.
-- A customer's profile edits change no order, so the document may be older than the store's: the
-- webhooks (customer.updated) and full syncs write the newer one.
CREATE TABLE woo_customer_document (
    store_id         uuid NOT NULL REFERENCES woo_store(id) ON DELETE CASCADE,
    woo_customer_id  bigint NOT NULL,
    org_id           uuid NOT NULL REFERENCES organization(id) ON DELETE CASCADE,
    document         jsonb NOT NULL,
    -- The sync that read it last, and when.
    seen_by_queue    uuid,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (store_id, woo_customer_id)
);
