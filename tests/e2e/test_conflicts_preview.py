"""Previews, unchanged rows and conflict policies through the real processes, with the simulator
as the store (docs/contract.md section 10)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import orjson
import pytest

from shared import organizations
from tests.e2e.test_pipeline import expected_row, expected_tags
from tests.waiting import eventually
from woosync.simulator.data import SimulatedStore

pytestmark = pytest.mark.e2e

CUSTOMERS = 30
SEED = 7
TAG_ORDER = ("woocommerce", "high-value", "prospect", "active")


class Api:
    def __init__(self, port: int, token: str) -> None:
        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30,
                                      headers={"Authorization": f"Bearer {token}"})

    async def start(self, path: str, store_url: str, **options) -> str:
        answer = await self.http.post(path, json={
            "store": {"url": store_url, "consumer_key": "ck_test", "consumer_secret": "cs_test"}, "options": options})
        assert answer.status_code == 202, answer.text
        return answer.json()["data"]["id"]

    async def finished(self, queue_id: str) -> dict:
        async def done():
            status = (await self.http.get(f"/api/v1/sync/queues/{queue_id}")).json()["data"]
            return status if status["state"] in ("done", "failed", "partial", "cancelled") else None

        return await eventually(done, timeout=120, interval=0.2, what=f"queue {queue_id} to finish")

    async def conflicts(self, queue_id: str) -> list[dict]:
        answer = await self.http.get(f"/api/v1/sync/queues/{queue_id}/conflicts")
        assert answer.status_code == 200, answer.text
        return answer.json()["data"]["items"]


@pytest.fixture
async def running(pipeline):
    as_of = datetime.now(timezone.utc).date()
    pipeline.simulator("--valid-emails-only", "--as-of", as_of.isoformat(), customers=CUSTOMERS, seed=SEED)
    pipeline.producer()
    pipeline.consumer()
    _, port = pipeline.status()
    token = await organizations.create_token(pipeline.pool, pipeline.org_id)
    api = Api(port, token)
    store = SimulatedStore(CUSTOMERS, SEED, as_of=as_of, base_url=pipeline.store_url, valid_emails_only=True)
    try:
        yield api, store
    finally:
        await api.http.aclose()


def _expected(pipeline, store, woo_id: int) -> dict | None:
    """The row a sync writes for the customer (tags included), or None when its `active` tag
    depends on the very moment it is mapped."""
    customer, orders = store.customer(woo_id), store.orders_for(woo_id)
    now = datetime.now(timezone.utc)
    tag_sets = expected_tags(orders, started=now, finished=now + timedelta(minutes=5))
    if len(tag_sets) != 1:
        return None
    row = expected_row(customer, orders, org_id=pipeline.org_id, store_url=pipeline.store_url)
    row["tags"] = [tag for tag in TAG_ORDER if tag in tag_sets[0]]
    return row


async def _insert(pool, row: dict) -> None:
    columns = list(row)
    await pool.execute(
        f"INSERT INTO customer ({', '.join(columns)}) VALUES ({', '.join(f'${i + 1}' for i in range(len(columns)))})",
        *row.values())


async def _table_dump(pool) -> str:
    return await pool.fetchval("SELECT coalesce(string_agg(c::text, E'\\n' ORDER BY c.id), '') FROM customer c")


def _json(value):
    """A value as the preview reports it (money with two decimals, times in ISO 8601 UTC)."""
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat()
    if hasattr(value, "quantize"):
        return f"{value:.2f}"
    return value


async def test_a_preview_reports_exactly_what_a_sync_would_do_and_writes_no_customer_row(pipeline, running):
    api, store = running
    ids = [woo_id for woo_id in store.customer_ids("all") if _expected(pipeline, store, woo_id) is not None]
    assert len(ids) >= 20
    matching, different, missing = ids[:8], ids[8:16], ids[16:]
    expected_changes: dict[int, dict] = {}
    for index, woo_id in enumerate(different):
        row = _expected(pipeline, store, woo_id)
        old = dict(row, phone="+1 555 0100")
        changes = {"phone": [old["phone"], row["phone"]]}
        if index % 2 == 0:
            old["name"] = "Someone Else"
            changes["name"] = ["Someone Else", row["name"]]
        await _insert(pipeline.pool, old)
        expected_changes[woo_id] = changes
    for woo_id in matching:
        await _insert(pipeline.pool, _expected(pipeline, store, woo_id))
    before = await _table_dump(pipeline.pool)

    queue_id = await api.start("/api/v1/sync/preview", pipeline.store_url)
    status = await api.finished(queue_id)

    assert status["kind"] == "preview" and status["state"] == "done", status
    report = status["preview"]
    assert report["would_create"] == CUSTOMERS - len(matching) - len(different)  # `missing`, and any not in `ids`
    assert report["would_update"] == len(different)
    assert report["unchanged"] == len(matching)
    assert report["would_fail"] == 0 and report["conflicts"] == 0
    assert report["field_changes"] == {"phone": len(different), "name": len(different[::2])}
    samples = {sample["woo_customer_id"]: sample for sample in report["samples"]}
    for woo_id, changes in expected_changes.items():
        assert samples[woo_id]["action"] == "update" and samples[woo_id]["changes"] == changes, samples[woo_id]
    for woo_id in missing:
        if woo_id in samples:
            row = _expected(pipeline, store, woo_id)
            assert samples[woo_id]["action"] == "create"
            assert samples[woo_id]["changes"]["email"] == [None, row["email"]]
            assert samples[woo_id]["changes"]["lifetime_value"] == [None, _json(row["lifetime_value"])]
    assert await _table_dump(pipeline.pool) == before
    assert await pipeline.pool.fetchval("SELECT count(*) FROM customer_sync_written") == 0


async def _sync(api, pipeline, **options) -> dict:
    status = await api.finished(await api.start("/api/v1/sync/queues", pipeline.store_url, **options))
    assert status["state"] == "done", status
    return status


async def test_a_second_full_sync_of_an_unchanged_store_updates_no_customer_row(pipeline, running):
    api, _ = running
    await _sync(api, pipeline)
    rows = await pipeline.pool.fetch("SELECT id, xmin::text AS xmin, updated_at FROM customer ORDER BY id")
    assert len(rows) == CUSTOMERS

    second = await _sync(api, pipeline)

    assert await pipeline.pool.fetch("SELECT id, xmin::text AS xmin, updated_at FROM customer ORDER BY id") == rows
    outcomes = await pipeline.pool.fetch(
        "SELECT outcome, was_update, count(*) AS n FROM woo_customer_sync_queue_line WHERE queue_id = $1 GROUP BY 1, 2",
        second["id"])
    assert [(r["outcome"], r["was_update"], r["n"]) for r in outcomes] == [("unchanged", True, CUSTOMERS)]


async def test_a_local_phone_edit_is_kept_under_local_wins_and_overwritten_under_store_wins(pipeline, running):
    api, store = running
    await _sync(api, pipeline)
    edited, store_changed = store.customer_ids("all")[2], store.customer_ids("all")[4]
    store_phone = await pipeline.pool.fetchval("SELECT phone FROM customer WHERE woo_customer_id = $1", edited)
    await pipeline.pool.execute("UPDATE customer SET phone = '+44 20 7946 0000' WHERE woo_customer_id = $1", edited)

    async def store_changes_company(woo_id: int) -> str:
        """As if the store's company had changed since the last sync: the row and what woosync
        wrote hold an older value, nobody edited it locally."""
        company = await pipeline.pool.fetchval("SELECT company FROM customer WHERE woo_customer_id = $1", woo_id)
        await pipeline.pool.execute(
            """UPDATE customer SET company = 'Old Company' WHERE woo_customer_id = $1;""", woo_id)
        await pipeline.pool.execute(
            """UPDATE customer_sync_written w SET written = jsonb_set(w.written, '{company}', '"Old Company"')
                 FROM customer c WHERE c.id = w.customer_id AND c.woo_customer_id = $1""", woo_id)
        return company

    refused = await api.http.put("/api/v1/organization/conflict-policy", json={"conflict_policy": "whatever"})
    assert refused.status_code == 422 and "store_wins" in refused.text and "local_wins" in refused.text
    changed = await api.http.put("/api/v1/organization/conflict-policy", json={"conflict_policy": "local_wins"})
    assert changed.json()["data"]["conflict_policy"] == "local_wins"
    company = await store_changes_company(store_changed)

    kept = await _sync(api, pipeline)

    assert kept["options"]["conflict_policy"] == "local_wins" and kept["conflict_count"] == 1
    row = await pipeline.pool.fetchrow("SELECT phone FROM customer WHERE woo_customer_id = $1", edited)
    assert row["phone"] == "+44 20 7946 0000"
    assert await pipeline.pool.fetchval("SELECT company FROM customer WHERE woo_customer_id = $1", store_changed) == company
    [conflict] = await api.conflicts(kept["id"])
    assert (conflict["woo_customer_id"], conflict["field"], conflict["local_value"], conflict["store_value"],
            conflict["resolution"]) == (edited, "phone", "+44 20 7946 0000", store_phone, "kept_local")

    company = await store_changes_company(store_changed)
    overwritten = await _sync(api, pipeline, conflict_policy="store_wins")

    assert overwritten["options"]["conflict_policy"] == "store_wins" and overwritten["conflict_count"] == 1
    assert await pipeline.pool.fetchval("SELECT phone FROM customer WHERE woo_customer_id = $1", edited) == store_phone
    assert await pipeline.pool.fetchval("SELECT company FROM customer WHERE woo_customer_id = $1", store_changed) == company
    [conflict] = await api.conflicts(overwritten["id"])
    assert (conflict["field"], conflict["local_value"], conflict["store_value"], conflict["resolution"]) == (
        "phone", "+44 20 7946 0000", store_phone, "store_written")

    again = await _sync(api, pipeline)  # the organisation's local_wins, nothing edited since
    assert again["conflict_count"] == 0 and await api.conflicts(again["id"]) == []


async def test_an_unknown_conflict_policy_is_refused_naming_the_allowed_values(pipeline, running):
    api, _ = running
    answer = await api.http.post("/api/v1/sync/queues", json={
        "store": {"url": pipeline.store_url, "consumer_key": "ck_test", "consumer_secret": "cs_test"},
        "options": {"conflict_policy": "newest_wins"}})
    assert answer.status_code == 422
    body = answer.json()
    assert "conflict_policy" in orjson.dumps(body).decode()
    assert "store_wins" in body["error"] and "local_wins" in body["error"]
