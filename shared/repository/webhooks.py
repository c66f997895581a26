"""The webhooks woosync installed in stores (store_webhook) and the deliveries it accepted
(webhook_delivery), sql/008_webhooks.sql; docs/contract.md section 10.

Secrets are kept as Fernet tokens of WOOSYNC_SECRET_KEY (shared/credentials.py) and leave this
module decrypted only for the caller that verifies or installs with them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from shared.credentials import CredentialsCipher, WrongCredentialsKey
from shared.errors import PermanentError
from shared.repository.sql import Executor, rows_affected


class WebhookSecretUnavailable(PermanentError):
    """A webhook's secret cannot be decrypted with WOOSYNC_SECRET_KEY (another key, or none)."""


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    """What verifying and acting on one delivery needs: the store and the topic's secret."""

    store_id: UUID
    org_id: UUID
    store_url: str
    topic: str
    secret: str


@dataclass(frozen=True, slots=True)
class InstalledWebhook:
    topic: str
    woo_webhook_id: int | None
    delivery_url: str
    installed_at: datetime | None
    last_delivery_at: datetime | None
    last_delivery_id: str | None


def _decrypt(token: str, cipher: CredentialsCipher | None, store_url: str) -> str:
    if cipher is None:
        raise WebhookSecretUnavailable(
            f"the webhook secrets of store {store_url} are encrypted, and WOOSYNC_SECRET_KEY is not set")
    try:
        return cipher.decrypt(token).decode()
    except WrongCredentialsKey:
        raise WebhookSecretUnavailable(
            f"the webhook secrets of store {store_url} cannot be decrypted: WOOSYNC_SECRET_KEY is not the key "
            "they were encrypted with") from None


async def find_store(conn: Executor, org_id: UUID, url: str) -> UUID | None:
    return await conn.fetchval("SELECT id FROM woo_store WHERE org_id = $1 AND url = $2", org_id, url)


async def store_of_token(conn: Executor, path_token: str) -> UUID | None:
    """The store whose delivery URL ends with this token, or None (an unknown store)."""
    return await conn.fetchval("SELECT store_id FROM store_webhook WHERE path_token = $1 LIMIT 1", path_token)


async def endpoint_for(
    conn: Executor, path_token: str, topic: str, *, cipher: CredentialsCipher | None
) -> WebhookEndpoint | None:
    """The store and secret of the webhook of `topic` behind this token, or None."""
    row = await conn.fetchrow(
        """
        SELECT w.store_id, s.org_id, s.url, w.secret
          FROM store_webhook w JOIN woo_store s ON s.id = w.store_id
         WHERE w.path_token = $1 AND w.topic = $2
        """,
        path_token,
        topic,
    )
    if row is None:
        return None
    return WebhookEndpoint(store_id=row["store_id"], org_id=row["org_id"], store_url=row["url"], topic=topic,
                           secret=_decrypt(row["secret"], cipher, row["url"]))


async def path_token_of(conn: Executor, store_id: UUID) -> str | None:
    return await conn.fetchval("SELECT path_token FROM store_webhook WHERE store_id = $1 LIMIT 1", store_id)


async def save_webhook_secret(
    conn: Executor, store_id: UUID, topic: str, *, path_token: str, delivery_url: str, secret: str,
    cipher: CredentialsCipher,
) -> None:
    """Keep a new secret for the store's webhook of `topic` (before the store is asked to create
    or update it); the webhook id stays until `set_woo_webhook_id`."""
    await conn.execute(
        """
        INSERT INTO store_webhook (store_id, topic, path_token, secret, delivery_url)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (store_id, topic) DO UPDATE
           SET path_token = excluded.path_token, secret = excluded.secret,
               delivery_url = excluded.delivery_url, updated_at = now()
        """,
        store_id, topic, path_token, cipher.encrypt(secret.encode()), delivery_url,
    )


async def set_woo_webhook_id(conn: Executor, store_id: UUID, topic: str, woo_webhook_id: int) -> None:
    await conn.execute(
        """
        UPDATE store_webhook SET woo_webhook_id = $3, installed_at = now(), updated_at = now()
         WHERE store_id = $1 AND topic = $2
        """,
        store_id, topic, woo_webhook_id,
    )


async def installed_webhooks(conn: Executor, store_id: UUID) -> dict[str, InstalledWebhook]:
    rows = await conn.fetch(
        """
        SELECT topic, woo_webhook_id, delivery_url, installed_at, last_delivery_at, last_delivery_id
          FROM store_webhook WHERE store_id = $1 ORDER BY topic
        """,
        store_id,
    )
    return {row["topic"]: InstalledWebhook(**dict(row)) for row in rows}


async def forget_webhooks(conn: Executor, store_id: UUID) -> int:
    """Drop every webhook row of the store (after uninstalling): its deliveries then get 404."""
    return rows_affected(await conn.execute("DELETE FROM store_webhook WHERE store_id = $1", store_id))


async def record_delivery(
    conn: Executor, *, store_id: UUID, delivery_id: str, body_sha256: bytes, topic: str,
    resource_id: int | None, woo_customer_id: int | None, outcome: str,
) -> bool:
    """Record an accepted delivery; False when the same delivery (id and body) was recorded
    before. Run in the transaction that acts on it: a concurrent copy waits for its commit."""
    inserted = await conn.fetchval(
        """
        INSERT INTO webhook_delivery (store_id, delivery_id, body_sha256, topic, resource_id, woo_customer_id, outcome)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT DO NOTHING
        RETURNING true
        """,
        store_id, delivery_id, body_sha256, topic, resource_id, woo_customer_id, outcome,
    )
    if inserted:
        await conn.execute(
            """
            UPDATE store_webhook SET last_delivery_at = now(), last_delivery_id = $3
             WHERE store_id = $1 AND topic = $2
            """,
            store_id, topic, delivery_id,
        )
    return bool(inserted)


async def delete_old_deliveries(conn: Executor, *, older_than_hours: float, batch: int = 5000) -> int:
    """Forget deliveries older than the retention, at most `batch` rows per call."""
    return rows_affected(await conn.execute(
        """
        DELETE FROM webhook_delivery WHERE ctid = ANY(ARRAY(
            SELECT ctid FROM webhook_delivery
             WHERE received_at < now() - make_interval(secs => $1) LIMIT $2))
        """,
        older_than_hours * 3600.0, batch,
    ))


async def mark_customer_deleted_in_store(
    conn: Executor, *, org_id: UUID, store_url: str, woo_customer_id: int, details: dict[str, Any]
) -> UUID | None:
    """Mark the customer row of a customer deleted in the store (metadata `woo_deleted`), never
    deleting it; its id, or None when no row has that store identity."""
    return await conn.fetchval(
        """
        UPDATE customer
           SET metadata = metadata || jsonb_build_object('woo_deleted', $4::jsonb), updated_at = now()
         WHERE org_id = $1 AND woo_store_url = $2 AND woo_customer_id = $3
        RETURNING id
        """,
        org_id, store_url, woo_customer_id, details,
    )
