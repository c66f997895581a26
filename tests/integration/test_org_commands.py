"""`woosync org` beyond create (docs/contract.md section 1): tokens minted, listed and revoked (a
revoked token gets 401 at once), organisations disabled (their tokens get 403) and enabled again,
publishers registered. The real command against a real PostgreSQL; the status API in-process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from shared import organizations
from tests.integration.status_harness import status_service

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def woosync(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("WOOSYNC_")}
    env.update(WOOSYNC_DATABASE_URL=database_url, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "woosync", *args], capture_output=True, text=True, timeout=60,
                          cwd=REPO, env=env)


async def test_a_revoked_token_gets_401_from_the_next_request_and_the_others_keep_working(
        database_url, db_pool, amqp_url) -> None:
    org_id, first = await organizations.create_organization(db_pool, name="Acme")
    minted = woosync(database_url, "org", "token", "create", "--org", "Acme", "--label", "ci", "--json")
    assert minted.returncode == 0, minted.stderr
    second = json.loads(minted.stdout)["api_token"]

    async with status_service(db_pool, amqp_url) as api:
        assert (await api.client.get("/api/v1/sync/queues", headers=api.auth(second))).status_code == 200

        revoked = woosync(database_url, "org", "token", "revoke", "--org", str(org_id), "--token-prefix", second[:12])
        assert revoked.returncode == 0, revoked.stderr

        refused = await api.client.get("/api/v1/sync/queues", headers=api.auth(second))
        assert refused.status_code == 401 and "revoked" in refused.json()["error"]
        assert (await api.client.get("/api/v1/sync/queues", headers=api.auth(first))).status_code == 200

    listed = woosync(database_url, "org", "token", "list", "--org", "Acme", "--json")
    tokens = {token["token_prefix"]: token for token in json.loads(listed.stdout)}
    assert tokens[second[:12]]["revoked_at"] is not None and tokens[second[:12]]["label"] == "ci"
    assert tokens[first[:12]]["revoked_at"] is None
    assert second not in listed.stdout and first not in listed.stdout


async def test_a_disabled_organisations_tokens_get_403_until_it_is_enabled_again(database_url, db_pool, amqp_url) -> None:
    org_id, token = await organizations.create_organization(db_pool, name="Acme")
    other_id, other_token = await organizations.create_organization(db_pool, name="Globex")

    assert woosync(database_url, "org", "disable", "--org", str(org_id)).returncode == 0
    async with status_service(db_pool, amqp_url) as api:
        refused = await api.client.get("/api/v1/sync/queues", headers=api.auth(token))
        assert refused.status_code == 403 and "disabled" in refused.json()["error"]
        assert (await api.client.get("/api/v1/sync/queues", headers=api.auth(other_token))).status_code == 200

        listed = json.loads(woosync(database_url, "org", "list", "--json").stdout)
        assert {org["org_id"]: org["disabled_at"] is not None for org in listed} == {str(org_id): True, str(other_id): False}

        assert woosync(database_url, "org", "enable", "--org", "Acme").returncode == 0
        assert (await api.client.get("/api/v1/sync/queues", headers=api.auth(token))).status_code == 200


async def test_publishers_are_allowed_listed_and_revoked(database_url, db_pool) -> None:
    org_id, _ = await organizations.create_organization(db_pool, name="Acme")
    for user in ("crm-publisher", "erp-publisher"):
        assert woosync(database_url, "org", "publisher", "allow", "--org", "Acme", "--amqp-user", user).returncode == 0
    assert woosync(database_url, "org", "publisher", "revoke", "--org", "Acme", "--amqp-user", "erp-publisher").returncode == 0

    listed = woosync(database_url, "org", "publisher", "list", "--org", str(org_id), "--json")
    assert json.loads(listed.stdout) == ["crm-publisher"]
    policy = await organizations.sync_request_policy(db_pool, org_id)
    assert policy is not None and policy.publishers == {"crm-publisher"} and not policy.disabled


async def test_unknown_or_ambiguous_organisations_and_tokens_are_usage_errors(database_url, db_pool) -> None:
    await organizations.create_organization(db_pool, name="Twin")
    await organizations.create_organization(db_pool, name="Twin")

    ambiguous = woosync(database_url, "org", "disable", "--org", "Twin")
    assert ambiguous.returncode == 2 and "2 organisations are named 'Twin'" in ambiguous.stderr
    unknown = woosync(database_url, "org", "token", "list", "--org", str(uuid.uuid4()))
    assert unknown.returncode == 2 and "no organisation" in unknown.stderr
    org_id, _ = await organizations.create_organization(db_pool, name="Solo")
    no_token = woosync(database_url, "org", "token", "revoke", "--org", "Solo", "--token-prefix", "wsk_nothing1")
    assert no_token.returncode == 2 and "no token" in no_token.stderr
    assert await db_pool.fetchval("SELECT count(*) FROM api_token WHERE org_id = $1 AND revoked_at IS NULL", org_id) == 1


async def test_conflict_policy_is_shown_and_set_and_the_status_api_reads_the_same(database_url, db_pool, amqp_url) -> None:
    org_id, token = await organizations.create_organization(db_pool, name="Acme")
    await organizations.create_organization(db_pool, name="Globex")

    shown = woosync(database_url, "org", "conflict-policy", "--org", "Acme")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == f"organisation {org_id} ('Acme'): conflict policy store_wins"

    changed = woosync(database_url, "org", "conflict-policy", "--org", str(org_id), "--set", "local_wins")
    assert changed.returncode == 0, changed.stderr
    assert "conflict policy local_wins" in changed.stdout
    assert "conflict policy local_wins" in woosync(database_url, "org", "conflict-policy", "--org", "Acme").stdout
    assert "conflict policy store_wins" in woosync(database_url, "org", "conflict-policy", "--org", "Globex").stdout

    async with status_service(db_pool, amqp_url) as api:
        answer = await api.client.get("/api/v1/organization/conflict-policy", headers=api.auth(token))
    assert answer.status_code == 200
    assert answer.json()["data"] == {"org_id": str(org_id), "conflict_policy": "local_wins"}

    unknown = woosync(database_url, "org", "conflict-policy", "--org", "Acme", "--set", "newest_wins")
    assert unknown.returncode == 2 and "store_wins" in unknown.stderr and "local_wins" in unknown.stderr
    assert "conflict policy local_wins" in woosync(database_url, "org", "conflict-policy", "--org", "Acme").stdout
