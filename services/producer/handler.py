"""Handling one sync request: validate -> find or create the queue (and reply) -> test the
store -> record the sync's plan and its pages as page work -> ack.

A full sync's pages of customers and orders are then read and recorded by the page workers of
every producer (services/producer/page_worker.py, docs/architecture.md "Page work"): the request
is acked once its pages are recorded, so nothing depends on it staying unacked. If the producer
dies before the ack, the broker redelivers the request and the same steps find the queue, the
plan and the pages recorded. An incremental sweep and a one-customer sync take a few store
requests: they are done here, before the ack (lines are unique per (queue, customer), so a
redelivered one records nothing twice; lines still in draft are published by the dispatcher).

Every request ends (docs/contract.md section 3): whatever else goes wrong with one, it is
dead-lettered with its reason (`internal_error` for the unexpected), its queue records the error,
and its slot is free for the next. Only broker trouble and a database outage leave it for
redelivery, and the broker's delivery limit bounds even that: the producer dead-letters the last
delivery the limit allows itself, so that what rests in woosync.sync_requests.dead never holds
the store's credentials.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TypeVar
from uuid import UUID

import aio_pika
import asyncpg
import orjson
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from pydantic import ValidationError

from services.producer import pages, resume, sweep
from shared import amqp, organizations, topology
from shared.db import translate_db_error
from shared.errors import (
    DatabaseUnavailable,
    PermanentError,
    RetryableError,
    StoreError,
    StoreNotFound,
    StoreUnavailable,
    TooManyOpenSyncs,
)
from shared.messages import (
    REMOVED,
    CustomerLine,
    StartSync,
    SyncReply,
    content_type_problem,
    describe_validation_error,
    redacted_sync_request,
)
from shared.metrics import Metrics
from shared.outage import wait_out_database_outage
from shared.repository import enumeration
from shared.repository import queue_lines, store_budget, stores, sweeps, sync_queues
from shared.settings import Settings
from shared.woocommerce.budget import FleetBudgets
from shared.woocommerce.client import WooCommerceClient
from shared.woocommerce.credentials import StoreCredentials

log = logging.getLogger(__name__)
T = TypeVar("T")

# An unexpected error is told (dead-letter header, queue, reply) in at most this many characters.
INTERNAL_ERROR_MAX = 500
# Failures that leave a request unacked, to be redelivered and resume: the broker's and the database's.
BROKER_TROUBLE = (amqp.PublishFailed, aio_pika.exceptions.AMQPError, ConnectionError)
# The producer's page requests wait out a store that said slow down for this long in all (a hold
# is at most 15 minutes): listing cannot go on without the store anyway.
_ENUMERATION_HOLD_PATIENCE_S = 3600.0


class RequestRejected(Exception):
    """The request cannot be served; it goes to woosync.sync_requests.dead with this reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class _Progress:
    """What handling one request has established so far: what settling it needs, however it ends."""

    request: StartSync | None = None
    queue_id: UUID | None = None

    def scrub(self, text: str) -> str:
        """`text` without the request's credentials (an exception's message may quote them)."""
        if self.request is not None:
            for secret in (self.request.store.consumer_secret, self.request.store.consumer_key):
                if value := secret.get_secret_value():
                    text = text.replace(value, REMOVED)
        return text


class SyncRequestHandler:
    def __init__(self, pool: asyncpg.Pool, channel: AbstractChannel, settings: Settings, metrics: Metrics,
                 client_factory: Callable[..., WooCommerceClient] = WooCommerceClient, *,
                 publish_lines: bool = True) -> None:
        self._pool = pool
        # False when the producer's dispatcher publishes the lines (services/producer/dispatcher.py):
        # the handler then only records them, in draft.
        self._publish_lines = publish_lines
        self._channel = channel
        self._settings = settings
        self._metrics = metrics
        self._client_factory = client_factory
        # The fleet's request budget per store host (WOOSYNC_STORE_RATE_LIMIT, store.rate_limit).
        self._budgets = FleetBudgets(pool, default_rate=settings.store_rate_limit,
                                     concurrency=settings.store_fleet_concurrency, metrics=metrics)

    @property
    def budgets(self) -> FleetBudgets:
        """The fleet's request budgets per store host: the producer's page worker shares them."""
        return self._budgets

    async def __call__(self, message: AbstractIncomingMessage) -> None:
        """The one place that settles a sync request: ack, dead-letter, or leave it for redelivery.
        A cancellation (the producer stopping) is not caught: the request returns to the queue."""
        progress = _Progress()
        try:
            outcome = await self.handle(message, progress)
        except RequestRejected as rejected:
            log.warning("sync request rejected (%s): %s", rejected.reason, progress.scrub(str(rejected)))
            await self._end(message, rejected, progress, outcome="rejected")
            return
        except Exception as exc:
            if isinstance(exc, BROKER_TROUBLE + (DatabaseUnavailable,)) or translate_db_error(exc) is not None:
                # The request stays unacked: redelivered after the reconnect, it resumes.
                log.warning("broker or database trouble (%s): the request will be redelivered and resume",
                            progress.scrub(repr(exc))[:INTERNAL_ERROR_MAX])
                await asyncio.sleep(1)
                await _nack_quietly(message)
                return
            await self._fail(message, exc, progress)
            return
        await message.ack()
        self._metrics.sync_requests.labels(outcome).inc()

    async def _fail(self, message: AbstractIncomingMessage, exc: Exception, progress: _Progress) -> None:
        """An error nobody expected: the request ends like a rejected one, reason internal_error."""
        error = progress.scrub(f"{type(exc).__name__}: {exc}")[:INTERNAL_ERROR_MAX]
        log.error("sync request failed unexpectedly: it is dead-lettered (internal_error)%s\n%s",
                  f" and queue {progress.queue_id} marked failed" if progress.queue_id else "",
                  progress.scrub("".join(traceback.format_exception(exc))))
        if progress.queue_id is not None and progress.request is not None:
            try:
                await self._db(sync_queues.record_queue_error, progress.queue_id, progress.request.org_id,
                               f"the sync stopped on an unexpected error: {error}")
            except Exception as record_error:  # still dead-letter the request and free its slot
                log.error("could not record the error on queue %s: %r", progress.queue_id, record_error)
        await self._end(message, RequestRejected("internal_error", f"unexpected error: {error}"), progress,
                        outcome="failed")

    async def _end(self, message: AbstractIncomingMessage, rejected: RequestRejected, progress: _Progress, *,
                   outcome: str) -> None:
        """Dead-letter the request (credentials removed), answer the asker, ack. When the broker
        takes neither, the request stays unacked for redelivery (bounded by the delivery limit)."""
        try:
            await self._dead_letter(message, rejected, progress)
        except BROKER_TROUBLE as exc:
            log.warning("could not dead-letter the sync request (%r): it will be redelivered", exc)
            await asyncio.sleep(1)
            await _nack_quietly(message)
            return
        await self._reply(message, SyncReply(error=progress.scrub(str(rejected))))
        await message.ack()
        self._metrics.sync_requests.labels(outcome).inc()

    async def handle(self, message: AbstractIncomingMessage, progress: _Progress | None = None) -> str:
        progress = progress if progress is not None else _Progress()
        if problem := content_type_problem(message.content_type):
            raise RequestRejected("unsupported_content_type", problem)
        request = progress.request = _parse(message.body)
        await self._stop_at_the_delivery_limit(message, request)
        log.info("sync request for org %s, store %s (idempotency key %r)", request.org_id, request.store.url, request.idempotency_key)
        policy = await self._db(organizations.sync_request_policy, request.org_id)
        if policy is None:
            raise RequestRejected("unknown_org", f"organisation {request.org_id} is not registered (woosync org create)")
        _check_organization_policy(policy, request.org_id, message.user_id, self._settings.amqp_user)

        # A store already recorded keeps its credentials here: the request's replace them only
        # once the store accepted them (after test_connection below).
        store_id = await self._db(
            stores.record_store, org_id=request.org_id, url=request.store.url,
            consumer_key=request.store.consumer_key.get_secret_value(),
            consumer_secret=request.store.consumer_secret.get_secret_value(), cipher=self._settings.credentials_cipher,
        )
        queue = await self._find_or_create_queue(request, store_id)
        progress.queue_id = queue.id
        await self._reply(message, SyncReply(queue_id=queue.id, state=queue.state, total_count=queue.total_count))
        if queue.enumeration_done or queue.state == "cancelled":
            log.info("queue %s already enumerated (%s): nothing to do", queue.id, queue.state)
            return "duplicate"

        credentials = StoreCredentials(url=request.store.url, consumer_key=request.store.consumer_key.get_secret_value(),
                                       consumer_secret=request.store.consumer_secret.get_secret_value(),
                                       auth=self._settings.store_auth)
        async with self._client_factory(credentials, timeout_s=self._settings.store_timeout_s,
                                        max_tries=self._settings.store_max_tries,
                                        budget=self._budgets.for_store(request.store.url),
                                        hold_patience_s=_ENUMERATION_HOLD_PATIENCE_S, metrics=self._metrics,
                                        allowed_networks=self._settings.store_allowed_networks,
                                        max_response_bytes=self._settings.store_max_response_bytes) as client:
            try:
                # Short and tried twice at most: a dead store frees its producer slot soon (section 6).
                await client.test_connection(within_s=self._settings.store_connect_test_timeout_s, max_tries=2)
            except (StoreError, StoreUnavailable, PermanentError) as exc:
                await self._db(sync_queues.record_queue_error, queue.id, request.org_id, f"store connection failed: {exc}")
                raise RequestRejected("store_unavailable", f"store {request.store.url} cannot be synced: {exc}") from exc
            await self._db(stores.save_verified_credentials, store_id, consumer_key=credentials.consumer_key,
                           consumer_secret=credentials.consumer_secret, cipher=self._settings.credentials_cipher)
            # Only credentials the store accepted may set its host's budget (shared by every
            # organisation syncing that host: the lowest rate set wins).
            await self._db(store_budget.set_store_rate_limit, store_id, request.store.rate_limit)

            options = request.options
            # An incremental sweep starts where the store's last one ended; a store never swept
            # gets a full sync with every order mirrored, which sets its watermark.
            since = await self._db(sweeps.last_sweep, store_id) if options.mode == "incremental" else None
            if options.mode == "incremental" and since is None:
                options = options.model_copy(update={"orders": enumeration.BULK})
            if queue.total_count and self._publish_lines and (since is not None or pages.one_customer(options)):
                # A redelivered request whose lines this handler publishes itself (no dispatcher).
                republished = await resume.republish_draft_lines(self._pool, self._channel, queue.id, request.org_id, store_id)
                log.info("resuming queue %s: re-published %d lines still in draft", queue.id, republished)
            try:
                if since is not None:
                    published = await sweep.sweep(
                        self._db, client, queue_id=queue.id, org_id=request.org_id, store_id=store_id, since=since,
                        overlap_s=self._settings.sweep_overlap_s,
                        record_lines=lambda customers: self._record_and_publish(
                            request.org_id, queue.id, store_id, customers, publish=self._publish_lines))
                elif pages.one_customer(options):
                    await pages.plan_orders(self._db, client, options, queue_id=queue.id, org_id=request.org_id)
                    published = await self._enumerate(client, request, queue, store_id, publish=self._publish_lines)
                else:
                    plan = await pages.plan_orders(self._db, client, options, queue_id=queue.id, org_id=request.org_id)
                    await self._record_page_work(request, queue, store_id, options, plan)
                    return "recorded"
            except (StoreError, RetryableError) as exc:
                if isinstance(exc, RetryableError) and not isinstance(exc, StoreUnavailable):
                    raise
                # No more lines will come: the queue ends partial (or failed) once its lines finish.
                await self._db(sync_queues.record_queue_error, queue.id, request.org_id, f"enumeration stopped: {exc}")
                raise RequestRejected("store_failed", f"store {request.store.url} failed while listing customers: {exc}") from exc

        status = await self._db(sync_queues.mark_enumeration_done, queue.id, request.org_id)
        if since is not None:
            # Every order modified before the queue's start is in the mirror now.
            await self._db(sweeps.record_sweep, store_id=store_id, org_id=request.org_id, queue_id=queue.id)
        log.info("queue %s enumerated: %d customers, %d lines published now (%s)", queue.id, status.total_count, published, status.state)
        return "enumerated"

    async def _record_page_work(self, request: StartSync, queue, store_id: UUID, options, plan: enumeration.Plan) -> None:
        """The sync's pages, pending for the page workers of every producer: page 1 of customers,
        and of orders when a bulk sync mirrors them first (its lines wait in draft until every
        order page is in), and the further pages the plan already counted. Idempotent."""
        mirroring = plan.order_strategy == enumeration.BULK and not plan.orders_mirrored
        created = await self._db(
            enumeration.start_page_work, queue_id=queue.id, org_id=request.org_id, store_id=store_id,
            role=options.role, customer_limit=options.limit, mirroring=mirroring,
            whole_store=_whole_store(options) and plan.order_strategy == enumeration.BULK,
            pass_started=queue.created_at, customer_pages=plan.customer_pages_total,
            order_pages=plan.order_pages_total if mirroring else 0)
        log.info("queue %s: pages %s for the page workers (orders %s%s)", queue.id, "recorded" if created else "already recorded",
                 plan.order_strategy, ", mirrored first" if mirroring else "")

    async def _stop_at_the_delivery_limit(self, message: AbstractIncomingMessage, request: StartSync) -> None:
        """The last delivery the broker allows (x-delivery-count, docs/contract.md section 3) is not
        tried: whatever stopped the earlier ones would stop it too, and then the broker would
        dead-letter it whole, credentials in clear. It is dead-lettered here, credentials removed."""
        earlier = _earlier_deliveries(message)
        if earlier < topology.SYNC_REQUESTS_DELIVERY_LIMIT:
            return
        error = (f"delivered {earlier + 1} times without finishing (the producer stopped or crashed each time; "
                 f"delivery limit {topology.SYNC_REQUESTS_DELIVERY_LIMIT}): not tried again")
        if request.queue_id is not None:
            await self._db(sync_queues.record_queue_error, request.queue_id, request.org_id, error)
        raise RequestRejected("delivery_limit", error)

    async def _find_or_create_queue(self, request: StartSync, store_id: UUID):
        if request.queue_id is not None:
            queue = await self._db(sync_queues.queue_status, request.queue_id, request.org_id)
            if queue is None:
                raise RequestRejected("unknown_queue", f"queue {request.queue_id} does not exist for organisation {request.org_id}")
            return _same_store(queue, store_id, request)
        try:
            queue, created = await self._db(
                sync_queues.find_or_create_queue, org_id=request.org_id,
                queue_name=f"WooCommerce customers from {request.store.url} at {datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S} UTC",
                idempotency_key=request.idempotency_key, store_id=store_id, store_url=request.store.url,
                created_by=request.requested_by, options=request.options.model_dump(mode="json"),
                max_open_syncs=self._settings.org_max_open_syncs,
            )
        except TooManyOpenSyncs as exc:  # no queue was created (docs/contract.md section 3)
            raise RequestRejected("too_many_open_syncs", str(exc)) from exc
        log.info("%s queue %s", "created" if created else "found", queue.id)
        return _same_store(queue, store_id, request)

    async def _enumerate(self, client: WooCommerceClient, request: StartSync, queue, store_id: UUID, *,
                         publish: bool = True) -> int:
        """Record (and with `publish`, publish) a line per customer; each page counts in the plan."""
        options = request.options
        room = (options.limit - queue.total_count) if options.limit else None
        published = 0
        # Pages an earlier run recorded (their lines exist) are not fetched again.
        done = await self._db(enumeration.done_pages, queue.id, "customers")
        start_page = 1
        while start_page in done:
            start_page += 1
        last_page = start_page - 1
        async for page, customers in _customer_pages(client, options, start_page=start_page):
            last_page = max(last_page, page)
            if room is not None:
                customers = customers[: max(room, 0)]
            if customers:
                published += await self._record_and_publish(request.org_id, queue.id, store_id, customers, publish=publish)
            await self._db(enumeration.record_page_done, queue.id, "customers", page, row_count=len(customers))
            if room is not None:
                room -= len(customers)
                if room <= 0:
                    break
        await self._db(enumeration.set_pages_total, queue.id, "customers", last_page)
        return published

    async def _record_and_publish(self, org_id: UUID, queue_id: UUID, store_id: UUID, customers: list[dict], *,
                                  publish: bool = True) -> int:
        """Record a page's lines and publish the new ones. When the insert had to be tried again,
        its first try may have committed without us hearing so (the connection broke after the
        commit): the retry then finds those lines already there, so every line of the page still
        in draft is published instead (a duplicate is harmless, a line never published is stuck)."""
        page = [(int(c["id"]), c) for c in customers]
        tries = 0

        async def add_lines(conn, **kwargs):
            nonlocal tries
            tries += 1
            return await queue_lines.add_lines(conn, **kwargs)

        new_lines = await self._db(add_lines, queue_id=queue_id, org_id=org_id, customers=page)
        if tries > 1:
            new_lines = await self._db(queue_lines.draft_lines_of_customers, queue_id, org_id, [woo_id for woo_id, _ in page])
        by_id = {int(c["id"]): c for c in customers}
        lines = [CustomerLine(line_id=line_id, queue_id=queue_id, org_id=org_id, store_id=store_id,
                              woo_customer_id=woo_id, customer=by_id[woo_id]) for line_id, woo_id in new_lines]
        if lines and publish:
            await amqp.publish_customer_lines(self._channel, lines)
            self._metrics.customers_published.inc(len(lines))
        return len(lines)

    async def _db(self, operation: Callable[..., Awaitable[T]], *args, **kwargs) -> T:
        """Run a repository operation, waiting out a database outage instead of failing the sync."""
        async def attempt() -> T:
            async with self._pool.acquire() as conn:
                return await operation(conn, *args, **kwargs)

        return await wait_out_database_outage(attempt, doing=getattr(operation, "__name__", "a database call"))

    async def _dead_letter(self, message: AbstractIncomingMessage, rejected: RequestRejected, progress: _Progress) -> None:
        """Park the request in woosync.sync_requests.dead without its credentials (docs/contract.md section 3)."""
        body, note = redacted_sync_request(message.body)
        exchange = await self._channel.get_exchange(topology.DEAD_EXCHANGE, ensure=False)
        await exchange.publish(
            amqp.dead_letter_copy(message, reason=rejected.reason, error=progress.scrub(str(rejected)),
                                  content_type="application/octet-stream", body=body,
                                  headers={topology.BODY_HEADER: note}),
            routing_key=topology.DEAD_SYNC_REQUEST_ROUTING_KEY,
            mandatory=True,
        )

    async def _reply(self, message: AbstractIncomingMessage, reply: SyncReply) -> None:
        if not message.reply_to:
            return
        try:
            await self._channel.default_exchange.publish(
                aio_pika.Message(reply.model_dump_json(exclude_none=True).encode(), content_type="application/json",
                                 correlation_id=message.correlation_id),
                routing_key=message.reply_to,
            )
        except Exception as exc:  # the asker went away: the sync goes on regardless
            log.info("could not reply to %s: %s", message.reply_to, exc)


def _whole_store(options) -> bool:
    """A full sync of every customer of the store (its lines say the highest customer id)."""
    return options.role == "all" and options.limit is None and not pages.one_customer(options)


def _check_organization_policy(policy: organizations.SyncRequestPolicy, org_id: UUID, user_id: str | None,
                               service_user: str) -> None:
    """A disabled organisation's requests, and requests published by a broker user the organisation
    did not register (`woosync org publisher allow`), are refused (docs/contract.md section 4)."""
    if policy.disabled:
        raise RequestRejected("org_disabled", f"organisation {org_id} is disabled (woosync org enable)")
    if not policy.allows_publisher(user_id, service_user=service_user):
        raise RequestRejected(
            "publisher_not_allowed",
            f"organisation {org_id} accepts sync requests only from its registered broker users "
            f"(woosync org publisher list); this one was published with user_id {user_id!r}",
        )


def _same_store(queue, store_id: UUID, request: StartSync):
    """A queue found by id or idempotency key belongs to one store: a request naming another store
    would publish lines whose store disagrees with their queue's (consumers dead-letter those as
    tampered), so it is refused here instead."""
    if queue.store_id is not None and queue.store_id != store_id:
        raise RequestRejected(
            "store_mismatch",
            f"queue {queue.id} syncs another store than {request.store.url}: use another idempotency key for this store",
        )
    return queue


def _parse(body: bytes) -> StartSync:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RequestRejected("not_json", f"the sync request is not JSON: {exc}") from None
    try:
        return StartSync.model_validate(data)
    except ValidationError as exc:
        raise RequestRejected("invalid", f"the sync request is invalid: {describe_validation_error(exc)}") from None


async def _customer_pages(client: WooCommerceClient, options, *, start_page: int = 1):
    """(page number, customers) to sync, page by page: one customer by email or id, or every
    customer from `start_page` on."""
    if options.email:
        customer = await client.find_customer_by_email(options.email, role=options.role)
        yield 1, [customer] if customer else []
    elif options.woo_customer_id:
        try:
            yield 1, [await client.get_customer(options.woo_customer_id)]
        except StoreNotFound:
            yield 1, []
    else:
        async for page in client.iter_customer_pages(role=options.role, start_page=start_page):
            yield page.page, page.customers


def _earlier_deliveries(message: AbstractIncomingMessage) -> int:
    """How many times the broker delivered this request before (a quorum queue's x-delivery-count)."""
    try:
        return max(int((message.headers or {}).get("x-delivery-count") or 0), 0)
    except (TypeError, ValueError):
        return 0


async def _nack_quietly(message: AbstractIncomingMessage) -> None:
    try:
        await message.nack(requeue=True)
    except Exception:
        pass  # the channel is gone; the broker redelivers unacked messages anyway
