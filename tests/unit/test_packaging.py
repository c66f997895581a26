"""What a plain `pip install` carries: the product's dependencies, never the tests' tools."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest

from tests.deploy_tools import REPO

pytestmark = pytest.mark.unit

PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower() for requirement in requirements}


def test_a_plain_install_carries_no_test_or_container_tooling() -> None:
    shipped = names(PROJECT["dependencies"])
    assert not shipped & names(PROJECT["optional-dependencies"]["test"])
    assert "testcontainers" not in shipped


def test_the_demo_container_fallback_is_the_demo_extra() -> None:
    assert names(PROJECT["optional-dependencies"]["demo"]) == {"testcontainers"}


def shipped_modules() -> dict[str, Path]:
    modules = {}
    for package in ("shared", "services", "woosync"):
        for path in (REPO / package).rglob("*.py"):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts)
            modules[name.removesuffix(".__init__")] = path
    return modules


def reached_from(modules: dict[str, Path]) -> set[str]:
    """Modules the shipped code imports, or names as a string (the commands load lazily)."""
    reached = set()
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                reached.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parent + ([base] if base else []))
                reached.add(base)
                reached.update(f"{base}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Constant) and node.value in modules:
                reached.add(node.value)
    return reached


def test_every_shipped_module_is_used_by_the_product_not_only_by_tests() -> None:
    # Test support (fixture loaders, fakes) lives under tests/: a shipped module that only tests
    # import does not belong in the library.
    modules = shipped_modules()
    packages = {name for name, path in modules.items() if path.name == "__init__.py"}
    entry_points = {"woosync.cli"} | {name for name in modules if name.endswith(".__main__")}  # python -m
    assert set(modules) - packages - entry_points - reached_from(modules) == set()
