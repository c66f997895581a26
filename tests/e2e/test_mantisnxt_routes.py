"""MantisNXT's routes through the real processes (simulated stores, producer, consumer, status API):
a client written only from the seed document's request and response shapes, and a job over
three stores (docs/contract.md section 7; the README's MantisNXT section)."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from shared import organizations
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

SEED = "/api/v1/integrations/woocommerce/sync/customers"


class SeedClient:
    """What a MantisNXT screen knows: the seed's request bodies, {success, data|error}, and the
    progress stream's {processedCount, failedCount, itemsPerMin, etaSeconds, completionPercent}."""

    def __init__(self, base_url: str, token: str, org_id: str) -> None:
        self.http = httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        self.org_id = org_id

    async def call(self, **body: Any) -> tuple[int, dict[str, Any]]:
        response = await self.http.post(SEED, json={"org_id": self.org_id, **body})
        return response.status_code, response.json()

    async def progress(self, job_id: str) -> list[dict[str, Any]]:
        events = []
        async with self.http.stream("GET", f"/api/v1/integrations/sync/progress/{job_id}",
                                    timeout=httpx.Timeout(120, read=60)) as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if line.startswith("data:"):
                    events.append(orjson.loads(line[5:]))
        return events


async def _tokens(pipeline) -> tuple[tuple[str, str], str]:
    async with pipeline.pool.acquire() as conn:
        org_id, token = await organizations.create_organization(conn, name="MantisNXT")
        _, other_token = await organizations.create_organization(conn, name="Someone else")
    return (str(org_id), token), other_token


async def test_a_seed_client_starts_follows_retries_and_force_dones_a_sync(pipeline) -> None:
    pipeline.simulator(customers=60, seed=5)
    good_store = pipeline.store_url
    pipeline.simulator("--latency-ms", "300", customers=400, seed=6)  # slow: force-done finds it running
    slow_store = pipeline.store_url
    pipeline.producer()
    pipeline.consumer()
    _, port = pipeline.status()
    (org_id, token), _ = await _tokens(pipeline)
    client = SeedClient(f"http://127.0.0.1:{port}", token, org_id)
    config = {"url": good_store, "consumerKey": "ck_test", "consumerSecret": "cs_test"}
    try:
        # The seed's messages, then woosync's field detail.
        status, body = await client.call(config=config, org_id="not-a-uuid")
        assert status == 400 and body["success"] is False and body["error"].startswith("Invalid organization ID format")
        status, body = await client.call(config={"url": good_store})
        assert status == 400 and body["error"].startswith("WooCommerce configuration required")
        status, body = await client.call(config={**config, "consumerSecret": "cs_wrong"})
        assert status == 500 and body == {"success": False, "error": body["error"]}
        assert body["error"].startswith("Failed to connect to WooCommerce")

        status, body = await client.call(action="start", config=config, user_id="mantis-user")
        assert status == 200 and body["success"] is True, body
        started = body["data"]
        assert set(started) >= {"queueId", "state", "totalCount", "progress", "message"}
        events = await client.progress(started["queueId"])
        last = events[-1]
        assert set(last) >= {"processedCount", "failedCount", "itemsPerMin", "etaSeconds", "completionPercent"}
        assert last["completionPercent"] == 100 and last["processedCount"] + last["failedCount"] == 60

        status, body = await client.call(action="status", queue_id=started["queueId"], config=config)
        assert status == 200 and body["data"]["state"] in ("done", "partial")
        assert (body["data"]["done_count"], body["data"]["failed_count"]) == (last["processedCount"], last["failedCount"])
        status, body = await client.call(action="retry", queue_id=started["queueId"], config=config)
        assert status == 200 and body["data"]["retried"] == last["failedCount"]

        status, body = await client.call(action="start", config={**config, "url": slow_store})
        assert status == 200
        slow = body["data"]["queueId"]
        status, body = await client.call(action="force-done", queue_id=slow, config=config)
        assert status == 200 and body["data"]["state"] == "cancelled", body
        events = await client.progress(slow)
        assert events[-1]["state"] == "cancelled" and events[-1]["completionPercent"] == 100
    finally:
        await client.http.aclose()


async def test_a_job_over_three_stores_one_refusing_ends_partial_with_exact_counts(pipeline) -> None:
    stores = []
    for seed, customers, extra in ((11, 30, ()), (12, 45, ()), (13, 20, ("--refuse-credentials",))):
        pipeline.simulator("--valid-emails-only", *extra, customers=customers, seed=seed)
        stores.append({"url": pipeline.store_url, "consumer_key": "ck_test", "consumer_secret": "cs_test"})
    pipeline.producer()
    pipeline.consumer()
    _, port = pipeline.status()
    (org_id, token), other_token = await _tokens(pipeline)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        auth = {"Authorization": f"Bearer {token}"}
        started = await http.post("/api/v1/sync/jobs", headers=auth, json={"stores": stores})
        assert started.status_code == 202, started.text
        job_id = started.json()["data"]["id"]

        async def ended() -> dict | None:
            job = (await http.get(f"/api/v1/sync/jobs/{job_id}", headers=auth)).json()["data"]
            return job if job["state"] not in ("draft", "processing") else None

        job = await eventually(ended, timeout=120, interval=0.5, what="the job to end")
        assert [queue["store_url"] for queue in job["queues"]] == [store["url"] for store in stores]
        assert [queue["state"] for queue in job["queues"]] == ["done", "done", "failed"]
        assert "credentials" in job["queues"][2]["error_message"]
        assert (job["state"], job["total_count"], job["done_count"], job["failed_count"], job["cancelled_count"]) == (
            "partial", 75, 75, 0, 0)
        assert (job["progress"], job["eta_seconds"], job["is_action_required"]) == (100, 0, True)

        async with http.stream("GET", f"/api/v1/integrations/sync/progress/{job_id}", headers=auth) as stream:
            events = [orjson.loads(line[5:]) async for line in stream.aiter_lines() if line.startswith("data:")]
        assert [(event["state"], event["processedCount"], event["completionPercent"]) for event in events] == [
            ("partial", 75, 100)]

        other = {"Authorization": f"Bearer {other_token}"}
        for method, path in (("GET", f"/api/v1/sync/jobs/{job_id}"), ("POST", f"/api/v1/sync/jobs/{job_id}/retry"),
                             ("POST", f"/api/v1/sync/jobs/{job_id}/cancel"),
                             ("GET", f"/api/v1/integrations/sync/progress/{job_id}")):
            assert (await http.request(method, path, headers=other)).status_code == 404, path
