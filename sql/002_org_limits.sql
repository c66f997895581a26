-- Limits per organisation (docs/contract.md sections 2 and 7). They are kept here, not in a
-- process, so that they hold across every status process and producer.

-- Rate limits as GCRA (a token bucket kept as one timestamp): `tat` is the theoretical arrival
-- time of the next request. A request at `now` is allowed when greatest(tat, now) + interval is
-- at most now + burst * interval, and then moves `tat` there; a refused one leaves it as it was.
-- One row per organisation and limit, changed by one INSERT ... ON CONFLICT DO UPDATE ...
-- RETURNING per request (shared/repository/org_limits.py): concurrent requests queue on the
-- row lock, so no two of them take the same place.
CREATE TABLE organization_rate_limit (
    org_id        uuid NOT NULL REFERENCES organization(id) ON DELETE CASCADE,
    limit_name    text NOT NULL CHECK (limit_name IN ('sync_start')),
    tat           timestamptz NOT NULL,
    last_allowed  boolean NOT NULL,  -- the outcome of the request that changed the row last
    PRIMARY KEY (org_id, limit_name)
);

-- The cap on open syncs counts an organisation's queues in draft or processing
-- (shared/repository/sync_queues.py, under a transaction-scoped advisory lock per organisation):
-- idx_woo_sync_queue_org_state (org_id, state) of 001 serves that count, one index range per state.
