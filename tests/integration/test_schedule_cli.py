"""`woosync schedule set|list|delete`, `woosync prune --status` and `woosync sync start --mode`
(docs/contract.md sections 1 and 10) run as a user runs them, in a subprocess, against a real
PostgreSQL (and RabbitMQ for `sync start`); the status API in-process sees what the CLI set."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from shared import organizations
from shared.messages import StartSync
from tests.integration.status_harness import status_service
from tests.integration.test_org_commands import woosync as woosync_db
from tests.integration.test_schedule_routes import a_store
from tests.integration.test_sync_cli import STORE_SECRETS, producer_stand_in, start_args, woosync  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration

SHOP = "https://shop.example.com"


@pytest.fixture
async def acme(db_pool):
    org_id, token = await organizations.create_organization(db_pool, name="Acme")
    await a_store(db_pool, org_id, SHOP)
    return org_id, token


async def test_set_list_and_delete_schedules_which_the_api_then_shows(database_url, db_pool, amqp_url, acme) -> None:
    org_id, token = acme
    made = woosync_db(database_url, "schedule", "set", "--org", "Acme", "--url", SHOP + "/", "--kind", "incremental",
                      "--every", "15m")
    assert made.returncode == 0, made.stderr
    assert "incremental" in made.stdout and "every 15m" in made.stdout and "enabled" in made.stdout
    full = woosync_db(database_url, "schedule", "set", "--org", str(org_id), "--url", SHOP, "--kind", "full",
                      "--every", "1d", "--json")
    assert full.returncode == 0, full.stderr
    assert {k: json.loads(full.stdout)[k] for k in ("store_url", "kind", "every_s", "enabled")} == {
        "store_url": SHOP, "kind": "full", "every_s": 86400, "enabled": True}

    # --disable without --every keeps the interval.
    off = woosync_db(database_url, "schedule", "set", "--org", "Acme", "--url", SHOP, "--kind", "incremental", "--disable")
    assert off.returncode == 0 and "disabled" in off.stdout and "every 15m" in off.stdout, off.stdout + off.stderr

    listed = woosync_db(database_url, "schedule", "list", "--org", "Acme", "--json")
    assert [(s["kind"], s["every_s"], s["enabled"]) for s in json.loads(listed.stdout)] == [
        ("full", 86400, True), ("incremental", 900, False)]
    text = woosync_db(database_url, "schedule", "list", "--org", "Acme").stdout
    assert "every 1d" in text and "every 15m" in text and "last never" in text

    async with status_service(db_pool, amqp_url) as api:
        shown = (await api.client.get("/api/v1/sync/schedules", headers=api.auth(token))).json()["data"]["items"]
    assert [(s["store_url"], s["kind"], s["every_s"], s["enabled"]) for s in shown] == [
        (SHOP, "full", 86400, True), (SHOP, "incremental", 900, False)]

    deleted = woosync_db(database_url, "schedule", "delete", "--org", "Acme", "--url", SHOP, "--kind", "full")
    assert deleted.returncode == 0 and "1 full schedule deleted" in deleted.stdout
    rest = woosync_db(database_url, "schedule", "delete", "--org", "Acme", "--url", SHOP)
    assert "1 schedules deleted" in rest.stdout
    assert "has no schedules" in woosync_db(database_url, "schedule", "list", "--org", "Acme").stdout


@pytest.mark.parametrize(("args", "fragment"), [
    (["--url", "https://never.example.com", "--kind", "full", "--every", "1h"], "run a sync of it first"),
    (["--url", SHOP, "--kind", "full"], "give --every"),
    (["--url", SHOP, "--kind", "full", "--every", "30s"], "between 60 s"),
    (["--url", SHOP, "--kind", "full", "--every", "hourly"], "not an interval"),
    (["--url", SHOP, "--kind", "weekly", "--every", "1h"], "invalid choice"),
    (["--url", "ftp://shop.example.com", "--kind", "full", "--every", "1h"], "--url must be an http or https URL"),
])
async def test_bad_input_exits_2_naming_the_problem_and_sets_nothing(database_url, db_pool, acme, args, fragment) -> None:
    refused = woosync_db(database_url, "schedule", "set", "--org", "Acme", *args)
    assert refused.returncode == 2, refused.stdout
    assert fragment in refused.stderr
    assert await db_pool.fetchval("SELECT count(*) FROM woo_sync_schedule") == 0


async def test_an_unknown_organisation_exits_2(database_url) -> None:
    refused = woosync_db(database_url, "schedule", "list", "--org", "Nobody")
    assert refused.returncode == 2 and "no organisation 'Nobody'" in refused.stderr


async def test_prune_status_shows_the_producers_retention_schedule(database_url, db_pool) -> None:
    never = woosync_db(database_url, "prune", "--status")
    assert never.returncode == 0, never.stderr
    assert "has not run yet" in never.stdout and "WOOSYNC_PRUNE_KEEP_DAYS" in never.stdout
    await db_pool.execute("UPDATE maintenance_task SET last_run_at = now(), last_result = $1 WHERE task = 'prune'",
                          {"deleted_queues": 7, "keep_days": 30})
    ran = woosync_db(database_url, "prune", "--status")
    assert "deleted 7 sync queue(s) finished more than 30 day(s) ago" in ran.stdout and "next due" in ran.stdout
    assert woosync_db(database_url, "prune").returncode == 2  # one of --older-than-days or --status


async def test_sync_start_mode_incremental_puts_the_mode_in_the_request(amqp_url, producer_stand_in) -> None:  # noqa: F811
    async def accept(request: StartSync) -> dict[str, Any]:
        return {"queue_id": str(uuid.uuid4()), "state": "draft", "total_count": 0}

    received = await producer_stand_in(accept)
    code, _, stderr = await woosync(*start_args(uuid.uuid4(), "--mode", "incremental", "--json"),
                                    env={"WOOSYNC_AMQP_URL": amqp_url, **STORE_SECRETS})
    assert code == 0, stderr
    code, _, stderr = await woosync(*start_args(uuid.uuid4(), "--json"), env={"WOOSYNC_AMQP_URL": amqp_url, **STORE_SECRETS})
    assert code == 0, stderr
    assert [request.options.mode for request in received] == ["incremental", "full"]


async def test_sync_start_mode_incremental_of_one_customer_exits_2_naming_mode() -> None:
    code, _, stderr = await woosync(*start_args(uuid.uuid4(), "--mode", "incremental", "--email", "a@example.com"),
                                    env={"WOOSYNC_AMQP_URL": "amqp://guest:guest@127.0.0.1:1/", **STORE_SECRETS},
                                    timeout=30)
    assert code == 2 and "--mode" in stderr and "sweeps the whole store" in stderr, stderr
