"""docs/contract.md section 5, rule by rule, then on the real store's captured customers and orders."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from shared.errors import InvalidCustomer, PermanentError
from tests.woocommerce_fixtures import fixtures_dir
from shared.mapping import SYNC_OWNED_TAGS, CustomerRow, map_customer, merge_tags

pytestmark = pytest.mark.unit

FIXTURES = fixtures_dir()
STORE = "https://shop.example.com"
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def woo_customer(**fields: object) -> dict:
    """A customer as the REST API returns it (shape of customer_single.json), fields overridden."""
    customer = {
        "id": 17,
        "date_created": "2026-10-01T08:30:00",
        "date_created_gmt": "2026-10-01T06:30:00",
        "email": "bob.smith@example.com",
        "first_name": "Bob",
        "last_name": "Smith",
        "role": "customer",
        "username": "bob.smith",
        "billing": {
            "first_name": "Robert", "last_name": "Smith", "company": "Smith Ltd",
            "address_1": "1 High St", "address_2": "Flat 2", "city": "Leeds", "postcode": "LS1 1AA",
            "country": "GB", "state": "West Yorkshire", "email": "bob.smith@example.com",
            "phone": "+44 113 000",
        },
        "shipping": {
            "first_name": "", "last_name": "", "company": "Shipping Co", "address_1": "9 Dock Rd",
            "address_2": "", "city": "Hull", "postcode": "HU1 1AA", "country": "GB", "state": "",
            "phone": "+44 1482 000",
        },
        "is_paying_customer": True,
        "meta_data": [{"id": 1, "key": "loyalty_tier", "value": "gold"}],
    }
    customer.update(fields)
    return customer


def woo_order(
    order_id: int,
    status: str = "completed",
    total: object = "10.00",
    refunds: tuple[object, ...] = (),
    created_gmt: str | None = "2026-11-01T10:00:00",
) -> dict:
    return {
        "id": order_id,
        "status": status,
        "total": total,
        "customer_id": 17,
        "date_created": "2026-11-01T12:00:00",  # site-local time: must never be used
        "date_created_gmt": created_gmt,
        "refunds": [
            {"id": 1000 + order_id * 10 + n, "reason": "", "total": amount}
            for n, amount in enumerate(refunds)
        ],
    }


def completed_orders(count: int, *, total: str = "0.00") -> list[dict]:
    return [woo_order(n, "completed", total) for n in range(1, count + 1)]


def mapped(customer: dict | None = None, orders: list[dict] | None = None, now: datetime = NOW) -> CustomerRow:
    return map_customer(customer or woo_customer(), orders or [], store_url=STORE, now=now)


def fixture_body(name: str) -> object:
    return json.loads((FIXTURES / name).read_text())["body"]


def fixture_customer(woo_id: int) -> dict:
    for page in ("customers_per_page_100_page_1.json", "customers_per_page_100_page_2.json",
                 "customers_per_page_100_last_page_3.json"):
        for customer in fixture_body(page):
            if customer["id"] == woo_id:
                return customer
    raise LookupError(woo_id)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# --- email -------------------------------------------------------------------------------------

def test_email_is_trimmed_and_lower_cased() -> None:
    assert mapped(woo_customer(email="  Bob.Smith@Example.COM \n")).email == "bob.smith@example.com"


@pytest.mark.parametrize("email", [None, "", "   "])
def test_missing_email_fails_the_customer_saying_so(email: object) -> None:
    with pytest.raises(InvalidCustomer, match=r"^customer 17 has no email$"):
        mapped(woo_customer(email=email))


def test_customer_without_email_key_fails() -> None:
    customer = woo_customer()
    del customer["email"]
    with pytest.raises(InvalidCustomer, match="customer 17 has no email"):
        mapped(customer)


@pytest.mark.parametrize(
    "email",
    [
        "bob.example.com",  # no @
        "bob@",  # no domain
        "@example.com",  # no local part
        "bob@example",  # domain without a dot
        "bob@@example.com",
        "bob@home@example.com",  # two @
        "bo b@example.com",  # whitespace inside
        "bob@exa\tmple.com",
        "bob@example..com",  # empty label
        "bob@.example.com",
        "bob@example.com.",
        "bob\x00@example.com",  # control character
        "b" * 250 + "@example.com",  # longer than 254
        12345,  # not text at all
    ],
)
def test_invalid_email_fails_the_customer_naming_the_value(email: object) -> None:
    with pytest.raises(InvalidCustomer) as caught:
        mapped(woo_customer(email=email))
    message = str(caught.value)
    assert message.startswith("customer 17 has no valid email: ")
    assert repr(email)[:40] in message


def test_invalid_email_message_matches_the_documented_form() -> None:
    with pytest.raises(InvalidCustomer) as caught:
        mapped(woo_customer(email="bob.example.com"))
    assert str(caught.value) == "customer 17 has no valid email: 'bob.example.com'"


def test_invalid_customer_is_a_permanent_error() -> None:
    with pytest.raises(PermanentError):
        mapped(woo_customer(email="nope"))


@pytest.mark.parametrize(
    "email",
    ["o'brien+news@mail.example.co.uk", "zoë@exämple.test", "a@b.co", "first.last-x_y@sub-1.example.io"],
)
def test_unusual_but_sane_emails_are_accepted(email: str) -> None:
    assert mapped(woo_customer(email=email)).email == email


# --- identity ----------------------------------------------------------------------------------

@pytest.mark.parametrize("woo_id", [None, 0, -3, "17", 17.0, True])
def test_customer_without_a_positive_integer_id_is_invalid(woo_id: object) -> None:
    with pytest.raises(InvalidCustomer, match="no valid WooCommerce id"):
        mapped(woo_customer(id=woo_id))


def test_non_object_customer_is_invalid() -> None:
    with pytest.raises(InvalidCustomer, match="not a JSON object"):
        map_customer(["id", 17], [], store_url=STORE, now=NOW)  # type: ignore[arg-type]


def test_row_carries_the_woocommerce_id_and_store_url() -> None:
    row = mapped()
    assert (row.woo_customer_id, row.store_url) == (17, STORE)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        mapped(now=datetime(2026, 11, 22, 12, 0))


# --- name --------------------------------------------------------------------------------------

def test_name_is_first_and_last_name() -> None:
    assert mapped().name == "Bob Smith"


def test_name_with_only_a_last_name_has_no_leading_space() -> None:
    assert mapped(woo_customer(first_name="", last_name="Smith")).name == "Smith"


def test_name_parts_are_trimmed() -> None:
    assert mapped(woo_customer(first_name="  Bob ", last_name=" Smith  ")).name == "Bob Smith"


def test_name_falls_back_to_billing_names() -> None:
    assert mapped(woo_customer(first_name=" ", last_name="")).name == "Robert Smith"


def test_name_falls_back_to_the_normalised_email() -> None:
    customer = woo_customer(first_name="", last_name="", email=" Bob@Example.com")
    customer["billing"].update(first_name="", last_name="")
    assert mapped(customer).name == "bob@example.com"


# --- phone and company -------------------------------------------------------------------------

def test_phone_and_company_come_from_billing_first() -> None:
    row = mapped()
    assert (row.phone, row.company) == ("+44 113 000", "Smith Ltd")


def test_empty_billing_phone_and_company_fall_back_to_shipping() -> None:
    customer = woo_customer()
    customer["billing"].update(phone="", company="  ")
    row = mapped(customer)
    assert (row.phone, row.company) == ("+44 1482 000", "Shipping Co")


def test_phone_and_company_missing_everywhere_are_null() -> None:
    customer = woo_customer()
    customer["billing"].update(phone="", company="")
    customer["shipping"].update(phone=" ", company="")
    row = mapped(customer)
    assert (row.phone, row.company) == (None, None)


def test_missing_billing_and_shipping_sections_read_as_empty() -> None:
    row = mapped(woo_customer(billing=None, shipping=None))
    assert (row.phone, row.company) == (None, None)
    assert row.address == {"street": "", "city": "", "state": "", "postal_code": "", "country": ""}


# --- lifetime value ----------------------------------------------------------------------------

def test_lifetime_value_sums_completed_and_processing_orders_only() -> None:
    orders = [
        woo_order(1, "completed", "100.00"),
        woo_order(2, "processing", "20.50"),
        *(woo_order(n, status, "999.99") for n, status in enumerate(
            ["pending", "on-hold", "cancelled", "refunded", "failed", "checkout-draft", "trash"], start=3)),
    ]
    assert mapped(orders=orders).lifetime_value == Decimal("120.50")


def test_lifetime_value_is_exact_decimal_not_float() -> None:
    # 0.1 + 0.2 and ten thousand cents are where binary floats drift.
    assert mapped(orders=[woo_order(1, total="0.10"), woo_order(2, total="0.20")]).lifetime_value == Decimal("0.30")
    cents = [woo_order(n, "processing", "0.01") for n in range(1, 10_001)]
    assert mapped(orders=cents).lifetime_value == Decimal("100.00")


def test_lifetime_value_is_quantized_to_cents() -> None:
    value = mapped(orders=[woo_order(1, total="5")]).lifetime_value
    assert str(value) == "5.00"
    assert str(mapped().lifetime_value) == "0.00"


@pytest.mark.parametrize(("total", "expected"), [("0.125", "0.13"), ("0.124", "0.12"), ("10.005", "10.01")])
def test_lifetime_value_rounds_half_up(total: str, expected: str) -> None:
    assert mapped(orders=[woo_order(1, total=total)]).lifetime_value == Decimal(expected)


def test_partial_refund_reduces_lifetime_value() -> None:
    orders = [woo_order(1, "completed", "100.00", refunds=("-25.50",)), woo_order(2, "processing", "10.00")]
    assert mapped(orders=orders).lifetime_value == Decimal("84.50")


def test_several_refunds_on_one_order_all_count() -> None:
    orders = [woo_order(1, "completed", "100.00", refunds=("-10.00", "-0.01", "-39.99"))]
    assert mapped(orders=orders).lifetime_value == Decimal("50.00")


def test_fully_refunded_paid_order_is_worth_nothing() -> None:
    orders = [woo_order(1, "processing", "80.00", refunds=("-80.00",)), woo_order(2, "completed", "5.00")]
    assert mapped(orders=orders).lifetime_value == Decimal("5.00")


def test_refunds_on_orders_that_are_not_paid_are_ignored() -> None:
    orders = [
        woo_order(1, "refunded", "12.50", refunds=("-12.50",)),
        woo_order(2, "cancelled", "40.00", refunds=("-40.00",)),
        woo_order(3, "completed", "30.00"),
    ]
    assert mapped(orders=orders).lifetime_value == Decimal("30.00")


def test_a_positive_refund_total_is_still_money_returned() -> None:
    orders = [woo_order(1, "completed", "100.00", refunds=("25.00",))]
    assert mapped(orders=orders).lifetime_value == Decimal("75.00")


def test_numeric_totals_are_accepted_as_the_decimal_they_spell() -> None:
    orders = [woo_order(1, total=19.99), woo_order(2, total=5, refunds=(-0.99,))]
    assert mapped(orders=orders).lifetime_value == Decimal("24.00")


@pytest.mark.parametrize("total", ["abc", "NaN", "Infinity", "-inf", "", None, True, {"amount": 1}])
def test_malformed_order_total_fails_naming_the_order(total: object) -> None:
    orders = [woo_order(1), woo_order(648, total=total)]
    with pytest.raises(InvalidCustomer, match=r"^customer 17 order 648 has an invalid total: "):
        mapped(orders=orders)


def test_malformed_refund_total_fails_naming_the_order() -> None:
    orders = [woo_order(648, refunds=("minus ten",))]
    with pytest.raises(InvalidCustomer, match="customer 17 order 648 has an invalid refund total: 'minus ten'"):
        mapped(orders=orders)


def test_lifetime_value_numeric_14_2_cannot_hold_is_refused() -> None:
    orders = [woo_order(1, total="999999999999.99"), woo_order(2, total="0.01")]
    with pytest.raises(InvalidCustomer, match="more than numeric\\(14,2\\) holds"):
        mapped(orders=orders)
    assert mapped(orders=orders[:1]).lifetime_value == Decimal("999999999999.99")


def test_an_order_listed_twice_counts_once() -> None:
    # Pages shift when an order is created while the consumer pages through them.
    orders = [woo_order(1, total="10.00"), woo_order(2, total="5.00"), woo_order(1, total="10.00")]
    row = mapped(orders=orders)
    assert row.lifetime_value == Decimal("15.00")
    assert row.metadata["total_orders"] == 2
    assert row.metadata["completed_orders"] == 2


def test_non_object_order_is_invalid() -> None:
    with pytest.raises(InvalidCustomer, match="customer 17 has an order that is a str"):
        mapped(orders=[woo_order(1), "order 2"])  # type: ignore[list-item]


# --- completed orders, segment, status -------------------------------------------------------

def test_completed_orders_count_only_status_completed() -> None:
    orders = [woo_order(1, "completed"), woo_order(2, "processing"), woo_order(3, "completed"), woo_order(4, "pending")]
    row = mapped(orders=orders)
    assert (row.metadata["completed_orders"], row.metadata["total_orders"]) == (2, 4)


@pytest.mark.parametrize(
    ("total", "segment"),
    [
        ("50000.01", "enterprise"),
        ("50000.00", "mid_market"),
        ("20000.01", "mid_market"),
        ("20000.00", "smb"),
        ("5000.01", "smb"),
        ("5000.00", "individual"),
        ("0.00", "individual"),
    ],
)
def test_segment_lifetime_value_thresholds_are_strict(total: str, segment: str) -> None:
    # One processing order: lifetime value without any completed order.
    assert mapped(orders=[woo_order(1, "processing", total)]).segment == segment


@pytest.mark.parametrize(
    ("completed", "segment"),
    [(51, "mid_market"), (50, "smb"), (11, "smb"), (10, "startup"), (3, "startup"), (2, "individual"), (0, "individual")],
)
def test_segment_completed_order_thresholds_are_strict(completed: int, segment: str) -> None:
    assert mapped(orders=completed_orders(completed)).segment == segment


def test_lifetime_value_outranks_a_small_order_count() -> None:
    assert mapped(orders=[woo_order(1, "completed", "50000.01")]).segment == "enterprise"


def test_status_is_active_with_a_completed_order() -> None:
    assert mapped(orders=[woo_order(1, "completed")]).status == "active"


def test_status_is_prospect_without_a_completed_order() -> None:
    assert mapped(orders=[woo_order(1, "processing", "500.00")]).status == "prospect"
    assert mapped().status == "prospect"


# --- dates -------------------------------------------------------------------------------------

def test_acquisition_and_last_interaction_span_every_order_whatever_its_status() -> None:
    orders = [
        woo_order(1, "completed", created_gmt="2026-05-03T10:00:00"),
        woo_order(2, "cancelled", created_gmt="2026-01-15T09:30:00"),
        woo_order(3, "pending", created_gmt="2026-11-20T23:59:59"),
    ]
    row = mapped(orders=orders)
    assert row.acquisition_date == utc("2026-01-15T09:30:00")
    assert row.last_interaction_date == utc("2026-11-20T23:59:59")


def test_naive_gmt_dates_become_aware_utc_and_local_dates_are_ignored() -> None:
    row = mapped(orders=[woo_order(1, created_gmt="2026-11-01T10:00:00")])
    assert row.acquisition_date is not None and row.acquisition_date.utcoffset() == timedelta(0)
    assert row.acquisition_date == datetime(2026, 11, 1, 10, 0, tzinfo=UTC)  # not date_created's 12:00


@pytest.mark.parametrize("text", ["2026-11-01T12:00:00+02:00", "2026-11-01T10:00:00Z"])
def test_dates_with_an_offset_are_converted_to_utc(text: str) -> None:
    when = mapped(orders=[woo_order(1, created_gmt=text)]).last_interaction_date
    assert when == datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
    assert when is not None and when.tzinfo is UTC


def test_without_orders_both_dates_are_the_customers_creation() -> None:
    row = mapped()
    assert row.acquisition_date == row.last_interaction_date == utc("2026-10-01T06:30:00")


def test_without_orders_or_creation_date_the_dates_are_null() -> None:
    row = mapped(woo_customer(date_created_gmt=None))
    assert (row.acquisition_date, row.last_interaction_date) == (None, None)


def test_order_without_a_date_counts_for_money_but_not_for_dates() -> None:
    orders = [woo_order(1, total="7.00", created_gmt=None), woo_order(2, total="3.00", created_gmt="2026-11-02T00:00:00")]
    row = mapped(orders=orders)
    assert row.lifetime_value == Decimal("10.00")
    assert row.acquisition_date == row.last_interaction_date == utc("2026-11-02T00:00:00")


def test_malformed_order_date_fails_naming_the_order() -> None:
    with pytest.raises(InvalidCustomer, match="customer 17 order 5 has an invalid date_created_gmt: 'yesterday'"):
        mapped(orders=[woo_order(5, created_gmt="yesterday")])


# --- address -----------------------------------------------------------------------------------

def test_address_comes_from_billing_with_both_street_lines() -> None:
    assert mapped().address == {
        "street": "1 High St, Flat 2",
        "city": "Leeds",
        "state": "West Yorkshire",
        "postal_code": "LS1 1AA",
        "country": "GB",
    }


@pytest.mark.parametrize(
    ("address_1", "address_2", "street"),
    [("1 High St", "", "1 High St"), ("", "Flat 2", "Flat 2"), (" ", " ", ""), (" 1 High St ", " Flat 2", "1 High St, Flat 2")],
)
def test_street_skips_empty_parts(address_1: str, address_2: str, street: str) -> None:
    customer = woo_customer()
    customer["billing"].update(address_1=address_1, address_2=address_2)
    assert mapped(customer).address["street"] == street


# --- metadata ----------------------------------------------------------------------------------

def test_metadata_has_every_field_and_is_json_safe() -> None:
    customer = woo_customer(meta_data=[
        {"id": 1, "key": "loyalty_tier", "value": "gold"},
        {"id": 2, "key": "preferences", "value": {"newsletter": True, "topics": ["tea", 3, None]}},
        {"id": 3, "key": "loyalty_tier", "value": "silver"},  # repeated key: the first wins
        {"id": 4, "value": "no key"},
        "not an entry",
    ])
    orders = [woo_order(1, "completed"), woo_order(2, "pending")]
    metadata = mapped(customer, orders).metadata
    assert metadata == {
        "woocommerce_id": 17,
        "store_url": STORE,
        "username": "bob.smith",
        "role": "customer",
        "total_orders": 2,
        "completed_orders": 1,
        "meta": {"loyalty_tier": "gold", "preferences": {"newsletter": True, "topics": ["tea", 3, None]}},
    }
    assert json.loads(json.dumps(metadata)) == metadata


def test_metadata_meta_is_empty_without_meta_data() -> None:
    assert mapped(woo_customer(meta_data=None)).metadata["meta"] == {}


# --- tags --------------------------------------------------------------------------------------

def test_every_customer_is_tagged_woocommerce_and_a_customer_without_orders_prospect() -> None:
    assert mapped().tags == ["woocommerce", "prospect"]


@pytest.mark.parametrize(("completed", "high_value"), [(10, False), (11, True)])
def test_high_value_tag_needs_more_than_ten_completed_orders(completed: int, high_value: bool) -> None:
    tags = mapped(orders=completed_orders(completed), now=datetime(2030, 1, 1, tzinfo=UTC)).tags
    assert ("high-value" in tags) is high_value
    assert "prospect" not in tags


def test_prospect_tag_only_with_zero_completed_orders() -> None:
    assert "prospect" in mapped(orders=[woo_order(1, "processing")]).tags
    assert "prospect" not in mapped(orders=[woo_order(1, "completed")]).tags


@pytest.mark.parametrize(
    ("age", "active"),
    [(timedelta(0), True), (timedelta(days=29, hours=23, minutes=59, seconds=59), True),
     (timedelta(days=30), False), (timedelta(days=400), False), (-timedelta(hours=1), True)],
)
def test_active_tag_means_the_latest_order_is_less_than_30_days_old(age: timedelta, active: bool) -> None:
    latest = NOW - age
    orders = [
        woo_order(1, "pending", created_gmt=latest.replace(tzinfo=None).isoformat()),
        woo_order(2, "completed", created_gmt="2020-01-01T00:00:00"),
    ]
    assert ("active" in mapped(orders=orders).tags) is active


def test_a_customer_created_yesterday_without_orders_is_not_active() -> None:
    yesterday = (NOW - timedelta(days=1)).replace(tzinfo=None).isoformat()
    assert "active" not in mapped(woo_customer(date_created_gmt=yesterday)).tags


def test_tags_are_sync_owned_and_in_a_stable_order() -> None:
    orders = [woo_order(n, "completed", created_gmt="2026-11-21T00:00:00") for n in range(1, 12)]
    tags = mapped(orders=list(reversed(orders))).tags
    assert tags == ["woocommerce", "high-value", "active"]
    assert set(tags) <= SYNC_OWNED_TAGS


def test_merge_tags_without_existing_tags_is_the_synced_tags() -> None:
    assert merge_tags(None, ["woocommerce", "prospect"]) == ["woocommerce", "prospect"]
    assert merge_tags([], ["woocommerce"]) == ["woocommerce"]


def test_merge_tags_keeps_foreign_tags_and_recomputes_sync_owned_ones() -> None:
    existing = ["vip", "active", "newsletter", "prospect", "woocommerce"]
    assert merge_tags(existing, ["woocommerce", "high-value"]) == ["vip", "newsletter", "woocommerce", "high-value"]


def test_merge_tags_treats_other_spellings_as_foreign() -> None:
    assert merge_tags(["Active", "WooCommerce"], ["woocommerce"]) == ["Active", "WooCommerce", "woocommerce"]


def test_merge_tags_drops_duplicates_and_nulls_and_leaves_inputs_alone() -> None:
    existing = ["vip", None, "vip", "active"]
    synced = ["woocommerce", "prospect"]
    before = (list(existing), list(synced))
    assert merge_tags(existing, synced) == ["vip", "woocommerce", "prospect"]  # type: ignore[arg-type]
    assert (existing, synced) == before


def test_mapping_does_not_change_its_inputs() -> None:
    customer, orders = woo_customer(), [woo_order(1, refunds=("-1.00",)), woo_order(1), woo_order(2, "pending")]
    before = copy.deepcopy((customer, orders))
    mapped(customer, orders)
    assert (customer, orders) == before


# --- the real store's captured data -----------------------------------------------------------

def test_fixture_customer_single_without_orders() -> None:
    row = map_customer(fixture_body("customer_single.json"), [], store_url="http://127.0.0.1:8088", now=NOW)
    assert row == CustomerRow(
        email="erin.robinson.004@example.test",
        name="Erin Robinson",
        phone=None,  # billing and shipping phone are both ""
        company=None,
        segment="individual",
        status="prospect",
        lifetime_value=Decimal("0.00"),
        acquisition_date=datetime(2026, 11, 22, 6, 22, 54, tzinfo=UTC),
        last_interaction_date=datetime(2026, 11, 22, 6, 22, 54, tzinfo=UTC),
        address={"street": "104 Main St", "city": "London", "state": "", "postal_code": "SW1A 1AA", "country": "GB"},
        metadata={
            "woocommerce_id": 8, "store_url": "http://127.0.0.1:8088", "username": "erin.robinson.004",
            "role": "customer", "total_orders": 0, "completed_orders": 0, "meta": {"default_password_nag": "1"},
        },
        tags=["woocommerce", "prospect"],
        woo_customer_id=8,
        store_url="http://127.0.0.1:8088",
    )


def heavy_customer_3_orders(prefix: str, pages: int) -> list[dict]:
    orders: list[dict] = []
    for page in range(1, pages + 1):
        orders += fixture_body(f"{prefix}{page}.json")
    return orders


def test_fixture_customer_3_with_130_orders_over_three_pages() -> None:
    orders = heavy_customer_3_orders("orders_customer_3_heavy_per_page_100_page_", 3)
    assert len(orders) == 130
    row = map_customer(fixture_customer(3), orders, store_url=STORE, now=NOW)
    # Worked out apart from the code, in integer cents: 80 paid orders (57 completed + 23
    # processing); the 13 refunded orders carry full refunds but are not paid, so they add nothing.
    assert row.lifetime_value == Decimal("12991.74")
    assert (row.metadata["total_orders"], row.metadata["completed_orders"]) == (130, 57)
    assert row.segment == "mid_market"  # 57 completed > 50, value below 20000
    assert row.status == "active"
    assert row.acquisition_date == datetime(2026, 11, 22, 6, 23, 27, tzinfo=UTC)
    assert row.last_interaction_date == datetime(2026, 11, 22, 6, 25, 8, tzinfo=UTC)
    assert row.tags == ["woocommerce", "high-value", "active"]
    assert (row.name, row.email, row.phone, row.company) == (
        "Alice Smith", "alice.smith.000@example.test", "+1-555-1000", "Smith & Co 0")
    assert row.address == {"street": "100 Main St", "city": "Springfield", "state": "IL",
                           "postal_code": "62701", "country": "US"}
    later = map_customer(fixture_customer(3), orders, store_url=STORE, now=datetime(2027, 1, 1, tzinfo=UTC))
    assert later.tags == ["woocommerce", "high-value"]


def test_fixture_customer_3_over_https_basic_maps_the_same() -> None:
    over_https = heavy_customer_3_orders("https_basic_orders_customer_3_page_", 2)
    over_http = heavy_customer_3_orders("orders_customer_3_heavy_per_page_100_page_", 3)
    customer = fixture_customer(3)
    assert map_customer(customer, over_https, store_url=STORE, now=NOW) == map_customer(
        customer, over_http, store_url=STORE, now=NOW)


def test_fixture_customer_3_first_page_alone_is_not_the_whole_story() -> None:
    first_page = fixture_body("orders_customer_3_heavy_per_page_100_page_1.json")
    row = map_customer(fixture_customer(3), first_page, store_url=STORE, now=NOW)
    assert row.metadata["completed_orders"] == 43 and row.segment == "smb"


def test_fixture_customer_4_eight_orders_one_page_or_three_pages() -> None:
    one_page = fixture_body("orders_customer_4_per_page_100.json")
    three_pages: list[dict] = []
    for page in (1, 2, 3):
        three_pages += fixture_body(f"orders_customer_4_per_page_5_page_{page}.json")
    customer = fixture_customer(4)
    row = map_customer(customer, one_page, store_url=STORE, now=NOW)
    # Paid: 72.00 + 146.00 (processing) + 51.74 + 155.00 + 272.00 + 303.50 (completed) = 1000.24;
    # the pending 186.97 and cancelled 403.22 do not count.
    assert row.lifetime_value == Decimal("1000.24")
    assert (row.metadata["total_orders"], row.metadata["completed_orders"]) == (8, 4)
    assert (row.segment, row.status) == ("startup", "active")
    assert row.acquisition_date == datetime(2026, 11, 22, 6, 23, 50, tzinfo=UTC)
    assert row.last_interaction_date == datetime(2026, 11, 22, 6, 25, 8, tzinfo=UTC)
    assert row.tags == ["woocommerce", "active"]
    assert map_customer(customer, three_pages, store_url=STORE, now=NOW) == row


def test_fixture_order_648_fully_refunded_is_not_paid() -> None:
    order = fixture_body("order_648_refunded_single.json")
    row = map_customer(fixture_customer(31), [order], store_url=STORE, now=NOW)
    assert row.lifetime_value == Decimal("0.00")
    assert (row.status, row.segment) == ("prospect", "individual")
    assert row.metadata["total_orders"] == 1
    assert row.acquisition_date == row.last_interaction_date == datetime(2026, 11, 22, 6, 25, 9, tzinfo=UTC)
    assert row.tags == ["woocommerce", "prospect", "active"]


def test_fixture_customer_12_without_billing() -> None:
    row = map_customer(fixture_body("customer_12_no_billing.json"), [], store_url=STORE, now=NOW)
    assert row.name == "Judy Brown"
    assert (row.phone, row.company) == (None, None)
    # docs/contract.md section 5 takes the address from billing only: the shipping address in Toronto is not used.
    assert row.address == {"street": "", "city": "", "state": "", "postal_code": "", "country": ""}


@pytest.mark.parametrize(
    ("fixture", "name", "company"),
    [
        ("customer_20_unicode.json", "Zoë Ångström-Łukasiewicz", "Ångström-Łukasiewicz & Co 17"),
        ("customer_22_unicode.json", "山田 太郎", None),
    ],
)
def test_fixture_unicode_names_are_kept_as_they_are(fixture: str, name: str, company: str | None) -> None:
    row = map_customer(fixture_body(fixture), [], store_url=STORE, now=NOW)
    assert (row.name, row.company) == (name, company)


@pytest.mark.parametrize(
    ("fixture", "email"),
    [
        ("customer_35_uppercase_email.json", "peggy.evans.033@example.test"),
        ("customer_37_uppercase_email.json", "mixed.case.034@example.test"),
    ],
)
def test_fixture_uppercase_emails_are_lower_cased(fixture: str, email: str) -> None:
    assert map_customer(fixture_body(fixture), [], store_url=STORE, now=NOW).email == email


def test_fixture_administrator_without_names_is_named_by_email() -> None:
    row = map_customer(fixture_body("customer_admin_id_1.json"), [], store_url=STORE, now=NOW)
    assert (row.name, row.metadata["role"], row.metadata["meta"]) == ("admin@example.test", "administrator", {})


def test_fixture_every_captured_customer_maps() -> None:
    customers = [
        customer
        for page in ("customers_per_page_100_page_1.json", "customers_per_page_100_page_2.json",
                     "customers_per_page_100_last_page_3.json")
        for customer in fixture_body(page)
    ]
    rows = [map_customer(customer, [], store_url=STORE, now=NOW) for customer in customers]
    assert len(rows) == 250
    assert len({row.email for row in rows}) == 250
    assert all(row.email == row.email.lower() and row.name for row in rows)
