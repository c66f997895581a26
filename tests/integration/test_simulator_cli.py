"""`woosync simulator` as a user runs it: the ready line, serving, workers, scenarios, SIGTERM."""

from __future__ import annotations

import json
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
READY = re.compile(r"^simulator listening on (http://127\.0\.0\.1:\d+) \((\d+) customers, seed (\d+)\)$")


class Simulator:
    def __init__(self, *args: str, module: tuple[str, ...] = ("-m", "woosync.simulator")) -> None:
        self.process = subprocess.Popen(
            [sys.executable, *module, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.ready_line = self._first_line(timeout=60)
        match = READY.match(self.ready_line)
        self.url = match.group(1) if match else ""

    def _first_line(self, timeout: float) -> str:
        assert self.process.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(self.process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            self.process.kill()
            pytest.fail(f"no ready line within {timeout}s")
        return self.process.stdout.readline().rstrip("\n")

    def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(self.url + path, headers={"Connection": "close"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def stop(self) -> tuple[int, str]:
        self.process.send_signal(signal.SIGTERM)
        try:
            _, stderr = self.process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            pytest.fail("the simulator did not stop within 20s of SIGTERM")
        return self.process.returncode, stderr


@pytest.fixture
def started() -> Iterator[list[Simulator]]:
    simulators: list[Simulator] = []
    yield simulators
    for simulator in simulators:
        if simulator.process.poll() is None:
            simulator.process.kill()
            simulator.process.wait(timeout=10)


def test_prints_one_ready_line_serves_and_exits_0_on_sigterm(started: list[Simulator]) -> None:
    simulator = Simulator("--port", "0", "--customers", "40", "--seed", "9")
    started.append(simulator)
    assert READY.match(simulator.ready_line), simulator.ready_line
    assert simulator.ready_line.endswith("(40 customers, seed 9)")
    status, _, body = simulator.get("/wp-json/wc/v3")
    assert status == 200 and json.loads(body)["namespace"] == "wc/v3"
    status, _, body = simulator.get("/wp-json/wc/v3/customers")
    assert status == 401 and json.loads(body)["code"] == "woocommerce_rest_cannot_view"
    code, stderr = simulator.stop()
    assert code == 0
    assert "stopping" in stderr and "cs_test" not in stderr, "never log the consumer secret"


def test_woosync_simulator_subcommand_has_help() -> None:
    result = subprocess.run([sys.executable, "-m", "woosync", "simulator", "--help"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for option in ("--customers", "--seed", "--consumer-key", "--latency-ms", "--error-rate", "--rate-limit-rate",
                   "--fail-orders-for", "--fail-orders-every", "--refuse-credentials", "--scenario", "--workers",
                   "--https-auth"):
        assert option in result.stdout


def test_scenario_file_drives_faults(tmp_path: Path, started: list[Simulator]) -> None:
    scenario = tmp_path / "throttled.json"
    scenario.write_text(json.dumps({"customers": 12, "rate-limit-rate": 1.0, "retry-after": 3}))
    simulator = Simulator("--port", "0", "--scenario", str(scenario))
    started.append(simulator)
    assert simulator.ready_line.endswith("(12 customers, seed 1)")
    status, headers, _ = simulator.get("/wp-json/wc/v3/customers")
    assert status == 429 and headers["Retry-After"] == "3"
    assert simulator.stop()[0] == 0


def test_bad_scenario_exits_2_naming_the_setting(tmp_path: Path) -> None:
    scenario = tmp_path / "typo.json"
    scenario.write_text('{"eror-rate": 0.1}')
    result = subprocess.run([sys.executable, "-m", "woosync.simulator", "--scenario", str(scenario)], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "unknown setting 'eror-rate'" in result.stderr


def test_a_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "woosync.simulator", "--port", str(port)], cwd=ROOT,
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_workers_share_the_port_and_all_stop_on_sigterm(started: list[Simulator]) -> None:
    simulator = Simulator("--port", "0", "--customers", "30", "--workers", "2", "--prewarm")
    started.append(simulator)
    assert READY.match(simulator.ready_line), simulator.ready_line
    children = psutil.Process(simulator.process.pid).children()
    assert len(children) == 2
    pids = set()
    deadline = time.monotonic() + 20
    while len(pids) < 2 and time.monotonic() < deadline:
        status, _, body = simulator.get("/__simulator/stats")
        assert status == 200
        stats = json.loads(body)
        assert stats["cache"]["entries"] >= 30, "each worker got the prewarmed pages"
        pids.add(stats["pid"])
    assert pids == {child.pid for child in children}
    code, _ = simulator.stop()
    assert code == 0
    assert not any(child.is_running() and child.status() != psutil.STATUS_ZOMBIE for child in children)
