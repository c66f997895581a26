"""The simulator's webhooks (docs/contract.md section 10), faithful to a WooCommerce 10 store
(tests/fixtures/woocommerce-fixtures/webhooks):

- the REST resource `/wp-json/wc/v3/webhooks[/<id>]`: list (`status` filter), create (201, then a
  ping to the new webhook before answering), read, update (PUT/POST/PATCH; a ping when an active
  webhook's delivery_url changes), delete (only with `force=true`, else 501). The secret is never
  returned. Errors as the store words them: `woocommerce_rest_shop_webhook_invalid_topic`,
  `..._invalid_delivery_url`, `rest_missing_callback_param`, `rest_invalid_param` (status),
  `..._invalid_id` (404);
- deliveries as the store sends them: the request head byte for byte in the store's header order,
  the body in WordPress' JSON escaping, `X-WC-Webhook-Signature` = base64 HMAC-SHA256 of the body
  with the webhook's secret, `X-WC-Webhook-Delivery-ID` the same for one webhook within one second;
  a non-2xx/301/302 answer counts a failure, and past 5 the webhook becomes `disabled`;
- changes to its data over time, through control routes beside `/__simulator/stats`:
  `POST /__simulator/customers/<id>` (a JSON object merged into the customer, then customer.updated)
  and `DELETE /__simulator/customers/<id>` (then customer.deleted with `{"id": N}`). A changed
  customer is served changed by GET /customers/<id>; collection pages keep their cached form.

State lives in the serving process: use one worker (the default) with webhooks.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import orjson

from shared.woocommerce.webhooks import signature
from woosync.simulator import rest
from woosync.simulator.data import WOOCOMMERCE_VERSION
from woosync.simulator.rest import RestError

log = logging.getLogger(__name__)

USER_AGENT = f"WooCommerce/{WOOCOMMERCE_VERSION} Hookshot (WordPress/6.8.3)"
# The WordPress hooks behind each topic, as the store lists them.
HOOKS: dict[str, list[str]] = {
    "customer.created": ["user_register", "woocommerce_created_customer", "woocommerce_new_customer"],
    "customer.updated": ["updated_user_meta", "woocommerce_update_customer"],
    "customer.deleted": ["delete_user"],
    "order.created": ["woocommerce_new_order"],
    "order.updated": ["woocommerce_update_order", "woocommerce_order_refunded"],
    "order.deleted": ["wp_trash_post"],
    "order.restored": ["untrashed_post"],
}
STATUSES = ("active", "paused", "disabled")
MAX_FAILURES = 5  # woocommerce_max_webhook_delivery_failures
DELIVERY_TIMEOUT_S = 5.0
_WP_HASH_SALT = b"simulator-wp-hash-salt"


@dataclass
class Webhook:
    id: int
    name: str
    status: str
    topic: str
    delivery_url: str
    secret: str
    created: str
    modified: str | None = None
    failure_count: int = 0

    def document(self, site_url: str) -> dict[str, Any]:
        resource, _, event = self.topic.partition(".")
        link = f"{site_url}/wp-json/wc/v3/webhooks"
        return {
            "id": self.id, "name": self.name, "status": self.status, "topic": self.topic,
            "resource": resource, "event": event, "hooks": HOOKS.get(self.topic, []),
            "delivery_url": self.delivery_url,
            "date_created": self.created, "date_created_gmt": self.created,
            "date_modified": self.modified, "date_modified_gmt": self.modified,
            "_links": {"self": [{"href": f"{link}/{self.id}",
                                 "targetHints": {"allow": ["GET", "POST", "PUT", "PATCH", "DELETE"]}}],
                       "collection": [{"href": link}]},
        }


@dataclass
class DeliveryResult:
    webhook_id: int
    status: int | None  # None: no answer


@dataclass
class SimulatedWebhooks:
    """The store's webhooks and the data changes that fire them."""

    site_url: Any  # a callable giving the site URL (it is known once the server listens)
    hooks: dict[int, Webhook] = field(default_factory=dict)
    next_id: int = 1
    customer_changes: dict[int, dict[str, Any]] = field(default_factory=dict)
    deleted_customers: set[int] = field(default_factory=set)
    deliveries: list[DeliveryResult] = field(default_factory=list)

    # ------------------------------------------------------------------ the REST resource

    async def respond(self, method: str, webhook_id: int | None, query: dict[str, Any], body: bytes) -> tuple[int, Any]:
        """(status, JSON document) of a request to the resource; RestError for the store's errors."""
        if webhook_id is None:
            if method in ("GET", "HEAD"):
                return 200, self._list(query)
            if method == "POST":
                return 201, await self._create(_json_object(body))
            raise rest.no_route()
        hook = self.hooks.get(webhook_id)
        if hook is None:
            raise RestError(404, "woocommerce_rest_shop_webhook_invalid_id", "ID is invalid.")
        if method in ("GET", "HEAD"):
            return 200, hook.document(self.site_url())
        if method in ("POST", "PUT", "PATCH"):
            return 200, await self._update(hook, _json_object(body))
        if method == "DELETE":
            if str(query.get("force", "")).lower() not in ("true", "1"):
                raise RestError(501, "woocommerce_rest_trash_not_supported", "Webhooks do not support trashing.")
            del self.hooks[webhook_id]
            return 200, hook.document(self.site_url())
        raise rest.no_route()

    def _list(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        wanted = query.get("status", "all")
        if wanted not in ("all", *STATUSES):
            raise RestError(400, "rest_invalid_param", "Invalid parameter(s): status",
                            {"params": {"status": "status is not one of all, active, paused, and disabled."}})
        hooks = [hook for hook in self.hooks.values() if wanted == "all" or hook.status == wanted]
        return [hook.document(self.site_url()) for hook in sorted(hooks, key=lambda h: -h.id)]

    async def _create(self, fields: dict[str, Any]) -> dict[str, Any]:
        missing = [name for name in ("topic", "delivery_url") if name not in fields]
        if missing:
            raise RestError(400, "rest_missing_callback_param", f"Missing parameter(s): {', '.join(missing)}",
                            {"params": missing})
        _check_status(fields)
        if fields["topic"] not in HOOKS and not str(fields["topic"]).startswith(("action.woocommerce_", "action.wc_")):
            raise RestError(400, "woocommerce_rest_shop_webhook_invalid_topic",
                            "Webhook topic is required and must be valid.")
        _check_delivery_url(fields["delivery_url"])
        now = _now()
        hook = Webhook(id=self.next_id, name=str(fields.get("name") or f"Webhook created on {now}"),
                       status=str(fields.get("status") or "active"), topic=str(fields["topic"]),
                       delivery_url=str(fields["delivery_url"]), secret=str(fields.get("secret") or ""), created=now)
        self.next_id += 1
        self.hooks[hook.id] = hook
        if hook.status == "active":
            await self._ping(hook)  # before the create call answers; its failure does not fail it
        return hook.document(self.site_url())

    async def _update(self, hook: Webhook, fields: dict[str, Any]) -> dict[str, Any]:
        _check_status(fields)
        if "topic" in fields and fields["topic"] not in HOOKS:
            raise RestError(400, "woocommerce_rest_shop_webhook_invalid_topic", "Webhook topic must be valid.")
        if "delivery_url" in fields:
            _check_delivery_url(fields["delivery_url"])
        url_changed = "delivery_url" in fields and fields["delivery_url"] != hook.delivery_url
        for name in ("name", "status", "topic", "delivery_url", "secret"):
            if name in fields:
                setattr(hook, name, str(fields[name]))
        hook.modified = _now()
        if url_changed and hook.status == "active":
            await self._ping(hook)
        return hook.document(self.site_url())

    # ------------------------------------------------------------------ data changes

    def customer_document(self, customer_id: int, document: dict[str, Any]) -> dict[str, Any]:
        changes = self.customer_changes.get(customer_id)
        return {**document, **changes} if changes else document

    def customer_deleted(self, customer_id: int) -> bool:
        return customer_id in self.deleted_customers

    async def change_customer(self, customer_id: int, document: dict[str, Any], changes: dict[str, Any]) -> list[DeliveryResult]:
        merged = self.customer_changes.setdefault(customer_id, {})
        for name, value in changes.items():
            if isinstance(value, dict) and isinstance(document.get(name), dict):
                merged[name] = {**document[name], **merged.get(name, {}), **value}
            else:
                merged[name] = value
        merged["date_modified"] = merged["date_modified_gmt"] = _now()
        return await self.deliver("customer.updated", self.customer_document(customer_id, document))

    async def delete_customer(self, customer_id: int) -> list[DeliveryResult]:
        self.deleted_customers.add(customer_id)
        return await self.deliver("customer.deleted", {"id": customer_id})

    # ------------------------------------------------------------------ deliveries

    async def deliver(self, topic: str, payload: dict[str, Any]) -> list[DeliveryResult]:
        """Send `payload` to every active webhook of `topic`, one after the other, as the store does
        when delivering synchronously."""
        body = rest.wp_json(payload)
        results = []
        for hook in [h for h in self.hooks.values() if h.topic == topic and h.status == "active"]:
            status = await self._post(hook, body, self.delivery_headers(hook, body))
            self._count(hook, status)
            results.append(DeliveryResult(hook.id, status))
        self.deliveries.extend(results)
        return results

    def delivery_headers(self, hook: Webhook, body: bytes, *, at: float | None = None) -> list[tuple[str, str]]:
        """The headers after Host and before Connection, in the store's order."""
        resource, _, event = hook.topic.partition(".")
        second = int(at if at is not None else time.time())
        delivery_id = hmac.new(_WP_HASH_SALT, f"{hook.id}{second}".encode(), hashlib.md5).hexdigest()
        return [
            ("User-Agent", USER_AGENT),
            ("Accept", "*/*"),
            ("Accept-Encoding", "deflate, gzip, br, zstd"),
            ("Content-Type", "application/json"),
            ("X-WC-Webhook-Source", f"{self.site_url()}/"),
            ("X-WC-Webhook-Topic", hook.topic),
            ("X-WC-Webhook-Resource", resource),
            ("X-WC-Webhook-Event", event),
            ("X-WC-Webhook-Signature", signature(body, hook.secret)),
            ("X-WC-Webhook-ID", str(hook.id)),
            ("X-WC-Webhook-Delivery-ID", delivery_id),
        ]

    async def _ping(self, hook: Webhook) -> None:
        body = f"webhook_id={hook.id}".encode()
        status = await self._post(hook, body, [("User-Agent", USER_AGENT), ("Accept", "*/*"),
                                               ("Accept-Encoding", "deflate, gzip, br, zstd")],
                                  content_type="application/x-www-form-urlencoded", trailing_type=True)
        log.info("pinged webhook %d (%s): %s", hook.id, hook.topic, status)

    def _count(self, hook: Webhook, status: int | None) -> None:
        if status is not None and (200 <= status < 300 or status in (301, 302)):
            hook.failure_count = 0
        elif hook.failure_count > MAX_FAILURES:
            hook.status = "disabled"
        else:
            hook.failure_count += 1

    async def _post(self, hook: Webhook, body: bytes, headers: list[tuple[str, str]], *,
                    content_type: str | None = None, trailing_type: bool = False) -> int | None:
        """One HTTP/1.1 POST written byte for byte; the answer's status, or None without one."""
        url = urlsplit(hook.delivery_url)
        port = url.port or (443 if url.scheme == "https" else 80)
        host = url.netloc
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        lines = [f"POST {path} HTTP/1.1", f"Host: {host}", *(f"{k}: {v}" for k, v in headers)]
        if content_type and not trailing_type:
            lines.append(f"Content-Type: {content_type}")
        lines += ["Connection: close", f"Content-Length: {len(body)}"]
        if content_type and trailing_type:  # the ping's order
            lines.append(f"Content-Type: {content_type}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        try:
            async with asyncio.timeout(DELIVERY_TIMEOUT_S):
                reader, writer = await asyncio.open_connection(url.hostname, port, ssl=url.scheme == "https" or None)
                try:
                    writer.write(head + body)
                    await writer.drain()
                    status_line = await reader.readline()
                finally:
                    writer.close()
        except (OSError, TimeoutError) as exc:
            log.info("delivery to webhook %d failed: %s", hook.id, exc)
            return None
        parts = status_line.split()
        return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None


def _json_object(body: bytes) -> dict[str, Any]:
    if not body:
        return {}
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise RestError(400, "rest_invalid_json", "Invalid JSON body passed.") from None
    if not isinstance(document, dict):
        raise RestError(400, "rest_invalid_json", "Invalid JSON body passed.")
    return document


def _check_status(fields: dict[str, Any]) -> None:
    if "status" in fields and fields["status"] not in STATUSES:
        problem = "status is not one of active, paused, and disabled."
        raise RestError(400, "rest_invalid_param", "Invalid parameter(s): status",
                        {"params": {"status": problem},
                         "details": {"status": {"code": "rest_not_in_enum", "message": problem, "data": None}}})


def _check_delivery_url(url: Any) -> None:
    parts = urlsplit(str(url))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise RestError(400, "woocommerce_rest_shop_webhook_invalid_delivery_url",
                        "Webhook delivery URL must be a valid URL starting with http:// or https://.")


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
