"""The producer's order strategy: choosing a sync's, and recording it in the sync's plan.

- `choose_strategy`: `options.orders` resolved (docs/contract.md section 10). `auto` asks the store
  for both totals (`per_page=1`, one request each) and takes the strategy needing fewer store
  requests: `bulk` pages every order once (ceil(M/100) requests), `per_customer` asks once per
  customer at least (N requests). A one-customer sync is always `per_customer`.
- `plan_orders`: the plan recorded (a redelivered request resumes it), else chosen and recorded.

A bulk sync's order pages are page work like its customer pages (services/producer/page_worker.py):
pages in id order, an order created meanwhile lands on a later page and shifts nothing; when the
store's count falls while it is paged (orders deleted: later ones slide onto pages already read),
the pass reads every page again, so no order is lost, and none is doubled (the mirror is keyed by
the order's id). Once the pass is complete, orders it did not see are marked gone.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

from shared.messages import SyncOptions
from shared.repository import enumeration
from shared.woocommerce.client import MAX_PER_PAGE, WooCommerceClient

log = logging.getLogger(__name__)

T = TypeVar("T")
Db = Callable[..., Awaitable[Any]]  # the handler's `_db`: runs a repository operation, waiting out outages



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
