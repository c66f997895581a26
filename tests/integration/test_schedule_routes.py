"""PUT, GET and DELETE /api/v1/sync/schedules (docs/contract.md section 10, "Schedules") in-process
against a real PostgreSQL and RabbitMQ: only a store the organisation synced can be scheduled,
input is refused naming the field, and an organisation sees and changes only its own schedules."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from shared.repository import stores
from tests.integration.status_harness import an_organization, status_service

pytestmark = pytest.mark.integration

SHOP = "https://shop.example.com"
ROUTE = "/api/v1/sync/schedules"


async def a_store(pool, org_id, url: str = SHOP, *, verified: bool = True):
    """A store as a sync leaves it: recorded, its credentials accepted by the store (verified)."""
    store_id = await stores.record_store(pool, org_id=org_id, url=url, consumer_key="ck_1", consumer_secret="cs_1",
                                         cipher=None)
    if verified:
        await stores.save_verified_credentials(pool, store_id, consumer_key="ck_1", consumer_secret="cs_1", cipher=None)
    return store_id


@pytest.fixture
async def api(db_pool, amqp_url):
    async with status_service(db_pool, amqp_url) as status:
        yield status


@pytest.fixture
async def acme(db_pool):
    org_id, token = await an_organization(db_pool, "Acme")
    await a_store(db_pool, org_id)
    return org_id, token


def error_of(response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["error"]
    return body["error"]


async def test_a_synced_stores_schedule_is_created_listed_updated_and_disabled(api, acme) -> None:
    _, token = acme
    # The URL as a person types it: normalised as every sync's is.
    created = await api.client.put(ROUTE, headers=api.auth(token),
                                   json={"store_url": "https://Shop.Example.com/", "kind": "incremental", "every_s": 900})
    assert created.status_code == 200, created.text
    schedule = created.json()["data"]
    assert (schedule["store_url"], schedule["kind"], schedule["every_s"], schedule["enabled"]) == (SHOP, "incremental", 900, True)
    assert schedule["last_run_at"] is None and schedule["last_queue_key"] is None and schedule["last_error"] is None
    # A new schedule's first run is due at once.
    assert datetime.fromisoformat(schedule["next_run_at"]) <= datetime.fromisoformat(schedule["created_at"]) + timedelta(seconds=1)

    full = await api.client.put(ROUTE, headers=api.auth(token), json={"store_url": SHOP, "kind": "full", "every_s": 86400})
    assert full.status_code == 200, full.text
    listed = (await api.client.get(ROUTE, headers=api.auth(token))).json()["data"]
    assert [(s["kind"], s["every_s"]) for s in listed["items"]] == [("full", 86400), ("incremental", 900)]
    assert listed["next_offset"] is None

    disabled = await api.client.put(ROUTE, headers=api.auth(token),
                                    json={"store_url": SHOP, "kind": "incremental", "enabled": False})
    assert disabled.status_code == 200, disabled.text
    assert (disabled.json()["data"]["enabled"], disabled.json()["data"]["every_s"]) == (False, 900)  # interval kept
    faster = await api.client.put(ROUTE, headers=api.auth(token), json={"store_url": SHOP, "kind": "incremental", "every_s": 60})
    assert (faster.json()["data"]["enabled"], faster.json()["data"]["every_s"]) == (True, 60)

    page = (await api.client.get(f"{ROUTE}?limit=1", headers=api.auth(token))).json()["data"]
    assert len(page["items"]) == 1 and page["next_offset"] == 1


async def test_a_store_not_synced_cannot_be_scheduled_and_the_answer_says_to_sync_it_first(api, db_pool, acme) -> None:
    org_id, token = acme
    never = await api.client.put(ROUTE, headers=api.auth(token),
                                 json={"store_url": "https://other.example.com", "kind": "full", "every_s": 3600})
    assert "run a sync of it first" in error_of(never, 409)
    await a_store(db_pool, org_id, "https://untested.example.com", verified=False)
    untested = await api.client.put(ROUTE, headers=api.auth(token),
                                    json={"store_url": "https://untested.example.com", "kind": "full", "every_s": 3600})
    assert "run a sync of it first" in error_of(untested, 409)
    assert (await api.client.get(ROUTE, headers=api.auth(token))).json()["data"]["items"] == []


async def test_an_organisation_sees_and_changes_only_its_own_schedules(api, db_pool, acme) -> None:
    _, acme_token = acme
    globex_id, globex_token = await an_organization(db_pool, "Globex")
    body = {"store_url": SHOP, "kind": "full", "every_s": 3600}
    assert (await api.client.put(ROUTE, headers=api.auth(acme_token), json=body)).status_code == 200

    # Acme's store is not Globex's: Globex must sync it itself before scheduling it.
    assert "run a sync of it first" in error_of(await api.client.put(ROUTE, headers=api.auth(globex_token), json=body), 409)
    assert (await api.client.get(ROUTE, headers=api.auth(globex_token))).json()["data"]["items"] == []
    gone = await api.client.delete(ROUTE, headers=api.auth(globex_token), params={"store_url": SHOP})
    assert gone.json()["data"] == {"deleted": 0}

    # Once Globex synced the same store, it has a schedule of its own beside Acme's.
    await a_store(db_pool, globex_id)
    assert (await api.client.put(ROUTE, headers=api.auth(globex_token), json={**body, "every_s": 7200})).status_code == 200
    acme_list = (await api.client.get(ROUTE, headers=api.auth(acme_token))).json()["data"]["items"]
    globex_list = (await api.client.get(ROUTE, headers=api.auth(globex_token))).json()["data"]["items"]
    assert [s["every_s"] for s in acme_list] == [3600] and [s["every_s"] for s in globex_list] == [7200]


async def test_delete_removes_one_kind_or_both_and_is_idempotent(api, acme) -> None:
    _, token = acme
    for kind in ("incremental", "full"):
        await api.client.put(ROUTE, headers=api.auth(token), json={"store_url": SHOP, "kind": kind, "every_s": 600})
    one = await api.client.delete(ROUTE, headers=api.auth(token), params={"store_url": SHOP, "kind": "full"})
    assert one.json()["data"] == {"deleted": 1}
    assert [s["kind"] for s in (await api.client.get(ROUTE, headers=api.auth(token))).json()["data"]["items"]] == ["incremental"]
    rest = await api.client.delete(ROUTE, headers=api.auth(token), params={"store_url": SHOP + "/"})
    assert rest.json()["data"] == {"deleted": 1}
    again = await api.client.delete(ROUTE, headers=api.auth(token), params={"store_url": SHOP})
    assert again.status_code == 200 and again.json()["data"] == {"deleted": 0}


@pytest.mark.parametrize(("body", "field", "fragment"), [
    ({"store_url": SHOP, "kind": "full", "every_s": 59}, "every_s", "greater than or equal to 60"),
    ({"store_url": SHOP, "kind": "full", "every_s": "often"}, "every_s", "integer"),
    ({"store_url": SHOP, "kind": "hourly", "every_s": 3600}, "kind", "'incremental' or 'full'"),
    ({"store_url": "ftp://shop.example.com", "kind": "full", "every_s": 3600}, "store_url", "http(s) base URL"),
    ({"kind": "full", "every_s": 3600}, "store_url", "required"),
    ({"store_url": SHOP, "every_s": 3600}, "kind", "required"),
    ({"store_url": SHOP, "kind": "full", "every_s": 3600, "enabled": "sometimes"}, "enabled", "boolean"),
    ({"store_url": SHOP, "kind": "full", "every_s": 3600, "cron": "* * * * *"}, "cron", "not permitted"),
    # Creating a schedule needs its interval (updating one keeps it).
    ({"store_url": SHOP, "kind": "full"}, "every_s", "every_s is required"),
])
async def test_an_invalid_schedule_is_422_naming_the_field(api, acme, body, field, fragment) -> None:
    _, token = acme
    response = await api.client.put(ROUTE, headers=api.auth(token), json=body)
    message = error_of(response, 422)
    assert fragment in message, message
    assert field in {detail["field"] for detail in response.json()["details"]}
    assert (await api.client.get(ROUTE, headers=api.auth(token))).json()["data"]["items"] == []


@pytest.mark.parametrize(("params", "fragment"), [
    ({}, "store_url is required"),
    ({"store_url": "not a url"}, "store_url"),
    ({"store_url": SHOP, "kind": "hourly"}, "kind must be one of incremental, full"),
    ({"store_url": SHOP, "sort": "kind"}, "unknown query parameter"),
])
async def test_a_bad_delete_is_400_naming_the_parameter(api, acme, params, fragment) -> None:
    _, token = acme
    assert fragment in error_of(await api.client.delete(ROUTE, headers=api.auth(token), params=params), 400)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_every_schedule_route_needs_a_valid_token_before_anything_else(api, method) -> None:
    response = await api.client.request(method, ROUTE, params={"store_url": SHOP} if method == "DELETE" else None,
                                        json={"store_url": SHOP, "kind": "full", "every_s": 3600} if method == "PUT" else None)
    assert "Authorization" in error_of(response, 401)
    refused = await api.client.request(method, ROUTE, headers={"Authorization": "Bearer wsk_nobody_000000000000000000"},
                                       json={"kind": "nonsense"} if method == "PUT" else None)
    assert "invalid or revoked" in error_of(refused, 401)
