"""What the job routes do: start one sync job over several stores of an organisation, pause,
resume and cancel it and retry its failed lines as a whole (docs/contract.md section 7).

Each store of a job gets its own sync queue, filled and worked exactly as a sync started alone
(the producer tests the store, enumerates its customers, consumers sync them); the job only
groups the queues, and its actions are those of its queues, applied to each.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timezone
from uuid import UUID

from services.status import actions, limits
from services.status.auth import Caller
from services.status.context import StatusContext
from services.status.errors import (
    BrokerUnavailable,
    JobAlreadyFinished,
    JobCancelled,
    JobNotFound,
    NoSyncedStores,
    StoreListedTwice,
)
from shared.amqp import PublishFailed, publish_sync_request
from shared.messages import StartSync, StoreConfig, SyncOptions
from shared.repository import jobs, stores, sync_queues
from shared.states import TERMINAL_QUEUE_STATES

log = logging.getLogger(__name__)


async def start_job(
    ctx: StatusContext,
    caller: Caller,
    *,
    listed_stores: Sequence[StoreConfig] | None,
    idempotency_key: str | None,
    options: SyncOptions,
    requested_by: str | None,
    field: str = "stores",
) -> tuple[jobs.JobStatus, bool]:
    """Create the job and one queue per store, then hand each queue's sync request to the
    producer. `listed_stores` None: every store the organisation has synced, with the
    credentials the store last accepted. Returns (status, created); a repeated idempotency key
    answers the existing job and publishes nothing.

    Limits of the organisation: each store counts as one sync start (SyncStartRateExceeded), and
    the job's queues are open syncs, created all or none (TooManyOpenSyncs)."""
    store_configs = await _job_stores(ctx, caller, listed_stores, field=field)
    for _ in store_configs:
        await limits.take_sync_start(ctx, caller)
    actor = caller.actor(requested_by)
    async with ctx.pool.acquire() as conn:
        job_stores = []
        for store in store_configs:
            # An existing store keeps its credentials: the producer replaces them once the store accepted them.
            store_id = await stores.record_store(
                conn, org_id=caller.org_id, url=store.url, consumer_key=store.consumer_key.get_secret_value(),
                consumer_secret=store.consumer_secret.get_secret_value(), cipher=ctx.settings.credentials_cipher,
            )
            job_stores.append(jobs.JobStore(store_id=store_id, url=store.url))
        job, created = await jobs.create_job(
            conn, org_id=caller.org_id,
            job_name=f"WooCommerce sync job {datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S} UTC",
            idempotency_key=idempotency_key, created_by=actor,
            options=options.model_dump(mode="json", exclude_none=True), stores=job_stores,
            max_open_syncs=ctx.settings.org_max_open_syncs,
        )
    if not created:
        log.info("job request with a known idempotency key: job %s, nothing published", job.id)
        return job, False
    by_url = {store.url: store for store in store_configs}
    for position, queue in enumerate(job.queues):
        request = StartSync(org_id=caller.org_id, store=by_url[queue.store_url], idempotency_key=None,
                            requested_by=actor, options=options, queue_id=queue.id)
        try:
            await publish_sync_request(ctx.channel, request, user_id=ctx.settings.amqp_user)
        except PublishFailed as exc:
            # The queues left would wait for a request that was never sent: say so on each.
            message = f"the sync request could not be handed to the message broker: {exc}"
            for unsent in job.queues[position:]:
                await sync_queues.record_queue_error(ctx.pool, unsent.id, caller.org_id, message)
            log.warning("job %s: %s; %d queue(s) record the failure", job.id, message, len(job.queues) - position)
            raise BrokerUnavailable(f"{message}; job {job.id} records the failure on its queues, start a new job") from exc
    log.info("sync job %s requested over %d store(s) by %s", job.id, len(job.queues), actor)
    return await job_status(ctx, caller, job.id), True


async def _job_stores(ctx: StatusContext, caller: Caller, listed: Sequence[StoreConfig] | None, *,
                      field: str) -> list[StoreConfig]:
    if listed is not None:
        # A store listed twice the same is one store; with other credentials, which ones to use is the caller's call.
        unique: dict[str, tuple[int, StoreConfig]] = {}
        for index, store in enumerate(listed):
            first = unique.setdefault(store.url, (index, store))
            if first[1] != store:
                raise StoreListedTwice(f"{field}.{index} is the store of {field}.{first[0]} ({store.url}) with other "
                                       "credentials: list each store once")
        return [store for _, store in unique.values()]
    async with ctx.pool.acquire() as conn:
        synced = await jobs.synced_stores(conn, caller.org_id)
        configs = []
        # No cap of its own: the organisation's open syncs and start allowance bound a job of "all".
        for store in synced:
            url, key, secret = await stores.load_store_credentials(conn, store.store_id, cipher=ctx.settings.credentials_cipher)
            configs.append(StoreConfig(url=url, consumer_key=key, consumer_secret=secret))
    if not configs:
        raise NoSyncedStores(f'{field} is "all", but this organisation has synced no store yet: list the stores to sync')
    return configs


async def job_status(ctx: StatusContext, caller: Caller, job_id: UUID) -> jobs.JobStatus:
    """One of the caller's jobs; JobNotFound when the organisation has none by that id."""
    job = await jobs.job_status(ctx.pool, job_id, caller.org_id)
    if job is None:
        raise JobNotFound(job_id)
    return job


async def cancel_job(ctx: StatusContext, caller: Caller, job_id: UUID, *, requested_by: str | None) -> jobs.JobStatus:
    """Cancel every queue of the job that has not ended (their draft lines end cancelled); the
    job then reads `cancelled`. Idempotent; a job whose queues had all ended is JobAlreadyFinished."""
    job = await job_status(ctx, caller, job_id)
    if job.cancelled_at is None and job.is_terminal:
        raise JobAlreadyFinished(job_id, job.totals.state)
    actor = caller.actor(requested_by)
    await jobs.mark_job_cancelled(ctx.pool, job_id, caller.org_id, cancelled_by=actor)
    for queue in job.queues:
        await sync_queues.cancel_queue(ctx.pool, queue.id, caller.org_id, cancelled_by=actor)
    log.info("sync job %s cancelled by %s", job_id, actor)
    return await job_status(ctx, caller, job_id)


async def set_job_paused(ctx: StatusContext, caller: Caller, job_id: UUID, *, paused: bool,
                         requested_by: str | None) -> jobs.JobStatus:
    """Pause (or resume) every queue of the job that has not ended (sync_queues.pause_queue): the
    job then reads `paused` (or its queues' open state again). Idempotent; a job whose queues
    had all ended is JobAlreadyFinished (409)."""
    action = "pause" if paused else "resume"
    job = await job_status(ctx, caller, job_id)
    unfinished = [queue for queue in job.queues if queue.state not in TERMINAL_QUEUE_STATES]
    if not unfinished:
        raise JobAlreadyFinished(job_id, job.totals.state, action=action)
    actor = caller.actor(requested_by)
    for queue in unfinished:
        try:
            if paused:
                await sync_queues.pause_queue(ctx.pool, queue.id, caller.org_id, paused_by=actor)
            else:
                await sync_queues.resume_queue(ctx.pool, queue.id, caller.org_id, resumed_by=actor)
        except sync_queues.QueueFinished:
            continue  # it ended since the job was read: nothing left to pause or resume
    log.info("sync job %s: %d queue(s) %sd by %s", job_id, len(unfinished), action, actor)
    return await job_status(ctx, caller, job_id)


async def retry_job(ctx: StatusContext, caller: Caller, job_id: UUID, *, requested_by: str | None) -> tuple[int, jobs.JobStatus]:
    """Retry the failed lines of every queue of the job (each queue with failed lines counts as
    one sync start). A queue whose store failed before any line existed has nothing to retry:
    start a new job for that store."""
    job = await job_status(ctx, caller, job_id)
    if job.cancelled_at is not None:
        raise JobCancelled(job_id)
    retried = 0
    for queue in job.queues:
        if queue.failed_count and queue.state != "cancelled":
            count, _ = await actions.retry_failed(ctx, caller, queue.id, requested_by=requested_by)
            retried += count
    return retried, await job_status(ctx, caller, job_id)
