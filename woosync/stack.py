"""Running woosync's own processes side by side on this machine (the demo and the benchmark):
start each as a user would (`python -m woosync ...`), wait until it says it is ready, watch its
memory, and stop everything on exit, Ctrl-C included."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil


# The networks of a store on this machine (the simulator): woosync refuses them unless allowed
# (WOOSYNC_STORE_ALLOWED_NETWORKS, docs/contract.md section 10), so the demo, the benchmark and
# the test suite allow them for their processes.
LOCAL_STORE_NETWORKS = "127.0.0.0/8,::1/128"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@dataclass
class Process:
    name: str
    args: list[str]
    log_path: Path
    popen: subprocess.Popen[bytes]
    peak_rss: int = 0
    cpu_seconds: float = 0.0
    _ps: psutil.Process | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        """Wait until the process's output matches `pattern`; fail with its output if it exits."""
        deadline = time.monotonic() + timeout
        compiled = re.compile(pattern)
        while True:
            found = compiled.search(self.log())
            if found:
                return found
            if not self.running:
                raise StackError(f"{self.name} exited with code {self.popen.returncode} before it was ready:\n{self.log()[-2000:]}")
            if time.monotonic() > deadline:
                raise StackError(f"{self.name} was not ready after {timeout:.0f} s:\n{self.log()[-2000:]}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up (a crash, an OOM kill)."""
        if self.running:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(10)

    def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait for the exit code."""
        if self.running:
            self.popen.send_signal(signal.SIGTERM)
        return self.popen.wait(timeout)

    def sample_rss(self) -> int:
        try:
            if self._ps is None:
                self._ps = psutil.Process(self.popen.pid)
            rss = self._ps.memory_info().rss
            times = self._ps.cpu_times()
        except psutil.Error:
            return self.peak_rss
        self.peak_rss = max(self.peak_rss, rss)
        self.cpu_seconds = times.user + times.system + times.children_user + times.children_system
        return rss


class StackError(Exception):
    pass


class Stack:
    """The processes started here; `with Stack(...)` stops every one of them on the way out."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.processes: list[Process] = []
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, args: list[str], **env: str) -> Process:
        log_path = self.log_dir / f"{name}.log"
        with open(log_path, "wb") as log:
            popen = subprocess.Popen(
                [sys.executable, "-m", "woosync", *args],
                env={**self.env, **env, "PYTHONUNBUFFERED": "1"},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # Own process group: Ctrl-C in the terminal reaches us, and we stop them in order.
                start_new_session=True,
            )
        process = Process(name, args, log_path, popen)
        self.processes.append(process)
        return process

    def sample_rss(self) -> None:
        for process in self.processes:
            if process.running:
                process.sample_rss()

    def stop_all(self, timeout: float = 30.0) -> dict[str, int | None]:
        """SIGTERM to everything (newest first), then SIGKILL to whatever is left after `timeout`."""
        for process in reversed(self.processes):
            if process.running:
                process.popen.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        codes: dict[str, int | None] = {}
        for process in reversed(self.processes):
            try:
                codes[process.name] = process.popen.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                os.killpg(process.popen.pid, signal.SIGKILL)
                codes[process.name] = process.popen.wait(10)
        return codes

    def __enter__(self) -> "Stack":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()
