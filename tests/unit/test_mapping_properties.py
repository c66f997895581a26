"""Properties of the customer mapping over generated customers and orders (hypothesis).

Expected values are computed here another way (integer cents, plain min/max) than the mapping
computes them (Decimal), so a shared mistake would have to be made twice.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.errors import InvalidCustomer
from shared.mapping import SYNC_OWNED_TAGS, map_customer, merge_tags

pytestmark = pytest.mark.unit

# Bounded: these run with every unit test run on a shared two-core machine.
BOUNDED = settings(max_examples=200, deadline=None, database=None,
                   suppress_health_check=[HealthCheck.too_slow])

STORE = "https://shop.example.com"
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
STATUSES = ["completed", "processing", "pending", "on-hold", "cancelled", "refunded", "failed", "checkout-draft"]
SEGMENT_RANK = {"individual": 0, "startup": 1, "smb": 2, "mid_market": 3, "enterprise": 4}
# Up to a million per order: with <= 30 orders the sum stays far inside numeric(14,2).
MAX_ORDER_CENTS = 100_000_000


def money(cents: int) -> str:
    """Cents as WooCommerce writes money: a string with two decimals ("-12.50")."""
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def cents_of(amount: str) -> int:
    """ "-12.50" -> -1250, by string surgery: no Decimal, no float."""
    return int(amount.replace(".", ""))


texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
maybe_text = st.one_of(st.none(), texts)
sections = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {},
        optional={key: maybe_text for key in (
            "first_name", "last_name", "company", "address_1", "address_2", "city", "postcode",
            "country", "state", "phone")},
    ),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=8,
)
naive_times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2030, 12, 31))
local_parts = st.from_regex(r"[A-Za-z0-9._%+'-]{1,20}", fullmatch=True)
domains = st.from_regex(r"[A-Za-z0-9-]{1,15}(\.[A-Za-z0-9-]{1,15}){1,3}", fullmatch=True)


@st.composite
def valid_emails(draw: st.DrawFn) -> str:
    email = f"{draw(local_parts)}@{draw(domains)}"
    padding = draw(st.sampled_from(["", " ", "\t", "\n ", "  "]))
    return padding + email + draw(st.sampled_from(["", " ", "\r\n"]))


@st.composite
def orders(draw: st.DrawFn, order_id: int) -> dict:
    refunds = draw(st.lists(st.integers(0, MAX_ORDER_CENTS // 4), max_size=3))
    created = draw(st.none() | naive_times)
    return {
        "id": order_id,
        "status": draw(st.sampled_from(STATUSES)),
        "total": money(draw(st.integers(0, MAX_ORDER_CENTS))),
        "refunds": [{"id": order_id * 10 + n, "reason": "", "total": money(-cents)} for n, cents in enumerate(refunds)],
        "date_created_gmt": created.isoformat() if created else None,
    }


@st.composite
def customers_with_orders(draw: st.DrawFn) -> tuple[dict, list[dict]]:
    created = draw(st.none() | naive_times)
    customer = {
        "id": draw(st.integers(1, 2**53)),
        "email": draw(valid_emails()),
        "first_name": draw(maybe_text),
        "last_name": draw(maybe_text),
        "username": draw(maybe_text),
        "role": draw(st.sampled_from(["customer", "subscriber", "administrator", None])),
        "date_created_gmt": created.isoformat() if created else None,
        "billing": draw(sections),
        "shipping": draw(sections),
        "meta_data": draw(st.lists(
            st.fixed_dictionaries({"id": st.integers(1, 10**6), "key": texts, "value": json_values}), max_size=4)),
    }
    count = draw(st.integers(0, 30))
    return customer, [draw(orders(order_id)) for order_id in range(1, count + 1)]


@BOUNDED
@given(customers_with_orders(), st.datetimes(timezones=st.just(UTC)))
def test_a_well_formed_customer_always_maps_to_a_sane_row(case: tuple[dict, list[dict]], now: datetime) -> None:
    customer, order_list = case
    row = map_customer(customer, order_list, store_url=STORE, now=now)

    assert row.email == customer["email"].strip().lower()
    assert row.name.strip() == row.name and row.name
    assert row.segment in SEGMENT_RANK
    assert row.status == ("active" if row.metadata["completed_orders"] else "prospect")
    assert row.lifetime_value.as_tuple().exponent == -2
    for when in (row.acquisition_date, row.last_interaction_date):
        assert when is None or when.utcoffset() == timedelta(0)
    if row.acquisition_date is not None:
        assert row.last_interaction_date is not None and row.acquisition_date <= row.last_interaction_date
    assert row.phone is None or (row.phone and row.phone == row.phone.strip())
    assert row.company is None or (row.company and row.company == row.company.strip())
    assert set(row.address) == {"street", "city", "state", "postal_code", "country"}
    # JSON-safe: what the database will store round-trips unchanged.
    assert json.loads(json.dumps(row.address)) == row.address
    assert json.loads(json.dumps(row.metadata)) == row.metadata
    assert row.metadata["total_orders"] == len(order_list)
    assert (row.woo_customer_id, row.store_url, row.metadata["woocommerce_id"]) == (customer["id"], STORE, customer["id"])


@BOUNDED
@given(customers_with_orders())
def test_lifetime_value_is_the_exact_sum_of_paid_orders_less_refunds(case: tuple[dict, list[dict]]) -> None:
    customer, order_list = case
    expected_cents = 0
    for order in order_list:
        if order["status"] in ("completed", "processing"):
            expected_cents += cents_of(order["total"])
            expected_cents += sum(cents_of(refund["total"]) for refund in order["refunds"])
    row = map_customer(customer, order_list, store_url=STORE, now=NOW)
    assert row.lifetime_value == Decimal(expected_cents).scaleb(-2)


@BOUNDED
@given(customers_with_orders())
def test_dates_are_the_earliest_and_latest_order(case: tuple[dict, list[dict]]) -> None:
    customer, order_list = case
    order_dates = [datetime.fromisoformat(o["date_created_gmt"]) for o in order_list if o["date_created_gmt"]]
    row = map_customer(customer, order_list, store_url=STORE, now=NOW)
    if order_dates:
        assert row.acquisition_date == min(order_dates).replace(tzinfo=UTC)
        assert row.last_interaction_date == max(order_dates).replace(tzinfo=UTC)
    elif customer["date_created_gmt"]:
        customer_created = datetime.fromisoformat(customer["date_created_gmt"]).replace(tzinfo=UTC)
        assert row.acquisition_date == row.last_interaction_date == customer_created
    else:
        assert row.acquisition_date is row.last_interaction_date is None


@BOUNDED
@given(customers_with_orders(), st.datetimes(timezones=st.just(UTC)))
def test_tags_always_start_with_woocommerce_and_follow_the_counts(
    case: tuple[dict, list[dict]], now: datetime
) -> None:
    customer, order_list = case
    row = map_customer(customer, order_list, store_url=STORE, now=now)
    completed = sum(1 for o in order_list if o["status"] == "completed")
    dates = [datetime.fromisoformat(o["date_created_gmt"]).replace(tzinfo=UTC)
             for o in order_list if o["date_created_gmt"]]
    assert row.tags[0] == "woocommerce"
    assert set(row.tags) <= SYNC_OWNED_TAGS and len(set(row.tags)) == len(row.tags)
    assert ("high-value" in row.tags) is (completed > 10)
    assert ("prospect" in row.tags) is (completed == 0)
    assert ("active" in row.tags) is bool(dates and now - max(dates) < timedelta(days=30))


# Values in cents: anywhere up to 100000.00, and often right at a threshold or at small amounts,
# where a wrong comparison would show.
THRESHOLDS_CENTS = [0, 500_000, 2_000_000, 5_000_000]
lifetime_cents = st.one_of(
    st.integers(0, 10_000_000),
    st.integers(0, 50_000),
    st.sampled_from(THRESHOLDS_CENTS).flatmap(lambda cents: st.integers(max(0, cents - 300), cents + 300)),
)


@BOUNDED
@given(
    completed=st.one_of(st.integers(0, 60), st.sampled_from([0, 2, 3, 10, 11, 50, 51])),
    low=lifetime_cents,
    extra=st.one_of(st.integers(0, 10_000_000), st.integers(0, 600)),
)
def test_segment_never_drops_as_lifetime_value_grows(completed: int, low: int, extra: int) -> None:
    def segment_with(value_cents: int) -> str:
        # The completed orders are worth nothing; one processing order carries the value.
        order_list = [{"id": n, "status": "completed", "total": "0.00", "refunds": [],
                       "date_created_gmt": "2026-01-01T00:00:00"} for n in range(1, completed + 1)]
        order_list.append({"id": 0, "status": "processing", "total": money(value_cents), "refunds": [],
                           "date_created_gmt": "2026-01-01T00:00:00"})
        customer = {"id": 1, "email": "a@example.com", "first_name": "A", "last_name": "B"}
        return map_customer(customer, order_list, store_url=STORE, now=NOW).segment

    assert SEGMENT_RANK[segment_with(low)] <= SEGMENT_RANK[segment_with(low + extra)]


@BOUNDED
@given(st.emails())
def test_every_rfc_address_hypothesis_makes_is_accepted_lower_cased(email: str) -> None:
    # Hypothesis' addresses are dot-atom local parts at a fully qualified domain; cap at 254.
    if len(email) > 254:
        return
    row = map_customer({"id": 5, "email": email.upper()}, [], store_url=STORE, now=NOW)
    assert row.email == email.lower()


@BOUNDED
@given(local_parts, domains, st.sampled_from([" ", "\t", "\n", "\u00a0", "\u2003", "\x00", "@"]), st.data())
def test_an_email_with_whitespace_control_or_second_at_inside_is_refused(
    local: str, domain: str, bad: str, data: st.DataObject
) -> None:
    email = f"{local}@{domain}"
    cut = data.draw(st.integers(1, len(email) - 1))
    with pytest.raises(InvalidCustomer, match="customer 5 has no valid email"):
        map_customer({"id": 5, "email": email[:cut] + bad + email[cut:]}, [], store_url=STORE, now=NOW)


owned_tags = st.sampled_from(sorted(SYNC_OWNED_TAGS))
any_tags = st.lists(st.one_of(owned_tags, st.text(min_size=1, max_size=12)), max_size=8)


@BOUNDED
@given(any_tags, st.lists(owned_tags, unique=True))
def test_merge_keeps_every_foreign_tag_and_exactly_the_synced_owned_ones(existing: list[str], synced: list[str]) -> None:
    merged = merge_tags(existing, synced)
    foreign = [tag for tag in existing if tag not in SYNC_OWNED_TAGS]
    assert [tag for tag in merged if tag not in SYNC_OWNED_TAGS] == list(dict.fromkeys(foreign))
    assert [tag for tag in merged if tag in SYNC_OWNED_TAGS] == synced
    assert merge_tags(merged, synced) == merged  # a second sync changes nothing
