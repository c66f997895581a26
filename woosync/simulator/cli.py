"""`woosync simulator`: run the WooCommerce simulator in the foreground until SIGTERM/SIGINT.

Prints exactly one line on stdout once it accepts connections, so scripts can wait for it:
    simulator listening on http://127.0.0.1:8090 (250 customers, seed 1)
Everything else (start-up details, traffic every 10 s) goes to stderr as logs.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from woosync.simulator.config import ScenarioError, SimulatorConfig, load_scenario

if TYPE_CHECKING:
    from woosync.simulator.app import ResponseCache
    from woosync.simulator.data import SimulatedStore

log = logging.getLogger("woosync.simulator")

_EPILOG = """\
Faults strike like a real host's: --rate-limit-rate and --error-rate answer 429/5xx (HTML bodies from
the "proxy", Retry-After on 429 and 503; a share of the 500s are WordPress' JSON critical error),
--max-rps enforces a real request rate, --fail-orders-for/--fail-orders-every make some customers'
orders always answer 500 (lines that must end dead-lettered).

Authentication is the real store's over plain http: OAuth 1.0a (HMAC-SHA1/SHA256, 15 min timestamp
window, nonces never reused); Basic and query-string keys are ignored (401). --https-auth behaves like
a store behind a TLS proxy, where Basic and query-string keys work.

A scenario file (JSON, or YAML with PyYAML) holds the same settings by their long names, e.g.
  {"customers": 10000, "latency-ms": "20-80", "error-rate": 0.02, "fail-orders-every": 97}
Command-line options override it. GET /__simulator/stats shows the traffic served (per worker).
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="woosync simulator",
        description="A WooCommerce REST API v3 store with synthetic, deterministic customers and orders.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=argparse.SUPPRESS,  # unset options do not override the scenario file
    )
    where = parser.add_argument_group("store")
    where.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    where.add_argument("--port", type=int, help="port (default 8090; 0 picks a free one)")
    where.add_argument("--customers", type=int, metavar="N", help="users in the store, ids 1..N (default 250)")
    where.add_argument("--seed", type=int, metavar="S", help="data seed: same seed, same data (default 1)")
    where.add_argument("--as-of", metavar="YYYY-MM-DD",
                       help="the store's today; all dates lie before it (default: today, UTC)")
    where.add_argument("--gmt-offset-hours", type=float, metavar="H",
                       help="site timezone: date_created is local, date_created_gmt UTC (default 2)")
    where.add_argument("--valid-emails-only", action="store_const", const=True,
                       help="no invalid or empty emails (by default a few customers have them)")
    where.add_argument("--public-url", metavar="URL",
                       help="site URL used in links and OAuth base strings (default http://HOST:PORT)")
    where.add_argument("--workers", type=int, metavar="N",
                       help="serving processes sharing the port (SO_REUSEPORT) (default 1)")
    where.add_argument("--prewarm", action="store_const", const=True,
                       help="render every customer's orders before listening (for benchmarks)")
    where.add_argument("--cache-mb", type=int, metavar="MB", help="bound of the response cache (default 256)")

    creds = parser.add_argument_group("credentials")
    creds.add_argument("--consumer-key", metavar="K", help="the API key the store knows (default ck_test)")
    creds.add_argument("--consumer-secret", metavar="S", help="its secret (default cs_test)")
    creds.add_argument("--https-auth", action="store_const", const=True,
                       help="accept Basic auth and query-string keys, as a store behind TLS does")
    creds.add_argument("--nonce-memory", type=int, metavar="N",
                       help="OAuth nonces remembered per key for replay detection (default 200000)")
    creds.add_argument("--refuse-credentials", action="store_const", const=True,
                       help="know no key at all: every authenticated request gets 401")

    faults = parser.add_argument_group("faults")
    faults.add_argument("--latency-ms", metavar="MS|LOW-HIGH", help="added to every answer (default 0)")
    faults.add_argument("--latency-per-item-ms", type=float, metavar="MS",
                        help="added per customer/order in a list (a real store: ~4 ms per order)")
    faults.add_argument("--error-rate", type=float, metavar="F", help="fraction of requests answered 5xx")
    faults.add_argument("--rate-limit-rate", type=float, metavar="F",
                        help="fraction of requests answered 429 with Retry-After")
    faults.add_argument("--max-rps", type=float, metavar="R", help="answer 429 beyond R requests/s (0 = off)")
    faults.add_argument("--storm-after", type=int, metavar="N",
                        help="after N requests, answer every request 429 with Retry-After for --storm-s seconds")
    faults.add_argument("--storm-s", type=float, metavar="S", help="length of the 429 storm (default 0: none)")
    faults.add_argument("--retry-after", dest="retry_after_s", type=int, metavar="S",
                        help="Retry-After seconds on 429 and 503 (default 1)")
    faults.add_argument("--fail-orders-for", metavar="IDS",
                        help="comma-separated customer ids whose orders always answer 500")
    faults.add_argument("--fail-orders-every", type=int, metavar="N",
                        help="orders of every Nth customer id always answer 500")
    faults.add_argument("--fault-seed", type=int, metavar="S", help="seed of the fault sequence (default: --seed)")
    parser.add_argument("--scenario", metavar="FILE", help="JSON/YAML file with any of the settings above")
    return parser


def parse_config(argv: Sequence[str] | None) -> SimulatorConfig:
    """Defaults, then the scenario file, then the command line (SystemExit 2 on a bad value)."""
    parser = _parser()
    options = vars(parser.parse_args(argv))
    scenario_path = options.pop("scenario", None)
    config = SimulatorConfig()
    try:
        if scenario_path:
            config = config.with_overrides(load_scenario(scenario_path), source=str(scenario_path))
        config = config.with_overrides(options, source="command line")
    except ScenarioError as exc:
        parser.error(str(exc))
    return config


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `woosync simulator` and `python -m woosync.simulator`."""
    config = parse_config(argv)
    _setup_logging()
    try:
        if config.workers == 1:
            return _run(_serve_until_signalled(config, worker=0, ready=None))
        return _supervise(config)
    except OSError as exc:
        log.error("%s", exc)
        return 1
    except KeyboardInterrupt:
        return 0


def _setup_logging() -> None:
    from shared.logs import setup_logging

    level = os.environ.get("WOOSYNC_LOG_LEVEL", "INFO").upper()
    fmt = os.environ.get("WOOSYNC_LOG_FORMAT", "console")
    setup_logging(level if level in logging.getLevelNamesMapping() else "INFO", fmt, service="simulator")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def _run(coroutine: Any) -> int:
    """Run on uvloop when it is installed (about a third more requests per CPU second)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


def _ready_line(url: str, config: SimulatorConfig) -> str:
    return f"simulator listening on {url} ({config.customers} customers, seed {config.seed})"


def _tune_gc() -> None:
    """The store's documents hold no reference cycles: collect rarely, never scan start-up objects.

    With default thresholds the collector re-scans every cached document and took about half the
    CPU of rendering orders.
    """
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


def _build_store(config: SimulatorConfig) -> SimulatedStore:
    from woosync.simulator.data import SimulatedStore

    return SimulatedStore(config.customers, config.seed, as_of=config.as_of,
                          gmt_offset_hours=config.gmt_offset_hours, valid_emails_only=config.valid_emails_only)


async def _serve_until_signalled(
    config: SimulatorConfig,
    *,
    worker: int,
    ready: multiprocessing.connection.Connection | None,
    prepared: tuple[SimulatedStore, ResponseCache | None] | None = None,
) -> int:
    from woosync.simulator.app import serve
    from woosync.simulator.data import store_summary

    gc.set_threshold(100_000, 50, 100)  # before a prewarm, which allocates the most
    store, cache = prepared if prepared is not None else (_build_store(config), None)
    running = await serve(store, config, worker=worker, reuse_port=config.workers > 1, report_every_s=10.0,
                          cache=cache)
    _tune_gc()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if ready is None:
        summary = store_summary(store)
        log.info("store: %d users (%d with role customer), %d orders, as of %s; key %s; https-auth %s",
                 summary["customers"], summary["role_customer"], summary["orders"], summary["as_of"],
                 config.consumer_key, "on" if config.https_auth else "off")
        print(_ready_line(running.url, config), flush=True)
    else:
        ready.send(running.url)
        ready.close()
    await stop.wait()
    log.info("stopping (worker %d)", worker)
    await running.stop()
    return 0


def _worker_main(
    config: SimulatorConfig,
    worker: int,
    ready: multiprocessing.connection.Connection,
    prepared: tuple[SimulatedStore, ResponseCache | None] | None,
) -> None:
    _setup_logging()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the supervisor decides; SIGTERM stops us
    try:
        sys.exit(_run(_serve_until_signalled(config, worker=worker, ready=ready, prepared=prepared)))
    except OSError as exc:
        log.error("worker %d: %s", worker, exc)
        sys.exit(1)


def _prepare(config: SimulatorConfig) -> tuple[SimulatedStore, ResponseCache | None] | None:
    """With --prewarm and a fork start method: render once here; forked workers share the pages."""
    if not config.prewarm:
        return None
    from woosync.simulator.app import Simulator, site_url

    gc.set_threshold(100_000, 50, 100)
    store = _build_store(config)
    store.base_url = site_url(config, config.port)
    simulator = Simulator(store, config)
    started = time.perf_counter()
    rendered = simulator.prewarm()
    log.info("prewarmed %d pages (%.1f MB) in %.1fs for %d workers", rendered, simulator.cache.size / 1e6,
             time.perf_counter() - started, config.workers)
    gc.freeze()  # keep the collector from touching (and so copying) the shared pages
    return store, simulator.cache


def _supervise(config: SimulatorConfig) -> int:
    """Several worker processes listening on one port with SO_REUSEPORT; the kernel spreads connections.

    Each worker has its own nonce memory, caches and counters: a replayed nonce is only caught
    when it reaches the worker that saw it first.
    """
    holder = None
    if config.port == 0:
        # Reserve a free port for every worker: a bound (not listening) socket holds it.
        holder = socket.socket(socket.AF_INET6 if ":" in config.host else socket.AF_INET)
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        holder.bind((config.host, 0))
        config = config.with_overrides({"port": holder.getsockname()[1]})
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    prepared = _prepare(config) if context.get_start_method() == "fork" else None
    workers = []
    readiness = []
    for index in range(config.workers):
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(target=_worker_main, args=(config, index, sender, prepared),
                                  name=f"simulator-{index}", daemon=True)
        process.start()
        sender.close()
        workers.append(process)
        readiness.append(receiver)

    stop = {"signal": None}

    def on_signal(signum: int, _frame: object) -> None:
        stop["signal"] = signum

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    url = None
    try:
        for index, receiver in enumerate(readiness):
            try:
                url = receiver.recv()
            except EOFError:
                log.error("worker %d exited before listening", index)
                return 1
        if holder is not None:
            holder.close()
        log.info("%d workers listening", len(workers))
        print(_ready_line(url, config), flush=True)
        sentinels = [process.sentinel for process in workers]
        while stop["signal"] is None:
            finished = multiprocessing.connection.wait(sentinels, timeout=0.5)
            if finished:
                dead = [p for p in workers if p.sentinel in finished]
                log.error("worker %s exited (code %s); stopping", dead[0].name, dead[0].exitcode)
                return 1
        return 0
    finally:
        for process in workers:
            if process.is_alive():
                process.terminate()
        for process in workers:
            process.join(timeout=10)
