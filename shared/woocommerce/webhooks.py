"""WooCommerce webhooks (docs/contract.md section 10): the signature of a delivery, the ping, and
the store's webhooks resource (`/wp-json/wc/v3/webhooks`).

As a WooCommerce 10 store sends them (tests/fixtures/woocommerce-fixtures/webhooks):
- a delivery is a POST of the resource's JSON with `X-WC-Webhook-Signature` = base64 of
  HMAC-SHA256(key = the webhook's secret, message = the raw body bytes). The body keeps WordPress'
  escaping (`\\/`, `\\uXXXX`), so the signature is checked over the bytes received, never over
  re-serialised JSON;
- the store decodes HTML entities in the secret before signing (`wp_specialchars_decode`): the
  secrets woosync makes use only url-safe base64 characters, which that leaves alone;
- when a webhook is created (or its delivery_url changes) the store POSTs a ping: the form body
  `webhook_id=N`, `application/x-www-form-urlencoded`, no X-WC-Webhook-* headers, unsigned;
- `X-WC-Webhook-Delivery-ID` is `wp_hash(webhook id . current second)`: two deliveries of one
  webhook within the same second carry the same id. A delivery is therefore the same one only
  when its id and its body are the same (services/webhooks/handler.py).

The resource never returns a webhook's secret; DELETE needs `force=true` (501 without).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any

from shared.woocommerce.client import WooCommerceClient

# The topics woosync installs, in the order `webhooks install` creates them.
TOPICS: tuple[str, ...] = (
    "customer.created",
    "customer.updated",
    "customer.deleted",
    "order.created",
    "order.updated",
    "order.deleted",
    "order.restored",
)
SIGNATURE_HEADER = "x-wc-webhook-signature"
TOPIC_HEADER = "x-wc-webhook-topic"
DELIVERY_ID_HEADER = "x-wc-webhook-delivery-id"
WEBHOOK_ID_HEADER = "x-wc-webhook-id"
SOURCE_HEADER = "x-wc-webhook-source"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
# A ping body is exactly `webhook_id=<id>`.
_PING = re.compile(rb"webhook_id=[0-9]{1,20}")
# What a delivery id looks like (32 hex from wp_hash); anything else in the header is refused.
DELIVERY_ID = re.compile(r"[0-9a-f]{32}")
# The name woosync gives its webhooks in the store's admin, with the topic appended.
WEBHOOK_NAME_PREFIX = "woosync"


def signature(body: bytes, secret: str) -> str:
    """The X-WC-Webhook-Signature value of `body` signed with `secret`."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode("ascii")


def signature_matches(body: bytes, secret: str, claimed: str) -> bool:
    """True when `claimed` is the signature of `body` with `secret`, compared in constant time."""
    return hmac.compare_digest(signature(body, secret).encode("ascii"), claimed.strip().encode("ascii", "replace"))


def is_ping(body: bytes, content_type: str | None) -> bool:
    """The store's unsigned ping: a tiny form body naming the webhook, nothing else."""
    media_type = (content_type or "").partition(";")[0].strip().lower()
    return media_type == FORM_CONTENT_TYPE and _PING.fullmatch(body) is not None


def new_secret() -> str:
    """A webhook secret: 256 random bits, url-safe base64 (no character the store would decode)."""
    return secrets.token_urlsafe(32)


def new_path_token() -> str:
    """The unguessable token in a store's delivery URL (256 random bits)."""
    return secrets.token_urlsafe(32)


def webhook_name(topic: str) -> str:
    return f"{WEBHOOK_NAME_PREFIX} {topic}"


@dataclass(frozen=True)
class StoreWebhook:
    """A webhook as the store's resource shows it (never with its secret)."""

    id: int
    name: str
    status: str  # active | paused | disabled
    topic: str
    delivery_url: str

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> StoreWebhook:
        return cls(id=int(body["id"]), name=str(body.get("name") or ""), status=str(body.get("status") or ""),
                   topic=str(body.get("topic") or ""), delivery_url=str(body.get("delivery_url") or ""))


class StoreWebhooks:
    """The store's webhooks resource, through a WooCommerceClient (its auth, address guard,
    response cap and error table)."""

    def __init__(self, client: WooCommerceClient) -> None:
        self._client = client

    async def list(self) -> list[StoreWebhook]:
        """Every webhook of the store (all statuses), 100 a page."""
        found: list[StoreWebhook] = []
        page = 1
        while True:
            body = await self._client.send_json(
                "GET", "webhooks", "/webhooks", [("per_page", "100"), ("page", str(page))]
            )
            rows = [row for row in body if isinstance(row, dict)] if isinstance(body, list) else []
            found.extend(StoreWebhook.from_body(row) for row in rows)
            if len(rows) < 100:
                return found
            page += 1

    async def create(self, *, topic: str, delivery_url: str, secret: str, name: str) -> StoreWebhook:
        body = await self._client.send_json(
            "POST", "webhooks", "/webhooks", (),
            {"name": name, "topic": topic, "delivery_url": delivery_url, "secret": secret, "status": "active"},
        )
        return StoreWebhook.from_body(body)

    async def update(self, webhook_id: int, **fields: str) -> StoreWebhook:
        body = await self._client.send_json("PUT", "webhooks", f"/webhooks/{int(webhook_id)}", (), fields)
        return StoreWebhook.from_body(body)

    async def delete(self, webhook_id: int) -> None:
        await self._client.send_json("DELETE", "webhooks", f"/webhooks/{int(webhook_id)}", [("force", "true")])
