"""The page worker: every producer runs one, and together they read and record the pages of
every full sync (docs/architecture.md "Page work"; the pages are rows of woo_sync_page,
sql/014_page_work.sql).

A round: finish the syncs whose pages are all done -> lease pages, the sync served least
recently first, at most WOOSYNC_SYNC_PAGES_IN_FLIGHT of one sync across the fleet and
WOOSYNC_PRODUCER_PAGES_IN_FLIGHT here -> read each page in a task of its own and record its rows
and the page done in one transaction. Rounds run whenever a page ends, and at least every
fraction of a second (another producer's request may have recorded new pages). Leases are renewed
while their pages are worked on; a killed producer's expire and another producer takes them.
The plan's counters follow every second, outside the pages' transactions.

A page the store fails (after the client's own tries) goes back to pending and is tried again,
by any producer; at WOOSYNC_PAGE_MAX_FAILURES failures, or at once when the store refuses it for
good (a 4xx), the sync's enumeration ends failed (is_action_required).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar
from uuid import UUID

import asyncpg

from shared.db import translate_db_error
from shared.errors import PermanentError, RetryableError, StoreUnavailable
from shared.mapping import ORDER_FIELDS, InvalidOrder, mirror_order
from shared.metrics import Metrics
from shared.outage import wait_out_database_outage
from shared.repository import enumeration, orders, queue_lines, stores
from shared.repository.enumeration import ClaimedPage
from shared.settings import Settings
from shared.woocommerce.budget import FleetBudgets
from shared.woocommerce.client import MAX_PER_PAGE, CustomerPage, OrdersPage, WooCommerceClient
from shared.woocommerce.credentials import StoreCredentials

log = logging.getLogger(__name__)
T = TypeVar("T")

# A sync's pass over a kind of pages is read again when the store's count fell meanwhile (rows
# slid onto pages already read), at most this many passes in all.
MAX_PASSES = 4
# Idle, a worker looks for new pages this often (pages recorded by another producer's handler).
_IDLE_POLL_S = 0.2
# After a page ends, the round waits this long for others ending about then: one claim for them all.
_GATHER_S = 0.005
_FLUSH_EVERY_S = 1.0
_FINISH_EVERY_S = 0.05
# Page requests wait out a store that said slow down for this long in all (a hold is at most 15
# minutes): listing cannot go on without the store anyway. The lease is renewed meanwhile.
_HOLD_PATIENCE_S = 3600.0
# A store's client unused this long is closed.
_CLIENT_IDLE_S = 120.0


def producer_identity() -> str:
    """This producer among the fleet, as woo_sync_page.taken_by records it: host, process, and a
    random part (a restarted container may get the same process id)."""
    return f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(3)}"


class _NotOurs(Exception):
    """The page was done (or dropped) by the time its rows were to be recorded: roll them back."""


class PageWorker:
    def __init__(self, pool: asyncpg.Pool, settings: Settings, metrics: Metrics, budgets: FleetBudgets, *,
                 producer_id: str | None = None,
                 client_factory: Callable[..., WooCommerceClient] = WooCommerceClient) -> None:
        self._pool = pool
        self._settings = settings
        self._metrics = metrics
        self._budgets = budgets
        self._client_factory = client_factory
        self.producer_id = producer_id or producer_identity()
        self._capacity = settings.producer_pages_in_flight
        self._per_sync = settings.sync_pages_in_flight
        self._lease_s = settings.page_lease_s
        self._max_failures = settings.page_max_failures
        self._working: dict[tuple[UUID, str, int], tuple[ClaimedPage, asyncio.Task[None]]] = {}
        self._clients: dict[UUID, tuple[float, WooCommerceClient, StoreCredentials]] = {}
        self._clients_lock = asyncio.Lock()
        self._touched: set[UUID] = set()  # queues with pages recorded since the last flush
        # (queue, kind) -> the page count this worker has made sure is recorded.
        self._pages_known: dict[tuple[UUID, str], int] = {}
        self._wake = asyncio.Event()
        self._next_flush = 0.0
        self._next_renewal = 0.0
        self._next_finish = 0.0
        self._pages_ended = False

    async def run(self, stop: asyncio.Event) -> None:
        """Rounds until `stop`, then the pages in hand get the drain time to finish; those that do
        not are given back, pending, for another producer. A round that fails (database away) is
        logged and the next one tries again: pages wait, pending or leased."""
        log.info("page worker %s running: %d pages at once, %d per sync across the fleet, leases of %.0f s",
                 self.producer_id, self._capacity, self._per_sync, self._lease_s)
        try:
            while not stop.is_set():
                self._wake.clear()
                try:
                    await self.round()
                except Exception as exc:
                    # Like the dispatcher's: the worker must outlive anything one round meets.
                    if translate_db_error(exc) is not None or isinstance(exc, (OSError, asyncio.TimeoutError, RetryableError)):
                        log.warning("page round stopped (%s): the next round tries again", exc)
                    else:
                        log.exception("page round failed unexpectedly: the next round tries again")
                    await _wait_for(stop, 1.0)
                    continue
                await _wait_for_any(stop, self._wake, _IDLE_POLL_S)
                if self._wake.is_set():
                    await asyncio.sleep(_GATHER_S)
        finally:
            await self._drain(self._settings.drain_timeout_s)

    async def round(self) -> int:
        """Finish what is complete, lease what there is room for; returns the pages leased."""
        now = time.monotonic()
        # Syncs whose pages are all done: looked for soon after a page of this worker ended, and
        # every second (another producer's last page, or one that died finishing).
        if (self._pages_ended and now >= self._next_finish) or now >= self._next_flush:
            self._pages_ended = False
            self._next_finish = now + _FINISH_EVERY_S
            while (finished := await enumeration.finish_next(self._pool, max_passes=MAX_PASSES)) is not None:
                self._log_finished(finished)
        leased = await self._lease()
        if now >= self._next_renewal:
            self._next_renewal = now + self._lease_s / 3
            await enumeration.renew_leases(self._pool, [page for page, _ in self._working.values()],
                                           taken_by=self.producer_id, lease_s=self._lease_s)
        if now >= self._next_flush:
            self._next_flush = now + _FLUSH_EVERY_S
            await enumeration.page_worker_heartbeat(self._pool, self.producer_id,
                                                    room=self._capacity - len(self._working))
            await self.flush()
            await self._close_idle_clients(now)
        return leased

    async def flush(self) -> None:
        """The plan's counters of the syncs this worker recorded pages of, brought up to date."""
        touched, self._touched = self._touched, set()
        try:
            await enumeration.flush_page_counts(self._pool, touched)
        except BaseException:
            self._touched |= touched
            raise

    async def _lease(self) -> int:
        room = self._capacity - len(self._working)
        served: list[UUID] = []
        leased = 0
        while room > 0:
            taken = await enumeration.claim_pages(self._pool, taken_by=self.producer_id, room=room,
                                                  per_sync=self._per_sync, lease_s=self._lease_s, skip=served)
            if taken is None:
                break
            queue_id, pages = taken
            served.append(queue_id)
            for page in pages:
                task = asyncio.create_task(self._work(page), name=f"page {page.kind} {page.page} of {queue_id}")
                self._working[page.key] = (page, task)
            room -= len(pages)
            leased += len(pages)
        return leased

    async def _work(self, page: ClaimedPage) -> None:
        """Read the page and record it; whatever happens, the page ends done, pending again, or
        its sync failed, and the worker hears that a place is free."""
        try:
            client = await self._client(page.work.store_id)
            if page.kind == "customers":
                answer: CustomerPage | OrdersPage = await client.customers_page(page.page, role=page.work.role)
            else:
                answer = await client.orders_page(page.page, fields=ORDER_FIELDS)
            await self._db(self._record, page, answer)
            self._touched.add(page.work.queue_id)
        except asyncio.CancelledError:
            # The producer is stopping: the page is given back at once instead of after its lease.
            with contextlib.suppress(Exception):
                await asyncio.shield(self._db(enumeration.release_page, page, taken_by=self.producer_id))
            raise
        except _NotOurs:
            log.info("queue %s: %s page %d was done by another producer (or its sync ended): its answer is dropped",
                     page.work.queue_id, page.kind, page.page)
        except PermanentError as exc:  # the store refuses the page: asking again cannot help
            await self._fail_sync(page, f"{page.kind} page {page.page}: {exc}")
        except StoreUnavailable as exc:
            await self._store_failed(page, exc)
        except Exception as exc:
            if translate_db_error(exc) is not None or isinstance(exc, (RetryableError, OSError)):
                log.warning("queue %s: %s page %d not recorded (%s): given back for another try",
                            page.work.queue_id, page.kind, page.page, exc)
                with contextlib.suppress(Exception):
                    await self._db(enumeration.release_page, page, taken_by=self.producer_id)
            else:
                log.exception("queue %s: %s page %d failed unexpectedly", page.work.queue_id, page.kind, page.page)
                await self._store_failed(page, exc)
        finally:
            self._working.pop(page.key, None)
            self._pages_ended = True
            self._wake.set()

    async def _record(self, conn: asyncpg.Connection, page: ClaimedPage, answer: CustomerPage | OrdersPage) -> None:
        """One transaction: the page marked done first (its row locked before the lines' and the
        queue's), then any pages past those recorded, then its rows."""
        rows = answer.customers if isinstance(answer, CustomerPage) else answer.orders
        work = page.work
        mirrored = _mirrored(page, rows) if page.kind == "orders" else []
        async with conn.transaction():
            # finish_page also lets this transaction commit without waiting for the disk (why
            # that is safe: its docstring).
            recorded = rows
            if page.kind == "customers" and work.customer_limit is not None:
                recorded = rows[: max(work.customer_limit - (page.page - 1) * MAX_PER_PAGE, 0)]
            if not await enumeration.finish_page(conn, page, taken_by=self.producer_id, row_count=len(recorded),
                                                 store_total=answer.total if rows else None):
                raise _NotOurs
            # Pages past those recorded (only when the answer says more than this worker has
            # already added), before the rows: a customer page's lines then hold the queue row,
            # through its counts' trigger, as briefly as can be.
            pages = _page_count(answer, rows)
            if page.kind == "customers" and work.customer_page_cap is not None and pages is not None:
                pages = min(pages, work.customer_page_cap)
            extended = None
            if pages is not None and pages > max(page.page, self._pages_known.get((work.queue_id, page.kind), 0)):
                await enumeration.extend_pages(conn, work.queue_id, page.kind, pages)
                extended = pages
            if page.kind == "customers":
                await queue_lines.add_lines(conn, queue_id=work.queue_id, org_id=work.org_id,
                                            customers=[(int(c["id"]), c) for c in recorded])
            else:
                await orders.record_orders(conn, store_id=work.store_id, org_id=work.org_id,
                                           orders=mirrored, queue_id=work.queue_id)
        if extended is not None:
            if len(self._pages_known) > 10_000:  # syncs long finished
                self._pages_known.clear()
            key = (work.queue_id, page.kind)
            self._pages_known[key] = max(extended, self._pages_known.get(key, 0))

    async def _store_failed(self, page: ClaimedPage, exc: Exception) -> None:
        error = f"{page.kind} page {page.page}: {type(exc).__name__}: {exc}"[:500]
        failures = await self._db(enumeration.release_page, page, taken_by=self.producer_id, error=error)
        if failures is None:
            return  # no longer ours: another producer has it, or the sync ended
        if failures >= self._max_failures:
            await self._fail_sync(page, f"{error} (failed {failures} times)")
        else:
            log.warning("queue %s: %s (failure %d of %d): the page will be read again",
                        page.work.queue_id, error, failures, self._max_failures)

    async def _fail_sync(self, page: ClaimedPage, error: str) -> None:
        if await self._db(enumeration.fail_page_work, page.work.queue_id, page.work.org_id, error):
            log.warning("queue %s: enumeration stopped, the sync fails (is_action_required): %s",
                        page.work.queue_id, error)

    def _log_finished(self, finished: enumeration.Finished) -> None:
        if finished.outcome == "read_again":
            log.info("queue %s: the store's %s count fell while it was paged: reading every page again",
                     finished.queue_id, " and ".join(finished.kinds))
        elif finished.outcome == "cancelled":
            log.info("queue %s: cancelled during its enumeration: its pages not done are dropped", finished.queue_id)
        else:
            log.info("queue %s: every page done, enumeration finished (%d orders gone since the last pass)",
                     finished.queue_id, finished.orders_gone)

    async def _client(self, store_id: UUID) -> WooCommerceClient:
        """The store's client, shared by its pages here; credentials re-read after
        WOOSYNC_STORE_CACHE_TTL_S so that updated ones take effect."""
        now = time.monotonic()
        entry = self._clients.get(store_id)
        if entry and now - entry[0] < self._settings.store_cache_ttl_s:
            return entry[1]
        async with self._clients_lock:
            entry = self._clients.get(store_id)
            if entry and now - entry[0] < self._settings.store_cache_ttl_s:
                return entry[1]
            url, key, secret = await self._db(stores.load_store_credentials, store_id,
                                              cipher=self._settings.credentials_cipher)
            credentials = StoreCredentials(url=url, consumer_key=key, consumer_secret=secret,
                                           auth=self._settings.store_auth)
            if entry and entry[2] == credentials:
                self._clients[store_id] = (now, entry[1], credentials)
                return entry[1]
            client = self._client_factory(
                credentials, timeout_s=self._settings.store_timeout_s, max_tries=self._settings.store_max_tries,
                budget=self._budgets.for_store(url), hold_patience_s=_HOLD_PATIENCE_S,
                max_in_flight=self._settings.store_concurrency, metrics=self._metrics,
                allowed_networks=self._settings.store_allowed_networks,
                max_response_bytes=self._settings.store_max_response_bytes)
            if entry:  # pages still reading with the old client finish first
                old = entry[1]
                asyncio.get_running_loop().call_later(60, lambda: asyncio.ensure_future(old.aclose()))
            self._clients[store_id] = (now, client, credentials)
            return client

    async def _close_idle_clients(self, now: float) -> None:
        busy = {page.work.store_id for page, _ in self._working.values()}
        idle = [sid for sid, (used, _, _) in self._clients.items() if sid not in busy and now - used > _CLIENT_IDLE_S]
        for store_id in idle:
            _, client, _ = self._clients.pop(store_id)
            await client.aclose()

    async def _drain(self, timeout_s: float) -> None:
        """Pages in hand finish within `timeout_s`; the rest are cancelled and given back."""
        tasks = [task for _, task in self._working.values()]
        if tasks:
            log.info("page worker stopping: %d pages in hand get %.0f s to finish", len(tasks), timeout_s)
            _, pending = await asyncio.wait(tasks, timeout=timeout_s)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.flush(), timeout=5)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(enumeration.page_worker_gone(self._pool, self.producer_id), timeout=5)
        clients, self._clients = self._clients, {}
        await asyncio.gather(*(client.aclose() for _, client, _ in clients.values()), return_exceptions=True)

    async def _db(self, operation: Callable[..., Awaitable[T]], *args, **kwargs) -> T:
        """Run a repository operation, waiting out a database outage instead of failing the page."""
        async def attempt() -> T:
            async with self._pool.acquire() as conn:
                return await operation(conn, *args, **kwargs)

        return await wait_out_database_outage(attempt, doing=getattr(operation, "__name__", "a database call"))


def _mirrored(page: ClaimedPage, rows: list[dict]) -> list:
    mirrored = []
    for order in rows:
        try:
            mirrored.append(mirror_order(order))
        except InvalidOrder as exc:  # an order no customer can be told from: nothing to count it for
            log.warning("queue %s: order page %d holds %s: skipped", page.work.queue_id, page.page, exc)
    return mirrored


def _page_count(answer: CustomerPage | OrdersPage, rows: list) -> int | None:
    """How many pages the store says it has now: X-WP-TotalPages, else from X-WP-Total, else one
    more while pages come full. An empty page's totals are never trusted."""
    if not rows:
        return None
    if answer.total_pages is not None:
        return answer.total_pages
    if answer.total is not None:
        return math.ceil(answer.total / MAX_PER_PAGE)
    return answer.page + 1 if len(rows) >= MAX_PER_PAGE else None


async def _wait_for(stop: asyncio.Event, timeout_s: float) -> None:
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=timeout_s)


async def _wait_for_any(stop: asyncio.Event, wake: asyncio.Event, timeout_s: float) -> None:
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
