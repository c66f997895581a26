"""The webhooks service's HTTP edge (docs/contract.md section 10): one route,
`POST /woocommerce/{store token}`, as a plain ASGI application.

A delivery goes through these checks in order; the first that fails answers, logs one line
without the body, and changes nothing:

    path is not /woocommerce/<token>                              404
    not a POST                                                    405
    Content-Length above WOOSYNC_WEBHOOKS_MAX_BODY_BYTES          413 (before reading the body)
    token of no store                                             404
    body above the limit (read as it comes)                       413
    no X-WC-Webhook-Signature: the store's ping                   200, nothing done
                               anything else                      401
    a topic woosync did not install for this store                401
    signature is not HMAC-SHA256(raw body, that webhook's secret) 401 (compared in constant time)
    no X-WC-Webhook-Delivery-ID of 32 hex                         400
    the store is past its rate (WOOSYNC_WEBHOOKS_STORE_RATE)      429
    body is not what the topic sends                              400
    database or broker unavailable                                503
    accepted, or the same delivery again                          200

Nothing of the body is parsed before its signature verified. Looking a token up costs one
indexed read, cached for a few seconds (known and unknown tokens alike).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from prometheus_client import CollectorRegistry, Counter, Histogram

from services.webhooks.handler import DeliveryHandler, InvalidDelivery, NotDurable
from shared.credentials import CredentialsCipher
from shared.db import translate_db_error
from shared.repository import webhooks as webhook_rows
from shared.repository.webhooks import WebhookEndpoint, WebhookSecretUnavailable
from shared.woocommerce import webhooks as wc

log = logging.getLogger(__name__)

ROUTE = re.compile(r"/woocommerce/([A-Za-z0-9_-]{43})")
# How long a token's lookup (found or not) is reused, and how many are kept.
LOOKUP_TTL_S = 10.0
LOOKUP_CACHE_MAX = 10_000

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class WebhookMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.deliveries = Counter("woosync_webhook_deliveries_total",
                                  "Webhook deliveries by answer status and outcome", ["status", "outcome"],
                                  registry=registry)
        self.seconds = Histogram("woosync_webhook_delivery_seconds", "Time to answer a webhook delivery",
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5), registry=registry)


class Endpoints:
    """Token and secret lookups, cached briefly (a flood of one unknown token costs one read per TTL)."""

    def __init__(self, pool: asyncpg.Pool, cipher: CredentialsCipher | None) -> None:
        self._pool = pool
        self._cipher = cipher
        self._stores: dict[str, tuple[float, bool]] = {}
        self._endpoints: dict[tuple[str, str], tuple[float, WebhookEndpoint | None]] = {}

    async def store_known(self, token: str) -> bool:
        cached = self._stores.get(token)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        known = await webhook_rows.store_of_token(self._pool, token) is not None
        _remember(self._stores, token, known)
        return known

    async def endpoint(self, token: str, topic: str) -> WebhookEndpoint | None:
        cached = self._endpoints.get((token, topic))
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        found = await webhook_rows.endpoint_for(self._pool, token, topic, cipher=self._cipher)
        _remember(self._endpoints, (token, topic), found)
        return found


def _remember(cache: dict[Any, tuple[float, Any]], key: Any, value: Any) -> None:
    if len(cache) >= LOOKUP_CACHE_MAX:
        cache.clear()  # crude but bounded: a flood of random tokens cannot grow it
    cache[key] = (time.monotonic() + LOOKUP_TTL_S, value)


class StoreRates:
    """A token bucket per store: `rate` signed deliveries per second after a burst of `burst`.
    Per process: N replicas accept N times the rate."""

    def __init__(self, rate: float, burst: int) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._buckets: dict[Any, tuple[float, float]] = {}

    def allow(self, store: Any) -> bool:
        now = time.monotonic()
        tokens, then = self._buckets.get(store, (self._burst, now))
        tokens = min(self._burst, tokens + (now - then) * self._rate)
        if tokens < 1:
            self._buckets[store] = (tokens, now)
            return False
        self._buckets[store] = (tokens - 1, now)
        return True


class WebhooksApp:
    def __init__(self, endpoints: Endpoints, handler: DeliveryHandler, rates: StoreRates, metrics: WebhookMetrics,
                 *, max_body_bytes: int) -> None:
        self._endpoints = endpoints
        self._handler = handler
        self._rates = rates
        self._metrics = metrics
        self._max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        headers = _headers(scope)
        where = _describe(scope, headers)
        try:
            status, outcome = 200, await self._answer(scope, headers, receive)
            reason = outcome
            level = logging.INFO
        except Refused as refused:
            status, outcome, reason = refused.status, f"refused_{refused.status}", refused.reason
            level = logging.WARNING if status in (401, 413, 429, 503) else logging.INFO
        log.log(level, "%d %s: %s", status, where, reason)
        self._metrics.deliveries.labels(str(status), outcome).inc()
        self._metrics.seconds.observe(time.perf_counter() - started)
        await _respond(send, status, reason if status != 200 else "ok")

    async def _answer(self, scope: Scope, headers: dict[str, str], receive: Receive) -> str:
        match = ROUTE.fullmatch(scope["path"])
        if match is None:
            raise Refused(404, "no such path")
        if scope["method"] != "POST":
            raise Refused(405, "deliveries are POSTed")
        token = match.group(1)
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self._max_body):
            raise Refused(413, f"body larger than {self._max_body} bytes (WOOSYNC_WEBHOOKS_MAX_BODY_BYTES)")
        try:
            if not await self._endpoints.store_known(token):
                raise Refused(404, "unknown store")
            body = await _read_body(receive, self._max_body)
            claimed = headers.get(wc.SIGNATURE_HEADER)
            if claimed is None:
                if wc.is_ping(body, headers.get("content-type")):
                    return "ping"
                raise Refused(401, "unsigned delivery")
            topic = headers.get(wc.TOPIC_HEADER, "")
            endpoint = await self._endpoints.endpoint(token, topic) if topic in wc.TOPICS else None
            if endpoint is None:
                raise Refused(401, f"no webhook of topic {topic[:40]!r} is installed for this store")
            if not wc.signature_matches(body, endpoint.secret, claimed):
                raise Refused(401, "signature does not match the body")
        except Refused:
            raise
        except Exception as exc:
            # Any database failure (an outage as shared.db sorts it, or a PostgreSQL error) is the
            # store's to retry: 503, never a crash.
            if not (isinstance(exc, (asyncpg.PostgresError, WebhookSecretUnavailable)) or translate_db_error(exc)):
                raise
            raise Refused(503, f"cannot look the store up: {type(exc).__name__}: {exc}") from None
        delivery_id = headers.get(wc.DELIVERY_ID_HEADER, "")
        if not wc.DELIVERY_ID.fullmatch(delivery_id):
            raise Refused(400, "a signed delivery without an X-WC-Webhook-Delivery-ID")
        if not self._rates.allow(endpoint.store_id):
            raise Refused(429, "this store sends more deliveries than WOOSYNC_WEBHOOKS_STORE_RATE allows")
        try:
            outcome = await self._handler.handle(endpoint, delivery_id, body)
        except InvalidDelivery as exc:
            raise Refused(400, str(exc)) from None
        except NotDurable as exc:
            raise Refused(503, f"not made durable, nothing kept: {exc}") from None
        return outcome if outcome == "repeated" else f"{endpoint.topic} {outcome}"


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Refused(400, "the client went away before sending its body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise Refused(413, f"body larger than {limit} bytes (WOOSYNC_WEBHOOKS_MAX_BODY_BYTES)")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _headers(scope: Scope) -> dict[str, str]:
    """Header names lower-cased; the first of a repeated header wins."""
    found: dict[str, str] = {}
    for name, value in scope["headers"]:
        found.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return found


def _describe(scope: Scope, headers: dict[str, str]) -> str:
    """A delivery in a log line: never its body, its signature, or the whole store token."""
    match = ROUTE.fullmatch(scope["path"])
    path = f"/woocommerce/{match.group(1)[:6]}..." if match else scope["path"][:80]
    client = scope.get("client")
    peer = f"{client[0]}" if client else "?"
    parts = [f"{scope['method']} {path} from {peer}"]
    for header, label in ((wc.TOPIC_HEADER, "topic"), (wc.DELIVERY_ID_HEADER, "delivery"),
                          (wc.WEBHOOK_ID_HEADER, "webhook")):
        if header in headers:
            parts.append(f"{label} {headers[header][:64]!r}")
    return ", ".join(parts)


async def _respond(send: Send, status: int, text: str) -> None:
    body = f"{text}\n".encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
