"""The webhooks service's HTTP edge (services/webhooks/app.py): the order of its checks and the
answer of each (docs/contract.md section 10), with the store lookups and the durable step
replaced by stand-ins (the real ones are exercised in tests/e2e/test_webhooks.py)."""

from __future__ import annotations

from uuid import uuid4

import httpx
import pytest
from prometheus_client import CollectorRegistry

from services.webhooks.app import StoreRates, WebhookMetrics, WebhooksApp
from services.webhooks.handler import InvalidDelivery, NotDurable
from shared.repository.webhooks import WebhookEndpoint
from shared.woocommerce import webhooks as wc

pytestmark = pytest.mark.unit

TOKEN = "T" * 43
SECRET = "the-secret"
ENDPOINT = WebhookEndpoint(store_id=uuid4(), org_id=uuid4(), store_url="https://shop.example", topic="customer.updated",
                           secret=SECRET)
BODY = b'{"id":7,"email":"a@b.c"}'


class Endpoints:
    def __init__(self) -> None:
        self.lookups = 0

    async def store_known(self, token: str) -> bool:
        self.lookups += 1
        return token == TOKEN

    async def endpoint(self, token: str, topic: str) -> WebhookEndpoint | None:
        return ENDPOINT if token == TOKEN and topic == "customer.updated" else None


class Handler:
    def __init__(self, fail: Exception | None = None) -> None:
        self.handled: list[tuple[str, bytes]] = []
        self.fail = fail

    async def handle(self, endpoint: WebhookEndpoint, delivery_id: str, body: bytes) -> str:
        if self.fail is not None:
            raise self.fail
        self.handled.append((delivery_id, body))
        return "resync"


def _client(handler: Handler, *, rate: float = 100.0, burst: int = 100, max_body: int = 1024) -> httpx.AsyncClient:
    app = WebhooksApp(Endpoints(), handler, StoreRates(rate, burst), WebhookMetrics(CollectorRegistry()),  # type: ignore[arg-type]
                      max_body_bytes=max_body)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hooks")


def _signed(body: bytes = BODY, *, secret: str = SECRET, topic: str = "customer.updated") -> dict[str, str]:
    return {"Content-Type": "application/json", "X-WC-Webhook-Topic": topic,
            "X-WC-Webhook-Signature": wc.signature(body, secret), "X-WC-Webhook-Delivery-ID": "a" * 32}


async def test_a_signed_delivery_reaches_the_handler_with_its_raw_body():
    handler = Handler()
    async with _client(handler) as client:
        answer = await client.post(f"/woocommerce/{TOKEN}", content=BODY, headers=_signed())
    assert answer.status_code == 200 and handler.handled == [("a" * 32, BODY)]


@pytest.mark.parametrize("case,status", [
    ("other path", 404), ("GET", 405), ("unknown store", 404), ("declared too large", 413), ("too large", 413),
    ("unsigned", 401), ("forged", 401), ("altered", 401), ("uninstalled topic", 401), ("no delivery id", 400),
])
async def test_each_refusal_gets_its_status_and_never_reaches_the_handler(case: str, status: int):
    handler = Handler()
    path, body, headers, method = f"/woocommerce/{TOKEN}", BODY, _signed(), "POST"
    if case == "other path":
        path = "/woocommerce/short"
    elif case == "GET":
        method = "GET"
    elif case == "unknown store":
        path = f"/woocommerce/{'U' * 43}"
    elif case == "declared too large":
        body = b"x" * 2000
        headers = _signed(body)
    elif case == "too large":
        body = b"x" * 2000
        headers = {**_signed(body), "Transfer-Encoding": "chunked"}
    elif case == "unsigned":
        headers.pop("X-WC-Webhook-Signature")
    elif case == "forged":
        headers = _signed(secret="guess")
    elif case == "altered":
        body = BODY.replace(b"7", b"8")
    elif case == "uninstalled topic":
        headers = _signed(topic="product.updated")
    elif case == "no delivery id":
        headers.pop("X-WC-Webhook-Delivery-ID")
    async with _client(handler) as client:
        if case == "too large":
            async def chunks():
                yield body

            answer = await client.request(method, path, content=chunks(), headers=headers)
        else:
            answer = await client.request(method, path, content=body, headers=headers)
    assert answer.status_code == status, answer.text
    assert handler.handled == []


async def test_the_ping_is_answered_200_and_nothing_is_done():
    handler = Handler()
    async with _client(handler) as client:
        answer = await client.post(f"/woocommerce/{TOKEN}", content=b"webhook_id=3",
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 200 and handler.handled == []


async def test_a_store_past_its_rate_gets_429_after_its_burst():
    handler = Handler()
    async with _client(handler, rate=0.001, burst=2) as client:
        statuses = [(await client.post(f"/woocommerce/{TOKEN}", content=BODY, headers=_signed())).status_code
                    for _ in range(3)]
    assert statuses == [200, 200, 429] and len(handler.handled) == 2


@pytest.mark.parametrize("failure,status", [(InvalidDelivery("not json"), 400), (NotDurable("broker down"), 503)])
async def test_an_invalid_body_is_400_and_a_delivery_that_could_not_be_made_durable_is_503(failure, status):
    async with _client(Handler(fail=failure)) as client:
        answer = await client.post(f"/woocommerce/{TOKEN}", content=BODY, headers=_signed())
    assert answer.status_code == status
