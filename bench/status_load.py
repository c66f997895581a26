"""Load on the status API: N concurrent clients polling the status of one queue.

    .venv/bin/python bench/status_load.py                      # 200 clients, each polling every 0.5 s, 30 s
    .venv/bin/python bench/status_load.py --interval 0         # closed loop: as fast as the service answers
    .venv/bin/python bench/status_load.py --clients 50 --duration 10 --json

It makes a throw-away database (migrated, one organisation, one queue of 1,000 lines), starts
`woosync run status` as its own process on a free loopback port (so the clients do not share
its CPU time slice or event loop), runs the clients over aiohttp keep-alive connections, and
reports requests/s and latency percentiles as seen by the clients, plus the service's CPU.
Needs PostgreSQL and RabbitMQ as for the tests (WOOSYNC_BENCH_DATABASE_URL, WOOSYNC_AMQP_URL).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import statistics
import sys
import time
import urllib.parse
import uuid
from pathlib import Path

import aiohttp
import asyncpg
import orjson
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.db import create_pool  # noqa: E402
from shared.migrations import apply_migrations  # noqa: E402
from shared.organizations import create_organization  # noqa: E402
from shared.repository import queue_lines, stores, sync_queues  # noqa: E402

SERVER_URL = os.environ.get("WOOSYNC_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_URL = os.environ.get("WOOSYNC_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def database_url(name: str) -> str:
    parts = urllib.parse.urlsplit(SERVER_URL)
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def prepare(dsn: str) -> tuple[uuid.UUID, str]:
    await apply_migrations(dsn)
    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        org_id, token = await create_organization(pool, name="bench")
        store_id = await stores.upsert_store(pool, org_id=org_id, url="http://127.0.0.1:8090", consumer_key="ck_bench",
                                             consumer_secret="cs_bench", cipher=None)
        status, _ = await sync_queues.find_or_create_queue(pool, org_id=org_id, queue_name="bench", idempotency_key=None,
                                                      store_id=store_id, store_url="http://127.0.0.1:8090",
                                                      created_by="bench", options={})
        added = await queue_lines.add_lines(pool, queue_id=status.id, org_id=org_id,
                                       customers=[(n, {"id": n, "email": f"c{n}@example.com"}) for n in range(1, 1001)])
        await queue_lines.claim_lines(pool, [line_id for line_id, _ in added[:400]])
        await queue_lines.mark_lines_done(pool, [(line_id, None, False) for line_id, _ in added[:300]])
        return status.id, token
    finally:
        await pool.close()


async def start_service(dsn: str, port: int) -> asyncio.subprocess.Process:
    woosync = shutil.which("woosync", path=str(Path(sys.executable).parent)) or "woosync"
    env = {**os.environ, "WOOSYNC_DATABASE_URL": dsn, "WOOSYNC_AMQP_URL": AMQP_URL, "WOOSYNC_LOG_LEVEL": "WARNING"}
    process = await asyncio.create_subprocess_exec(
        woosync, "run", "status", "--host", "127.0.0.1", "--port", str(port), env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise SystemExit(f"the status service exited: {(await process.stderr.read()).decode()}")
            try:
                async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
                    if response.status == 200:
                        return process
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("the status service did not become ready within 30 s")


async def load(url: str, token: str, *, clients: int, duration: float, interval: float) -> dict[str, object]:
    latencies: list[float] = []
    errors = 0
    headers = {"Authorization": f"Bearer {token}"}
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    timeout = aiohttp.ClientTimeout(total=10)
    stop_at = time.perf_counter() + duration

    async def client(index: int, session: aiohttp.ClientSession) -> None:
        nonlocal errors
        if interval:
            await asyncio.sleep(interval * index / clients)  # spread the polls over the interval
        while (started := time.perf_counter()) < stop_at:
            try:
                async with session.get(url, headers=headers) as response:
                    body = await response.read()
                    if response.status != 200 or b'"success":true' not in body:
                        errors += 1
            except (aiohttp.ClientError, asyncio.TimeoutError):
                errors += 1
            finished = time.perf_counter()
            latencies.append(finished - started)
            if interval:
                await asyncio.sleep(max(0.0, interval - (finished - started)))

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        began = time.perf_counter()
        await asyncio.gather(*(client(i, session) for i in range(clients)))
        elapsed = time.perf_counter() - began
    ordered = sorted(latencies)
    return {
        "clients": clients,
        "interval_s": interval,
        "duration_s": round(elapsed, 2),
        "requests": len(latencies),
        "errors": errors,
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "latency_ms": {
            "p50": round(percentile(ordered, 0.50) * 1000, 2),
            "p90": round(percentile(ordered, 0.90) * 1000, 2),
            "p99": round(percentile(ordered, 0.99) * 1000, 2),
            "max": round(ordered[-1] * 1000, 2),
            "mean": round(statistics.fmean(ordered) * 1000, 2),
        },
    }


async def main(args: argparse.Namespace) -> dict[str, object]:
    name = f"woosync_bench_status_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(SERVER_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = database_url(name)
    process = None
    try:
        queue_id, token = await prepare(dsn)
        port = free_port()
        process = await start_service(dsn, port)
        service = psutil.Process(process.pid)
        url = f"http://127.0.0.1:{port}/api/v1/sync/queues/{queue_id}"
        await load(url, token, clients=min(args.clients, 20), duration=2, interval=0)  # warm-up: connections, plans
        cpu_before = service.cpu_times()
        result = await load(url, token, clients=args.clients, duration=args.duration, interval=args.interval)
        cpu_after = service.cpu_times()
        busy = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
        result["service_cpu_percent"] = round(100 * busy / result["duration_s"], 1)  # of one core
        return result
    finally:
        if process is not None and process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 20)
            except asyncio.TimeoutError:
                process.kill()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def report(result: dict[str, object]) -> str:
    latency = result["latency_ms"]
    mode = f"each polling every {result['interval_s']:g} s" if result["interval_s"] else "closed loop (no pause)"
    return "\n".join([
        f"status API load: {result['clients']} clients {mode}, {result['duration_s']} s on loopback",
        f"  requests       {result['requests']} ({result['errors']} errors)",
        f"  throughput     {result['requests_per_s']} requests/s",
        f"  latency (ms)   p50 {latency['p50']}  p90 {latency['p90']}  p99 {latency['p99']}  max {latency['max']}",
        f"  service CPU    {result['service_cpu_percent']}% of one core",
    ])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load (default: %(default)s)")
    parser.add_argument("--interval", type=float, default=0.5,
                        help="seconds between one client's polls; 0 = closed loop (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    arguments = parser.parse_args()
    outcome = asyncio.run(main(arguments))
    print(orjson.dumps(outcome).decode() if arguments.json else report(outcome))
