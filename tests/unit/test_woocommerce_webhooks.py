"""Webhook signatures and pings (shared/woocommerce/webhooks.py) against the genuine deliveries of
a WooCommerce 10 store (tests/fixtures/woocommerce-fixtures/webhooks), and what each delivery asks
the webhooks service to do (services/webhooks/handler.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.webhooks.handler import InvalidDelivery, action_for
from shared.woocommerce import webhooks as wc

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent.parent / "fixtures" / "woocommerce-fixtures" / "webhooks"
SIGNED = sorted(p for p in FIXTURES.glob("delivery_*.json") if "_ping_" not in p.name)
PINGS = sorted(FIXTURES.glob("delivery_ping_*.json"))


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def _header(delivery: dict, name: str) -> str | None:
    return next((value for key, value in delivery["raw_headers"] if key.lower() == name), None)


def test_there_are_genuine_signed_deliveries_and_pings():
    assert len(SIGNED) >= 15 and len(PINGS) >= 7


@pytest.mark.parametrize("path", SIGNED, ids=lambda p: p.stem)
def test_every_genuine_delivery_verifies_with_its_webhook_secret(path: Path):
    delivery = _load(path)
    body = delivery["raw_body"].encode("latin-1")
    claimed = _header(delivery, wc.SIGNATURE_HEADER)
    assert wc.signature(body, delivery["meta"]["webhook_secret"]) == delivery["meta"]["expected_signature"] == claimed
    assert wc.signature_matches(body, delivery["meta"]["webhook_secret"], claimed)
    assert wc.DELIVERY_ID.fullmatch(_header(delivery, wc.DELIVERY_ID_HEADER))
    assert _header(delivery, wc.TOPIC_HEADER) in wc.TOPICS


@pytest.mark.parametrize("path", SIGNED[:3], ids=lambda p: p.stem)
def test_a_body_changed_after_signing_or_another_secret_does_not_verify(path: Path):
    delivery = _load(path)
    body = delivery["raw_body"].encode("latin-1")
    claimed = _header(delivery, wc.SIGNATURE_HEADER)
    assert not wc.signature_matches(body + b" ", delivery["meta"]["webhook_secret"], claimed)
    assert not wc.signature_matches(body.replace(b"1", b"2", 1), delivery["meta"]["webhook_secret"], claimed)
    assert not wc.signature_matches(body, "another secret", claimed)
    assert not wc.signature_matches(body, delivery["meta"]["webhook_secret"], "")
    assert not wc.signature_matches(body, delivery["meta"]["webhook_secret"], "not base64 at all é")


def test_re_serialised_json_does_not_verify_which_is_why_the_raw_body_is_used():
    delivery = _load(FIXTURES / "delivery_customer_updated_customer_update.json")
    reserialised = json.dumps(json.loads(delivery["raw_body"]), separators=(",", ":")).encode()
    assert reserialised != delivery["raw_body"].encode("latin-1")
    assert not wc.signature_matches(reserialised, delivery["meta"]["webhook_secret"],
                                    _header(delivery, wc.SIGNATURE_HEADER))


@pytest.mark.parametrize("path", PINGS, ids=lambda p: p.stem)
def test_every_genuine_ping_is_recognised_and_unsigned(path: Path):
    delivery = _load(path)
    assert _header(delivery, wc.SIGNATURE_HEADER) is None
    assert wc.is_ping(delivery["raw_body"].encode(), _header(delivery, "content-type"))


def test_a_ping_is_exactly_a_tiny_form_body():
    assert not wc.is_ping(b"webhook_id=1", "application/json")
    assert not wc.is_ping(b"webhook_id=1&x=2", wc.FORM_CONTENT_TYPE)
    assert not wc.is_ping(b'{"id":1}', wc.FORM_CONTENT_TYPE)
    assert wc.is_ping(b"webhook_id=12", "application/x-www-form-urlencoded; charset=UTF-8")


def test_new_secrets_and_tokens_are_long_random_and_safe_from_the_stores_entity_decoding():
    secrets = {wc.new_secret() for _ in range(50)}
    assert len(secrets) == 50
    assert all(len(s) == 43 and not set(s) & set("&<>\"'") for s in secrets)
    assert len(wc.new_path_token()) == 43


@pytest.mark.parametrize("path", SIGNED, ids=lambda p: p.stem)
def test_each_genuine_delivery_maps_to_the_customer_it_affects(path: Path):
    delivery = _load(path)
    topic = delivery["meta"]["topic"]
    action = action_for(topic, delivery["raw_body"].encode("latin-1"))
    body = delivery["body"]
    assert action.resource_id == body["id"]
    if topic == "customer.deleted":
        assert (action.outcome, action.woo_customer_id) == ("customer_deleted", body["id"])
    elif topic.startswith("customer."):
        assert (action.outcome, action.woo_customer_id) == ("resync", body["id"])
    elif topic == "order.deleted":
        assert body == {"id": body["id"]} and action.outcome == "no_customer"
    elif body["customer_id"] == 0:
        assert action.outcome == "guest_order" and action.woo_customer_id is None
    else:
        assert (action.outcome, action.woo_customer_id) == ("resync", body["customer_id"])


@pytest.mark.parametrize("topic,body", [
    ("customer.updated", b"not json"),
    ("customer.updated", b"[1,2]"),
    ("customer.updated", b'{"email":"a@b.c"}'),
    ("customer.updated", b'{"id":"7"}'),
    ("order.updated", b'{"id":5,"customer_id":"3"}'),
    ("order.updated", b'{"id":5,"customer_id":-1}'),
    ("order.updated", b'{"id":true}'),
])
def test_a_signed_body_that_is_not_what_its_topic_sends_is_invalid(topic: str, body: bytes):
    with pytest.raises(InvalidDelivery):
        action_for(topic, body)


def test_a_guest_order_names_no_customer():
    assert action_for("order.created", b'{"id":9,"customer_id":0}').outcome == "guest_order"
