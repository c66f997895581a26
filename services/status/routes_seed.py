"""POST /api/v1/integrations/woocommerce/sync/customers: the MantisNXT route, kept for its callers.

Request and answer keep the seed's shapes. Differences, on purpose:
- the organisation comes from the API token; `org_id` must name that same organisation (403
  otherwise), instead of being trusted from the body;
- `start` answers 202 Accepted (the sync runs in the background), with the seed's
  {queueId, state, totalCount, progress, message} and the queue status object alongside;
- the store is not contacted before answering: the producer checks it, and a refusal is
  recorded on the queue (error_message, is_action_required) and in its activity log;
- `force-done` cancels the queue (its remaining draft lines end `cancelled`);
- options batchSize, batchDelayMs, maxRetries, initialBackoffMs are accepted and ignored.
"""

from __future__ import annotations

from uuid import UUID

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.status import actions
from services.status.http import ApiError, ok, parse_body
from services.status.routes_queues import caller_of, context
from services.status.schemas import WooCommerceSyncRequest
from shared.messages import SyncOptions

PATH = "/api/v1/integrations/woocommerce/sync/customers"


async def woocommerce_sync_customers(request: Request) -> Response:
    ctx = context(request)
    caller = await caller_of(request)
    body = await parse_body(request, WooCommerceSyncRequest)
    assert body is not None
    if UUID(body.org_id) != caller.org_id:
        raise ApiError(403, "org_id is not the organisation of this API token")

    if body.action == "start":
        if body.config is None:
            raise ApiError(400, "WooCommerce configuration required: config {url, consumerKey, consumerSecret}")
        store = actions.store_from_seed(body.config.url, body.config.consumerKey, body.config.consumerSecret)
        seed_options = body.options
        options = SyncOptions(
            email=seed_options.email if seed_options else None,
            woo_customer_id=seed_options.wooCustomerId if seed_options else None,
            limit=seed_options.limit if seed_options else None,
            role=(seed_options.role if seed_options and seed_options.role else "all"),
        )
        status, created = await actions.start_sync(
            ctx, caller, store=store, idempotency_key=body.idempotency_key, options=options, requested_by=body.user_id
        )
        data = status.to_api()
        data.update(
            queueId=data["id"],
            totalCount=status.total_count,
            message="Sync queue created and processing started" if created
            else "A sync with this idempotency key exists; nothing new was started",
        )
        return ok(data, status=202)

    if body.queue_id is None:
        raise ApiError(400, f"queue_id is required for action {body.action}")
    queue_id = UUID(body.queue_id)
    if body.action == "status":
        status = await actions.queue_or_404(ctx, caller, queue_id)
        return ok(status.to_api())
    if body.action == "retry":
        retried, status = await actions.retry_failed(ctx, caller, queue_id, requested_by=body.user_id)
        return ok({**status.to_api(), "retried": retried})
    status = await actions.cancel(ctx, caller, queue_id, requested_by=body.user_id, finished_is_conflict=False)
    return ok(status.to_api())


ROUTES = [Route(PATH, woocommerce_sync_customers, methods=["POST"])]
