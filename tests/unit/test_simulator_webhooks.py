"""The simulator's webhooks resource and deliveries (woosync/simulator/webhooks.py) against the
genuine answers and deliveries of a WooCommerce 10 store (tests/fixtures/woocommerce-fixtures/webhooks)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from shared.woocommerce import webhooks as wc
from woosync.simulator.rest import RestError
from woosync.simulator.webhooks import SimulatedWebhooks

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent.parent / "fixtures" / "woocommerce-fixtures" / "webhooks"
SITE = "http://127.0.0.1:8088"


def _fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


class _Receiver:
    """A delivery URL that records the raw requests it gets and answers `status`."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[bytes] = []
        self.url = ""

    async def __aenter__(self) -> _Receiver:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
            self.requests.append(head + await reader.readexactly(length))
            writer.write(f"HTTP/1.1 {self.status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
            writer.close()

        self._server = await asyncio.start_server(handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/hook"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        await self._server.wait_closed()


def _hooks() -> SimulatedWebhooks:
    return SimulatedWebhooks(site_url=lambda: SITE)


async def _error(call) -> dict:
    with pytest.raises(RestError) as raised:
        await call
    return {"status": raised.value.status, "body": raised.value.body()}


@pytest.mark.parametrize("name", ["webhooks_create_invalid_topic", "webhooks_create_delivery_url_ftp",
                                  "webhooks_create_delivery_url_empty", "webhooks_create_delivery_url_not_a_url",
                                  "webhooks_create_delivery_url_missing", "webhooks_create_topic_missing"])
async def test_a_create_the_store_refuses_is_refused_with_the_same_status_and_body(name: str):
    genuine = _fixture(name)
    got = await _error(_hooks().respond("POST", None, {}, json.dumps(genuine["request"]["body"]).encode()))
    assert got == {"status": genuine["status"], "body": genuine["body"]}


async def test_create_pings_before_answering_never_returns_the_secret_and_lists_like_the_store():
    async with _Receiver() as receiver:
        hooks = _hooks()
        request = {"name": "woosync customer.created", "topic": "customer.created", "delivery_url": receiver.url,
                   "secret": "s3cr3t"}
        status, created = await hooks.respond("POST", None, {}, json.dumps(request).encode())
        assert len(receiver.requests) == 1  # the ping came before the answer
    genuine = _fixture("webhook_create_customer_created")
    assert status == genuine["status"] == 201
    assert set(created) == set(genuine["body"]) and "secret" not in created
    assert {k: created[k] for k in ("status", "topic", "resource", "event", "hooks")} == \
        {k: genuine["body"][k] for k in ("status", "topic", "resource", "event", "hooks")}
    ping = receiver.requests[0]
    head, _, body = ping.partition(b"\r\n\r\n")
    assert body == f"webhook_id={created['id']}".encode()
    names = [line.split(b":")[0].decode() for line in head.split(b"\r\n")[1:]]
    genuine_ping = _fixture("delivery_ping_customer_created")
    assert names == [name for name, _ in genuine_ping["raw_headers"]]
    assert wc.is_ping(body, "application/x-www-form-urlencoded")
    _, listed = await hooks.respond("GET", None, {}, b"")
    assert [hook["id"] for hook in listed] == [created["id"]] and "secret" not in listed[0]


async def test_delete_needs_force_and_an_unknown_id_is_404_as_the_store_says():
    hooks = _hooks()
    _, created = await hooks.respond("POST", None, {}, json.dumps(
        {"topic": "order.updated", "delivery_url": "http://127.0.0.1:9/x", "status": "paused"}).encode())
    without_force = _fixture("webhook_delete_without_force")
    assert await _error(hooks.respond("DELETE", created["id"], {}, b"")) == \
        {"status": 501, "body": without_force["body"]}
    status, deleted = await hooks.respond("DELETE", created["id"], {"force": "true"}, b"")
    assert status == 200 and deleted["id"] == created["id"]
    missing = _fixture("webhook_get_404")
    assert await _error(hooks.respond("GET", created["id"], {}, b"")) == {"status": 404, "body": missing["body"]}


async def test_update_refuses_a_bad_status_or_topic_as_the_store_does():
    hooks = _hooks()
    _, created = await hooks.respond("POST", None, {}, json.dumps(
        {"topic": "order.updated", "delivery_url": "http://127.0.0.1:9/x", "status": "paused"}).encode())
    for name in ("webhook_put_invalid_status", "webhook_put_invalid_topic"):
        genuine = _fixture(name)
        got = await _error(hooks.respond("PUT", created["id"], {}, json.dumps(genuine["request"]["body"]).encode()))
        assert got == {"status": genuine["status"], "body": genuine["body"]}


async def test_a_delivery_is_signed_ordered_and_escaped_as_the_store_sends_it_and_failures_disable_the_webhook():
    async with _Receiver(status=500) as receiver:
        hooks = _hooks()
        await hooks.respond("POST", None, {}, json.dumps(
            {"topic": "customer.updated", "delivery_url": receiver.url, "secret": "k", "status": "paused"}).encode())
        hook = next(iter(hooks.hooks.values()))
        hook.status = "active"
        for _ in range(7):
            await hooks.deliver("customer.updated", {"id": 5, "url": "a/b", "name": "Zoë"})
        assert hook.status == "disabled"  # the 7th consecutive failure, as the store's failure history shows
        assert await hooks.deliver("customer.updated", {"id": 5}) == []
    head, _, body = receiver.requests[0].partition(b"\r\n\r\n")
    assert body == b'{"id":5,"url":"a\\/b","name":"Zo\\u00eb"}'
    headers = [line.split(b": ", 1) for line in head.split(b"\r\n")[1:]]
    genuine = _fixture("delivery_customer_updated_customer_update")
    assert [name.decode() for name, _ in headers] == [name for name, _ in genuine["raw_headers"]]
    found = {name.decode().lower(): value.decode() for name, value in headers}
    assert wc.signature_matches(body, "k", found[wc.SIGNATURE_HEADER])
    assert wc.DELIVERY_ID.fullmatch(found[wc.DELIVERY_ID_HEADER])
    assert found["user-agent"] == genuine["headers"]["User-Agent"]
