"""What the API's write routes do: start a sync, retry its failed lines, cancel it.

Shared by the native routes and the seeds' compatibility route; they raise the domain errors of
services.status.errors for outcomes the caller must hear about (the app answers them over HTTP),
and never leave a line recorded as waiting for a message that was not published.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from uuid import UUID

from pydantic import ValidationError

from services.status import limits
from services.status.auth import Caller
from services.status.context import StatusContext
from services.status.errors import (
    BrokerUnavailable,
    InvalidRequestBody,
    QueueAlreadyFinished,
    QueueCancelled,
    QueueNotFound,
)
from services.status.http import describe_validation
from shared.amqp import PublishFailed, publish_sync_request
from shared.messages import StartSync, StoreConfig, SyncOptions
from shared.repository import queue_lines, stores, sync_queues

log = logging.getLogger(__name__)


async def start_sync(
    ctx: StatusContext,
    caller: Caller,
    *,
    store: StoreConfig,
    idempotency_key: str | None,
    options: SyncOptions,
    requested_by: str | None,
    check_store: Callable[[StoreConfig], Awaitable[None]] | None = None,
    kind: str = "sync",
) -> tuple[sync_queues.QueueStatus, bool]:
    """Record the store and the queue, then hand the sync request to the producer with the
    queue's id. Returns (status, created); a repeated idempotency key publishes nothing.
    Limits of the organisation (docs/contract.md section 7): its allowance of starts
    (SyncStartRateExceeded) and its open syncs (TooManyOpenSyncs, not for a repeated key).
    `check_store` (the seeds' connection test) runs once the start is allowed, before anything
    is recorded: when it raises, no store, queue or request is left behind. `kind` "preview":
    the queue is a preview (docs/contract.md section 10), which writes no customer row."""
    await limits.take_sync_start(ctx, caller)
    if check_store is not None:
        await check_store(store)
    actor = caller.actor(requested_by)
    async with ctx.pool.acquire() as conn:
        # An existing store keeps its credentials: the producer replaces them once the store accepted them.
        store_id = await stores.record_store(
            conn,
            org_id=caller.org_id,
            url=store.url,
            consumer_key=store.consumer_key.get_secret_value(),
            consumer_secret=store.consumer_secret.get_secret_value(),
            cipher=ctx.settings.credentials_cipher,
        )
        status, created = await sync_queues.find_or_create_queue(
            conn,
            org_id=caller.org_id,
            queue_name=f"WooCommerce {kind} {datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S} UTC",
            idempotency_key=idempotency_key,
            store_id=store_id,
            store_url=store.url,
            created_by=actor,
            options=options.model_dump(mode="json", exclude_none=True),
            max_open_syncs=ctx.settings.org_max_open_syncs,
            kind=kind,
        )
    if not created:
        log.info("sync request with a known idempotency key: queue %s (%s), nothing published", status.id, status.state)
        return status, False
    request = StartSync(
        org_id=caller.org_id,
        store=store,
        idempotency_key=idempotency_key,
        requested_by=actor,
        options=options,
        queue_id=status.id,
    )
    try:
        await publish_sync_request(ctx.channel, request, user_id=ctx.settings.amqp_user)
    except PublishFailed as exc:
        # The queue exists but nobody will fill it: say so on the queue, and to the caller.
        message = f"the sync request could not be handed to the message broker: {exc}"
        await sync_queues.record_queue_error(ctx.pool, status.id, caller.org_id, message)
        log.warning("queue %s: %s; the caller is told to start a new sync", status.id, message)
        raise BrokerUnavailable(f"{message}; queue {status.id} records the failure, start a new sync") from exc
    log.info("sync requested: queue %s for store %s by %s", status.id, store.url, actor)
    return status, True


async def queue_status(ctx: StatusContext, caller: Caller, queue_id: UUID) -> sync_queues.QueueStatus:
    """The status of one of the caller's queues; QueueNotFound when the organisation has none by that id."""
    status = await sync_queues.queue_status(ctx.pool, queue_id, caller.org_id)
    if status is None:
        raise QueueNotFound(queue_id)
    return status


async def retry_failed(ctx: StatusContext, caller: Caller, queue_id: UUID, *, requested_by: str | None) -> tuple[int, sync_queues.QueueStatus]:
    """Failed lines back to draft, with an activity row saying who asked; the producers'
    dispatcher publishes them with their recorded customer data, in the sync's window like any
    draft line (docs/architecture.md "Dispatch"): publishing them here too would put each in
    the lines queue twice and past the window."""
    status = await queue_status(ctx, caller, queue_id)
    if status.state == "cancelled":
        raise QueueCancelled(queue_id)
    await limits.take_sync_start(ctx, caller)  # a retry sets work going as a start does
    retried = await queue_lines.retry_failed_lines(ctx.pool, queue_id, caller.org_id, requested_by=caller.actor(requested_by))
    dispatchable = [line for line in retried if line.store_id is not None]
    # No store recorded: the dispatcher never publishes such a queue's lines; fail them again.
    orphans = [(line.line_id, "cannot retry: the queue's store is no longer recorded") for line in retried
               if line.store_id is None]
    if orphans:
        await queue_lines.mark_lines_failed(ctx.pool, orphans)
    if retried:
        log.info("queue %s: %d failed line(s) back to draft for the dispatcher, retried by %s", queue_id,
                 len(dispatchable), caller.actor(requested_by))
    return len(dispatchable), await queue_status(ctx, caller, queue_id)


async def cancel(ctx: StatusContext, caller: Caller, queue_id: UUID, *, requested_by: str | None,
                 finished_is_conflict: bool = True) -> sync_queues.QueueStatus:
    """Cancel the queue (its draft lines end cancelled). A queue that had already finished is
    QueueAlreadyFinished, unless `finished_is_conflict` is False (the seeds' force-done)."""
    status = await sync_queues.cancel_queue(ctx.pool, queue_id, caller.org_id, cancelled_by=caller.actor(requested_by))
    if status is None:
        raise QueueNotFound(queue_id)
    if finished_is_conflict and status.state != "cancelled":
        raise QueueAlreadyFinished(queue_id, status.state)
    return status


async def set_paused(ctx: StatusContext, caller: Caller, queue_id: UUID, *, paused: bool,
                     requested_by: str | None) -> sync_queues.QueueStatus:
    """Pause or resume the queue (docs/contract.md section 10): idempotent, recorded with who
    asked; a finished queue is QueueAlreadyFinished (409)."""
    actor = caller.actor(requested_by)
    try:
        if paused:
            status = await sync_queues.pause_queue(ctx.pool, queue_id, caller.org_id, paused_by=actor)
        else:
            status = await sync_queues.resume_queue(ctx.pool, queue_id, caller.org_id, resumed_by=actor)
    except sync_queues.QueueFinished as exc:
        raise QueueAlreadyFinished(queue_id, exc.status.state, action="pause" if paused else "resume") from None
    if status is None:
        raise QueueNotFound(queue_id)
    return status


def store_config(url: str, consumer_key: str, consumer_secret: str, *, field: str) -> StoreConfig:
    """The wire model of a store, from a request already checked against the documented patterns."""
    try:
        return StoreConfig(url=url, consumer_key=consumer_key, consumer_secret=consumer_secret)
    except ValidationError as exc:  # a rule of StoreConfig the patterns did not already enforce
        message, details = describe_validation(exc, prefix=(field,))
        raise InvalidRequestBody(f"invalid request body: {message}", details=details) from None


def sync_options(*, email: str | None, woo_customer_id: int | None, limit: int | None, role: str | None, orders: str = "auto",
                 conflict_policy: str | None = None, mode: str = "full") -> SyncOptions:
    try:
        return SyncOptions(email=email, woo_customer_id=woo_customer_id, limit=limit, role=role or "all", orders=orders,
                           conflict_policy=conflict_policy, mode=mode)
    except ValidationError as exc:  # options valid one by one, not together (an incremental sweep of one customer)
        message, details = describe_validation(exc, prefix=("options",))
        raise InvalidRequestBody(f"invalid request body: {message}", details=details) from None
