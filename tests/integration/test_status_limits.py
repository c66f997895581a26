"""Limits per organisation on the status API (docs/contract.md sections 2 and 7): starting syncs
is rate-limited (429 with Retry-After), open syncs are capped (429), and so are open event
streams per status process (429). Another organisation is never held back by them."""

from __future__ import annotations

import contextlib
import uuid

import aiohttp
import pytest

from shared.repository import queue_lines
from shared.settings import Settings
from tests.integration.fake_stores import accepting_store
from tests.integration.status_harness import STORE_URL, a_queue, an_organization, serve, status_service
from tests.waiting import eventually

pytestmark = pytest.mark.integration

SEED_PATH = "/api/v1/integrations/woocommerce/sync/customers"
STORE = {"url": STORE_URL, "consumer_key": "ck_live_1234567890", "consumer_secret": "cs_very_secret_value"}


def limits(**overrides: float) -> Settings:
    """The service's settings with small limits; the ones a test does not exercise are generous."""
    chosen = {"org_sync_start_rate": 60, "org_sync_start_burst": 1000, "org_max_open_syncs": 1000,
              "org_max_event_streams": 1000, **overrides}
    return Settings(**chosen)


def start_body(key: str | None = None) -> dict:
    return {"store": STORE, **({"idempotency_key": key} if key else {})}


def seed_start(org_id: uuid.UUID) -> dict:
    return {"org_id": str(org_id), "action": "start",
            "config": {"url": STORE_URL, "consumerKey": "ck_seed", "consumerSecret": "cs_seed_secret"}}


def assert_429(response, *fragments: str) -> dict:
    assert response.status_code == 429, response.text
    body = response.json()
    assert body["success"] is False
    for fragment in fragments:
        assert fragment in body["error"], body["error"]
    return body


# ------------------------------------------------------------------------ starting syncs
async def test_starting_syncs_beyond_the_burst_is_429_with_retry_after_naming_the_limit(db_pool, amqp_url) -> None:
    org_id, token = await an_organization(db_pool, "Flood")
    _, other_token = await an_organization(db_pool, "Calm")
    async with status_service(db_pool, amqp_url, settings=limits(org_sync_start_rate=6, org_sync_start_burst=3)) as api:
        for _ in range(3):
            response = await api.client.post("/api/v1/sync/queues", headers=api.auth(token), json=start_body())
            assert response.status_code == 202, response.text
        refused = await api.client.post("/api/v1/sync/queues", headers=api.auth(token), json=start_body())
        # Another organisation has its own allowance.
        other = await api.client.post("/api/v1/sync/queues", headers=api.auth(other_token), json=start_body())

    assert_429(refused, "6", "per minute", "WOOSYNC_ORG_SYNC_START_RATE", "WOOSYNC_ORG_SYNC_START_BURST")
    # 6 per minute: one more start is allowed 10 s after the burst (rounded up, never 0).
    assert 1 <= int(refused.headers["Retry-After"]) <= 10
    assert other.status_code == 202, other.text
    # The refused request recorded nothing.
    assert await db_pool.fetchval("SELECT count(*) FROM woo_customer_sync_queue WHERE org_id = $1", org_id) == 3


async def test_the_allowance_is_shared_by_every_status_process_through_the_database(db_pool, amqp_url) -> None:
    _, token = await an_organization(db_pool)
    settings = limits(org_sync_start_rate=1, org_sync_start_burst=2)
    async with status_service(db_pool, amqp_url, settings=settings) as first, \
            status_service(db_pool, amqp_url, settings=settings) as second:
        answers = [
            (await replica.client.post("/api/v1/sync/queues", headers=replica.auth(token), json=start_body())).status_code
            for replica in (first, second, first, second)
        ]
    assert answers == [202, 202, 429, 429]


async def test_the_seeds_start_and_both_retries_take_from_the_same_allowance(db_pool, amqp_url) -> None:
    org_id, token = await an_organization(db_pool)
    queue, line_ids = await a_queue(db_pool, org_id, lines=1)
    await queue_lines.claim_lines(db_pool, line_ids)
    await queue_lines.mark_lines_failed(db_pool, [(line_ids[0], "bad email")])
    async with status_service(db_pool, amqp_url, settings=limits(org_sync_start_burst=2)) as api:
        api.ctx.store_client = accepting_store  # the seeds' start tests the store first
        seed = await api.client.post(SEED_PATH, headers=api.auth(token), json=seed_start(org_id))
        retry = await api.client.post(f"/api/v1/sync/queues/{queue.id}/retry", headers=api.auth(token))
        seed_refused = await api.client.post(SEED_PATH, headers=api.auth(token), json=seed_start(org_id))
        seed_retry_refused = await api.client.post(
            SEED_PATH, headers=api.auth(token), json={"org_id": str(org_id), "action": "retry", "queue_id": str(queue.id)})
        retry_refused = await api.client.post(f"/api/v1/sync/queues/{queue.id}/retry", headers=api.auth(token))
        # Reading a queue's status is not starting anything.
        status = await api.client.post(
            SEED_PATH, headers=api.auth(token), json={"org_id": str(org_id), "action": "status", "queue_id": str(queue.id)})

    assert (seed.status_code, retry.status_code, status.status_code) == (200, 200, 200)
    for refused in (seed_refused, seed_retry_refused, retry_refused):
        assert_429(refused, "WOOSYNC_ORG_SYNC_START_RATE")
        assert int(refused.headers["Retry-After"]) >= 1


# ------------------------------------------------------------------------ open syncs
async def test_open_syncs_beyond_the_cap_are_429_naming_it_and_an_idempotent_repeat_is_still_answered(db_pool, amqp_url) -> None:
    org_id, token = await an_organization(db_pool, "Busy")
    _, other_token = await an_organization(db_pool, "Other")
    async with status_service(db_pool, amqp_url, settings=limits(org_max_open_syncs=2)) as api:
        api.ctx.store_client = accepting_store  # the seeds' start tests the store first
        async def start(body: dict, as_token: str = token):
            return await api.client.post("/api/v1/sync/queues", headers=api.auth(as_token), json=body)

        first, second = await start(start_body("a")), await start(start_body("b"))
        refused = await start(start_body("c"))
        seed_refused = await api.client.post(SEED_PATH, headers=api.auth(token), json=seed_start(org_id))
        repeat = await start(start_body("a"))
        other = await start(start_body("a"), other_token)
        # A sync that ends (here: cancelled) frees its place.
        cancelled = await api.client.post(f"/api/v1/sync/queues/{first.json()['data']['id']}/cancel", headers=api.auth(token))
        after = await start(start_body("c"))

    assert (first.status_code, second.status_code) == (202, 202)
    assert_429(refused, "2", "WOOSYNC_ORG_MAX_OPEN_SYNCS")
    assert_429(seed_refused, "WOOSYNC_ORG_MAX_OPEN_SYNCS")
    assert repeat.status_code == 202 and repeat.json()["data"]["id"] == first.json()["data"]["id"]
    assert other.status_code == 202
    assert cancelled.status_code == 200 and after.status_code == 202, after.text


# ------------------------------------------------------------------------ event streams
async def test_event_streams_beyond_the_cap_are_429_and_a_closed_stream_frees_its_place(db_pool, amqp_url) -> None:
    org_id, token = await an_organization(db_pool, "Watcher")
    other_org, other_token = await an_organization(db_pool, "Other")
    queues = [(await a_queue(db_pool, org_id, lines=1))[0] for _ in range(3)]
    other_queue, _ = await a_queue(db_pool, other_org, lines=1)
    auth = {"Authorization": f"Bearer {token}"}
    async with status_service(db_pool, amqp_url, settings=limits(org_max_event_streams=2), heartbeat_s=0.3) as api:
        async with serve(api.app, api.ctx.hub) as base_url, aiohttp.ClientSession(base_url) as session:
            async with contextlib.AsyncExitStack() as streams:
                for queue in queues[:2]:
                    response = await streams.enter_async_context(session.get(f"/api/v1/sync/queues/{queue.id}/events", headers=auth))
                    assert response.status == 200
                    await response.content.readline()  # the stream is open and serving
                async with session.get(f"/api/v1/sync/queues/{queues[2].id}/events", headers=auth) as refused:
                    assert refused.status == 429
                    body = await refused.json()
                    assert body["success"] is False and "WOOSYNC_ORG_MAX_EVENT_STREAMS" in body["error"]
                async with session.get(f"/api/v1/sync/queues/{other_queue.id}/events",
                                       headers={"Authorization": f"Bearer {other_token}"}) as other:
                    assert other.status == 200
            # Both streams are closed now: their places are free again.

            async def opens() -> bool:
                async with session.get(f"/api/v1/sync/queues/{queues[2].id}/events", headers=auth) as response:
                    return response.status == 200

            await eventually(opens, timeout=10, interval=0.05, what="the closed streams' places to be free again")
