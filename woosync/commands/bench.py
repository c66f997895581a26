"""`woosync bench`: one full sync of a simulated store through the real processes.

The simulator, the producer and K consumers run as separate processes on this machine, beside
PostgreSQL and RabbitMQ, in a database and a vhost of the benchmark's own (removed afterwards).
Reports customers/s from the request to the queue's terminal state, line latency (line created
-> line finished) p50/p99, the peak RSS of each process, and the queue's final counts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

from shared.settings import Settings
from shared.states import LINE_STATES, TERMINAL_QUEUE_STATES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--customers", type=int, default=20_000, help="customers in the simulated store (default: %(default)s)")
    parser.add_argument("--consumers", type=int, default=2, help="consumer processes (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=7, help="simulator seed (default: %(default)s)")
    parser.add_argument("--simulator-workers", type=int, default=1, help="simulator processes (default: %(default)s)")
    parser.add_argument("--orders", choices=("auto", "bulk", "per_customer"), default="auto",
                        help="the sync's order strategy (options.orders; default: %(default)s)")
    parser.add_argument("--rate-limit", type=float, metavar="R",
                        help="the store's host allows R requests/s (simulator --max-rps) and the fleet's budget is R "
                             "(WOOSYNC_STORE_RATE_LIMIT); the report says how much of it the sync used")
    parser.add_argument("--timeout", type=float, default=1800, help="give up after this many seconds (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark's database, vhost and logs")
    parser.add_argument("--log-dir", type=Path, help="where the processes' logs go (default: a temporary folder)")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="sample the producer and the first consumer with py-spy (pip install py-spy) and "
                             "write collapsed stacks to DIR (view with any flame graph tool)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.customers < 1 or args.consumers < 1:
        print("woosync bench: --customers and --consumers must be at least 1", file=sys.stderr)
        return 2
    try:
        report = asyncio.run(_bench(args, settings))
    except BenchError as exc:
        print(f"woosync bench: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report))
    else:
        _print_table(report)
    return 0


class BenchError(Exception):
    pass


async def _bench(args: argparse.Namespace, settings: Settings) -> dict:
    from shared import amqp, migrations, organizations
    from shared.db import create_pool
    from shared.messages import StartSync
    from shared.repository import sync_queues
    from woosync import local_services
    from woosync.stack import LOCAL_STORE_NETWORKS, Stack, StackError, free_port

    progress = (lambda *a: None) if args.json else (lambda *a: print(*a, file=sys.stderr, flush=True))
    run_id = uuid.uuid4().hex[:8]
    base_db = settings.database_url.get_secret_value()
    if problem := await local_services.postgres_answers(base_db):
        raise BenchError(f"PostgreSQL does not answer at WOOSYNC_DATABASE_URL ({problem})")
    database_url = local_services.with_database(base_db, f"woosync_bench_{run_id}")
    base_amqp = settings.amqp_url.get_secret_value()
    vhost = f"woosync-bench-{run_id}"
    amqp_url = local_services.create_vhost(base_amqp, vhost)
    if amqp_url is None:
        raise BenchError("cannot create a RabbitMQ vhost for the benchmark: enable the management plugin "
                         "(rabbitmq-plugins enable rabbitmq_management) or run on the broker's host")
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="woosync-bench-"))
    await migrations.ensure_database(database_url)
    await migrations.apply_migrations(database_url)
    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            org_id, _token = await organizations.create_organization(conn, name="bench")
        env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("WOOSYNC_")}
        env.update(WOOSYNC_DATABASE_URL=database_url, WOOSYNC_AMQP_URL=amqp_url, WOOSYNC_METRICS_PORT="0",
                   WOOSYNC_LOG_LEVEL="WARNING", WOOSYNC_STORE_ALLOWED_NETWORKS=LOCAL_STORE_NETWORKS)
        sim_port = free_port()
        if args.rate_limit:
            env["WOOSYNC_STORE_RATE_LIMIT"] = f"{args.rate_limit:g}"
        with Stack(env, log_dir) as stack:
            progress(f"starting the simulator ({args.customers:,} customers), the producer and {args.consumers} consumers; logs in {log_dir}")
            simulator = stack.start("simulator", ["simulator", "--port", str(sim_port), "--customers", str(args.customers),
                                                  "--seed", str(args.seed), "--workers", str(args.simulator_workers),
                                                  # Rendered before the clock starts: the stand-in store must not be what is measured.
                                                  "--prewarm", "--cache-mb", "2048",
                                                  *(("--max-rps", f"{args.rate_limit:g}") if args.rate_limit else ())])
            # Prewarming 20,000 customers takes a minute or more on a busy machine.
            simulator.wait_for(r"simulator listening on", 600)
            producer = stack.start("producer", ["run", "producer"], WOOSYNC_LOG_LEVEL="INFO")
            consumers = [stack.start(f"consumer-{i + 1}", ["run", "consumer"], WOOSYNC_LOG_LEVEL="INFO") for i in range(args.consumers)]
            try:
                producer.wait_for(r"producer ready", 60)
                for consumer in consumers:
                    consumer.wait_for(r"consumer ready", 60)
            except StackError as exc:
                raise BenchError(str(exc)) from None

            profilers = _start_profilers(args.profile, [producer, consumers[0]]) if args.profile else []
            connection = await amqp.connect(amqp_url, name="woosync-bench")
            channel = await amqp.open_publisher_channel(connection)
            request = StartSync.model_validate({
                "org_id": str(org_id), "idempotency_key": f"bench-{run_id}",
                "store": {"url": f"http://127.0.0.1:{sim_port}", "consumer_key": "ck_test", "consumer_secret": "cs_test"},
                "options": {"orders": args.orders},
            })
            store_requests_before = await _store_requests(sim_port, args.simulator_workers)
            servers_before = _server_cpu_seconds()
            stack.sample_rss()
            cpu_before = {p.name: p.cpu_seconds for p in stack.processes}
            started = time.monotonic()
            await amqp.publish_sync_request(channel, request)
            await connection.close()

            queue = None
            deadline = started + args.timeout
            last_report = 0.0
            while time.monotonic() < deadline:
                stack.sample_rss()
                async with pool.acquire() as conn:
                    queues = await sync_queues.list_queues(conn, org_id, limit=1, offset=0)
                queue = queues[0] if queues else None
                if queue and queue.state in TERMINAL_QUEUE_STATES:
                    break
                if queue and time.monotonic() - last_report > 2:
                    last_report = time.monotonic()
                    progress(f"  {queue.done_count + queue.failed_count:,} of {queue.total_count:,} lines finished "
                             f"({queue.state}), {time.monotonic() - started:.0f} s")
                for process in stack.processes:
                    if not process.running:
                        raise BenchError(f"{process.name} exited with {process.popen.returncode}:\n{process.log()[-2000:]}")
                await asyncio.sleep(0.2)
            elapsed = time.monotonic() - started
            if queue is None or queue.state not in TERMINAL_QUEUE_STATES:
                raise BenchError(f"the sync did not finish within {args.timeout:.0f} s (last state: {queue.state if queue else 'no queue'})")
            stack.sample_rss()
            servers_after = _server_cpu_seconds()
            store_requests_after = await _store_requests(sim_port, args.simulator_workers)
            host_rate = await _host_rate(sim_port, args.simulator_workers)
            async with pool.acquire() as conn:
                queue = await sync_queues.queue_status(conn, queue.id, org_id)
            _stop_profilers(profilers)
            latency = await pool.fetchrow(
                """SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY s) AS p50,
                          percentile_disc(0.99) WITHIN GROUP (ORDER BY s) AS p99
                     FROM (SELECT extract(epoch FROM updated_at - created_at)::float8 AS s
                             FROM woo_customer_sync_queue_line WHERE queue_id = $1) t""", queue.id)
            peaks = {p.name: p.peak_rss for p in stack.processes}
            cpu = {p.name: round(p.cpu_seconds - cpu_before[p.name], 1) for p in stack.processes}
            cpu.update({name: round(servers_after[name] - servers_before[name], 1) for name in servers_after})
    finally:
        await pool.close()
        if not args.keep:
            await local_services.drop_database(database_url)
            local_services.delete_vhost(base_amqp, vhost)
    return {
        "customers": args.customers,
        "consumers": args.consumers,
        "state": queue.state,
        "seconds": round(elapsed, 2),
        "customers_per_second": round(queue.total_count / elapsed, 1),
        "line_latency_p50_s": round(latency["p50"] or 0, 3),
        "line_latency_p99_s": round(latency["p99"] or 0, 3),
        "peak_rss_mib": {name: round(rss / 2**20, 1) for name, rss in peaks.items()},
        # CPU seconds each process spent during the sync (PostgreSQL and RabbitMQ: every process
        # of theirs on this machine, other work included).
        "cpu_seconds": cpu,
        "counts": {k: getattr(queue, f"{k}_count") for k in ("total", *LINE_STATES)},
        "orders": (queue.plan or {}).get("orders"),
        # Counted by the simulator itself (one worker); with several workers, the sync's own count.
        "store_requests": (store_requests_after - store_requests_before if store_requests_before is not None
                           else (queue.plan or {}).get("store_requests")),
        "store_requests_per_customer": round(
            ((store_requests_after - store_requests_before) if store_requests_before is not None
             else (queue.plan or {}).get("store_requests") or 0) / max(queue.total_count, 1), 4),
        **(_budget_use(args.rate_limit, elapsed, store_requests_after - store_requests_before, host_rate)
           if args.rate_limit and store_requests_before is not None else {}),
    }


def _budget_use(rate_limit: float, elapsed: float, requests: int, host_rate: dict) -> dict:
    """How a rate-limited sync used the store's budget: the share of rate x wall time its requests
    took, the wall time against the ideal (requests / rate), and what the host saw."""
    return {
        "rate_limit": rate_limit,
        "budget_used": round(requests / (rate_limit * elapsed), 3),
        "ideal_seconds": round(requests / rate_limit, 2),
        "host_busiest_second": host_rate.get("busiest_second"),
        "host_429s": host_rate.get("throttled"),
    }


async def _host_rate(port: int, workers: int) -> dict:
    """What the simulated host saw of the request rate (one worker only) and the 429s it answered."""
    if workers != 1:
        return {}
    import httpx

    async with httpx.AsyncClient() as client:
        stats = (await client.get(f"http://127.0.0.1:{port}/__simulator/stats", timeout=10)).json()
    return {**stats.get("rate", {}), "throttled": stats["by_route"].get("fault", {}).get("429", 0)}


async def _store_requests(port: int, workers: int) -> int | None:
    """The requests the simulated store has served (its /__simulator/stats); None with several
    workers (each counts its own)."""
    if workers != 1:
        return None
    import httpx

    async with httpx.AsyncClient() as client:
        return (await client.get(f"http://127.0.0.1:{port}/__simulator/stats", timeout=10)).json()["requests"]


def _server_cpu_seconds() -> dict[str, float]:
    """CPU seconds so far of the local PostgreSQL and RabbitMQ processes (0 where not local)."""
    import psutil

    totals = {"postgresql": 0.0, "rabbitmq": 0.0}
    for process in psutil.process_iter(["name", "cpu_times"]):
        name, times = process.info["name"] or "", process.info["cpu_times"]
        if times is None:
            continue
        if name.startswith("postgres"):
            totals["postgresql"] += times.user + times.system
        elif name.startswith("beam") or name in ("epmd", "erl_child_setup"):
            totals["rabbitmq"] += times.user + times.system
    return totals


def _start_profilers(directory: Path, processes) -> list:
    import shutil
    import subprocess

    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        raise BenchError("--profile needs py-spy: pip install py-spy")
    directory.mkdir(parents=True, exist_ok=True)
    return [
        subprocess.Popen([spy, "record", "--format", "raw", "--rate", "250", "--nonblocking",
                          "-o", str(directory / f"{p.name}.txt"), "--pid", str(p.popen.pid)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for p in processes
    ]


def _stop_profilers(profilers: list) -> None:
    import signal

    for profiler in profilers:
        profiler.send_signal(signal.SIGINT)
    for profiler in profilers:
        profiler.wait(30)


def _print_table(report: dict) -> None:
    rows = [
        ("customers", f"{report['customers']:,}"),
        ("consumers", str(report["consumers"])),
        ("final state", report["state"]),
        ("wall time", f"{report['seconds']:.1f} s"),
        ("throughput", f"{report['customers_per_second']:,.0f} customers/s"),
        ("orders strategy", str(report["orders"])),
        ("store requests", f"{report['store_requests']:,} ({report['store_requests_per_customer']:.3f} per customer)"),
        ("line latency p50 / p99", f"{report['line_latency_p50_s']:.2f} s / {report['line_latency_p99_s']:.2f} s"),
        *((f"peak RSS {name}", f"{mib:.0f} MiB") for name, mib in report["peak_rss_mib"].items()),
        *((f"CPU {name}", f"{seconds:.1f} s") for name, seconds in report["cpu_seconds"].items()),
        ("counts", ", ".join(f"{k} {v:,}" for k, v in report["counts"].items())),
        *((("rate limit", f"{report['rate_limit']:g} requests/s (host and fleet budget)"),
           ("budget used", f"{report['budget_used']:.0%} (wall time {report['seconds']:.1f} s, "
                           f"ideal {report['ideal_seconds']:.1f} s)"),
           ("host saw", f"at most {report['host_busiest_second']} requests in one second, "
                        f"{report['host_429s']} answered 429")) if "rate_limit" in report else ()),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
