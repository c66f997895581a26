"""The HTTP server of the status and webhooks services: uvicorn with its httptools (C) parser,
bounded against clients that would exhaust its memory or hold its connections.

uvicorn's httptools protocol reads a request's headers without limit and waits for them forever:
four connections sending a hundred 1 MB header lines grew the service by 400 MB, and sockets sending
a header a byte at a time stayed open. `BoundedHttpToolsProtocol` keeps the fast parser and adds:

- header limits: a request head (request line and header lines) of at most `max_header_bytes`
  and `max_headers` lines; beyond either, the answer is 431 and the connection closes;
- a header deadline: a request's head must arrive within `header_timeout_s` of the connection
  opening, or of its first byte after an idle keep-alive wait; otherwise 408 (or a plain close
  when nothing came) and the connection closes;
- a connection cap: beyond `max_connections` open connections, a new one gets 503 and is closed
  unread (uvicorn's `limit_concurrency` answers 503 to requests at the same limit).

Idle keep-alive connections close after `keep_alive_s` (uvicorn's `timeout_keep_alive`). A request
body is read as the application asks for it; each application caps its bodies (413: the status
API in services/status/http.py, deliveries in services/webhooks/app.py). Responses are never
timed: an event stream lives as long as its queue (docs/contract.md section 7).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import httptools
import uvicorn
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from shared.settings import Settings

log = logging.getLogger(__name__)

# After refusing a request the server stops writing, then reads and drops what the client still
# sends for this long before it closes: closing with unread data would reset the connection, and
# the client would lose the answer it has not read yet (a client sends its whole head first).
LINGER_S = 1.0


@dataclass(frozen=True)
class HttpLimits:
    max_header_bytes: int
    max_headers: int
    header_timeout_s: float
    max_connections: int

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpLimits:
        return cls(
            max_header_bytes=settings.http_max_header_bytes,
            max_headers=settings.http_max_headers,
            header_timeout_s=settings.http_header_timeout_s,
            max_connections=settings.http_max_connections,
        )


class QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: it re-raises a caught SIGTERM after draining,
    which would end the process with -15 instead of exiting 0; the service's stop event drives
    shutdown."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def listen(host: str, port: int) -> socket.socket:
    """Bind before anything else connects, so a taken port is a clear start-up error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def server_config(app: Any, settings: Settings, *, graceful_shutdown_s: float) -> uvicorn.Config:
    """uvicorn's configuration for a woosync HTTP service: our protocol and limits, our logging."""
    limits = HttpLimits.from_settings(settings)
    return uvicorn.Config(
        app,
        loop="none",  # run_service already installed uvloop
        http=functools.partial(BoundedHttpToolsProtocol, limits=limits),  # type: ignore[arg-type]
        ws="none",  # the API has no WebSocket route: no upgrade path to bound as well
        lifespan="off",
        access_log=False,
        log_config=None,  # keep shared.logs' handlers
        timeout_keep_alive=settings.http_keep_alive_s,  # type: ignore[arg-type]  # a float works
        limit_concurrency=limits.max_connections,
        timeout_graceful_shutdown=graceful_shutdown_s,
    )


class _HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing a request head over the limits."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header limits, a header deadline and a connection cap."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        limits: HttpLimits,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits
        self._header_deadline: asyncio.TimerHandle | None = None
        self._linger: asyncio.TimerHandle | None = None
        self._refused = False  # answered and closing: what still comes is dropped
        self._reading_head = False  # from a request's first byte to the end of its headers
        # Bytes received while the head was incomplete (the parser holds them, whole header lines
        # or not): checked after every read, so one read (at most the transport's read size) past
        # the limit is the most a connection ever holds.
        self._head_received = 0
        self._heads_read = 0

    # ------------------------------------------------------------------ connection
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            log.warning("refusing a connection: %d are open (WOOSYNC_HTTP_MAX_CONNECTIONS=%d)",
                        len(self.connections) - 1, self.limits.max_connections)
            self._refuse(503, "too many connections, try again later")
            return
        self._start_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_deadline()
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """uvicorn's, with the limits: feed the parser, then check the head in progress."""
        if self._refused:
            return  # lingering after an answer: read and drop
        was_idle = self.timeout_keep_alive_task is not None
        heads_read = self._heads_read
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _HeadTooLarge):
                self._refuse(431, str(exc.__context__))
            else:
                self._invalid_request()
            return
        except httptools.HttpParserError:
            self._invalid_request()
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():  # never with ws="none"
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._reading_head:
            self._head_received += len(data)
            if self._head_received > self.limits.max_header_bytes:
                self._refuse(431, f"request headers are larger than {self.limits.max_header_bytes} bytes")
                return
        if was_idle and self._heads_read == heads_read:
            self._start_header_deadline()  # after a keep-alive wait, bytes that are not yet a head

    # ------------------------------------------------------------------ parser callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_head = True
        self._head_received = 0
        self._start_header_deadline()

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._heads_read += 1
        self._cancel_header_deadline()
        self._check_head()
        super().on_headers_complete()

    def _check_head(self) -> None:
        """The head is complete (it may have come in one read): its exact size and line count.
        Checked once here rather than per header line: the per-line callbacks are the hot path."""
        if len(self.headers) > self.limits.max_headers:
            raise _HeadTooLarge(f"a request has more than {self.limits.max_headers} header lines")
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)  # "name: value\r\n"
        if size > self.limits.max_header_bytes:
            raise _HeadTooLarge(f"request headers are larger than {self.limits.max_header_bytes} bytes")

    # ------------------------------------------------------------------ deadline and answers
    def _start_header_deadline(self) -> None:
        if self._header_deadline is None and not self._refused:
            self._header_deadline = self.loop.call_later(self.limits.header_timeout_s, self._header_timed_out)

    def _cancel_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _header_timed_out(self) -> None:
        self._header_deadline = None
        if self._reading_head:
            self._refuse(408, f"request headers not received within {self.limits.header_timeout_s:g} s")
        else:  # connected, or kept alive, and no request came: nothing to answer
            self._refused = True
            self.transport.close()

    def _invalid_request(self) -> None:
        message = "Invalid HTTP request received."
        self.logger.warning(message)
        self.send_400_response(message)

    def _refuse(self, status: int, reason: str) -> None:
        """Answer `status` with `connection: close`, then close; nothing more is read as requests."""
        self._refused = True
        self._cancel_header_deadline()
        self._unset_keepalive_if_required()
        if self.transport.is_closing():
            return
        if status != 503:
            log.info("%s from %s: %s; closing the connection", status, _peer(self.client), reason)
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()  # a response is under way: an answer now would corrupt it
            return
        self.transport.write(_plain_response(status, reason))
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self._linger = self.loop.call_later(LINGER_S, self.transport.close)
        else:
            self.transport.close()


def _plain_response(status: int, reason: str) -> bytes:
    body = f"{reason}\n".encode()
    head = (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\ncontent-type: text/plain; charset=utf-8\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n")
    return head.encode("ascii") + body


def _peer(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "a client"
