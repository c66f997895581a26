"""`woosync demo`: the whole system on this machine, against a simulated store.

Migrates a database of the demo's own, starts the simulator, the producer, two consumers and the
status service as real processes, publishes a sync of 5,000 simulated customers (a few made to
fail), shows live progress, prints a summary, and stops everything it started on the way out
(with --keep-running, only once the user presses Ctrl-C, so the console can be opened on the data).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path

from shared.settings import Settings
from shared.states import LINE_STATES, TERMINAL_QUEUE_STATES

DEMO_DATABASE = "woosync_demo"
DEMO_VHOST = "woosync-demo"
# The container fallback's package is an extra: a plain install carries no container tooling.
DEMO_EXTRA_INSTALL = "pip install 'woosync[demo]' (from a clone: .venv/bin/pip install -e '.[demo]')"
# Customers whose orders always fail: retried, then dead-lettered (the demo's "few that fail").
FAILING_CUSTOMERS = (13, 77, 420)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--customers", type=int, default=5000, help="customers in the simulated store (default: %(default)s)")
    parser.add_argument("--consumers", type=int, default=2, help="consumer processes (default: %(default)s)")
    parser.add_argument("--status-port", type=int, default=8080,
                        help="port of the status API (default: %(default)s; a free one if it is taken)")
    parser.add_argument("--timeout", type=float, default=900, help="give up after this many seconds (default: %(default)s)")
    parser.add_argument("--keep-running", action="store_true",
                        help="after the sync, keep every process running and print the console's address and an "
                             "API token to sign in with; Ctrl-C stops everything")
    parser.add_argument("--database", default=DEMO_DATABASE, metavar="NAME",
                        help="the demo's own PostgreSQL database, created if missing (default: %(default)s)")
    parser.add_argument("--vhost", default=DEMO_VHOST, metavar="NAME",
                        help="the demo's own RabbitMQ vhost, created if missing (default: %(default)s)")
    parser.epilog = (
        "Uses PostgreSQL and RabbitMQ from WOOSYNC_DATABASE_URL / WOOSYNC_AMQP_URL (default: 127.0.0.1), "
        "in a database and a vhost of its own (--database, --vhost); where neither answers "
        "and Docker is available, it starts them in containers."
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    from rich.console import Console

    # soft_wrap: tokens, URLs and commands must stay on one line to be copied.
    console = Console(stderr=False, highlight=False, soft_wrap=True)
    try:
        return asyncio.run(_demo(args, settings, console))
    except DemoError as exc:
        console.print(f"[bold red]woosync demo:[/] {exc}")
        return 1
    except KeyboardInterrupt:
        console.print("\n[yellow]interrupted: everything the demo started has been stopped[/]")
        return 130


class DemoError(Exception):
    pass


async def _demo(args: argparse.Namespace, settings: Settings, console) -> int:
    from woosync import local_services
    from woosync.stack import LOCAL_STORE_NETWORKS, Stack, StackError, free_port

    console.rule("[bold]woosync demo")
    database_server, amqp_server, containers = await _find_services(settings, console)
    try:
        database_url = local_services.with_database(database_server, args.database)
        amqp_url = local_services.create_vhost(amqp_server, args.vhost) or amqp_server
        vhost_note = args.vhost if amqp_url != amqp_server else "the default vhost (could not create one)"
        console.print(f"PostgreSQL database [cyan]{args.database}[/], RabbitMQ {vhost_note}")

        org_id, token = await _prepare_database(database_url, console)
        log_dir = Path(tempfile.mkdtemp(prefix="woosync-demo-"))
        status_port = args.status_port if _port_free(args.status_port) else free_port()
        sim_port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("WOOSYNC_")}
        env.update(WOOSYNC_DATABASE_URL=database_url, WOOSYNC_AMQP_URL=amqp_url, WOOSYNC_LOG_FORMAT="console",
                   # Shorter waits than production's, so the failing lines' retries fit a demo.
                   WOOSYNC_RETRY_DELAY_MS="1000", WOOSYNC_STORE_MAX_TRIES="2",
                   # The simulated store listens on this machine.
                   WOOSYNC_STORE_ALLOWED_NETWORKS=LOCAL_STORE_NETWORKS)
        if settings.secret_key:
            env["WOOSYNC_SECRET_KEY"] = settings.secret_key.get_secret_value()

        with Stack(env, log_dir) as stack:
            ports = {"producer": free_port(), **{f"consumer-{i + 1}": free_port() for i in range(args.consumers)}}
            try:
                with console.status("starting the simulator, the producer, the consumers and the status service ..."):
                    simulator = stack.start("simulator", ["simulator", "--port", str(sim_port), "--customers", str(args.customers),
                                                          "--seed", "42", "--fail-orders-for", ",".join(map(str, FAILING_CUSTOMERS))])
                    producer = stack.start("producer", ["run", "producer"], WOOSYNC_METRICS_PORT=str(ports["producer"]))
                    consumers = [stack.start(name, ["run", "consumer"], WOOSYNC_METRICS_PORT=str(port))
                                 for name, port in ports.items() if name.startswith("consumer")]
                    status = stack.start("status", ["run", "status", "--host", "127.0.0.1", "--port", str(status_port)])
                    simulator.wait_for(r"simulator listening on", 120)
                    producer.wait_for(r"producer ready", 60)
                    for consumer in consumers:
                        consumer.wait_for(r"consumer ready", 60)
                    await _wait_http(f"http://127.0.0.1:{status_port}/readyz", status, 60)
            except StackError as exc:
                raise DemoError(f"{exc}\n(all logs: {log_dir})") from None
            console.print(f"started {len(stack.processes)} processes; their logs are in [cyan]{log_dir}[/]")

            api = f"http://127.0.0.1:{status_port}"
            queue_id = await _start_sync(api, token, sim_port)
            console.print(f"sync started: queue [cyan]{queue_id}[/] ({args.customers:,} customers; "
                          f"orders asked per customer; those of customers {', '.join(map(str, FAILING_CUSTOMERS))} always fail)")
            started = time.monotonic()
            queue = await _watch(api, token, queue_id, args.timeout, console, stack)
            elapsed = time.monotonic() - started
            failed_lines = await _failed_lines(api, token, queue_id)
            dead = await _dead_letter_count(amqp_url)
            _summary(console, queue, failed_lines, elapsed, dead, api, token, ports, database_url,
                     keep_running=args.keep_running)
            if args.keep_running:
                await _keep_running(console, api, token, queue_id, stack)
            with console.status("stopping every process the demo started ..."):
                codes = stack.stop_all()
            bad = {name: code for name, code in codes.items() if code != 0}
            console.print("stopped: " + ", ".join(f"{n} ({c})" for n, c in codes.items())
                          + ("" if not bad else "  [red](non-zero exits above)[/]"))
    finally:
        for container in containers:
            container.stop()
    console.print(
        f"\nThe demo's data stays for you to look at. Remove it with:\n"
        f"  psql '{local_services.with_database(database_server, 'postgres')}' -c 'DROP DATABASE {args.database} WITH (FORCE)'\n"
        f"  rabbitmqctl delete_vhost {args.vhost}"
    )
    return 0 if queue["state"] in TERMINAL_QUEUE_STATES else 1


async def _find_services(settings: Settings, console) -> tuple[str, str, list]:
    from woosync import local_services

    database = settings.database_url.get_secret_value()
    amqp_url = settings.amqp_url.get_secret_value()
    containers: list = []
    pg_problem = await local_services.postgres_answers(database)
    amqp_problem = await _amqp_problem(amqp_url)
    if (pg_problem or amqp_problem) and _docker_available():
        try:
            from testcontainers.postgres import PostgresContainer
            from testcontainers.rabbitmq import RabbitMqContainer
        except ImportError:
            silent = " and ".join(f"{name} ({problem})" for name, problem in
                                  (("PostgreSQL", pg_problem), ("RabbitMQ", amqp_problem)) if problem)
            raise DemoError(f"no answer from {silent}, and starting containers needs the demo extra "
                            f"(testcontainers): {DEMO_EXTRA_INSTALL}. Or start it yourself, or point "
                            "WOOSYNC_DATABASE_URL / WOOSYNC_AMQP_URL at one that runs.") from None
        console.print("PostgreSQL or RabbitMQ does not answer: starting them in containers (testcontainers) ...")
        if pg_problem:
            postgres = PostgresContainer("postgres:15-alpine", driver=None)
            postgres.start()
            containers.append(postgres)
            database = postgres.get_connection_url()
        if amqp_problem:
            rabbit = RabbitMqContainer("rabbitmq:3.13-management-alpine")
            rabbit.start()
            containers.append(rabbit)
            amqp_url = f"amqp://guest:guest@{rabbit.get_container_host_ip()}:{rabbit.get_exposed_port(5672)}/"
    elif pg_problem:
        raise DemoError(f"PostgreSQL does not answer at WOOSYNC_DATABASE_URL ({pg_problem}). Start it "
                        "(e.g. pg_ctlcluster 15 main start), point WOOSYNC_DATABASE_URL at one, "
                        f"or install Docker and the demo extra ({DEMO_EXTRA_INSTALL}).")
    elif amqp_problem:
        raise DemoError(f"RabbitMQ does not answer at WOOSYNC_AMQP_URL ({amqp_problem}). Start it "
                        "(e.g. rabbitmq-server -detached), point WOOSYNC_AMQP_URL at one, "
                        f"or install Docker and the demo extra ({DEMO_EXTRA_INSTALL}).")
    return database, amqp_url, containers


async def _amqp_problem(url: str) -> str | None:
    import aio_pika

    try:
        connection = await asyncio.wait_for(aio_pika.connect(url), 10)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    await connection.close()
    return None


def _docker_available() -> bool:
    import shutil
    import subprocess

    return bool(shutil.which("docker")) and subprocess.run(["docker", "info"], capture_output=True).returncode == 0


def _port_free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def _prepare_database(database_url: str, console) -> tuple[uuid.UUID, str]:
    from shared import migrations, organizations
    from shared.db import connect

    created = await migrations.ensure_database(database_url)
    applied = await migrations.apply_migrations(database_url)
    console.print(f"database {'created' if created else 'found'}; {len(applied)} migrations applied")
    conn = await connect(database_url)
    try:
        org_id, token = await organizations.create_organization(conn, name=f"Demo {time.strftime('%Y-%m-%d %H:%M:%S')}")
    finally:
        await conn.close()
    console.print(f"organisation [cyan]{org_id}[/] with API token [cyan]{token}[/]")
    return org_id, token


async def _wait_http(url: str, process, timeout: float) -> None:
    import httpx

    from woosync.stack import StackError

    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while True:
            try:
                if (await client.get(url, timeout=2)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if not process.running:
                raise StackError(f"{process.name} exited with {process.popen.returncode}:\n{process.log()[-2000:]}")
            if time.monotonic() > deadline:
                raise StackError(f"{url} did not answer 200 within {timeout:.0f} s:\n{process.log()[-2000:]}")
            await asyncio.sleep(0.2)


async def _start_sync(api: str, token: str, sim_port: int) -> str:
    import httpx

    async with httpx.AsyncClient(headers={"authorization": f"Bearer {token}"}) as client:
        response = await client.post(f"{api}/api/v1/sync/queues", json={
            "store": {"url": f"http://127.0.0.1:{sim_port}", "consumer_key": "ck_test", "consumer_secret": "cs_test"},
            "idempotency_key": f"demo-{uuid.uuid4().hex[:8]}",
            # Each customer's orders are asked for on their own, so the failing customers' requests
            # are made and their retries and dead letters show (bulk paging would never ask).
            "options": {"orders": "per_customer"},
        }, timeout=30)
    body = response.json()
    if response.status_code != 202 or not body.get("success"):
        raise DemoError(f"the status API refused to start the sync ({response.status_code}): {body}")
    return body["data"]["id"]


async def _watch(api: str, token: str, queue_id: str, timeout: float, console, stack) -> dict:
    import httpx
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("[bold]{task.fields[state]:<10}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("done {task.fields[done]:,}  failed {task.fields[failed]:,}  {task.fields[rate]:,.0f}/min  ETA {task.fields[eta]}"),
               TimeElapsedColumn())
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(headers={"authorization": f"Bearer {token}"}) as client:
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task("sync", total=None, state="draft", done=0, failed=0, rate=0.0, eta="?")
            while True:
                queue = (await client.get(f"{api}/api/v1/sync/queues/{queue_id}", timeout=10)).json()["data"]
                finished = queue["done_count"] + queue["failed_count"] + queue["cancelled_count"]
                eta = queue.get("eta_seconds")
                progress.update(task, total=queue["total_count"] or None, completed=finished, state=queue["state"],
                                done=queue["done_count"], failed=queue["failed_count"], rate=queue.get("items_per_min") or 0,
                                eta=f"{eta:.0f}s" if eta is not None else "?")
                if queue["state"] in TERMINAL_QUEUE_STATES:
                    return queue
                for process in stack.processes:
                    if not process.running:
                        raise DemoError(f"{process.name} exited unexpectedly:\n{process.log()[-2000:]}")
                if time.monotonic() > deadline:
                    raise DemoError(f"the sync did not finish within {timeout:.0f} s")
                await asyncio.sleep(0.25)


async def _failed_lines(api: str, token: str, queue_id: str) -> list[dict]:
    import httpx

    async with httpx.AsyncClient(headers={"authorization": f"Bearer {token}"}) as client:
        response = await client.get(f"{api}/api/v1/sync/queues/{queue_id}/lines", params={"state": "failed", "limit": 10}, timeout=10)
    return response.json()["data"]["items"] if response.status_code == 200 else []


async def _dead_letter_count(amqp_url: str) -> int | None:
    import aio_pika

    from shared import topology

    try:
        connection = await aio_pika.connect(amqp_url)
    except Exception:
        return None
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(topology.CUSTOMER_LINES_DEAD_QUEUE, passive=True)
        return queue.declaration_result.message_count
    finally:
        await connection.close()


def _summary(console, queue: dict, failed_lines: list[dict], elapsed: float, dead: int | None, api: str, token: str,
             ports: dict[str, int], database_url: str, *, keep_running: bool = False) -> None:
    from rich.table import Table

    from shared.settings import mask_url
    from shared import topology

    console.rule("[bold]summary")
    colour = {"done": "green", "partial": "yellow"}.get(queue["state"], "red")
    console.print(f"queue {queue['id']} ended [bold {colour}]{queue['state']}[/]"
                  f"{' (action required)' if queue.get('is_action_required') else ''}")
    counts = Table(show_header=True, header_style="bold")
    columns = ("total", *LINE_STATES)
    for column in columns:
        counts.add_column(column, justify="right")
    counts.add_row(*(f"{queue[f'{c}_count']:,}" for c in columns))
    console.print(counts)
    console.print(f"throughput: {queue['total_count'] / elapsed:,.0f} customers/s ({queue['total_count']:,} in {elapsed:.1f} s, "
                  "including the failing lines' retries; 'woosync bench' measures speed)")
    if failed_lines:
        failures = Table("customer", "attempts", "reason", header_style="bold", title="failed lines")
        for line in failed_lines:
            reason = str(line.get("error_message"))
            failures.add_row(str(line.get("woo_customer_id")), str(line.get("error_count")),
                             reason if len(reason) <= 320 else reason[:319] + "…")
        console.print(failures)
        if queue["failed_count"] > len(failed_lines):
            console.print(f"  ... and {queue['failed_count'] - len(failed_lines)} more: GET {api}/api/v1/sync/queues/{queue['id']}/lines?state=failed")
    console.print("\n[bold]where to look next[/]")
    console.print(f"  status API      {api}/api/v1/sync/queues/{queue['id']}   (Authorization: Bearer {token})")
    console.print(f"  live events     curl -N -H 'Authorization: Bearer {token}' {api}/api/v1/sync/queues/{queue['id']}/events")
    console.print(f"  metrics         {api}/metrics, " + ", ".join(f"{name} http://127.0.0.1:{port}/metrics" for name, port in ports.items()))
    console.print(f"  dead letters    {dead if dead is not None else '?'} messages in {topology.CUSTOMER_LINES_DEAD_QUEUE}")
    console.print(f"  customers       psql '{mask_url(database_url)}' -c 'SELECT email, segment, lifetime_value FROM customer LIMIT 10'")
    console.print(f"  console         {api}/console/")
    if not keep_running:
        console.print("  (the processes stop now; keep them with 'woosync demo --keep-running', or run them yourself "
                      "with 'woosync run producer|consumer|status')")


async def _keep_running(console, api: str, token: str, queue_id: str, stack) -> None:
    """Everything stays up until Ctrl-C (or SIGTERM), or until a process exits on its own."""
    import signal

    console.rule("[bold]the demo keeps running")
    console.print(f"  console    [bold cyan]{api}/console/[/]   (this sync: {api}/console/#/syncs/{queue_id})")
    console.print(f"  API token  [bold cyan]{token}[/]   (paste it to sign in; the console keeps it for the tab only)")
    console.print("  press [bold]Ctrl-C[/] to stop every process the demo started")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        while not stop.is_set():
            for process in stack.processes:
                if not process.running:
                    raise DemoError(f"{process.name} exited while the demo kept running:\n{process.log()[-2000:]}")
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except asyncio.TimeoutError:
                pass
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    console.print("\nCtrl-C: stopping")
