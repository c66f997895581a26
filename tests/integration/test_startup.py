"""Services that cannot start say why and what to do, in one line, and exit 1; a service waiting
for its database or broker stops quietly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.integration


def run(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("WOOSYNC_")}
    return subprocess.run([sys.executable, "-m", "woosync", *args], env={**base, **env},
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("service", ["producer", "consumer", "status"])
def test_a_database_without_the_schema_stops_the_service_with_the_fix(service, empty_database_url, amqp_url):
    result = run(["run", service], WOOSYNC_DATABASE_URL=empty_database_url, WOOSYNC_AMQP_URL=amqp_url,
                 WOOSYNC_METRICS_PORT="0")
    assert result.returncode == 1
    assert "run 'woosync migrate' first" in result.stderr and "Traceback" not in result.stderr


def test_a_database_that_does_not_exist_stops_the_service_with_the_fix(unborn_database_url, amqp_url):
    result = run(["run", "consumer"], WOOSYNC_DATABASE_URL=unborn_database_url, WOOSYNC_AMQP_URL=amqp_url)
    assert result.returncode == 1
    assert "does not exist; create it with 'woosync migrate'" in result.stderr and "Traceback" not in result.stderr


def test_an_unreachable_broker_is_waited_for_then_named(database_url):
    result = run(["run", "producer"], WOOSYNC_DATABASE_URL=database_url,
                 WOOSYNC_AMQP_URL="amqp://guest:guest@127.0.0.1:1/", WOOSYNC_STARTUP_TIMEOUT_S="2")
    assert result.returncode == 1
    assert "waiting for RabbitMQ at amqp://guest:***@127.0.0.1:1/" in result.stderr
    assert "cannot reach RabbitMQ" in result.stderr and "WOOSYNC_STARTUP_TIMEOUT_S" in result.stderr
    assert "Traceback" not in result.stderr


def test_sigterm_while_waiting_for_the_database_exits_0():
    base = {k: v for k, v in os.environ.items() if not k.startswith("WOOSYNC_")}
    process = subprocess.Popen([sys.executable, "-m", "woosync", "run", "consumer"],
                               env={**base, "WOOSYNC_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/x",
                                    "WOOSYNC_STARTUP_TIMEOUT_S": "120"},
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    line = ""
    while "waiting for PostgreSQL" not in line and time.monotonic() < deadline:
        line = process.stderr.readline()
    process.send_signal(signal.SIGTERM)
    assert process.wait(15) == 0


# In-process: each service's AsyncExitStack closes what it opened, whatever stops it.

async def _sessions_on(database_url: str) -> int:
    """Other sessions connected to the test's database (a service's pool shows up here)."""
    import asyncpg

    admin = await asyncpg.connect(database_url)
    try:
        return await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
    finally:
        await admin.close()


async def _serve(service: str, settings):
    if service == "status":
        from services.status.main import serve

        return await serve(settings, host="127.0.0.1", port=0)
    module = __import__(f"services.{service}.main", fromlist=["serve"])
    return await module.serve(settings)


@pytest.mark.parametrize("service", ["producer", "consumer", "status"])
async def test_a_start_up_failure_after_the_pool_is_open_still_closes_the_pool(service, database_url, amqp_url):
    from shared.settings import Settings

    # The database answers (the pool opens), the broker refuses the vhost: a start-up error.
    no_vhost = amqp_url.rsplit("/", 1)[0] + "/woosync-no-such-vhost"
    settings = Settings(_env_file=None, database_url=database_url, amqp_url=no_vhost, metrics_port=0)
    assert await _serve(service, settings) == 1
    assert await _sessions_on(database_url) == 0


@pytest.mark.parametrize("service", ["producer", "consumer", "status"])
async def test_a_topology_the_broker_refuses_still_closes_the_pool(service, database_url, amqp_url):
    import aio_pika

    from shared import topology
    from shared.settings import Settings

    # A lines queue declared by someone else with other arguments: the service's own declaration
    # fails (PRECONDITION_FAILED) after both connections are open.
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        await channel.declare_queue(topology.CUSTOMER_LINES_QUEUE, durable=True, arguments={"x-max-length": 7})
    finally:
        await connection.close()
    settings = Settings(_env_file=None, database_url=database_url, amqp_url=amqp_url, metrics_port=0)
    assert await _serve(service, settings) == 1
    assert await _sessions_on(database_url) == 0


@pytest.mark.parametrize("service", ["producer", "consumer", "status"])
async def test_a_classic_requests_queue_from_an_older_woosync_stops_the_service_with_the_migration_step(
        service, database_url, amqp_url, caplog):
    import aio_pika

    from shared import topology
    from shared.settings import Settings

    # woosync.sync_requests as earlier versions declared it (a classic queue, no delivery limit).
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        await channel.declare_queue(topology.SYNC_REQUESTS_QUEUE, durable=True, arguments={
            "x-dead-letter-exchange": topology.DEAD_EXCHANGE,
            "x-dead-letter-routing-key": topology.DEAD_SYNC_REQUEST_ROUTING_KEY})
    finally:
        await connection.close()
    settings = Settings(_env_file=None, database_url=database_url, amqp_url=amqp_url, metrics_port=0)
    assert await _serve(service, settings) == 1
    [line] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("cannot start")]
    assert "\n" not in line
    assert f"queue {topology.SYNC_REQUESTS_QUEUE} exists with other arguments" in line
    assert "drain it, delete it" in line and "docs/contract.md section 3" in line


@pytest.mark.parametrize(("service", "ready"), [("producer", "producer ready"), ("consumer", "consumer ready"),
                                                ("status", "status API on")])
def test_sigterm_stops_a_running_service_with_exit_0(service, ready, database_url, amqp_url, tmp_path):
    from tests.processes import WoosyncProcess, service_env

    args = ["run", service] + (["--host", "127.0.0.1", "--port", "0"] if service == "status" else [])
    process = WoosyncProcess(service, args, service_env(database_url, amqp_url), tmp_path).start()
    try:
        process.wait_for_output(ready)
        assert process.stop() == 0
        assert f"{service} service stopped" in process.output() or f"{service} stopped" in process.output()
    finally:
        process.kill()
