"""/api/v1/sync/jobs...: start a sync job over several stores, read it, pause, resume and cancel
it, retry it (docs/contract.md section 7).

As on every route, the token is checked first and a job is read within its organisation:
another organisation's job is indistinguishable from an unknown one (404).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.status import actions, job_actions
from services.status.http import ok, only_query, parse_body, path_uuid
from services.status.presenters import queue_status_json
from services.status.request_context import caller_of, context
from services.status.schemas import ActionRequest, StartJobRequest
from shared.repository.jobs import JobStatus


def job_json(job: JobStatus) -> dict[str, Any]:
    """The job status object: the job's state and counts derived from its queues, and the
    status object of each queue, in the order of its stores."""
    totals = job.totals
    return {
        "id": str(job.id),
        "job_name": job.job_name,
        "state": totals.state,
        "store_count": job.store_count,
        "total_count": totals.total_count,
        "draft_count": totals.draft_count,
        "processing_count": totals.processing_count,
        "done_count": totals.done_count,
        "failed_count": totals.failed_count,
        "cancelled_count": totals.cancelled_count,
        "progress": totals.progress,
        "is_action_required": totals.is_action_required,
        "items_per_min": totals.items_per_min,
        "eta_seconds": totals.eta_seconds,
        "idempotency_key": job.idempotency_key,
        "created_at": job.created_at.isoformat(),
        "cancelled_at": job.cancelled_at.isoformat() if job.cancelled_at is not None else None,
        "queues": [queue_status_json(queue) for queue in job.queues],
    }


async def start_job(request: Request) -> Response:
    ctx = context(request)
    caller = await caller_of(request)
    only_query(request)
    body = await parse_body(request, StartJobRequest)
    assert body is not None
    listed = None  # "all": every store the organisation has synced
    if body.stores is not None:
        listed = [actions.store_config(store.url, store.consumer_key, store.consumer_secret, field=f"stores.{index}")
                  for index, store in enumerate(body.stores)]
    job, _ = await job_actions.start_job(
        ctx, caller, listed_stores=listed, idempotency_key=body.idempotency_key,
        options=actions.sync_options(**body.options.model_dump()), requested_by=body.requested_by,
    )
    return ok(job_json(job), status=202)


async def get_job(request: Request) -> Response:
    caller = await caller_of(request)
    job_id = path_uuid(request, "job_id")
    only_query(request)
    return ok(job_json(await job_actions.job_status(context(request), caller, job_id)))


async def cancel_job(request: Request) -> Response:
    caller = await caller_of(request)
    job_id = path_uuid(request, "job_id")
    only_query(request)
    body = await parse_body(request, ActionRequest, optional=True)
    job = await job_actions.cancel_job(context(request), caller, job_id, requested_by=body.requested_by if body else None)
    return ok(job_json(job))


async def pause_job(request: Request) -> Response:
    return await _set_job_paused(request, paused=True)


async def resume_job(request: Request) -> Response:
    return await _set_job_paused(request, paused=False)


async def _set_job_paused(request: Request, *, paused: bool) -> Response:
    caller = await caller_of(request)
    job_id = path_uuid(request, "job_id")
    only_query(request)
    body = await parse_body(request, ActionRequest, optional=True)
    job = await job_actions.set_job_paused(context(request), caller, job_id, paused=paused,
                                           requested_by=body.requested_by if body else None)
    return ok(job_json(job))


async def retry_job(request: Request) -> Response:
    caller = await caller_of(request)
    job_id = path_uuid(request, "job_id")
    only_query(request)
    body = await parse_body(request, ActionRequest, optional=True)
    retried, job = await job_actions.retry_job(context(request), caller, job_id,
                                               requested_by=body.requested_by if body else None)
    return ok({"retried": retried, "job": job_json(job)})


ROUTES = [
    Route("/api/v1/sync/jobs", start_job, methods=["POST"]),
    Route("/api/v1/sync/jobs/{job_id}", get_job, methods=["GET"]),
    Route("/api/v1/sync/jobs/{job_id}/pause", pause_job, methods=["POST"]),
    Route("/api/v1/sync/jobs/{job_id}/resume", resume_job, methods=["POST"]),
    Route("/api/v1/sync/jobs/{job_id}/cancel", cancel_job, methods=["POST"]),
    Route("/api/v1/sync/jobs/{job_id}/retry", retry_job, methods=["POST"]),
]
