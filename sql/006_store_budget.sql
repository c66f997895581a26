-- One request budget per store host, shared by every woosync process (docs/contract.md sections 2
-- and 6, docs/architecture.md "Store request budget").
--
-- The budget is keyed by the store URL's host (with its port, when the URL names one), not by
-- woo_store row: the host is what answers 429 and blocks addresses, and two organisations that
-- sync the same shop (or one shop under two URLs on one host) load the same machine. Its rate is the lowest `store.rate_limit` any organisation
-- set for a store on that host (woo_store.rate_limit), else the fleet's WOOSYNC_STORE_RATE_LIMIT.
--
-- Pacing is GCRA kept as one timestamp, `tat`: the next free request slot. Processes lease a few
-- consecutive slots at a time (up to about a second's worth) with one call of store_budget_lease;
-- they then send one request per slot, so the fleet's requests are evenly spaced at the rate. A
-- process killed with slots in hand wastes at most its lease: tat never runs more than one lease
-- per process ahead of the clock.
--
-- A store that says slow down (429, or 503 with Retry-After) is held: store_budget_hold sets
-- held_until (no slot is leased before it, for any process) and halves the budget's factor, which
-- then climbs back linearly (additive increase) to 1 over `recovery_s`.

ALTER TABLE woo_store ADD COLUMN rate_limit double precision
    CHECK (rate_limit > 0 AND rate_limit <= 1000 AND rate_limit <> 'NaN'::float8);

-- The host (and port, if any) of a normalised store URL (shared/messages.py normalises them:
-- lower-case, IDNA, no user:password): what the budget is keyed by.
CREATE FUNCTION store_budget_host(url text) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN lower(substring(url FROM '^[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)'));

CREATE INDEX idx_woo_store_budget_host ON woo_store (store_budget_host(url)) WHERE rate_limit IS NOT NULL;

CREATE TABLE store_budget (
    host            text PRIMARY KEY,
    rate_limit      double precision CHECK (rate_limit > 0),  -- NULL: the fleet's default
    tat             timestamptz NOT NULL DEFAULT now(),
    held_until      timestamptz,
    hold_status     integer,                                   -- 429 or 503: what started the hold
    holds           bigint NOT NULL DEFAULT 0,                 -- hold episodes so far
    slowed_factor   double precision NOT NULL DEFAULT 1 CHECK (slowed_factor > 0 AND slowed_factor <= 1),
    slowed_at       timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- The factor the budget runs at now: slowed_factor at slowed_at, plus a linear climb back to 1.
CREATE FUNCTION store_budget_factor(slowed_factor double precision, slowed_at timestamptz, recovery_s double precision)
    RETURNS double precision
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN least(1.0, slowed_factor + greatest(0.0, extract(epoch FROM now() - slowed_at)::float8) / recovery_s);

-- Lease up to `wanted` consecutive slots of the host's budget. `default_rate` is the caller's
-- WOOSYNC_STORE_RATE_LIMIT (NULL: no limit), `lease_s` the most time one lease may cover,
-- `headroom` the share of the rate slots are spaced for (a request sent a little late must not
-- make six of a five-per-second budget fall into one second).
-- Answers: start_in_s (seconds from now to the first slot: a hold or earlier leases), interval_s
-- (between slots), tokens (slots granted; NULL with no rate limit: free until start + lease_s),
-- held_for_s (seconds the host is still held, 0 when not), factor.
CREATE FUNCTION store_budget_lease(url text, wanted integer, default_rate double precision,
                                   lease_s double precision, recovery_s double precision, headroom double precision,
                                   OUT start_in_s double precision, OUT interval_s double precision,
                                   OUT tokens integer, OUT held_for_s double precision, OUT factor double precision)
    LANGUAGE plpgsql AS $$
DECLARE
    budget store_budget;
    rate double precision;
    start_at timestamptz;
BEGIN
    INSERT INTO store_budget AS b (host) VALUES (store_budget_host(url))
    ON CONFLICT (host) DO UPDATE SET updated_at = now()
    RETURNING * INTO budget;
    factor := store_budget_factor(budget.slowed_factor, budget.slowed_at, recovery_s);
    rate := coalesce(budget.rate_limit, default_rate) * headroom;
    start_at := greatest(budget.tat, now(), coalesce(budget.held_until, now()));
    start_in_s := extract(epoch FROM start_at - now())::float8;
    held_for_s := greatest(0.0, extract(epoch FROM coalesce(budget.held_until, now()) - now())::float8);
    IF rate IS NULL THEN
        interval_s := 0;
        tokens := NULL;
        RETURN;
    END IF;
    interval_s := 1.0 / (rate * factor);
    tokens := greatest(1, least(wanted, floor(lease_s / interval_s)::integer));
    UPDATE store_budget SET tat = start_at + make_interval(secs => tokens * interval_s)
     WHERE host = budget.host;
END $$;

-- The host asked to be left alone for `seconds` (bounded by `max_s`): hold it, and halve its
-- budget (not below `min_factor`) once per hold episode, however many processes report it.
-- Answers how long the host is held from now.
CREATE FUNCTION store_budget_hold(url text, seconds double precision, max_s double precision, status integer,
                                  min_factor double precision, recovery_s double precision)
    RETURNS double precision
    LANGUAGE plpgsql AS $$
DECLARE
    budget store_budget;
    until timestamptz := now() + make_interval(secs => least(greatest(seconds, 0), max_s));
BEGIN
    INSERT INTO store_budget AS b (host) VALUES (store_budget_host(url))
    ON CONFLICT (host) DO UPDATE SET updated_at = now()
    RETURNING * INTO budget;
    IF budget.held_until IS NULL OR budget.held_until <= now() THEN
        UPDATE store_budget
           SET held_until = until, hold_status = status, holds = holds + 1,
               slowed_factor = greatest(min_factor, store_budget_factor(slowed_factor, slowed_at, recovery_s) / 2),
               slowed_at = now(), tat = greatest(tat, until)
         WHERE host = budget.host;
        RETURN extract(epoch FROM until - now())::float8;
    END IF;
    UPDATE store_budget SET held_until = greatest(held_until, until), tat = greatest(tat, until)
     WHERE host = budget.host;
    RETURN extract(epoch FROM greatest(budget.held_until, until) - now())::float8;
END $$;
