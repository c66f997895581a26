"""Finding PostgreSQL and RabbitMQ for the demo and the benchmark on a developer machine, and
giving each run its own database and RabbitMQ vhost so it never mixes with real work."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request

import asyncpg


def with_database(url: str, name: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


def with_vhost(url: str, vhost: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + urllib.parse.quote(vhost, safe="")))


async def postgres_answers(url: str) -> str | None:
    """None when the server answers, else why not."""
    try:
        conn = await asyncpg.connect(with_database(url, "postgres"), timeout=5)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


async def drop_database(url: str) -> None:
    name = urllib.parse.urlsplit(url).path.lstrip("/")
    conn = await asyncpg.connect(with_database(url, "postgres"), timeout=10)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def queue_messages(amqp_url: str, vhost: str, queue: str) -> int | None:
    """A queue's messages, ready and unacknowledged, from the management API (its figures are
    refreshed every few seconds); None when the API does not answer or has no figure yet (a
    queue younger than its statistics interval)."""
    try:
        answer = _management(amqp_url, "GET", f"queues/{urllib.parse.quote(vhost, safe='')}/{urllib.parse.quote(queue, safe='')}")
    except OSError:
        return None
    messages = answer.get("messages") if isinstance(answer, dict) else None
    return int(messages) if messages is not None else None


def _management(url: str, method: str, path: str, body: dict | None = None) -> object:
    parts = urllib.parse.urlsplit(url)
    user = urllib.parse.unquote(parts.username or "guest")
    password = urllib.parse.unquote(parts.password or "guest")
    request = urllib.request.Request(
        f"http://{parts.hostname}:15672/api/{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"content-type": "application/json",
                 "authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        text = answer.read()
    return json.loads(text) if text else None


def create_vhost(amqp_url: str, vhost: str) -> str | None:
    """The URL of a new vhost, through the management API or a local rabbitmqctl; None if
    neither is available (the caller then uses the URL's own vhost)."""
    user = urllib.parse.unquote(urllib.parse.urlsplit(amqp_url).username or "guest")
    quoted = urllib.parse.quote(vhost, safe="")
    try:
        _management(amqp_url, "PUT", f"vhosts/{quoted}", {})
        _management(amqp_url, "PUT", f"permissions/{quoted}/{urllib.parse.quote(user)}",
                    {"configure": ".*", "write": ".*", "read": ".*"})
        return with_vhost(amqp_url, vhost)
    except (urllib.error.URLError, OSError):
        pass
    if shutil.which("rabbitmqctl"):
        try:
            subprocess.run(["rabbitmqctl", "add_vhost", vhost], check=True, capture_output=True, timeout=60)
            subprocess.run(["rabbitmqctl", "set_permissions", "-p", vhost, user, ".*", ".*", ".*"],
                           check=True, capture_output=True, timeout=60)
            return with_vhost(amqp_url, vhost)
        except (subprocess.SubprocessError, OSError):
            return None
    return None


def delete_vhost(amqp_url: str, vhost: str) -> bool:
    try:
        _management(amqp_url, "DELETE", f"vhosts/{urllib.parse.quote(vhost, safe='')}")
        return True
    except (urllib.error.URLError, OSError):
        pass
    if shutil.which("rabbitmqctl"):
        return subprocess.run(["rabbitmqctl", "delete_vhost", vhost], capture_output=True, timeout=60).returncode == 0
    return False
