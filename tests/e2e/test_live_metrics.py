"""The live /metrics of every service after a real sync: every metric the Grafana dashboard and
the alert rules query exists, and each exposition passes `promtool check metrics` (docs/contract.md section 8)."""

from __future__ import annotations

import re
import subprocess

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared import organizations
from tests.deploy_metrics import deploy_metric_names
from tests.deploy_tools import require_tool
from tests.e2e.test_pipeline import finished_queue

pytestmark = pytest.mark.e2e

RABBITMQ_PER_OBJECT = "http://127.0.0.1:15692/metrics/per-object"


def sample_names(exposition: str) -> set[str]:
    names = set()
    for family in text_string_to_metric_families(exposition):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    return names


async def test_every_metric_the_dashboard_and_alerts_query_is_exported_by_a_live_service(pipeline):
    pipeline.simulator("--fail-orders-for", "5", customers=60, seed=12)
    producer = pipeline.producer()
    consumer = pipeline.consumer(WOOSYNC_MAX_ATTEMPTS="2", WOOSYNC_RETRY_DELAY_MS="100")
    _, status_port = pipeline.status()
    async with pipeline.pool.acquire() as conn:
        token = await organizations.create_token(conn, pipeline.org_id)

    async with httpx.AsyncClient(timeout=10) as client:
        started = await client.post(f"http://127.0.0.1:{status_port}/api/v1/sync/queues",
                                    headers={"authorization": f"Bearer {token}"},
                                    json={"store": {"url": pipeline.store_url, "consumer_key": "ck_test", "consumer_secret": "cs_test"},
                                          # customer 5's own orders request fails: ask for it per customer
                                          "options": {"orders": "per_customer"}})
        assert started.status_code == 202, started.text
        await finished_queue(pipeline)

        expositions = {"status": (await client.get(f"http://127.0.0.1:{status_port}/metrics")).text}
        for name, process in (("producer", producer), ("consumer", consumer)):
            port = re.search(r"metrics on :(\d+)", process.log()).group(1)
            expositions[name] = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
        try:
            rabbitmq = (await client.get(RABBITMQ_PER_OBJECT)).text
        except httpx.HTTPError as exc:
            pytest.fail(f"RabbitMQ's prometheus plugin does not answer on {RABBITMQ_PER_OBJECT} ({exc}): "
                        "rabbitmq-plugins enable rabbitmq_prometheus")

    exported = set().union(*(sample_names(text) for text in expositions.values()))
    wanted = deploy_metric_names()
    missing_woosync = sorted(n for n in wanted if n.startswith("woosync_") and n not in exported)
    assert not missing_woosync, f"queried by the dashboard or alerts but exported by no service: {missing_woosync}"
    missing_rabbitmq = sorted(n for n in wanted if n.startswith("rabbitmq_") and n not in sample_names(rabbitmq))
    assert not missing_rabbitmq, f"not on RabbitMQ's {RABBITMQ_PER_OBJECT}: {missing_rabbitmq}"
    # docs/contract.md section 8 names, with the outcomes this sync produced.
    assert {"woosync_lines_processed_total", "woosync_line_processing_seconds_bucket", "woosync_woocommerce_requests_total",
            "woosync_woocommerce_request_seconds_bucket", "woosync_customers_published_total",
            "woosync_sync_requests_total", "woosync_queue_lines"} <= exported
    assert 'woosync_lines_processed_total{outcome="dead_lettered"} 1.0' in expositions["consumer"]
    assert 'woosync_lines_processed_total{outcome="retried"} 1.0' in expositions["consumer"]

    promtool = require_tool("promtool")
    for name, text in expositions.items():
        lint = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
        assert lint.returncode == 0, f"promtool check metrics on the {name}'s /metrics:\n{lint.stdout}{lint.stderr}"
