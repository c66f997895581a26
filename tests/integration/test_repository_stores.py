"""shared.repository.stores against a real PostgreSQL: stores are upserted per organisation and
URL, their credentials encrypted at rest by the settings' CredentialsCipher (plain JSON without
one), and every reason credentials cannot be read is named."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from cryptography.fernet import Fernet

from shared.credentials import CredentialsCipher
from shared.errors import UnknownOrganization
from shared.repository import stores
from tests.integration.repository_setup import new_org

pytestmark = pytest.mark.integration


def a_cipher() -> CredentialsCipher:
    return CredentialsCipher([Fernet.generate_key().decode()])


async def test_store_credentials_are_encrypted_at_rest_when_a_cipher_is_given(db_pool: asyncpg.Pool) -> None:
    org = await new_org(db_pool)
    cipher = a_cipher()
    store_id = await stores.upsert_store(db_pool, org_id=org, url="https://shop.example.com", consumer_key="ck_0123456789abcdef",
                                         consumer_secret="cs_very_secret_value", cipher=cipher)
    row = await db_pool.fetchrow("SELECT * FROM woo_store WHERE id = $1", store_id)
    assert row["credentials_format"] == "fernet" and row["key_hint"] == "cdef"
    assert "cs_very_secret_value" not in row["credentials"] and "ck_0123456789abcdef" not in row["credentials"]

    assert await stores.load_store_credentials(db_pool, store_id, cipher=cipher) == (
        "https://shop.example.com", "ck_0123456789abcdef", "cs_very_secret_value")
    with pytest.raises(stores.StoreCredentialsUnavailable, match="WOOSYNC_SECRET_KEY is not set"):
        await stores.load_store_credentials(db_pool, store_id, cipher=None)
    with pytest.raises(stores.StoreCredentialsUnavailable, match="not the key"):
        await stores.load_store_credentials(db_pool, store_id, cipher=a_cipher())


async def test_store_credentials_without_a_cipher_are_plain_and_upserts_keep_the_store_id(db_pool: asyncpg.Pool) -> None:
    org = await new_org(db_pool)
    first = await stores.upsert_store(db_pool, org_id=org, url="http://shop.test", consumer_key="ck_test",
                                      consumer_secret="cs_test", cipher=None)
    again = await stores.upsert_store(db_pool, org_id=org, url="http://shop.test", consumer_key="ck_new",
                                      consumer_secret="cs_new", cipher=None)
    assert again == first
    row = await db_pool.fetchrow("SELECT credentials_format, key_hint FROM woo_store WHERE id = $1", first)
    assert dict(row) == {"credentials_format": "plain", "key_hint": ""}  # too short a key to hint at
    # Plain credentials stay readable after a key is configured.
    assert await stores.load_store_credentials(db_pool, first, cipher=a_cipher()) == ("http://shop.test", "ck_new", "cs_new")


async def test_unknown_stores_and_organisations_are_named(db_pool: asyncpg.Pool) -> None:
    missing = uuid.uuid4()
    with pytest.raises(stores.StoreCredentialsUnavailable, match=str(missing)):
        await stores.load_store_credentials(db_pool, missing, cipher=None)
    with pytest.raises(UnknownOrganization):
        await stores.upsert_store(db_pool, org_id=uuid.uuid4(), url="http://shop.test", consumer_key="k", consumer_secret="s",
                                  cipher=None)
