"""The producer's order work: choosing a sync's order strategy, and a bulk sync's order pages.

- `choose_strategy`: `options.orders` resolved (docs/contract.md section 10). `auto` asks the store
  for both totals (`per_page=1`, one request each) and takes the strategy needing fewer store
  requests: `bulk` pages every order once (ceil(M/100) requests), `per_customer` asks once per
  customer at least (N requests). A one-customer sync is always `per_customer`.
- `mirror_orders`: every order page of the store into the order mirror, a few pages at a time.
  Each page's orders and its page record are committed in one transaction, so a producer that
  restarts fetches only the pages not yet done. Pages are in id order: an order created meanwhile
  lands on a later page and shifts nothing; when the store's count falls while it is paged
  (orders deleted: later ones slide onto pages already read), the pass reads every page again,
  so no order is lost, and none is doubled (the mirror is keyed by the order's id). Once the
  pass is complete, orders it did not see are marked gone.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from shared.mapping import ORDER_FIELDS, InvalidOrder, mirror_order
from shared.messages import SyncOptions
from shared.repository import enumeration, orders
from shared.woocommerce.client import MAX_PER_PAGE, OrdersPage, WooCommerceClient

log = logging.getLogger(__name__)

T = TypeVar("T")
Db = Callable[..., Awaitable[Any]]  # the handler's `_db`: runs a repository operation, waiting out outages

# Order pages fetched at once by one producer: the store's client still bounds requests in flight
# and its rate; a few at once hide the store's latency.
ORDER_PAGES_AT_ONCE = 8
# How often one pass may start over because the store's order count fell while it was paged.
_MAX_RESTARTS = 3


@dataclass(frozen=True)
class OrderPlan:
    strategy: str  # enumeration.BULK or enumeration.PER_CUSTOMER
    customer_total: int | None
    order_total: int | None
    store_requests: int  # the requests the choice itself took

    @property
    def customer_pages(self) -> int | None:
        return None if self.customer_total is None else math.ceil(self.customer_total / MAX_PER_PAGE)

    @property
    def order_pages(self) -> int | None:
        return None if self.order_total is None else math.ceil(self.order_total / MAX_PER_PAGE)


def one_customer(options: SyncOptions) -> bool:
    return bool(options.email or options.woo_customer_id)


async def choose_strategy(client: WooCommerceClient, options: SyncOptions) -> OrderPlan:
    """The order strategy of a new sync, and the totals it learnt on the way."""
    if one_customer(options):
        return OrderPlan(enumeration.PER_CUSTOMER, 1, None, 0)
    if options.orders == enumeration.PER_CUSTOMER:
        return OrderPlan(enumeration.PER_CUSTOMER, None, None, 0)
    if options.orders == enumeration.BULK:
        return OrderPlan(enumeration.BULK, None, None, 0)
    customers, store_orders = await asyncio.gather(client.count_customers(role=options.role), client.count_orders())
    if options.limit is not None:
        customers = min(customers, options.limit)
    bulk = math.ceil(store_orders / MAX_PER_PAGE)
    per_customer = customers  # at least one request per customer
    strategy = enumeration.BULK if bulk < per_customer else enumeration.PER_CUSTOMER
    log.info("orders: %s (%d customers, %d orders: %d requests in bulk, at least %d per customer)",
             strategy, customers, store_orders, bulk, per_customer)
    return OrderPlan(strategy, customers, store_orders, 2)


async def plan_orders(db: Db, client: WooCommerceClient, options: SyncOptions, *, queue_id: UUID,
                      org_id: UUID) -> enumeration.Plan:
    """The sync's plan: the one recorded (a redelivered request resumes it), else chosen now and
    recorded, with the strategy in the queue's resolved options."""
    plan = await db(enumeration.plan_of, queue_id)
    if plan is not None and plan.order_strategy is not None:
        return plan
    chosen = await choose_strategy(client, options)
    await db(enumeration.set_plan, queue_id, org_id, order_strategy=chosen.strategy, options={"orders": chosen.strategy},
             customer_pages_total=chosen.customer_pages,
             order_pages_total=chosen.order_pages if chosen.strategy == enumeration.BULK else 0,
             store_requests=chosen.store_requests + 1)  # + the connection test
    return await db(enumeration.plan_of, queue_id)


async def both(first: Awaitable[Any], second: Awaitable[Any]) -> tuple[Any, Any]:
    """Run both; the first failure cancels the other and is raised as itself."""
    return tuple(await _together([first, second]))  # type: ignore[return-value]


async def _together(awaitables: list[Awaitable[T]]) -> list[T]:
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(awaitable) for awaitable in awaitables]  # type: ignore[arg-type]
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return [task.result() for task in tasks]


async def mirror_orders(db: Db, client: WooCommerceClient, *, queue_id: UUID, org_id: UUID, store_id: UUID,
                        pass_started: datetime) -> int:
    """Every order page of the store into the mirror (pages this sync already did are skipped);
    then the store's orders this pass did not see are gone. Returns the pages fetched now."""
    fetched = 0
    for attempt in range(_MAX_RESTARTS + 1):
        done = await db(enumeration.done_pages, queue_id, "orders") if attempt == 0 else set()
        pass_fetched, shrank = await _one_pass(db, client, queue_id=queue_id, org_id=org_id, store_id=store_id,
                                               done=done, fresh=attempt > 0)
        fetched += pass_fetched
        if not shrank:
            break
        log.info("queue %s: the store's order count fell while it was paged: reading every page again", queue_id)
    gone = await db(orders.forget_orders_not_seen, store_id, pass_started)
    await db(enumeration.mark_orders_mirrored, queue_id)
    log.info("queue %s: orders mirrored (%d pages fetched now, %d orders gone since the last pass)", queue_id, fetched, gone)
    return fetched


async def _one_pass(db: Db, client: WooCommerceClient, *, queue_id: UUID, org_id: UUID, store_id: UUID,
                    done: set[int], fresh: bool) -> tuple[int, bool]:
    """(pages fetched, whether the store's count fell meanwhile). `fresh`: record pages again."""
    first_total: int | None = None
    totals: list[int] = []
    fetched = 0

    async def fetch(page: int) -> OrdersPage:
        nonlocal fetched
        answer = await client.orders_page(page, fields=ORDER_FIELDS)
        fetched += 1
        await db(_record_page, queue_id=queue_id, org_id=org_id, store_id=store_id, answer=answer, fresh=fresh)
        if answer.total is not None:
            totals.append(answer.total)
        return answer

    # The page count: from a page not yet done (page 1 unless done), else from the plan.
    pages: int | None = None
    if 1 not in done or fresh:
        first = await fetch(1)
        first_total = first.total
        pages = first.total_pages or 0
        done = done | {1}
    else:
        plan = await db(enumeration.plan_of, queue_id)
        pages = plan.order_pages_total if plan and plan.order_pages_total is not None else None
        if pages is None:
            first = await fetch(1)
            pages = first.total_pages or 0
    if pages is not None:
        await db(enumeration.set_pages_total, queue_id, "orders", pages)
    window = asyncio.Semaphore(ORDER_PAGES_AT_ONCE)

    async def fetch_in_window(page: int) -> int:
        """The page count the answer gave (its orders are in the mirror, not kept here)."""
        async with window:
            return (await fetch(page)).total_pages or 0

    while True:
        todo = [p for p in range(1, (pages or 0) + 1) if p not in done]
        # A sliding window of pages in flight: a slow page holds up no other.
        counts = await _together([fetch_in_window(p) for p in todo])
        done = done | set(todo)
        known = max(counts, default=0)
        grown = max(max(totals, default=0), 0)
        more = max(known, math.ceil(grown / MAX_PER_PAGE) if grown else 0)
        if more > (pages or 0):  # orders created meanwhile: the pages past the planned ones
            pages = more
            await db(enumeration.set_pages_total, queue_id, "orders", pages)
            continue
        break
    reference = first_total if first_total is not None else (max(totals) if totals else None)
    shrank = reference is not None and any(total < reference for total in totals)
    return fetched, shrank


async def _record_page(conn, *, queue_id: UUID, org_id: UUID, store_id: UUID, answer: OrdersPage, fresh: bool) -> None:
    """One transaction: the page's orders into the mirror, and the page recorded as done."""
    mirrored = []
    for order in answer.orders:
        try:
            mirrored.append(mirror_order(order))
        except InvalidOrder as exc:  # an order no customer can be told from: nothing to count it for
            log.warning("queue %s: order page %d holds %s: skipped", queue_id, answer.page, exc)
    async with conn.transaction():
        await orders.record_orders(conn, store_id=store_id, org_id=org_id, orders=mirrored, queue_id=queue_id)
        if fresh:  # a page read again: done already, one more store request
            await enumeration.add_store_requests(conn, {queue_id: 1})
        else:
            await enumeration.record_page_done(conn, queue_id, "orders", answer.page, row_count=len(answer.orders))
