"""The consumer's cache of WooCommerce clients: one client (one connection pool, the fleet's
request budget of its host) per store, shared by every line of that store that this consumer processes. An entry
is checked against the store's credentials in Postgres after WOOSYNC_STORE_CACHE_TTL_S; past
`max_stores` stores the least recently loaded client is closed."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from uuid import UUID

import asyncpg

from shared.metrics import Metrics
from shared.repository import stores
from shared.settings import Settings
from shared.woocommerce.budget import FleetBudgets
from shared.woocommerce.client import WooCommerceClient
from shared.woocommerce.credentials import StoreCredentials

log = logging.getLogger(__name__)


class StoreClients:
    def __init__(self, pool: asyncpg.Pool, settings: Settings, metrics: Metrics, *, max_stores: int = 256,
                 clock: Callable[[], float] = time.monotonic,
                 client_factory: Callable[..., WooCommerceClient] = WooCommerceClient) -> None:
        self._pool = pool
        self._settings = settings
        self._metrics = metrics
        self._max_stores = max_stores
        self._clock = clock
        self._client_factory = client_factory
        # The fleet's request budget per store host (WOOSYNC_STORE_RATE_LIMIT, store.rate_limit).
        self._budgets = FleetBudgets(pool, default_rate=settings.store_rate_limit,
                                     concurrency=settings.store_fleet_concurrency, metrics=metrics)
        self._clients: dict[UUID, tuple[float, WooCommerceClient, str]] = {}
        self._credentials: dict[UUID, StoreCredentials] = {}
        self._lock = asyncio.Lock()

    async def get(self, store_id: UUID) -> tuple[WooCommerceClient, str]:
        """The client for a store and the store's URL. Credentials are re-read from the
        database after WOOSYNC_STORE_CACHE_TTL_S so that updated ones take effect."""
        entry = self._clients.get(store_id)
        now = self._clock()
        if entry and now - entry[0] < self._settings.store_cache_ttl_s:
            return entry[1], entry[2]
        async with self._lock:
            entry = self._clients.get(store_id)
            if entry and now - entry[0] < self._settings.store_cache_ttl_s:
                return entry[1], entry[2]
            async with self._pool.acquire() as conn:
                url, key, secret = await stores.load_store_credentials(conn, store_id, cipher=self._settings.credentials_cipher)
            credentials = StoreCredentials(url=url, consumer_key=key, consumer_secret=secret, auth=self._settings.store_auth)
            if entry and self._credentials.get(store_id) == credentials:
                self._clients[store_id] = (now, entry[1], url)
                return entry[1], url
            client = self._client_factory(
                credentials,
                timeout_s=self._settings.store_timeout_s,
                max_tries=self._settings.store_max_tries,
                budget=self._budgets.for_store(url),
                hold_patience_s=self._settings.store_hold_wait_s,
                max_in_flight=self._settings.store_concurrency,
                metrics=self._metrics,
                allowed_networks=self._settings.store_allowed_networks,
                max_response_bytes=self._settings.store_max_response_bytes,
            )
            if entry:
                asyncio.get_running_loop().call_later(60, lambda old=entry[1]: asyncio.ensure_future(old.aclose()))
            self._clients[store_id] = (now, client, url)
            self._credentials[store_id] = credentials
            await self._evict_oldest()
            return client, url

    async def _evict_oldest(self) -> None:
        while len(self._clients) > self._max_stores:
            oldest = min(self._clients, key=lambda sid: self._clients[sid][0])
            _, client, _ = self._clients.pop(oldest)
            self._credentials.pop(oldest, None)
            await client.aclose()

    async def aclose(self) -> None:
        clients, self._clients = self._clients, {}
        await asyncio.gather(*(client.aclose() for _, client, _ in clients.values()), return_exceptions=True)
