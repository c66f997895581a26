"""WooCommerce authentication: accepted and refused exactly where the real store accepts and refuses."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote

import pytest

from tests.woocommerce_fixtures import load_fixture, oauth_signature_example
from woosync.simulator.auth import Authenticator, AuthOutcome, NonceMemory

pytestmark = pytest.mark.unit

KEY, SECRET = "ck_test", "cs_test"
SITE = "http://127.0.0.1:8090"
PATH = "/wp-json/wc/v3/customers"
NOW = 1_795_328_795


def enc(value: str) -> str:
    return quote(value, safe="~")


def sign(query: dict[str, str], *, secret: str = SECRET, method: str = "HMAC-SHA256", site: str = SITE,
         path: str = PATH, nonce: str = "n1", timestamp: int = NOW, key: str = KEY) -> dict[str, str]:
    """A tiny independent signer (RFC 5849 one-legged, as WooCommerce checks it)."""
    params = {**query, "oauth_consumer_key": key, "oauth_nonce": nonce, "oauth_signature_method": method,
              "oauth_timestamp": str(timestamp)}
    normalized = "&".join(f"{enc(k)}={enc(v)}" for k, v in sorted(params.items()))
    base = f"GET&{enc(site + path)}&{enc(normalized)}"
    digest = hashlib.sha1 if method == "HMAC-SHA1" else hashlib.sha256
    signature = base64.b64encode(hmac.new(f"{secret}&".encode(), base.encode(), digest).digest()).decode()
    return {**params, "oauth_signature": signature}


def authenticator(*, https: bool = False, clock: float = NOW) -> Authenticator:
    return Authenticator({KEY: SECRET}, https=https, clock=lambda: clock)


def check(auth: Authenticator, query: dict[str, str], authorization: str | None = None,
          site_urls: tuple[str, ...] = (SITE,)) -> AuthOutcome:
    return auth.authenticate(method="GET", raw_path=PATH, query=dict(query), authorization=authorization,
                             site_urls=site_urls)


def assert_refused_like(outcome: AuthOutcome, fixture: str) -> None:
    captured = load_fixture(fixture)
    assert outcome.error is not None, f"expected {captured.body['code']}"
    assert outcome.error.status == captured.status
    assert outcome.error.body() == captured.body


def test_accepts_the_request_the_real_store_accepted() -> None:
    example = oauth_signature_example()
    auth = Authenticator({example["consumer_key"]: example["consumer_secret"]},
                         clock=lambda: int(example["oauth_params"]["oauth_timestamp"]))
    query = {**example["query"], **example["oauth_params"]}
    outcome = auth.authenticate(method="GET", raw_path="/wp-json/wc/v3/customers", query=query,
                                authorization=None, site_urls=["http://127.0.0.1:8088"])
    assert outcome == AuthOutcome(consumer_key=example["consumer_key"])


@pytest.mark.parametrize("method", ["HMAC-SHA256", "HMAC-SHA1"])
def test_accepts_both_hmac_methods_in_the_query(method: str) -> None:
    assert check(authenticator(), sign({"per_page": "1"}, method=method)).authenticated


def test_accepts_oauth_in_the_authorization_header_signing_the_query_too() -> None:
    signed = sign({"per_page": "1"})
    header = "OAuth " + ", ".join(f'{k}="{enc(v)}"' for k, v in signed.items() if k.startswith("oauth_"))
    assert check(authenticator(), {"per_page": "1"}, authorization=header).authenticated


def test_signature_covering_another_query_is_refused() -> None:
    signed = sign({"per_page": "1"})
    assert_refused_like(check(authenticator(), {**signed, "per_page": "100"}), "auth_oauth_wrong_signature")


def test_a_plus_sign_decoded_to_a_space_still_verifies() -> None:
    # A client that puts a base64 '+' into the URL unescaped: PHP (and aiohttp) decode it to ' '.
    for nonce in (f"n{i}" for i in range(40)):
        signed = sign({"per_page": "1"}, nonce=nonce)
        if "+" in signed["oauth_signature"]:
            signed["oauth_signature"] = signed["oauth_signature"].replace("+", " ")
            assert check(authenticator(), signed).authenticated
            return
    pytest.fail("no signature with '+' among 40 nonces")


def test_missing_nonce_is_named() -> None:
    signed = sign({"per_page": "1"})
    del signed["oauth_nonce"]
    assert_refused_like(check(authenticator(), signed), "auth_oauth_missing_nonce")


def test_several_missing_parameters_are_all_named() -> None:
    outcome = check(authenticator(), {"oauth_consumer_key": KEY, "oauth_signature_method": "HMAC-SHA256"})
    assert outcome.error is not None
    assert outcome.error.message == "Missing OAuth parameters oauth_timestamp, oauth_nonce, oauth_signature"


def test_plaintext_signature_method_is_refused() -> None:
    signed = sign({"per_page": "1"}, method="PLAINTEXT")
    assert_refused_like(check(authenticator(), signed), "auth_oauth_plaintext_method")


def test_unknown_key_is_refused() -> None:
    signed = sign({"per_page": "1"}, key="ck_0000000000000000000000000000000000000000")
    assert_refused_like(check(authenticator(), signed), "auth_oauth_wrong_key")


def test_wrong_secret_is_refused() -> None:
    assert_refused_like(check(authenticator(), sign({"per_page": "1"}, secret="cs_wrong")), "auth_oauth_wrong_secret")


def test_tampered_signature_is_refused() -> None:
    signed = sign({"per_page": "1"})
    signed["oauth_signature"] = base64.b64encode(b"x" * 32).decode()
    assert_refused_like(check(authenticator(), signed), "auth_oauth_wrong_signature")


@pytest.mark.parametrize("skew", [-3600, 901, -901])
def test_timestamp_outside_fifteen_minutes_is_refused(skew: int) -> None:
    signed = sign({"per_page": "1"}, timestamp=NOW + skew)
    assert_refused_like(check(authenticator(), signed), "auth_oauth_stale_timestamp")


def test_timestamp_just_inside_the_window_is_accepted() -> None:
    assert check(authenticator(), sign({"per_page": "1"}, timestamp=NOW - 899)).authenticated


def test_replayed_nonce_is_refused_the_second_time() -> None:
    auth = authenticator()
    signed = sign({"per_page": "1"})
    assert check(auth, signed).authenticated
    assert_refused_like(check(auth, signed), "auth_oauth_replayed_nonce")


def test_nonce_reused_with_another_timestamp_is_still_a_replay() -> None:
    auth = authenticator()
    assert check(auth, sign({"per_page": "1"}, nonce="same", timestamp=NOW)).authenticated
    assert check(auth, sign({"per_page": "1"}, nonce="same", timestamp=NOW + 1)).error is not None


def test_signature_for_the_host_the_client_used_is_accepted() -> None:
    signed = sign({"per_page": "1"}, site="http://localhost:8090")
    assert check(authenticator(), signed, site_urls=(SITE, "http://localhost:8090")).authenticated
    assert check(authenticator(), signed, site_urls=(SITE,)).error is not None


def test_values_that_need_escaping_are_signed_as_woocommerce_does() -> None:
    query = {"search": "Zoë & Co 100% / ok", "email": "a+b@example.test", "note": "~tilde*star"}
    assert check(authenticator(), sign(query)).authenticated


def test_bracketed_parameters_are_signed_as_php_parses_them() -> None:
    signed = sign({"status[0]": "completed", "per_page": "5"})
    query = {**{k: v for k, v in signed.items() if k != "status[0]"}, "status": {"0": "completed"}}
    assert check(authenticator(), query).authenticated


def test_no_credentials_is_anonymous_not_an_error() -> None:
    outcome = check(authenticator(), {"per_page": "1"})
    assert outcome == AuthOutcome() and not outcome.authenticated


# ---------------------------------------------------------------------------- Basic and query keys


def basic(key: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()


def test_basic_and_query_keys_are_ignored_over_plain_http() -> None:
    auth = authenticator(https=False)
    assert check(auth, {"per_page": "1"}, authorization=basic(KEY, SECRET)) == AuthOutcome()
    assert check(auth, {"per_page": "1", "consumer_key": KEY, "consumer_secret": SECRET}) == AuthOutcome()


def test_basic_and_query_keys_work_behind_tls() -> None:
    auth = authenticator(https=True)
    assert check(auth, {"per_page": "1"}, authorization=basic(KEY, SECRET)).authenticated
    assert check(auth, {"per_page": "1", "consumer_key": KEY, "consumer_secret": SECRET}).authenticated


def test_basic_with_wrong_secret_is_refused_behind_tls() -> None:
    outcome = check(authenticator(https=True), {}, authorization=basic(KEY, "cs_wrong"))
    assert_refused_like(outcome, "https_basic_wrong_secret")


def test_basic_with_unknown_key_is_anonymous_behind_tls() -> None:
    # The real store then answers 401 woocommerce_rest_cannot_view (https_basic_wrong_key.json).
    assert check(authenticator(https=True), {}, authorization=basic("ck_unknown", SECRET)) == AuthOutcome()


def test_oauth_still_works_behind_tls() -> None:
    signed = sign({"per_page": "1"}, site="https://127.0.0.1:8090")
    assert check(authenticator(https=True), signed, site_urls=("https://127.0.0.1:8090",)).authenticated


def test_nonce_memory_forgets_past_the_window_and_past_its_capacity() -> None:
    memory = NonceMemory(window_s=900, capacity=3)
    assert memory.remember("a", NOW, NOW)
    assert not memory.remember("a", NOW, NOW + 10)
    assert memory.remember("a", NOW + 1000, NOW + 1000), "the first use is outside the window now"
    for nonce in "bcd":
        assert memory.remember(nonce, NOW + 1000, NOW + 1000)
    assert len(memory) == 3
