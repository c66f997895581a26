-- The order mirror and the sync's plan (docs/contract.md sections 4 and 10,
-- docs/architecture.md "Orders: the mirror").
--
-- woo_order holds every order woosync has seen, per store. Both ways of filling it write the same
-- rows: `bulk` pages every order of the store, `per_customer` writes the orders of each customer it
-- fetched. Consumers read customers' order figures from it, one aggregate per batch
-- (shared/repository/orders.py), by the rules of docs/contract.md section 5.
--
-- An order's money is kept exact and unrounded (numeric without a scale): the lifetime value is
-- rounded once, after summing, as the mapping always did. A value the mapping cannot read is kept
-- as the problem it is (`money_problem`, `date_problem`): it fails only the customer the order
-- belongs to, with a message naming the order.

CREATE TABLE woo_order (
    store_id           uuid NOT NULL REFERENCES woo_store(id) ON DELETE CASCADE,
    org_id             uuid NOT NULL REFERENCES organization(id) ON DELETE CASCADE,
    woo_order_id       bigint NOT NULL,
    -- 0 for a guest order: it counts for no customer.
    customer_id        bigint NOT NULL,
    billing_email      text,
    status             text NOT NULL,
    total              numeric,              -- NULL when money_problem is set
    refunded           numeric NOT NULL DEFAULT 0,  -- the refunds' absolute values, summed
    date_created_gmt   timestamptz,          -- NULL: the order has no date (counts for money only)
    date_modified_gmt  timestamptz,
    money_problem      text,                 -- e.g. "order 7 has an invalid total: 'abc'"
    date_problem       text,
    -- An order a full bulk pass of the store no longer returned, or a customer's listing no
    -- longer holds: it stops counting.
    gone               boolean NOT NULL DEFAULT false,
    -- The bulk sync that last listed the order (for inspection).
    seen_by_queue      uuid,
    -- When the order was last written: a full bulk pass marks the orders not written since it
    -- started gone.
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (store_id, woo_order_id)
);
-- The per-customer aggregate: one index range per customer of a batch.
CREATE INDEX woo_order_customer ON woo_order (store_id, customer_id) WHERE NOT gone;

-- The strategy and progress of a sync, shown as `plan` in its status.
ALTER TABLE woo_customer_sync_queue
    ADD COLUMN order_strategy       text CHECK (order_strategy IN ('bulk', 'per_customer')),
    ADD COLUMN customer_pages_total integer,
    ADD COLUMN customer_pages_done  integer NOT NULL DEFAULT 0,
    ADD COLUMN order_pages_total    integer,
    ADD COLUMN order_pages_done     integer NOT NULL DEFAULT 0,
    ADD COLUMN store_requests       bigint NOT NULL DEFAULT 0,
    ADD COLUMN orders_mirrored      boolean NOT NULL DEFAULT false;

-- The pages of a sync's enumeration, each recorded once it is done (its rows are in the mirror or
-- its lines recorded): a producer that restarts fetches only the pages not yet done.
CREATE TABLE woo_sync_page (
    queue_id    uuid NOT NULL REFERENCES woo_customer_sync_queue(id) ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('customers', 'orders')),
    page        integer NOT NULL CHECK (page >= 1),
    row_count   integer NOT NULL DEFAULT 0,
    done_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (queue_id, kind, page)
);
