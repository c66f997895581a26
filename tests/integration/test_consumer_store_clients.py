"""The consumer's cache of WooCommerce clients against a real PostgreSQL: one client per store
while WOOSYNC_STORE_CACHE_TTL_S lasts; after it the credentials are read again (a new client
only when they changed); past `max_stores` the least recently loaded client is closed."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from services.consumer.store_clients import StoreClients
from shared import organizations
from shared.metrics import Metrics
from shared.repository import stores
from shared.settings import Settings
from shared.woocommerce.client import WooCommerceClient

pytestmark = pytest.mark.integration

TTL_S = 60.0


class TrackedClient(WooCommerceClient):
    """A real client that remembers being closed."""

    closed = False

    async def aclose(self) -> None:
        self.closed = True
        await super().aclose()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def org(db_pool: asyncpg.Pool) -> uuid.UUID:
    async with db_pool.acquire() as conn:
        org_id, _ = await organizations.create_organization(conn, name="cache")
    return org_id


async def record_store(pool: asyncpg.Pool, org: uuid.UUID, url: str, key: str = "ck_first") -> uuid.UUID:
    return await stores.upsert_store(pool, org_id=org, url=url, consumer_key=key, consumer_secret="cs_x", cipher=None)


def cache(pool: asyncpg.Pool, clock: Clock, *, max_stores: int = 256) -> StoreClients:
    return StoreClients(pool, Settings(store_cache_ttl_s=TTL_S), Metrics(), max_stores=max_stores, clock=clock,
                        client_factory=TrackedClient)


async def one_store_loaded(pool: asyncpg.Pool, org: uuid.UUID) -> tuple[Clock, StoreClients, uuid.UUID, TrackedClient]:
    """A cache that has just loaded the client of a store at https://a.example."""
    clock = Clock()
    clients = cache(pool, clock)
    store_id = await record_store(pool, org, "https://a.example")
    client, _ = await clients.get(store_id)
    return clock, clients, store_id, client  # type: ignore[return-value]


async def test_within_the_ttl_a_store_keeps_its_client_even_when_its_credentials_change(db_pool, org):
    clock, clients, store_id, first = await one_store_loaded(db_pool, org)
    await record_store(db_pool, org, "https://a.example", key="ck_second")
    clock.now += TTL_S - 1
    again, url = await clients.get(store_id)
    assert again is first and url == "https://a.example"
    await clients.aclose()


async def test_after_the_ttl_unchanged_credentials_keep_the_client(db_pool, org):
    clock, clients, store_id, first = await one_store_loaded(db_pool, org)
    clock.now += TTL_S
    again, _ = await clients.get(store_id)
    assert again is first and not first.closed
    await clients.aclose()


async def test_after_the_ttl_changed_credentials_make_a_new_client(db_pool, org):
    clock, clients, store_id, first = await one_store_loaded(db_pool, org)
    await record_store(db_pool, org, "https://a.example", key="ck_second")
    clock.now += TTL_S
    second, _ = await clients.get(store_id)
    assert second is not first
    assert not first.closed  # lines still at work with it finish first: it is closed a minute later
    await clients.aclose()
    await first.aclose()


async def test_past_max_stores_the_least_recently_loaded_client_is_evicted_and_closed(db_pool, org):
    clock = Clock()
    clients = cache(db_pool, clock, max_stores=2)
    a, b, c = [await record_store(db_pool, org, f"https://{name}.example") for name in "abc"]
    client_a, _ = await clients.get(a)
    clock.now += 1
    client_b, _ = await clients.get(b)
    clock.now += 1
    client_c, _ = await clients.get(c)
    assert client_a.closed and not client_b.closed and not client_c.closed
    clock.now += 1
    again_a, _ = await clients.get(a)  # loaded anew, which evicts b, now the oldest
    assert again_a is not client_a and client_b.closed and not client_c.closed
    await clients.aclose()
    assert client_c.closed and again_a.closed
