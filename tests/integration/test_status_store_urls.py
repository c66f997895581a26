"""The status API checks a store URL with the sync request's own model (docs/contract.md
sections 3 and 7): a URL the producer could not use is a 422 naming store.url, nothing is
recorded or published, and an accepted URL is stored in its normal form."""

from __future__ import annotations

import aio_pika
import pytest

from shared import topology
from tests.integration.status_harness import an_organization, status_service

pytestmark = pytest.mark.integration

STORE = {"consumer_key": "ck_live_1234567890", "consumer_secret": "cs_very_secret_value"}


@pytest.mark.parametrize("url", ["http://127.0.0.1:99991", "https://shop.example.com:0", "http://shop..example.com"])
async def test_a_store_url_the_producer_could_not_use_is_422_naming_store_url(db_pool, amqp_url, url):
    _, token = await an_organization(db_pool)
    async with status_service(db_pool, amqp_url) as api:
        response = await api.client.post("/api/v1/sync/queues", headers=api.auth(token),
                                         json={"store": {"url": url, **STORE}})
        connection = await aio_pika.connect(amqp_url)
        try:
            requests = await (await connection.channel()).declare_queue(topology.SYNC_REQUESTS_QUEUE, passive=True)
        finally:
            await connection.close()
    assert response.status_code == 422, response.text
    assert "store.url" in response.text and "cs_very_secret_value" not in response.text
    assert requests.declaration_result.message_count == 0
    assert await db_pool.fetchval("SELECT count(*) FROM woo_customer_sync_queue") == 0


async def test_an_accepted_store_url_is_recorded_in_its_normal_form(db_pool, amqp_url):
    _, token = await an_organization(db_pool)
    async with status_service(db_pool, amqp_url) as api:
        response = await api.client.post("/api/v1/sync/queues", headers=api.auth(token),
                                         json={"store": {"url": "https://Shop.Example.COM:443/wp/", **STORE}})
    assert response.status_code == 202, response.text
    assert await db_pool.fetchval("SELECT store_url FROM woo_customer_sync_queue") == "https://shop.example.com/wp"
