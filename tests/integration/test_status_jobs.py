"""Sync jobs (docs/contract.md section 7) in-process against a real PostgreSQL and RabbitMQ: the
native /api/v1/sync/jobs routes, the seeds' orchestrate route and progress stream, and isolation
between organisations on every one of them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import aio_pika
import aiohttp
import orjson
import pytest

from shared import topology
from shared.messages import StartSync
from shared.repository import queue_lines, stores, sync_queues
from shared.settings import Settings
from tests.integration.status_harness import (
    StatusUnderTest,
    a_customer,
    a_queue,
    an_organization,
    serve,
    status_service,
)

pytestmark = pytest.mark.integration

STORES = [{"url": f"http://127.0.0.1:{port}", "consumer_key": f"ck_{port}", "consumer_secret": f"cs_secret_{port}"}
          for port in (8091, 8092, 8093)]


@pytest.fixture
async def api(db_pool, amqp_url) -> AsyncIterator[StatusUnderTest]:
    async with status_service(db_pool, amqp_url) as status:
        yield status


async def drain_requests(amqp_url: str) -> list[StartSync]:
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(topology.SYNC_REQUESTS_QUEUE, passive=True)
        found = []
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            found.append(StartSync.model_validate_json(message.body))
        return found
    finally:
        await connection.close()


async def work_lines(pool, queue_id, org_id, *, done: int, failed: int) -> None:
    """Give a job's queue `done + failed` customers and finish them so, as producer and consumers would."""
    added = await queue_lines.add_lines(pool, queue_id=queue_id, org_id=org_id,
                                        customers=[(n, a_customer(n)) for n in range(1, done + failed + 1)])
    line_ids = [line_id for line_id, _ in sorted(added, key=lambda pair: pair[1])]
    await sync_queues.mark_enumeration_done(pool, queue_id, org_id)
    await queue_lines.claim_lines(pool, line_ids)
    await queue_lines.mark_lines_done(pool, [(line_id, None, False) for line_id in line_ids[:done]])
    await queue_lines.mark_lines_failed(pool, [(line_id, "no valid email") for line_id in line_ids[done:]])


async def test_a_job_over_three_stores_makes_one_queue_per_store_and_publishes_each_request(api, db_pool, amqp_url) -> None:
    org_id, token = await an_organization(db_pool)
    response = await api.client.post("/api/v1/sync/jobs", headers=api.auth(token),
                                      json={"stores": STORES, "options": {"limit": 5}, "requested_by": "nightly"})
    assert response.status_code == 202, response.text
    job = response.json()["data"]
    assert (job["state"], job["store_count"], job["total_count"], job["progress"]) == ("draft", 3, 0, 0)
    assert [queue["store_url"] for queue in job["queues"]] == [store["url"] for store in STORES]
    assert "cs_secret" not in response.text

    requests = await drain_requests(amqp_url)
    assert sorted(str(request.queue_id) for request in requests) == sorted(queue["id"] for queue in job["queues"])
    assert {request.options.limit for request in requests} == {5}

    # The queues end done, partial and failed (credentials refused): the job is partial, counts summed.
    first, second, third = (uuid.UUID(queue["id"]) for queue in job["queues"])
    await work_lines(db_pool, first, org_id, done=4, failed=0)
    await work_lines(db_pool, second, org_id, done=2, failed=1)
    await sync_queues.record_queue_error(db_pool, third, org_id, "store connection failed: credentials refused")
    read = (await api.client.get(f"/api/v1/sync/jobs/{job['id']}", headers=api.auth(token))).json()["data"]
    assert [queue["state"] for queue in read["queues"]] == ["done", "partial", "failed"]
    assert (read["state"], read["total_count"], read["done_count"], read["failed_count"], read["progress"]) == (
        "partial", 7, 6, 1, 100)
    assert read["is_action_required"] is True and read["eta_seconds"] == 0

    retried = await api.client.post(f"/api/v1/sync/jobs/{job['id']}/retry", headers=api.auth(token))
    assert retried.status_code == 200 and retried.json()["data"]["retried"] == 1
    assert retried.json()["data"]["job"]["state"] == "processing"
    cancelled = await api.client.post(f"/api/v1/sync/jobs/{job['id']}/cancel", headers=api.auth(token))
    assert cancelled.status_code == 200 and cancelled.json()["data"]["state"] == "cancelled"
    again = await api.client.post(f"/api/v1/sync/jobs/{job['id']}/retry", headers=api.auth(token))
    assert again.status_code == 409 and "cancelled" in again.json()["error"]


async def test_a_job_of_one_store_reads_as_that_sync(api, db_pool, amqp_url) -> None:
    org_id, token = await an_organization(db_pool)
    job = (await api.client.post("/api/v1/sync/jobs", headers=api.auth(token), json={"stores": STORES[:1]})).json()["data"]
    [queue] = job["queues"]
    await work_lines(db_pool, uuid.UUID(queue["id"]), org_id, done=3, failed=1)
    read = (await api.client.get(f"/api/v1/sync/jobs/{job['id']}", headers=api.auth(token))).json()["data"]
    alone = (await api.client.get(f"/api/v1/sync/queues/{queue['id']}", headers=api.auth(token))).json()["data"]
    for key in ("state", "total_count", "done_count", "failed_count", "progress", "is_action_required", "eta_seconds"):
        assert read[key] == alone[key], key
    finished = await api.client.post(f"/api/v1/sync/jobs/{job['id']}/cancel", headers=api.auth(token))
    assert finished.status_code == 409 and "already partial" in finished.json()["error"]


async def test_a_job_is_paused_and_resumed_as_a_whole(api, db_pool, amqp_url) -> None:
    _, token = await an_organization(db_pool)
    job = (await api.client.post("/api/v1/sync/jobs", headers=api.auth(token), json={"stores": STORES[:2]})).json()["data"]

    for _ in range(2):  # idempotent: pausing a paused job changes nothing
        paused = await api.client.post(f"/api/v1/sync/jobs/{job['id']}/pause", headers=api.auth(token),
                                       json={"requested_by": "ops"})
        assert paused.status_code == 200, paused.text
        data = paused.json()["data"]
        assert data["state"] == "paused" and [queue["state"] for queue in data["queues"]] == ["paused", "paused"]
    for queue in job["queues"]:
        alone = (await api.client.get(f"/api/v1/sync/queues/{queue['id']}", headers=api.auth(token))).json()["data"]
        assert alone["state"] == "paused"

    resumed = await api.client.post(f"/api/v1/sync/jobs/{job['id']}/resume", headers=api.auth(token))
    assert resumed.status_code == 200, resumed.text
    data = resumed.json()["data"]
    assert data["state"] == "draft" and [queue["state"] for queue in data["queues"]] == ["draft", "draft"]
    again = await api.client.post(f"/api/v1/sync/jobs/{job['id']}/resume", headers=api.auth(token))
    assert again.status_code == 200 and again.json()["data"]["state"] == "draft"


async def test_pausing_a_job_pauses_only_its_unfinished_queues(api, db_pool, amqp_url) -> None:
    org_id, token = await an_organization(db_pool)
    job = (await api.client.post("/api/v1/sync/jobs", headers=api.auth(token), json={"stores": STORES[:2]})).json()["data"]
    first, second = (uuid.UUID(queue["id"]) for queue in job["queues"])
    await work_lines(db_pool, first, org_id, done=2, failed=0)
    await queue_lines.add_lines(db_pool, queue_id=second, org_id=org_id, customers=[(1, a_customer(1))])

    paused = (await api.client.post(f"/api/v1/sync/jobs/{job['id']}/pause", headers=api.auth(token))).json()["data"]
    assert [queue["state"] for queue in paused["queues"]] == ["done", "paused"] and paused["state"] == "paused"
    resumed = (await api.client.post(f"/api/v1/sync/jobs/{job['id']}/resume", headers=api.auth(token))).json()["data"]
    # The second queue has not started a line (draft); the job has a queue done: processing.
    assert [queue["state"] for queue in resumed["queues"]] == ["done", "draft"]
    assert resumed["state"] == "processing"


async def test_a_finished_job_cannot_be_paused_or_resumed(api, db_pool, amqp_url) -> None:
    org_id, token = await an_organization(db_pool)
    job = (await api.client.post("/api/v1/sync/jobs", headers=api.auth(token), json={"stores": STORES[:2]})).json()["data"]
    for queue in job["queues"]:
        await work_lines(db_pool, uuid.UUID(queue["id"]), org_id, done=1, failed=0)
    for action in ("pause", "resume"):
        response = await api.client.post(f"/api/v1/sync/jobs/{job['id']}/{action}", headers=api.auth(token))
        assert response.status_code == 409, response.text
        assert f"already done: nothing to {action}" in response.json()["error"]
    cancelled = (await api.client.post("/api/v1/sync/jobs", headers=api.auth(token), json={"stores": STORES[2:]})).json()["data"]
    await api.client.post(f"/api/v1/sync/jobs/{cancelled['id']}/cancel", headers=api.auth(token))
    response = await api.client.post(f"/api/v1/sync/jobs/{cancelled['id']}/pause", headers=api.auth(token))
    assert response.status_code == 409 and "already cancelled" in response.json()["error"]


async def test_a_repeated_job_key_answers_the_same_job_and_publishes_nothing_new(api, db_pool, amqp_url) -> None:
    _, token = await an_organization(db_pool)
    body = {"stores": STORES[:2], "idempotency_key": "nightly-7"}
    first = (await api.client.post("/api/v1/sync/jobs", headers=api.auth(token), json=body)).json()["data"]
    second = (await api.client.post("/api/v1/sync/jobs", headers=api.auth(token), json=body)).json()["data"]
    assert second["id"] == first["id"] and second["queues"] == first["queues"]
    assert len(await drain_requests(amqp_url)) == 2


async def test_a_job_over_the_open_syncs_cap_is_refused_whole(db_pool, amqp_url) -> None:
    org_id, token = await an_organization(db_pool)
    async with status_service(db_pool, amqp_url, settings=Settings(org_max_open_syncs=2)) as api:
        refused = await api.client.post("/api/v1/sync/jobs", headers=api.auth(token), json={"stores": STORES})
        fits = await api.client.post("/api/v1/sync/jobs", headers=api.auth(token), json={"stores": STORES[:2]})
    assert refused.status_code == 429 and "WOOSYNC_ORG_MAX_OPEN_SYNCS" in refused.json()["error"]
    assert fits.status_code == 202
    assert len(await sync_queues.list_queues(db_pool, org_id, limit=10, offset=0)) == 2
    assert len(await drain_requests(amqp_url)) == 2


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({}, 422, "stores: Field required"),
        ({"stores": None}, 422, 'a list of stores or "all"'),
        ({"stores": []}, 422, "stores"),
        ({"stores": [STORES[0], {**STORES[0], "url": STORES[0]["url"] + "/", "consumer_key": "ck_other"}]}, 409,
         "stores.1 is the store of stores.0"),
        ({"stores": "all"}, 409, "synced no store"),
    ],
)
async def test_job_requests_that_cannot_be_a_job_are_refused_naming_the_problem(api, db_pool, body, status, fragment) -> None:
    _, token = await an_organization(db_pool)
    response = await api.client.post("/api/v1/sync/jobs", headers=api.auth(token), json=body)
    assert response.status_code == status, response.text
    assert fragment in response.json()["error"]


async def test_every_store_the_organisation_has_synced_is_one_job(api, db_pool, amqp_url) -> None:
    org_id, token = await an_organization(db_pool)
    for store in STORES[:2]:
        store_id = await stores.upsert_store(db_pool, org_id=org_id, url=store["url"], consumer_key=store["consumer_key"],
                                             consumer_secret=store["consumer_secret"], cipher=None)
        await stores.save_verified_credentials(db_pool, store_id, consumer_key=store["consumer_key"],
                                               consumer_secret=store["consumer_secret"], cipher=None)
    await stores.upsert_store(db_pool, org_id=org_id, url=STORES[2]["url"], consumer_key="ck_x", consumer_secret="cs_x",
                              cipher=None)  # never accepted by its store: not synced
    job = (await api.client.post("/api/v1/sync/jobs", headers=api.auth(token), json={"stores": "all"})).json()["data"]
    assert [queue["store_url"] for queue in job["queues"]] == [store["url"] for store in STORES[:2]]
    requests = await drain_requests(amqp_url)
    assert sorted(request.store.consumer_secret.get_secret_value() for request in requests) == sorted(
        store["consumer_secret"] for store in STORES[:2])


async def test_orchestrate_answers_the_seed_shape_with_the_job(api, db_pool) -> None:
    org_id, token = await an_organization(db_pool)
    configs = [{"url": store["url"], "consumerKey": store["consumer_key"], "consumerSecret": store["consumer_secret"]}
               for store in STORES]
    response = await api.client.post("/api/v1/integrations/sync/orchestrate", headers=api.auth(token),
                                     json={"org_id": str(org_id), "stores": configs, "user_id": "u-1"})
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["jobId"] == data["id"] and data["totalCount"] == 0 and len(data["queueIds"]) == 3
    assert "processing started" in data["message"]

    bad = await api.client.post("/api/v1/integrations/sync/orchestrate", headers=api.auth(token),
                                json={"org_id": "acme", "stores": configs})
    assert bad.status_code == 400 and bad.json()["error"].startswith("Invalid organization ID format: org_id: ")
    no_config = await api.client.post("/api/v1/integrations/sync/orchestrate", headers=api.auth(token),
                                      json={"org_id": str(org_id), "stores": [{"url": STORES[0]["url"]}]})
    assert no_config.status_code == 400
    assert no_config.json()["error"].startswith("WooCommerce configuration required: stores.0.consumerKey: ")


async def test_another_organisations_token_gets_404_on_every_job_route_and_stream(api, db_pool, amqp_url) -> None:
    org_a, token_a = await an_organization(db_pool, "Acme")
    _, token_b = await an_organization(db_pool, "Globex")
    job = (await api.client.post("/api/v1/sync/jobs", headers=api.auth(token_a), json={"stores": STORES[:2]})).json()["data"]
    queue_id = job["queues"][0]["id"]
    await drain_requests(amqp_url)

    for method, path in (("GET", f"/api/v1/sync/jobs/{job['id']}"), ("POST", f"/api/v1/sync/jobs/{job['id']}/cancel"),
                         ("POST", f"/api/v1/sync/jobs/{job['id']}/pause"), ("POST", f"/api/v1/sync/jobs/{job['id']}/resume"),
                         ("POST", f"/api/v1/sync/jobs/{job['id']}/retry"),
                         ("GET", f"/api/v1/integrations/sync/progress/{job['id']}"),
                         ("GET", f"/api/v1/integrations/sync/progress/{queue_id}")):
        response = await api.client.request(method, path, headers=api.auth(token_b))
        assert response.status_code == 404, (path, response.text)
        assert response.json()["success"] is False and str(org_a) not in response.text
    unknown = await api.client.get(f"/api/v1/integrations/sync/progress/{uuid.uuid4()}", headers=api.auth(token_a))
    assert unknown.status_code == 404 and "no sync job or queue" in unknown.json()["error"]
    unauthenticated = await api.client.get(f"/api/v1/integrations/sync/progress/{job['id']}")
    assert unauthenticated.status_code == 401

    still = (await api.client.get(f"/api/v1/sync/jobs/{job['id']}", headers=api.auth(token_a))).json()["data"]
    assert still["state"] == "draft" and still["cancelled_at"] is None
    assert await drain_requests(amqp_url) == []


# ------------------------------------------------------------------------ the progress stream
async def read_progress(response: aiohttp.ClientResponse) -> list[dict]:
    """Every `data:` event of a seed progress stream until the server ends it (no event names)."""
    events = []
    async for raw in response.content:
        line = raw.decode().rstrip("\r\n")
        assert not line.startswith("event:"), "the seed's events are unnamed (EventSource onmessage)"
        if line.startswith("data:"):
            events.append(orjson.loads(line.split(":", 1)[1]))
    return events


async def test_the_progress_stream_follows_a_job_to_its_end_in_the_seeds_metrics(db_pool, amqp_url) -> None:
    org_id, token = await an_organization(db_pool)
    async with status_service(db_pool, amqp_url, hub_interval=0.05, heartbeat_s=0.2) as api:
        job = (await api.client.post("/api/v1/sync/jobs", headers=api.auth(token), json={"stores": STORES[:2]})).json()["data"]
        first, second = (uuid.UUID(queue["id"]) for queue in job["queues"])
        async with serve(api.app, api.ctx.hub) as base_url, aiohttp.ClientSession(base_url) as session:
            async with session.get(f"/api/v1/integrations/sync/progress/{job['id']}",
                                   headers={"Authorization": f"Bearer {token}"}) as response:
                assert response.status == 200 and response.headers["Content-Type"].startswith("text/event-stream")
                reading = asyncio.create_task(read_progress(response))
                await work_lines(db_pool, first, org_id, done=3, failed=1)
                await work_lines(db_pool, second, org_id, done=2, failed=0)
                events = await asyncio.wait_for(reading, 30)
            assert api.ctx.event_streams.open_streams(org_id) == 0

    assert events[0]["jobId"] == job["id"] and events[0]["completionPercent"] == 0
    last = events[-1]
    assert {key: last[key] for key in ("processedCount", "failedCount", "completionPercent", "etaSeconds", "state")} == {
        "processedCount": 5, "failedCount": 1, "completionPercent": 100, "etaSeconds": 0, "state": "partial"}
    assert set(last) >= {"processedCount", "failedCount", "itemsPerMin", "etaSeconds", "completionPercent"}


async def test_the_progress_stream_takes_a_queue_id_and_sends_heartbeats(db_pool, amqp_url) -> None:
    org_id, token = await an_organization(db_pool)
    queue, line_ids = await a_queue(db_pool, org_id, lines=2, enumerated=True)
    async with status_service(db_pool, amqp_url, hub_interval=0.05, heartbeat_s=0.1) as api:
        async with serve(api.app, api.ctx.hub) as base_url, aiohttp.ClientSession(base_url) as session:
            async with session.get(f"/api/v1/integrations/sync/progress/{queue.id}",
                                   headers={"Authorization": f"Bearer {token}"}) as response:
                assert response.status == 200
                comments = 0
                while comments < 2:  # heartbeats arrive while nothing changes
                    line = (await asyncio.wait_for(response.content.readline(), 10)).decode()
                    comments += line.startswith(":")
                reading = asyncio.create_task(read_progress(response))
                await queue_lines.claim_lines(db_pool, line_ids)
                await queue_lines.mark_lines_done(db_pool, [(line_id, None, False) for line_id in line_ids])
                events = await asyncio.wait_for(reading, 30)
    assert events[-1]["queueId"] == str(queue.id)
    assert (events[-1]["processedCount"], events[-1]["completionPercent"], events[-1]["state"]) == (2, 100, "done")


async def test_a_store_listed_twice_the_same_is_one_queue(api, db_pool, amqp_url) -> None:
    _, token = await an_organization(db_pool)
    twice = [STORES[0], {**STORES[0], "url": STORES[0]["url"] + "/"}, STORES[1]]
    job = (await api.client.post("/api/v1/sync/jobs", headers=api.auth(token), json={"stores": twice})).json()["data"]
    assert [queue["store_url"] for queue in job["queues"]] == [STORES[0]["url"], STORES[1]["url"]]
    assert job["store_count"] == 2 and len(await drain_requests(amqp_url)) == 2
