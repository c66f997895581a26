"""The simulator's HTTP server: WooCommerce REST API v3 routes on aiohttp.

One request goes through the same steps as on a real store behind a proxy:
host faults (429/5xx before WordPress) -> WooCommerce authentication (only for `/wp-json/wc/`
paths; a failed attempt is 401 whatever the route) -> routing (404 `rest_no_route`) -> argument
validation (400 `rest_invalid_param`, before permissions, as WordPress does) -> permission
(anonymous: 401 `woocommerce_rest_cannot_view`) -> the endpoint, then the configured latency.

Collection pages are cached serialized (bytes), keyed by their normalized arguments; only the
`Link` header, which echoes the request's own OAuth parameters, is built per request.
"""

from __future__ import annotations

import asyncio
import calendar
import collections
import functools
import logging
import os
import re
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from woosync.simulator import rest
from woosync.simulator.auth import ANONYMOUS, Authenticator, AuthOutcome
from woosync.simulator.config import SimulatorConfig
from woosync.simulator.data import ORDER_STATUSES, ROLES, WOOCOMMERCE_VERSION, SimulatedStore, store_summary
from woosync.simulator.faults import PHP_FATAL, FaultInjector, HostFault
from woosync.simulator.rest import Param, PhpQuery, RestError
from woosync.simulator.webhooks import SimulatedWebhooks

log = logging.getLogger(__name__)
SIMULATOR = web.AppKey("simulator", "Simulator")

# ---------------------------------------------------------------------------- route arguments
# In WooCommerce's declaration order: WordPress reports invalid ones in this order.

_CONTEXT = Param("context", "string", default="view", enum=("view", "edit"),
                 description="Scope under which the request is made; determines fields present in response.")
_PAGE = Param("page", "integer", default=1, minimum=1, description="Current page of the collection.")
_PER_PAGE = Param("per_page", "integer", default=10, minimum=1, maximum=100,
                  description="Maximum number of items to be returned in result set.")
_EXCLUDE = Param("exclude", "array", default=(), items="integer",
                 description="Ensure result set excludes specific IDs.")
_INCLUDE = Param("include", "array", default=(), items="integer",
                 description="Limit result set to specific IDs.")
_OFFSET = Param("offset", "integer", description="Offset the result set by a specific number of items.")

CUSTOMER_LIST_PARAMS = (
    _CONTEXT, _PAGE, _PER_PAGE,
    Param("search", "string", description="Limit results to those matching a string."),
    _EXCLUDE, _INCLUDE, _OFFSET,
    Param("order", "string", default="asc", enum=("asc", "desc"), description="Order sort attribute ascending or descending."),
    Param("orderby", "string", default="name", enum=("id", "include", "name", "registered_date"),
          description="Sort collection by object attribute."),
    Param("email", "string", format="email", description="Limit result set to resources with a specific email."),
    Param("role", "string", default="customer", enum=("all", *ROLES),
          description="Limit result set to resources with a specific role."),
)

ORDER_LIST_PARAMS = (
    _CONTEXT, _PAGE, _PER_PAGE,
    Param("search", "string", description="Limit results to those matching a string."),
    Param("after", "string", format="date-time",
          description="Limit response to resources published after a given ISO8601 compliant date."),
    Param("before", "string", format="date-time",
          description="Limit response to resources published before a given ISO8601 compliant date."),
    Param("modified_after", "string", format="date-time",
          description="Limit response to resources modified after a given ISO8601 compliant date."),
    Param("modified_before", "string", format="date-time",
          description="Limit response to resources modified before a given ISO8601 compliant date."),
    Param("dates_are_gmt", "boolean", default=False,
          description="Whether to consider GMT post dates when limiting response by published or modified date."),
    _EXCLUDE, _INCLUDE, _OFFSET,
    Param("order", "string", default="desc", enum=("asc", "desc"), description="Order sort attribute ascending or descending."),
    Param("orderby", "string", default="date", enum=("date", "id", "include", "title", "slug", "modified"),
          description="Sort collection by object attribute."),
    Param("status", "array", default=("any",),
          enum=("any", "trash", "auto-draft", "pending", "processing", "on-hold", "completed", "cancelled",
                "refunded", "failed", "checkout-draft"),
          description="Limit result set to orders which have specific statuses."),
    Param("customer", "integer", description="Limit result set to orders assigned a specific customer."),
    Param("product", "integer", description="Limit result set to orders assigned a specific product."),
    Param("dp", "integer", default=2, description="Number of decimal points to use in each resource."),
)

SINGLE_PARAMS = (_CONTEXT,)

# ---------------------------------------------------------------------------- response headers
# Captured from the real store: which headers go with which kind of answer.

_COMMON = (
    ("Content-Type", "application/json; charset=UTF-8"),
    ("X-Robots-Tag", "noindex"),
    ("X-Content-Type-Options", "nosniff"),
    ("Access-Control-Expose-Headers", "X-WP-Total, X-WP-TotalPages, Link"),
    ("Access-Control-Allow-Headers", "Authorization, X-WP-Nonce, Content-Disposition, Content-MD5, Content-Type"),
)
_NO_CACHE = (
    ("Expires", "Wed, 11 Jan 1984 05:00:00 GMT"),
    ("Cache-Control", "no-cache, must-revalidate, max-age=0, no-store, private"),
)
ALLOW_COLLECTION = "GET, POST"
ALLOW_ITEM = "GET, POST, PUT, PATCH, DELETE"

_SINGLE_CUSTOMER = re.compile(r"^/wc/v3/customers/(\d+)$")
_SINGLE_ORDER = re.compile(r"^/wc/v3/orders/(\d+)$")
_WEBHOOKS = re.compile(r"^/wc/v3/webhooks(?:/(\d+))?$")
_CONTROL_CUSTOMER = re.compile(r"^/__simulator/customers/(\d+)$")
_CONTROL_ORDER = re.compile(r"^/__simulator/orders/(\d+)$")


class ResponseCache:
    """Serialized collection pages, least recently used dropped past `max_bytes`."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self.hits = 0
        self.misses = 0
        self._entries: collections.OrderedDict[tuple, tuple[bytes, int, int, int]] = collections.OrderedDict()

    def get(self, key: tuple) -> tuple[bytes, int, int, int] | None:
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry

    def put(self, key: tuple, entry: tuple[bytes, int, int, int]) -> bool:
        size = len(entry[0])
        if size > self.max_bytes:
            return False
        self._entries[key] = entry
        self.size += size
        while self.size > self.max_bytes:
            _, dropped = self._entries.popitem(last=False)
            self.size -= len(dropped[0])
        return True

    def full(self) -> bool:
        return self.size >= self.max_bytes * 0.95

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(slots=True)
class _Page:
    body: bytes
    total: int
    pages: int
    count: int


class Simulator:
    """The request pipeline. One per server process; holds the store, auth state and counters."""

    def __init__(
        self, store: SimulatedStore, config: SimulatorConfig, *, worker: int = 0, cache: ResponseCache | None = None
    ) -> None:
        self.store = store
        self.config = config
        self.worker = worker
        credentials = {} if config.refuse_credentials else {config.consumer_key: config.consumer_secret}
        self.auth = Authenticator(credentials, https=config.https_auth, nonce_capacity=config.nonce_memory)
        self.faults = FaultInjector(config, worker=worker)
        # A cache prewarmed by the supervisor before forking is shared copy-on-write by every worker.
        self.cache = cache if cache is not None else ResponseCache(config.cache_mb * 1024 * 1024)
        self.requests: collections.Counter[tuple[str, int]] = collections.Counter()
        self._store_orders: dict[tuple[str, ...], list] = {}  # see _orders_page
        self.started = time.time()
        self.webhooks = SimulatedWebhooks(site_url=lambda: self.site_url)  # woosync/simulator/webhooks.py

    # ------------------------------------------------------------------ plumbing

    @property
    def site_url(self) -> str:
        return self.store.base_url

    def _api_link(self) -> str:
        return f'<{self.site_url}/wp-json/>; rel="https://api.w.org/"'

    def _respond(self, status: int, body: bytes, *extra: tuple[str, str], link: str | None = None) -> web.Response:
        headers = dict(_COMMON)
        headers["Link"] = link or self._api_link()
        headers.update(extra)
        return web.Response(status=status, body=body, headers=headers)

    def _error(self, error: RestError, *, allow: str | None = None) -> web.Response:
        """An error answer with the headers the real store sends with it (401s differ)."""
        extra: list[tuple[str, str]] = []
        if error.status == 401:
            extra.append(("Vary", "Origin"))
        else:
            if allow:
                extra.append(("Allow", allow))
            extra.extend(_NO_CACHE)
        return self._respond(error.status, rest.wp_json(error.body()), *extra)

    def _count(self, route: str, response: web.StreamResponse) -> web.StreamResponse:
        self.requests[(route, response.status)] += 1
        return response

    # ------------------------------------------------------------------ the pipeline

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path == "/__simulator/stats":
            return web.json_response(self.stats())
        if match := _CONTROL_CUSTOMER.match(path):
            return await self._change_customer(request, int(match.group(1)))
        if match := _CONTROL_ORDER.match(path):
            return await self._change_order(request, int(match.group(1)))

        fault = self.faults.host_fault()
        if isinstance(fault, HostFault):
            headers = {"Content-Type": "text/html"}
            if fault.retry_after_s is not None:
                headers["Retry-After"] = str(fault.retry_after_s)
            return self._count("fault", web.Response(status=fault.status, body=fault.html(), headers=headers))
        if fault == PHP_FATAL:
            return self._count("fault", self._error(rest.critical_error()))

        if not (path == "/wp-json" or path.startswith("/wp-json/")):
            return self._count("other", web.Response(
                status=404, text="<!doctype html><title>Page not found</title><h1>Not Found</h1>",
                content_type="text/html"))
        route = path[len("/wp-json"):].rstrip("/") or "/"
        query = rest.php_query(request.query.items())

        auth = ANONYMOUS
        if route.startswith("/wc/"):
            scheme = "https" if self.config.https_auth else "http"
            site_urls = [f"{scheme}://{self.site_url.partition('://')[2]}", f"{scheme}://{request.host}"]
            auth = self.auth.authenticate(
                method=request.method,
                raw_path=request.raw_path.split("?", 1)[0],
                query=query,
                authorization=request.headers.get("Authorization"),
                site_urls=site_urls,
            )
            if auth.error is not None:
                await self.faults.delay()
                return self._count("auth", self._error(auth.error))

        if match := _WEBHOOKS.match(route):
            return self._count("webhooks", await self._webhooks_resource(request, match, query, auth))
        if request.method not in ("GET", "HEAD"):
            await self.faults.delay()
            return self._count("no_route", self._error(rest.no_route()))
        name, endpoint = self._route(route)
        try:
            response = await endpoint(query, auth)  # endpoints add their own latency
        except RestError as error:
            allow = None
            if error.status == 400:
                allow = ALLOW_ITEM if name in ("order", "customer") else ALLOW_COLLECTION
            await self.faults.delay()
            response = self._error(error, allow=allow)
        return self._count(name, response)

    async def _webhooks_resource(self, request: web.Request, match: re.Match[str], query: PhpQuery,
                                 auth: AuthOutcome) -> web.Response:
        """/wc/v3/webhooks[/<id>] (woosync/simulator/webhooks.py)."""
        webhook_id = int(match.group(1)) if match.group(1) else None
        allow = ALLOW_ITEM if webhook_id is not None else ALLOW_COLLECTION
        try:
            if not auth.authenticated:
                raise rest.cannot_view(listing=webhook_id is None)
            status, document = await self.webhooks.respond(request.method, webhook_id, dict(query), await request.read())
        except RestError as error:
            await self.faults.delay()
            return self._error(error, allow=allow if error.status != 401 else None)
        await self.faults.delay()
        extra = [("Location", f"{self.site_url}/wp-json/wc/v3/webhooks/{document['id']}")] if status == 201 else []
        return self._respond(status, rest.wp_json(document), *extra, ("Allow", allow), *_NO_CACHE)

    async def _change_customer(self, request: web.Request, customer_id: int) -> web.Response:
        """The simulator's control route: change (POST, a JSON object) or delete (DELETE) a customer,
        then deliver customer.updated or customer.deleted to the store's webhooks."""
        if not self.store.has_customer(customer_id) or self.webhooks.customer_deleted(customer_id):
            return web.json_response({"error": "no such customer"}, status=404)
        if request.method == "DELETE":
            results = await self.webhooks.delete_customer(customer_id)
        elif request.method == "POST":
            changes = await request.json()
            if not isinstance(changes, dict):
                return web.json_response({"error": "a JSON object of fields"}, status=400)
            results = await self.webhooks.change_customer(customer_id, self.store.customer(customer_id), changes)
        else:
            return web.json_response({"error": "POST or DELETE"}, status=405)
        return web.json_response({"deliveries": [{"webhook_id": r.webhook_id, "status": r.status} for r in results]})

    async def _change_order(self, request: web.Request, order_id: int) -> web.Response:
        """The simulator's control route: POST a JSON object of an order's changed fields (a
        refund, a new status); the order is served so from then on."""
        if request.method != "POST":
            return web.json_response({"error": "POST"}, status=405)
        changes = await request.json()
        if not isinstance(changes, dict):
            return web.json_response({"error": "a JSON object of fields"}, status=400)
        document = self.store.change_order(order_id, changes)
        if document is None:
            return web.json_response({"error": "no such order"}, status=404)
        self.cache = ResponseCache(self.cache.max_bytes)  # rendered pages may hold the old order
        self._store_orders = {}
        return web.json_response(document)

    def _route(self, route: str) -> tuple[str, Any]:
        """(route name, handler) for a path under /wp-json; WordPress' own routing."""
        if route == "/wc/v3/orders":
            return "orders", self.list_orders
        if route == "/wc/v3/customers":
            return "customers", self.list_customers
        if match := _SINGLE_ORDER.match(route):
            return "order", functools.partial(self.single_order, int(match.group(1)))
        if match := _SINGLE_CUSTOMER.match(route):
            return "customer", functools.partial(self.single_customer, int(match.group(1)))
        if route == "/wc/v3":
            return "index", self.namespace_index_response
        if route == "/":
            return "index", self.site_index_response
        if route == "/wc/v3/system_status":
            return "system_status", self.system_status
        return "no_route", self.no_route

    async def no_route(self, query: PhpQuery, auth: AuthOutcome) -> web.Response:
        raise rest.no_route()

    async def namespace_index_response(self, query: PhpQuery, auth: AuthOutcome) -> web.Response:
        return self._respond(200, rest.wp_json(self.namespace_index()), ("Allow", "GET"))

    async def site_index_response(self, query: PhpQuery, auth: AuthOutcome) -> web.Response:
        return self._respond(200, rest.wp_json(self.site_index()), ("Allow", "GET"))

    # ------------------------------------------------------------------ customers

    async def list_customers(self, query: PhpQuery, auth: AuthOutcome) -> web.Response:
        args = rest.validate(query, CUSTOMER_LIST_PARAMS)
        if not auth.authenticated:
            raise rest.cannot_view(listing=True)
        fields = _fields(query)
        key = _customers_key(args, fields)
        page = self.cache.get(key)
        if page is None:
            page = self._customers_page(args, fields)
            self.cache.put(key, (page.body, page.total, page.pages, page.count))
        else:
            page = _Page(*page)
        await self.faults.delay(page.count)
        link = rest.pagination_link(
            f"{self.site_url}/wp-json/wc/v3/customers", query, page=args["page"], max_pages=page.pages)
        return self._respond(
            200, page.body,
            ("X-WP-Total", str(page.total)), ("X-WP-TotalPages", str(page.pages)),
            ("Allow", ALLOW_COLLECTION), *_NO_CACHE,
            link=link,
        )

    def _customers_page(self, args: dict[str, Any], fields: tuple[str, ...] | None) -> _Page:
        store = self.store
        role = args["role"]
        orderby = "id" if args["orderby"] in ("include", "registered_date") else args["orderby"]
        ids: Sequence[int] = store.customers_sorted(role, orderby, args["order"])
        if args["email"] is not None:
            found = store.find_by_email(args["email"])
            ids = [found] if found is not None and (role == "all" or store.traits(found).role == role) else []
        if args["search"]:
            term = args["search"].strip("*")
            ids = [cid for cid in ids if store.search_matches(cid, term)]
        if args["include"]:
            wanted = set(args["include"])
            if args["orderby"] == "include":
                members = set(ids)
                ids = [cid for cid in dict.fromkeys(args["include"]) if cid in members]
            else:
                ids = [cid for cid in ids if cid in wanted]
        if args["exclude"]:
            unwanted = set(args["exclude"])
            ids = [cid for cid in ids if cid not in unwanted]
        total = len(ids)
        per_page = args["per_page"]
        start = args["offset"] if args["offset"] is not None else (args["page"] - 1) * per_page
        chosen = ids[start:start + per_page] if start >= 0 else []
        documents = [store.customer(cid) for cid in chosen]
        if fields:
            documents = [rest.filter_fields(doc, fields) for doc in documents]
        return _Page(rest.wp_json(documents), total, rest.total_pages(total, per_page), len(documents))

    async def single_customer(self, customer_id: int, query: PhpQuery, auth: AuthOutcome) -> web.Response:
        rest.validate(query, SINGLE_PARAMS)
        if not auth.authenticated:
            raise rest.cannot_view(listing=False)
        if not self.store.has_customer(customer_id) or self.webhooks.customer_deleted(customer_id):
            # The real store sends no Allow header with this one.
            await self.faults.delay()
            return self._error(RestError(404, "wc_user_invalid_id", "Invalid user ID."))
        document = self.webhooks.customer_document(customer_id, self.store.customer(customer_id))
        fields = _fields(query)
        await self.faults.delay()
        return self._respond(200, rest.wp_json(rest.filter_fields(document, fields) if fields else document),
                             ("Allow", ALLOW_ITEM), *_NO_CACHE)

    # ------------------------------------------------------------------ orders

    async def list_orders(self, query: PhpQuery, auth: AuthOutcome) -> web.Response:
        args = rest.validate(query, ORDER_LIST_PARAMS)
        if not auth.authenticated:
            raise rest.cannot_view(listing=True)
        customer = args["customer"]
        if customer is not None and self.config.orders_fail_for(customer):
            await self.faults.delay()
            return self._error(rest.critical_error())
        fields = _fields(query)
        key = _orders_key(args, fields)
        page = self.cache.get(key)
        if page is None:
            page = self._orders_page(args, fields)
            self.cache.put(key, (page.body, page.total, page.pages, page.count))
        else:
            page = _Page(*page)
        await self.faults.delay(page.count)
        link = orders_pagination_link(f"{self.site_url}/wp-json/wc/v3/orders", query, args,
                                      max_pages=page.pages, rendered=page.count > 0)
        return self._respond(
            200, page.body,
            ("X-WP-Total", str(page.total)), ("X-WP-TotalPages", str(page.pages)),
            ("Allow", ALLOW_COLLECTION), *_NO_CACHE,
            link=link,
        )

    def _orders_page(self, args: dict[str, Any], fields: tuple[str, ...] | None) -> _Page:
        store = self.store
        offset_s = store.gmt_offset_seconds
        gmt = args["dates_are_gmt"]
        statuses = set(args["status"])
        if "any" in statuses:
            statuses = set(ORDER_STATUSES)
        if args["customer"] is None and statuses == _ALL_STATUSES and args["orderby"] == "id" \
                and not any(args[name] for name in _ID_PAGE_FILTERS):
            return self._orders_page_by_id(args, fields)

        def stamp(name: str) -> int | None:
            moment = args[name]
            return None if moment is None else rest.as_utc_timestamp(moment, offset_s, naive_is_gmt=gmt)

        after, before = stamp("after"), stamp("before")
        modified_after, modified_before = stamp("modified_after"), stamp("modified_before")

        customer = args["customer"]
        if customer is not None:
            candidates = [(ts, doc["id"], doc) for ts, doc in store.order_entries(customer) if doc["status"] in statuses]
        else:
            # The store's orders of these statuses, kept between requests: a bulk sync pages them
            # all, and filtering 10^5 orders for each page would make the stand-in store the
            # bottleneck. Every path below sorts or copies, so one shared list is safe.
            key = tuple(sorted(statuses))
            candidates = self._store_orders.get(key)
            if candidates is None:
                candidates = [(ts, order_id, None) for ts, order_id, _, status in store.all_orders_index()
                              if status in statuses]
                self._store_orders[key] = candidates
        if args["include"]:
            wanted = set(args["include"])
            candidates = [c for c in candidates if c[1] in wanted]
        if args["exclude"]:
            unwanted = set(args["exclude"])
            candidates = [c for c in candidates if c[1] not in unwanted]
        if after is not None:
            candidates = [c for c in candidates if c[0] > after]
        if before is not None:
            candidates = [c for c in candidates if c[0] < before]

        needs_documents = (modified_after is not None or modified_before is not None or args["product"] is not None
                           or args["search"] or args["orderby"] == "modified")
        # A sweep's pages of orders modified since: the filtered list is kept between its pages
        # (filtering means generating the orders' documents), until an order changes.
        filtered_key = ("filtered", customer, *sorted(statuses), *(repr(args[name]) for name in _FILTERS))
        keep = modified_after is not None or modified_before is not None
        if keep and (cached := self._store_orders.get(filtered_key)) is not None:
            candidates, needs_documents = cached, False
        elif needs_documents and modified_after is not None \
                and (modifiable := store.orders_modifiable_after(modified_after)) is not None:
            candidates = [c for c in candidates if c[1] in modifiable]
        if needs_documents:
            candidates = [(ts, oid, doc if doc is not None else store.order(oid)) for ts, oid, doc in candidates]
            if modified_after is not None:
                candidates = [c for c in candidates if _gmt_ts(c[2]["date_modified_gmt"]) > modified_after]
            if modified_before is not None:
                candidates = [c for c in candidates if _gmt_ts(c[2]["date_modified_gmt"]) < modified_before]
            if args["product"] is not None:
                candidates = [c for c in candidates
                              if any(item["product_id"] == args["product"] for item in c[2]["line_items"])]
            if args["search"]:
                term = args["search"].lower()
                candidates = [c for c in candidates if term in _order_search_text(c[2])]
            if keep:
                self._store_orders[filtered_key] = candidates

        orderby, descending = args["orderby"], args["order"] == "desc"
        if orderby == "id":
            candidates.sort(key=lambda c: c[1], reverse=descending)
        elif orderby == "include" and args["include"]:
            position = {order_id: i for i, order_id in enumerate(args["include"])}
            candidates.sort(key=lambda c: position[c[1]])
        elif orderby == "modified":
            candidates.sort(key=lambda c: (c[2]["date_modified_gmt"], c[1]), reverse=descending)
        else:  # date (title and slug sort like date on orders)
            candidates.sort(key=lambda c: (c[0], c[1]), reverse=descending)

        per_page = args["per_page"]
        start = args["offset"] if args["offset"] is not None else (args["page"] - 1) * per_page
        chosen = candidates[start:start + per_page] if start >= 0 else []
        documents = [doc if doc is not None else store.order(oid) for _, oid, doc in chosen]
        if fields:
            documents = [rest.filter_fields(doc, fields) for doc in documents]
        if not documents:
            # WooCommerce reports X-WP-Total: 0 and X-WP-TotalPages: 0 on any empty orders page,
            # even past the last page of a customer who has orders.
            return _Page(b"[]", 0, 0, 0)
        total = len(candidates)
        return _Page(rest.wp_json(documents), total, rest.total_pages(total, per_page), len(documents))

    def _orders_page_by_id(self, args: dict[str, Any], fields: tuple[str, ...] | None) -> _Page:
        """A page of every order in id order (a bulk sync's pages) without the store-wide index:
        order ids are dense (`SimulatedStore.order_id_at`), so page N is N's slice of the id range.
        Keeps a 1,000,000-customer store's pages as cheap as a small store's."""
        store = self.store
        total = store.order_total
        per_page = args["per_page"]
        start = args["offset"] if args["offset"] is not None else (args["page"] - 1) * per_page
        if start < 0 or start >= total:
            return _Page(b"[]", 0, 0, 0)
        indexes = range(start, min(start + per_page, total))
        if args["order"] == "desc":
            indexes = range(total - 1 - indexes.start, total - 1 - indexes.stop, -1)
        documents = [store.order(store.order_id_at(index)) for index in indexes]
        if fields:
            documents = [rest.filter_fields(doc, fields) for doc in documents]
        return _Page(rest.wp_json(documents), total, rest.total_pages(total, per_page), len(documents))

    async def single_order(self, order_id: int, query: PhpQuery, auth: AuthOutcome) -> web.Response:
        rest.validate(query, SINGLE_PARAMS)
        if not auth.authenticated:
            raise rest.cannot_view(listing=False)
        document = self.store.order(order_id)
        if document is None or self.config.orders_fail_for(document["customer_id"]):
            await self.faults.delay()
            if document is None:
                return self._error(RestError(404, "woocommerce_rest_shop_order_invalid_id", "Invalid ID."),
                                   allow=ALLOW_ITEM)
            return self._error(rest.critical_error())
        fields = _fields(query)
        await self.faults.delay()
        return self._respond(200, rest.wp_json(rest.filter_fields(document, fields) if fields else document),
                             ("Allow", ALLOW_ITEM), *_NO_CACHE)

    # ------------------------------------------------------------------ discovery

    def _route_description(self, path: str, methods: Sequence[str], params: Sequence[Param],
                           link: bool = True) -> dict[str, Any]:
        described: dict[str, Any] = {
            "namespace": "wc/v3",
            "methods": list(methods),
            "endpoints": [{"methods": ["GET"], "args": {p.name: p.schema() for p in params}}],
        }
        if link:
            described["_links"] = {"self": [{"href": f"{self.site_url}/wp-json{path}"}]}
        return described

    def namespace_index(self) -> dict[str, Any]:
        """GET /wp-json/wc/v3: the namespace and its routes (no authentication needed)."""
        namespace_args = [Param("namespace", "string", default="wc/v3"), _CONTEXT]
        return {
            "namespace": "wc/v3",
            "routes": {
                "/wc/v3": self._route_description("/wc/v3", ["GET"], namespace_args),
                "/wc/v3/customers": self._route_description("/wc/v3/customers", ["GET", "POST"], CUSTOMER_LIST_PARAMS),
                "/wc/v3/customers/(?P<id>[\\d]+)": self._route_description(
                    "", ["GET", "POST", "PUT", "PATCH", "DELETE"], SINGLE_PARAMS, link=False),
                "/wc/v3/orders": self._route_description("/wc/v3/orders", ["GET", "POST"], ORDER_LIST_PARAMS),
                "/wc/v3/orders/(?P<id>[\\d]+)": self._route_description(
                    "", ["GET", "POST", "PUT", "PATCH", "DELETE"], SINGLE_PARAMS, link=False),
                "/wc/v3/system_status": self._route_description("/wc/v3/system_status", ["GET"], SINGLE_PARAMS),
            },
            "_links": {"up": [{"href": f"{self.site_url}/wp-json/"}]},
        }

    def site_index(self) -> dict[str, Any]:
        """GET /wp-json/: the WordPress site description a store check can look for `wc/v3` in."""
        return {
            "name": "woosync simulated store",
            "description": "A synthetic WooCommerce store",
            "url": self.site_url,
            "home": self.site_url,
            "gmt_offset": _php_number(self.store.gmt_offset_hours),
            "timezone_string": "",
            "page_for_posts": 0,
            "page_on_front": 0,
            "show_on_front": "posts",
            "namespaces": ["wc/v3"],
            "authentication": [],
            "routes": {
                "/": {"namespace": "", "methods": ["GET"], "endpoints": [{"methods": ["GET"], "args": {}}],
                      "_links": {"self": [{"href": f"{self.site_url}/wp-json/"}]}},
                **self.namespace_index()["routes"],
            },
            "site_logo": 0,
            "site_icon": 0,
            "site_icon_url": "",
            "_links": {"help": [{"href": "https://developer.wordpress.org/rest-api/"}]},
        }

    async def system_status(self, query: PhpQuery, auth: AuthOutcome) -> web.Response:
        rest.validate(query, SINGLE_PARAMS)
        if not auth.authenticated:
            raise rest.cannot_view(listing=True)
        document = {
            "environment": {
                "home_url": self.site_url,
                "site_url": self.site_url,
                "store_id": f"woosync-simulator-{self.store.seed}",
                "version": WOOCOMMERCE_VERSION,
                "wp_version": "6.8.8",
                "wp_multisite": False,
                "wp_memory_limit": 268435456,
                "wp_debug_mode": False,
                "wp_cron": True,
                "language": "en_US",
                "external_object_cache": None,
                "server_info": "woosync-simulator",
                "php_version": "8.2.36",
                "max_upload_size": 2097152,
                "default_timezone": "UTC",
                "secure_connection": self.config.https_auth,
                "hide_errors": True,
            },
            "database": {"wc_database_version": WOOCOMMERCE_VERSION, "database_prefix": "wp_"},
            "active_plugins": [{
                "plugin": "woocommerce/woocommerce.php", "name": "WooCommerce", "version": WOOCOMMERCE_VERSION,
                "version_latest": WOOCOMMERCE_VERSION, "url": "https://woocommerce.com/",
                "author_name": "Automattic", "author_url": "https://woocommerce.com", "network_activated": False,
            }],
            "inactive_plugins": [],
            "settings": {
                "api_enabled": True,
                "force_ssl": False,
                "currency": "USD",
                "currency_symbol": "$",
                "currency_position": "left",
                "thousand_separator": ",",
                "decimal_separator": ".",
                "number_of_decimals": 2,
                "geolocation_enabled": False,
                "taxonomies": {"external": "external", "grouped": "grouped", "simple": "simple", "variable": "variable"},
                "woocommerce_com_connected": "no",
                "enforce_approved_download_dirs": True,
                "order_datastore": "Automattic\\WooCommerce\\Internal\\DataStores\\Orders\\OrdersTableDataStore",
                "HPOS_enabled": True,
                "HPOS_sync_enabled": False,
            },
            "security": {"secure_connection": self.config.https_auth, "hide_errors": True},
            "pages": [],
            "post_type_counts": [{"type": "shop_order", "count": str(self.store.customer_order_total)}],
        }
        return self._respond(200, rest.wp_json(document), ("Allow", "GET"), *_NO_CACHE)

    # ------------------------------------------------------------------ observability

    def stats(self) -> dict[str, Any]:
        by_route: dict[str, dict[str, int]] = {}
        for (route, status), count in sorted(self.requests.items()):
            by_route.setdefault(route, {})[str(status)] = count
        return {
            "pid": os.getpid(),
            "worker": self.worker,
            "uptime_s": round(time.time() - self.started, 3),
            "requests": sum(self.requests.values()),
            "rate": self.faults.rate_stats(),
            "by_route": by_route,
            "cache": {"entries": len(self.cache), "bytes": self.cache.size, "hits": self.cache.hits,
                      "misses": self.cache.misses},
            "store": store_summary(self.store),
            "site_url": self.site_url,
        }

    def prewarm(self) -> int:
        """Render what a sync asks for (the customer pages, the store's order pages, every
        customer's first orders page).

        Keys match the producer's `per_page=100&orderby=id&order=asc&role=all` customer pages and
        `per_page=100&orderby=id&order=asc&_fields=<ORDER_FIELDS>` order pages (a bulk sync), and a
        woosync consumer's `customer=ID&per_page=100&_fields=<ORDER_FIELDS>` orders request.
        Stops when the cache is full (logged).
        """
        from shared.mapping import ORDER_FIELDS

        rendered = 0
        order_args = rest.validate({"per_page": "100"}, ORDER_LIST_PARAMS)
        customer_args = rest.validate({"per_page": "100", "orderby": "id", "order": "asc", "role": "all"},
                                      CUSTOMER_LIST_PARAMS)
        pages = rest.total_pages(self.store.customer_count, 100)
        for page_number in range(1, pages + 1):
            args = {**customer_args, "page": page_number}
            page = self._customers_page(args, None)
            if not self.cache.put(_customers_key(args, None), (page.body, page.total, page.pages, page.count)) or self.cache.full():
                return rendered
            rendered += 1
        bulk_args = rest.validate({"per_page": "100", "orderby": "id", "order": "asc"}, ORDER_LIST_PARAMS)
        order_total = self.store.order_total
        for page_number in range(1, rest.total_pages(order_total, 100) + 1):
            args = {**bulk_args, "page": page_number}
            page = self._orders_page(args, ORDER_FIELDS)
            if not self.cache.put(_orders_key(args, ORDER_FIELDS), (page.body, page.total, page.pages, page.count)) or self.cache.full():
                return rendered
            rendered += 1
        for customer_id in self.store.customer_ids("all"):
            args = {**order_args, "customer": customer_id}
            page = self._orders_page(args, ORDER_FIELDS)
            if not self.cache.put(_orders_key(args, ORDER_FIELDS), (page.body, page.total, page.pages, page.count)) or self.cache.full():
                log.warning("prewarm stopped at customer %d of %d: the response cache is full (%d MB); "
                            "raise --cache-mb to hold every page", customer_id, self.store.customer_count,
                            self.cache.max_bytes // (1024 * 1024))
                break
            rendered += 1
        return rendered


def orders_pagination_link(
    collection_url: str, query: PhpQuery, args: dict[str, Any], *, max_pages: int, rendered: bool
) -> str | None:
    """The orders Link header. WooCommerce writes the sanitized `status` array, and once it has
    rendered an order `dp` and `context`, back into the request: they reappear at the end."""
    appended: list[tuple[str, rest.PhpValue]] = [
        ("status", {str(i): status for i, status in enumerate(args["status"])})]
    if rendered:
        appended += [("dp", str(args["dp"])), ("context", args["context"])]
    echoed = {name: value for name, value in query.items() if name != "status"}
    return rest.pagination_link(collection_url, echoed, page=args["page"], max_pages=max_pages, appended=appended)


def _customers_key(args: dict[str, Any], fields: tuple[str, ...] | None) -> tuple:
    return ("customers", args["role"], args["orderby"], args["order"], args["email"], args["search"],
            tuple(args["include"]), tuple(args["exclude"]), args["offset"], args["page"], args["per_page"], fields)


# The order listing's arguments that choose which orders (not their page or order).
_FILTERS = ("include", "exclude", "after", "before", "modified_after", "modified_before", "dates_are_gmt", "product",
            "search")
# Any of these set keeps a listing off the id-order fast path (`_orders_page_by_id`).
_ID_PAGE_FILTERS = tuple(name for name in _FILTERS if name != "dates_are_gmt")
_ALL_STATUSES = frozenset(ORDER_STATUSES)


def _orders_key(args: dict[str, Any], fields: tuple[str, ...] | None) -> tuple:
    return ("orders", args["customer"], tuple(sorted(set(args["status"]))), args["orderby"], args["order"],
            args["page"], args["per_page"], args["offset"], tuple(args["include"]), tuple(args["exclude"]),
            args["after"], args["before"], args["modified_after"], args["modified_before"], args["dates_are_gmt"],
            args["product"], args["search"], fields)


def _fields(query: PhpQuery) -> tuple[str, ...] | None:
    raw = query.get("_fields")
    if raw is None:
        return None
    values = raw.values() if isinstance(raw, dict) else raw.split(",")
    fields = tuple(field.strip() for field in values if field.strip())
    return fields or None


def _gmt_ts(text: str) -> int:
    """Seconds since the epoch of a WordPress `_gmt` date ("2026-11-22T06:25:09")."""
    return calendar.timegm((int(text[0:4]), int(text[5:7]), int(text[8:10]),
                            int(text[11:13]), int(text[14:16]), int(text[17:19]), 0, 0, 0))


def _order_search_text(document: dict[str, Any]) -> str:
    billing = document["billing"]
    return " ".join((str(document["id"]), billing.get("first_name", ""), billing.get("last_name", ""),
                     billing.get("email", ""), *(item["name"] for item in document["line_items"]))).lower()


def _php_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


# ---------------------------------------------------------------------------- application and server


def build_app(
    store: SimulatedStore, config: SimulatorConfig, *, worker: int = 0, cache: ResponseCache | None = None
) -> web.Application:
    """The aiohttp application answering every path (WordPress does its own routing)."""
    simulator = Simulator(store, config, worker=worker, cache=cache)
    app = web.Application(handler_args={"max_field_size": 65536})
    app[SIMULATOR] = simulator
    app.router.add_route("*", "/{tail:.*}", simulator.handle)
    return app


class RunningSimulator:
    """A simulator listening in this process; `url` is its site URL. Use `async with` or `stop()`."""

    def __init__(self, runner: web.AppRunner, app: web.Application, url: str, host: str, port: int) -> None:
        self.runner = runner
        self.app = app
        self.url = url
        self.host = host
        self.port = port
        self._reporter: asyncio.Task | None = None

    @property
    def simulator(self) -> Simulator:
        return self.app[SIMULATOR]

    async def stop(self) -> None:
        if self._reporter is not None:
            self._reporter.cancel()
            try:
                await self._reporter
            except asyncio.CancelledError:
                pass
        await self.runner.cleanup()

    async def __aenter__(self) -> RunningSimulator:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


def site_url(config: SimulatorConfig, port: int) -> str:
    """The store's URL: --public-url, else where it listens (a wildcard address shown as loopback)."""
    return config.public_url or f"http://{_display_host(config.host)}:{port}"


def _display_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


async def serve(
    store: SimulatedStore,
    config: SimulatorConfig,
    *,
    worker: int = 0,
    reuse_port: bool = False,
    report_every_s: float = 0.0,
    cache: ResponseCache | None = None,
) -> RunningSimulator:
    """Start the simulator on config.host:config.port (0 = a free port) and return once listening.

    Sets `store.base_url` to `config.public_url`, or to the address it listens on, so that
    `store.customer()` / `store.orders_for()` return exactly what the HTTP API serves.
    With `config.prewarm` (and no prewarmed `cache` given) it renders what a sync asks for first.
    """
    app = build_app(store, config, worker=worker, cache=cache)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    sock = socket.socket(socket.AF_INET6 if ":" in config.host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((config.host, config.port))
    except OSError as exc:
        sock.close()
        await runner.cleanup()
        raise OSError(exc.errno, f"cannot listen on {config.host}:{config.port}: {exc.strerror}") from None
    port = sock.getsockname()[1]
    store.base_url = site_url(config, port)
    simulator: Simulator = app[SIMULATOR]
    if config.prewarm and cache is None:
        started = time.perf_counter()
        rendered = await asyncio.get_running_loop().run_in_executor(None, simulator.prewarm)
        log.info("prewarmed %d pages (%.1f MB) in %.1fs", rendered, simulator.cache.size / 1e6,
                 time.perf_counter() - started)
    site = web.SockSite(runner, sock, backlog=1024)
    await site.start()
    running = RunningSimulator(runner, app, store.base_url, config.host, port)
    if report_every_s > 0:
        running._reporter = asyncio.create_task(_report(simulator, report_every_s))
    return running


async def _report(simulator: Simulator, every_s: float) -> None:
    """One log line per interval with traffic, so a run shows what the store went through."""
    previous: collections.Counter[tuple[str, int]] = collections.Counter()
    while True:
        await asyncio.sleep(every_s)
        current = collections.Counter(simulator.requests)
        delta = current - previous
        previous = current
        served = sum(delta.values())
        if not served:
            continue
        by_status: collections.Counter[int] = collections.Counter()
        for (_, status), count in delta.items():
            by_status[status] += count
        statuses = ", ".join(f"{status}: {count}" for status, count in sorted(by_status.items()))
        log.info("served %d requests in %.0fs (%.0f/s; %s)", served, every_s, served / every_s, statuses)
