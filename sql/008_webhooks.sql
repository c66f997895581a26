-- Webhooks (docs/contract.md section 10): the WooCommerce webhooks woosync installed in a store,
-- and the deliveries `woosync run webhooks` accepted from them.

-- One row per store and topic. Every webhook of a store points at the same delivery URL, whose
-- last segment is the store's `path_token` (unguessable, so an unknown store costs one indexed
-- read); each webhook has its own secret, so a body signed for one topic does not verify as
-- another. The secret is a Fernet token of WOOSYNC_SECRET_KEY (shared/credentials.py); the store
-- never shows it again. The row is written before the store creates the webhook (its ping may
-- arrive before the create call returns), and `woo_webhook_id` once it did.
CREATE TABLE store_webhook (
    store_id          uuid NOT NULL REFERENCES woo_store(id) ON DELETE CASCADE,
    topic             text NOT NULL CHECK (topic IN ('customer.created', 'customer.updated', 'customer.deleted',
                                                     'order.created', 'order.updated', 'order.deleted',
                                                     'order.restored')),
    path_token        text NOT NULL CHECK (path_token ~ '^[A-Za-z0-9_-]{43}$'),
    secret            text NOT NULL CHECK (secret LIKE 'gAAAAA%'),
    delivery_url      text NOT NULL,
    woo_webhook_id    bigint,
    installed_at      timestamptz,
    last_delivery_at  timestamptz,
    last_delivery_id  text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (store_id, topic)
);
CREATE UNIQUE INDEX store_webhook_token_topic ON store_webhook (path_token, topic);

-- Deliveries accepted, to answer a repeated one without acting twice. The store's delivery id is
-- the same for two deliveries of one webhook within one second, so a delivery is identified by
-- its id and a digest of its body together. Rows older than WOOSYNC_WEBHOOKS_DELIVERY_RETENTION_HOURS
-- are deleted by the webhooks service.
CREATE TABLE webhook_delivery (
    store_id         uuid NOT NULL REFERENCES woo_store(id) ON DELETE CASCADE,
    delivery_id      text NOT NULL CHECK (length(delivery_id) <= 64),
    body_sha256      bytea NOT NULL CHECK (octet_length(body_sha256) = 32),
    topic            text NOT NULL,
    resource_id      bigint,
    woo_customer_id  bigint,
    outcome          text NOT NULL CHECK (outcome IN ('resync', 'customer_deleted', 'guest_order', 'no_customer')),
    received_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (store_id, delivery_id, body_sha256)
);
CREATE INDEX webhook_delivery_received ON webhook_delivery (received_at);
