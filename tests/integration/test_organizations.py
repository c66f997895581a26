"""Organisations and API tokens (shared.organizations) and `woosync org create` (docs/contract.md section 1)."""

from __future__ import annotations

import asyncio
import json
import re
import uuid

import asyncpg
import pytest

from shared.organizations import (
    DuplicateOrganization,
    InvalidOrganizationName,
    authenticate_token,
    create_organization,
    create_token,
    organization_exists,
    revoke_token,
)
from tests.integration.test_migrations import run_woosync

pytestmark = pytest.mark.integration

TOKEN_FORMAT = re.compile(r"^wsk_[A-Za-z0-9_-]{43}$")


async def test_create_organization_returns_its_id_and_a_token_that_authenticates_it(db_pool: asyncpg.Pool) -> None:
    org_id, token = await create_organization(db_pool, name="  Acme Ltd  ")

    assert isinstance(org_id, uuid.UUID)
    assert TOKEN_FORMAT.match(token)
    assert await authenticate_token(db_pool, token) == org_id
    assert await organization_exists(db_pool, org_id)
    assert await db_pool.fetchval("SELECT name FROM organization WHERE id = $1", org_id) == "Acme Ltd"


async def test_an_organisation_keeps_the_id_it_was_given(db_pool: asyncpg.Pool) -> None:
    crm_id = uuid.uuid4()
    org_id, _ = await create_organization(db_pool, name="From the CRM", org_id=crm_id)
    assert org_id == crm_id


async def test_a_duplicate_organisation_id_is_refused_and_mints_no_token(db_pool: asyncpg.Pool) -> None:
    org_id, _ = await create_organization(db_pool, name="First")
    with pytest.raises(DuplicateOrganization, match=str(org_id)):
        await create_organization(db_pool, name="Second", org_id=org_id)
    assert await db_pool.fetchval("SELECT count(*) FROM api_token WHERE org_id = $1", org_id) == 1
    assert await db_pool.fetchval("SELECT name FROM organization WHERE id = $1", org_id) == "First"


async def test_a_blank_name_is_refused(db_pool: asyncpg.Pool) -> None:
    with pytest.raises(InvalidOrganizationName):
        await create_organization(db_pool, name="   ")


async def test_only_a_digest_and_a_short_prefix_of_the_token_are_stored(db_pool: asyncpg.Pool) -> None:
    org_id, token = await create_organization(db_pool, name="Acme")
    row = await db_pool.fetchrow("SELECT * FROM api_token WHERE org_id = $1", org_id)
    stored = " ".join(str(value) for value in row.values())
    assert token not in stored
    assert token[4:] not in stored
    assert row["token_prefix"] == token[:12]
    assert len(row["token_hash"]) == 32


@pytest.mark.parametrize(
    "bad_token",
    ["", "wsk_", "Bearer x", "wsk_" + "A" * 43, "nope_" + "A" * 43, "wsk_" + "A" * 500],
)
async def test_unknown_or_malformed_tokens_authenticate_nobody(db_pool: asyncpg.Pool, bad_token: str) -> None:
    await create_organization(db_pool, name="Acme")
    assert await authenticate_token(db_pool, bad_token) is None


async def test_a_revoked_token_no_longer_authenticates_but_the_others_do(db_pool: asyncpg.Pool) -> None:
    org_id, first = await create_organization(db_pool, name="Acme")
    second = await create_token(db_pool, org_id, label="ci")

    assert await revoke_token(db_pool, first) is True
    assert await revoke_token(db_pool, first) is False
    assert await authenticate_token(db_pool, first) is None
    assert await authenticate_token(db_pool, second) == org_id


async def test_a_token_sees_only_its_own_organisation(db_pool: asyncpg.Pool) -> None:
    acme, acme_token = await create_organization(db_pool, name="Acme")
    globex, globex_token = await create_organization(db_pool, name="Globex")
    assert await authenticate_token(db_pool, acme_token) == acme
    assert await authenticate_token(db_pool, globex_token) == globex


async def test_authentication_records_when_a_token_was_last_used(db_pool: asyncpg.Pool) -> None:
    org_id, token = await create_organization(db_pool, name="Acme")
    assert await db_pool.fetchval("SELECT last_used_at FROM api_token WHERE org_id = $1", org_id) is None
    await authenticate_token(db_pool, token)
    assert await db_pool.fetchval("SELECT last_used_at FROM api_token WHERE org_id = $1", org_id) is not None


async def test_organization_exists_is_false_for_an_unknown_id(db_pool: asyncpg.Pool) -> None:
    assert await organization_exists(db_pool, uuid.uuid4()) is False


# ---------------------------------------------------------------------------------------------
# `woosync org create`


def test_org_create_json_prints_exactly_one_json_object_with_a_working_token(database_url: str) -> None:
    result = run_woosync("org", "create", "--name", "Acme", "--json", database_url=database_url)
    assert result.returncode == 0, result.stderr

    document = json.loads(result.stdout)  # fails on anything but exactly one JSON document
    assert set(document) == {"org_id", "api_token"}
    assert result.stdout.strip().count("\n") == 0
    org_id = uuid.UUID(document["org_id"])
    assert TOKEN_FORMAT.match(document["api_token"])

    async def check() -> uuid.UUID | None:
        conn = await asyncpg.connect(database_url)
        try:
            return await authenticate_token(conn, document["api_token"])
        finally:
            await conn.close()

    assert asyncio.run(check()) == org_id


def test_org_create_with_an_id_keeps_it_and_a_duplicate_id_exits_2(database_url: str) -> None:
    crm_id = str(uuid.uuid4())
    created = run_woosync("org", "create", "--name", "Acme", "--id", crm_id, "--json", database_url=database_url)
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["org_id"] == crm_id

    duplicate = run_woosync("org", "create", "--name", "Again", "--id", crm_id, "--json", database_url=database_url)
    assert duplicate.returncode == 2
    assert duplicate.stdout == ""
    assert crm_id in duplicate.stderr and "already exists" in duplicate.stderr
    assert "Traceback" not in duplicate.stderr


def test_org_create_with_a_malformed_id_exits_2_naming_the_value(database_url: str) -> None:
    result = run_woosync("org", "create", "--name", "Acme", "--id", "not-a-uuid", "--json", database_url=database_url)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "not-a-uuid" in result.stderr and "UUID" in result.stderr


def test_org_create_without_json_shows_the_token_to_a_human(database_url: str) -> None:
    result = run_woosync("org", "create", "--name", "Acme", database_url=database_url)
    assert result.returncode == 0, result.stderr
    assert re.search(r"api_token: wsk_\S{43}", result.stdout)
    assert re.search(r"org_id: +[0-9a-f-]{36}", result.stdout)


def test_org_create_on_an_unmigrated_database_says_to_migrate(empty_database_url: str) -> None:
    result = run_woosync("org", "create", "--name", "Acme", "--json", database_url=empty_database_url)
    assert result.returncode == 1
    assert "woosync migrate" in result.stderr
    assert "Traceback" not in result.stderr
