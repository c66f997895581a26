"""New credentials for a recorded store are tested before they replace the stored ones
(docs/contract.md section 4): a wrong secret sent for a working store, through the status API
or straight over AMQP, leaves the store's credentials as they were; a right new secret replaces
them once the store accepted it. Real PostgreSQL and RabbitMQ, the simulator as the store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from cryptography.fernet import Fernet

from services.producer.handler import SyncRequestHandler
from shared import amqp, organizations, topology
from shared.messages import StartSync
from shared.metrics import Metrics
from shared.repository import stores
from shared.settings import Settings, load_settings
from tests.integration.status_harness import status_service
from woosync.simulator.app import serve
from woosync.simulator.config import SimulatorConfig
from woosync.simulator.data import SimulatedStore

pytestmark = pytest.mark.integration


@asynccontextmanager
async def a_store(consumer_secret: str) -> AsyncIterator[str]:
    """A simulated store that accepts ck_test / `consumer_secret`; its URL."""
    config = SimulatorConfig(port=0, customers=3, seed=1, consumer_key="ck_test", consumer_secret=consumer_secret)
    async with await serve(SimulatedStore(3, seed=1), config) as simulator:
        yield simulator.url


async def produce(db_pool, amqp_url: str, settings: Settings, request: StartSync) -> dict | None:
    """Publish `request`, let the producer's handler settle it; the dead-letter headers if it was rejected."""
    connection = await amqp.connect(amqp_url)
    try:
        channel = await amqp.open_publisher_channel(connection)
        await amqp.declare_topology(channel, settings)
        await amqp.publish_sync_request(channel, request)
        requests = await amqp.consumable_queue(channel, topology.SYNC_REQUESTS_QUEUE, settings)
        await SyncRequestHandler(db_pool, channel, settings, Metrics())(await requests.get(timeout=5))
        dead = await channel.get_queue(topology.SYNC_REQUESTS_DEAD_QUEUE, ensure=False)
        rejected = await dead.get(timeout=5, fail=False)
        if rejected is None:
            return None
        await rejected.ack()
        return dict(rejected.headers)
    finally:
        await connection.close()


def start_sync(org_id, url: str, consumer_secret: str) -> StartSync:
    return StartSync.model_validate({"org_id": str(org_id), "store": {
        "url": url, "consumer_key": "ck_test", "consumer_secret": consumer_secret}})


@pytest.fixture
def settings() -> Settings:
    return load_settings(secret_key=Fernet.generate_key().decode())


async def test_a_wrong_secret_for_a_working_store_is_refused_and_the_working_one_stays(db_pool, amqp_url, settings) -> None:
    org_id, _ = await organizations.create_organization(db_pool, name="Acme")
    async with a_store("cs_working") as url:
        assert await produce(db_pool, amqp_url, settings, start_sync(org_id, url, "cs_working")) is None
        store_id = await db_pool.fetchval("SELECT id FROM woo_store WHERE org_id = $1", org_id)

        rejected = await produce(db_pool, amqp_url, settings, start_sync(org_id, url, "cs_wrong"))

    assert rejected is not None and rejected[topology.DEAD_REASON_HEADER] == "store_unavailable"
    assert await stores.load_store_credentials(db_pool, store_id, cipher=settings.credentials_cipher) == (
        url, "ck_test", "cs_working")


async def test_a_right_new_secret_replaces_the_stored_one_once_the_store_accepted_it(db_pool, amqp_url, settings) -> None:
    org_id, _ = await organizations.create_organization(db_pool, name="Acme")
    async with a_store("cs_rotated_by_the_shop") as url:
        store_id = await stores.upsert_store(db_pool, org_id=org_id, url=url, consumer_key="ck_test",
                                             consumer_secret="cs_revoked_by_the_shop", cipher=settings.credentials_cipher)

        assert await produce(db_pool, amqp_url, settings, start_sync(org_id, url, "cs_rotated_by_the_shop")) is None

    assert await stores.load_store_credentials(db_pool, store_id, cipher=settings.credentials_cipher) == (
        url, "ck_test", "cs_rotated_by_the_shop")
    assert await db_pool.fetchval("SELECT credentials_verified_at IS NOT NULL FROM woo_store WHERE id = $1", store_id)


async def test_starting_a_sync_through_the_api_with_a_wrong_secret_leaves_the_stored_credentials(db_pool, amqp_url, settings) -> None:
    org_id, token = await organizations.create_organization(db_pool, name="Acme")
    async with a_store("cs_working") as url:
        store_id = await stores.upsert_store(db_pool, org_id=org_id, url=url, consumer_key="ck_test",
                                             consumer_secret="cs_working", cipher=settings.credentials_cipher)
        async with status_service(db_pool, amqp_url, settings=settings) as api:
            response = await api.client.post("/api/v1/sync/queues", headers=api.auth(token), json={
                "store": {"url": url, "consumer_key": "ck_test", "consumer_secret": "cs_wrong"}})
            assert response.status_code == 202, response.text
            # The API's answer came before any test of the store: nothing it did replaced the credentials.
            assert await stores.load_store_credentials(db_pool, store_id, cipher=settings.credentials_cipher) == (
                url, "ck_test", "cs_working")

            connection = await amqp.connect(amqp_url)
            try:
                channel = await amqp.open_publisher_channel(connection)
                requests = await amqp.consumable_queue(channel, topology.SYNC_REQUESTS_QUEUE, settings)
                await SyncRequestHandler(db_pool, channel, settings, Metrics())(await requests.get(timeout=5))
            finally:
                await connection.close()

    assert await stores.load_store_credentials(db_pool, store_id, cipher=settings.credentials_cipher) == (
        url, "ck_test", "cs_working")


async def test_a_new_store_is_recorded_unverified_until_its_credentials_worked(db_pool, amqp_url, settings) -> None:
    org_id, _ = await organizations.create_organization(db_pool, name="Acme")
    async with a_store("cs_working") as url:
        assert (await produce(db_pool, amqp_url, settings, start_sync(org_id, url, "cs_wrong")))[
            topology.DEAD_REASON_HEADER] == "store_unavailable"
        assert await db_pool.fetchval("SELECT credentials_verified_at FROM woo_store WHERE org_id = $1", org_id) is None

        assert await produce(db_pool, amqp_url, settings, start_sync(org_id, url, "cs_working")) is None

    row = await db_pool.fetchrow("SELECT id, credentials_verified_at FROM woo_store WHERE org_id = $1", org_id)
    assert row["credentials_verified_at"] is not None
    assert (await stores.load_store_credentials(db_pool, row["id"], cipher=settings.credentials_cipher))[2] == "cs_working"
