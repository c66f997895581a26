"""The WooCommerce client against the simulator over real HTTP, with injected faults (issue:
a 10,000-customer store read completely under 5% 5xx and 3% 429, none missed or duplicated)."""

from __future__ import annotations

import httpx
import pytest

from shared.woocommerce.client import WooCommerceClient
from shared.woocommerce.credentials import StoreCredentials
from shared.woocommerce.store_addresses import parse_networks
from woosync.simulator.app import serve
from woosync.simulator.config import SimulatorConfig
from woosync.simulator.data import SimulatedStore
from woosync.stack import LOCAL_STORE_NETWORKS

pytestmark = pytest.mark.integration


async def test_a_10000_customer_store_is_read_completely_under_injected_5xx_and_429():
    store = SimulatedStore(10_000, seed=31)
    config = SimulatorConfig(port=0, customers=10_000, seed=31, error_rate=0.05, rate_limit_rate=0.03, retry_after_s=0)
    async with await serve(store, config) as running:
        credentials = StoreCredentials(url=running.url, consumer_key="ck_test", consumer_secret="cs_test")
        async with WooCommerceClient(credentials, max_tries=8, backoff_base_s=0.01, backoff_max_s=0.1,
                                     allowed_networks=parse_networks(LOCAL_STORE_NETWORKS)) as client:
            seen: list[int] = []
            pages = 0
            async for page in client.iter_customer_pages(role="all"):
                seen.extend(customer["id"] for customer in page.customers)
                pages += 1
            orders = {cid: await client.list_orders(cid) for cid in range(2, 400, 7)}
        async with httpx.AsyncClient() as http:
            stats = (await http.get(f"{running.url}/__simulator/stats")).json()
    assert len(seen) == len(set(seen)) == 10_000, "a customer was missed or read twice"
    assert seen == sorted(seen) == list(store.customer_ids("all"))
    assert pages == 100
    for customer_id, got in orders.items():
        assert [o["id"] for o in got] == [o["id"] for o in store.orders_for(customer_id)]
    statuses = {status: n for route in stats["by_route"].values() for status, n in route.items()}
    faults = {status: n for status, n in statuses.items() if status == "429" or status.startswith("5")}
    assert faults.get("429", 0) >= 1 and sum(n for s, n in faults.items() if s != "429") >= 3, stats["by_route"]
