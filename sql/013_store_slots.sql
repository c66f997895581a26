-- Requests in flight to one store host, bounded for the whole fleet (WOOSYNC_STORE_FLEET_CONCURRENCY;
-- docs/contract.md section 6, docs/architecture.md "Store request budget").
--
-- A process does not take a row per request: it leases a number of in-flight slots of a host for
-- a short time (`lease_s`, seconds) and renews the lease while it has work for that host, so the
-- database sees one statement per process and host every few seconds, not two per request. The
-- process then hands its slots to its requests locally. A lease that is not renewed expires: a
-- process killed while holding slots blocks them for at most `lease_s`.
--
-- Sharing: a holder is granted at most what it asks for (its requests in flight plus waiting), what
-- the other holders' unexpired leases leave free, and its fair share: the limit shared out
-- max-min fairly among the holders that want slots (one that wants less than an equal part keeps
-- what it wants, the rest is split among the others; rounded up). A holder above its share gives
-- the excess back as its requests finish (the slots they still use stay recorded until then), so
-- a process that joins a busy fleet gets its share within a renewal period or two. With more
-- processes than slots, the holders keep theirs while they have work and the others wait.

CREATE TABLE store_slot_lease (
    host        text NOT NULL,        -- store_budget_host(url), as the request budget
    holder      uuid NOT NULL,        -- one process's id (random at start)
    slots       integer NOT NULL CHECK (slots >= 0),   -- granted, or in use if more (never over the limit in sum)
    wanted      integer NOT NULL CHECK (wanted >= 0),  -- in flight + waiting at the last renewal
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (host, holder)
);

-- Lease (or renew, or release with wanted = 0 and in_use = 0) a holder's in-flight slots of the
-- store URL's host. `in_use`: the holder's requests in flight now (they stay counted even when
-- the grant shrinks below them). Answers `granted` (what the holder may have in flight until
-- its next renewal) and `share` (the fair share it may ask for while others want slots).
CREATE FUNCTION store_slots_lease(url text, holder_id uuid, wanted integer, in_use integer, slot_limit integer,
                                  lease_s double precision, OUT granted integer, OUT share integer)
    LANGUAGE plpgsql AS $$
DECLARE
    key text := store_budget_host(url);
    others_slots integer;
    holders integer;
    remaining numeric := slot_limit;
    other_wants integer;
BEGIN
    -- One lease at a time per host (held to the end of the statement's transaction): the sum of
    -- the holders' slots is read and written without another holder in between.
    PERFORM pg_advisory_xact_lock(hashtextextended('woosync.store_slots:' || key, 0));
    DELETE FROM store_slot_lease l WHERE l.host = key AND l.expires_at <= now();
    SELECT coalesce(sum(l.slots), 0), count(*) FILTER (WHERE l.wanted > 0)
      INTO others_slots, holders
      FROM store_slot_lease l WHERE l.host = key AND l.holder <> holder_id;
    IF wanted <= 0 AND in_use <= 0 THEN
        DELETE FROM store_slot_lease l WHERE l.host = key AND l.holder = holder_id;
        granted := 0;
        share := 0;
        RETURN;
    END IF;
    IF wanted > 0 THEN
        holders := holders + 1;
    END IF;
    -- Max-min fair share: holders wanting less than an equal part of what is left get what they
    -- want (smallest first); what remains is split equally among the others and this holder.
    FOR other_wants IN
        SELECT l.wanted FROM store_slot_lease l
         WHERE l.host = key AND l.holder <> holder_id AND l.wanted > 0 ORDER BY l.wanted
    LOOP
        EXIT WHEN holders <= 1 OR other_wants > remaining / holders;
        remaining := remaining - other_wants;
        holders := holders - 1;
    END LOOP;
    share := ceil(remaining / greatest(holders, 1))::integer;
    granted := greatest(0, least(wanted, slot_limit - others_slots, share));
    INSERT INTO store_slot_lease AS l (host, holder, slots, wanted, expires_at)
    VALUES (key, holder_id, greatest(granted, in_use), greatest(wanted, 0), now() + make_interval(secs => lease_s))
    ON CONFLICT (host, holder) DO UPDATE
       SET slots = excluded.slots, wanted = excluded.wanted, expires_at = excluded.expires_at;
END $$;
