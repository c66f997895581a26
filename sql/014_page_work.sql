-- Enumeration as page work (docs/contract.md section 10, docs/architecture.md "Page work").
--
-- The sync request is acked once its queue, its plan and its first pages are recorded. Each page
-- of customers or orders is then a row any producer may take: `pending`, `leased` by one producer
-- until `lease_until` (renewed while it works on the page), or `done`, committed with the page's
-- rows in one transaction. A producer that dies leaves its pages leased; once the lease expires
-- another producer (or the same one restarted) takes them. Pages recorded before this migration,
-- and those an incremental sweep records, are `done` by default.

-- One row per sync enumerated as page work: what the page workers need besides the page number,
-- and the lock that serialises claiming its pages (at most WOOSYNC_SYNC_PAGES_IN_FLIGHT leased at
-- once across producers) and finishing it.
CREATE TABLE woo_sync_enumeration (
    queue_id       uuid PRIMARY KEY REFERENCES woo_customer_sync_queue(id) ON DELETE CASCADE,
    org_id         uuid NOT NULL REFERENCES organization(id) ON DELETE CASCADE,
    store_id       uuid NOT NULL REFERENCES woo_store(id) ON DELETE CASCADE,
    state          text NOT NULL DEFAULT 'paging' CHECK (state IN ('paging', 'finished', 'failed')),
    role           text NOT NULL DEFAULT 'all',
    customer_limit integer CHECK (customer_limit >= 1),  -- options.limit: lines at most
    -- A bulk sync whose order pages go into the mirror (lines wait in draft until it is complete).
    mirroring      boolean NOT NULL DEFAULT false,
    -- A full bulk sync of every customer: its end moves the store's sweep watermark.
    whole_store    boolean NOT NULL DEFAULT false,
    -- Passes started over because the store's count fell while its pages were read.
    customer_pass  integer NOT NULL DEFAULT 0,
    order_pass     integer NOT NULL DEFAULT 0,
    -- The bulk pass's start: orders of the store not written since are gone once it is complete.
    pass_started   timestamptz NOT NULL,
    -- Round robin among syncs: pages go to the sync served least recently.
    claimed_at     timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz
);
CREATE INDEX woo_sync_enumeration_paging ON woo_sync_enumeration (claimed_at NULLS FIRST) WHERE state = 'paging';

ALTER TABLE woo_sync_page
    ADD COLUMN state              text NOT NULL DEFAULT 'done' CHECK (state IN ('pending', 'leased', 'done')),
    ADD COLUMN lease_until        timestamptz,
    -- The producer that took the page last (host/pid/random): once done, the one that did it.
    ADD COLUMN taken_by           text,
    -- Store failures of this page (after the client's own tries): at WOOSYNC_PAGE_MAX_FAILURES the sync fails.
    ADD COLUMN failures           integer NOT NULL DEFAULT 0,
    ADD COLUMN last_error         text,
    -- X-WP-Total of the page's answer in the current pass: a total below page 1's means the
    -- store's count fell while it was paged, and the pass is read again.
    ADD COLUMN store_total        integer,
    -- Counted into the queue's plan counters (store_requests, *_pages_done) in batches, outside
    -- the page's transaction: the queue row is the consumers' hot row.
    ADD COLUMN uncounted_requests integer NOT NULL DEFAULT 0,
    ADD COLUMN counted            boolean NOT NULL DEFAULT true,
    ALTER COLUMN done_at DROP NOT NULL;

-- The open pages of a sync (claiming, finishing, leases).
CREATE INDEX woo_sync_page_open ON woo_sync_page (queue_id, kind, page) WHERE state <> 'done';
-- Pages whose work the queue's counters do not show yet.
CREATE INDEX woo_sync_page_uncounted ON woo_sync_page (queue_id) WHERE uncounted_requests > 0 OR NOT counted;

-- The producers taking pages, each with the room it had at its last heartbeat (every second): a
-- sync's WOOSYNC_SYNC_PAGES_IN_FLIGHT are shared among the live producers with room, so that one
-- producer refilling its places at once does not keep the others from a big store's pages.
CREATE UNLOGGED TABLE woo_page_worker (
    producer_id text PRIMARY KEY,
    room        integer NOT NULL,
    seen_at     timestamptz NOT NULL DEFAULT now()
);
