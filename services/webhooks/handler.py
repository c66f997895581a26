"""What an accepted delivery does (docs/contract.md section 10), once its signature verified.

- customer.created / customer.updated, and order.* whose body names a customer: a one-customer
  sync of that customer (`options.woo_customer_id`), published with confirm to woosync.requests;
- order.* of a guest (customer_id 0): nothing to sync;
- order.deleted: its body is only `{"id": N}`, so the customer is not known here; nothing is
  synced (a later full sync, or the order sweeps when they come, bring the customer up to date);
- customer.deleted: the customer row is marked (`metadata.woo_deleted`), never deleted, and a
  finished sync queue of its own carries the activity entry that says so.

Each delivery is recorded in webhook_delivery in the transaction that acts on it, and the answer
waits for its commit (and the broker's confirm): a delivery answered 200 is durable, and the same
delivery (same id, same body) arriving again is answered 200 and changes nothing.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import asyncpg
import orjson
from aio_pika.abc import AbstractChannel

from shared.amqp import PublishFailed, publish_sync_request
from shared.db import translate_db_error
from shared.messages import StartSync
from shared.repository import webhooks as webhook_rows
from shared.repository.activity import ActivityRow, append_activity
from shared.repository.stores import load_store_credentials
from shared.repository.sync_queues import find_or_create_queue, mark_enumeration_done
from shared.repository.webhooks import WebhookEndpoint
from shared.settings import Settings

log = logging.getLogger(__name__)

# How long the answer may wait for the broker's confirm: the store gives up on a delivery after
# a few seconds, and counts that as a failure.
PUBLISH_TIMEOUT_S = 5.0


class InvalidDelivery(Exception):
    """A signed body that is not what its topic sends (400)."""


class NotDurable(Exception):
    """The delivery could not be made durable (broker or database unavailable): 503, nothing kept."""


@dataclass(frozen=True, slots=True)
class Action:
    outcome: str  # resync | customer_deleted | guest_order | no_customer
    resource_id: int
    woo_customer_id: int | None


def action_for(topic: str, body: bytes) -> Action:
    """What a delivery of `topic` with this (verified) body asks for; InvalidDelivery otherwise."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidDelivery(f"a {topic} delivery whose body is not JSON") from None
    if not isinstance(document, dict):
        raise InvalidDelivery(f"a {topic} delivery whose body is not a JSON object")
    resource_id = _whole_number(document.get("id"))
    if resource_id is None or resource_id < 1:
        raise InvalidDelivery(f"a {topic} delivery without a resource id")
    resource, _, event = topic.partition(".")
    if resource == "customer":
        return Action("customer_deleted" if event == "deleted" else "resync", resource_id, resource_id)
    if "customer_id" not in document:  # order.deleted sends only the order's id
        return Action("no_customer", resource_id, None)
    customer_id = _whole_number(document["customer_id"])
    if customer_id is None or customer_id < 0:
        raise InvalidDelivery(f"a {topic} delivery whose customer_id is not a whole number")
    if customer_id == 0:
        return Action("guest_order", resource_id, None)
    return Action("resync", resource_id, customer_id)


def _whole_number(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class DeliveryHandler:
    def __init__(self, pool: asyncpg.Pool, channel: AbstractChannel, settings: Settings) -> None:
        self._pool = pool
        self._channel = channel
        self._settings = settings

    async def handle(self, endpoint: WebhookEndpoint, delivery_id: str, body: bytes) -> str:
        """Act on a verified delivery; its outcome, or "repeated" for one accepted before."""
        action = action_for(endpoint.topic, body)
        digest = hashlib.sha256(body).digest()
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                first = await webhook_rows.record_delivery(
                    conn, store_id=endpoint.store_id, delivery_id=delivery_id, body_sha256=digest,
                    topic=endpoint.topic, resource_id=action.resource_id, woo_customer_id=action.woo_customer_id,
                    outcome=action.outcome,
                )
                if not first:
                    return "repeated"
                if action.outcome == "resync":
                    await self._publish_resync(conn, endpoint, action, delivery_id, digest)
                elif action.outcome == "customer_deleted":
                    await self._mark_deleted(conn, endpoint, action, delivery_id, digest)
        except Exception as exc:
            # The broker or the database failed (an outage as shared.db sorts it, or a PostgreSQL
            # error): nothing was kept, the store retries the delivery.
            if not (isinstance(exc, (PublishFailed, asyncpg.PostgresError)) or translate_db_error(exc)):
                raise
            raise NotDurable(f"{type(exc).__name__}: {exc}") from exc
        return action.outcome

    async def _publish_resync(self, conn: asyncpg.Connection, endpoint: WebhookEndpoint, action: Action,
                              delivery_id: str, digest: bytes) -> None:
        url, key, secret = await load_store_credentials(conn, endpoint.store_id, cipher=self._settings.credentials_cipher)
        request = StartSync.model_validate({
            "org_id": endpoint.org_id,
            "store": {"url": url, "consumer_key": key, "consumer_secret": secret},
            # The producer maps a repeated key to the same queue: a delivery published twice
            # (its commit lost after the confirm) is still one sync.
            "idempotency_key": _idempotency_key(delivery_id, digest),
            "requested_by": f"webhook {endpoint.topic} #{action.resource_id}",
            "options": {"woo_customer_id": action.woo_customer_id},
        })
        await publish_sync_request(self._channel, request, user_id=self._settings.amqp_user, timeout=PUBLISH_TIMEOUT_S)

    async def _mark_deleted(self, conn: asyncpg.Connection, endpoint: WebhookEndpoint, action: Action,
                            delivery_id: str, digest: bytes) -> None:
        customer_id = action.resource_id
        when = datetime.now(timezone.utc).isoformat()
        row_id = await webhook_rows.mark_customer_deleted_in_store(
            conn, org_id=endpoint.org_id, store_url=endpoint.store_url, woo_customer_id=customer_id,
            details={"at": when, "by": "webhook customer.deleted", "delivery_id": delivery_id},
        )
        queue, _ = await find_or_create_queue(
            conn, org_id=endpoint.org_id,
            queue_name=f"WooCommerce customer {customer_id} deleted in {endpoint.store_url} (webhook)",
            idempotency_key=_idempotency_key(delivery_id, digest), store_id=endpoint.store_id,
            store_url=endpoint.store_url, created_by="webhook customer.deleted",
            options={"woo_customer_id": customer_id},
        )
        await mark_enumeration_done(conn, queue.id, endpoint.org_id)
        message = (f"customer {customer_id} was deleted in the store: its row is marked (metadata.woo_deleted) "
                   "and kept" if row_id else
                   f"customer {customer_id} was deleted in the store; it has no row here, nothing to mark")
        await append_activity(conn, [ActivityRow(
            queue_id=queue.id, org_id=endpoint.org_id, activity_type="customer_deleted_in_store", status="done",
            message=message,
            details={"woo_customer_id": customer_id, "customer_id": str(row_id) if row_id else None,
                     "delivery_id": delivery_id},
        )])
        log.info("store %s deleted customer %d: %s", endpoint.store_url, customer_id,
                 "row marked" if row_id else "no row to mark")


def _idempotency_key(delivery_id: str, digest: bytes) -> str:
    return f"webhook:{delivery_id}:{digest.hex()[:16]}"
