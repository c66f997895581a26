"""Client CPU per request of the HTTP stacks the WooCommerce client could run on.

    .venv/bin/python bench/client_transport.py [--requests 5000] [--in-flight 64] [--rounds 1] [--json]

A tiny aiohttp server (a separate process, so its CPU is not counted) answers GET
/wp-json/wc/v3/customers/<id> with ~2 KB of JSON, like one WooCommerce customer. Each variant
sends the same number of requests with the same number in flight; we report this process's
CPU time (user + system, time.process_time) per request and the request rate. Variants:

    aiohttp                   aiohttp.ClientSession directly: the floor
    httpx+aiohttp             httpx.AsyncClient on httpx_aiohttp.AiohttpTransport
    httpx                     httpx.AsyncClient on its own transport (httpcore pool)
    woosync(aiohttp)          WooCommerceClient.get_customer, default transport, OAuth signing + JSON decode
    woosync(httpx-default)    the same on httpx's own transport
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp  # noqa: E402
import httpx  # noqa: E402
from httpx_aiohttp import AiohttpTransport  # noqa: E402

from shared.woocommerce.client import WooCommerceClient  # noqa: E402
from shared.woocommerce.credentials import StoreCredentials  # noqa: E402

CUSTOMER = {
    "id": 8,
    "email": "erin.robinson.004@example.test",
    "first_name": "Erin",
    "last_name": "Robinson",
    "role": "customer",
    "username": "erin.robinson.004",
    "billing": {k: f"{k}-value-0123456789" for k in ("first_name", "last_name", "company", "address_1",
                                                       "address_2", "city", "postcode", "country", "state",
                                                       "email", "phone")},
    "shipping": {k: f"{k}-value-0123456789" for k in ("first_name", "last_name", "company", "address_1",
                                                        "address_2", "city", "postcode", "country", "state",
                                                        "phone")},
    "meta_data": [{"id": i, "key": f"meta_key_{i}", "value": "x" * 40} for i in range(12)],
    "is_paying_customer": True,
    "avatar_url": "https://secure.gravatar.com/avatar/0123456789abcdef?s=96&d=mm&r=g",
}


def serve() -> None:
    """The server process: prints its port, then serves until stdin closes."""
    from aiohttp import web

    body = json.dumps(CUSTOMER).encode()

    async def customer(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/wp-json/wc/v3/customers/{id}", customer)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        print(site._server.sockets[0].getsockname()[1], flush=True)  # type: ignore[union-attr]
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await runner.cleanup()

    asyncio.run(main())


async def measure(name: str, send: Callable[[int], Awaitable[None]], requests: int, in_flight: int) -> dict:
    async def worker(offset: int) -> None:
        for n in range(offset, requests, in_flight):
            await send(n)

    for n in range(min(200, requests)):  # warm-up: connections open, code paths hot
        await send(n)
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(in_flight)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"variant": name, "requests": requests, "cpu_ms_per_request": 1000 * cpu / requests,
            "requests_per_s": requests / wall}


async def run_round(base: str, requests: int, in_flight: int) -> list[dict]:
    results = []
    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=in_flight)) as session:
        async def aiohttp_send(n: int) -> None:
            async with session.get(f"{base}/wp-json/wc/v3/customers/{n}") as response:
                json.loads(await response.read())
        results.append(await measure("aiohttp", aiohttp_send, requests, in_flight))

    for name, transport in (("httpx+aiohttp", AiohttpTransport(limits=limits)),
                            ("httpx", httpx.AsyncHTTPTransport(limits=limits))):
        async with httpx.AsyncClient(transport=transport) as client:
            async def httpx_send(n: int, client: httpx.AsyncClient = client) -> None:
                (await client.get(f"{base}/wp-json/wc/v3/customers/{n}")).json()
            results.append(await measure(name, httpx_send, requests, in_flight))

    store = StoreCredentials(url=base, consumer_key="ck_bench", consumer_secret="cs_bench")
    for name, transport in (("woosync(aiohttp)", None), ("woosync(httpx-default)", httpx.AsyncHTTPTransport(limits=limits))):
        async with WooCommerceClient(store, max_in_flight=in_flight, transport=transport) as woo:
            async def woo_send(n: int, woo: WooCommerceClient = woo) -> None:
                await woo.get_customer(n)
            results.append(await measure(name, woo_send, requests, in_flight))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return

    server = subprocess.Popen([sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        port = int(server.stdout.readline())  # type: ignore[union-attr]
        rounds = [asyncio.run(run_round(f"http://127.0.0.1:{port}", args.requests, args.in_flight))
                  for _ in range(args.rounds)]
    finally:
        server.stdin.close()  # type: ignore[union-attr]
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()

    summary: dict[str, dict] = {}
    for result in (r for one in rounds for r in one):
        entry = summary.setdefault(result["variant"], {"cpu_ms_per_request": [], "requests_per_s": []})
        entry["cpu_ms_per_request"].append(round(result["cpu_ms_per_request"], 3))
        entry["requests_per_s"].append(round(result["requests_per_s"]))
    if args.json:
        print(json.dumps({"requests": args.requests, "in_flight": args.in_flight, "variants": summary}))
        return
    print(f"{args.requests} GETs of ~2 KB JSON, {args.in_flight} in flight, {args.rounds} round(s); client CPU only")
    print(f"{'variant':<24}{'CPU ms/request':>22}{'requests/s':>22}")
    for variant, entry in summary.items():
        cpu = "/".join(f"{v:.3f}" for v in entry["cpu_ms_per_request"])
        rate = "/".join(str(v) for v in entry["requests_per_s"])
        print(f"{variant:<24}{cpu:>22}{rate:>22}")


if __name__ == "__main__":
    main()
