"""Previews, conflicts and the organisation's conflict policy (docs/contract.md sections 7 and 10):

- POST /api/v1/sync/preview: body as POST /api/v1/sync/queues; 202 with a queue of kind
  `preview`, which runs the sync's enumeration and mapping and writes no customer row;
- POST /api/v1/integrations/sync/preview: the seeds' preview, body as the seeds' start
  (config, org_id, options), answering as the seeds' routes do;
- GET /api/v1/sync/queues/{queue_id}/conflicts: a page of the queue's conflicts;
- GET and PUT /api/v1/organization/conflict-policy: the organisation's policy, which syncs
  started from then on run under unless their request names one.

A preview's report (`preview` in its status object) is read from its lines:
services/status/preview_report.py.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.status import actions
from services.status.auth import authenticate
from services.status.errors import OrganizationMismatch, QueueNotFound
from services.status.http import ok, only_query, page, page_params, parse_body, path_uuid
from services.status.presenters import conflict_json, queue_status_json
from services.status.request_context import caller_of, context
from services.status.routes_seed import _seed_body, _seed_queue, _seed_store, _validate, test_store_connection
from services.status.schemas import ConflictPolicyRequest, StartSyncRequest, WooCommerceSyncOptions, WooCommerceSyncStart
from shared.repository import conflicts, sync_queues


async def start_preview(request: Request) -> Response:
    ctx = context(request)
    caller = await caller_of(request)
    only_query(request)
    body = await parse_body(request, StartSyncRequest)
    assert body is not None
    store = actions.store_config(body.store.url, body.store.consumer_key, body.store.consumer_secret, field="store")
    options = actions.sync_options(**body.options.model_dump())
    status, _ = await actions.start_sync(ctx, caller, store=store, idempotency_key=body.idempotency_key,
                                         options=options, requested_by=body.requested_by, kind="preview")
    return ok(queue_status_json(status), status=202)


async def seed_preview(request: Request) -> Response:
    ctx = context(request)
    caller = await caller_of(request)
    only_query(request)
    start: WooCommerceSyncStart = _validate(WooCommerceSyncStart, await _seed_body(request), config_fields=("config",))
    if start.org_id != caller.org_id:
        raise OrganizationMismatch("org_id is not the organisation of this API token")
    store = _seed_store(start.config, "config")
    seed_options = start.options or WooCommerceSyncOptions()
    options = actions.sync_options(email=seed_options.email, woo_customer_id=seed_options.wooCustomerId,
                                   limit=seed_options.limit, role=seed_options.role,
                                   conflict_policy=seed_options.conflictPolicy)
    status, created = await actions.start_sync(
        ctx, caller, store=store, idempotency_key=start.idempotency_key, options=options, requested_by=start.user_id,
        check_store=lambda tested: test_store_connection(ctx, tested), kind="preview",
    )
    return ok(_seed_queue(status, "Preview queue created: nothing will be written" if created
                          else "A preview with this idempotency key exists; nothing new was started"))


async def list_conflicts(request: Request) -> Response:
    ctx = context(request)
    async with ctx.pool.acquire() as conn:
        caller = await authenticate(conn, request)
        queue_id = path_uuid(request)
        limit, offset = page_params(request)
        if await sync_queues.queue_status(conn, queue_id, caller.org_id) is None:
            raise QueueNotFound(queue_id)
        found = await conflicts.list_conflicts(conn, queue_id, caller.org_id, limit=limit + 1, offset=offset)
    return ok(page([conflict_json(conflict) for conflict in found], limit=limit, offset=offset))


async def conflict_policy(request: Request) -> Response:
    ctx = context(request)
    caller = await caller_of(request)
    only_query(request)
    async with ctx.pool.acquire() as conn:
        if request.method == "PUT":
            body = await parse_body(request, ConflictPolicyRequest)
            assert body is not None
            await conflicts.set_organization_conflict_policy(conn, caller.org_id, body.conflict_policy)
        policy = await conflicts.organization_conflict_policy(conn, caller.org_id)
    return ok({"org_id": str(caller.org_id), "conflict_policy": policy})


ROUTES = [
    Route("/api/v1/sync/preview", start_preview, methods=["POST"]),
    Route("/api/v1/integrations/sync/preview", seed_preview, methods=["POST"]),
    Route("/api/v1/sync/queues/{queue_id}/conflicts", list_conflicts, methods=["GET"]),
    Route("/api/v1/organization/conflict-policy", conflict_policy, methods=["GET", "PUT"]),
]
