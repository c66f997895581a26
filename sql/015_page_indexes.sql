-- Page work at the scale of a big store (docs/architecture.md "Page work").
--
-- Every lease of a sync's pages counts the pages leased at that moment (at most
-- WOOSYNC_SYNC_PAGES_IN_FLIGHT). Without an index of their own that count read every open page of
-- the sync: about 10 ms per lease at 82,000 pages (a 1,000,000-customer store), and a lease every
-- few pages, so paging slowed as stores grew.
CREATE INDEX woo_sync_page_leased ON woo_sync_page (queue_id, kind) WHERE state = 'leased';
