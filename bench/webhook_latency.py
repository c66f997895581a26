"""Webhook latency: from a customer changed in the store to its row committed in Postgres.

Starts the real processes (simulator, `woosync run webhooks`, producer, consumer) on a scratch
database and vhost, installs the webhooks with `woosync webhooks install`, then changes one
customer at a time through the simulator's control route (which delivers customer.updated to the
webhooks service exactly as a store does) and times each change until Postgres holds it. Prints
p50, p95 and the worst, in ms (docs/architecture.md, "Webhooks").

    .venv/bin/python bench/webhook_latency.py [--changes 50] [--json]

Needs PostgreSQL and RabbitMQ as the test suite finds them (tests/services.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
from cryptography.fernet import Fernet

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from shared import organizations  # noqa: E402
from shared.db import create_pool  # noqa: E402
from shared.migrations import apply_migrations  # noqa: E402
from tests.services import database_url_named, find_postgres, find_rabbitmq  # noqa: E402
from woosync.stack import LOCAL_STORE_NETWORKS, Stack, free_port  # noqa: E402


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


async def measure(changes: int, server_url: str, broker) -> dict:
    name = f"woosync_bench_wh_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    database_url = database_url_named(server_url, name)
    await apply_migrations(database_url)
    amqp_url = broker.add_vhost(name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("WOOSYNC_")}
    env.update(WOOSYNC_DATABASE_URL=database_url, WOOSYNC_AMQP_URL=amqp_url,
               WOOSYNC_SECRET_KEY=Fernet.generate_key().decode(), WOOSYNC_METRICS_PORT="0",
               WOOSYNC_LOG_FORMAT="json", WOOSYNC_STORE_ALLOWED_NETWORKS=LOCAL_STORE_NETWORKS)
    pool = await create_pool(database_url, min_size=1, max_size=2)
    latencies: list[float] = []
    try:
        with tempfile.TemporaryDirectory() as logs, Stack(env, Path(logs)) as stack:
            store_port, hooks_port = free_port(), free_port()
            store_url = f"http://127.0.0.1:{store_port}"
            stack.start("simulator", ["simulator", "--port", str(store_port), "--customers", str(changes + 10)]) \
                .wait_for("simulator listening on", 60)
            stack.start("webhooks", ["run", "webhooks", "--host", "127.0.0.1", "--port", str(hooks_port)]) \
                .wait_for("webhooks service on", 60)
            stack.start("producer", ["run", "producer"]).wait_for("producer ready", 60)
            stack.start("consumer", ["run", "consumer"]).wait_for("consumer ready", 60)
            async with pool.acquire() as conn:
                org_id, _ = await organizations.create_organization(conn, name="bench")
            install = subprocess.run(
                [sys.executable, "-m", "woosync", "webhooks", "install", "--org", str(org_id), "--url", store_url,
                 "--public-url", f"http://127.0.0.1:{hooks_port}"],
                env={**env, "WOOSYNC_STORE_CONSUMER_KEY": "ck_test", "WOOSYNC_STORE_CONSUMER_SECRET": "cs_test"},
                capture_output=True, text=True, timeout=120)
            if install.returncode != 0:
                raise SystemExit(f"webhooks install failed: {install.stderr}")
            async with httpx.AsyncClient(base_url=store_url, timeout=30) as store:
                for change in range(changes):
                    woo_id = 2 + change
                    email = f"bench.{change}.{uuid.uuid4().hex[:6]}@example.com"
                    started = time.perf_counter()
                    answer = await store.post(f"/__simulator/customers/{woo_id}", json={"email": email})
                    answer.raise_for_status()
                    while not await pool.fetchval(
                            "SELECT 1 FROM customer WHERE org_id = $1 AND woo_customer_id = $2 AND email = $3",
                            org_id, woo_id, email):
                        if time.perf_counter() - started > 30:
                            raise SystemExit(f"customer {woo_id} did not reach Postgres within 30 s")
                        await asyncio.sleep(0.005)
                    latencies.append((time.perf_counter() - started) * 1000)
    finally:
        await pool.close()
        broker.delete_vhost(name)
        admin = await asyncpg.connect(server_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    return {"changes": changes, "p50_ms": round(percentile(latencies, 0.50), 1),
            "p95_ms": round(percentile(latencies, 0.95), 1), "max_ms": round(max(latencies), 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    server_url, _ = find_postgres()  # both probe with their own event loop: found before ours starts
    result = asyncio.run(measure(args.changes, server_url, find_rabbitmq()))
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['changes']} customer changes, store change -> committed row: "
              f"p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms, worst {result['max_ms']} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
