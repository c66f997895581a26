"""Starting woosync's real processes in tests, as a user would (`python -m woosync ...`)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from woosync.stack import LOCAL_STORE_NETWORKS


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def service_env(database_url: str, amqp_url: str, **overrides: str | int | float) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WOOSYNC_")}
    env.update(
        WOOSYNC_DATABASE_URL=database_url,
        WOOSYNC_AMQP_URL=amqp_url,
        WOOSYNC_METRICS_PORT="0",
        WOOSYNC_LOG_FORMAT="json",
        WOOSYNC_LOG_LEVEL="INFO",
        WOOSYNC_STORE_ALLOWED_NETWORKS=LOCAL_STORE_NETWORKS,  # the tests' stores listen on this machine
        PYTHONUNBUFFERED="1",
    )
    env.update({f"WOOSYNC_{k.upper()}": str(v) for k, v in overrides.items()})
    return env


class WoosyncProcess:
    """One `woosync ...` process whose output goes to a log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "WoosyncProcess":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "woosync", *self.args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_output(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            if not self.running:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode} before printing {text!r}:\n{self.output()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name} did not print {text!r} within {timeout:.0f}s:\n{self.output()[-3000:]}")
            time.sleep(0.05)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.name} did not exit within {timeout:.0f}s of SIGTERM:\n{self.output()[-3000:]}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
