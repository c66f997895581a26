"""The container HEALTHCHECK of the woosync image.

One image runs every woosync command, each with its own health endpoint, so the probe first
finds which command this container runs (from /proc) and then asks that command:

    woosync run producer      GET http://127.0.0.1:${WOOSYNC_METRICS_PORT:-9101}/healthz -> 200
    woosync run consumer      GET http://127.0.0.1:${WOOSYNC_METRICS_PORT:-9102}/healthz -> 200
    woosync run status        GET http://127.0.0.1:<--port, default 8080>/healthz       -> 200
    woosync simulator         GET http://127.0.0.1:<--port, default 8090>/              -> any HTTP answer
    anything else (migrate, org, sync, ...): one-shot commands, healthy while they run

WOOSYNC_HEALTH_PORT overrides the port. Exit 0 when healthy, 1 when not (Docker's convention);
standard library only, so the probe costs a few milliseconds of one Python start-up.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

TIMEOUT_S = 3.0
WORKER_DEFAULT_PORTS = {"producer": 9101, "consumer": 9102}
STATUS_DEFAULT_PORT = 8080
SIMULATOR_DEFAULT_PORT = 8090


@dataclass(frozen=True)
class HealthTarget:
    port: int
    path: str
    any_http_answer: bool = False  # the simulator has no health route: any HTTP answer means it is up


def option_value(args: Sequence[str], option: str) -> str | None:
    """The value of `--option VALUE` or `--option=VALUE` in args, else None."""
    for index, arg in enumerate(args):
        if arg == option and index + 1 < len(args):
            return args[index + 1]
        if arg.startswith(option + "="):
            return arg.split("=", 1)[1]
    return None


def health_target(woosync_args: Sequence[str], env: Mapping[str, str]) -> HealthTarget | None:
    """Where the command `woosync <woosync_args>` answers health checks; None for one-shot commands."""
    args = list(woosync_args)
    override = env.get("WOOSYNC_HEALTH_PORT")
    if args[:1] == ["run"] and len(args) >= 2 and args[1] in WORKER_DEFAULT_PORTS:
        configured = env.get("WOOSYNC_METRICS_PORT") or str(WORKER_DEFAULT_PORTS[args[1]])
        port = int(override or configured)
        # Port 0 means "a free port": only the process knows which, so there is nothing to probe.
        return HealthTarget(port, "/healthz") if port else None
    if args[:2] == ["run", "status"]:
        return HealthTarget(int(override or option_value(args, "--port") or STATUS_DEFAULT_PORT), "/healthz")
    if args[:1] == ["simulator"]:
        port = int(override or option_value(args, "--port") or SIMULATOR_DEFAULT_PORT)
        return HealthTarget(port, "/", any_http_answer=True)
    return None


def woosync_args_of(cmdline: Sequence[str]) -> list[str] | None:
    """The arguments after the `woosync` executable in a process's argv, else None."""
    for index, part in enumerate(cmdline):
        if Path(part).name == "woosync":
            return list(cmdline[index + 1 :])
    return None


def running_woosync_args(proc: Path = Path("/proc")) -> list[str] | None:
    """The arguments of the oldest woosync process in this container (PID 1 unless an init runs first)."""
    pids = sorted(int(entry.name) for entry in proc.iterdir() if entry.name.isdigit())
    for pid in pids:
        try:
            raw = (proc / str(pid) / "cmdline").read_bytes()
        except OSError:  # the process ended while we looked
            continue
        args = woosync_args_of([part.decode(errors="replace") for part in raw.split(b"\0") if part])
        if args is not None:
            return args
    return None


def probe(target: HealthTarget, host: str = "127.0.0.1") -> tuple[bool, str]:
    url = f"http://{host}:{target.port}{target.path}"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as answer:
            return answer.status == 200 or target.any_http_answer, f"{url} answered {answer.status}"
    except urllib.error.HTTPError as exc:
        return target.any_http_answer, f"{url} answered {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return False, f"{url} did not answer: {reason}"


def main() -> int:
    args = running_woosync_args()
    if args is None:
        print("unhealthy: no woosync process runs in this container")
        return 1
    target = health_target(args, os.environ)
    if target is None:
        print(f"healthy: 'woosync {' '.join(args[:2])}' has no health endpoint to ask")
        return 0
    ok, detail = probe(target)
    print(("healthy: " if ok else "unhealthy: ") + detail)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
