"""An incremental sweep (`options.mode = incremental`, docs/contract.md section 10): only what
changed in the store since its last completed sweep (shared/repository/sweeps.py).

1. Orders modified after the watermark, less an overlap for clock skew and slow transactions
   (`modified_after` with `dates_are_gmt=true`, every status, in id order), into the order mirror.
   Their customers, and the customers the mirror gave those orders to before, are affected.
2. Customers registered since: `orderby=id&order=desc` pages until one reaches the highest
   customer id the last sweep saw (WooCommerce hands ids out in order); usually one request.
3. Affected customers not among those: their latest document from the customer-document mirror
   (shared/repository/customer_documents.py, written whenever a sync records a customer's line);
   only those never seen are fetched by id, `include=` lists of up to 100 ids.
4. Each of them gets a line; the orders are in the mirror already, so consumers map from it.

Store requests: the connection test, one order page per 100 changed orders (one when none
changed), one customer page (more only past 100 registrations), and one per 100 affected
customers never seen: after a full sync, ceil(changed orders / 100) + 2, and an unchanged store
costs three. The watermark moves only once the enumeration is done (the handler records it).
Orders deleted at the store are not listed by `modified_after`: a full sync, or the webhooks,
mark them gone.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from uuid import UUID

from services.producer.pages import Db
from shared.mapping import ORDER_FIELDS, InvalidOrder, mirror_order
from shared.repository import customer_documents, enumeration, orders, sweeps
from shared.woocommerce.client import MAX_PER_PAGE, OrdersPage, WooCommerceClient

log = logging.getLogger(__name__)

RecordLines = Callable[[list[dict]], Awaitable[int]]  # records (and publishes) a page of customers' lines


async def sweep(db: Db, client: WooCommerceClient, *, queue_id: UUID, org_id: UUID, store_id: UUID,
                since: sweeps.Sweep, overlap_s: float, record_lines: RecordLines) -> int:
    """Sweep the store; returns the lines published (or recorded in draft) now."""
    await db(enumeration.set_plan, queue_id, org_id, order_strategy=enumeration.BULK,
             options={"orders": enumeration.BULK, "mode": "incremental"},
             customer_pages_total=None, order_pages_total=None, store_requests=1)  # the connection test
    modified_after = since.watermark - timedelta(seconds=overlap_s)
    affected, order_pages = await _changed_orders(db, client, queue_id=queue_id, org_id=org_id, store_id=store_id,
                                                  modified_after=modified_after)
    await db(enumeration.set_pages_total, queue_id, "orders", order_pages)
    await db(enumeration.mark_orders_mirrored, queue_id)

    published = 0
    customer_pages = 0
    seen: set[int] = set()
    page = 0
    while True:  # customers registered since the last sweep, newest first
        page += 1
        answer = await client.customers_page(page, newest_first=True)
        customer_pages += 1
        await db(enumeration.record_page_done, queue_id, "customers", customer_pages, row_count=len(answer.customers))
        new = [c for c in answer.customers if int(c["id"]) > since.highest_customer_id]
        if new:
            published += await record_lines(new)
            seen.update(int(c["id"]) for c in new)
        if len(new) < len(answer.customers) or len(answer.customers) < MAX_PER_PAGE:
            break
    wanted = sorted(affected - seen - {0})
    known = await db(customer_documents.documents_of, store_id, wanted)
    for start in range(0, len(wanted), MAX_PER_PAGE):  # customers whose orders changed, as last seen
        documents = [known[woo_id] for woo_id in wanted[start:start + MAX_PER_PAGE] if woo_id in known]
        if documents:
            published += await record_lines(documents)
    unknown = [woo_id for woo_id in wanted if woo_id not in known]
    for start in range(0, len(unknown), MAX_PER_PAGE):  # customers never seen, by id
        ids = unknown[start:start + MAX_PER_PAGE]
        answer = await client.customers_page(1, include=ids)
        customer_pages += 1
        await db(enumeration.record_page_done, queue_id, "customers", customer_pages, row_count=len(answer.customers))
        found = [c for c in answer.customers if int(c["id"]) in set(ids)]
        if found:
            published += await record_lines(found)
    await db(enumeration.set_pages_total, queue_id, "customers", customer_pages)
    log.info("queue %s: incremental sweep since %s: %d order pages, %d customers affected by orders "
             "(%d never seen, fetched by id), %d registered since, %d customer requests", queue_id,
             modified_after.isoformat(), order_pages, len(wanted), len(unknown), len(seen), customer_pages)
    return published


async def _changed_orders(db: Db, client: WooCommerceClient, *, queue_id: UUID, org_id: UUID, store_id: UUID,
                          modified_after) -> tuple[set[int], int]:
    """Orders modified since, page by page into the mirror: (customers affected, pages read)."""
    affected: set[int] = set()
    page = 0
    while True:
        page += 1
        answer = await client.orders_page(page, fields=ORDER_FIELDS, modified_after=modified_after)
        affected |= await db(_record_changed_page, queue_id=queue_id, org_id=org_id, store_id=store_id, answer=answer)
        if not answer.orders or (answer.total_pages is not None and page >= answer.total_pages) \
                or (answer.total_pages is None and len(answer.orders) < MAX_PER_PAGE):
            return affected, page


async def _record_changed_page(conn, *, queue_id: UUID, org_id: UUID, store_id: UUID, answer: OrdersPage) -> set[int]:
    """One transaction: the page's orders into the mirror and the page recorded. The customers
    they count for now, and those they counted for before."""
    mirrored = []
    for order in answer.orders:
        try:
            mirrored.append(mirror_order(order))
        except InvalidOrder as exc:
            log.warning("queue %s: changed order page %d holds %s: skipped", queue_id, answer.page, exc)
    async with conn.transaction():
        before = await sweeps.previous_owners(conn, store_id, [o.order_id for o in mirrored])
        await orders.record_orders(conn, store_id=store_id, org_id=org_id, orders=mirrored, queue_id=queue_id)
        if not await enumeration.record_page_done(conn, queue_id, "orders", answer.page, row_count=len(answer.orders)):
            await enumeration.add_store_requests(conn, {queue_id: 1})
    return before | {o.customer_id for o in mirrored}
