"""The seed route (POST /api/v1/integrations/woocommerce/sync/customers) answers as the seed did
(docs/contract.md section 7): the seed's status codes and messages, with woosync's field detail
after them, and `start` testing the store before anything is recorded."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aio_pika
import pytest

from shared import topology
from shared.repository import sync_queues
from shared.settings import Settings
from tests.integration.fake_stores import accepting_store, refusing_store, unreachable_store
from tests.integration.status_harness import STORE_URL, StatusUnderTest, an_organization, status_service

pytestmark = pytest.mark.integration

SEED_PATH = "/api/v1/integrations/woocommerce/sync/customers"


@pytest.fixture
async def api(db_pool, amqp_url) -> AsyncIterator[StatusUnderTest]:
    async with status_service(db_pool, amqp_url, settings=Settings(store_connect_test_timeout_s=2)) as status:
        yield status


def start_body(org_id, **overrides) -> dict:
    return {"config": {"url": STORE_URL, "consumerKey": "ck_seed", "consumerSecret": "cs_seed_secret"},
            "org_id": str(org_id), **overrides}


async def published_requests(amqp_url: str) -> int:
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        return (await channel.declare_queue(topology.SYNC_REQUESTS_QUEUE, passive=True)).declaration_result.message_count
    finally:
        await connection.close()


@pytest.mark.parametrize(
    ("body", "seed_words", "field"),
    [
        ({"org_id": "not-a-uuid"}, "Invalid organization ID format", "org_id"),
        ({"org_id": None}, "Invalid organization ID format", "org_id"),
        ({"config": None}, "WooCommerce configuration required", "config"),
        ({"config": {"url": STORE_URL, "consumerKey": "ck_seed"}}, "WooCommerce configuration required", "config.consumerSecret"),
        ({"config": {"url": "shop", "consumerKey": "ck", "consumerSecret": "cs"}}, "WooCommerce configuration required", "config.url"),
        # The seed checked the configuration before the organisation id.
        ({"config": None, "org_id": "x"}, "WooCommerce configuration required", "config"),
        ({"action": "status", "queue_id": "1c6a4c47-3f5c-4a36-9a0e-5a8b11c1e7a1", "org_id": "12"},
         "Invalid organization ID format", "org_id"),
    ],
)
async def test_bad_input_is_400_with_the_seeds_message_then_the_field(api, db_pool, body, seed_words, field) -> None:
    org_id, token = await an_organization(db_pool)
    response = await api.client.post(SEED_PATH, headers=api.auth(token), json={**start_body(org_id), **body})
    assert response.status_code == 400, response.text
    answer = response.json()
    assert answer["success"] is False and answer["error"].startswith(f"{seed_words}: {field}: ")
    assert any(detail["field"] == field for detail in answer["details"])


@pytest.mark.parametrize(("store", "why"), [(refusing_store, "credentials"), (unreachable_store, "")])
async def test_start_with_a_store_that_fails_the_connection_test_is_500_and_leaves_nothing(api, db_pool, amqp_url, store, why) -> None:
    org_id, token = await an_organization(db_pool)
    api.ctx.store_client = store
    response = await api.client.post(SEED_PATH, headers=api.auth(token), json=start_body(org_id))
    assert response.status_code == 500, response.text
    answer = response.json()
    assert answer["success"] is False and answer["error"].startswith("Failed to connect to WooCommerce: ")
    assert why in answer["error"] and "cs_seed_secret" not in response.text
    assert await sync_queues.list_queues(db_pool, org_id, limit=5, offset=0) == []
    assert await db_pool.fetchval("SELECT count(*) FROM woo_store WHERE org_id = $1", org_id) == 0
    assert await published_requests(amqp_url) == 0


async def test_start_answers_200_with_the_seeds_fields_beside_woosyncs(api, db_pool, amqp_url) -> None:
    org_id, token = await an_organization(db_pool)
    api.ctx.store_client = accepting_store
    response = await api.client.post(SEED_PATH, headers=api.auth(token), json=start_body(org_id))
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert (data["queueId"], data["state"], data["totalCount"], data["progress"]) == (data["id"], "draft", 0, 0)
    assert data["message"] == "Sync queue created and processing started"
    assert await published_requests(amqp_url) == 1

    for action in ("status", "retry", "force-done"):
        answer = await api.client.post(SEED_PATH, headers=api.auth(token),
                                       json={"org_id": str(org_id), "action": action, "queue_id": data["queueId"]})
        assert answer.status_code == 200, answer.text
        assert answer.json()["data"]["queueId"] == data["queueId"]
