"""An organisation's WooCommerce stores (woo_store) and their credentials, encrypted at rest by
the process's CredentialsCipher (shared/credentials.py) when WOOSYNC_SECRET_KEY is set."""

from __future__ import annotations

from uuid import UUID

import asyncpg
import orjson

from shared.credentials import CredentialsCipher, WrongCredentialsKey
from shared.errors import PermanentError, UnknownOrganization
from shared.repository.sql import Executor


class StoreCredentialsUnavailable(PermanentError):
    """A store's credentials cannot be read: unknown store, or encrypted with another key (or none)."""


def _key_hint(consumer_key: str) -> str:
    # Enough to tell two stored keys apart in a listing, never enough to use.
    return consumer_key[-4:] if len(consumer_key) >= 12 else ""


async def upsert_store(
    conn: Executor,
    *,
    org_id: UUID,
    url: str,
    consumer_key: str,
    consumer_secret: str,
    cipher: CredentialsCipher | None,
) -> UUID:
    """Record (or update) an organisation's store and its credentials; returns the store id.

    Credentials are stored encrypted (format "fernet") with a cipher, else as plain JSON
    ("plain"). key_hint keeps the last 4 characters of the consumer key.
    """
    document = orjson.dumps({"consumer_key": consumer_key, "consumer_secret": consumer_secret})
    if cipher is not None:
        credentials, credentials_format = cipher.encrypt(document), "fernet"
    else:
        credentials, credentials_format = document.decode(), "plain"
    try:
        return await conn.fetchval(
            """
            INSERT INTO woo_store (org_id, url, credentials, credentials_format, key_hint)
            VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (org_id, url) DO UPDATE
               SET credentials = excluded.credentials,
                   credentials_format = excluded.credentials_format,
                   key_hint = excluded.key_hint,
                   updated_at = now()
            RETURNING id
            """,
            org_id,
            url,
            credentials,
            credentials_format,
            _key_hint(consumer_key),
        )
    except asyncpg.ForeignKeyViolationError:
        raise UnknownOrganization(f"organisation {org_id} is not registered") from None


async def load_store_credentials(
    conn: Executor, store_id: UUID, *, cipher: CredentialsCipher | None
) -> tuple[str, str, str]:
    """(url, consumer_key, consumer_secret) of a store. StoreCredentialsUnavailable, naming the
    problem, when the store is unknown or its credentials cannot be decrypted with `cipher`."""
    row = await conn.fetchrow(
        "SELECT url, credentials, credentials_format FROM woo_store WHERE id = $1", store_id
    )
    if row is None:
        raise StoreCredentialsUnavailable(f"store {store_id} is not recorded")
    if row["credentials_format"] == "fernet":
        if cipher is None:
            raise StoreCredentialsUnavailable(
                f"the credentials of store {row['url']} are encrypted, and WOOSYNC_SECRET_KEY is not set"
            )
        try:
            document = cipher.decrypt(row["credentials"])
        except WrongCredentialsKey:
            raise StoreCredentialsUnavailable(
                f"the credentials of store {row['url']} cannot be decrypted: WOOSYNC_SECRET_KEY is not the key "
                "they were encrypted with"
            ) from None
    else:
        document = row["credentials"].encode()
    credentials = orjson.loads(document)
    return row["url"], credentials["consumer_key"], credentials["consumer_secret"]
