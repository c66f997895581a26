"""`woosync bench` as a user runs it: a small store through the real processes, with the fairness
measurement (`--beside`), reported as JSON. The figures themselves are the benchmark's business;
this checks that they are measured and consistent, so the benchmark cannot rot unseen."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from woosync.stack import LOCAL_STORE_NETWORKS

pytestmark = pytest.mark.e2e


def test_bench_reports_a_whole_sync_with_its_store_requests_broker_depth_and_the_small_sync_beside(pg_server_url, broker):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WOOSYNC_")}
    env.update(WOOSYNC_DATABASE_URL=pg_server_url, WOOSYNC_AMQP_URL=broker.amqp_url,
               WOOSYNC_STORE_ALLOWED_NETWORKS=LOCAL_STORE_NETWORKS)
    done = subprocess.run(
        [sys.executable, "-m", "woosync", "bench", "--customers", "600", "--orders", "bulk", "--beside", "20",
         "--set", "WOOSYNC_DISPATCH_WINDOW=50", "--json", "--timeout", "300"],
        env=env, capture_output=True, text=True, timeout=420)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)

    counts = report["counts"]
    assert counts["total"] == 600 and counts["done"] + counts["failed"] == 600, counts
    assert counts["draft"] == counts["queued"] == counts["processing"] == 0, counts
    assert report["orders"] == "bulk"
    assert report["settings"] == {"WOOSYNC_DISPATCH_WINDOW": "50"}
    # Bulk: the customers' pages and the orders' pages, not a request per customer.
    assert 0 < report["store_requests"] < 600 / 4, report["store_requests"]
    assert report["customers_per_second"] > 0 and report["seconds"] > 0
    # The consumers' phase is part of the whole (a bulk sync pages the orders before it).
    assert 0 < report["dispatched_seconds"] <= report["seconds"]
    assert report["dispatched_customers_per_second"] >= report["customers_per_second"]
    assert {"producer", "consumer-1", "consumer-2", "simulator"} <= set(report["peak_rss_mib"])
    assert report["postgres_bytes_per_line"] > 0
    # The management API's figures lag a few seconds, so a short sync may end unsampled (None,
    # never a made-up 0); sampled, the window set above bounds it: 50 per sync, two syncs at most.
    assert report["lines_queue_deepest"] is None or report["lines_queue_deepest"] <= 2 * 50
    assert report["beside"] == 20 and report["alone_s"] > 0
    # Beside: measured when the big sync had a backlog, else absent (a machine fast enough to
    # finish 600 customers before the small sync starts); never a made-up figure.
    assert report.get("beside_s") is None or report["beside_s"] > 0


@pytest.mark.parametrize("setting", ["DISPATCH_WINDOW=50", "WOOSYNC_DISPATCH_WINDOW", "WOOSYNC_DATABASE_URL=postgresql://x/y"])
def test_bench_refuses_a_setting_it_cannot_pass_on(setting):
    done = subprocess.run([sys.executable, "-m", "woosync", "bench", "--set", setting],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"--set {setting!r}" in done.stderr and "WOOSYNC_NAME=VALUE" in done.stderr
