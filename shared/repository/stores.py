"""An organisation's WooCommerce stores (woo_store) and their credentials, encrypted at rest by
the process's CredentialsCipher (shared/credentials.py) when WOOSYNC_SECRET_KEY is set.

Credentials a store row holds are the last ones the store answered to: services record a store
with `record_store` (which never touches the credentials of a store already recorded) and replace
its credentials with `save_verified_credentials` only after the store accepted them
(docs/contract.md section 4). `reencrypt_credentials` brings every row to the newest key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
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


def _stored_form(consumer_key: str, consumer_secret: str, cipher: CredentialsCipher | None) -> tuple[str, str]:
    """(credentials, credentials_format): encrypted ("fernet") with a cipher, else plain JSON ("plain")."""
    document = orjson.dumps({"consumer_key": consumer_key, "consumer_secret": consumer_secret})
    if cipher is not None:
        return cipher.encrypt(document), "fernet"
    return document.decode(), "plain"


async def record_store(
    conn: Executor,
    *,
    org_id: UUID,
    url: str,
    consumer_key: str,
    consumer_secret: str,
    cipher: CredentialsCipher | None,
) -> UUID:
    """The id of an organisation's store, recording it if new; a store already recorded keeps
    its credentials, whatever these are (they replace them only once tested:
    `save_verified_credentials`).

    A new store is inserted with the request's credentials, untested (credentials_verified_at
    NULL), because its sync queue needs the store's id before the store is asked anything.
    Nothing is lost if they are wrong: there were no working credentials to replace, and no
    consumer reads them, since lines exist only after the producer's connection test passed.
    """
    credentials, credentials_format = _stored_form(consumer_key, consumer_secret, cipher)
    # One statement inserts or finds the row. When another transaction inserts the same store
    # at the same moment, the insert waits for it and does nothing, while the statement's
    # snapshot predates that row: the answer is then empty and the next try sees the row
    # (READ COMMITTED: each statement takes a new snapshot).
    for _ in range(5):
        try:
            store_id = await conn.fetchval(
                """
                WITH inserted AS (
                    INSERT INTO woo_store (org_id, url, credentials, credentials_format, key_hint)
                    VALUES ($1, $2, $3, $4, $5)
                    ON CONFLICT (org_id, url) DO NOTHING
                    RETURNING id
                )
                SELECT id FROM inserted
                UNION ALL
                SELECT id FROM woo_store WHERE org_id = $1 AND url = $2
                LIMIT 1
                """,
                org_id,
                url,
                credentials,
                credentials_format,
                _key_hint(consumer_key),
            )
        except asyncpg.ForeignKeyViolationError:
            raise UnknownOrganization(f"organisation {org_id} is not registered") from None
        if store_id is not None:
            return store_id
    raise RuntimeError(f"store {url} of organisation {org_id} could neither be inserted nor found")


async def save_verified_credentials(
    conn: Executor,
    store_id: UUID,
    *,
    consumer_key: str,
    consumer_secret: str,
    cipher: CredentialsCipher | None,
) -> None:
    """Replace a store's credentials with ones the store has just accepted (the producer's
    connection test), and note when."""
    credentials, credentials_format = _stored_form(consumer_key, consumer_secret, cipher)
    await conn.execute(
        """
        UPDATE woo_store
           SET credentials = $2, credentials_format = $3, key_hint = $4,
               credentials_verified_at = now(), updated_at = now()
         WHERE id = $1
        """,
        store_id,
        credentials,
        credentials_format,
        _key_hint(consumer_key),
    )


async def upsert_store(
    conn: Executor,
    *,
    org_id: UUID,
    url: str,
    consumer_key: str,
    consumer_secret: str,
    cipher: CredentialsCipher | None,
) -> UUID:
    """Record (or update) an organisation's store and its credentials, untested; returns the
    store id. For set-up with credentials known to work (tests, benchmarks): services record
    stores with `record_store` and save credentials with `save_verified_credentials`.

    key_hint keeps the last 4 characters of the consumer key.
    """
    credentials, credentials_format = _stored_form(consumer_key, consumer_secret, cipher)
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



@dataclass
class ReencryptReport:
    """What `reencrypt_credentials` found (or, in a dry run, would do), store by store."""

    total: int = 0
    encrypted: int = 0  # plain JSON, now encrypted with the newest key
    rotated: int = 0  # encrypted with an older key, now with the newest
    current: int = 0  # already encrypted with the newest key: left alone
    changed_meanwhile: int = 0  # rewritten by a service while we worked: left alone
    undecryptable: list[tuple[UUID, str]] = field(default_factory=list)  # (store id, url): no key opens them


async def reencrypt_credentials(
    conn: Executor,
    cipher: CredentialsCipher,
    *,
    dry_run: bool = False,
    batch_size: int = 500,
    on_batch: Callable[[int, int], None] | None = None,
) -> ReencryptReport:
    """Encrypt every store's credentials with the cipher's newest key: plain rows are encrypted,
    rows of an older key rotated, rows of the newest key left alone (a second run changes
    nothing). Rows are read in batches of `batch_size` in id order, each batch written in one
    statement that skips a row whose credentials changed since it was read (a service saved
    new ones meanwhile, with the current key). `on_batch(done, total)` follows the progress."""
    report = ReencryptReport(total=await conn.fetchval("SELECT count(*) FROM woo_store"))
    done, after = 0, None
    while True:
        rows = await conn.fetch(
            """
            SELECT id, url, credentials, credentials_format FROM woo_store
             WHERE $1::uuid IS NULL OR id > $1 ORDER BY id LIMIT $2
            """,
            after,
            batch_size,
        )
        if not rows:
            return report
        rewrites: dict[UUID, tuple[str, str, str]] = {}  # id -> (kind, old, new)
        for row in rows:
            if row["credentials_format"] == "plain":
                rewrites[row["id"]] = ("encrypted", row["credentials"], cipher.encrypt(row["credentials"].encode()))
                continue
            try:
                rotated = cipher.rotate(row["credentials"])
            except WrongCredentialsKey:
                report.undecryptable.append((row["id"], row["url"]))
                continue
            if rotated is None:
                report.current += 1
            else:
                rewrites[row["id"]] = ("rotated", row["credentials"], rotated)
        written = set(rewrites)
        if rewrites and not dry_run:
            ids = list(rewrites)
            written = set(await conn.fetchval(
                """
                WITH rewritten AS (
                    UPDATE woo_store s SET credentials = r.new, credentials_format = 'fernet'
                      FROM unnest($1::uuid[], $2::text[], $3::text[]) AS r(id, old, new)
                     WHERE s.id = r.id AND s.credentials = r.old
                    RETURNING s.id
                )
                SELECT coalesce(array_agg(id), '{}') FROM rewritten
                """,
                ids,
                [rewrites[i][1] for i in ids],
                [rewrites[i][2] for i in ids],
            ))
        for store_id, (kind, _, _) in rewrites.items():
            if store_id in written:
                setattr(report, kind, getattr(report, kind) + 1)
            else:
                report.changed_meanwhile += 1
        done += len(rows)
        after = rows[-1]["id"]
        if on_batch is not None:
            on_batch(done, report.total)
