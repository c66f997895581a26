"""The consumer asks the store for ORDER_FIELDS only (`_fields`): the mapping must not need more."""

from __future__ import annotations

from datetime import datetime, timezone

import httpx
import pytest

from shared.errors import InvalidCustomer
from shared.mapping import ORDER_FIELDS, map_customer
from shared.woocommerce.client import WooCommerceClient
from shared.woocommerce.credentials import StoreCredentials
from woosync.simulator.data import SimulatedStore
from woosync.simulator.rest import filter_fields

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 25, tzinfo=timezone.utc)


def test_mapping_only_trimmed_orders_gives_the_same_row_as_mapping_full_orders():
    store = SimulatedStore(400, seed=21, as_of=NOW)
    compared = 0
    for customer_id in store.customer_ids("all"):
        customer, orders = store.customer(customer_id), store.orders_for(customer_id)
        trimmed = [filter_fields(order, list(ORDER_FIELDS)) for order in orders]
        assert all(set(order) <= set(ORDER_FIELDS) for order in trimmed)
        try:
            full = map_customer(customer, orders, store_url="http://s", now=NOW)
        except InvalidCustomer:
            continue
        assert map_customer(customer, trimmed, store_url="http://s", now=NOW) == full, customer_id
        compared += 1
    assert compared > 350


async def test_the_client_sends_the_requested_order_fields():
    seen: list[httpx.QueryParams] = []

    def store(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.params)
        return httpx.Response(200, json=[{"id": 1, "status": "completed"}], headers={"X-WP-Total": "1", "X-WP-TotalPages": "1"})

    credentials = StoreCredentials(url="https://shop.example", consumer_key="ck_x", consumer_secret="cs_x")
    async with WooCommerceClient(credentials, transport=httpx.MockTransport(store)) as client:
        assert await client.list_orders(5, fields=ORDER_FIELDS) == [{"id": 1, "status": "completed"}]
        await client.list_orders(5)
    assert seen[0]["_fields"] == ",".join(ORDER_FIELDS) and seen[0]["customer"] == "5"
    assert "_fields" not in seen[1]
