"""Async client for the WooCommerce REST API v3 (docs/contract.md section 6).

One `WooCommerceClient` per store: one connection pool, one request-rate limit, one cap on
requests in flight. Every failure leaves here as one of the typed errors of `shared.errors`:

    no HTTP answer (connect/read error, timeout)   retried, then StoreUnreachable
    5xx, 408                                       retried, then StoreUnavailable
    429                                            retried, then StoreRateLimited (Retry-After honoured)
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
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import logging
import math
import random
import re
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timezone
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

import aiohttp
import httpx
import orjson
from aiolimiter import AsyncLimiter

from shared.errors import (
    NotAWooCommerceStore,
    StoreAddressRefused,
    StoreAuthError,
    StoreBadRequest,
    StoreError,
    StoreNotFound,
    StoreRateLimited,
    StoreResponseTooLarge,
    StoreUnavailable,
    StoreUnreachable,
)
from shared.woocommerce import oauth
from shared.woocommerce.store_addresses import Network, StoreAddressPolicy
from shared.woocommerce.transport import AddressRefused, StoreTransport

if TYPE_CHECKING:
    from shared.metrics import Metrics

logger = logging.getLogger(__name__)

API_PREFIX = "/wp-json/wc/v3"
MAX_PER_PAGE = 100  # WooCommerce answers 400 rest_invalid_param above this
AuthMode = Literal["auto", "oauth", "basic", "query"]
_AUTH_MODES = ("auto", "oauth", "basic", "query")
_USER_AGENT = "woosync/0.1"
# A page of 100 full orders is rarely above a few MB; a store answering more is broken or hostile.
DEFAULT_MAX_RESPONSE_BYTES = 32 * 1024 * 1024
MAX_RESPONSE_BYTES_VARIABLE = "WOOSYNC_STORE_MAX_RESPONSE_BYTES"
CONNECTION_TEST_TIMEOUT_VARIABLE = "WOOSYNC_STORE_CONNECT_TEST_TIMEOUT_S"
# Pages of one customer's orders fetched at once: enough to hide latency for a heavy customer
# without letting it take every slot of the store's in-flight cap.
_ORDER_PAGES_AT_ONCE = 4
# A store whose clock is this far from ours gets signed with its own clock (OAuth allows 15 min).
_CLOCK_SKEW_TOLERANCE_S = 60.0
# How often one enumeration may step back after customers were deleted under it.
_MAX_STEP_BACKS = 50
_TRANSPORT_ERRORS = (httpx.RequestError, aiohttp.ClientError, TimeoutError, OSError)
# A credential in a query string (k=v) or an OAuth Authorization header (k="v").
_CREDENTIAL_IN_QUERY = re.compile(
    r"((?:oauth_consumer_key|oauth_signature|oauth_nonce|consumer_key|consumer_secret)=)(?:\"[^\"]*\"|[^&\s\"'<>;,]*)",
    re.IGNORECASE,
)


def normalize_store_url(url: str) -> str:
    """`" https://Shop.test/wp-json/wc/v3/ "` -> `"https://shop.test"`; refuses what is not http(s)."""
    cleaned = url.strip().rstrip("/")
    parts = urlsplit(cleaned)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"store URL must be an http:// or https:// URL with a host, got {cleaned!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"store URL must not carry a query or fragment: {redact(cleaned)!r}")
    if parts.username or parts.password:
        raise ValueError("store URL must not carry credentials: give consumer_key and consumer_secret instead")
    path = parts.path
    # People paste the API root they see in WooCommerce's docs; the store is what is above it.
    for suffix in (API_PREFIX, "/wp-json"):
        if path.lower().endswith(suffix):
            path = path[: -len(suffix)]
            break
    return f"{scheme}://{parts.netloc.lower()}{path.rstrip('/')}"


def redact(text: str, *secrets: str) -> str:
    """Text safe to log: credential query parameters masked, and any of `secrets` replaced."""
    text = _CREDENTIAL_IN_QUERY.sub(r"\1***", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


@dataclass(frozen=True, repr=False)
class StoreCredentials:
    """Where a store is and how to authenticate; the repr never shows the key or secret."""

    url: str
    consumer_key: str
    consumer_secret: str
    auth: AuthMode = "auto"  # auto: https -> basic, http -> oauth (WooCommerce refuses the others over http)

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", normalize_store_url(self.url))
        object.__setattr__(self, "consumer_key", self.consumer_key.strip())
        object.__setattr__(self, "consumer_secret", self.consumer_secret.strip())
        if not self.consumer_key or not self.consumer_secret:
            raise ValueError("store consumer_key and consumer_secret must both be non-empty")
        if self.auth not in _AUTH_MODES:
            raise ValueError(f"store auth must be one of {', '.join(_AUTH_MODES)}, got {self.auth!r}")

    @property
    def effective_auth(self) -> Literal["oauth", "basic", "query"]:
        if self.auth != "auto":
            return self.auth
        return "basic" if self.url.startswith("https://") else "oauth"

    def __repr__(self) -> str:
        return f"StoreCredentials(url={self.url!r}, auth={self.auth!r}, consumer_key='***', consumer_secret='***')"

    __str__ = __repr__


@dataclass(frozen=True)
class CustomerPage:
    page: int
    total: int | None  # X-WP-Total of this page's answer (customers matching the role)
    total_pages: int | None  # X-WP-TotalPages of this page's answer
    customers: list[dict]


@dataclass(frozen=True)
class _Answer:
    """One HTTP answer of the store, its body read (within the limit)."""

    status_code: int
    reason_phrase: str
    headers: httpx.Headers
    content: bytes
    request: httpx.Request


@dataclass(frozen=True)
class _ListAnswer:
    rows: list[Any]
    total: int | None
    total_pages: int | None


class _Adjust(Exception):
    """The store refused a request for a reason we can fix on our side (how OAuth is sent, our
    clock): apply the fix for every later request of this client, then send this one again."""

    def __init__(self, kind: str, fix: Callable[[], None], note: str, error: StoreAuthError) -> None:
        super().__init__(str(error))
        self.kind, self.fix, self.note, self.error = kind, fix, note, error


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
    ) -> None:
        """`allowed_networks`: non-public ranges this client may connect to (by default it connects
        to public addresses only). `transport` replaces the network (tests): it is not guarded."""
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
        self._in_flight = asyncio.Semaphore(max_in_flight)
        # Evenly spaced requests (a bucket of one): hosts count requests per second, so bursts
        # of a bigger bucket would trip their limit even when the average is within it.
        self._limiter = AsyncLimiter(1, 1.0 / rate_limit) if rate_limit > 0 else None
        self._clock_offset_s = 0.0
        # OAuth goes in the Authorization header (URLs stay short: httpx re-scans every URL
        # character, ~0.1 ms per request for a signed query; and no signature in URL logs) until
        # the store shows it never sees that header; then in the query string, as WooCommerce's docs do.
        self._oauth_in_header = True
        self._secrets = (store.consumer_key, store.consumer_secret)
        # Compression woosync can decode within the response limit (see _Inflater).
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
        _guard_httpx_request_log()

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
            raise self._not_json_of_kind("a customer object", f"/customers/{int(customer_id)}", body)
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

    # ---- one GET, with auth, limits, retries and error translation ---------------------------

    async def _get_list(self, endpoint: str, path: str, params: Sequence[tuple[str, str]], *,
                        max_tries: int | None = None) -> _ListAnswer:
        body, headers = await self._request(endpoint, path, params, max_tries=max_tries)
        if not isinstance(body, list):
            raise self._not_json_of_kind("a JSON list", path, body)
        return _ListAnswer(body, _int_header(headers, "X-WP-Total"), _int_header(headers, "X-WP-TotalPages"))

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
        while True:
            attempt += 1
            try:
                response = await self._send_once(endpoint, url, params, shown)
                return self._accept(response, shown, adjusted), response.headers
            except _Adjust as adjust:
                adjust.fix()
                adjusted.add(adjust.kind)
                logger.warning("store %s: %s", self.store.url, adjust.note)
                attempt -= 1  # our side's mistake, not the store's trouble: does not use up a try
                continue
            except StoreUnavailable as failure:
                if attempt >= tries:
                    raise _gave_up(failure, attempt) from None
                delay = self._backoff(attempt)
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
                    _short_reason(failure),
                    delay,
                    attempt,
                    tries,
                )
                await asyncio.sleep(delay)

    async def _send_once(
        self, endpoint: str, url: str, params: Sequence[tuple[str, str]], shown: str
    ) -> _Answer:
        async with self._in_flight:
            if self._limiter is not None:
                await self._limiter.acquire()
            # Signed after the waits: the OAuth timestamp is fresh, the nonce new for every try.
            request_url, headers = self._authorize(url, params)
            started = time.perf_counter()
            try:
                async with asyncio.timeout(self._timeout_s):
                    response = await self._get(request_url, headers, shown)
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

    async def _get(self, url: str, headers: dict[str, str] | None, shown: str) -> _Answer:
        """One GET, its body read as a stream and never past the limit: a Content-Length above it
        is refused before the body, and a body without one stops when it passes it. The limit
        counts decoded bytes, so a compressed answer cannot inflate past it either."""
        request = httpx.Request("GET", url, headers={**self._headers, **headers} if headers else self._headers,
                                extensions={"timeout": self._timeouts})
        response = await self._transport.handle_async_request(request)
        limit = self._max_response_bytes
        try:
            declared = _int_header(response.headers, "Content-Length")
            if declared is not None and declared > limit:
                raise self._too_large(shown, response.status_code, declared)
            encoding = response.headers.get("Content-Encoding", "").strip().lower()
            inflater = _Inflater(encoding) if encoding in _Inflater.ENCODINGS else None
            if inflater is None and encoding not in ("", "identity"):
                raise NotAWooCommerceStore(
                    f"store {self.store.url} answered {shown} with a Content-Encoding woosync did not ask for "
                    f"({_plain_text(encoding, 40)})",
                    store_url=self.store.url,
                    status=response.status_code,
                )
            chunks: list[bytes] = []
            received = 0
            async for raw in response.stream:  # type: ignore[union-attr]  # an AsyncByteStream from any transport
                # Decompressed no further than the limit allows: a small compressed answer can
                # stand for gigabytes, and must not be inflated before it is counted.
                chunk = inflater.decode(raw, limit - received + 1) if inflater is not None else raw
                received += len(chunk)
                if received > limit:
                    raise self._too_large(shown, response.status_code, None)
                chunks.append(chunk)
        finally:
            await response.aclose()
        return _Answer(response.status_code, response.reason_phrase, response.headers, b"".join(chunks), request)

    def _too_large(self, shown: str, status: int, declared: int | None) -> StoreResponseTooLarge:
        limit = f"the {_size(self._max_response_bytes)} limit ({MAX_RESPONSE_BYTES_VARIABLE})"
        if declared is not None:
            said = f"answered {_size(declared)} to {shown}, more than {limit}"
        else:
            said = f"answered more than {limit} to {shown}: stopped reading"
        return StoreResponseTooLarge(f"store {self.store.url} {said}", store_url=self.store.url, status=status)

    def _authorize(self, url: str, params: Sequence[tuple[str, str]]) -> tuple[str, dict[str, str] | None]:
        """The request URL and extra headers carrying the credentials (Basic is on the client)."""
        headers = None
        query = list(params)
        if self._auth == "oauth":
            signed = oauth.oauth_parameters(
                "GET",
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

    def _accept(self, response: _Answer, shown: str, adjusted: set[str]) -> Any:
        """The JSON body of a 2xx answer, or the typed error the answer means."""
        status = response.status_code
        where = self.store.url
        if 200 <= status < 300:
            try:
                return _decode_json(response.content)
            except ValueError:
                raise NotAWooCommerceStore(
                    f"store {where} answered {shown} with {status} but not with JSON "
                    f"({_content_type(response)}): is this the URL of a WooCommerce site?",
                    store_url=where,
                    status=status,
                ) from None
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if status == 429:
            wait = f"; it asks to wait {retry_after:g} s" if retry_after is not None else ""
            raise StoreRateLimited(
                f"store {where} is rate limiting us (429 on {shown}){wait}", store_url=where, retry_after=retry_after
            )
        if status >= 500 or status == 408:
            code, store_message, _, _ = self._error_fields(response)
            status_line = f"{status} {_plain_text(response.reason_phrase, 80)}".rstrip()
            said = ": ".join(part for part in (status_line, code, store_message) if part)
            raise StoreUnavailable(
                f"store {where} answered {shown} with {said}",
                store_url=where,
                status=status,
                retry_after=retry_after,
            )
        code, store_message, bad_params, is_json = self._error_fields(response)
        said = ": ".join(part for part in (f"{status}", code, store_message) if part)
        if 300 <= status < 400:
            location = redact(_plain_text(response.headers.get("Location", "?"), 200), *self._secrets)
            raise NotAWooCommerceStore(
                f"store {where} answered {shown} with a redirect ({status}) to {location}: "
                "use the URL it redirects to as the store URL",
                store_url=where,
                status=status,
            )
        fields = {"store_url": where, "status": status, "code": code, "store_message": store_message}
        if status in (401, 403):
            error = StoreAuthError(
                f"store {where} refused the credentials ({said}) on {shown}"
                + self._auth_hint(status, code, store_message),
                **fields,
            )
            adjust = self._adjustment(response, code, store_message, error, adjusted)
            if adjust is not None:
                raise adjust
            raise error
        if status == 404:
            if not is_json or code == "rest_no_route":
                raise NotAWooCommerceStore(
                    f"store {where} has no WooCommerce REST API v3 at {API_PREFIX} ({said}) on {shown}: "
                    "is WooCommerce active and are pretty permalinks on?",
                    **fields,
                )
            raise StoreNotFound(f"store {where} has no such resource ({said}) on {shown}", **fields)
        if status == 400:
            detail = "; ".join(f"{name}: {problem}" for name, problem in bad_params.items())
            raise StoreBadRequest(
                f"store {where} rejected {shown} ({said})" + (f" [{detail}]" if detail else ""), **fields
            )
        raise StoreError(f"store {where} answered {shown} with {said}", **fields)

    def _error_fields(self, response: _Answer) -> tuple[str | None, str | None, dict[str, str], bool]:
        """WooCommerce's own `code`, `message` and `data.params` from an error body, if JSON: text
        only, bounded. Anything else in the body is never quoted."""
        try:
            body = _decode_json(response.content)
        except ValueError:
            return None, None, {}, False
        if not isinstance(body, dict):
            return None, None, {}, True
        code = body.get("code")
        message = body.get("message")
        data = body.get("data")
        raw_params = data.get("params") if isinstance(data, dict) else None
        bad_params = {
            redact(_plain_text(name, 60), *self._secrets): redact(_plain_text(problem, 200), *self._secrets)
            for name, problem in list(raw_params.items() if isinstance(raw_params, dict) else ())[:_MAX_PARAMS_QUOTED]
            if isinstance(problem, str)
        }
        return (
            redact(_plain_text(code, 80), *self._secrets) if isinstance(code, str) else None,
            redact(_plain_text(message), *self._secrets) if isinstance(message, str) else None,
            bad_params,
            True,
        )

    def _auth_hint(self, status: int, code: str | None, store_message: str | None) -> str:
        plain_http = self.store.url.startswith("http://")
        if status == 403:
            return ": the key needs Read access and its user must be allowed to manage WooCommerce"
        if code == "woocommerce_rest_cannot_view" and plain_http and self._auth in ("basic", "query"):
            return (
                ": over plain http WooCommerce ignores Basic and query-string keys;"
                " use OAuth (auth='oauth' or 'auto') or an https URL"
            )
        if code == "woocommerce_rest_cannot_view" and self._auth == "basic":
            return ": the consumer key is unknown, or a proxy drops the Authorization header (then try auth='query')"
        if code == "woocommerce_rest_cannot_view":
            return ": the store did not recognise the consumer key"
        if store_message and "timestamp" in store_message.lower():
            return ": the store's clock and ours disagree by more than 15 minutes"
        if code == "woocommerce_rest_authentication_error":
            return ": check the consumer key and secret"
        return ""

    def _adjustment(
        self,
        response: _Answer,
        code: str | None,
        store_message: str | None,
        error: StoreAuthError,
        adjusted: set[str],
    ) -> _Adjust | None:
        """A fix on our side for this OAuth refusal, if there is one we have not tried yet."""
        if self._auth != "oauth" or response.status_code != 401:
            return None
        sent_in_header = response.request.headers.get("Authorization", "").startswith("OAuth ")
        if code == "woocommerce_rest_cannot_view" and sent_in_header and "header" not in adjusted:
            # "cannot view" means no credentials arrived at all (bad ones get a precise message):
            # something between us and WordPress drops the Authorization header.

            def to_query() -> None:
                self._oauth_in_header = False

            note = (
                "the store never saw the OAuth Authorization header (a proxy drops it?): "
                "sending OAuth in the query string"
            )
            return _Adjust("header", to_query, note, error)
        if "clock" in adjusted or not store_message or "timestamp" not in store_message.lower():
            return None
        date = response.headers.get("Date")
        try:
            server_time = email.utils.parsedate_to_datetime(date).timestamp() if date else None
        except (TypeError, ValueError):
            server_time = None
        if server_time is None:
            return None
        offset = server_time - time.time()
        if abs(offset) <= _CLOCK_SKEW_TOLERANCE_S:
            return None

        def follow_store_clock() -> None:
            self._clock_offset_s = offset

        note = f"its clock is {offset:+.0f} s from ours and it refused our OAuth timestamp: signing with its clock"
        return _Adjust("clock", follow_store_clock, note, error)

    def _not_json_of_kind(self, kind: str, path: str, body: Any) -> NotAWooCommerceStore:
        return NotAWooCommerceStore(
            f"store {self.store.url} answered GET {API_PREFIX}{path} with JSON that is not {kind} "
            f"(got {type(body).__name__}): is this a WooCommerce REST API v3?",
            store_url=self.store.url,
            status=200,
        )

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter (AWS architecture blog): spreads retries of many workers."""
        return random.uniform(0.0, min(self._backoff_max_s, self._backoff_base_s * 2 ** (attempt - 1)))

    def _observe(self, endpoint: str, status: int | str, started: float) -> None:
        if self._metrics is not None:
            self._metrics.observe_woocommerce(endpoint, status, time.perf_counter() - started)


# ---- helpers ---------------------------------------------------------------------------------


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP date; None if absent or garbled."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


_HTML_TAG = re.compile(r"<[^>]{0,500}>")
# WooCommerce names the bad parameters of a 400 in data.params; a few are enough to act on.
_MAX_PARAMS_QUOTED = 10


def _plain_text(message: str, limit: int = 300) -> str:
    """A store message fit for a log line: WordPress' errors carry HTML (the "critical error"
    page); tags dropped, whitespace collapsed, length bounded."""
    text = " ".join(_HTML_TAG.sub(" ", message).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Inflater:
    """A gzip or deflate body, decompressed chunk by chunk, never producing more than asked
    (httpx's decoders inflate a whole chunk first: ~16 MiB from 16 KiB of zeros)."""

    ENCODINGS = ("gzip", "x-gzip", "deflate")

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self._raw_deflate_possible = encoding == "deflate"
        # gzip framing; for deflate the zlib framing (RFC 9110), raw deflate if the first chunk says so.
        self._zlib = zlib.decompressobj(zlib.MAX_WBITS if encoding == "deflate" else zlib.MAX_WBITS | 16)

    def decode(self, data: bytes, at_most: int) -> bytes:
        try_raw, self._raw_deflate_possible = self._raw_deflate_possible, False
        try:
            return self._zlib.decompress(data, at_most)
        except zlib.error as exc:
            if not try_raw:
                raise httpx.DecodingError(f"the {self.encoding} body is corrupt ({exc})") from None
        self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
        try:
            return self._zlib.decompress(data, at_most)
        except zlib.error as exc:
            raise httpx.DecodingError(f"the {self.encoding} body is corrupt ({exc})") from None


def _decode_json(content: bytes) -> Any:
    # Some WordPress sites send a UTF-8 byte order mark before the JSON (a plugin file saved with one).
    if content.startswith(b"\xef\xbb\xbf"):
        content = content[3:]
    return orjson.loads(content)  # orjson.JSONDecodeError is a ValueError


def _int_header(headers: httpx.Headers, name: str) -> int | None:
    value = headers.get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _row_id(row: Any, store_url: str) -> int:
    row_id = row.get("id") if isinstance(row, dict) else None
    if not isinstance(row_id, int) or isinstance(row_id, bool):
        raise NotAWooCommerceStore(
            f"store {store_url} listed a customer without an integer id: is this a WooCommerce REST API v3?",
            store_url=store_url,
            status=200,
        )
    return row_id


def _describe(method: str, path: str, params: Sequence[tuple[str, str]]) -> str:
    """`GET /wp-json/wc/v3/customers?per_page=100&page=2`: our own parameters only, never credentials."""
    query = "&".join(f"{key}={value}" for key, value in params)
    return f"{method} {API_PREFIX}{path}" + (f"?{query}" if query else "")


def _content_type(response: _Answer) -> str:
    content_type = response.headers.get("Content-Type", "no Content-Type").split(";")[0].strip()
    return _plain_text(content_type, 80) or "no Content-Type"


def _size(count: int) -> str:
    """`419430400` -> `"400 MiB"`; bytes below one KiB as bytes."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= scale:
            value = count / scale
            return f"{value:.0f} {unit}" if value >= 100 else f"{value:.3g} {unit}"
    return f"{count} bytes"


def _short_reason(failure: StoreUnavailable) -> str:
    if isinstance(failure, StoreRateLimited):
        return "429 rate limited"
    if failure.status is not None:
        return f"status {failure.status}"
    return str(failure).rsplit(": ", 1)[-1]


def _gave_up(failure: StoreUnavailable, tries: int) -> StoreUnavailable:
    """The same error, saying that it is final for this call."""
    message = f"{failure} (gave up after {tries} {'try' if tries == 1 else 'tries'})"
    if isinstance(failure, StoreRateLimited):
        return StoreRateLimited(message, store_url=failure.store_url, retry_after=failure.retry_after)
    return type(failure)(message, store_url=failure.store_url, status=failure.status, retry_after=failure.retry_after)


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


class _RedactCredentials(logging.Filter):
    """httpx logs each request URL (at INFO): mask OAuth and query-string credentials in it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = _CREDENTIAL_IN_QUERY.sub(r"\1***", message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def _guard_httpx_request_log() -> None:
    httpx_logger = logging.getLogger("httpx")
    if not any(isinstance(existing, _RedactCredentials) for existing in httpx_logger.filters):
        httpx_logger.addFilter(_RedactCredentials())
