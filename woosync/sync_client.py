"""The client side of a sync: request one over RabbitMQ, then follow it through the status API.

Used by `woosync sync` (woosync/commands/sync.py); kept apart so that the demo and tests can
drive a sync the way a user's program would.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from typing import Any

import httpx
import orjson

from shared.amqp import PublishFailed, connect, open_publisher_channel, publish_sync_request
from shared.messages import StartSync
from shared.settings import amqp_user_of
from shared.states import TERMINAL_QUEUE_STATES

DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"
EXIT_FAILED, EXIT_USAGE = 1, 2


class ReplyProblem(Exception):
    """The producer refused the request, or did not answer in time (exit 1)."""


class ApiProblem(Exception):
    """The status API refused or could not be asked; `exit_code` says whose fault it is."""

    def __init__(self, message: str, *, exit_code: int = EXIT_USAGE, transient: bool = False) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.transient = transient  # unreachable or 5xx: worth asking again while watching


async def request_sync(amqp_url: str, request: StartSync, *, reply_timeout: float = 30.0) -> dict[str, Any]:
    """Publish `request` and return the producer's reply {queue_id, state, total_count}.

    The reply comes on RabbitMQ's direct reply-to pseudo-queue: no queue to declare or clean up,
    and the reply reaches only this connection. Raises ReplyProblem for {"error": ...} or silence."""
    correlation_id = uuid.uuid4().hex
    try:
        connection = await connect(amqp_url, name="woosync sync start")
    except Exception as exc:  # the first connect: wrong URL, broker down, refused credentials
        raise ReplyProblem(f"cannot connect to RabbitMQ (WOOSYNC_AMQP_URL): {exc}") from exc
    try:
        channel = await open_publisher_channel(connection)
        reply: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

        async def on_reply(message: Any) -> None:
            if message.correlation_id != correlation_id or reply.done():
                return
            try:
                body = orjson.loads(message.body)
            except orjson.JSONDecodeError:
                body = {"error": f"the producer answered something that is not JSON: {message.body[:200]!r}"}
            reply.set_result(body if isinstance(body, dict) else {"error": f"unexpected reply: {body!r}"})

        # Consuming the pseudo-queue (no-ack) must come before publishing with reply_to on this channel.
        replies = await channel.get_queue(DIRECT_REPLY_TO, ensure=False)
        await replies.consume(on_reply, no_ack=True)
        try:
            await publish_sync_request(channel, request, reply_to=DIRECT_REPLY_TO, correlation_id=correlation_id,
                                       user_id=amqp_user_of(amqp_url))
        except PublishFailed as exc:
            raise ReplyProblem(f"{exc} (is the topology declared? start 'woosync run producer' once)") from exc
        try:
            answer = await asyncio.wait_for(reply, reply_timeout)
        except asyncio.TimeoutError:
            raise ReplyProblem(
                f"no answer from the producer within {reply_timeout:g} s: is 'woosync run producer' running? "
                "The request stays queued and will be processed when a producer starts."
            ) from None
    finally:
        await connection.close()
    if answer.get("error"):
        raise ReplyProblem(f"the producer refused the sync request: {answer['error']}")
    if not answer.get("queue_id"):
        raise ReplyProblem(f"the producer's answer has no queue_id: {answer!r}")
    return answer


class StatusApi:
    """The few status API calls the CLI makes."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.AsyncClient(
            base_url=self.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            response = await self._client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise ApiProblem(
                f"cannot reach the status API at {self.base_url} ({type(exc).__name__}: {exc}): "
                "is 'woosync run status' running? (--api-url or WOOSYNC_API_URL)",
                transient=True,
            ) from exc
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if isinstance(payload, dict) and payload.get("success") is True:
            return payload["data"]
        message = payload.get("error") if isinstance(payload, dict) else None
        message = message or f"HTTP {response.status_code}"
        if response.status_code == 401:
            raise ApiProblem(f"the status API refused the token: {message} (WOOSYNC_API_TOKEN or --token)")
        if response.status_code == 404:
            raise ApiProblem(f"{message} (a token sees only its own organisation's queues)")
        if response.status_code >= 500:
            raise ApiProblem(f"the status API failed: {message}", exit_code=EXIT_FAILED, transient=True)
        raise ApiProblem(f"the status API refused the request: {message}")

    async def queue_status(self, queue_id: str) -> dict[str, Any]:
        return await self._call("GET", f"/api/v1/sync/queues/{queue_id}")

    async def start_preview(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST /api/v1/sync/preview (body as a sync's start): the new preview queue's status."""
        return await self._call("POST", "/api/v1/sync/preview", body)

    async def retry(self, queue_id: str, *, requested_by: str | None = None) -> dict[str, Any]:
        return await self._call("POST", f"/api/v1/sync/queues/{queue_id}/retry", {"requested_by": requested_by})

    async def pause(self, queue_id: str, *, requested_by: str | None = None) -> dict[str, Any]:
        return await self._call("POST", f"/api/v1/sync/queues/{queue_id}/pause", {"requested_by": requested_by})

    async def resume(self, queue_id: str, *, requested_by: str | None = None) -> dict[str, Any]:
        return await self._call("POST", f"/api/v1/sync/queues/{queue_id}/resume", {"requested_by": requested_by})

    async def cancel(self, queue_id: str, *, requested_by: str | None = None) -> dict[str, Any]:
        return await self._call("POST", f"/api/v1/sync/queues/{queue_id}/cancel", {"requested_by": requested_by})


def _duration(seconds: float | int | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def remaining(status: dict[str, Any]) -> int:
    return int(status["draft_count"]) + int(status.get("queued_count", 0)) + int(status["processing_count"])


def describe(status: dict[str, Any]) -> str:
    """One plain line: no colour, no control codes (logs, pipes, CI)."""
    line = (
        f"queue {status['id']}: {status['state']} {status['progress']}% | "
        f"done {status['done_count']}, failed {status['failed_count']}, cancelled {status['cancelled_count']}, "
        f"remaining {remaining(status)} of {status['total_count']} ({int(status.get('queued_count', 0))} queued) | "
        f"{float(status['items_per_min'] or 0):.0f}/min"
    )
    if status["state"] not in TERMINAL_QUEUE_STATES:
        line += f", ETA {_duration(status.get('eta_seconds'))}"
    if status.get("is_action_required"):
        line += " | action required"
    return line


def summary(status: dict[str, Any], elapsed: float) -> str:
    verdict = {"done": "finished", "partial": "finished with failures", "failed": "failed",
               "cancelled": "was cancelled"}.get(status["state"], status["state"])
    text = (
        f"sync {status['id']} {verdict}: {status['done_count']} done, {status['failed_count']} failed, "
        f"{status['cancelled_count']} cancelled of {status['total_count']} line(s), watched for {_duration(elapsed)}"
    )
    if status["failed_count"]:
        text += f"\n  see the failures: GET /api/v1/sync/queues/{status['id']}/lines?state=failed" \
                f"; retry them: woosync sync retry {status['id']}"
    if status.get("error_message"):
        text += f"\n  error: {status['error_message']}"
    return text


async def _poll_until_terminal(api: StatusApi, queue_id: str, on_status, *, poll_interval: float) -> dict[str, Any]:
    """Call on_status(status) after every poll; return the terminal status. A status API that
    goes away for a while (restart) is waited for, up to a minute, not fatal."""
    unreachable_since: float | None = None
    while True:
        try:
            status = await api.queue_status(queue_id)
        except ApiProblem as exc:
            if not exc.transient:
                raise
            unreachable_since = unreachable_since or time.monotonic()
            if time.monotonic() - unreachable_since > 60:
                raise
            await asyncio.sleep(1.0)
            continue
        unreachable_since = None
        on_status(status)
        if status["state"] in TERMINAL_QUEUE_STATES:
            return status
        await asyncio.sleep(poll_interval)


async def watch(api: StatusApi, queue_id: str, *, as_json: bool, interval: float | None) -> dict[str, Any]:
    """Follow a queue until it is terminal: a rich progress bar on a terminal, plain lines every
    `interval` seconds otherwise, nothing but the final JSON object with `as_json`."""
    started = time.monotonic()
    if as_json:
        final = await _poll_until_terminal(api, queue_id, lambda status: None, poll_interval=0.5)
        print(orjson.dumps(final).decode())
        return final
    if sys.stdout.isatty():
        final = await _watch_with_bar(api, queue_id)
    else:
        final = await _watch_plain(api, queue_id, interval or 2.0)
    print(summary(final, time.monotonic() - started))
    return final


async def _watch_plain(api: StatusApi, queue_id: str, interval: float) -> dict[str, Any]:
    last_printed = 0.0
    last_line = ""

    def on_status(status: dict[str, Any]) -> None:
        nonlocal last_printed, last_line
        line = describe(status)
        now = time.monotonic()
        terminal = status["state"] in TERMINAL_QUEUE_STATES
        if terminal or (now - last_printed >= interval and line != last_line) or now - last_printed >= 30:
            print(line, flush=True)
            last_printed, last_line = now, line

    return await _poll_until_terminal(api, queue_id, on_status, poll_interval=min(interval, 0.5))


async def _watch_with_bar(api: StatusApi, queue_id: str) -> dict[str, Any]:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

    console = Console()
    columns = (
        TextColumn("[bold]{task.fields[state]:<10}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("[green]done {task.fields[done]}[/] [red]failed {task.fields[failed]}[/] "
                   "remaining {task.fields[remaining]} ({task.fields[queued]} queued) | {task.fields[rate]}/min | ETA {task.fields[eta]}"),
    )
    with Progress(*columns, console=console, transient=False, refresh_per_second=4) as progress:
        task = progress.add_task(queue_id, total=None, state="", done=0, failed=0, remaining=0, queued=0, rate=0, eta="?")

        def on_status(status: dict[str, Any]) -> None:
            finished = status["done_count"] + status["failed_count"] + status["cancelled_count"]
            progress.update(
                task,
                total=status["total_count"] or None,
                completed=finished,
                state=status["state"],
                done=status["done_count"],
                failed=status["failed_count"],
                remaining=remaining(status),
                queued=int(status.get("queued_count", 0)),
                rate=f"{float(status['items_per_min'] or 0):.0f}",
                eta="-" if status["state"] in TERMINAL_QUEUE_STATES else _duration(status.get("eta_seconds")),
            )

        return await _poll_until_terminal(api, queue_id, on_status, poll_interval=0.5)
