"""The MantisNXT routes, answering as the seed did (docs/contract.md section 7):

- POST /api/v1/integrations/woocommerce/sync/customers: actions start (the default), status,
  retry and force-done on one store's sync;
- POST /api/v1/integrations/sync/orchestrate: the seeds' SyncOrchestrator, one job over several
  stores (services/status/job_actions.py);
- GET /api/v1/integrations/sync/progress/{jobId}: services/status/seed_progress.py.

As the seed: every success is 200 with {success: true, data}, the seed's camelCase fields
(queueId, totalCount, message; jobId for a job) beside woosync's own; bad input is 400 with the
seed's message first and the field's problem after it ("Invalid organization ID format: org_id:
...", "WooCommerce configuration required: config.consumerKey: ..."); and `start` tests the store
before anything else, within WOOSYNC_STORE_CONNECT_TEST_TIMEOUT_S: credentials refused, a store
that does not answer or is not WooCommerce is a 500 "Failed to connect to WooCommerce: <why>",
and no store, queue or request is left behind.

Differences, on purpose:
- the organisation comes from the API token; `org_id` must name that same organisation (403
  otherwise), instead of being trusted from the body;
- an unknown queue is 404, a cancelled queue's retry 409, in the same {success: false, error} shape;
- `force-done` cancels the queue (its remaining draft lines end `cancelled`);
- options batchSize, batchDelayMs, maxRetries, initialBackoffMs are accepted and ignored;
- config is required for `start` only, queue_id for the other actions;
- `start`, `retry` and the orchestrator share the organisation's limits with the /api/v1/sync
  routes: 429 in the same envelope, with Retry-After when starts come too fast.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.status import actions, job_actions, seed_progress
from services.status.context import StatusContext
from services.status.errors import InvalidRequest, InvalidRequestBody, OrganizationMismatch, StoreConnectionFailed
from services.status.http import ok, only_query, read_json, validation_details
from services.status.presenters import queue_status_json
from services.status.request_context import caller_of, context
from services.status.routes_jobs import job_json
from services.status.schemas import (
    SEED_ACTIONS,
    OrchestrateRequest,
    WooCommerceConfig,
    WooCommerceQueueAction,
    WooCommerceSyncOptions,
    WooCommerceSyncStart,
)
from shared.errors import PermanentError, StoreError, StoreUnavailable
from shared.messages import StoreConfig
from shared.woocommerce.client import StoreCredentials

log = logging.getLogger(__name__)

PATH = "/api/v1/integrations/woocommerce/sync/customers"
ORCHESTRATE_PATH = "/api/v1/integrations/sync/orchestrate"

# The seed's messages, in the order it checked: the store's configuration, then the organisation id.
CONFIG_REQUIRED = "WooCommerce configuration required"
INVALID_ORG_ID = "Invalid organization ID format"
CONNECTION_FAILED = "Failed to connect to WooCommerce"


def _seed_validation_error(exc: ValidationError, *, config_fields: tuple[str, ...]) -> InvalidRequest:
    """A 400 whose message starts with the seed's own words for the first thing the seed checked
    that is wrong, then names the field and its problem (every problem in `details`)."""
    details = validation_details(exc)
    for seed_words, belongs in (
        (CONFIG_REQUIRED, lambda name: name.split(".")[0] in config_fields),
        (INVALID_ORG_ID, lambda name: name == "org_id"),
        ("invalid request body", lambda name: True),
    ):
        named = [detail for detail in details if belongs(detail["field"])]
        if named:
            first = named[0]
            message = f"{seed_words}: {first['field']}: {first['message']}"
            if len(details) > 1:
                message += f" (and {len(details) - 1} more problem{'s' if len(details) > 2 else ''})"
            return InvalidRequest(message, details=details)
    raise AssertionError("a validation error names at least one field")


async def _seed_body(request: Request) -> dict[str, Any]:
    payload = await read_json(request)
    if not isinstance(payload, dict):
        raise InvalidRequest(f"request body must be a JSON object, got {'null' if payload is None else type(payload).__name__}")
    return payload


def _validate(model: type[BaseModel], payload: dict[str, Any], *, config_fields: tuple[str, ...]) -> Any:
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise _seed_validation_error(exc, config_fields=config_fields) from None


def _seed_store(config: WooCommerceConfig, field: str) -> StoreConfig:
    try:
        return actions.store_config(config.url, config.consumerKey, config.consumerSecret, field=field)
    except InvalidRequestBody as exc:
        raise InvalidRequest(f"{CONFIG_REQUIRED}: {str(exc).removeprefix('invalid request body: ')}", details=exc.details) from None


async def test_store_connection(ctx: StatusContext, store: StoreConfig) -> None:
    """The seed's connection test, bounded by WOOSYNC_STORE_CONNECT_TEST_TIMEOUT_S and two tries,
    through the store client every service uses (its address policy included)."""
    settings = ctx.settings
    within_s = settings.store_connect_test_timeout_s
    credentials = StoreCredentials(url=store.url, consumer_key=store.consumer_key.get_secret_value(),
                                   consumer_secret=store.consumer_secret.get_secret_value(), auth=settings.store_auth)
    try:
        async with ctx.store_client(credentials, timeout_s=min(settings.store_timeout_s, within_s), max_tries=2,
                                    allowed_networks=settings.store_allowed_networks,
                                    max_response_bytes=settings.store_max_response_bytes) as client:
            await client.test_connection(within_s=within_s, max_tries=2)
    except (StoreError, StoreUnavailable, PermanentError) as exc:
        log.info("seeds' start: store %s failed the connection test (%s); nothing recorded", store.url, exc)
        raise StoreConnectionFailed(f"{CONNECTION_FAILED}: {exc}") from None


async def woocommerce_sync_customers(request: Request) -> Response:
    ctx = context(request)
    caller = await caller_of(request)
    only_query(request)
    payload = await _seed_body(request)
    action = payload.get("action", "start")
    if action not in SEED_ACTIONS:
        raise InvalidRequest(f"invalid request body: action must be one of {', '.join(SEED_ACTIONS)}, got {str(action)[:64]!r}",
                             details=[{"field": "action", "message": f"must be one of {', '.join(SEED_ACTIONS)}"}])
    if action == "start":
        start: WooCommerceSyncStart = _validate(WooCommerceSyncStart, payload, config_fields=("config",))
        if start.org_id != caller.org_id:
            raise OrganizationMismatch("org_id is not the organisation of this API token")
        store = _seed_store(start.config, "config")
        seed_options = start.options or WooCommerceSyncOptions()
        options = actions.sync_options(email=seed_options.email, woo_customer_id=seed_options.wooCustomerId,
                                       orders=seed_options.orders, limit=seed_options.limit, role=seed_options.role,
                                       conflict_policy=seed_options.conflictPolicy)
        status, created = await actions.start_sync(
            ctx, caller, store=store, idempotency_key=start.idempotency_key, options=options,
            requested_by=start.user_id, check_store=lambda tested: test_store_connection(ctx, tested),
        )
        message = ("Sync queue created and processing started" if created
                   else "A sync with this idempotency key exists; nothing new was started")
        return ok(_seed_queue(status, message))

    body: WooCommerceQueueAction = _validate(WooCommerceQueueAction, payload, config_fields=())
    if body.org_id != caller.org_id:
        raise OrganizationMismatch("org_id is not the organisation of this API token")
    if body.action == "status":
        return ok(_seed_queue(await actions.queue_status(ctx, caller, body.queue_id)))
    if body.action == "retry":
        retried, status = await actions.retry_failed(ctx, caller, body.queue_id, requested_by=body.user_id)
        return ok({**_seed_queue(status, f"{retried} failed item(s) queued for retry"), "retried": retried})
    if body.action in ("pause", "resume"):
        status = await actions.set_paused(ctx, caller, body.queue_id, paused=body.action == "pause",
                                          requested_by=body.user_id)
        return ok(_seed_queue(status, "Queue paused: no more items are sent" if body.action == "pause"
                              else "Queue resumed"))
    status = await actions.cancel(ctx, caller, body.queue_id, requested_by=body.user_id, finished_is_conflict=False)
    return ok(_seed_queue(status, "Queue marked done: its remaining items are cancelled"
                          if status.state == "cancelled" else f"Queue had already ended {status.state}"))


def _seed_queue(status: Any, message: str | None = None) -> dict[str, Any]:
    data = queue_status_json(status)
    data.update(queueId=data["id"], totalCount=status.total_count)
    if message is not None:
        data["message"] = message
    return data


async def orchestrate(request: Request) -> Response:
    """The seeds' SyncOrchestrator: one job over several stores, each its own queue. The stores
    are not tested here: each queue's producer tests its own store, so one store refusing its
    credentials ends that queue `failed` (and the job `partial`) without stopping the others."""
    ctx = context(request)
    caller = await caller_of(request)
    only_query(request)
    body: OrchestrateRequest = _validate(OrchestrateRequest, await _seed_body(request), config_fields=("stores",))
    if body.org_id != caller.org_id:
        raise OrganizationMismatch("org_id is not the organisation of this API token")
    listed = None  # "all": every store the organisation has synced
    if body.stores is not None:
        listed = [_seed_store(config, f"stores.{index}") for index, config in enumerate(body.stores)]
    seed_options = body.options or WooCommerceSyncOptions()
    try:
        job, created = await job_actions.start_job(
            ctx, caller, listed_stores=listed, idempotency_key=body.idempotency_key, requested_by=body.user_id,
            options=actions.sync_options(email=seed_options.email, woo_customer_id=seed_options.wooCustomerId,
                                         orders=seed_options.orders, limit=seed_options.limit, role=seed_options.role),
        )
    except InvalidRequestBody as exc:  # the seed's 400, not the 422 of the /api/v1/sync routes
        raise InvalidRequest(str(exc), details=exc.details) from None
    data = job_json(job)
    data.update(jobId=data["id"], totalCount=data["total_count"], queueIds=[queue["id"] for queue in data["queues"]],
                message=f"Sync job created over {len(job.queues)} store(s) and processing started" if created
                else "A sync job with this idempotency key exists; nothing new was started")
    return ok(data)


ROUTES = [
    Route(PATH, woocommerce_sync_customers, methods=["POST"]),
    Route(ORCHESTRATE_PATH, orchestrate, methods=["POST"]),
    *seed_progress.ROUTES,
]
