"""The status API (docs/contract.md section 7) in-process against a real PostgreSQL and RabbitMQ: every
route's success and error paths, authentication, and isolation between organisations."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import aio_pika
import orjson
import pytest
from cryptography.fernet import Fernet

from shared import topology
from shared.messages import CustomerLine, StartSync
from shared.organizations import revoke_token
from shared.repository import dispatch, queue_lines, sync_queues
from shared.settings import load_settings
from tests.integration.fake_stores import accepting_store
from tests.integration.status_harness import (
    STORE_URL,
    StatusUnderTest,
    a_customer,
    a_queue,
    an_organization,
    status_service,
    unreachable_database,
)

pytestmark = pytest.mark.integration

START_BODY = {
    "store": {"url": STORE_URL, "consumer_key": "ck_live_1234567890", "consumer_secret": "cs_very_secret_value"},
    "idempotency_key": "nightly-1",
    "options": {"limit": 10},
}


@pytest.fixture
async def api(db_pool, amqp_url) -> AsyncIterator[StatusUnderTest]:
    async with status_service(db_pool, amqp_url) as status:
        yield status


@pytest.fixture
async def amqp_channel(amqp_url):
    connection = await aio_pika.connect(amqp_url)
    try:
        yield await connection.channel()
    finally:
        await connection.close()


@pytest.fixture
async def tenants(db_pool):
    """Two organisations: (org_id, token) each."""
    return await an_organization(db_pool, "Acme"), await an_organization(db_pool, "Globex")


async def drain(channel, queue_name: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    queue = await channel.declare_queue(queue_name, passive=True)
    messages = []
    while (message := await queue.get(fail=False, timeout=5)) is not None:
        await message.ack()
        messages.append(message)
    return messages


def assert_error(response, status: int, *fragments: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and isinstance(body["error"], str) and body["error"]
    for fragment in fragments:
        assert fragment in body["error"], body["error"]
    return body


# --------------------------------------------------------------------------- ops routes
async def test_healthz_and_readyz_answer_ok_without_a_token(api) -> None:
    for path in ("/healthz", "/readyz"):
        response = await api.client.get(path)
        assert (response.status_code, response.json()) == (200, {"ok": True})


async def test_readyz_is_503_naming_rabbitmq_when_the_broker_connection_is_down(api) -> None:
    await api.ctx.amqp_connection.close()
    response = await api.client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["ok"] is False and "RabbitMQ" in response.json()["reason"]


async def test_readyz_is_503_naming_postgres_when_the_database_does_not_answer(api) -> None:
    async with unreachable_database(api.ctx):
        response = await api.client.get("/readyz")
    assert response.status_code == 503 and "PostgreSQL" in response.json()["reason"]


async def test_api_routes_answer_503_not_500_while_the_database_is_unreachable(api, tenants) -> None:
    (_, token), _ = tenants
    async with unreachable_database(api.ctx):
        response = await api.client.get("/api/v1/sync/queues", headers=api.auth(token))
    assert_error(response, 503, "unavailable")
    assert response.headers["Retry-After"] == "2"


async def test_unknown_route_and_wrong_method_answer_the_error_envelope(api) -> None:
    assert_error(await api.client.get("/api/v1/nothing-here"), 404, "/api/v1/nothing-here")
    assert_error(await api.client.delete("/api/v1/sync/queues"), 405, "DELETE")


async def test_openapi_document_lists_every_api_route(api) -> None:
    response = await api.client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    assert set(document["paths"]) >= {
        "/api/v1/sync/queues", "/api/v1/sync/queues/{queue_id}", "/api/v1/sync/queues/{queue_id}/lines",
        "/api/v1/sync/queues/{queue_id}/activity", "/api/v1/sync/queues/{queue_id}/events",
        "/api/v1/sync/queues/{queue_id}/retry", "/api/v1/sync/queues/{queue_id}/cancel",
        "/api/v1/integrations/woocommerce/sync/customers",
    }
    assert "StartSyncRequest" in document["components"]["schemas"]
    # Every route and method the app serves under /api is documented (and so fuzzed).
    documented = {(path, method.upper()) for path, operations in document["paths"].items() for method in operations}
    served = {(route.path, method) for route in api.app.routes if route.path.startswith("/api/")
              for method in getattr(route, "methods", None) or () if method != "HEAD"}
    assert served - documented == set()


# --------------------------------------------------------------------------- authentication
@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer    ", "Basic dXNlcjpwYXNz", "wsk_no_scheme", "Bearer wsk_not_a_real_token_at_all_0000000000"],
)
async def test_requests_without_a_valid_bearer_token_are_401(api, header) -> None:
    headers = {} if header is None else {"Authorization": header}
    for method, path in (("GET", "/api/v1/sync/queues"), ("GET", f"/api/v1/sync/queues/{uuid.uuid4()}"),
                         ("POST", "/api/v1/sync/queues")):
        response = await api.client.request(method, path, headers=headers, json=START_BODY)
        assert_error(response, 401)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_a_revoked_token_is_401(api, db_pool, tenants) -> None:
    (org_id, token), _ = tenants
    assert (await api.client.get("/api/v1/sync/queues", headers=api.auth(token))).status_code == 200
    assert await revoke_token(db_pool, token)
    assert_error(await api.client.get("/api/v1/sync/queues", headers=api.auth(token)), 401, "revoked")


async def test_authentication_comes_before_input_validation(api) -> None:
    # A caller without a token learns nothing, not even that its input is malformed.
    assert_error(await api.client.get("/api/v1/sync/queues/not-a-uuid"), 401)


# --------------------------------------------------------------------------- start a sync
async def test_starting_a_sync_records_the_queue_and_hands_the_request_to_the_producer(api, db_pool, amqp_channel, tenants) -> None:
    (org_id, token), _ = tenants
    response = await api.client.post("/api/v1/sync/queues", headers=api.auth(token), json=START_BODY)
    assert response.status_code == 202, response.text
    status = response.json()["data"]
    assert status["state"] == "draft" and status["total_count"] == 0 and status["progress"] == 0
    assert "cs_very_secret_value" not in response.text

    recorded = await sync_queues.queue_status(db_pool, uuid.UUID(status["id"]), org_id)
    assert recorded is not None and recorded.idempotency_key == "nightly-1" and recorded.store_url == STORE_URL

    [message] = await drain(amqp_channel, topology.SYNC_REQUESTS_QUEUE)
    assert message.content_type == "application/json" and message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    request = StartSync.model_validate_json(message.body)
    assert request.queue_id == uuid.UUID(status["id"]) and request.org_id == org_id
    assert request.store.consumer_secret.get_secret_value() == "cs_very_secret_value"
    assert request.options.limit == 10 and request.idempotency_key == "nightly-1"
    assert request.requested_by.startswith("api token wsk_")


async def test_a_repeated_idempotency_key_answers_the_same_queue_and_publishes_nothing_more(api, amqp_channel, tenants) -> None:
    (_, token), _ = tenants
    first = await api.client.post("/api/v1/sync/queues", headers=api.auth(token), json=START_BODY)
    second = await api.client.post("/api/v1/sync/queues", headers=api.auth(token), json=START_BODY)
    assert second.status_code == 202
    assert second.json()["data"]["id"] == first.json()["data"]["id"]
    assert len(await drain(amqp_channel, topology.SYNC_REQUESTS_QUEUE)) == 1


async def test_the_same_idempotency_key_in_two_organisations_makes_two_queues(api, tenants) -> None:
    (_, token_a), (_, token_b) = tenants
    first = await api.client.post("/api/v1/sync/queues", headers=api.auth(token_a), json=START_BODY)
    second = await api.client.post("/api/v1/sync/queues", headers=api.auth(token_b), json=START_BODY)
    assert first.json()["data"]["id"] != second.json()["data"]["id"]


async def test_store_credentials_are_encrypted_at_rest_when_a_secret_key_is_set(db_pool, amqp_url, tenants) -> None:
    (org_id, token), _ = tenants
    settings = load_settings(secret_key=Fernet.generate_key().decode())
    async with status_service(db_pool, amqp_url, settings=settings) as api:
        response = await api.client.post("/api/v1/sync/queues", headers=api.auth(token), json=START_BODY)
    assert response.status_code == 202
    row = await db_pool.fetchrow("SELECT credentials, credentials_format FROM woo_store WHERE org_id = $1", org_id)
    assert row["credentials_format"] == "fernet" and "cs_very_secret_value" not in row["credentials"]


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({**START_BODY, "store": {**START_BODY["store"], "url": "ftp://shop.example.com"}}, 422, "store.url: must be the store's http(s) base URL"),
        ({**START_BODY, "store": {**START_BODY["store"], "url": "https://shop.example.com/?x=1"}}, 422, "store.url"),
        ({**START_BODY, "store": {**START_BODY["store"], "consumer_secret": "  "}}, 422, "store.consumer_secret"),
        ({"idempotency_key": "x"}, 422, "store"),
        ({**START_BODY, "surprise": 1}, 422, "surprise"),
        ({**START_BODY, "options": {"limit": 0}}, 422, "options.limit"),
        ({**START_BODY, "options": {"role": "Robert'); DROP TABLE customer;--"}}, 422, "options.role"),
        ({**START_BODY, "requested_by": "nul\u0000inside"}, 422, "requested_by: must not contain NUL"),
        ({**START_BODY, "options": {"email": "a\u0000@example.com"}}, 422, "options.email"),
        ({**START_BODY, "options": {"woo_customer_id": 2**63}}, 422, "options.woo_customer_id"),
        ([1, 2, 3], 422, "JSON object"),
        ("just a string", 422, "JSON object"),
    ],
)
async def test_an_invalid_start_request_is_422_naming_the_field(api, amqp_channel, tenants, body, status, fragment) -> None:
    (_, token), _ = tenants
    response = await api.client.post("/api/v1/sync/queues", headers=api.auth(token), json=body)
    assert_error(response, status, fragment)
    assert "cs_very_secret_value" not in response.text  # inputs are never echoed back
    assert await drain(amqp_channel, topology.SYNC_REQUESTS_QUEUE) == []


@pytest.mark.parametrize(
    ("content", "content_type", "fragment"),
    [
        (b'{"store": ', "application/json", "not valid JSON"),
        (b"", "application/json", "empty"),
        (b"store=x", "application/x-www-form-urlencoded", "Content-Type must be application/json"),
        (orjson.dumps(START_BODY), "text/plain", "Content-Type must be application/json"),
        (b"\xff\xfe\x00garbage", "application/json", "not valid JSON"),
    ],
)
async def test_a_malformed_body_is_400_naming_the_problem(api, tenants, content, content_type, fragment) -> None:
    (_, token), _ = tenants
    response = await api.client.post(
        "/api/v1/sync/queues", headers={**api.auth(token), "Content-Type": content_type}, content=content
    )
    assert_error(response, 400, fragment)


async def test_a_json_null_body_is_422_not_a_crash(api, tenants) -> None:
    (org_id, token), _ = tenants
    # The seeds' route answers bad input with the seed's own 400.
    for path, status in (("/api/v1/sync/queues", 422), (SEED_PATH, 400)):
        response = await api.client.post(path, headers={**api.auth(token), "Content-Type": "application/json"}, content=b"null")
        assert_error(response, status, "got null")


async def test_a_body_over_a_megabyte_is_413(api, tenants) -> None:
    (_, token), _ = tenants
    body = {**START_BODY, "requested_by": "x" * 2_000_000}
    assert_error(await api.client.post("/api/v1/sync/queues", headers=api.auth(token), json=body), 413)


async def test_when_the_broker_refuses_the_request_the_caller_gets_503_and_the_queue_records_it(api, db_pool, amqp_channel, tenants) -> None:
    (org_id, token), _ = tenants
    queue = await amqp_channel.declare_queue(topology.SYNC_REQUESTS_QUEUE, passive=True)
    await queue.unbind(topology.REQUESTS_EXCHANGE, topology.SYNC_REQUEST_BINDING)  # requests become unroutable

    response = await api.client.post("/api/v1/sync/queues", headers=api.auth(token), json=START_BODY)
    assert_error(response, 503, "message broker")
    [status] = await sync_queues.list_queues(db_pool, org_id, limit=5, offset=0)
    assert status.is_action_required and "message broker" in (status.error_message or "")


# --------------------------------------------------------------------------- read
async def test_list_is_newest_first_paginated_and_only_the_organisations_own(api, db_pool, tenants) -> None:
    (org_a, token_a), (org_b, _) = tenants
    made = [(await a_queue(db_pool, org_a))[0].id for _ in range(3)]
    await a_queue(db_pool, org_b)

    first = (await api.client.get("/api/v1/sync/queues?limit=2", headers=api.auth(token_a))).json()["data"]
    assert [q["id"] for q in first["items"]] == [str(made[2]), str(made[1])]
    assert (first["limit"], first["offset"], first["next_offset"]) == (2, 0, 2)
    last = (await api.client.get("/api/v1/sync/queues?limit=2&offset=2", headers=api.auth(token_a))).json()["data"]
    assert [q["id"] for q in last["items"]] == [str(made[0])] and last["next_offset"] is None


@pytest.mark.parametrize("query", ["limit=0", "limit=501", "limit=abc", "offset=-1", "offset=1.5", "limit=99999999999999999999999",
                                   "limit=", "stat=failed"])
async def test_bad_pagination_parameters_are_400_naming_the_parameter(api, tenants, query) -> None:
    (_, token), _ = tenants
    name = query.split("=")[0]
    assert_error(await api.client.get(f"/api/v1/sync/queues?{query}", headers=api.auth(token)), 400, name)


async def test_queue_status_has_every_spec_field_from_the_trigger_counts(api, db_pool, tenants) -> None:
    (org_id, token), _ = tenants
    status, line_ids = await a_queue(db_pool, org_id, lines=4, enumerated=True)
    await queue_lines.claim_lines(db_pool, line_ids[:3])
    await queue_lines.mark_lines_done(db_pool, [(line_ids[0], None, False)])
    await queue_lines.mark_lines_failed(db_pool, [(line_ids[1], "no valid email")])

    response = await api.client.get(f"/api/v1/sync/queues/{status.id}", headers=api.auth(token))
    assert response.status_code == 200
    data = response.json()["data"]
    assert set(data) >= {"id", "queue_name", "state", "total_count", "draft_count", "processing_count", "done_count",
                         "failed_count", "cancelled_count", "progress", "is_action_required", "items_per_min",
                         "eta_seconds", "created_at", "updated_at"}
    assert (data["state"], data["total_count"], data["draft_count"], data["processing_count"], data["done_count"],
            data["failed_count"], data["cancelled_count"]) == ("processing", 4, 1, 1, 1, 1, 0)
    assert data["progress"] == 50 and data["is_action_required"] is True


async def test_a_malformed_queue_id_is_400_and_an_unknown_one_404(api, tenants) -> None:
    (_, token), _ = tenants
    for suffix in ("", "/lines", "/activity", "/events"):
        assert_error(await api.client.get(f"/api/v1/sync/queues/12345{suffix}", headers=api.auth(token)), 400, "UUID")
        assert_error(await api.client.get(f"/api/v1/sync/queues/{uuid.uuid4()}{suffix}", headers=api.auth(token)), 404)
    for action in ("retry", "cancel"):
        assert_error(await api.client.post(f"/api/v1/sync/queues/'; DROP TABLE x/{action}", headers=api.auth(token)), 400)
        assert_error(await api.client.post(f"/api/v1/sync/queues/{uuid.uuid4()}/{action}", headers=api.auth(token)), 404)


async def test_lines_are_filtered_by_state_with_their_errors(api, db_pool, tenants) -> None:
    (org_id, token), _ = tenants
    status, line_ids = await a_queue(db_pool, org_id, lines=5)
    await queue_lines.claim_lines(db_pool, line_ids[:2])
    await queue_lines.mark_lines_failed(db_pool, [(line_ids[0], "customer has no valid email"), (line_ids[1], "boom")])

    failed = (await api.client.get(f"/api/v1/sync/queues/{status.id}/lines?state=failed", headers=api.auth(token))).json()["data"]
    assert [(line["woo_customer_id"], line["error_message"]) for line in failed["items"]] == [
        (1, "customer has no valid email"), (2, "boom")]
    page = (await api.client.get(f"/api/v1/sync/queues/{status.id}/lines?limit=2&offset=2", headers=api.auth(token))).json()["data"]
    assert [line["woo_customer_id"] for line in page["items"]] == [3, 4] and page["next_offset"] == 4
    assert "customer_data" not in page["items"][0]
    assert_error(await api.client.get(f"/api/v1/sync/queues/{status.id}/lines?state=lost", headers=api.auth(token)), 400, "state")


# --------------------------------------------------------------------------- retry and cancel
async def test_retry_puts_failed_lines_back_for_the_dispatcher_with_their_customer_data_and_logs_who_asked(api, db_pool, amqp_channel, tenants) -> None:
    (org_id, token), _ = tenants
    status, line_ids = await a_queue(db_pool, org_id, lines=3, enumerated=True)
    await queue_lines.claim_lines(db_pool, line_ids)
    await queue_lines.mark_lines_done(db_pool, [(line_ids[0], None, False)])
    await queue_lines.mark_lines_failed(db_pool, [(line_ids[1], "store timed out"), (line_ids[2], "store timed out")])

    response = await api.client.post(f"/api/v1/sync/queues/{status.id}/retry", headers=api.auth(token),
                                     json={"requested_by": "ops@acme"})
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["retried"] == 2 and data["queue"]["draft_count"] == 2 and data["queue"]["failed_count"] == 0

    # The status service publishes nothing: the producers' dispatcher is the one publisher
    # (docs/architecture.md "Dispatch"); its next step hands these lines out with their data.
    assert await drain(amqp_channel, topology.CUSTOMER_LINES_QUEUE) == []
    queue_id, recorded = await dispatch.queue_next_window(db_pool, window=10)
    assert queue_id == status.id
    lines = sorted((CustomerLine.from_recorded(line) for line in recorded), key=lambda line: line.woo_customer_id)
    assert [(line.line_id, line.customer) for line in lines] == [(line_ids[1], a_customer(2)), (line_ids[2], a_customer(3))]
    assert all(line.queue_id == status.id and line.org_id == org_id and line.store_id == status.store_id for line in lines)

    activity = (await api.client.get(f"/api/v1/sync/queues/{status.id}/activity", headers=api.auth(token))).json()["data"]
    [retry_entry] = [entry for entry in activity["items"] if entry["activity_type"] == "retry"]
    assert "ops@acme" in retry_entry["message"] and token[:12] in retry_entry["message"]
    assert token not in response.text + str(activity)

    again = await api.client.post(f"/api/v1/sync/queues/{status.id}/retry", headers=api.auth(token))
    assert again.status_code == 200 and again.json()["data"]["retried"] == 0
    assert await drain(amqp_channel, topology.CUSTOMER_LINES_QUEUE) == []


async def test_cancel_cancels_draft_lines_is_idempotent_and_logged(api, db_pool, tenants) -> None:
    (org_id, token), _ = tenants
    status, line_ids = await a_queue(db_pool, org_id, lines=3)
    await queue_lines.claim_lines(db_pool, line_ids[:1])

    response = await api.client.post(f"/api/v1/sync/queues/{status.id}/cancel", headers=api.auth(token))
    assert response.status_code == 200
    data = response.json()["data"]
    assert (data["state"], data["cancelled_count"], data["processing_count"]) == ("cancelled", 2, 1)
    again = await api.client.post(f"/api/v1/sync/queues/{status.id}/cancel", headers=api.auth(token),
                                  json={"requested_by": "someone else"})
    assert again.status_code == 200 and again.json()["data"]["cancelled_count"] == 2

    activity = (await api.client.get(f"/api/v1/sync/queues/{status.id}/activity", headers=api.auth(token))).json()["data"]
    cancels = [entry for entry in activity["items"] if entry["activity_type"] == "cancel"]
    assert len(cancels) == 1 and token[:12] in cancels[0]["message"]

    assert_error(await api.client.post(f"/api/v1/sync/queues/{status.id}/retry", headers=api.auth(token)), 409, "cancelled")


async def test_cancelling_a_finished_sync_is_a_conflict(api, db_pool, tenants) -> None:
    (org_id, token), _ = tenants
    status, line_ids = await a_queue(db_pool, org_id, lines=1, enumerated=True)
    await queue_lines.claim_lines(db_pool, line_ids)
    await queue_lines.mark_lines_done(db_pool, [(line_ids[0], None, True)])
    response = await api.client.post(f"/api/v1/sync/queues/{status.id}/cancel", headers=api.auth(token))
    assert_error(response, 409, "already done")


async def test_action_bodies_are_validated(api, db_pool, tenants) -> None:
    (org_id, token), _ = tenants
    status, _ = await a_queue(db_pool, org_id, lines=1)
    for action in ("retry", "cancel"):
        url = f"/api/v1/sync/queues/{status.id}/{action}"
        assert_error(await api.client.post(url, headers=api.auth(token), json={"requested_by": 5}), 422, "requested_by")
        assert_error(await api.client.post(url, headers={**api.auth(token), "Content-Type": "application/json"},
                                           content=b"{nope"), 400, "JSON")


# --------------------------------------------------------------------------- isolation
async def test_another_organisations_queue_is_404_on_every_route_and_untouched(api, db_pool, amqp_channel, tenants) -> None:
    (org_a, _), (org_b, token_b) = tenants
    status, line_ids = await a_queue(db_pool, org_a, lines=3)
    await queue_lines.claim_lines(db_pool, line_ids[:1])
    await queue_lines.mark_lines_failed(db_pool, [(line_ids[0], "bad email")])
    before = await sync_queues.queue_status(db_pool, status.id, org_a)

    base = f"/api/v1/sync/queues/{status.id}"
    for method, path in (("GET", base), ("GET", f"{base}/lines"), ("GET", f"{base}/activity"), ("GET", f"{base}/events"),
                         ("POST", f"{base}/retry"), ("POST", f"{base}/cancel")):
        response = await api.client.request(method, path, headers=api.auth(token_b))
        assert_error(response, 404)
        assert str(org_a) not in response.text
    seed_actions = [{"action": action, "queue_id": str(status.id), "org_id": str(org_b)}
                    for action in ("status", "retry", "force-done")]
    for body in seed_actions:
        assert_error(await api.client.post("/api/v1/integrations/woocommerce/sync/customers",
                                           headers=api.auth(token_b), json=body), 404)

    after = await sync_queues.queue_status(db_pool, status.id, org_a)
    assert (after.state, after.failed_count, after.draft_count, after.cancelled_count) == (
        before.state, before.failed_count, before.draft_count, before.cancelled_count)
    assert await drain(amqp_channel, topology.CUSTOMER_LINES_QUEUE) == []
    listed = (await api.client.get("/api/v1/sync/queues", headers=api.auth(token_b))).json()["data"]["items"]
    assert listed == []


# --------------------------------------------------------------------------- the seeds' route
SEED_PATH = "/api/v1/integrations/woocommerce/sync/customers"


def seed_body(org_id, **overrides) -> dict:
    body = {"config": {"url": STORE_URL, "consumerKey": "ck_seed", "consumerSecret": "cs_seed_secret"},
            "org_id": str(org_id), "action": "start", "options": {"limit": 5, "wooCustomerId": 7, "batchSize": 50}}
    body.update(overrides)
    return body


async def test_seed_start_answers_the_seed_shape_and_publishes_the_request(api, amqp_channel, tenants) -> None:
    (org_id, token), _ = tenants
    api.ctx.store_client = accepting_store  # start tests the store first, as the seed did
    response = await api.client.post(SEED_PATH, headers=api.auth(token), json=seed_body(org_id, user_id="user-42"))
    assert response.status_code == 200, response.text  # the seed's 200 (docs/contract.md section 7)
    data = response.json()["data"]
    assert set(data) >= {"queueId", "state", "totalCount", "progress", "message"}
    assert data["queueId"] == data["id"] and data["state"] == "draft" and data["totalCount"] == 0
    assert "cs_seed_secret" not in response.text

    [message] = await drain(amqp_channel, topology.SYNC_REQUESTS_QUEUE)
    request = StartSync.model_validate_json(message.body)
    assert str(request.queue_id) == data["queueId"]
    assert (request.options.limit, request.options.woo_customer_id, request.options.role) == (5, 7, "all")
    assert request.store.consumer_key.get_secret_value() == "ck_seed"
    assert request.requested_by.startswith("user-42 via api token")


async def test_seed_status_retry_and_force_done_act_on_the_queue(api, db_pool, tenants) -> None:
    (org_id, token), _ = tenants
    status, line_ids = await a_queue(db_pool, org_id, lines=2)
    await queue_lines.claim_lines(db_pool, line_ids[:1])
    await queue_lines.mark_lines_failed(db_pool, [(line_ids[0], "bad email")])
    common = {"org_id": str(org_id), "queue_id": str(status.id)}

    read = await api.client.post(SEED_PATH, headers=api.auth(token), json={**common, "action": "status"})
    assert read.status_code == 200 and read.json()["data"]["failed_count"] == 1
    retried = await api.client.post(SEED_PATH, headers=api.auth(token), json={**common, "action": "retry"})
    assert retried.status_code == 200 and retried.json()["data"]["retried"] == 1
    done = await api.client.post(SEED_PATH, headers=api.auth(token), json={**common, "action": "force-done"})
    assert done.status_code == 200 and done.json()["data"]["state"] == "cancelled"


@pytest.mark.parametrize(
    ("mutate", "status", "fragment"),
    [
        (lambda org, other: {"org_id": "not-a-uuid"}, 400, "org_id"),
        (lambda org, other: {"org_id": str(other)}, 403, "org_id"),
        (lambda org, other: {"config": None}, 400, "config"),
        (lambda org, other: {"config": {"url": "shop", "consumerKey": "a", "consumerSecret": "b"}}, 400, "config.url"),
        (lambda org, other: {"config": {"url": STORE_URL, "consumerKey": "", "consumerSecret": "b"}}, 400, "config.consumerKey"),
        (lambda org, other: {"action": "explode"}, 400, "action"),
        (lambda org, other: {"action": "status"}, 400, "queue_id"),
        (lambda org, other: {"action": "retry", "queue_id": "12"}, 400, "queue_id"),
        (lambda org, other: {"options": {"wooCustomerId": -1}}, 400, "options.wooCustomerId"),
        (lambda org, other: {"options": {"role": "Admin!"}}, 400, "WooCommerce role"),
    ],
)
async def test_seed_route_rejects_bad_requests_naming_the_problem(api, tenants, mutate, status, fragment) -> None:
    (org_id, token), (other_org, _) = tenants
    body = seed_body(org_id)
    body.update(mutate(org_id, other_org))
    assert_error(await api.client.post(SEED_PATH, headers=api.auth(token), json=body), status, fragment)
