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
