"""The simulator over HTTP (in-process, 127.0.0.1), request for request against the real store's answers."""

from __future__ import annotations

import base64
import functools
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import aiohttp
import orjson
import pytest
from yarl import URL

from shared.errors import StoreAuthError
from shared.woocommerce import oauth
from shared.woocommerce.client import WooCommerceClient
from shared.woocommerce.credentials import StoreCredentials
from shared.woocommerce.store_addresses import parse_networks
from tests.woocommerce_fixtures import fixture_names, load_fixture
from woosync.simulator import SimulatedStore, SimulatorConfig, serve
from woosync.simulator.data import FIRST_ORDER_ID
from woosync.stack import LOCAL_STORE_NETWORKS

pytestmark = pytest.mark.unit

KEY, SECRET = "ck_test", "cs_test"
AS_OF = date(2026, 11, 22)
# Headers that belong to the web server, not to WordPress.
SERVER_HEADERS = {"host", "date", "connection", "x-powered-by", "server", "transfer-encoding", "content-length"}


@dataclass
class Answer:
    status: int
    headers: Any
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)

    def header_names(self) -> set[str]:
        return {name.lower() for name in self.headers} - SERVER_HEADERS


class StoreClient:
    """Signs like a client would and keeps raw answers."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url

    async def get(
        self,
        path: str,
        params: Sequence[tuple[str, str]] = (),
        *,
        auth: str | None = "oauth",
        method: oauth.SignatureMethod = "HMAC-SHA256",
        key: str = KEY,
        secret: str = SECRET,
        nonce: str | None = None,
        timestamp: int | None = None,
        http_method: str = "GET",
    ) -> Answer:
        url = self.url + path
        pairs = list(params)
        headers: dict[str, str] = {}
        if auth in ("oauth", "oauth-header"):
            signed = oauth.oauth_parameters(http_method, url, pairs, key, secret, signature_method=method,
                                            nonce=nonce, timestamp=timestamp)
            if auth == "oauth":
                pairs += signed
            else:
                headers["Authorization"] = oauth.authorization_header(signed)
        elif auth == "basic":
            headers["Authorization"] = "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()
        elif auth == "query":
            pairs += [("consumer_key", key), ("consumer_secret", secret)]
        query = "&".join(f"{oauth.percent_encode(k)}={oauth.percent_encode(v)}" for k, v in pairs)
        target = URL(url + (f"?{query}" if query else ""), encoded=True)
        async with self.session.request(http_method, target, headers=headers) as response:
            return Answer(response.status, response.headers, await response.read())


@pytest.fixture
def store() -> SimulatedStore:
    return SimulatedStore(250, 1, as_of=AS_OF)


async def start(store: SimulatedStore, **config: Any) -> tuple[Any, StoreClient, aiohttp.ClientSession]:
    running = await serve(store, SimulatorConfig(port=0, **config))
    session = aiohttp.ClientSession()
    return running, StoreClient(session, running.url), session


@pytest.fixture
async def client(store: SimulatedStore) -> AsyncIterator[StoreClient]:
    running, store_client, session = await start(store)
    try:
        yield store_client
    finally:
        await session.close()
        await running.stop()


@pytest.fixture
async def https_client(store: SimulatedStore) -> AsyncIterator[StoreClient]:
    running, store_client, session = await start(store, https_auth=True)
    try:
        yield store_client
    finally:
        await session.close()
        await running.stop()


def key_paths(value: Any, prefix: str = "") -> set[str]:
    """Every key path of a JSON document (lists merge their elements)."""
    paths: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            paths.add(f"{prefix}.{key}")
            paths |= key_paths(item, f"{prefix}.{key}")
    elif isinstance(value, list):
        for item in value:
            paths |= key_paths(item, f"{prefix}[]")
    return paths


def _documents(body: Any) -> list[Any]:
    return body if isinstance(body, list) else [body]


@functools.lru_cache(maxsize=None)
def known_paths(kind: str) -> frozenset[str]:
    """Key paths of every customer or order document the real store sent, across all fixtures."""
    paths: set[str] = set()
    for name in fixture_names():
        captured = load_fixture(name)
        if captured.status == 200 and captured.path.startswith(f"/wp-json/wc/v3/{kind}"):
            for document in _documents(captured.body):
                paths |= key_paths(document)
    return frozenset(paths)


def assert_like_fixture(answer: Answer, fixture: str, *, exact_body: bool = False) -> None:
    """Same status, same WordPress headers, and the same body (errors) or document shape."""
    captured = load_fixture(fixture)
    assert answer.status == captured.status, answer.body[:300]
    real_names = {name.lower() for name, _ in captured.headers} - SERVER_HEADERS
    assert answer.header_names() == real_names
    assert answer.headers["Content-Type"] == captured.header("Content-Type")
    body = answer.json()
    if exact_body:
        assert body == captured.body
        return
    ours, theirs = _documents(body), _documents(captured.body)
    assert isinstance(body, list) == isinstance(captured.body, list)
    assert bool(ours) == bool(theirs)
    kind = "orders" if "/orders" in captured.path else "customers"
    for document in ours:
        assert list(document) == list(theirs[0]), "top-level keys and their order"
        # Nested keys: only ones the real store uses (meta values are free-form JSON).
        extra = {p for p in key_paths(document) - known_paths(kind) if ".meta_data[].value." not in p}
        assert not extra, extra


def fixture_query(fixture: str) -> list[tuple[str, str]]:
    """The fixture's request parameters without its credentials."""
    return [(k, v) for k, v in load_fixture(fixture).params.items()
            if not k.startswith("oauth_") and k not in ("consumer_key", "consumer_secret")]


# ---------------------------------------------------------------------------- authentication over http


@pytest.mark.parametrize(
    ("fixture", "auth", "options"),
    [
        ("auth_none", None, {}),
        ("auth_basic_over_http", "basic", {}),
        ("auth_basic_wrong_key_over_http", "basic", {"key": "ck_wrong", "secret": "cs_wrong"}),
        ("auth_query_string_over_http", "query", {}),
        ("auth_oauth_wrong_key", "oauth", {"key": "ck_0000000000000000000000000000000000000000"}),
        ("auth_oauth_wrong_secret", "oauth", {"secret": "cs_wrong"}),
        ("auth_oauth_stale_timestamp", "oauth", {"timestamp": int(time.time()) - 3600}),
        ("orders_auth_none", None, {}),
    ],
)
async def test_refused_requests_answer_like_the_real_store(client: StoreClient, fixture: str, auth: str | None,
                                                           options: dict[str, Any]) -> None:
    path = load_fixture(fixture).path
    answer = await client.get(path, fixture_query(fixture), auth=auth, **options)
    assert_like_fixture(answer, fixture, exact_body=True)


@pytest.mark.parametrize(
    ("fixture", "auth", "method"),
    [
        ("auth_oauth_query_ok", "oauth", "HMAC-SHA256"),
        ("auth_oauth_header_ok", "oauth-header", "HMAC-SHA256"),
        ("auth_oauth_hmac_sha1_ok", "oauth", "HMAC-SHA1"),
    ],
)
async def test_oauth_requests_are_served_like_the_real_store(client: StoreClient, store: SimulatedStore, fixture: str,
                                                             auth: str, method: oauth.SignatureMethod) -> None:
    answer = await client.get("/wp-json/wc/v3/customers", [("per_page", "1")], auth=auth, method=method)
    assert_like_fixture(answer, fixture)
    assert answer.headers["X-WP-Total"] == str(len(store.customer_ids("customer")))


async def test_replayed_nonce_is_refused(client: StoreClient) -> None:
    first = await client.get("/wp-json/wc/v3/customers", [("per_page", "1")], nonce="once", timestamp=int(time.time()))
    again = await client.get("/wp-json/wc/v3/customers", [("per_page", "1")], nonce="once", timestamp=int(time.time()))
    assert first.status == 200
    assert_like_fixture(again, "auth_oauth_replayed_nonce", exact_body=True)


async def test_following_the_next_link_verbatim_is_refused(client: StoreClient) -> None:
    # The link echoes the used nonce and a signature over another page: WooCommerce checks the
    # signature first, so that is what it names.
    answer = await client.get("/wp-json/wc/v3/customers", [("per_page", "100"), ("role", "all")])
    next_url = answer.headers["Link"].split(">")[0].lstrip("<")
    assert "oauth_nonce=" in next_url and "page=2" in next_url
    async with client.session.get(URL(next_url, encoded=True)) as followed:
        assert followed.status == 401
        assert (await followed.json())["code"] == "woocommerce_rest_authentication_error"


async def test_missing_nonce_and_plaintext_method_are_refused(client: StoreClient) -> None:
    signed = oauth.oauth_parameters("GET", client.url + "/wp-json/wc/v3/customers", [("per_page", "1")], KEY, SECRET)
    without_nonce = [(k, v) for k, v in signed if k != "oauth_nonce"]
    answer = await client.get("/wp-json/wc/v3/customers", [("per_page", "1"), *without_nonce], auth=None)
    assert_like_fixture(answer, "auth_oauth_missing_nonce", exact_body=True)
    plaintext = [(k, "PLAINTEXT" if k == "oauth_signature_method" else v) for k, v in signed]
    answer = await client.get("/wp-json/wc/v3/customers", [("per_page", "1"), *plaintext], auth=None)
    assert_like_fixture(answer, "auth_oauth_plaintext_method", exact_body=True)


async def test_refuse_credentials_refuses_the_configured_key(store: SimulatedStore) -> None:
    running, store_client, session = await start(store, refuse_credentials=True)
    try:
        answer = await store_client.get("/wp-json/wc/v3/customers", [("per_page", "1")])
        assert answer.status == 401 and answer.json()["message"] == "Consumer key is invalid."
    finally:
        await session.close()
        await running.stop()


# ---------------------------------------------------------------------------- authentication behind TLS


@pytest.mark.parametrize(
    ("fixture", "auth", "options"),
    [
        ("https_none", None, {}),
        ("https_basic_wrong_key", "basic", {"key": "ck_0000000000000000000000000000000000000000"}),
        ("https_basic_wrong_secret", "basic", {"secret": "cs_wrong"}),
        ("https_query_wrong_key", "query", {"key": "ck_0000000000000000000000000000000000000000"}),
    ],
)
async def test_https_auth_refuses_like_the_real_store_behind_tls(https_client: StoreClient, fixture: str,
                                                                 auth: str | None, options: dict[str, Any]) -> None:
    answer = await https_client.get("/wp-json/wc/v3/customers", [("per_page", "1")], auth=auth, **options)
    assert_like_fixture(answer, fixture, exact_body=True)


@pytest.mark.parametrize(("fixture", "auth"), [("https_basic_ok", "basic"), ("https_query_ok", "query")])
async def test_https_auth_accepts_basic_and_query_keys(https_client: StoreClient, fixture: str, auth: str) -> None:
    answer = await https_client.get("/wp-json/wc/v3/customers", [("per_page", "1")], auth=auth)
    assert_like_fixture(answer, fixture)


# ---------------------------------------------------------------------------- customers


@pytest.mark.parametrize(
    ("fixture", "path"),
    [
        ("customer_single", "/wp-json/wc/v3/customers/8"),
        ("customer_admin_id_1", "/wp-json/wc/v3/customers/1"),
        ("customer_12_no_billing", "/wp-json/wc/v3/customers/18"),
        ("customer_404", "/wp-json/wc/v3/customers/999999"),
        ("customers_per_page_101_error", "/wp-json/wc/v3/customers"),
        ("customers_per_page_0_error", "/wp-json/wc/v3/customers"),
        ("customers_page_0_error", "/wp-json/wc/v3/customers"),
        ("customers_email_filter_invalid", "/wp-json/wc/v3/customers"),
        ("customers_email_filter_no_match", "/wp-json/wc/v3/customers"),
        ("customers_per_page_100_page_beyond_last", "/wp-json/wc/v3/customers"),
        ("customers_per_page_100_page_1", "/wp-json/wc/v3/customers"),
        ("customers_role_all", "/wp-json/wc/v3/customers"),
    ],
)
async def test_customer_requests_answer_like_the_real_store(client: StoreClient, fixture: str, path: str) -> None:
    answer = await client.get(path, fixture_query(fixture))
    captured = load_fixture(fixture)
    assert_like_fixture(answer, fixture, exact_body=captured.status >= 400 or captured.body == [])


async def test_customers_default_to_role_customer_and_role_all_lists_everyone(
        client: StoreClient, store: SimulatedStore) -> None:
    default = await client.get("/wp-json/wc/v3/customers", [("per_page", "100")])
    everyone = await client.get("/wp-json/wc/v3/customers", [("per_page", "100"), ("role", "all")])
    customers = len(store.customer_ids("customer"))
    assert default.headers["X-WP-Total"] == str(customers) and customers < 250
    assert everyone.headers["X-WP-Total"] == "250" and everyone.headers["X-WP-TotalPages"] == "3"
    assert all(row["role"] == "customer" for row in default.json())


async def test_paging_by_id_returns_every_customer_once_as_the_store_has_them(
        client: StoreClient, store: SimulatedStore) -> None:
    rows = []
    for page in (1, 2, 3, 4):
        answer = await client.get("/wp-json/wc/v3/customers", [("per_page", "100"), ("page", str(page)),
                                                               ("orderby", "id"), ("order", "asc"), ("role", "all")])
        assert answer.status == 200 and answer.headers["X-WP-Total"] == "250", "totals kept past the last page"
        rows += answer.json()
    assert [row["id"] for row in rows] == list(range(1, 251))
    assert rows[13] == store.customer(14), "unicode names survive the \\u escapes"


async def test_default_order_is_by_name_and_desc_reverses(client: StoreClient) -> None:
    by_name = (await client.get("/wp-json/wc/v3/customers", [("per_page", "100"), ("role", "all")])).json()
    usernames = [row["username"].lower() for row in by_name]
    assert usernames == sorted(usernames)
    newest = (await client.get("/wp-json/wc/v3/customers", [("orderby", "registered_date"), ("order", "desc"),
                                                            ("role", "all"), ("per_page", "3")])).json()
    assert [row["id"] for row in newest] == [250, 249, 248]


async def test_email_filter_matches_case_insensitively(client: StoreClient, store: SimulatedStore) -> None:
    upper = store.customer(16)["email"]
    assert upper != upper.lower()
    for wanted in (upper, upper.lower()):
        answer = await client.get("/wp-json/wc/v3/customers", [("email", wanted)])
        assert answer.headers["X-WP-Total"] == "1" and answer.json()[0]["id"] == 16
    admin = await client.get("/wp-json/wc/v3/customers", [("email", "admin@example.test")])
    assert admin.json() == [], "the default role filter hides the administrator"
    admin = await client.get("/wp-json/wc/v3/customers", [("email", "admin@example.test"), ("role", "all")])
    assert [row["id"] for row in admin.json()] == [1]


async def test_search_with_spaces_and_symbols_is_signed_and_served(client: StoreClient, store: SimulatedStore) -> None:
    answer = await client.get("/wp-json/wc/v3/customers", [("search", "smith"), ("per_page", "100")])
    expected = [cid for cid in store.customers_sorted("customer", "name", "asc") if store.search_matches(cid, "smith")]
    assert [row["id"] for row in answer.json()] == expected[:100] and expected
    odd = await client.get("/wp-json/wc/v3/customers", [("search", "Zoë & Co 100%/x+y")])
    assert odd.status == 200 and odd.json() == []


async def test_fields_limit_the_document(client: StoreClient) -> None:
    answer = await client.get("/wp-json/wc/v3/customers/8", [("_fields", "id,email,billing.phone")])
    assert list(answer.json()) == ["id", "email", "billing"] and list(answer.json()["billing"]) == ["phone"]


# ---------------------------------------------------------------------------- orders


async def test_orders_of_a_heavy_customer_span_pages_and_match_the_store(
        client: StoreClient, store: SimulatedStore) -> None:
    heavy = store.showcase_id("heavy_mid_market_by_count")
    expected = store.orders_for(heavy)
    assert len(expected) > 100
    first = await client.get("/wp-json/wc/v3/orders", [("customer", str(heavy)), ("per_page", "100"), ("page", "1")])
    second = await client.get("/wp-json/wc/v3/orders", [("customer", str(heavy)), ("per_page", "100"), ("page", "2")])
    beyond = await client.get("/wp-json/wc/v3/orders", [("customer", str(heavy)), ("per_page", "100"), ("page", "3")])
    assert first.headers["X-WP-Total"] == str(len(expected)) and first.headers["X-WP-TotalPages"] == "2"
    assert first.json() + second.json() == expected
    assert_like_fixture(first, "orders_customer_3_heavy_per_page_100_page_1")
    # Past the last page orders answer [] with zeroed totals (the real store's quirk).
    assert_like_fixture(beyond, "orders_customer_3_heavy_per_page_100_page_3", exact_body=True)
    assert beyond.headers["X-WP-Total"] == "0" and beyond.headers["X-WP-TotalPages"] == "0"
    assert "page=0" in beyond.headers["Link"] and 'rel="prev"' in beyond.headers["Link"]


@pytest.mark.parametrize(
    ("fixture", "path", "params"),
    [
        ("orders_customer_4_per_page_100", "/wp-json/wc/v3/orders", None),
        ("orders_customer_41_no_orders", "/wp-json/wc/v3/orders", [("customer", "10")]),
        ("orders_customer_999999_unknown", "/wp-json/wc/v3/orders", None),
        ("orders_per_page_101_error", "/wp-json/wc/v3/orders", None),
        ("orders_status_bogus_error", "/wp-json/wc/v3/orders", None),
        ("orders_customer_0_guests", "/wp-json/wc/v3/orders", None),
        ("orders_default", "/wp-json/wc/v3/orders", None),
        ("order_404", "/wp-json/wc/v3/orders/999999", None),
    ],
)
async def test_order_requests_answer_like_the_real_store(client: StoreClient, fixture: str, path: str,
                                                         params: list[tuple[str, str]] | None) -> None:
    answer = await client.get(path, params if params is not None else fixture_query(fixture))
    captured = load_fixture(fixture)
    assert_like_fixture(answer, fixture, exact_body=captured.status >= 400 or captured.body == [])


async def test_a_single_refunded_order_answers_like_the_real_store(client: StoreClient, store: SimulatedStore) -> None:
    refunded = next(o for cid in range(3, 250) for o in store.orders_for(cid)
                    if o["status"] == "refunded" and len(o["refunds"]) == 1)
    answer = await client.get(f"/wp-json/wc/v3/orders/{refunded['id']}")
    assert_like_fixture(answer, "order_648_refunded_single")
    assert answer.json() == refunded
    missing = await client.get(f"/wp-json/wc/v3/orders/{refunded['refunds'][0]['id']}")
    assert missing.status == 404, "a refund is not an order"


async def test_status_filter_and_order(client: StoreClient, store: SimulatedStore) -> None:
    heavy = store.showcase_id("heavy_mid_market_by_count")
    answer = await client.get("/wp-json/wc/v3/orders", [("customer", str(heavy)), ("status", "completed,refunded"),
                                                        ("per_page", "100"), ("order", "asc")])
    expected = [o for o in reversed(store.orders_for(heavy)) if o["status"] in ("completed", "refunded")]
    assert answer.json() == expected[:100]
    assert answer.headers["X-WP-Total"] == str(len(expected))


async def test_all_orders_listing_is_newest_first_across_customers(client: StoreClient, store: SimulatedStore) -> None:
    answer = await client.get("/wp-json/wc/v3/orders", [("per_page", "50")])
    total = store.customer_order_total + store.guest_order_count
    assert answer.headers["X-WP-Total"] == str(total)
    stamps = [(o["date_created_gmt"], o["id"]) for o in answer.json()]
    assert stamps == sorted(stamps, reverse=True)
    assert len({o["customer_id"] for o in answer.json()}) > 5


@pytest.mark.parametrize("order", ["asc", "desc"])
async def test_paging_every_order_by_id_gives_each_order_once_in_id_order(
        client: StoreClient, store: SimulatedStore, order: str) -> None:
    """A bulk sync's listing (served without the store-wide index) against the store's orders
    gathered customer by customer, guests included."""
    expected = sorted((o["id"] for cid in (0, *store.customer_ids("all")) for o in store.orders_for(cid)),
                      reverse=order == "desc")
    seen: list[int] = []
    page = 1
    while True:
        answer = await client.get("/wp-json/wc/v3/orders", [("per_page", "100"), ("page", str(page)),
                                                            ("orderby", "id"), ("order", order), ("_fields", "id")])
        if not answer.json():
            assert answer.headers["X-WP-TotalPages"] == "0"
            break
        assert answer.headers["X-WP-Total"] == str(len(expected))
        seen += [o["id"] for o in answer.json()]
        page += 1
    assert seen == expected
    assert page - 1 == -(-len(expected) // 100)


# ---------------------------------------------------------------------------- discovery and odd paths


async def test_namespace_and_site_index_need_no_credentials(client: StoreClient) -> None:
    namespace = await client.get("/wp-json/wc/v3", auth=None)
    assert namespace.status == 200 and namespace.json()["namespace"] == "wc/v3"
    assert "/wc/v3/orders" in namespace.json()["routes"]
    site = await client.get("/wp-json/", auth=None)
    assert site.status == 200 and "wc/v3" in site.json()["namespaces"]
    status = await client.get("/wp-json/wc/v3/system_status")
    assert status.status == 200 and status.json()["environment"]["version"] == "10.0.2"


async def test_unknown_routes_and_methods(client: StoreClient) -> None:
    unknown = await client.get("/wp-json/wc/v3/bogus")
    assert unknown.status == 404 and unknown.json()["code"] == "rest_no_route"
    post = await client.get("/wp-json/wc/v3/customers", auth=None, http_method="POST")
    assert post.status == 404 and post.json()["code"] == "rest_no_route"
    page = await client.get("/shop/", auth=None)
    assert page.status == 404 and page.headers["Content-Type"].startswith("text/html")
    bad_signature = await client.get("/wp-json/wc/v3/bogus", secret="cs_wrong")
    assert bad_signature.status == 401, "authentication is checked before routing"


async def test_invalid_arguments_are_reported_before_permissions(client: StoreClient) -> None:
    answer = await client.get("/wp-json/wc/v3/customers", [("per_page", "101")], auth=None)
    assert answer.status == 400 and answer.json()["code"] == "rest_invalid_param"


async def test_head_requests_get_headers_only(client: StoreClient) -> None:
    answer = await client.get("/wp-json/wc/v3/customers", [("per_page", "5")], http_method="HEAD")
    assert answer.status == 200 and answer.body == b"" and answer.headers["X-WP-Total"]


# ---------------------------------------------------------------------------- faults


async def test_poison_customers_orders_always_answer_500(store: SimulatedStore) -> None:
    running, store_client, session = await start(store, fail_orders_for=frozenset({7}), fail_orders_every=50)
    try:
        for customer_id, failing in ((7, True), (8, False), (100, True), (101, False)):
            answer = await store_client.get("/wp-json/wc/v3/orders", [("customer", str(customer_id))])
            assert (answer.status == 500) == failing, customer_id
            if failing:
                assert answer.json()["code"] == "internal_server_error"
        order_of_7 = store.orders_for(7)[0]["id"]
        assert (await store_client.get(f"/wp-json/wc/v3/orders/{order_of_7}")).status == 500
        assert (await store_client.get("/wp-json/wc/v3/customers/7")).status == 200
    finally:
        await session.close()
        await running.stop()


async def test_rate_limit_rate_answers_429_with_retry_after(store: SimulatedStore) -> None:
    running, store_client, session = await start(store, rate_limit_rate=1.0, retry_after_s=7)
    try:
        answer = await store_client.get("/wp-json/wc/v3/customers")
        assert answer.status == 429 and answer.headers["Retry-After"] == "7"
        assert answer.headers["Content-Type"].startswith("text/html")
    finally:
        await session.close()
        await running.stop()


async def test_error_rate_answers_5xx_in_the_given_share(store: SimulatedStore) -> None:
    running, store_client, session = await start(store, error_rate=0.3, fault_seed=4)
    try:
        statuses = [(await store_client.get("/wp-json/wc/v3/customers", [("per_page", "1")])).status
                    for _ in range(200)]
        errors = [s for s in statuses if s >= 500]
        assert 30 <= len(errors) <= 90
        assert set(errors) <= {500, 502, 503, 504} and len(set(errors)) > 1
        assert set(statuses) - set(errors) == {200}
    finally:
        await session.close()
        await running.stop()


async def test_max_rps_throttles_bursts(store: SimulatedStore) -> None:
    running, store_client, session = await start(store, max_rps=5)
    try:
        statuses = [(await store_client.get("/wp-json/wc/v3/customers", [("per_page", "1")])).status
                    for _ in range(12)]
        assert statuses[:5] == [200] * 5 and 429 in statuses
    finally:
        await session.close()
        await running.stop()


async def test_latency_is_added(store: SimulatedStore) -> None:
    running, store_client, session = await start(store, latency_ms=(120.0, 120.0), latency_per_item_ms=10.0)
    try:
        started = time.monotonic()
        await store_client.get("/wp-json/wc/v3/customers", [("per_page", "5")])
        assert time.monotonic() - started >= 0.17
    finally:
        await session.close()
        await running.stop()


async def test_stats_count_what_was_served(client: StoreClient) -> None:
    await client.get("/wp-json/wc/v3/customers")
    await client.get("/wp-json/wc/v3/orders", [("customer", "4")])
    await client.get("/wp-json/wc/v3/orders", [("customer", "4")], auth=None)
    stats = (await client.get("/__simulator/stats", auth=None)).json()
    assert stats["by_route"]["orders"] == {"200": 1, "401": 1}
    assert stats["by_route"]["customers"] == {"200": 1}
    assert stats["store"]["customers"] == 250


# ---------------------------------------------------------------------------- the project's own client


# The simulator listens on loopback, which the client refuses unless allowed.
LOCAL_NETWORKS = parse_networks(LOCAL_STORE_NETWORKS)


async def test_woosync_client_reads_the_whole_store(store: SimulatedStore) -> None:
    running = await serve(store, SimulatorConfig(port=0))
    try:
        credentials = StoreCredentials(running.url, KEY, SECRET)
        async with WooCommerceClient(credentials, allowed_networks=LOCAL_NETWORKS) as woo:
            await woo.test_connection()
            ids = [row["id"] async for page in woo.iter_customer_pages() for row in page.customers]
            assert ids == list(range(1, 251))
            heavy = store.showcase_id("heavy_mid_market_by_count")
            assert await woo.list_orders(heavy) == store.orders_for(heavy)
            assert await woo.get_customer(14) == store.customer(14)
        async with WooCommerceClient(StoreCredentials(running.url, KEY, "cs_wrong"), allowed_networks=LOCAL_NETWORKS) as woo:
            with pytest.raises(StoreAuthError):
                await woo.test_connection()
    finally:
        await running.stop()


def test_order_ids_start_where_documented(store: SimulatedStore) -> None:
    first_customer_with_orders = next(cid for cid in store.customer_ids() if store.order_count(cid))
    assert store.orders_for(first_customer_with_orders)[-1]["id"] == FIRST_ORDER_ID
