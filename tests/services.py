"""Finding PostgreSQL and RabbitMQ for the tests, and making an isolated world for each test.

Order (DEVELOPERS brief): WOOSYNC_TEST_DATABASE_URL / WOOSYNC_TEST_AMQP_URL if set; else the local
defaults if they answer; else containers through testcontainers (a laptop with Docker); else a
clear failure. Never a skip: a test that needs a service and cannot have it fails, in CI and out.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

LOCAL_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
LOCAL_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


class ServiceMissing(Exception):
    pass


def _port_open(host: str, port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def postgres_answers(url: str) -> bool:
    import asyncpg

    async def probe() -> bool:
        try:
            conn = await asyncpg.connect(url, timeout=5)
        except Exception:
            return False
        await conn.close()
        return True

    return asyncio.run(probe())


def amqp_answers(url: str) -> bool:
    import aio_pika

    async def probe() -> bool:
        try:
            conn = await asyncio.wait_for(aio_pika.connect(url), 5)
        except Exception:
            return False
        await conn.close()
        return True

    return asyncio.run(probe())


def _docker_available() -> bool:
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


@dataclass
class Broker:
    """A RabbitMQ server and a way to make and remove vhosts on it."""

    amqp_url: str  # URL of the default vhost
    management_url: str | None = None  # http://host:15672 when the management API answers
    container: object | None = None
    _ctl: list[str] = field(default_factory=lambda: ["rabbitmqctl"])

    def url_for_vhost(self, vhost: str) -> str:
        parts = urllib.parse.urlsplit(self.amqp_url)
        return urllib.parse.urlunsplit(parts._replace(path="/" + urllib.parse.quote(vhost, safe="")))

    def _api(self, method: str, path: str, body: dict | None = None) -> None:
        parts = urllib.parse.urlsplit(self.amqp_url)
        user = urllib.parse.unquote(parts.username or "guest")
        password = urllib.parse.unquote(parts.password or "guest")
        request = urllib.request.Request(
            f"{self.management_url}/api/{path}",
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={
                "content-type": "application/json",
                "authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode(),
            },
        )
        with urllib.request.urlopen(request, timeout=30):
            pass

    def add_vhost(self, vhost: str) -> str:
        user = urllib.parse.unquote(urllib.parse.urlsplit(self.amqp_url).username or "guest")
        if self.management_url:
            quoted = urllib.parse.quote(vhost, safe="")
            self._api("PUT", f"vhosts/{quoted}", {})
            self._api("PUT", f"permissions/{quoted}/{urllib.parse.quote(user)}", {"configure": ".*", "write": ".*", "read": ".*"})
        else:
            self._run_ctl("add_vhost", vhost)
            self._run_ctl("set_permissions", "-p", vhost, user, ".*", ".*", ".*")
        return self.url_for_vhost(vhost)

    def delete_vhost(self, vhost: str) -> None:
        try:
            if self.management_url:
                self._api("DELETE", f"vhosts/{urllib.parse.quote(vhost, safe='')}")
            else:
                self._run_ctl("delete_vhost", vhost)
        except (urllib.error.URLError, subprocess.CalledProcessError, OSError):
            pass  # best effort; vhosts are uniquely named

    def _run_ctl(self, *args: str) -> None:
        if self.container is not None:
            code, output = self.container.exec(["rabbitmqctl", *args])  # type: ignore[attr-defined]
            if code != 0:
                raise subprocess.CalledProcessError(code, ["rabbitmqctl", *args], output)
            return
        subprocess.run([*self._ctl, *args], check=True, capture_output=True, timeout=60)


def _management_url_for(amqp_url: str) -> str | None:
    explicit = os.environ.get("WOOSYNC_TEST_RABBITMQ_MANAGEMENT_URL")
    if explicit:
        return explicit.rstrip("/")
    host = urllib.parse.urlsplit(amqp_url).hostname or "127.0.0.1"
    return f"http://{host}:15672" if _port_open(host, 15672) else None


def find_postgres() -> tuple[str, object | None]:
    """(maintenance database URL, container or None)."""
    explicit = os.environ.get("WOOSYNC_TEST_DATABASE_URL")
    if explicit:
        if not postgres_answers(explicit):
            raise ServiceMissing(f"WOOSYNC_TEST_DATABASE_URL={_mask(explicit)} does not answer")
        return explicit, None
    if postgres_answers(LOCAL_DATABASE_URL):
        return LOCAL_DATABASE_URL, None
    if os.environ.get("CI") != "true" and _docker_available():
        from testcontainers.postgres import PostgresContainer

        container = PostgresContainer("postgres:15-alpine", driver=None)
        container.start()
        return container.get_connection_url(), container
    raise ServiceMissing(
        "PostgreSQL is not reachable: set WOOSYNC_TEST_DATABASE_URL, start a local server on "
        "127.0.0.1:5432 (user postgres, trust auth), or install Docker so the tests can start one"
    )


def find_rabbitmq() -> Broker:
    explicit = os.environ.get("WOOSYNC_TEST_AMQP_URL")
    if explicit:
        if not amqp_answers(explicit):
            raise ServiceMissing(f"WOOSYNC_TEST_AMQP_URL={_mask(explicit)} does not answer")
        return Broker(explicit, _management_url_for(explicit))
    if amqp_answers(LOCAL_AMQP_URL):
        return Broker(LOCAL_AMQP_URL, _management_url_for(LOCAL_AMQP_URL))
    if os.environ.get("CI") != "true" and _docker_available():
        from testcontainers.rabbitmq import RabbitMqContainer

        container = RabbitMqContainer("rabbitmq:3.13-management-alpine")
        container.with_exposed_ports(15672)
        container.start()
        host = container.get_container_host_ip()
        url = f"amqp://guest:guest@{host}:{container.get_exposed_port(5672)}/"
        return Broker(url, f"http://{host}:{container.get_exposed_port(15672)}", container)
    raise ServiceMissing(
        "RabbitMQ is not reachable: set WOOSYNC_TEST_AMQP_URL, start a local broker on "
        "127.0.0.1:5672 (guest/guest), or install Docker so the tests can start one"
    )


def database_url_named(server_url: str, name: str) -> str:
    parts = urllib.parse.urlsplit(server_url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


def _mask(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.password:
        return url.replace(":" + parts.password + "@", ":***@")
    return url
