"""How many OAuth-signed orders requests per second the simulator serves on this machine.

Starts `python -m woosync.simulator` on a free 127.0.0.1 port, then fires
`GET /wp-json/wc/v3/orders?customer=ID&per_page=100&page=1` (what a consumer asks for each
customer line), signed like woosync's client (OAuth 1.0a HMAC-SHA256 in the Authorization header),
from `--concurrency` requests in flight for `--duration` seconds after a short warm-up.

Customer ids walk the store in order, as a sync does, so a first pass renders every answer (cache
misses); `--passes-warm` replays ids already served (what a repeated benchmark run sees).
The load generator shares the machine's cores with the server: besides requests/s, the report
gives the server's CPU time per request, the figure that says how much of a core the simulator
takes at a given rate.

    .venv/bin/python bench/simulator_throughput.py [--customers 20000] [--duration 5] [--workers 1] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared.woocommerce import oauth  # noqa: E402

KEY, SECRET = "ck_test", "cs_test"


def start_simulator(args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    command = [sys.executable, "-m", "woosync.simulator", "--port", "0", "--customers", str(args.customers),
               "--seed", "1", "--workers", str(args.workers), "--cache-mb", str(args.cache_mb)]
    if args.prewarm:
        command.append("--prewarm")
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=None if args.verbose else subprocess.DEVNULL, text=True)
    line = process.stdout.readline() if process.stdout else ""
    match = re.search(r"listening on (\S+)", line)
    if not match:
        process.kill()
        raise SystemExit(f"simulator did not start: {line!r}")
    return process, match.group(1)


def server_cpu_seconds(process: psutil.Process) -> float:
    total = 0.0
    for proc in [process, *process.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


async def load(url: str, args: argparse.Namespace, server: psutil.Process) -> dict[str, float]:
    orders_url = f"{url}/wp-json/wc/v3/orders"
    next_id = iter(range(1, 10**9))
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    received = 0
    measuring = False
    stop_at = 0.0

    def customer_id() -> int:
        n = next(next_id)
        if args.passes_warm:
            return 1 + n % min(args.customers, 2000)
        return 1 + (n - 1) % args.customers

    async def one_worker(session: aiohttp.ClientSession) -> None:
        nonlocal received
        while time.monotonic() < stop_at:
            query = [("customer", str(customer_id())), ("per_page", "100"), ("page", "1")]
            signed = oauth.oauth_parameters("GET", orders_url, query, KEY, SECRET)
            headers = {"Authorization": oauth.authorization_header(signed)}
            started = time.monotonic()
            async with session.get(orders_url, params=query, headers=headers) as response:
                body = await response.read()
            if measuring:
                latencies.append(time.monotonic() - started)
                statuses[response.status] = statuses.get(response.status, 0) + 1
                received += len(body)

    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        stop_at = time.monotonic() + args.warmup
        await asyncio.gather(*(one_worker(session) for _ in range(args.concurrency)))
        measuring = True
        cpu_server, cpu_client, started = server_cpu_seconds(server), time.process_time(), time.monotonic()
        stop_at = started + args.duration
        await asyncio.gather(*(one_worker(session) for _ in range(args.concurrency)))
        elapsed = time.monotonic() - started
        cpu_server = server_cpu_seconds(server) - cpu_server
        cpu_client = time.process_time() - cpu_client
    served = sum(statuses.values())
    latencies.sort()
    return {
        "requests": served,
        "ok": statuses.get(200, 0),
        "statuses": statuses,
        "seconds": round(elapsed, 2),
        "requests_per_s": round(served / elapsed, 1),
        "mb_per_s": round(received / elapsed / 1e6, 2),
        "latency_p50_ms": round(statistics.median(latencies) * 1000, 2) if latencies else None,
        "latency_p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 2) if latencies else None,
        "server_cpu_ms_per_request": round(cpu_server / served * 1000, 3) if served else None,
        "server_cpu_share": round(cpu_server / elapsed, 2),
        "client_cpu_ms_per_request": round(cpu_client / served * 1000, 3) if served else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds measured (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, default=1, help="simulator processes (SO_REUSEPORT)")
    parser.add_argument("--prewarm", action="store_true", help="start the simulator with --prewarm")
    parser.add_argument("--passes-warm", action="store_true", help="re-request 2,000 customers (cache hits)")
    parser.add_argument("--cache-mb", type=int, default=1024, help="simulator response cache (default 1024)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--verbose", action="store_true", help="show the simulator's log")
    args = parser.parse_args()

    process, url = start_simulator(args)
    try:
        result = asyncio.run(load(url, args, psutil.Process(process.pid)))
    finally:
        process.terminate()
        process.wait(timeout=20)
    result.update({"customers": args.customers, "workers": args.workers, "concurrency": args.concurrency,
                   "prewarm": args.prewarm, "passes_warm": args.passes_warm, "cpus": os.cpu_count()})
    if args.json:
        print(json.dumps(result))
    else:
        print(f"simulator orders requests (OAuth, per_page=100), {args.workers} worker(s), "
              f"{args.concurrency} in flight, {args.customers} customers:")
        for key, value in result.items():
            print(f"  {key:28} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
