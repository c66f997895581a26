"""Who may publish sync requests for an organisation (docs/contract.md section 4): once an
organisation registers publishers (`woosync org publisher allow`), the producer serves only
requests whose `user_id` is one of them or woosync's own service user; RabbitMQ guarantees that
`user_id` is the publishing connection's user, so it cannot be forged. Real RabbitMQ (a second
broker user in the test's vhost, made through the management API) and real PostgreSQL."""

from __future__ import annotations

import urllib.parse
import uuid
from collections.abc import Iterator

import pytest

from services.producer.handler import SyncRequestHandler
from shared import amqp, organizations, topology
from shared.messages import StartSync
from shared.metrics import Metrics
from shared.settings import Settings
from tests.integration.status_harness import status_service
from tests.services import Broker
from woosync.simulator.app import serve
from woosync.simulator.config import SimulatorConfig
from woosync.simulator.data import SimulatedStore
from woosync.sync_client import ReplyProblem, request_sync

pytestmark = pytest.mark.integration


def as_user(amqp_url: str, user: str, password: str) -> str:
    parts = urllib.parse.urlsplit(amqp_url)
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:{password}@{parts.hostname}:{parts.port or 5672}"))


@pytest.fixture
def calling_system(broker: Broker, amqp_url: str) -> Iterator[tuple[str, str]]:
    """A second RabbitMQ user with rights on the test's vhost (as a calling system would have):
    (its name, the AMQP URL that logs in as it)."""
    if broker.management_url is None:
        pytest.fail("these tests need the RabbitMQ management API to create a user", pytrace=False)
    name, password = f"woosync_caller_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    vhost = urllib.parse.unquote(urllib.parse.urlsplit(amqp_url).path.lstrip("/"))
    broker._api("PUT", f"users/{name}", {"password": password, "tags": ""})
    broker._api("PUT", f"permissions/{urllib.parse.quote(vhost, safe='')}/{name}",
                {"configure": "^$", "write": "^woosync\\.requests$", "read": "^$"})
    try:
        yield name, as_user(amqp_url, name, password)
    finally:
        broker._api("DELETE", f"users/{name}")


async def publish_as(url: str, request: StartSync, *, user_id: str | None) -> None:
    connection = await amqp.connect(url)
    try:
        channel = await amqp.open_publisher_channel(connection)
        await amqp.publish_sync_request(channel, request, user_id=user_id)
    finally:
        await connection.close()


async def settle_next_request(db_pool, amqp_url: str, settings: Settings) -> str | None:
    """Let the producer's handler settle the next sync request: its dead-letter reason, or None if served."""
    connection = await amqp.connect(amqp_url)
    try:
        channel = await amqp.open_publisher_channel(connection)
        requests = await amqp.consumable_queue(channel, topology.SYNC_REQUESTS_QUEUE, settings)
        await SyncRequestHandler(db_pool, channel, settings, Metrics())(await requests.get(timeout=5))
        dead = await channel.get_queue(topology.SYNC_REQUESTS_DEAD_QUEUE, ensure=False)
        rejected = await dead.get(timeout=5, fail=False)
        if rejected is None:
            return None
        await rejected.ack()
        return rejected.headers[topology.DEAD_REASON_HEADER]
    finally:
        await connection.close()


@pytest.fixture
async def world(db_pool, amqp_url):
    """The topology declared, an organisation, and a simulated store: (settings, org_id, store url)."""
    settings = Settings()
    connection = await amqp.connect(amqp_url)
    try:
        await amqp.declare_topology(await amqp.open_publisher_channel(connection), settings)
    finally:
        await connection.close()
    org_id, _ = await organizations.create_organization(db_pool, name="Acme")
    async with await serve(SimulatedStore(2, seed=1), SimulatorConfig(port=0, customers=2, seed=1)) as simulator:
        yield settings, org_id, simulator.url


def a_request(org_id, url: str) -> StartSync:
    return StartSync.model_validate({"org_id": str(org_id), "store": {
        "url": url, "consumer_key": "ck_test", "consumer_secret": "cs_test"}})


async def test_with_publishers_registered_only_theirs_and_woosyncs_own_requests_are_served(
        db_pool, amqp_url, world, calling_system) -> None:
    settings, org_id, store_url = world
    caller, caller_url = calling_system
    await organizations.allow_publisher(db_pool, org_id, caller)

    await publish_as(caller_url, a_request(org_id, store_url), user_id=caller)
    assert await settle_next_request(db_pool, amqp_url, settings) is None

    await publish_as(amqp_url, a_request(org_id, store_url), user_id=settings.amqp_user)  # woosync's own user
    assert await settle_next_request(db_pool, amqp_url, settings) is None

    await publish_as(caller_url, a_request(org_id, store_url), user_id=None)  # who published is unknown
    assert await settle_next_request(db_pool, amqp_url, settings) == "publisher_not_allowed"


async def test_a_request_from_a_broker_user_the_organisation_did_not_register_is_dead_lettered(
        db_pool, amqp_url, world, calling_system) -> None:
    """The forged request of the finding: another system on the broker names A's organisation."""
    settings, org_id, store_url = world
    attacker, attacker_url = calling_system
    await organizations.allow_publisher(db_pool, org_id, "system-of-a")

    await publish_as(attacker_url, a_request(org_id, store_url), user_id=attacker)

    assert await settle_next_request(db_pool, amqp_url, settings) == "publisher_not_allowed"
    assert await db_pool.fetchval("SELECT count(*) FROM woo_store") == 0  # nothing of the request was recorded


async def test_without_publishers_registered_any_broker_user_may_publish(db_pool, amqp_url, world, calling_system) -> None:
    settings, org_id, store_url = world
    _, caller_url = calling_system
    await publish_as(caller_url, a_request(org_id, store_url), user_id=None)
    assert await settle_next_request(db_pool, amqp_url, settings) is None


async def test_rabbitmq_refuses_a_user_id_that_is_not_the_connections_user(amqp_url, world, calling_system) -> None:
    _, org_id, store_url = world
    _, caller_url = calling_system
    with pytest.raises(amqp.PublishFailed):
        await publish_as(caller_url, a_request(org_id, store_url), user_id="system-of-a")


async def test_a_disabled_organisations_requests_are_dead_lettered(db_pool, amqp_url, world) -> None:
    settings, org_id, store_url = world
    await organizations.set_organization_disabled(db_pool, org_id, True)
    await publish_as(amqp_url, a_request(org_id, store_url), user_id=None)
    assert await settle_next_request(db_pool, amqp_url, settings) == "org_disabled"


async def test_the_status_api_and_the_cli_publish_as_their_connections_user(db_pool, amqp_url, world) -> None:
    settings, org_id, store_url = world
    token = await organizations.create_token(db_pool, org_id)
    async with status_service(db_pool, amqp_url, settings=settings) as api:
        response = await api.client.post("/api/v1/sync/queues", headers=api.auth(token), json={
            "store": {"url": store_url, "consumer_key": "ck_test", "consumer_secret": "cs_test"}})
        assert response.status_code == 202, response.text
    with pytest.raises(ReplyProblem):  # no producer runs: the request stays queued
        await request_sync(amqp_url, a_request(org_id, store_url), reply_timeout=0.2)

    connection = await amqp.connect(amqp_url)
    try:
        channel = await amqp.open_publisher_channel(connection)
        requests = await amqp.consumable_queue(channel, topology.SYNC_REQUESTS_QUEUE, settings)
        published = [await requests.get(timeout=5), await requests.get(timeout=5)]
    finally:
        await connection.close()
    assert [message.user_id for message in published] == ["guest", "guest"]
