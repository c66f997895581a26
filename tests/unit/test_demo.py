"""`woosync demo` on a machine where PostgreSQL or RabbitMQ does not answer."""

from __future__ import annotations

import sys

import pytest

from shared.settings import Settings
from woosync.commands import demo

pytestmark = pytest.mark.unit

# Nothing listens on port 1: both services "do not answer" without any service being faked.
NOWHERE = dict(database_url="postgresql://postgres@127.0.0.1:1/postgres", amqp_url="amqp://guest:guest@127.0.0.1:1/")


class Console:
    def print(self, *args, **kwargs) -> None:
        pass


async def test_without_the_demo_extra_the_container_fallback_says_how_to_install_it(monkeypatch) -> None:
    monkeypatch.setattr(demo, "_docker_available", lambda: True)
    monkeypatch.setitem(sys.modules, "testcontainers.postgres", None)  # the extra is not installed
    with pytest.raises(demo.DemoError) as refused:
        await demo._find_services(Settings(_env_file=None, **NOWHERE), Console())
    message = str(refused.value)
    assert "PostgreSQL" in message and "RabbitMQ" in message
    assert "pip install -e '.[demo]'" in message and "woosync[demo]" in message


async def test_without_docker_the_demo_names_the_service_and_the_ways_to_get_one(monkeypatch) -> None:
    monkeypatch.setattr(demo, "_docker_available", lambda: False)
    with pytest.raises(demo.DemoError) as refused:
        await demo._find_services(Settings(_env_file=None, **NOWHERE), Console())
    message = str(refused.value)
    assert message.startswith("PostgreSQL does not answer at WOOSYNC_DATABASE_URL")
    assert "'.[demo]'" in message
