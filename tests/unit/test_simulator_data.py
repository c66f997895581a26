"""The synthetic store: deterministic, realistic, shaped like the real store's documents."""

from __future__ import annotations

import collections
import re
import time
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

import orjson
import pytest

from tests.woocommerce_fixtures import load_fixture
from woosync.simulator.data import FIRST_ORDER_ID, ORDER_STATUSES, SHOWCASE, SimulatedStore, money

pytestmark = pytest.mark.unit

AS_OF = date(2026, 11, 22)


@pytest.fixture(scope="module")
def store() -> SimulatedStore:
    return SimulatedStore(1000, 1, as_of=AS_OF)


def key_tree(value: Any) -> Any:
    """The shape of a JSON document: dict keys (recursively), list element shapes merged."""
    if isinstance(value, dict):
        return {key: key_tree(item) for key, item in value.items()}
    if isinstance(value, list):
        merged: dict[str, Any] = {}
        for item in value:
            shape = key_tree(item)
            if isinstance(shape, dict):
                merged.update(shape)
        return [merged] if merged else []
    return None


def assert_same_keys(ours: Any, theirs: Any, where: str = "$") -> None:
    """Every key the real store sends is present with the same nesting, in the same order."""
    if isinstance(theirs, dict):
        assert isinstance(ours, dict), f"{where}: expected an object"
        assert list(ours) == list(theirs), f"{where}: keys differ: {list(ours)} != {list(theirs)}"
        for key in theirs:
            assert_same_keys(ours[key], theirs[key], f"{where}.{key}")
    elif isinstance(theirs, list) and theirs:
        assert isinstance(ours, list) and ours, f"{where}: expected a non-empty list"
        assert_same_keys(ours[0], theirs[0], f"{where}[0]")


# ---------------------------------------------------------------------------- determinism


def test_same_seed_gives_byte_identical_customers_and_orders() -> None:
    first, second = SimulatedStore(300, 7, as_of=AS_OF), SimulatedStore(300, 7, as_of=AS_OF)
    for customer_id in (1, 3, 4, 13, 150, 300):
        assert orjson.dumps(first.customer(customer_id)) == orjson.dumps(second.customer(customer_id))
        assert orjson.dumps(first.orders_for(customer_id)) == orjson.dumps(second.orders_for(customer_id))
    assert orjson.dumps(first.orders_for(0)) == orjson.dumps(second.orders_for(0))


def test_generation_order_does_not_change_the_data() -> None:
    forwards, backwards = SimulatedStore(200, 3, as_of=AS_OF), SimulatedStore(200, 3, as_of=AS_OF)
    ids = list(range(1, 201))
    ahead = {cid: orjson.dumps(forwards.orders_for(cid)) for cid in ids}
    behind = {cid: orjson.dumps(backwards.orders_for(cid)) for cid in reversed(ids)}
    assert ahead == behind


def test_different_seeds_give_different_stores() -> None:
    one, two = SimulatedStore(100, 1, as_of=AS_OF), SimulatedStore(100, 2, as_of=AS_OF)
    assert [one.customer(i)["email"] for i in range(24, 100)] != [two.customer(i)["email"] for i in range(24, 100)]


def test_a_hundred_thousand_customers_start_fast_and_generate_lazily() -> None:
    started = time.process_time()
    big = SimulatedStore(100_000, 5, as_of=AS_OF)
    assert time.process_time() - started < 5.0
    assert len(big.customer_ids()) == 100_000
    assert big.customer(99_999)["id"] == 99_999
    assert all(order["customer_id"] == 77_777 for order in big.orders_for(77_777))


# ---------------------------------------------------------------------------- shapes against the fixtures


def test_customer_documents_have_the_real_stores_keys() -> None:
    store = SimulatedStore(60, 1, as_of=AS_OF)
    real = load_fixture("customer_single").body
    with_meta = [cid for cid in range(2, 61) if store.customer(cid)["meta_data"]]
    for customer_id in (with_meta[0], store.showcase_id("unicode_latin"), store.showcase_id("no_billing")):
        document = store.customer(customer_id)
        if not document["meta_data"]:
            document = {**document, "meta_data": store.customer(with_meta[0])["meta_data"]}
        assert_same_keys(document, real)
    assert_same_keys(store.customer(1), load_fixture("customer_admin_id_1").body)


def test_order_documents_have_the_real_stores_keys(store: SimulatedStore) -> None:
    real_orders = load_fixture("orders_customer_4_per_page_100").body
    real_with_shipping = next(order for order in real_orders if order["shipping_lines"])
    real_refunded = load_fixture("order_648_refunded_single").body
    ours = [order for cid in range(3, 40) for order in store.orders_for(cid)]
    ours_with_shipping = next(order for order in ours if order["shipping_lines"])
    ours_refunded = next(order for order in ours if order["refunds"])
    assert_same_keys(ours_with_shipping, real_with_shipping)
    assert_same_keys(ours_refunded, real_refunded)
    guest = store.orders_for(0)[0]
    assert guest["customer_id"] == 0
    assert list(guest["_links"]) == list(load_fixture("orders_customer_0_guests").body[0]["_links"])


def test_dates_have_gmt_twins_offset_by_the_site_timezone() -> None:
    store = SimulatedStore(50, 1, as_of=AS_OF, gmt_offset_hours=2)
    pattern = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")
    for order in store.orders_for(4):
        local = datetime.fromisoformat(order["date_created"])
        gmt = datetime.fromisoformat(order["date_created_gmt"])
        assert pattern.match(order["date_created_gmt"])
        assert (local - gmt).total_seconds() == 7200
        assert gmt < datetime(2026, 11, 22)
        if order["status"] == "completed":
            assert order["date_completed_gmt"] and order["date_paid_gmt"]


def test_money_is_two_decimal_strings_and_totals_add_up(store: SimulatedStore) -> None:
    assert money(1250) == "12.50" and money(-1250) == "-12.50" and money(5) == "0.05"
    money_pattern = re.compile(r"^-?\d+\.\d{2}$")
    for customer_id in range(3, 60):
        for order in store.orders_for(customer_id):
            items = sum(Decimal(item["total"]) for item in order["line_items"])
            shipping = sum(Decimal(line["total"]) for line in order["shipping_lines"])
            assert Decimal(order["total"]) == items + shipping
            for refund in order["refunds"]:
                assert money_pattern.match(refund["total"]) and refund["total"].startswith("-")
            refunded = -sum(Decimal(refund["total"]) for refund in order["refunds"])
            assert refunded <= Decimal(order["total"])
            if order["status"] == "refunded":
                assert refunded == Decimal(order["total"]), "a refunded order is refunded in full"


# ---------------------------------------------------------------------------- realism


def test_order_counts_have_a_long_tail(store: SimulatedStore) -> None:
    counts = [store.order_count(cid) for cid in store.customer_ids("customer")]
    share_small = sum(1 for n in counts if n <= 10) / len(counts)
    assert share_small > 0.8
    assert any(n == 0 for n in counts)
    assert any(101 <= n <= 150 for n in counts)
    assert max(counts) <= 150


def test_every_status_and_both_refund_kinds_occur(store: SimulatedStore) -> None:
    orders = [order for cid in range(1, 400) for order in store.orders_for(cid)]
    assert {order["status"] for order in orders} == set(ORDER_STATUSES)
    partial = [o for o in orders if o["refunds"] and o["status"] in ("completed", "processing")]
    full = [o for o in orders if o["status"] == "refunded"]
    assert partial and full


def test_customers_include_the_awkward_cases(store: SimulatedStore) -> None:
    customers = [store.customer(cid) for cid in range(1, 1001)]
    emails = [c["email"] for c in customers]
    assert any(e and "@" not in e for e in emails), "an email without @"
    assert any(e != e.lower() for e in emails), "mixed or upper case emails"
    assert any(not c["billing"]["email"] and not c["billing"]["first_name"] for c in customers[1:])
    assert any(not c["first_name"].isascii() for c in customers)
    assert {c["role"] for c in customers} >= {"administrator", "customer", "subscriber", "shop_manager"}
    assert any(len(c["meta_data"]) > 1 for c in customers)
    assert len(set(e.lower() for e in emails if e)) == len([e for e in emails if e]), "emails are unique"


def test_ids_of_orders_and_refunds_are_unique_and_orders_are_found_by_id(store: SimulatedStore) -> None:
    seen: set[int] = set()
    for customer_id in [*range(0, 200)]:
        for order in store.orders_for(customer_id):
            for identifier in [order["id"], *(refund["id"] for refund in order["refunds"])]:
                assert identifier not in seen
                seen.add(identifier)
            assert store.order(order["id"]) == order
            for refund in order["refunds"]:
                assert store.order(refund["id"]) is None, "a refund id is not an order"
    assert store.order(FIRST_ORDER_ID - 3) is None
    assert store.order(10**9) is None


def test_orders_are_newest_first(store: SimulatedStore) -> None:
    orders = store.orders_for(3)
    stamps = [(order["date_created_gmt"], order["id"]) for order in orders]
    assert stamps == sorted(stamps, reverse=True)


def test_is_paying_customer_matches_the_orders(store: SimulatedStore) -> None:
    for customer_id in range(2, 80):
        paid = any(o["status"] in ("completed", "processing", "refunded") for o in store.orders_for(customer_id))
        assert store.customer(customer_id)["is_paying_customer"] == paid


# ---------------------------------------------------------------------------- segments reachable (docs/contract.md section 5)


def _segment(orders: list[dict[str, Any]]) -> tuple[str, Decimal, int]:
    """docs/contract.md section 5's rules, written out independently of the mapping code."""
    paid = [o for o in orders if o["status"] in ("completed", "processing")]
    value = sum((Decimal(o["total"]) + sum((Decimal(r["total"]) for r in o["refunds"]), Decimal(0))
                 for o in paid), Decimal(0))
    completed = sum(1 for o in orders if o["status"] == "completed")
    if value > 50000:
        segment = "enterprise"
    elif value > 20000 or completed > 50:
        segment = "mid_market"
    elif value > 5000 or completed > 10:
        segment = "smb"
    elif completed > 2:
        segment = "startup"
    else:
        segment = "individual"
    return segment, value, completed


@pytest.mark.parametrize("seed", [1, 2, 3, 42, 2026])
def test_showcase_customers_land_in_their_segments_with_any_seed(seed: int) -> None:
    store = SimulatedStore(30, seed, as_of=AS_OF)
    segment_of = {name: _segment(store.orders_for(store.showcase_id(name))) for name in (
        "heavy_mid_market_by_count", "enterprise", "mid_market_by_value", "smb_by_value", "smb_by_count",
        "startup", "individual_active", "prospect_no_orders", "prospect_never_paid", "processing_only")}
    assert segment_of["enterprise"][0] == "enterprise"
    assert segment_of["mid_market_by_value"][0] == "mid_market" and segment_of["mid_market_by_value"][2] <= 50
    assert segment_of["heavy_mid_market_by_count"][0] == "mid_market"
    assert segment_of["heavy_mid_market_by_count"][1] <= 20000 and segment_of["heavy_mid_market_by_count"][2] > 50
    assert segment_of["smb_by_value"][0] == "smb" and segment_of["smb_by_value"][2] <= 10
    assert segment_of["smb_by_count"][0] == "smb" and segment_of["smb_by_count"][1] <= 5000
    assert segment_of["startup"][0] == "startup"
    assert segment_of["individual_active"][0] == "individual" and segment_of["individual_active"][2] == 1
    assert segment_of["prospect_no_orders"] == ("individual", Decimal(0), 0)
    assert segment_of["prospect_never_paid"] == ("individual", Decimal(0), 0)
    assert segment_of["processing_only"][1] > 0 and segment_of["processing_only"][2] == 0
    assert len(store.orders_for(store.showcase_id("heavy_mid_market_by_count"))) > 100


def test_the_random_mix_reaches_every_segment_too() -> None:
    store = SimulatedStore(3000, 11, as_of=AS_OF)
    segments = collections.Counter(_segment(store.orders_for(cid))[0] for cid in range(len(SHOWCASE) + 1, 3001))
    assert set(segments) == {"enterprise", "mid_market", "smb", "startup", "individual"}
    assert segments["individual"] > segments["startup"] > segments["enterprise"]


def test_recent_buyers_exist_relative_to_as_of() -> None:
    store = SimulatedStore(200, 1, as_of=AS_OF)
    as_of = datetime(2026, 11, 22, tzinfo=timezone.utc)
    latest = [store.orders_for(cid)[0]["date_created_gmt"] for cid in range(3, 201) if store.order_count(cid)]
    recent = [d for d in latest if (as_of - datetime.fromisoformat(d).replace(tzinfo=timezone.utc)).days < 30]
    assert recent and len(recent) < len(latest)
    newest = store.orders_for(store.showcase_id("recent_buyer"))[0]["date_created_gmt"]
    assert (as_of - datetime.fromisoformat(newest).replace(tzinfo=timezone.utc)).days < 21


def test_role_filter_lists_only_that_role(store: SimulatedStore) -> None:
    customers = store.customer_ids("customer")
    assert 0 < len(customers) < len(store.customer_ids("all"))
    assert all(store.customer(cid)["role"] == "customer" for cid in list(customers)[:50])
    assert 1 not in customers and store.customer(1)["role"] == "administrator"


def test_base_url_change_is_reflected_in_links() -> None:
    store = SimulatedStore(10, 1, as_of=AS_OF, base_url="http://127.0.0.1:1")
    assert store.customer(4)["_links"]["self"][0]["href"] == "http://127.0.0.1:1/wp-json/wc/v3/customers/4"
    store.base_url = "http://shop.test:8090/"
    assert store.customer(4)["_links"]["self"][0]["href"] == "http://shop.test:8090/wp-json/wc/v3/customers/4"
    assert store.orders_for(4)[0]["payment_url"].startswith("http://shop.test:8090/checkout/order-pay/")
