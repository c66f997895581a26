"""The fleet's request budget per store host in PostgreSQL (shared/repository/store_budget.py) and
one process's leases of it (shared/woocommerce/budget.py), with a store behind httpx MockTransport:
slots are evenly spaced across every holder, a store that says slow down holds its host for every
holder without spending a try, and the rate a request sets is the host's lowest."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from datetime import datetime, timezone

import asyncpg
import httpx
import pytest

from shared.metrics import Metrics
from shared.repository import queue_lines, store_budget, stores
from shared.woocommerce.budget import DEFAULT_LEASE_S, HEADROOM, FleetBudgets, StoreHeld, budget_key
from shared.woocommerce.client import WooCommerceClient
from shared.woocommerce.credentials import StoreCredentials
from tests.integration.repository_setup import new_org, new_queue
from tests.integration.status_harness import STORE_URL, a_queue, an_organization, status_service

pytestmark = pytest.mark.integration

URL = "https://shop.example.com"


def lease(pool: asyncpg.Pool, url: str = URL, *, wanted: int = 100, rate: float | None = 5.0, lease_s: float = 1.0):
    return store_budget.lease(pool, url, wanted=wanted, default_rate=rate, lease_s=lease_s, headroom=1.0)


# ------------------------------------------------------------------------ the table and its functions
async def test_leases_hand_out_consecutive_slots_a_second_at_a_time(db_pool: asyncpg.Pool) -> None:
    first = await lease(db_pool)
    second = await lease(db_pool)
    assert (first.tokens, first.interval_s) == (5, pytest.approx(0.2))
    assert first.start_in_s == pytest.approx(0, abs=0.05)
    assert 0.7 < second.start_in_s <= 1.0  # after the first lease's slots (less the time between the calls)
    assert (await lease(db_pool, wanted=2)).tokens == 2


async def test_concurrent_leases_never_share_a_slot(db_pool: asyncpg.Pool) -> None:
    leases = await asyncio.gather(*(lease(db_pool, wanted=3) for _ in range(20)))
    assert sum(granted.tokens for granted in leases) == 60
    # 60 slots of 0.2 s handed out back to back: the next free slot is 12 s away, less the time
    # the calls took (they queue on the row's lock, so no two took the same slots).
    ahead = await db_pool.fetchval("SELECT extract(epoch FROM tat - now())::float8 FROM store_budget")
    assert 10.5 < ahead <= 12.0


async def test_the_budget_is_keyed_by_host_and_port(db_pool: asyncpg.Pool) -> None:
    await lease(db_pool, "https://shop.example.com/store-a")
    assert (await lease(db_pool, "https://shop.example.com/store-b")).start_in_s > 0.7  # same host
    assert (await lease(db_pool, "https://shop.example.com:8443")).start_in_s < 0.05
    assert budget_key("https://Shop.Example.com:8443/x") == "shop.example.com:8443"
    assert await db_pool.fetchval("SELECT store_budget_host('https://shop.example.com:8443/x')") == "shop.example.com:8443"


async def test_without_a_rate_limit_a_lease_is_free_for_its_time(db_pool: asyncpg.Pool) -> None:
    granted = await lease(db_pool, rate=None)
    assert granted.tokens is None and granted.interval_s == 0 and granted.start_in_s == pytest.approx(0, abs=0.05)


async def test_a_hold_stops_every_lease_until_it_ends_and_halves_the_budget_once(db_pool: asyncpg.Pool) -> None:
    assert await store_budget.hold(db_pool, URL, seconds=3, status=429) == pytest.approx(3, abs=0.05)
    # Other processes report the same storm: the hold is not halved again.
    assert 2.5 < await store_budget.hold(db_pool, URL, seconds=2, status=429) <= 3.0
    granted = await lease(db_pool)
    assert 2.5 < granted.start_in_s <= 3.0
    assert 2.5 < granted.held_for_s <= 3.0
    assert granted.factor == pytest.approx(0.5, abs=0.01)
    assert granted.interval_s == pytest.approx(0.4, abs=0.01)  # half the rate
    (throttle,) = (await store_budget.throttles(db_pool, [URL])).values()
    assert throttle.held_until is not None and throttle.holds == 1


async def test_a_hold_is_bounded_and_the_budget_recovers_linearly(db_pool: asyncpg.Pool) -> None:
    held = await store_budget.hold(db_pool, URL, seconds=86_400, status=503)
    assert held == pytest.approx(store_budget.MAX_HOLD_S, abs=0.1)
    # As if the hold had started half the recovery time ago: half-way back from 0.5 to 1.
    await db_pool.execute("UPDATE store_budget SET held_until = now(), slowed_at = now() - make_interval(secs => $1)",
                          store_budget.RECOVERY_S / 4)
    assert (await lease(db_pool)).factor == pytest.approx(0.75, abs=0.01)


async def test_the_lowest_rate_any_organisation_set_for_a_host_wins(db_pool: asyncpg.Pool) -> None:
    first, second = await new_org(db_pool, "First"), await new_org(db_pool, "Second")
    store_a = await stores.record_store(db_pool, org_id=first, url=URL, consumer_key="ck", consumer_secret="cs", cipher=None)
    store_b = await stores.record_store(db_pool, org_id=second, url=URL + "/shop", consumer_key="ck", consumer_secret="cs",
                                        cipher=None)
    rate = "SELECT rate_limit FROM store_budget WHERE host = 'shop.example.com'"
    await store_budget.set_store_rate_limit(db_pool, store_a, 8.0)
    assert await db_pool.fetchval(rate) == 8.0
    await store_budget.set_store_rate_limit(db_pool, store_b, 2.0)
    assert await db_pool.fetchval(rate) == 2.0
    assert (await lease(db_pool, rate=50.0)).interval_s == pytest.approx(0.5)  # the row's rate, not the default
    await store_budget.set_store_rate_limit(db_pool, store_b, None)
    assert await db_pool.fetchval(rate) == 8.0
    await store_budget.set_store_rate_limit(db_pool, store_a, None)
    assert await db_pool.fetchval(rate) is None
    with pytest.raises(asyncpg.CheckViolationError):
        await db_pool.execute("UPDATE woo_store SET rate_limit = 'NaN' WHERE id = $1", store_a)


# ------------------------------------------------------------------------ one process's leases
async def test_requests_of_several_processes_are_evenly_spaced_at_the_rate(db_pool: asyncpg.Pool) -> None:
    processes = [FleetBudgets(db_pool, default_rate=10.0) for _ in range(3)]
    sent: list[float] = []

    async def request(fleet: FleetBudgets) -> None:
        await fleet.for_store(URL).acquire()
        sent.append(time.monotonic())

    started = time.monotonic()
    await asyncio.gather(*(request(fleet) for fleet in processes for _ in range(10)))
    sent.sort()
    elapsed = sent[-1] - started
    # 30 requests at 10/s (slots spaced for HEADROOM of it): about 3.2 s, never faster.
    assert elapsed >= 29 / (10 * HEADROOM) - 0.1
    assert max(sum(1 for t in sent if s <= t < s + 1.0) for s in sent) <= 10


async def test_a_hold_reported_by_one_process_stops_the_others(db_pool: asyncpg.Pool) -> None:
    one, other = FleetBudgets(db_pool, default_rate=None), FleetBudgets(db_pool, default_rate=None)
    await other.for_store(URL).acquire()  # it holds a free lease
    await one.for_store(URL).hold(1.0, status=429)
    started = time.monotonic()
    await FleetBudgets(db_pool, default_rate=None).for_store(URL).acquire()
    assert time.monotonic() - started >= 0.9


# ------------------------------------------------------------------------ the client with a budget
def rate_limited_store(storm_answers: int, retry_after: str = "1"):
    """A store answering 429 with Retry-After `storm_answers` times, then an empty list."""
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] <= storm_answers:
            return httpx.Response(429, headers={"Retry-After": retry_after}, text="<html>slow down</html>")
        return httpx.Response(200, json=[], headers={"X-WP-Total": "0", "X-WP-TotalPages": "0"})

    return httpx.MockTransport(handler), calls


def client(db_pool: asyncpg.Pool, transport: httpx.MockTransport, *, patience_s: float, metrics: Metrics | None = None):
    budgets = FleetBudgets(db_pool, default_rate=50.0, metrics=metrics)
    credentials = StoreCredentials(url=URL, consumer_key="ck_x", consumer_secret="cs_x", auth="basic")
    return WooCommerceClient(credentials, transport=transport, max_tries=2, budget=budgets.for_store(URL),
                             hold_patience_s=patience_s, backoff_base_s=0.01, metrics=metrics)


async def test_a_rate_limit_storm_shorter_than_the_patience_costs_no_try(db_pool: asyncpg.Pool) -> None:
    transport, calls = rate_limited_store(3, retry_after="0.5")
    metrics = Metrics()
    async with client(db_pool, transport, patience_s=10, metrics=metrics) as store:
        assert await store.list_orders(7) == []  # three 429s, max_tries 2: none counted
    assert calls["n"] == 4
    assert metrics.store_holds._value.get() == 3
    # Each 429 came after the previous hold ended: three episodes, each halving the budget.
    assert await db_pool.fetchval("SELECT holds FROM store_budget") == 3
    assert await db_pool.fetchval("SELECT slowed_factor FROM store_budget") == pytest.approx(0.125, abs=0.01)


async def test_a_longer_storm_raises_store_held_with_the_time_left(db_pool: asyncpg.Pool) -> None:
    transport, _ = rate_limited_store(100, retry_after="30")
    async with client(db_pool, transport, patience_s=5) as store:
        with pytest.raises(StoreHeld) as held:
            await store.list_orders(7)
    assert held.value.retry_after == pytest.approx(30, abs=0.5)


# ------------------------------------------------------------------------ a killed process
_LEASE_AND_HANG = """
import asyncio, sys
from shared.db import create_pool
from shared.woocommerce.budget import FleetBudgets

async def main():
    pool = await create_pool(sys.argv[1], min_size=1, max_size=1)
    await FleetBudgets(pool, default_rate=5.0).for_store(sys.argv[2]).acquire()
    print("leased", flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_a_process_killed_with_leased_slots_stalls_the_store_at_most_one_lease(db_pool, database_url) -> None:
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", _LEASE_AND_HANG, database_url, URL,
                                                   stdout=asyncio.subprocess.PIPE)
    try:
        assert await asyncio.wait_for(process.stdout.readline(), 30) == b"leased\n"
    finally:
        process.kill()
        await process.wait()
    # Its unused slots are all the store loses: the next process's first slot is within a lease.
    granted = await lease(db_pool)
    assert granted.start_in_s <= DEFAULT_LEASE_S
    started = time.monotonic()
    await FleetBudgets(db_pool, default_rate=5.0).for_store(URL).acquire()
    assert time.monotonic() - started <= DEFAULT_LEASE_S + granted.tokens * granted.interval_s + 0.2


# ------------------------------------------------------------------------ in-flight slots, fleet-wide
def lease_slots(pool: asyncpg.Pool, holder: uuid.UUID, wanted: int, in_use: int = 0, *, lease_s: float = 10.0):
    return store_budget.lease_slots(pool, URL, holder=holder, wanted=wanted, in_use=in_use, limit=4, lease_s=lease_s)


async def test_a_newcomer_gets_its_share_of_the_slots_once_the_holder_gives_back_its_excess(db_pool) -> None:
    first, second = uuid.uuid4(), uuid.uuid4()
    assert await lease_slots(db_pool, first, wanted=10) == store_budget.SlotLease(granted=4, share=4)
    # Every slot is taken: the newcomer gets none now, but its share is half.
    assert await lease_slots(db_pool, second, wanted=10) == store_budget.SlotLease(granted=0, share=2)
    # The holder renews with its four requests still in flight: granted its share, four recorded.
    assert (await lease_slots(db_pool, first, wanted=10, in_use=4)).granted == 2
    assert (await lease_slots(db_pool, second, wanted=10)).granted == 0
    # Two of its requests finished: two recorded, two free for the newcomer.
    assert (await lease_slots(db_pool, first, wanted=10, in_use=2)).granted == 2
    assert (await lease_slots(db_pool, second, wanted=10)).granted == 2
    assert await db_pool.fetchval("SELECT sum(slots) FROM store_slot_lease") == 4
    # Nothing to do: the lease is given back.
    assert (await lease_slots(db_pool, first, wanted=0)).granted == 0
    assert await db_pool.fetchval("SELECT count(*) FROM store_slot_lease") == 1


async def test_a_holder_that_wants_few_slots_leaves_the_rest_of_the_share_to_the_others(db_pool) -> None:
    light, heavy, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    assert (await lease_slots(db_pool, light, wanted=1)).granted == 1
    # An equal part would be 2 each; the light holder wants 1, so the heavy one may have 3.
    assert await lease_slots(db_pool, heavy, wanted=10) == store_budget.SlotLease(granted=3, share=3)
    # A third holder: the light one keeps its 1, the two heavy ones share the other 3 (2 rounded up).
    assert await lease_slots(db_pool, other, wanted=10) == store_budget.SlotLease(granted=0, share=2)


async def test_slots_of_a_lease_that_was_not_renewed_are_free_once_it_expires(db_pool) -> None:
    assert (await lease_slots(db_pool, uuid.uuid4(), wanted=4, lease_s=0.5)).granted == 4
    newcomer = uuid.uuid4()
    assert (await lease_slots(db_pool, newcomer, wanted=4)).granted == 0
    deadline = time.monotonic() + 5
    while (granted := (await lease_slots(db_pool, newcomer, wanted=4)).granted) == 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert granted == 4


async def test_requests_of_several_processes_never_exceed_the_fleets_slots(db_pool) -> None:
    processes = [FleetBudgets(db_pool, default_rate=None, concurrency=3, slot_lease_s=3.0) for _ in range(3)]
    gates = [fleet.for_store(URL).in_flight(10) for fleet in processes]
    in_flight = {"now": 0, "most": 0, "done": 0}

    async def request(gate) -> None:
        async with gate:
            in_flight["now"] += 1
            in_flight["most"] = max(in_flight["most"], in_flight["now"])
            await asyncio.sleep(0.05)
            in_flight["now"] -= 1
        in_flight["done"] += 1

    await asyncio.wait_for(asyncio.gather(*(request(gate) for gate in gates for _ in range(20))), 60)
    assert (in_flight["done"], in_flight["most"]) == (60, 3)
    # Idle processes give their slots back (each at its next renewal).
    deadline = time.monotonic() + 5
    while await db_pool.fetchval("SELECT count(*) FROM store_slot_lease") and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert await db_pool.fetchval("SELECT count(*) FROM store_slot_lease") == 0


async def test_a_write_the_store_refused_for_its_limit_holds_the_fleet_and_goes_again(db_pool) -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        if len(calls) == 1:
            return httpx.Response(429, headers={"Retry-After": "0.5"}, text="slow down")
        return httpx.Response(201, json={"id": 9})

    async with client(db_pool, httpx.MockTransport(handler), patience_s=10) as store:
        assert await store.send_json("POST", "webhooks", "/webhooks", body={"topic": "customer.created"}) == {"id": 9}
    assert calls == ["POST", "POST"]
    assert await db_pool.fetchval("SELECT holds FROM store_budget") == 1


async def test_a_line_held_for_its_store_goes_back_without_an_error_counted(db_pool) -> None:
    queue, lines = await new_queue(db_pool, await new_org(db_pool), customers=2)
    await queue_lines.claim_lines(db_pool, lines)
    assert await queue_lines.return_lines_to_draft(db_pool, [(lines[0], "store said slow down")], count_error=False) == 1
    assert await queue_lines.return_lines_to_draft(db_pool, [(lines[1], "store answered 503")]) == 1
    rows = await db_pool.fetch("SELECT id, state, error_count FROM woo_customer_sync_queue_line WHERE queue_id = $1",
                               queue.id)
    assert {row["id"]: (row["state"], row["error_count"]) for row in rows} == {lines[0]: ("queued", 0),
                                                                              lines[1]: ("queued", 1)}


# ------------------------------------------------------------------------ the status API
async def test_a_queue_shows_its_store_throttled_until_the_hold_ends(db_pool, amqp_url) -> None:
    org_id, token = await an_organization(db_pool)
    status, _ = await a_queue(db_pool, org_id, lines=1)
    async with status_service(db_pool, amqp_url) as api:
        calm = (await api.client.get(f"/api/v1/sync/queues/{status.id}", headers=api.auth(token))).json()["data"]
        assert (calm["store_throttled_until"], calm["store_budget_share"]) == (None, 1.0)
        await store_budget.hold(db_pool, STORE_URL, seconds=60, status=429)
        held = (await api.client.get(f"/api/v1/sync/queues/{status.id}", headers=api.auth(token))).json()["data"]
    until = datetime.fromisoformat(held["store_throttled_until"])
    assert 50 < (until - datetime.now(timezone.utc)).total_seconds() <= 60
    assert held["store_budget_share"] == pytest.approx(0.5, abs=0.01)
