"""`woosync secrets reencrypt` and shared.repository.stores.reencrypt_credentials against a real
PostgreSQL (docs/contract.md section 1): credentials stored in clear before WOOSYNC_SECRET_KEY was
set get encrypted, those of an older key rotated to the newest, a second run changes nothing, and
credentials no key opens are listed by store with exit code 1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from cryptography.fernet import Fernet

from shared.credentials import CredentialsCipher
from shared.repository import stores
from tests.integration.repository_setup import new_org

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def a_key() -> str:
    return Fernet.generate_key().decode()


def woosync(database_url: str, *args: str, secret_key: str | None) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("WOOSYNC_")}
    env.update(WOOSYNC_DATABASE_URL=database_url, PYTHONPATH=str(REPO))
    if secret_key is not None:
        env["WOOSYNC_SECRET_KEY"] = secret_key
    return subprocess.run([sys.executable, "-m", "woosync", *args], capture_output=True, text=True, timeout=60,
                          cwd=REPO, env=env)


async def a_store(pool: asyncpg.Pool, org, n: int, cipher: CredentialsCipher | None):
    return await stores.upsert_store(pool, org_id=org, url=f"https://shop{n}.example.com", consumer_key=f"ck_{n:012d}",
                                     consumer_secret=f"cs_secret_{n}", cipher=cipher)


async def formats(pool: asyncpg.Pool) -> dict:
    return {row["id"]: (row["credentials_format"], row["credentials"])
            for row in await pool.fetch("SELECT id, credentials_format, credentials FROM woo_store")}


async def test_plain_and_old_key_credentials_end_under_the_newest_key_and_a_second_run_changes_nothing(db_pool) -> None:
    org = await new_org(db_pool)
    old, new = a_key(), a_key()
    plain = [await a_store(db_pool, org, n, None) for n in range(3)]
    of_old_key = [await a_store(db_pool, org, n, CredentialsCipher([old])) for n in range(3, 5)]
    current = await a_store(db_pool, org, 5, CredentialsCipher([new]))
    rotating = CredentialsCipher([new, old])

    report = await stores.reencrypt_credentials(db_pool, rotating, batch_size=2)

    assert (report.total, report.encrypted, report.rotated, report.current, report.undecryptable) == (6, 3, 2, 1, [])
    rows = await formats(db_pool)
    assert all(form == "fernet" and "cs_secret" not in text for form, text in rows.values())
    newest_only = CredentialsCipher([new])
    for n, store_id in enumerate([*plain, *of_old_key, current]):
        assert await stores.load_store_credentials(db_pool, store_id, cipher=newest_only) == (
            f"https://shop{n}.example.com", f"ck_{n:012d}", f"cs_secret_{n}")

    again = await stores.reencrypt_credentials(db_pool, rotating)
    assert (again.encrypted, again.rotated, again.current) == (0, 0, 6)
    assert await formats(db_pool) == rows


async def test_a_dry_run_counts_and_writes_nothing(db_pool) -> None:
    org = await new_org(db_pool)
    await a_store(db_pool, org, 1, None)
    before = await formats(db_pool)
    report = await stores.reencrypt_credentials(db_pool, CredentialsCipher([a_key()]), dry_run=True)
    assert report.encrypted == 1 and await formats(db_pool) == before


async def test_the_command_encrypts_what_is_in_clear_and_lists_what_no_key_opens(database_url, db_pool) -> None:
    org = await new_org(db_pool)
    key = a_key()
    plain = await a_store(db_pool, org, 1, None)
    lost = await a_store(db_pool, org, 2, CredentialsCipher([a_key()]))  # a key nobody has any more

    dry = woosync(database_url, "secrets", "reencrypt", "--dry-run", secret_key=key)
    assert "dry run: 2 store(s): 1 would be encrypted from plain" in dry.stdout
    assert (await formats(db_pool))[plain][0] == "plain"

    result = woosync(database_url, "secrets", "reencrypt", "--batch-size", "1", secret_key=key)

    assert result.returncode == 1
    assert "2 store(s): 1 encrypted from plain, 0 rotated to the newest key, 0 already current, 1 undecryptable" in result.stdout
    assert f"store {lost} https://shop2.example.com" in result.stderr
    assert "1 of 2 store(s) examined" in result.stderr  # progress, one line per batch
    assert await stores.load_store_credentials(db_pool, plain, cipher=CredentialsCipher([key])) == (
        "https://shop1.example.com", "ck_000000000001", "cs_secret_1")
    assert key not in result.stdout + result.stderr


async def test_the_command_needs_a_key_and_names_a_malformed_one_by_position(database_url) -> None:
    missing = woosync(database_url, "secrets", "reencrypt", secret_key=None)
    assert missing.returncode == 2 and "WOOSYNC_SECRET_KEY is not set" in missing.stderr

    malformed = woosync(database_url, "secrets", "reencrypt", secret_key=f"{a_key()},not-a-key")
    assert malformed.returncode == 2
    assert "WOOSYNC_SECRET_KEY" in malformed.stderr and "key 2 of 2" in malformed.stderr
    assert "not-a-key" not in malformed.stderr
