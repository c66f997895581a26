"""A store cannot exhaust a service's memory: every answer is read as a stream with a byte limit
(WOOSYNC_STORE_MAX_RESPONSE_BYTES), and a Content-Length above it is refused before the body.

The memory bounds are measured with tracemalloc (peak of Python allocations during the call),
against a real HTTP server on 127.0.0.1 that streams far more than the limit."""

from __future__ import annotations

import gzip
import ipaddress
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import orjson
import pytest
from aiohttp import web

from shared.errors import StoreError, StoreResponseTooLarge
from shared.woocommerce.client import WooCommerceClient
from shared.woocommerce.credentials import StoreCredentials
from shared.woocommerce.responses import DEFAULT_MAX_RESPONSE_BYTES

pytestmark = pytest.mark.unit

MiB = 1024 * 1024
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)
CHUNK = b"x" * (64 * 1024)


@asynccontextmanager
async def local_store(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def streaming(total: int | None, *, declared: int | None = None) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A store answering 200 with `total` bytes (None: until the client hangs up), in 64 KiB
    chunks written as they go (never held whole), with Content-Length `declared` if given."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        if declared is not None:
            response.content_length = declared
        await response.prepare(request)
        sent = 0
        try:
            while total is None or sent < total:
                await response.write(CHUNK)
                sent += len(CHUNK)
        except (ConnectionError, RuntimeError):
            pass  # the client stopped reading
        return response

    return handler


async def call_measuring_memory(url: str, **options: object) -> tuple[BaseException | None, int]:
    """Run a connection test against `url`; what it raised and the peak Python memory it took."""
    store = StoreCredentials(url=url, consumer_key="ck_x", consumer_secret="cs_x")
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        raised: BaseException | None = None
        async with WooCommerceClient(store, max_tries=1, timeout_s=60, allowed_networks=LOOPBACK, **options) as client:  # type: ignore[arg-type]
            try:
                await client.test_connection()
            except Exception as exc:
                raised = exc
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return raised, peak


async def test_an_answer_declaring_more_than_the_limit_is_refused_before_its_body_is_read() -> None:
    async with local_store(streaming(None, declared=400 * MiB)) as url:
        raised, peak = await call_measuring_memory(url, max_response_bytes=32 * MiB)
    assert isinstance(raised, StoreResponseTooLarge), raised
    assert str(raised) == (
        f"store {url} answered 400 MiB to GET /wp-json/wc/v3/customers?per_page=1&role=all, "
        "more than the 32 MiB limit (WOOSYNC_STORE_MAX_RESPONSE_BYTES)"
    )
    assert peak < 4 * MiB, f"peak {peak / MiB:.1f} MiB"


async def test_a_chunked_answer_without_length_is_cut_at_the_limit_without_holding_the_body() -> None:
    async with local_store(streaming(64 * MiB)) as url:
        raised, peak = await call_measuring_memory(url, max_response_bytes=1 * MiB)
    assert isinstance(raised, StoreResponseTooLarge), raised
    assert str(raised) == (
        f"store {url} answered more than the 1 MiB limit (WOOSYNC_STORE_MAX_RESPONSE_BYTES) "
        "to GET /wp-json/wc/v3/customers?per_page=1&role=all: stopped reading"
    )
    assert peak < 6 * MiB, f"peak {peak / MiB:.1f} MiB for a 64 MiB answer"


async def test_the_default_limit_applies_without_any_setting() -> None:
    assert DEFAULT_MAX_RESPONSE_BYTES == 32 * MiB
    async with local_store(streaming(96 * MiB)) as url:
        raised, peak = await call_measuring_memory(url)
    assert isinstance(raised, StoreResponseTooLarge), raised
    assert "more than the 32 MiB limit (WOOSYNC_STORE_MAX_RESPONSE_BYTES)" in str(raised)
    # What was read up to the limit is held (it would have been the answer), never more.
    assert peak < 40 * MiB, f"peak {peak / MiB:.1f} MiB for a 96 MiB answer"


async def test_a_compressed_answer_is_limited_by_its_decompressed_size() -> None:
    bomb = gzip.compress(b"[" + b" " * (256 * MiB) + b"]", compresslevel=9)  # ~256 KiB on the wire

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=bomb, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})

    async with local_store(handler) as url:
        raised, peak = await call_measuring_memory(url, max_response_bytes=1 * MiB)
    assert isinstance(raised, StoreResponseTooLarge), raised
    assert peak < 6 * MiB, f"peak {peak / MiB:.1f} MiB for a 256 MiB decompressed answer"


async def test_an_answer_too_large_is_permanent_and_not_retried() -> None:
    calls = 0
    body = orjson.dumps([{"id": n, "email": f"c{n}@example.test", "filler": "y" * 2000} for n in range(1, 101)])

    def store(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(200, content=body, headers={"Content-Type": "application/json"})

    credentials = StoreCredentials(url="https://shop.example", consumer_key="ck_x", consumer_secret="cs_x")
    async with WooCommerceClient(
        credentials, transport=httpx.MockTransport(store), max_tries=5, max_response_bytes=len(body) - 1
    ) as client:
        with pytest.raises(StoreResponseTooLarge) as raised:
            await client.test_connection()
    assert calls == 1 and isinstance(raised.value, StoreError)
    assert "filler" not in str(raised.value)


async def test_an_answer_exactly_at_the_limit_is_read_whole() -> None:
    body = orjson.dumps([{"id": n, "email": f"c{n}@example.test"} for n in range(1, 101)])

    def store(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"Content-Type": "application/json", "X-WP-Total": "100", "X-WP-TotalPages": "1"})

    credentials = StoreCredentials(url="https://shop.example", consumer_key="ck_x", consumer_secret="cs_x")
    async with WooCommerceClient(credentials, transport=httpx.MockTransport(store), max_response_bytes=len(body)) as client:
        pages = [page async for page in client.iter_customer_pages()]
    assert [c["id"] for c in pages[0].customers] == list(range(1, 101))


def test_the_limit_must_be_positive() -> None:
    credentials = StoreCredentials(url="https://shop.example", consumer_key="ck_x", consumer_secret="cs_x")
    with pytest.raises(ValueError, match="max_response_bytes"):
        WooCommerceClient(credentials, max_response_bytes=0)


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw deflate"])
async def test_a_compressed_answer_under_the_limit_is_decoded(encoding: str) -> None:
    customers = [{"id": n, "email": f"c{n}@example.test", "note": "z" * 300} for n in range(1, 101)]
    plain = orjson.dumps(customers)
    if encoding == "gzip":
        body = gzip.compress(plain)
    elif encoding == "deflate":
        body = zlib.compress(plain)
    else:
        packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        body = packer.compress(plain) + packer.flush()

    def store(request: httpx.Request) -> httpx.Response:
        assert request.headers["Accept-Encoding"] == "gzip, deflate"
        headers = {"Content-Type": "application/json", "Content-Encoding": encoding.split()[-1], "X-WP-TotalPages": "1"}
        return httpx.Response(200, content=body, headers=headers)

    credentials = StoreCredentials(url="https://shop.example", consumer_key="ck_x", consumer_secret="cs_x")
    async with WooCommerceClient(credentials, transport=httpx.MockTransport(store), max_response_bytes=len(plain)) as client:
        pages = [page async for page in client.iter_customer_pages()]
    assert pages[0].customers == customers
