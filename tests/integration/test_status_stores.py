"""Sweep freshness (docs/contract.md section 10, "Freshness") in-process against a real PostgreSQL
and RabbitMQ: GET /api/v1/sync/stores lists the organisation's stores with their last completed
sweep, the seconds since and whether the incremental schedule is overdue; /metrics has the oldest
sweep's age and the overdue stores of every organisation, with no store label."""

from __future__ import annotations

import pytest

from shared.repository import stores
from tests.integration.status_harness import an_organization, status_service
from tests.integration.test_status_metrics import samples

pytestmark = pytest.mark.integration

ROUTE = "/api/v1/sync/stores"


@pytest.fixture
async def api(db_pool, amqp_url):
    async with status_service(db_pool, amqp_url) as status:
        status.ctx.queue_gauge_max_age_s = 0  # every scrape reads the database
        yield status


async def a_store(pool, org_id, url: str, *, swept_s_ago: float | None = None, every_s: int | None = None,
                  scheduled_s_ago: float = 0, enabled: bool = True, kind: str = "incremental"):
    """A store, its last completed sweep `swept_s_ago` seconds ago, and a schedule of `kind`."""
    store_id = await stores.record_store(pool, org_id=org_id, url=url, consumer_key="ck_1", consumer_secret="cs_1",
                                         cipher=None)
    if swept_s_ago is not None:
        await pool.execute(
            "INSERT INTO woo_store_sweep (store_id, org_id, watermark, highest_customer_id, completed_at) "
            "VALUES ($1, $2, now() - make_interval(secs => $3 + 5), 100, now() - make_interval(secs => $3))",
            store_id, org_id, float(swept_s_ago))
    if every_s is not None:
        await pool.execute(
            "INSERT INTO woo_sync_schedule (org_id, store_id, kind, every_s, enabled, created_at) "
            "VALUES ($1, $2, $3, $4, $5, now() - make_interval(secs => $6))",
            org_id, store_id, kind, every_s, enabled, float(scheduled_s_ago))
    return store_id


async def test_each_store_shows_its_last_sweep_the_seconds_since_and_whether_it_is_overdue(api, db_pool) -> None:
    acme, token = await an_organization(db_pool, "Acme")
    other, other_token = await an_organization(db_pool, "Other")
    behind = await a_store(db_pool, acme, "https://a-behind.example", swept_s_ago=1800, every_s=600)
    current = await a_store(db_pool, acme, "https://b-current.example", swept_s_ago=120, every_s=600)
    await a_store(db_pool, acme, "https://c-unscheduled.example")
    # Scheduled an hour ago, never swept since: overdue from the schedule's creation.
    never = await a_store(db_pool, acme, "https://d-never.example", every_s=60, scheduled_s_ago=3600)
    # Another organisation's long-unswept store whose schedule is disabled: not theirs to see, not overdue.
    await a_store(db_pool, other, "https://e-other.example", swept_s_ago=18000, every_s=600, enabled=False)

    response = await api.client.get(ROUTE, headers=api.auth(token))
    assert response.status_code == 200, response.text
    page = response.json()["data"]
    by_url = {store["url"]: store for store in page["items"]}
    assert list(by_url) == ["https://a-behind.example", "https://b-current.example", "https://c-unscheduled.example",
                            "https://d-never.example"]
    assert page["next_offset"] is None
    a, b, c, d = by_url.values()
    assert a["store_id"] == str(behind) and a["sweep_every_s"] == 600 and a["sweep_overdue"] is True
    assert 1800 <= a["seconds_since_sweep"] < 1900 and a["last_sweep_at"] and a["watermark"]
    assert b["store_id"] == str(current) and b["sweep_overdue"] is False and 120 <= b["seconds_since_sweep"] < 220
    assert (c["last_sweep_at"], c["seconds_since_sweep"], c["watermark"], c["sweep_every_s"], c["sweep_overdue"]) == \
        (None, None, None, None, False)
    assert d["store_id"] == str(never) and d["last_sweep_at"] is None and d["sweep_overdue"] is True

    theirs = (await api.client.get(ROUTE, headers=api.auth(other_token))).json()["data"]["items"]
    assert [(store["url"], store["sweep_overdue"]) for store in theirs] == [("https://e-other.example", False)]

    first = (await api.client.get(ROUTE, params={"limit": 2}, headers=api.auth(token))).json()["data"]
    assert [store["url"] for store in first["items"]] == ["https://a-behind.example", "https://b-current.example"]
    assert first["next_offset"] == 2

    # Every organisation's stores with an enabled incremental schedule; no store label.
    exposition = (await api.client.get("/metrics")).text
    oldest = samples(exposition, "woosync_sweep_oldest_age_seconds")
    overdue = samples(exposition, "woosync_sweeps_overdue_stores")
    assert list(oldest) == [()] and 3600 <= oldest[()] < 3700, oldest  # the store never swept, scheduled an hour ago
    assert overdue == {(): 2.0}


async def test_a_full_schedule_alone_neither_counts_nor_makes_a_store_overdue(api, db_pool) -> None:
    acme, token = await an_organization(db_pool, "Acme")
    await a_store(db_pool, acme, "https://full-only.example", swept_s_ago=90_000, every_s=3600, kind="full")
    [store] = (await api.client.get(ROUTE, headers=api.auth(token))).json()["data"]["items"]
    assert store["sweep_every_s"] is None and store["sweep_overdue"] is False and store["seconds_since_sweep"] >= 90_000
    exposition = (await api.client.get("/metrics")).text
    assert samples(exposition, "woosync_sweep_oldest_age_seconds") == {(): 0.0}
    assert samples(exposition, "woosync_sweeps_overdue_stores") == {(): 0.0}


async def test_the_stores_route_needs_a_token_and_refuses_unknown_parameters(api, db_pool) -> None:
    _, token = await an_organization(db_pool, "Acme")
    assert (await api.client.get(ROUTE)).status_code == 401
    refused = await api.client.get(ROUTE, params={"sort": "url"}, headers=api.auth(token))
    assert refused.status_code == 400 and "sort" in refused.json()["error"]
