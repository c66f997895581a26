"""The network transport of the WooCommerce client: aiohttp's connection pool behind httpx's
Request/Response types (httpx_aiohttp), with the store-address policy applied where a connection
is made (docs/contract.md section 10, "Store addresses").

Every address is judged after DNS, by the resolver the connection pool uses, so a name that
resolves to a public address when the URL is checked and to 10.0.0.5 when the connection opens
(DNS rebinding) is refused all the same; a URL whose host is an IP address never goes through
DNS and is judged before the request. Nothing else leads the pool to another address:
redirects are not followed, and no proxy from the environment is used (`trust_env` off).
"""

from __future__ import annotations

import socket
from ipaddress import ip_address

import aiohttp
import httpx
from aiohttp.abc import AbstractResolver, ResolveResult
from httpx_aiohttp import AiohttpTransport

from shared.woocommerce.store_addresses import StoreAddressPolicy

# How long an idle connection to a store is kept for the next request (httpx's default).
_KEEPALIVE_S = 5.0


class AddressRefused(Exception):
    """A store address the policy refuses; the client turns it into `StoreAddressRefused`.

    Not an OSError on purpose: aiohttp would wrap that into a connection error, which is retried."""


class GuardedResolver(AbstractResolver):
    """Resolves with `inner` (aiohttp's default resolver unless given) and refuses the whole
    answer when any address in it is refused: one bad address means the name is not a store's."""

    def __init__(self, policy: StoreAddressPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner if inner is not None else aiohttp.DefaultResolver()
        self._owns_inner = inner is None

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        refused = self._policy.host_refusal(host)
        if refused is not None:
            raise AddressRefused(refused)
        answers = await self._inner.resolve(host, port, family)
        for answer in answers:
            refused = self._policy.refusal(answer["host"])
            if refused is not None:
                raise AddressRefused(refused if answer["host"] == host else f"{refused} ({host} resolves to it)")
        return answers

    async def close(self) -> None:
        if self._owns_inner:
            await self._inner.close()


class StoreTransport(httpx.AsyncBaseTransport):
    """The client's default transport: one aiohttp pool of `max_connections`, guarded by `policy`."""

    def __init__(
        self,
        policy: StoreAddressPolicy,
        *,
        max_connections: int,
        resolver: AbstractResolver | None = None,
    ) -> None:
        self._policy = policy
        self._inner_resolver = resolver
        self._resolver: GuardedResolver | None = None
        # The aiohttp session is made on first use, inside the running loop (as aiohttp requires).
        self._pool = AiohttpTransport(client=self._open_session)
        self._max_connections = max_connections

    def _open_session(self) -> aiohttp.ClientSession:
        self._resolver = GuardedResolver(self._policy, self._inner_resolver)
        connector = aiohttp.TCPConnector(
            limit=self._max_connections,
            keepalive_timeout=_KEEPALIVE_S,
            resolver=self._resolver,
            ssl=self._pool.ssl_context,
        )
        return aiohttp.ClientSession(connector=connector, trust_env=False)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        try:
            literal = ip_address(host)
        except ValueError:
            literal = None  # a name: judged by the resolver, on each connection
        refused = self._policy.refusal(literal) if literal is not None else self._policy.host_refusal(host)
        if refused is not None:
            raise AddressRefused(refused)
        return await self._pool.handle_async_request(request)

    async def aclose(self) -> None:
        await self._pool.aclose()
        if self._resolver is not None:
            await self._resolver.close()
