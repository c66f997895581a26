"""The message models of docs/contract.md section 3 at the edge: a store URL is normalised or
refused with a reason naming store.url, a dead-lettered sync request keeps no credential, and a
sync request's content type is accepted only as documented."""

from __future__ import annotations

import uuid

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.messages import (
    STORE_URL_PATTERN,
    StartSync,
    StoreConfig,
    content_type_problem,
    redacted_sync_request,
)

pytestmark = pytest.mark.unit


def store_url(url: str) -> str:
    return StoreConfig(url=url, consumer_key="ck_1", consumer_secret="cs_1").url


def refusal(url: str) -> str:
    with pytest.raises(ValidationError) as caught:
        StartSync.model_validate({"org_id": str(uuid.uuid4()),
                                  "store": {"url": url, "consumer_key": "ck_1", "consumer_secret": "cs_1"}})
    [error] = caught.value.errors()
    assert error["loc"] == ("store", "url")
    return error["msg"]


@pytest.mark.parametrize(("given_url", "normal"), [
    ("https://shop.example.com", "https://shop.example.com"),
    ("  HTTPS://Shop.Example.COM/  ", "https://shop.example.com"),
    ("http://shop.example.com:80/", "http://shop.example.com"),
    ("https://shop.example.com:443", "https://shop.example.com"),
    ("https://shop.example.com:8443/wp/", "https://shop.example.com:8443/wp"),
    ("https://shop.example.com/Store/Path//", "https://shop.example.com/Store/Path"),
    ("http://127.0.0.1:8090", "http://127.0.0.1:8090"),
    ("http://[::1]:8080/", "http://[::1]:8080"),
    ("https://bücher.example/", "https://xn--bcher-kva.example"),
    ("https://shop.example.com.", "https://shop.example.com"),
])
def test_store_urls_are_normalised(given_url, normal):
    assert store_url(given_url) == normal


@pytest.mark.parametrize(("bad_url", "says"), [
    ("http://127.0.0.1:99991", "port"),
    ("http://shop.example.com:0", "port"),
    ("http://shop.example.com:http", "port"),
    ("http://user:password@shop.example.com", "user name or password"),
    ("https://ck_abc@shop.example.com", "user name or password"),
    ("ftp://shop.example.com", "http or https"),
    ("shop.example.com", "http or https"),
    ("http:///path-only", "host"),
    ("https://shop.example.com/?page=1", "query"),
    ("https://shop.example.com/#top", "fragment"),
    ("https://shop example.com", "space"),
    ("https://shop.example.com/a\nb", "control"),
    ("https://-shop.example.com", "host"),
    ("https://shop..example.com", "host"),
    ("https://" + "a" * 64 + ".example.com", "host"),
    ("https://[fe80::1%25eth0]/", "host"),
    ("https://shop.example.com/" + "p" * 2048, "2048"),
])
def test_store_urls_that_cannot_be_a_stores_address_are_refused_naming_store_url(bad_url, says):
    assert says in refusal(bad_url)


@settings(max_examples=300, deadline=None)
@given(st.from_regex(STORE_URL_PATTERN, fullmatch=True).filter(lambda url: len(url) <= 2048))
def test_every_url_the_status_api_documents_as_valid_is_a_valid_store_url(url):
    # The status API's OpenAPI pattern is the model's: what the document accepts, the model accepts.
    StoreConfig(url=url, consumer_key="ck_1", consumer_secret="cs_1")


def test_the_status_api_documents_the_models_pattern():
    from services.status import schemas

    assert schemas.STORE_URL_PATTERN is STORE_URL_PATTERN


# ---------------------------------------------------------------- redaction of dead letters
SECRET = "cs_do_not_keep_me_7f3a"


def test_a_sync_requests_credentials_are_removed_and_the_rest_kept():
    body = orjson.dumps({"org_id": "6f1c7c1e-6c1b-4d43-9a8e-0d6c1b8e2f10", "idempotency_key": "k",
                         "store": {"url": "https://shop.example.com", "consumer_key": "ck_abc",
                                   "consumer_secret": SECRET}})
    redacted, note = redacted_sync_request(body)
    data = orjson.loads(redacted)
    assert data["store"] == {"url": "https://shop.example.com", "consumer_key": "[removed]",
                             "consumer_secret": "[removed]"}
    assert data["idempotency_key"] == "k" and data["org_id"] == "6f1c7c1e-6c1b-4d43-9a8e-0d6c1b8e2f10"
    assert "credentials removed" in note


def test_credentials_anywhere_in_a_json_body_and_a_password_in_a_url_are_removed():
    body = orjson.dumps({"config": {"consumerKey": "ck_x", "consumerSecret": SECRET},
                         "store": {"url": f"https://admin:{SECRET}@shop.example.com/x", "extra": [{"consumer_secret": SECRET}]}})
    redacted, _ = redacted_sync_request(body)
    assert SECRET.encode() not in redacted
    assert orjson.loads(redacted)["store"]["url"] == "https://[removed]@shop.example.com/x"


@pytest.mark.parametrize("body", [b'{"store": {"consumer_secret": "' + SECRET.encode() + b'"', b"\xff\xfe" + SECRET.encode()])
def test_a_body_that_is_not_json_is_dropped_and_the_note_says_so(body):
    redacted, note = redacted_sync_request(body)
    assert redacted == b""
    assert f"{len(body)} bytes" in note and "not JSON" in note


# ---------------------------------------------------------------- content type
@pytest.mark.parametrize("content_type", [None, "", "application/json", "Application/JSON",
                                          "application/json; charset=utf-8", "application/json;charset=UTF-8"])
def test_json_or_no_content_type_is_accepted(content_type):
    assert content_type_problem(content_type) is None


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "application/json; charset=latin-1",
                                          "application/jsonx", "application/octet-stream"])
def test_any_other_content_type_is_refused_naming_it(content_type):
    assert content_type in content_type_problem(content_type)
