-- Fewer foreign-key checks on the tables a sync writes rows into per customer and per order
-- (docs/architecture.md "Orders: the mirror").
--
-- Each of these tables also references a parent that belongs to the organisation and is deleted
-- with it (ON DELETE CASCADE all the way down), so its own reference to organization added no
-- cleanup, only a check per inserted row: a lookup of the organisation's row and a KEY SHARE lock
-- on it, taken by every writer of every sync of that organisation at once (PostgreSQL shares such
-- a lock between transactions through a MultiXact). A bulk sync inserts about seven orders per
-- customer: the order mirror's insert spent about a third of its time on this check.
--
--   woo_order.store_id             -> woo_store (cascade) -> organization (cascade)
--   woo_customer_document.store_id -> woo_store (cascade) -> organization (cascade)
--   woo_customer_sync_queue_line.queue_id -> woo_customer_sync_queue (cascade) -> organization
--   customer_sync_written.customer_id     -> customer (cascade) -> organization (cascade)
--
-- The org_id columns stay (every query filters by organisation); the statements that write them
-- take it from the sync's queue or the customer, as they did.
ALTER TABLE woo_order DROP CONSTRAINT woo_order_org_id_fkey;
ALTER TABLE woo_customer_document DROP CONSTRAINT woo_customer_document_org_id_fkey;
ALTER TABLE woo_customer_sync_queue_line DROP CONSTRAINT woo_customer_sync_queue_line_org_id_fkey;
ALTER TABLE customer_sync_written DROP CONSTRAINT customer_sync_written_org_id_fkey;
