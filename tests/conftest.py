"""The test bed: real PostgreSQL and RabbitMQ, a fresh database and a fresh vhost per test."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from tests.services import Broker, ServiceMissing, database_url_named, find_postgres, find_rabbitmq
from woosync.stack import LOCAL_STORE_NETWORKS


def pytest_configure(config: pytest.Config) -> None:
    # The suite's stores (the simulator, the tests' own servers) listen on this machine, which
    # woosync refuses by default (docs/contract.md section 10): every Settings() built in a test
    # allows them. Processes get the variable from tests/processes.py and tests/e2e/conftest.py.
    os.environ["WOOSYNC_STORE_ALLOWED_NETWORKS"] = LOCAL_STORE_NETWORKS


def _fail_missing(exc: ServiceMissing) -> None:
    pytest.fail(f"test service missing: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """URL of a maintenance database on a server where tests may create databases."""
    try:
        url, container = find_postgres()
    except ServiceMissing as exc:
        _fail_missing(exc)
    yield url
    if container is not None:
        container.stop()  # type: ignore[attr-defined]


async def _admin(server_url: str, *statements: str) -> None:
    conn = await asyncpg.connect(server_url, timeout=10)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def template_database(pg_server_url: str) -> Iterator[str]:
    """A database with every migration applied, copied (CREATE DATABASE ... TEMPLATE) per test."""
    from shared.migrations import apply_migrations

    name = f"woosync_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    asyncio.run(_admin(pg_server_url, f'CREATE DATABASE "{name}"'))
    asyncio.run(apply_migrations(database_url_named(pg_server_url, name)))
    yield name
    asyncio.run(_admin(pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _fresh_database(pg_server_url: str, template: str | None) -> Iterator[str]:
    name = f"woosync_t_{uuid.uuid4().hex[:12]}"
    clause = f' TEMPLATE "{template}"' if template else ""
    asyncio.run(_admin(pg_server_url, f'CREATE DATABASE "{name}"{clause}'))
    try:
        yield database_url_named(pg_server_url, name)
    finally:
        asyncio.run(_admin(pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def database_url(pg_server_url: str, template_database: str) -> Iterator[str]:
    """A fresh database of this test's own, with all migrations applied."""
    yield from _fresh_database(pg_server_url, template_database)


@pytest.fixture
def empty_database_url(pg_server_url: str) -> Iterator[str]:
    """A fresh database with nothing in it (for migration tests)."""
    yield from _fresh_database(pg_server_url, None)


@pytest.fixture
def unborn_database_url(pg_server_url: str) -> Iterator[str]:
    """The URL of a database that does not exist yet (dropped after the test if it was made)."""
    name = f"woosync_u_{uuid.uuid4().hex[:12]}"
    yield database_url_named(pg_server_url, name)
    asyncio.run(_admin(pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def db_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    from shared.db import create_pool

    pool = await create_pool(database_url, min_size=1, max_size=10)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture(scope="session")
def broker() -> Iterator[Broker]:
    try:
        found = find_rabbitmq()
    except ServiceMissing as exc:
        _fail_missing(exc)
    yield found
    if found.container is not None:
        found.container.stop()  # type: ignore[attr-defined]


@pytest.fixture
def amqp_url(broker: Broker) -> Iterator[str]:
    """A fresh vhost of this test's own; its URL."""
    vhost = f"woosync_t_{uuid.uuid4().hex[:12]}"
    url = broker.add_vhost(vhost)
    try:
        yield url
    finally:
        broker.delete_vhost(vhost)
