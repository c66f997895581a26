"""WordPress REST conventions, checked against what the real store sent (woocommerce-fixtures)."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import pytest
from yarl import URL

from tests.woocommerce_fixtures import fixtures_dir, load_fixture
from woosync.simulator import rest
from woosync.simulator.app import CUSTOMER_LIST_PARAMS, ORDER_LIST_PARAMS, orders_pagination_link

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("name", ["customer_20_unicode", "customer_404", "customers_per_page_2_page_1",
                                  "orders_customer_4_per_page_2"])
def test_json_encoding_is_byte_identical_to_wordpress(name: str) -> None:
    raw = (fixtures_dir() / "raw" / f"{name}.body.json").read_bytes()
    assert rest.wp_json(json.loads(raw)) == raw


def test_json_encoding_escapes_like_php_json_encode_for_any_unicode() -> None:
    document = {"name": "Ana 🌻 Zoë 山田 Ελένη", "url": "http://x/y", "price": 24, "unit": 3.49, "none": None}
    expected = json.dumps(document, ensure_ascii=True, separators=(",", ":")).replace("/", "\\/").encode()
    assert rest.wp_json(document) == expected
    assert b"\\ud83c\\udf3b" in expected, "astral characters as a surrogate pair"


# ---------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("fixture", "params"),
    [
        ("customers_per_page_0_error", CUSTOMER_LIST_PARAMS),
        ("customers_per_page_101_error", CUSTOMER_LIST_PARAMS),
        ("customers_page_0_error", CUSTOMER_LIST_PARAMS),
        ("customers_email_filter_invalid", CUSTOMER_LIST_PARAMS),
        ("orders_per_page_101_error", ORDER_LIST_PARAMS),
        ("orders_status_bogus_error", ORDER_LIST_PARAMS),
    ],
)
def test_invalid_arguments_get_the_real_error_body(fixture: str, params: tuple[rest.Param, ...]) -> None:
    captured = load_fixture(fixture)
    query = {k: v for k, v in captured.params.items() if not k.startswith("oauth_")}
    with pytest.raises(rest.RestError) as raised:
        rest.validate(query, params)
    assert raised.value.status == captured.status == 400
    assert raised.value.body() == captured.body


def test_several_invalid_arguments_are_reported_together_in_declaration_order() -> None:
    with pytest.raises(rest.RestError) as raised:
        rest.validate({"role": "wizard", "per_page": "abc", "order": "up"}, CUSTOMER_LIST_PARAMS)
    body = raised.value.body()
    assert body["message"] == "Invalid parameter(s): per_page, order, role"
    assert body["data"]["params"]["per_page"] == "per_page is not of type integer."
    assert body["data"]["params"]["order"] == "order is not one of asc and desc."
    assert body["data"]["params"]["role"] == (
        "role is not one of all, administrator, editor, author, contributor, subscriber, customer, and shop_manager.")
    assert body["data"]["details"]["role"]["code"] == "rest_not_in_enum"


def test_defaults_fill_in_and_values_are_typed() -> None:
    args = rest.validate({"per_page": "100", "page": "3", "status": "completed,processing"}, ORDER_LIST_PARAMS)
    assert args["per_page"] == 100 and args["page"] == 3 and args["order"] == "desc" and args["orderby"] == "date"
    assert args["status"] == ["completed", "processing"] and args["customer"] is None and args["dp"] == 2
    assert rest.validate({}, CUSTOMER_LIST_PARAMS)["role"] == "customer"


def test_php_query_collapses_duplicates_and_builds_arrays() -> None:
    parsed = rest.php_query([("a", "1"), ("status[]", "x"), ("status[]", "y"), ("a", "2"), ("m[k]", "v")])
    assert parsed == {"a": "2", "status": {"0": "x", "1": "y"}, "m": {"k": "v"}}
    assert list(parsed) == ["a", "status", "m"]


def test_fields_filter_keeps_named_keys_in_document_order() -> None:
    document = {"id": 1, "total": "1.00", "billing": {"email": "e", "phone": "p"}, "_links": {}}
    assert rest.filter_fields(document, ["billing.email", "id"]) == {"id": 1, "billing": {"email": "e"}}


# ---------------------------------------------------------------------------- Link headers


def _request_query(fixture: str) -> list[tuple[str, str]]:
    """The fixture's request query with the real nonce and signature (the Link header kept them)."""
    captured = load_fixture(fixture)
    link = captured.header("Link") or ""
    linked = dict(URL(link.split(">")[0].lstrip("<")).query)
    request = json.loads((fixtures_dir() / f"{fixture}.json").read_text())["request"]["url"]
    pairs = []
    for key, value in URL(request).query.items():
        if key in ("oauth_nonce", "oauth_signature"):
            value = linked[key]
        pairs.append((key, value))
    return pairs


@pytest.mark.parametrize(
    ("fixture", "page", "max_pages"),
    [
        ("customers_no_params", 1, 25),
        ("customers_per_page_100_page_2", 2, 3),
        ("customers_per_page_100_page_999", 999, 3),
        ("customers_role_all", 1, 84),
        ("customers_orderby_id_asc_page_1", 1, 3),
        ("customers_search_smith", 1, 3),
    ],
)
def test_customer_links_echo_the_query_like_woocommerce(fixture: str, page: int, max_pages: int) -> None:
    captured = load_fixture(fixture)
    site = "{0.scheme}://{0.netloc}".format(urlsplit(json.loads(
        (fixtures_dir() / f"{fixture}.json").read_text())["request"]["url"]))
    query = rest.php_query(_request_query(fixture))
    link = rest.pagination_link(f"{site}/wp-json/wc/v3/customers", query, page=page, max_pages=max_pages)
    assert link == captured.header("Link")


@pytest.mark.parametrize(
    ("fixture", "max_pages", "rendered"),
    [
        ("orders_default", 60, True),
        ("orders_customer_0_guests", 4, True),
        ("orders_status_cancelled_per_page_2", 29, True),
        ("orders_customer_4_per_page_5_page_2", 2, True),
        ("orders_customer_3_heavy_per_page_100_page_3", 0, False),
    ],
)
def test_order_links_move_status_last_and_add_dp_and_context(fixture: str, max_pages: int, rendered: bool) -> None:
    captured = load_fixture(fixture)
    query = rest.php_query(_request_query(fixture))
    args = rest.validate({k: v for k, v in query.items() if not k.startswith("oauth_")}, ORDER_LIST_PARAMS)
    link = orders_pagination_link("http://127.0.0.1:8088/wp-json/wc/v3/orders", query, args,
                                  max_pages=max_pages, rendered=rendered)
    assert link == captured.header("Link")


def test_no_link_when_there_is_a_single_page() -> None:
    assert rest.pagination_link("http://s/wp-json/wc/v3/customers", {"per_page": "100"}, page=1, max_pages=1) is None
