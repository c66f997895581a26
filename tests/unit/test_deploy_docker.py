"""The Dockerfile, .dockerignore and the image's health probe, checked without a Docker engine:
hadolint, the instructions that make the image safe and runnable, the build context, and the
probe against real local HTTP servers."""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import socket
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType

import pytest

from tests.deploy_tools import DEPLOY, REPO, require_tool, run_tool

pytestmark = pytest.mark.unit

DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
HEALTHCHECK_SCRIPT = DEPLOY / "docker" / "healthcheck.py"


# --- Dockerfile ---------------------------------------------------------------------------------


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's instructions, (INSTRUCTION, arguments), grouped by stage."""
    lines, pending = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        if not pending and (raw.lstrip().startswith("#") or not raw.strip()):
            continue
        if raw.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        lines.append(pending + raw)
        pending = ""
    stages: list[list[tuple[str, str]]] = []
    for line in lines:
        instruction, _, arguments = line.strip().partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        stages[-1].append((instruction.upper(), " ".join(arguments.split())))
    return stages


def test_hadolint_finds_nothing_to_fix() -> None:
    hadolint = require_tool("hadolint")
    run_tool(hadolint, str(DOCKERFILE))


def test_the_image_is_multi_stage_on_python_3_11_slim() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2, "build and runtime stages keep compilers and caches out of the image"
    for stage in stages:
        assert stage[0][1].split()[0] == "python:3.11-slim"
    runtime = stages[-1]
    assert ("COPY", "--from=build /opt/woosync /opt/woosync") in runtime, "the runtime copies the built environment"


def test_the_runtime_runs_woosync_as_an_unprivileged_numeric_user() -> None:
    runtime = dockerfile_stages()[-1]
    instructions = [instruction for instruction, _ in runtime]
    users = [arguments for instruction, arguments in runtime if instruction == "USER"]
    assert users, "the runtime stage must switch user"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "a numeric non-root uid (Kubernetes runAsNonRoot checks it)"
    assert instructions.index("USER") < instructions.index("ENTRYPOINT")
    entrypoint = [json.loads(arguments) for instruction, arguments in runtime if instruction == "ENTRYPOINT"]
    assert entrypoint == [["woosync"]], "exec-form ENTRYPOINT, so woosync is PID 1 and receives SIGTERM"


def test_woosync_is_the_console_script_the_entrypoint_calls() -> None:
    import tomllib

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["woosync"] == "woosync.cli:main"


def test_migrations_ship_in_the_image_where_woosync_migrate_looks() -> None:
    runtime = dockerfile_stages()[-1]
    env = " ".join(arguments for instruction, arguments in runtime if instruction == "ENV")
    assert "WOOSYNC_SQL_DIR=/app/sql" in env
    assert ("COPY", "sql /app/sql") in runtime
    assert "WOOSYNC_SQL_DIR" in (REPO / "shared" / "migrations.py").read_text()


def test_the_healthcheck_runs_the_shipped_probe() -> None:
    runtime = dockerfile_stages()[-1]
    healthchecks = [arguments for instruction, arguments in runtime if instruction == "HEALTHCHECK"]
    assert len(healthchecks) == 1
    command = json.loads(healthchecks[0].split(" CMD ", 1)[1])
    assert command[0] == "python" and command[1] == "/app/healthcheck.py"
    assert ("COPY", "deploy/docker/healthcheck.py /app/healthcheck.py") in runtime


def test_exposed_ports_are_the_services_defaults() -> None:
    exposed = {
        int(port)
        for stage in dockerfile_stages()
        for instruction, arguments in stage
        if instruction == "EXPOSE"
        for port in arguments.split()
    }
    assert exposed == {8080, 8090, 9101, 9102}


# --- .dockerignore ------------------------------------------------------------------------------


def _dockerignore_patterns() -> list[tuple[bool, str]]:
    patterns = []
    for line in DOCKERIGNORE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        patterns.append((negated, line.lstrip("!").rstrip("/")))
    return patterns


def _pattern_matches(pattern: str, path: str) -> bool:
    # Docker matches a pattern against the path and every parent directory of it; '**' spans
    # any number of directories (zero included).
    candidates = [pattern, pattern.removeprefix("**/")] if pattern.startswith("**/") else [pattern]
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(
        fnmatch.fnmatchcase(prefix, candidate) or fnmatch.fnmatchcase(prefix.split("/")[-1], candidate)
        if "/" not in candidate
        else fnmatch.fnmatchcase(prefix, candidate)
        for candidate in candidates
        for prefix in prefixes
    )


def in_build_context(path: str) -> bool:
    """Whether .dockerignore lets `path` (relative to the repository) into the build context."""
    included = True
    for negated, pattern in _dockerignore_patterns():
        if pattern == "**" or _pattern_matches(pattern, path):
            included = negated
    return included


def test_every_copied_file_exists_and_reaches_the_build_context() -> None:
    for stage in dockerfile_stages():
        for instruction, arguments in stage:
            if instruction not in ("COPY", "ADD") or arguments.startswith("--from"):
                continue
            *sources, _destination = arguments.split()
            for source in sources:
                assert (REPO / source).exists(), f"COPY {source}: no such file in the repository"
                assert in_build_context(source), f"COPY {source}: .dockerignore keeps it out of the build context"


def test_the_build_context_leaves_out_secrets_history_and_local_environments() -> None:
    for path in (
        ".git/config",
        ".venv/bin/python",
        ".env",
        "tests/unit/test_deploy_docker.py",
        "shared/__pycache__/settings.cpython-311.pyc",
    ):
        assert not in_build_context(path), f"{path} must not be sent to the Docker daemon"
    for path in (
        "pyproject.toml",
        "shared/settings.py",
        "services/__init__.py",
        "woosync/cli.py",
        "sql/001_foundation.sql",
    ):
        assert in_build_context(path), f"{path} is needed to build the image"


# --- the health probe ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location("woosync_image_healthcheck", HEALTHCHECK_SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["run", "producer"], {}, (9101, "/healthz")),
        (["run", "consumer"], {}, (9102, "/healthz")),
        (["run", "consumer"], {"WOOSYNC_METRICS_PORT": "9200"}, (9200, "/healthz")),
        (["run", "status"], {}, (8080, "/healthz")),
        (["run", "status", "--host", "0.0.0.0", "--port", "8181"], {}, (8181, "/healthz")),
        (["run", "status", "--port=8282"], {}, (8282, "/healthz")),
        (["simulator", "--port", "8095", "--customers", "10"], {}, (8095, "/")),
        (["run", "producer"], {"WOOSYNC_HEALTH_PORT": "7000"}, (7000, "/healthz")),
    ],
)
def test_the_probe_asks_each_command_on_its_own_port(healthcheck: ModuleType, args, env, expected) -> None:
    target = healthcheck.health_target(args, env)
    assert (target.port, target.path) == expected


@pytest.mark.parametrize("args", [["migrate"], ["org", "create", "--name", "x"], ["sync", "status", "q"]])
def test_one_shot_commands_have_nothing_to_probe(healthcheck: ModuleType, args) -> None:
    assert healthcheck.health_target(args, {}) is None


def test_a_worker_on_a_random_metrics_port_is_not_probed(healthcheck: ModuleType) -> None:
    assert healthcheck.health_target(["run", "consumer"], {"WOOSYNC_METRICS_PORT": "0"}) is None


def test_the_probe_finds_the_woosync_process_behind_an_init(healthcheck: ModuleType, tmp_path: Path) -> None:
    for pid, argv in (
        (1, ["/sbin/docker-init", "--", "woosync", "run", "consumer"]),
        (7, ["/opt/woosync/bin/python", "/opt/woosync/bin/woosync", "run", "status"]),
    ):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    (tmp_path / "self").mkdir()
    assert healthcheck.running_woosync_args(tmp_path) == ["run", "consumer"]
    (tmp_path / "1" / "cmdline").write_bytes(b"/bin/sh\0")
    assert healthcheck.running_woosync_args(tmp_path) == ["run", "status"]


class _Health(BaseHTTPRequestHandler):
    answers: dict[str, int] = {}

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.send_response(self.answers.get(self.path, 404))
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def local_server() -> Iterator[tuple[int, dict[str, int]]]:
    answers: dict[str, int] = {}
    handler = type("Handler", (_Health,), {"answers": answers})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], answers
    finally:
        server.shutdown()
        server.server_close()


def test_a_service_answering_200_is_healthy(healthcheck: ModuleType, local_server) -> None:
    port, answers = local_server
    answers["/healthz"] = 200
    ok, detail = healthcheck.probe(healthcheck.HealthTarget(port, "/healthz"))
    assert ok, detail


def test_a_service_answering_503_is_unhealthy(healthcheck: ModuleType, local_server) -> None:
    port, answers = local_server
    answers["/healthz"] = 503
    ok, detail = healthcheck.probe(healthcheck.HealthTarget(port, "/healthz"))
    assert not ok and "503" in detail


def test_the_simulator_is_healthy_on_any_http_answer(healthcheck: ModuleType, local_server) -> None:
    port, _ = local_server  # answers 404 to "/"
    ok, detail = healthcheck.probe(healthcheck.HealthTarget(port, "/", any_http_answer=True))
    assert ok, detail


def test_a_missing_health_route_is_unhealthy_for_a_service(healthcheck: ModuleType, local_server) -> None:
    port, _ = local_server  # answers 404 to /healthz
    ok, detail = healthcheck.probe(healthcheck.HealthTarget(port, "/healthz"))
    assert not ok and "404" in detail


def test_nothing_listening_is_unhealthy(healthcheck: ModuleType) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]  # bound, never listening: connections are refused
        ok, detail = healthcheck.probe(healthcheck.HealthTarget(closed_port, "/healthz"))
    assert not ok and "did not answer" in detail


def test_the_image_installs_the_project_without_extras() -> None:
    # Extras (test, demo) carry test and container tooling: the production image has none of them.
    installs = [args for stage in dockerfile_stages() for instruction, args in stage
                if instruction == "RUN" and "pip install" in args]
    assert installs and all("pip install . " in f"{args} " and "[" not in args for args in installs)
