"""What a plain `pip install` carries: the product's dependencies, never the tests' tools."""

from __future__ import annotations

import re
import tomllib

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


def test_the_library_packages_hold_no_test_support() -> None:
    # Test helpers live under tests/: nothing in the shipped packages is named for fixtures.
    shipped = [path for package in ("shared", "services", "woosync") for path in (REPO / package).rglob("*.py")]
    assert shipped and not [path for path in shipped if "fixture" in path.name]
