"""The OAuth 1.0a signer against a request the real WooCommerce store accepted (known answer)."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest

from shared.woocommerce import oauth
from tests.woocommerce_fixtures import FixturesNotFound, oauth_signature_example

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def example() -> dict:
    try:
        return oauth_signature_example()
    except FixturesNotFound as exc:
        pytest.skip(str(exc))


def _signed_params(example: dict) -> list[tuple[str, str]]:
    oauth_params = {k: v for k, v in example["oauth_params"].items() if k != "oauth_signature"}
    return [*example["query"].items(), *oauth_params.items()]


def test_normalized_parameter_string_matches_the_accepted_request_byte_for_byte(example: dict) -> None:
    assert oauth.normalized_parameters(_signed_params(example)) == example["normalized_param_string"]


def test_signature_base_string_matches_the_accepted_request_byte_for_byte(example: dict) -> None:
    base = oauth.signature_base_string(example["method"], example["base_url"], _signed_params(example))
    assert base == example["signature_base_string"]


def test_signature_matches_the_one_the_store_accepted(example: dict) -> None:
    assert oauth.sign(example["signature_base_string"], example["consumer_secret"], "HMAC-SHA256") == example["signature"]


def test_oauth_parameters_with_the_captured_nonce_and_timestamp_reproduce_the_signature(example: dict) -> None:
    captured = example["oauth_params"]
    produced = oauth.oauth_parameters(
        "GET",
        example["base_url"],
        list(example["query"].items()),
        example["consumer_key"],
        example["consumer_secret"],
        nonce=captured["oauth_nonce"],
        timestamp=int(captured["oauth_timestamp"]),
    )
    assert dict(produced) == captured
    assert produced[-1][0] == "oauth_signature"


def test_signature_does_not_depend_on_the_order_parameters_are_given_in(example: dict) -> None:
    params = _signed_params(example)
    base = oauth.signature_base_string("GET", example["base_url"], list(reversed(params)))
    assert base == example["signature_base_string"]


def test_signature_ignores_an_oauth_signature_already_in_the_parameters(example: dict) -> None:
    params = [*_signed_params(example), ("oauth_signature", "stale")]
    assert oauth.signature_base_string("GET", example["base_url"], params) == example["signature_base_string"]


def test_every_signature_gets_a_fresh_nonce() -> None:
    nonces = {
        dict(oauth.oauth_parameters("GET", "http://shop.test/wp-json/wc/v3/customers", [], "ck_x", "cs_y"))[
            "oauth_nonce"
        ]
        for _ in range(200)
    }
    assert len(nonces) == 200


def test_values_are_double_encoded_in_the_base_string_and_reserved_characters_escaped() -> None:
    # An e-mail filter: "@" is %40 in the parameter string and %2540 once the string is encoded again.
    base = oauth.signature_base_string(
        "get", "http://Shop.Test:80/wp-json/wc/v3/customers", [("email", "a+b@x.test"), ("search", "o'neil ~x")]
    )
    assert base == (
        "GET&http%3A%2F%2Fshop.test%2Fwp-json%2Fwc%2Fv3%2Fcustomers&"
        "email%3Da%252Bb%2540x.test%26search%3Do%2527neil%2520~x"
    )


def test_base_url_keeps_a_non_default_port_and_drops_the_default_one() -> None:
    assert oauth.base_url("http://127.0.0.1:8088/wp-json/wc/v3/orders?x=1") == "http://127.0.0.1:8088/wp-json/wc/v3/orders"
    assert oauth.base_url("HTTPS://Shop.Test:443/wp-json/wc/v3/orders") == "https://shop.test/wp-json/wc/v3/orders"


def test_hmac_sha1_is_supported_as_the_store_accepts_it() -> None:
    params = oauth.oauth_parameters(
        "GET", "http://shop.test/wp-json/wc/v3/customers", [("per_page", "1")], "ck_x", "cs_y", signature_method="HMAC-SHA1"
    )
    signature = dict(params)["oauth_signature"]
    assert dict(params)["oauth_signature_method"] == "HMAC-SHA1"
    assert len(signature) == 28  # base64 of a 20-byte SHA-1 digest


def test_signed_query_round_trips_through_url_encoding(example: dict) -> None:
    # What goes on the wire must decode (as PHP's $_GET does) to exactly the signed values.
    signed = oauth.oauth_parameters("GET", example["base_url"], [("email", "x+y@z.test")], "ck_k", "cs_s")
    wire = "&".join(f"{oauth.percent_encode(k)}={oauth.percent_encode(v)}" for k, v in [("email", "x+y@z.test"), *signed])
    assert parse_qsl(wire) == [("email", "x+y@z.test"), *signed]


def test_authorization_header_reads_back_exactly_with_woocommerces_parser(example: dict) -> None:
    import re
    from urllib.parse import unquote_plus

    header = oauth.authorization_header(example["oauth_params"].items())
    assert header.startswith("OAuth ") and "+" not in header  # urldecode would turn "+" into a space
    # WC_REST_Authentication::parse_header: the same pattern, then urldecode.
    parsed = {name: unquote_plus(quoted or bare)
              for name, quoted, bare in re.findall(r'(oauth_[a-z_-]*)=(?:"([^"]*)"|([^,]*))', header)}
    assert parsed == example["oauth_params"]
