"""POST /api/v1/integrations/woocommerce/sync/customers: the MantisNXT route, kept for its callers.

Request and answer keep the seed's shapes. Differences, on purpose:
- the organisation comes from the API token; `org_id` must name that same organisation (403
  otherwise), instead of being trusted from the body;
- `start` answers 202 Accepted (the sync runs in the background), with the seed's
  {queueId, state, totalCount, progress, message} and the queue status object alongside;
- the store is not contacted before answering: the producer checks it, and a refusal is
  recorded on the queue (error_message, is_action_required) and in its activity log;
- `force-done` cancels the queue (its remaining draft lines end `cancelled`);
- options batchSize, batchDelayMs, maxRetries, initialBackoffMs are accepted and ignored;
- invalid input is 400, like the seed's own answers, with a message naming the field (and
  `details`); config is required for `start` only, queue_id for the other actions;
- `start` and `retry` share the organisation's limits with the /api/v1/sync routes: 429 in the
  same error envelope, with Retry-After when starts come too fast (docs/contract.md section 7).
"""

from __future__ import annotations

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.status import actions
from services.status.errors import InvalidRequest, InvalidRequestBody, OrganizationMismatch
from services.status.http import describe_validation, ok, only_query, read_json
from services.status.presenters import queue_status_json
from services.status.request_context import caller_of, context
from services.status.schemas import SEED_ACTIONS, WooCommerceQueueAction, WooCommerceSyncOptions, WooCommerceSyncStart

PATH = "/api/v1/integrations/woocommerce/sync/customers"


async def seed_request(request: Request) -> WooCommerceSyncStart | WooCommerceQueueAction:
    """The body as the variant its `action` names (start when absent), each with its own
    required fields: config for start, queue_id for the others."""
    payload = await read_json(request)
    if not isinstance(payload, dict):
        raise InvalidRequestBody(f"request body must be a JSON object, got {'null' if payload is None else type(payload).__name__}")
    action = payload.get("action", "start")
    if action not in SEED_ACTIONS:
        raise InvalidRequestBody(f"invalid request body: action must be one of {', '.join(SEED_ACTIONS)}, got {str(action)[:64]!r}",
                                 details=[{"field": "action", "message": f"must be one of {', '.join(SEED_ACTIONS)}"}])
    model = WooCommerceSyncStart if action == "start" else WooCommerceQueueAction
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        message, details = describe_validation(exc)
        raise InvalidRequestBody(f"invalid request body: {message}", details=details) from None


async def woocommerce_sync_customers(request: Request) -> Response:
    """MantisNXT callers expect the seed's 400 for bad input: a body that fails validation is
    an InvalidRequest here, not the InvalidRequestBody (422) of the /api/v1/sync routes."""
    try:
        return await _woocommerce_sync_customers(request)
    except InvalidRequestBody as exc:
        raise InvalidRequest(str(exc), details=exc.details) from None


async def _woocommerce_sync_customers(request: Request) -> Response:
    ctx = context(request)
    caller = await caller_of(request)
    only_query(request)
    body = await seed_request(request)
    if body.org_id != caller.org_id:
        raise OrganizationMismatch("org_id is not the organisation of this API token")

    if isinstance(body, WooCommerceSyncStart):
        store = actions.store_config(body.config.url, body.config.consumerKey, body.config.consumerSecret, field="config")
        seed_options = body.options or WooCommerceSyncOptions()
        options = actions.sync_options(email=seed_options.email, woo_customer_id=seed_options.wooCustomerId,
                                       limit=seed_options.limit, role=seed_options.role)
        status, created = await actions.start_sync(
            ctx, caller, store=store, idempotency_key=body.idempotency_key, options=options, requested_by=body.user_id
        )
        data = queue_status_json(status)
        data.update(
            queueId=data["id"],
            totalCount=status.total_count,
            message="Sync queue created and processing started" if created
            else "A sync with this idempotency key exists; nothing new was started",
        )
        return ok(data, status=202)

    if body.action == "status":
        status = await actions.queue_status(ctx, caller, body.queue_id)
        return ok(queue_status_json(status))
    if body.action == "retry":
        retried, status = await actions.retry_failed(ctx, caller, body.queue_id, requested_by=body.user_id)
        return ok({**queue_status_json(status), "retried": retried})
    status = await actions.cancel(ctx, caller, body.queue_id, requested_by=body.user_id, finished_is_conflict=False)
    return ok(queue_status_json(status))


ROUTES = [Route(PATH, woocommerce_sync_customers, methods=["POST"])]
