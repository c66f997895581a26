"""`woosync bench`: one full sync of a simulated store through the real processes.

The simulator, the producer and K consumers run as separate processes on this machine, beside
PostgreSQL and RabbitMQ, in a database and a vhost of the benchmark's own (removed afterwards).
Reports customers/s from the request to the queue's terminal state, line latency (line created
-> line finished) p50/p99, the peak RSS and CPU of each process, store requests per customer, the
deepest the lines queue got (sampled) against the dispatch window, PostgreSQL bytes per line, and
the queue's final counts. `--beside N` is the fairness benchmark (docs/architecture.md
"Dispatch"): another organisation's N-customer sync timed alone, then again while the big sync
has a backlog; the report gives both times and their ratio.
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
    parser.add_argument("--no-prewarm", dest="prewarm", action="store_false",
                        help="let the simulator render pages as they are asked for instead of before the clock "
                             "starts (its prewarm takes minutes past 100,000 customers); the store's own work is "
                             "then part of the wall time")
    parser.add_argument("--beside", type=int, metavar="N",
                        help="fairness: time another organisation's N-customer sync alone, then beside the big "
                             "sync once it has a backlog, and report both (e.g. --beside 100)")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="WOOSYNC_NAME=VALUE",
                        help="a setting for the producer and consumers (README, Configuration), e.g. "
                             "--set WOOSYNC_DISPATCH_WINDOW=2000; repeatable. Without it they run on the defaults: "
                             "the bench ignores WOOSYNC_ variables of its own environment")
    parser.add_argument("--timeout", type=float, default=1800, help="give up after this many seconds (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark's database, vhost and logs")
    parser.add_argument("--log-dir", type=Path, help="where the processes' logs go (default: a temporary folder)")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="sample the producer and the first consumer with py-spy (pip install py-spy) and "
                             "write collapsed stacks to DIR (view with any flame graph tool)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.customers < 1 or args.consumers < 1 or (args.beside is not None and args.beside < 1):
        print("woosync bench: --customers, --consumers and --beside must be at least 1", file=sys.stderr)
        return 2
    for setting in args.settings:
        name, equals, _ = setting.partition("=")
        if not equals or not name.startswith("WOOSYNC_") or name in _BENCH_OWNS:
            print(f"woosync bench: --set {setting!r}: give WOOSYNC_NAME=VALUE with a setting the bench does not "
                  f"set itself ({', '.join(sorted(_BENCH_OWNS))} are the bench's)", file=sys.stderr)
            return 2
    try:
        report = asyncio.run(_bench(args, settings))
    except BenchError as exc:
        print(f"woosync bench: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("woosync bench: interrupted; its processes are stopped and its database and vhost removed "
              "(unless --keep)", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(report))
    else:
        _print_table(report)
    return 0


class BenchError(Exception):
    pass


# Settings the bench gives its processes itself (its own database, vhost and store).
_BENCH_OWNS = frozenset({"WOOSYNC_DATABASE_URL", "WOOSYNC_AMQP_URL", "WOOSYNC_METRICS_PORT",
                         "WOOSYNC_STORE_ALLOWED_NETWORKS", "WOOSYNC_STORE_RATE_LIMIT"})


async def _bench(args: argparse.Namespace, settings: Settings) -> dict:
    from shared import amqp, migrations, organizations
    from shared.db import create_pool
    from shared.messages import StartSync
    from shared.repository import sync_queues
    from woosync import local_services
    from woosync.stack import LOCAL_STORE_NETWORKS, Stack, StackError, free_port

    import signal

    # Stopped (SIGTERM, e.g. a timeout): unwind like Ctrl-C, so the processes it started stop and
    # its database and vhost go, instead of outliving it.
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, asyncio.current_task().cancel)
    given = dict(setting.split("=", 1) for setting in args.settings)  # checked in run()
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
        env.update(given)
        if args.rate_limit:
            env["WOOSYNC_STORE_RATE_LIMIT"] = f"{args.rate_limit:g}"
        with Stack(env, log_dir) as stack:
            progress(f"starting the simulator ({args.customers:,} customers), the producer and {args.consumers} consumers; logs in {log_dir}")
            simulator = stack.start("simulator", ["simulator", "--port", str(sim_port), "--customers", str(args.customers),
                                                  "--seed", str(args.seed), "--workers", str(args.simulator_workers),
                                                  # Rendered before the clock starts: the stand-in store must not be what is measured.
                                                  *(("--prewarm", "--cache-mb", "2048") if args.prewarm else ()),
                                                  *(("--max-rps", f"{args.rate_limit:g}") if args.rate_limit else ())])
            # Prewarming 20,000 customers takes a minute or more on a busy machine.
            simulator.wait_for(r"simulator listening on", 600)
            small_port = free_port() if args.beside else None
            if small_port:
                stack.start("simulator-small", ["simulator", "--port", str(small_port), "--customers", str(args.beside),
                                                "--seed", str(args.seed + 1), "--valid-emails-only"]
                            ).wait_for(r"simulator listening on", 600)
            producer = stack.start("producer", ["run", "producer"], WOOSYNC_LOG_LEVEL="INFO")
            consumers = [stack.start(f"consumer-{i + 1}", ["run", "consumer"], WOOSYNC_LOG_LEVEL="INFO") for i in range(args.consumers)]
            try:
                producer.wait_for(r"producer ready", 60)
                for consumer in consumers:
                    consumer.wait_for(r"consumer ready", 60)
            except StackError as exc:
                raise BenchError(str(exc)) from None

            connection = await amqp.connect(amqp_url, name="woosync-bench")
            channel = await amqp.open_publisher_channel(connection)
            depth = _DepthSampler(base_amqp, vhost, pool)

            def a_request(org, port: int, key: str, orders: str) -> StartSync:
                return StartSync.model_validate({
                    "org_id": str(org), "idempotency_key": key, "options": {"orders": orders},
                    "store": {"url": f"http://127.0.0.1:{port}", "consumer_key": "ck_test", "consumer_secret": "cs_test"},
                })

            request = a_request(org_id, sim_port, f"bench-{run_id}", args.orders)
            fairness: dict = {}
            if small_port:
                async with pool.acquire() as conn:
                    small_org, _token = await organizations.create_organization(conn, name="bench-beside")
                small = _SmallSync(pool, channel, small_org, lambda key: a_request(small_org, small_port, key, "auto"))
                await small.run_alone(f"warm-up-{run_id}")  # connections and caches, not measured
                fairness["alone_s"] = await small.run_alone(f"alone-{run_id}")
                progress(f"  the {args.beside:,}-customer sync alone: {fairness['alone_s']:.2f} s")
            profilers = _start_profilers(args.profile, [producer, consumers[0]]) if args.profile else []
            store_requests_before = await _store_requests(sim_port, args.simulator_workers)
            servers = _ServerCpu()
            stack.sample_rss()
            cpu_before = {p.name: p.cpu_seconds for p in stack.processes}
            started = time.monotonic()
            await amqp.publish_sync_request(channel, request)

            queue = None
            deadline = started + args.timeout
            last_report = 0.0
            sent: list[tuple[float, int]] = []  # (time, store requests so far): the rate-limited sync's sending
            while time.monotonic() < deadline:
                stack.sample_rss()
                if args.rate_limit and store_requests_before is not None:
                    sent.append((time.monotonic(), await _store_requests(sim_port, args.simulator_workers)))
                async with pool.acquire() as conn:
                    queues = await sync_queues.list_queues(conn, org_id, limit=1, offset=0)
                queue = queues[0] if queues else None
                await depth.sample()
                servers.sample()
                if small_port and queue:
                    await small.beside(queue, fairness, progress)
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
            if small_port and queue is not None:
                await small.finish(fairness, progress)
            if queue is None or queue.state not in TERMINAL_QUEUE_STATES:
                raise BenchError(f"the sync did not finish within {args.timeout:.0f} s (last state: {queue.state if queue else 'no queue'})")
            stack.sample_rss()
            servers.sample()
            store_requests_after = await _store_requests(sim_port, args.simulator_workers)
            host_rate = await _host_rate(sim_port, args.simulator_workers)
            async with pool.acquire() as conn:
                queue = await sync_queues.queue_status(conn, queue.id, org_id)
            _stop_profilers(profilers)
            await connection.close()
            line_bytes = await pool.fetchval(
                "SELECT pg_total_relation_size('woo_customer_sync_queue_line') / greatest(count(*), 1)"
                "  FROM woo_customer_sync_queue_line")
            latency = await pool.fetchrow(
                """SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY s) AS p50,
                          percentile_disc(0.99) WITHIN GROUP (ORDER BY s) AS p99
                     FROM (SELECT extract(epoch FROM updated_at - created_at)::float8 AS s
                             FROM woo_customer_sync_queue_line WHERE queue_id = $1) t""", queue.id)
            peaks = {p.name: p.peak_rss for p in stack.processes}
            cpu = {p.name: round(p.cpu_seconds - cpu_before[p.name], 1) for p in stack.processes}
            cpu.update({name: round(seconds, 1) for name, seconds in servers.spent().items()})
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
        # From the first line published to the last finished: the consumers' phase, without the
        # enumeration before it (a bulk sync pages every order first, at the store's speed).
        **({"dispatched_seconds": round(lines_phase, 2),
            "dispatched_customers_per_second": round(queue.total_count / max(lines_phase, 1e-3), 1)}
           if (lines_phase := _lines_phase(queue)) is not None else {}),
        "line_latency_p50_s": round(latency["p50"] or 0, 3),
        "line_latency_p99_s": round(latency["p99"] or 0, 3),
        "peak_rss_mib": {name: round(rss / 2**20, 1) for name, rss in peaks.items()},
        # CPU seconds each process spent during the sync (PostgreSQL and RabbitMQ: every process
        # of theirs on this machine, other work included).
        "cpu_seconds": cpu,
        "counts": {k: getattr(queue, f"{k}_count") for k in ("total", *LINE_STATES)},
        "lines_queue_deepest": depth.deepest,
        "lines_queue_deepest_per_sync": depth.deepest_per_sync,
        "postgres_bytes_per_line": line_bytes,
        **({"beside": args.beside, **fairness} if args.beside else {}),
        "orders": (queue.plan or {}).get("orders"),
        **({"settings": given} if given else {}),
        # Counted by the simulator itself (one worker); with several workers, the sync's own count.
        "store_requests": (store_requests_after - store_requests_before if store_requests_before is not None
                           else (queue.plan or {}).get("store_requests")),
        "store_requests_per_customer": round(
            ((store_requests_after - store_requests_before) if store_requests_before is not None
             else (queue.plan or {}).get("store_requests") or 0) / max(queue.total_count, 1), 4),
        **(_budget_use(args.rate_limit, elapsed, store_requests_after - store_requests_before, host_rate, sent)
           if args.rate_limit and store_requests_before is not None else {}),
    }


def _lines_phase(queue) -> float | None:
    if queue.started_at is None or queue.finished_at is None:
        return None
    return (queue.finished_at - queue.started_at).total_seconds()


class _DepthSampler:
    """The lines queue's depth in the broker (ready and unacknowledged, from the management API,
    whose figures are a few seconds old), sampled about once a second, against the syncs under
    way: the dispatcher keeps it at most the window times those."""

    def __init__(self, amqp_url: str, vhost: str, pool) -> None:
        self._amqp_url, self._vhost, self._pool = amqp_url, vhost, pool
        self._next = 0.0
        self.deepest: int | None = None
        self.deepest_per_sync: int | None = None

    async def sample(self) -> None:
        from shared import topology
        from woosync import local_services

        if time.monotonic() < self._next:
            return
        self._next = time.monotonic() + 1.0
        messages = await asyncio.to_thread(local_services.queue_messages, self._amqp_url, self._vhost,
                                           topology.CUSTOMER_LINES_QUEUE)
        if messages is None:
            return
        active = await self._pool.fetchval(
            "SELECT count(*) FROM woo_customer_sync_queue WHERE state NOT IN ('done', 'failed', 'partial', 'cancelled')")
        self.deepest = max(self.deepest or 0, messages)
        self.deepest_per_sync = max(self.deepest_per_sync or 0, messages // max(active, 1))


class _SmallSync:
    """The fairness benchmark's small sync of another organisation."""

    def __init__(self, pool, channel, org_id, request) -> None:
        self._pool, self._channel, self._org_id, self._request = pool, channel, org_id, request
        self._started: float | None = None

    async def run_alone(self, key: str) -> float:
        from shared import amqp

        started = time.monotonic()
        await amqp.publish_sync_request(self._channel, self._request(key))
        while (state := await self._state(key)) not in TERMINAL_QUEUE_STATES:
            if time.monotonic() - started > 300:
                raise BenchError(f"the small sync {key} did not finish in 300 s (state {state})")
            await asyncio.sleep(0.02)
        return time.monotonic() - started

    async def beside(self, big, fairness: dict, progress) -> None:
        """Started once the big sync has lines finished and a backlog of drafts; timed to its end."""
        from shared import amqp

        if self._started is None:
            if big.state not in TERMINAL_QUEUE_STATES and big.done_count >= 100 and big.draft_count >= big.total_count // 2:
                self._started = time.monotonic()
                await amqp.publish_sync_request(self._channel, self._request("beside"))
            return
        if "beside_s" not in fairness and await self._state("beside") in TERMINAL_QUEUE_STATES:
            fairness["beside_s"] = round(time.monotonic() - self._started, 3)
            fairness["big_lines_left_then"] = big.total_count - big.done_count - big.failed_count
            progress(f"  the small sync beside it: {fairness['beside_s']:.2f} s")

    async def finish(self, fairness: dict, progress) -> None:
        """The small sync beside, if started and still running when the big one ended: waited for."""
        deadline = time.monotonic() + 300
        while self._started is not None and "beside_s" not in fairness and time.monotonic() < deadline:
            if await self._state("beside") in TERMINAL_QUEUE_STATES:
                fairness["beside_s"] = round(time.monotonic() - self._started, 3)
                progress(f"  the small sync beside it: {fairness['beside_s']:.2f} s (after the big one ended)")
            else:
                await asyncio.sleep(0.02)

    async def _state(self, key: str) -> str | None:
        return await self._pool.fetchval(
            "SELECT state FROM woo_customer_sync_queue WHERE org_id = $1 AND idempotency_key = $2", self._org_id, key)


def _budget_use(rate_limit: float, elapsed: float, requests: int, host_rate: dict,
                sent: list[tuple[float, int]]) -> dict:
    """How a rate-limited sync used the store's budget: the share of rate x wall time its requests
    took; the share while it was sending (from the first poll that saw a new request to the last,
    every 0.2 s: the work waited for the budget, not for a process starting or a last write); the
    wall time against the ideal (requests / rate), and what the host saw."""
    changes = [i for i in range(1, len(sent)) if sent[i][1] > sent[i - 1][1]]
    sending = {}
    if len(changes) >= 2:
        first, last = sent[changes[0]], sent[changes[-1]]
        sending = {"sending_seconds": round(last[0] - first[0], 2),
                   "budget_used_while_sending": round((last[1] - first[1]) / (rate_limit * (last[0] - first[0])), 3)}
    return {
        "rate_limit": rate_limit,
        "budget_used": round(requests / (rate_limit * elapsed), 3),
        **sending,
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


class _ServerCpu:
    """CPU seconds the local PostgreSQL and RabbitMQ processes spent during the sync (0 where not
    local), per process: a backend that exits between two samples keeps what it was last seen to
    have spent (summing the live processes alone would count it negative), one started meanwhile
    counts from zero."""

    def __init__(self) -> None:
        self._first: dict[int, float] = {}
        self._last: dict[int, tuple[str, float]] = {}
        self._started = True
        self.sample()
        self._started = False

    def sample(self) -> None:
        import psutil

        for process in psutil.process_iter(["pid", "name", "cpu_times"]):
            name, times = process.info["name"] or "", process.info["cpu_times"]
            if times is None:
                continue
            if name.startswith("postgres"):
                server = "postgresql"
            elif name.startswith("beam") or name in ("epmd", "erl_child_setup"):
                server = "rabbitmq"
            else:
                continue
            pid, spent = process.info["pid"], times.user + times.system
            if pid not in self._first:
                self._first[pid] = spent if self._started else 0.0
            self._last[pid] = (server, spent)

    def spent(self) -> dict[str, float]:
        totals = {"postgresql": 0.0, "rabbitmq": 0.0}
        for pid, (server, spent) in self._last.items():
            totals[server] += max(0.0, spent - self._first[pid])
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
        *((("once dispatched", f"{report['dispatched_customers_per_second']:,.0f} customers/s over "
                               f"{report['dispatched_seconds']:.1f} s (first line published to last finished)"),)
          if "dispatched_seconds" in report else ()),
        ("orders strategy", str(report["orders"])),
        *((("settings", " ".join(f"{k}={v}" for k, v in report["settings"].items())),) if "settings" in report else ()),
        ("store requests", f"{report['store_requests']:,} ({report['store_requests_per_customer']:.3f} per customer)"),
        ("line latency p50 / p99", f"{report['line_latency_p50_s']:.2f} s / {report['line_latency_p99_s']:.2f} s"),
        *((f"peak RSS {name}", f"{mib:.0f} MiB") for name, mib in report["peak_rss_mib"].items()),
        *((f"CPU {name}", f"{seconds:.1f} s") for name, seconds in report["cpu_seconds"].items()),
        ("counts", ", ".join(f"{k} {v:,}" for k, v in report["counts"].items())),
        ("lines queue deepest", f"{report['lines_queue_deepest']:,} messages, ready and unacked "
                                f"({report['lines_queue_deepest_per_sync']:,} per sync under way)"
                                if report["lines_queue_deepest"] is not None
                                else "not sampled (the management API gave no figure during the sync)"),
        ("PostgreSQL per line", f"{report['postgres_bytes_per_line']:,} bytes (lines table with its indexes)"),
        *((("beside", f"a {report['beside']:,}-customer sync of another organisation: {report['alone_s']:.2f} s alone, "
                      + (f"{report['beside_s']:.2f} s beside ({report['beside_s'] / report['alone_s']:.2f}x)"
                         if report.get("beside_s") is not None else "not measured beside (no backlog formed)")),)
          if "beside" in report else ()),
        *((("rate limit", f"{report['rate_limit']:g} requests/s (host and fleet budget)"),
           ("budget used", f"{report['budget_used']:.0%} (wall time {report['seconds']:.1f} s, "
                           f"ideal {report['ideal_seconds']:.1f} s)"),
           *((("budget used while sending", f"{report['budget_used_while_sending']:.0%} "
                                           f"(over {report['sending_seconds']:.1f} s)"),)
             if "budget_used_while_sending" in report else ()),
           ("host saw", f"at most {report['host_busiest_second']} requests in one second, "
                        f"{report['host_429s']} answered 429")) if "rate_limit" in report else ()),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
