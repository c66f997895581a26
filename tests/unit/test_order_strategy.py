"""options.orders (docs/contract.md section 10): unknown values refused, and what `auto` chooses."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.producer.pages import choose_strategy
from shared.messages import SyncOptions

pytestmark = pytest.mark.unit


class CountingStore:
    """Answers the two totals `auto` asks for, and counts the requests."""

    def __init__(self, customers: int, orders: int) -> None:
        self.customers, self.orders, self.requests = customers, orders, 0

    async def count_customers(self, *, role: str = "all") -> int:
        self.requests += 1
        return self.customers

    async def count_orders(self) -> int:
        self.requests += 1
        return self.orders


def test_an_unknown_orders_value_is_refused():
    with pytest.raises(ValidationError, match="orders"):
        SyncOptions.model_validate({"orders": "fast"})
    assert SyncOptions().orders == "auto"


@pytest.mark.parametrize(("customers", "orders", "options", "strategy", "requests"), [
    (400, 2000, {}, "bulk", 2),  # 20 order pages against 400 customer requests
    (20_000, 60_000, {}, "bulk", 2),
    (5, 2000, {}, "per_customer", 2),  # 20 order pages against 5 customer requests
    (20_000, 60_000, {"limit": 10}, "per_customer", 2),  # the limit is what gets synced
    (20_000, 60_000, {"woo_customer_id": 7}, "per_customer", 0),  # one customer: always, without asking
    (20_000, 60_000, {"email": "a@example.com", "orders": "bulk"}, "per_customer", 0),
    (5, 2000, {"orders": "bulk"}, "bulk", 0),  # explicit: not asked
    (20_000, 60_000, {"orders": "per_customer"}, "per_customer", 0),
])
async def test_auto_takes_the_strategy_with_fewer_store_requests(customers, orders, options, strategy, requests):
    store = CountingStore(customers, orders)
    plan = await choose_strategy(store, SyncOptions.model_validate(options))  # type: ignore[arg-type]
    assert (plan.strategy, store.requests, plan.store_requests) == (strategy, requests, requests)
