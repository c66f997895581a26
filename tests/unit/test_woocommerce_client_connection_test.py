"""The store client's connection test with its own limits (docs/contract.md section 6): `within_s`
bounds the whole test, tries and waits included, and names WOOSYNC_STORE_CONNECT_TEST_TIMEOUT_S
when it runs out; `max_tries` caps the tries below the client's own."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from shared.errors import StoreUnreachable
from shared.woocommerce.client import WooCommerceClient
from shared.woocommerce.credentials import StoreCredentials

pytestmark = pytest.mark.unit

STORE = StoreCredentials(url="http://shop.test", consumer_key="ck_x", consumer_secret="cs_x")


def client_of(handler, **options) -> WooCommerceClient:
    return WooCommerceClient(STORE, transport=httpx.MockTransport(handler), backoff_base_s=0.001,
                             backoff_max_s=0.01, **options)


async def test_a_store_that_never_answers_fails_the_test_within_its_time_not_the_requests_time() -> None:
    async def never(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async with client_of(never, timeout_s=30, max_tries=5) as client:
        with pytest.raises(StoreUnreachable) as caught:
            await asyncio.wait_for(client.test_connection(within_s=0.2), 20)
    assert "did not answer the connection test within 0.2 s (WOOSYNC_STORE_CONNECT_TEST_TIMEOUT_S)" in str(caught.value)


async def test_the_connection_test_tries_at_most_its_own_tries() -> None:
    calls: list[httpx.Request] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ConnectError("connection refused", request=request)

    async with client_of(refuse, max_tries=5) as client:
        with pytest.raises(StoreUnreachable, match="gave up after 2 tries"):
            await client.test_connection(within_s=10, max_tries=2)
    assert len(calls) == 2


async def test_the_connection_test_never_tries_more_than_the_client_allows() -> None:
    calls: list[httpx.Request] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.ConnectError("connection refused", request=request)

    async with client_of(refuse, max_tries=1) as client:
        with pytest.raises(StoreUnreachable):
            await client.test_connection(max_tries=3)
    assert len(calls) == 1


async def test_a_store_that_answers_in_time_passes_the_bounded_test() -> None:
    async with client_of(lambda request: httpx.Response(200, json=[])) as client:
        assert await client.test_connection(within_s=5, max_tries=2) is None
