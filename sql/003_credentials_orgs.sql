-- Credentials and organisations (docs/contract.md sections 1 and 4): organisations can be
-- disabled, tokens revoked, store credentials are saved only once the store answered with them,
-- and an organisation can name the broker users allowed to publish sync requests for it.

-- A disabled organisation's API tokens get 403 and its sync requests are dead-lettered
-- (reason org_disabled) until it is enabled again; nothing of it is deleted.
ALTER TABLE organization ADD COLUMN disabled_at timestamptz;

-- A revoked token gets 401 at once: every request looks its token up with revoked_at IS NULL.
-- (The column has been there since 001; kept here so this file says the whole rule.)
ALTER TABLE api_token ADD COLUMN IF NOT EXISTS revoked_at timestamptz;

-- When the store last answered with the credentials stored in the row. NULL: the row was
-- recorded by a sync request whose connection test has not passed (yet), or before this
-- migration. Credentials that replace stored ones are always tested first.
ALTER TABLE woo_store ADD COLUMN credentials_verified_at timestamptz;

-- The RabbitMQ users that may publish sync requests for an organisation (the `user_id` message
-- property, which RabbitMQ checks against the publishing connection's user). An organisation
-- with no row here accepts requests from any user of the broker's vhost.
CREATE TABLE organization_publisher (
    org_id      uuid NOT NULL REFERENCES organization(id) ON DELETE CASCADE,
    amqp_user   text NOT NULL CHECK (btrim(amqp_user) = amqp_user AND amqp_user <> '' AND length(amqp_user) <= 255),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, amqp_user)
);
