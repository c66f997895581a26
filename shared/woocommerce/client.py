"""Async client for the WooCommerce REST API v3 (docs/contract.md section 6).

One `WooCommerceClient` per store: one connection pool, one request-rate limit, one cap on
requests in flight. Every failure leaves here as one of the typed errors of `shared.errors`:

    no HTTP answer (connect/read error, timeout)   retried, then StoreUnreachable
    5xx, 408                                       retried, then StoreUnavailable
    429                                            retried, then StoreRateLimited (Retry-After honoured)
    429, or 503 with Retry-After, with a budget    the host is held fleet-wide and the request waits
                                                   without spending a try; past hold_patience_s StoreHeld
    401/403                                        StoreAuthError at once, with a hint
    404                                            StoreNotFound (NotAWooCommerceStore for rest_no_route / HTML)
    400                                            StoreBadRequest naming the bad parameters
    200 with a body that is not the JSON expected  NotAWooCommerceStore
    an answer bigger than max_response_bytes       StoreResponseTooLarge (read as a stream: never held whole)
    an address in a network woosync refuses        StoreAddressRefused, before anything is sent

Over plain http requests are signed with OAuth 1.0a (HMAC-SHA256) in the Authorization header,
falling back to the query string for a store that never sees that header.

Consumer key, consumer secret and OAuth signatures never appear in a message, log line or repr:
requests are described by path and their own parameters only, and text coming back from the
network (exception strings, Location headers) is scrubbed before it is quoted. Errors quote
what the store said only through WooCommerce's error fields (`code`, `message`, `data.params`,
bounded and stripped of markup), never a raw body: the address may not be a store at all.

Why one module over 500 lines: it is one class, `WooCommerceClient`, whose methods are the REST
resources woosync reads and writes (customers, orders, webhooks) over one request loop; every
part that is not that class lives in a neighbour module.

This module holds the public API and the request loop (sign, send, accept or retry); the parts
it runs are its neighbours: `credentials` (the store, its keys, redaction), `responses` (reading
an answer within the size limit), `error_translation` (the table above), `retry_policy`
(backoff, Retry-After, giving up), `oauth` (signing), `transport` and `store_addresses` (where
connections may go).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from types import TracebackType
from typing import TYPE_CHECKING, Any

import aiohttp
import httpx
from aiolimiter import AsyncLimiter

from shared.errors import (
    NotAWooCommerceStore,
    StoreAddressRefused,
    StoreResponseTooLarge,
    StoreUnavailable,
    StoreUnreachable,
)
from shared.woocommerce import oauth
from shared.woocommerce.budget import HostBudget, StoreHeld
from shared.woocommerce.credentials import API_PREFIX, StoreCredentials, guard_httpx_request_log, redact
from shared.woocommerce.error_translation import AuthAdjustment, accept, not_json_of_kind
from shared.woocommerce.responses import DEFAULT_MAX_RESPONSE_BYTES, Answer, int_header, read_answer
from shared.woocommerce.retry_policy import backoff_delay, gave_up, short_reason
from shared.woocommerce.store_addresses import Network, StoreAddressPolicy
from shared.woocommerce.transport import AddressRefused, StoreTransport

if TYPE_CHECKING:
    from shared.metrics import Metrics

logger = logging.getLogger(__name__)

MAX_PER_PAGE = 100  # WooCommerce answers 400 rest_invalid_param above this
_USER_AGENT = "woosync/0.1"
CONNECTION_TEST_TIMEOUT_VARIABLE = "WOOSYNC_STORE_CONNECT_TEST_TIMEOUT_S"
# Pages of one customer's orders fetched at once: enough to hide latency for a heavy customer
# without letting it take every slot of the store's in-flight cap.
_ORDER_PAGES_AT_ONCE = 4
# How often one enumeration may step back after customers were deleted under it.
_MAX_STEP_BACKS = 50
# A store that says slow down with Retry-After: 0 is still held this long (no tight loop).
_MIN_HOLD_S = 0.5
_TRANSPORT_ERRORS = (httpx.RequestError, aiohttp.ClientError, TimeoutError, OSError)


@dataclass(frozen=True)
class CustomerPage:
    page: int
    total: int | None  # X-WP-Total of this page's answer (customers matching the role)
    total_pages: int | None  # X-WP-TotalPages of this page's answer
    customers: list[dict]


@dataclass(frozen=True)
class OrdersPage:
    page: int
    total: int | None  # X-WP-Total (None on an empty page: its totals are never trusted)
    total_pages: int | None
    orders: list[dict]


@dataclass(frozen=True)
class _ListAnswer:
    rows: list[Any]
    total: int | None
    total_pages: int | None


class WooCommerceClient:
    """REST API v3 client for one store. Use as `async with WooCommerceClient(store) as client:`."""

    def __init__(
        self,
        store: StoreCredentials,
        *,
        timeout_s: float = 30.0,
        max_tries: int = 5,
        rate_limit: float = 0.0,
        max_in_flight: int = 32,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        metrics: Metrics | None = None,
        allowed_networks: Iterable[Network] = (),
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        transport: httpx.AsyncBaseTransport | None = None,
        budget: HostBudget | None = None,
        hold_patience_s: float | None = None,
    ) -> None:
        """`allowed_networks`: non-public ranges this client may connect to (by default it connects
        to public addresses only). `transport` replaces the network (tests): it is not guarded.

        `budget`: the fleet's request budget of the store's host (shared/woocommerce/budget.py);
        it replaces `rate_limit`, and a store that says slow down holds the host fleet-wide.
        `hold_patience_s` (default `backoff_max_s`): how long one call waits out holds before it
        raises StoreHeld for its caller to reschedule the work (without spending a try)."""
        if max_tries < 1:
            raise ValueError("max_tries must be at least 1")
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        if max_response_bytes < 1:
            raise ValueError("max_response_bytes must be at least 1")
        if rate_limit < 0 or timeout_s <= 0:
            raise ValueError("rate_limit must be >= 0 and timeout_s > 0")
        self.store = store
        self._auth = store.effective_auth
        self._api_root = store.url + API_PREFIX
        self._timeout_s = timeout_s
        self._max_tries = max_tries
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._metrics = metrics
        self._max_response_bytes = max_response_bytes
        # With a budget, a request also takes one of the fleet's in-flight slots of the host
        # (WOOSYNC_STORE_FLEET_CONCURRENCY), after the client's own bound.
        self._in_flight = asyncio.Semaphore(max_in_flight) if budget is None else budget.in_flight(max_in_flight)
        # Evenly spaced requests (a bucket of one): hosts count requests per second, so bursts
        # of a bigger bucket would trip their limit even when the average is within it.
        self._limiter = AsyncLimiter(1, 1.0 / rate_limit) if rate_limit > 0 and budget is None else None
        self._budget = budget
        self._hold_patience_s = backoff_max_s if hold_patience_s is None else hold_patience_s
        self._clock_offset_s = 0.0
        # OAuth goes in the Authorization header (URLs stay short: httpx re-scans every URL
        # character, ~0.1 ms per request for a signed query; and no signature in URL logs) until
        # the store shows it never sees that header; then in the query string, as WooCommerce's docs do.
        self._oauth_in_header = True
        self._secrets = (store.consumer_key, store.consumer_secret)
        # Compression woosync can decode within the response limit (see responses.Inflater).
        headers = {"Accept": "application/json", "Accept-Encoding": "gzip, deflate", "User-Agent": _USER_AGENT}
        if self._auth == "basic":
            token = base64.b64encode(f"{store.consumer_key}:{store.consumer_secret}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        if transport is None:
            # httpx's own pool costs ~10x the CPU per request of aiohttp's (bench/client_transport.py);
            # the semaphore bounds requests in flight, so the pool never needs more connections.
            policy = StoreAddressPolicy(tuple(allowed_networks))
            transport = StoreTransport(policy, max_connections=max_in_flight)
        # Requests go straight to the transport as httpx.Request objects. AsyncClient's own layers
        # (cookie jar, redirects, auth flow, URL merging) do nothing for a stateless signed GET
        # and cost ~0.15 ms of CPU per request, a third of the consumer's HTTP time (bench profile).
        # Redirects are not followed: a redirect would drop or break the signed request.
        self._transport = transport
        self._headers = headers
        self._timeouts = {"connect": timeout_s, "read": timeout_s, "write": timeout_s, "pool": timeout_s}
        guard_httpx_request_log()

    def __repr__(self) -> str:
        return f"<WooCommerceClient store={self.store.url!r} auth={self._auth!r}>"

    async def __aenter__(self) -> WooCommerceClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._transport.aclose()

    # ---- the API woosync uses -------------------------------------------------------------

    async def test_connection(self, *, within_s: float | None = None, max_tries: int | None = None) -> None:
        """Check that the URL is a WooCommerce REST API v3 that accepts these credentials.

        Raises StoreUnreachable (no HTTP answer), StoreAuthError (credentials refused),
        NotAWooCommerceStore (answers, but not as wc/v3), or another typed store error.
        `within_s` bounds the whole check, its tries and the waits between them included, and
        `max_tries` caps its tries (never above the client's): a caller that holds a scarce slot
        learns within that time that a store does not answer (StoreUnreachable naming the limit).
        """
        params = [("per_page", "1"), ("role", "all")]
        try:
            async with asyncio.timeout(within_s):
                await self._get_list("customers", "/customers", params, max_tries=max_tries)  # a JSON list will do
        except TimeoutError:
            if within_s is None:
                raise
            raise StoreUnreachable(
                f"store {self.store.url} did not answer the connection test within {within_s:g} s "
                f"({CONNECTION_TEST_TIMEOUT_VARIABLE})",
                store_url=self.store.url,
            ) from None

    async def iter_customer_pages(
        self, *, role: str = "all", per_page: int = MAX_PER_PAGE, start_page: int = 1
    ) -> AsyncIterator[CustomerPage]:
        """Every customer with `role`, in id order, one page per item.

        Page URLs are built here (the store's `Link` headers echo a used OAuth nonce). The next page
        is requested while the caller handles the current one. The walk stops at X-WP-TotalPages
        of the latest answer or at the first empty page, whose totals are never trusted (past
        the end WooCommerce answers `200 []`, keeping or zeroing X-WP-Total). If X-WP-Total drops
        between pages (customers deleted meanwhile), it steps back so that no customer who
        slid onto an earlier page is missed; ids never repeat.
        """

        def fetch(page: int) -> Awaitable[_ListAnswer]:
            params = [
                ("per_page", str(per_page)),
                ("page", str(page)),
                ("orderby", "id"),
                ("order", "asc"),
                ("role", role),
            ]
            return self._get_list("customers", "/customers", params)

        page = start_page
        last_id: int | None = None  # every customer up to this id has been yielded
        last_total: int | None = None
        step_backs = 0
        stepped_back = False
        pending: asyncio.Future[_ListAnswer] | None = asyncio.ensure_future(fetch(page))
        try:
            while pending is not None:
                answer = await pending
                pending = None
                if not answer.rows:
                    return
                if last_total is not None and answer.total is not None and answer.total < last_total:
                    back = min(page - start_page, math.ceil((last_total - answer.total) / per_page))
                    last_total = answer.total
                    if back > 0 and step_backs < _MAX_STEP_BACKS:
                        step_backs += 1
                        stepped_back = True
                        page -= back
                        logger.info(
                            "store %s: customer count fell while paging; re-reading from page %d", self.store.url, page
                        )
                        pending = asyncio.ensure_future(fetch(page))
                        continue
                last_total = answer.total
                fresh = [row for row in answer.rows if last_id is None or _row_id(row, self.store.url) > last_id]
                if not fresh and not stepped_back:
                    raise NotAWooCommerceStore(
                        f"store {self.store.url} answered page {page} of customers with customers of an earlier "
                        "page: something in front of the store (a cache?) ignores the page parameter",
                        store_url=self.store.url,
                        status=200,
                    )
                stepped_back = False
                if answer.total_pages is not None:
                    has_next = page < answer.total_pages
                else:
                    has_next = len(answer.rows) >= per_page
                if has_next:
                    pending = asyncio.ensure_future(fetch(page + 1))
                if fresh:
                    last_id = max(_row_id(row, self.store.url) for row in fresh)
                    yield CustomerPage(
                        page=page, total=answer.total, total_pages=answer.total_pages, customers=fresh
                    )
                page += 1
        finally:
            if pending is not None:
                await _discard(pending)

    async def get_customer(self, customer_id: int) -> dict:
        """One customer by id; StoreNotFound if the store has no such customer."""
        body = await self._get_json("customer", f"/customers/{int(customer_id)}", [])
        if not isinstance(body, dict):
            raise not_json_of_kind(self.store.url, "a customer object", f"/customers/{int(customer_id)}", body)
        return body

    async def find_customer_by_email(self, email: str, *, role: str = "all") -> dict | None:
        """The customer with this email (WooCommerce matches it case-insensitively), or None."""
        wanted = email.strip()
        answer = await self._get_list("customers", "/customers", [("email", wanted), ("role", role)])
        for row in answer.rows:
            if isinstance(row, dict) and str(row.get("email", "")).lower() == wanted.lower():
                return row
        first = answer.rows[0] if answer.rows else None
        return first if isinstance(first, dict) else None

    async def list_orders(self, customer_id: int, *, fields: Sequence[str] | None = None) -> list[dict]:
        """Every order of the customer, all pages (a customer can have far more than 100).

        `fields` asks for those top-level keys only (WordPress' `_fields`): a full order is
        ~2-3 KB of JSON that the store renders and we parse, most of it unused by the mapping."""

        def fetch(page: int) -> Awaitable[_ListAnswer]:
            params = [("customer", str(int(customer_id))), ("per_page", str(MAX_PER_PAGE)), ("page", str(page))]
            if fields:
                params.append(("_fields", ",".join(fields)))
            return self._get_list("orders", "/orders", params)

        first = await fetch(1)
        pages = [first.rows]
        last = first
        fetched = 1
        while last.rows and (
            last.total_pages > fetched if last.total_pages is not None else len(last.rows) >= MAX_PER_PAGE
        ):
            # Pages we know exist are fetched a few at a time; without totals, one at a time.
            known = last.total_pages if last.total_pages is not None else fetched + 1
            batch = range(fetched + 1, min(known, fetched + _ORDER_PAGES_AT_ONCE) + 1)
            answers = await _gather_or_cancel([fetch(page) for page in batch])
            fetched = batch[-1]
            pages.extend(answer.rows for answer in answers)
            empty = next((answer for answer in answers if not answer.rows), None)
            last = empty if empty is not None else answers[-1]
        # Orders are listed newest first: one created while we page pushes the rest down a
        # slot, and the same order shows up on two pages.
        seen: set[Any] = set()
        orders: list[dict] = []
        for rows in pages:
            for order in rows:
                key = order.get("id") if isinstance(order, dict) else None
                if key is None or key not in seen:
                    seen.add(key)
                    orders.append(order)
        return orders

    # ---- a write (the webhooks resource: shared/woocommerce/webhooks.py) ----------------------

    async def send_json(
        self, method: str, endpoint: str, path: str, params: Sequence[tuple[str, str]] = (), body: Any = None
    ) -> Any:
        """One request with a JSON body (POST, PUT, DELETE), its JSON answer or the typed error it
        means: the same signing, address guard, response cap and error table as every GET, tried
        once (a write is not repeated blindly; the caller decides, knowing what it asked). With a
        budget it waits for its slot of the host's request budget like every GET; a store that
        says slow down holds the host fleet-wide and the write goes again after the hold (the store
        did nothing), or raises StoreHeld past `hold_patience_s`."""
        shown = _describe(method, path, params)
        url = self._api_root + path
        content = b"" if body is None else json.dumps(body).encode()
        adjusted: set[str] = set()
        held_s = 0.0  # time this write spent waiting out holds
        while True:
            async with self._in_flight:
                if self._budget is not None:
                    await self._budget.acquire()
                elif self._limiter is not None:
                    await self._limiter.acquire()
                request_url, auth_headers = self._authorize(url, params, method)
                headers = {**self._headers, **(auth_headers or {})}
                if body is not None:
                    headers["Content-Type"] = "application/json"
                started = time.perf_counter()
                try:
                    async with asyncio.timeout(self._timeout_s):
                        request = httpx.Request(method, request_url, headers=headers, content=content,
                                                extensions={"timeout": self._timeouts})
                        response = await read_answer(
                            self._transport, request, self._max_response_bytes, self.store.url, shown
                        )
                except AddressRefused as refused:
                    self._observe(endpoint, "refused", started)
                    raise StoreAddressRefused(
                        f"store {self.store.url} was not contacted: {refused}", store_url=self.store.url
                    ) from None
                except _TRANSPORT_ERRORS as exc:
                    self._observe(endpoint, "error", started)
                    detail = redact(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, *self._secrets)
                    raise StoreUnreachable(
                        f"store {self.store.url} did not answer {shown}: {detail}", store_url=self.store.url
                    ) from None
                self._observe(endpoint, response.status_code, started)
            try:
                return accept(response, shown, adjusted, self.store.url, self._auth, self._secrets)
            except AuthAdjustment as adjust:
                if adjust.kind == "header":
                    self._oauth_in_header = False
                else:
                    self._clock_offset_s = adjust.clock_offset_s
                adjusted.add(adjust.kind)
                logger.warning("store %s: %s", self.store.url, adjust.note)
            except StoreUnavailable as failure:
                if self._budget is None or (slow_down := _slow_down_s(failure)) is None:
                    raise
                # The store refused the write for its limit (it did nothing): the fleet holds the
                # host, and the write goes again on its next slot.
                held_for = await self._budget.hold(max(slow_down, _MIN_HOLD_S), status=failure.status or 429)
                held_s += held_for
                if held_s > self._hold_patience_s:
                    raise StoreHeld(f"store {self.store.url} asked woosync to slow down ({short_reason(failure)}) "
                                    f"at {shown}; held for {held_for:.1f} s more: try again then",
                                    store_url=self.store.url, retry_after=held_for) from None
                logger.info("store %s: %s: %s; the fleet holds the store for %.1f s, then the write goes again",
                            self.store.url, shown, short_reason(failure), held_for)

    async def customers_page(self, page: int = 1, *, role: str = "all", newest_first: bool = False,
                             include: Sequence[int] = (), per_page: int = MAX_PER_PAGE) -> CustomerPage:
        """One page of customers with `role` in id order (`newest_first`: highest id first, so
        customers registered since a known id come first), or only those of `include` (at most
        `per_page` ids). Past the end the store answers `200 []`."""
        params = [("per_page", str(per_page)), ("page", str(int(page))), ("orderby", "id"),
                  ("order", "desc" if newest_first else "asc"), ("role", role)]
        if include:
            params.append(("include", ",".join(str(int(customer_id)) for customer_id in include)))
        answer = await self._get_list("customers", "/customers", params)
        if any(not isinstance(row, dict) for row in answer.rows):
            raise not_json_of_kind(self.store.url, "a list of customer objects", "/customers", answer.rows)
        return CustomerPage(page, answer.total, answer.total_pages, answer.rows)

    async def count_customers(self, *, role: str = "all") -> int:
        """How many customers have `role`: one request (`per_page=1`, X-WP-Total)."""
        answer = await self._get_list("customers", "/customers", [("per_page", "1"), ("role", role)])
        return answer.total if answer.total is not None else len(answer.rows)

    async def count_orders(self) -> int:
        """How many orders the store has, every status (guest orders too): one request."""
        answer = await self._get_list("orders", "/orders", [("per_page", "1")])
        return answer.total if answer.total is not None else len(answer.rows)

    async def orders_page(self, page: int, *, per_page: int = MAX_PER_PAGE,
                          fields: Sequence[str] | None = None, modified_after: datetime | None = None) -> OrdersPage:
        """One page of every order of the store, every status, in id order (`orderby=id&order=asc`):
        an order created meanwhile lands on the last page and shifts no other. Past the end the
        store answers `200 []` with totals of 0, which say nothing (docs/architecture.md).
        `modified_after`: only orders modified after that moment (an incremental sweep), given
        in UTC with `dates_are_gmt=true`."""
        params = [("per_page", str(per_page)), ("page", str(int(page))), ("orderby", "id"), ("order", "asc")]
        if modified_after is not None:
            moment = modified_after.astimezone(timezone.utc).replace(tzinfo=None, microsecond=0)
            params += [("modified_after", moment.isoformat()), ("dates_are_gmt", "true")]
        if fields:
            params.append(("_fields", ",".join(fields)))
        answer = await self._get_list("orders", "/orders", params)
        rows = answer.rows
        if any(not isinstance(row, dict) for row in rows):
            raise not_json_of_kind(self.store.url, "a list of order objects", "/orders", rows)
        if not rows:
            return OrdersPage(page, None, None, [])
        return OrdersPage(page, answer.total, answer.total_pages, rows)

    # ---- one GET, with auth, limits, retries and error translation ---------------------------

    async def _get_list(self, endpoint: str, path: str, params: Sequence[tuple[str, str]], *,
                        max_tries: int | None = None) -> _ListAnswer:
        body, headers = await self._request(endpoint, path, params, max_tries=max_tries)
        if not isinstance(body, list):
            raise not_json_of_kind(self.store.url, "a JSON list", path, body)
        return _ListAnswer(body, int_header(headers, "X-WP-Total"), int_header(headers, "X-WP-TotalPages"))

    async def _get_json(self, endpoint: str, path: str, params: Sequence[tuple[str, str]]) -> Any:
        body, _ = await self._request(endpoint, path, params)
        return body

    async def _request(
        self, endpoint: str, path: str, params: Sequence[tuple[str, str]], *, max_tries: int | None = None
    ) -> tuple[Any, httpx.Headers]:
        shown = _describe("GET", path, params)
        tries = min(max_tries, self._max_tries) if max_tries else self._max_tries
        url = self._api_root + path
        attempt = 0
        adjusted: set[str] = set()
        held_s = 0.0  # time this call spent waiting out holds
        while True:
            attempt += 1
            try:
                response = await self._send_once(endpoint, url, params, shown)
                return accept(response, shown, adjusted, self.store.url, self._auth, self._secrets), response.headers
            except AuthAdjustment as adjust:
                if adjust.kind == "header":
                    self._oauth_in_header = False
                else:
                    self._clock_offset_s = adjust.clock_offset_s
                adjusted.add(adjust.kind)
                logger.warning("store %s: %s", self.store.url, adjust.note)
                attempt -= 1  # our side's mistake, not the store's trouble: does not use up a try
                continue
            except StoreUnavailable as failure:
                if self._budget is not None and (slow_down := _slow_down_s(failure)) is not None:
                    attempt -= 1  # the store's limit, not the request's fault: no try spent
                    held_for = await self._budget.hold(max(slow_down, _MIN_HOLD_S), status=failure.status or 429)
                    held_s += held_for
                    if held_s > self._hold_patience_s:
                        raise StoreHeld(f"store {self.store.url} asked woosync to slow down ({short_reason(failure)}); "
                                        f"held for {held_for:.1f} s more", store_url=self.store.url,
                                        retry_after=held_for) from None
                    logger.info("store %s: %s: %s; the fleet holds the store for %.1f s, then this request goes again",
                                self.store.url, shown, short_reason(failure), held_for)
                    continue  # the next slot comes after the hold
                if attempt >= tries:
                    raise gave_up(failure, attempt) from None
                delay = backoff_delay(attempt, self._backoff_base_s, self._backoff_max_s)
                if failure.retry_after is not None:
                    if failure.retry_after > self._backoff_max_s:
                        # Waiting that long here would hold a worker for nothing: hand the work
                        # back (retryable) with the store's delay for the caller to schedule.
                        raise
                    delay = max(delay, failure.retry_after)
                logger.warning(
                    "store %s: %s failed (%s); will retry in %.2f s (attempt %d of %d)",
                    self.store.url,
                    shown,
                    short_reason(failure),
                    delay,
                    attempt,
                    tries,
                )
                await asyncio.sleep(delay)

    async def _send_once(
        self, endpoint: str, url: str, params: Sequence[tuple[str, str]], shown: str
    ) -> Answer:
        async with self._in_flight:
            if self._budget is not None:
                await self._budget.acquire()
            elif self._limiter is not None:
                await self._limiter.acquire()
            # Signed after the waits: the OAuth timestamp is fresh, the nonce new for every try.
            request_url, headers = self._authorize(url, params)
            started = time.perf_counter()
            try:
                async with asyncio.timeout(self._timeout_s):
                    # Straight to the transport (see __init__), the body read within the limit.
                    request = httpx.Request(
                        "GET",
                        request_url,
                        headers={**self._headers, **headers} if headers else self._headers,
                        extensions={"timeout": self._timeouts},
                    )
                    response = await read_answer(
                        self._transport, request, self._max_response_bytes, self.store.url, shown
                    )
            except AddressRefused as refused:
                self._observe(endpoint, "refused", started)
                raise StoreAddressRefused(f"store {self.store.url} was not contacted: {refused}", store_url=self.store.url) from None
            except StoreResponseTooLarge as too_large:
                self._observe(endpoint, too_large.status or "error", started)
                raise
            except _TRANSPORT_ERRORS as exc:
                self._observe(endpoint, "error", started)
                detail = redact(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, *self._secrets)
                if isinstance(exc, TimeoutError):
                    detail = f"no answer within {self._timeout_s:g} s"
                raise StoreUnreachable(
                    f"store {self.store.url} did not answer {shown}: {detail}", store_url=self.store.url
                ) from None
            self._observe(endpoint, response.status_code, started)
            return response

    def _authorize(
        self, url: str, params: Sequence[tuple[str, str]], method: str = "GET"
    ) -> tuple[str, dict[str, str] | None]:
        """The request URL and extra headers carrying the credentials (Basic is on the client)."""
        headers = None
        query = list(params)
        if self._auth == "oauth":
            signed = oauth.oauth_parameters(
                method,
                url,
                params,
                self.store.consumer_key,
                self.store.consumer_secret,
                timestamp=int(time.time() + self._clock_offset_s),
            )
            if self._oauth_in_header:
                headers = {"Authorization": oauth.authorization_header(signed)}
            else:
                query += signed
        elif self._auth == "query":
            query += [("consumer_key", self.store.consumer_key), ("consumer_secret", self.store.consumer_secret)]
        if not query:
            return url, headers
        return url + "?" + "&".join(f"{oauth.percent_encode(k)}={oauth.percent_encode(v)}" for k, v in query), headers

    def _observe(self, endpoint: str, status: int | str, started: float) -> None:
        if self._metrics is not None:
            self._metrics.observe_woocommerce(endpoint, status, time.perf_counter() - started)


# ---- helpers ---------------------------------------------------------------------------------


def _row_id(row: Any, store_url: str) -> int:
    row_id = row.get("id") if isinstance(row, dict) else None
    if not isinstance(row_id, int) or isinstance(row_id, bool):
        raise NotAWooCommerceStore(
            f"store {store_url} listed a customer without an integer id: is this a WooCommerce REST API v3?",
            store_url=store_url,
            status=200,
        )
    return row_id


def _slow_down_s(failure: StoreUnavailable) -> float | None:
    """How long a store that said slow down asked for (None: it did not). A 429 without
    Retry-After asks for one second; a 503 counts only with Retry-After (else it is a failure)."""
    if failure.status == 429:
        return failure.retry_after if failure.retry_after is not None else 1.0
    if failure.status == 503 and failure.retry_after is not None:
        return failure.retry_after
    return None


def _describe(method: str, path: str, params: Sequence[tuple[str, str]]) -> str:
    """`GET /wp-json/wc/v3/customers?per_page=100&page=2`: our own parameters only, never credentials."""
    query = "&".join(f"{key}={value}" for key, value in params)
    return f"{method} {API_PREFIX}{path}" + (f"?{query}" if query else "")


async def _gather_or_cancel(awaitables: list[Awaitable[_ListAnswer]]) -> list[_ListAnswer]:
    """All results in order; on the first failure the others are cancelled and it is raised."""
    tasks = [asyncio.ensure_future(awaitable) for awaitable in awaitables]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def _discard(pending: asyncio.Future[Any]) -> None:
    """Cancel a look-ahead request nobody will read, and retrieve its outcome (no stray warnings)."""
    if not pending.done():
        pending.cancel()
    await asyncio.gather(pending, return_exceptions=True)
