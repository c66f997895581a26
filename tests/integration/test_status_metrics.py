"""/metrics of the status service: woosync_queue_lines from the trigger-kept counts of unfinished
queues, HTTP metrics labelled by route template, and an exposition promtool accepts."""

from __future__ import annotations

import re
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared.repository import queue_lines
from tests.integration.status_harness import a_queue, an_organization, status_service, unreachable_database
from tests.integration.test_ops_server import promtool_check_metrics

pytestmark = pytest.mark.integration


def samples(exposition: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    found = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


@pytest.fixture
async def api(db_pool, amqp_url):
    async with status_service(db_pool, amqp_url) as status:
        status.ctx.queue_gauge_max_age_s = 0  # every scrape reads the counts
        yield status


async def test_queue_lines_gauge_counts_lines_of_unfinished_queues_by_state(api, db_pool) -> None:
    org_a, _ = await an_organization(db_pool, "A")
    org_b, _ = await an_organization(db_pool, "B")
    _, lines_a = await a_queue(db_pool, org_a, lines=5)
    _, lines_b = await a_queue(db_pool, org_b, lines=3)
    finished, finished_lines = await a_queue(db_pool, org_a, lines=2, enumerated=True)
    await queue_lines.claim_lines(db_pool, lines_a[:3] + lines_b[:1] + finished_lines)
    await queue_lines.mark_lines_done(db_pool, [(line_id, None, False) for line_id in lines_a[:2] + finished_lines])
    await queue_lines.mark_lines_failed(db_pool, [(lines_b[0], "bad email")])

    response = await api.client.get("/metrics")
    assert response.status_code == 200
    gauge = samples(response.text, "woosync_queue_lines")
    # The finished queue (2 done lines) is not counted; the two unfinished ones are.
    assert gauge == {
        (("state", "draft"),): 4.0, (("state", "queued"),): 0.0, (("state", "processing"),): 1.0, (("state", "done"),): 2.0,
        (("state", "failed"),): 1.0, (("state", "cancelled"),): 0.0,
    }


async def test_http_metrics_use_route_templates_never_ids(api, db_pool) -> None:
    _, token = await an_organization(db_pool)
    for _ in range(3):
        await api.client.get(f"/api/v1/sync/queues/{uuid.uuid4()}", headers={"Authorization": f"Bearer {token}"})
    await api.client.get("/no/such/route")
    exposition = (await api.client.get("/metrics")).text

    requests = samples(exposition, "woosync_http_requests_total")
    assert requests[(("method", "GET"), ("route", "/api/v1/sync/queues/{queue_id}"), ("status", "404"))] == 3.0
    assert requests[(("method", "GET"), ("route", "unmatched"), ("status", "404"))] == 1.0
    assert not re.search(r"[0-9a-f]{8}-[0-9a-f]{4}-", exposition), "an id leaked into a label"
    assert token not in exposition


async def test_status_service_metrics_pass_promtool(api, db_pool) -> None:
    org_id, token = await an_organization(db_pool)
    await a_queue(db_pool, org_id, lines=2)
    await api.client.get("/api/v1/sync/queues", headers={"Authorization": f"Bearer {token}"})
    response = await api.client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    promtool_check_metrics(response.content)


async def test_a_scrape_without_the_database_still_answers_with_the_last_values(api, db_pool) -> None:
    org_id, _ = await an_organization(db_pool)
    await a_queue(db_pool, org_id, lines=2)
    assert samples((await api.client.get("/metrics")).text, "woosync_queue_lines")[(("state", "draft"),)] == 2.0
    async with unreachable_database(api.ctx):
        response = await api.client.get("/metrics")
    assert response.status_code == 200
    assert samples(response.text, "woosync_queue_lines")[(("state", "draft"),)] == 2.0
