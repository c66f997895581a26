"""GET /openapi.json: the OpenAPI 3.1 document of the status API.

Schemas are generated from the pydantic models that validate requests (services/status/schemas.py),
so the document cannot drift from what the code accepts; paths are assembled here by hand.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic.json_schema import models_json_schema

from services.status import routes_schedules, routes_stores, schemas
from services.status.http import DEFAULT_PAGE_SIZE, MAX_OFFSET, MAX_PAGE_SIZE
from shared.messages import STORE_URL_MAX_LENGTH, STORE_URL_PATTERN
from shared.states import LINE_STATES

REF = "#/components/schemas/{model}"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _success(data_schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["success", "data"],
                    "properties": {"success": {"const": True}, "data": data_schema},
                }
            }
        },
    }


def _errors(*codes: int) -> dict[str, Any]:
    meaning = {
        400: "malformed input (bad UUID, query parameter, JSON, content type); the message names it",
        401: "missing, malformed, invalid or revoked API token",
        403: "org_id is not the token's organisation",
        404: "no such queue in the token's organisation",
        409: "the queue's (or job's) state does not allow this action, a job over \"all\" stores when the "
             "organisation has synced none, or a schedule of a store the organisation has not synced",
        413: "request body too large",
        422: "the request body fails validation; details list each problem",
        429: "a limit of the organisation is reached (the message names it and its variable): syncs started "
             "per minute (with Retry-After in seconds), syncs open at once, or event streams open at once",
        503: "the database or the message broker is unavailable; try again",
        500: "the seeds' start: the store failed the connection test (\"Failed to connect to WooCommerce: ...\"); "
             "nothing was recorded",
    }
    return {
        str(code): {"description": meaning[code], "content": {"application/json": {"schema": _ref("Error")}}}
        for code in codes
    }


_QUEUE_ID = {
    "name": "queue_id", "in": "path", "required": True,
    "schema": {"type": "string", "format": "uuid"}, "description": "the sync queue's id",
}
_PAGE = [
    {"name": "limit", "in": "query", "required": False,
     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "default": DEFAULT_PAGE_SIZE}},
    {"name": "offset", "in": "query", "required": False,
     "schema": {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0}},
]
_READ_ERRORS = (400, 401, 404, 503)


def _json_body(name: str, *, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": _ref(name)}}}


def _paths() -> dict[str, Any]:
    secured = [{"bearerAuth": []}]
    health = {
        "200": {"description": "ok", "content": {"application/json": {"schema": _ref("Health")}}},
        "503": {"description": "not ok, with the reason", "content": {"application/json": {"schema": _ref("Health")}}},
    }
    return {
        "/healthz": {"get": {"operationId": "healthz", "summary": "Liveness", "security": [], "responses": health}},
        "/readyz": {"get": {"operationId": "readyz", "summary": "Readiness: PostgreSQL and RabbitMQ answer",
                            "security": [], "responses": health}},
        "/api/v1/sync/queues": {
            "post": {
                "operationId": "startSync",
                "summary": "Start a sync of the store's customers (or find the one with this idempotency key)",
                "security": secured,
                "requestBody": _json_body("StartSyncRequest"),
                "responses": {"202": _success(_ref("QueueStatus"), "accepted: the queue's status"),
                              **_errors(400, 401, 413, 422, 429, 503)},
            },
            "get": {
                "operationId": "listQueues",
                "summary": "The organisation's sync queues, newest first",
                "security": secured,
                "parameters": _PAGE,
                "responses": {"200": _success(_ref("QueuePage"), "a page of queues"), **_errors(400, 401, 503)},
            },
        },
        "/api/v1/sync/queues/{queue_id}": {
            "get": {
                "operationId": "getQueue",
                "summary": "Status of one queue (counts from the trigger-maintained columns)",
                "security": secured,
                "parameters": [_QUEUE_ID],
                "responses": {"200": _success(_ref("QueueStatus"), "the queue's status"), **_errors(*_READ_ERRORS)},
            }
        },
        "/api/v1/sync/queues/{queue_id}/lines": {
            "get": {
                "operationId": "listLines",
                "summary": "The queue's lines in WooCommerce id order, with their errors",
                "security": secured,
                "parameters": [
                    _QUEUE_ID,
                    {"name": "state", "in": "query", "required": False,
                     "schema": {"type": "string", "enum": list(LINE_STATES)}},
                    *_PAGE,
                ],
                "responses": {"200": _success(_ref("LinePage"), "a page of lines"), **_errors(*_READ_ERRORS)},
            }
        },
        "/api/v1/sync/queues/{queue_id}/activity": {
            "get": {
                "operationId": "listActivity",
                "summary": "The queue's activity log, newest first",
                "security": secured,
                "parameters": [_QUEUE_ID, *_PAGE],
                "responses": {"200": _success(_ref("ActivityPage"), "a page of activity"), **_errors(*_READ_ERRORS)},
            }
        },
        "/api/v1/sync/queues/{queue_id}/events": {
            "get": {
                "operationId": "queueEvents",
                "summary": "Server-Sent Events: `event: status` (data: the QueueStatus JSON) on connect and on "
                           "every change of counts or state, a comment line every 15 s, and the end of the "
                           "stream after the terminal state (`event: gone` if the queue is deleted)",
                "security": secured,
                "parameters": [_QUEUE_ID],
                "responses": {
                    "200": {"description": "the event stream", "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                    **_errors(*_READ_ERRORS, 429),
                },
            }
        },
        "/api/v1/sync/queues/{queue_id}/retry": {
            "post": {
                "operationId": "retryFailedLines",
                "summary": "Failed lines back to draft and re-published (idempotent: a repeat finds none)",
                "security": secured,
                "parameters": [_QUEUE_ID],
                "requestBody": _json_body("ActionRequest", required=False),
                "responses": {"200": _success(_ref("RetryResult"), "lines retried"),
                              **_errors(400, 401, 404, 409, 413, 422, 429, 503)},
            }
        },
        **{
            f"/api/v1/sync/queues/{{queue_id}}/{action}": {
                "post": {
                    "operationId": f"{action}Sync",
                    "summary": summary,
                    "security": secured,
                    "parameters": [_QUEUE_ID],
                    "requestBody": _json_body("ActionRequest", required=False),
                    "responses": {"200": _success(_ref("QueueStatus"), f"the queue, {action}d"),
                                  **_errors(400, 401, 404, 409, 413, 422, 503)},
                }
            }
            for action, summary in (
                ("pause", "Pause (docs/contract.md section 10): no more lines are published; lines already queued "
                          "finish; idempotent; 409 on a finished queue"),
                ("resume", "Resume a paused sync where it stopped; idempotent; 409 on a finished queue"),
            )
        },
        "/api/v1/sync/queues/{queue_id}/cancel": {
            "post": {
                "operationId": "cancelSync",
                "summary": "Cancel (the seeds' force-done): draft lines end cancelled; idempotent",
                "security": secured,
                "parameters": [_QUEUE_ID],
                "requestBody": _json_body("ActionRequest", required=False),
                "responses": {"200": _success(_ref("QueueStatus"), "the cancelled queue"), **_errors(400, 401, 404, 409, 413, 422, 503)},
            }
        },
        "/api/v1/integrations/woocommerce/sync/customers": {
            "post": {
                "operationId": "woocommerceSyncCustomers",
                "summary": "The MantisNXT seeds' route, answering as the seed did: action start (tests the store "
                           "first), status, retry or force-done",
                "security": secured,
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "oneOf": [_ref("WooCommerceSyncStart"), _ref("WooCommerceQueueAction")]}}}},
                "responses": {
                    "200": _success(_ref("WooCommerceSyncStarted"), "start (the sync runs in the background), "
                                    "status, retry (adds `retried`) or force-done: the queue with queueId and totalCount"),
                    **_errors(400, 401, 403, 404, 409, 413, 429, 500, 503),
                },
            }
        },
        **_job_paths(secured),
        **_preview_paths(secured),
        **_schedule_paths(secured),
        "/api/v1/sync/stores": {
            "get": {
                "operationId": "listStores",
                "summary": "The organisation's stores by URL, each with how current it is: its last completed sweep "
                           "(or full bulk sync), the seconds since, its incremental schedule and whether that is overdue",
                "security": secured,
                "parameters": _PAGE,
                "responses": {"200": _success(_ref("StorePage"), "a page of stores"), **_errors(400, 401, 503)},
            }
        },
    }


def _schedule_paths(secured: list[dict[str, Any]]) -> dict[str, Any]:
    """A store's periodic sweep and full sync (docs/contract.md section 10, "Schedules")."""
    return {
        "/api/v1/sync/schedules": {
            "get": {
                "operationId": "listSchedules",
                "summary": "The organisation's schedules by store URL and kind, with their next and last runs",
                "security": secured,
                "parameters": _PAGE,
                "responses": {"200": _success(_ref("SchedulePage"), "a page of schedules"), **_errors(400, 401, 503)},
            },
            "put": {
                "operationId": "setSchedule",
                "summary": "Create or update a store's incremental or full schedule (every_s at least 60; enabled "
                           "false keeps it without running it). 409 when the organisation has not synced the store: "
                           "a schedule runs with the credentials the store accepted",
                "security": secured,
                "requestBody": _json_body("ScheduleRequest"),
                "responses": {"200": _success(_ref("SyncSchedule"), "the schedule, set"),
                              **_errors(400, 401, 409, 413, 422, 503)},
            },
            "delete": {
                "operationId": "deleteSchedules",
                "summary": "Delete a store's schedule of one kind, or of both kinds without `kind`; idempotent",
                "security": secured,
                "parameters": [
                    {"name": "store_url", "in": "query", "required": True, "description": "the store's base URL",
                     "schema": {"type": "string", "maxLength": STORE_URL_MAX_LENGTH, "pattern": STORE_URL_PATTERN}},
                    {"name": "kind", "in": "query", "required": False, "description": "both kinds when left out",
                     "schema": {"type": "string", "enum": ["incremental", "full"]}},
                ],
                "responses": {"200": _success(_ref("SchedulesDeleted"), "how many schedules were deleted"),
                              **_errors(400, 401, 503)},
            },
        }
    }


def _preview_paths(secured: list[dict[str, Any]]) -> dict[str, Any]:
    """Previews, a queue's conflicts and the organisation's conflict policy (docs/contract.md section 10)."""
    return {
        "/api/v1/sync/preview": {
            "post": {
                "operationId": "startPreview",
                "summary": "Start a preview: a queue of kind preview that enumerates and maps the store's customers "
                           "as a sync would and writes no customer row; its status object carries the report",
                "security": secured,
                "requestBody": _json_body("StartSyncRequest"),
                "responses": {"202": _success(_ref("QueueStatus"), "accepted: the preview queue's status"),
                              **_errors(400, 401, 413, 422, 429, 503)},
            }
        },
        "/api/v1/integrations/sync/preview": {
            "post": {
                "operationId": "seedPreview",
                "summary": "The seeds' preview: body as the seeds' start (config, org_id, options), tests the store "
                           "first and answers as the seeds' routes do",
                "security": secured,
                "requestBody": _json_body("WooCommerceSyncStart"),
                "responses": {"200": _success(_ref("WooCommerceSyncStarted"), "the preview queue with queueId and "
                                              "totalCount"),
                              **_errors(400, 401, 403, 409, 413, 429, 500, 503)},
            }
        },
        "/api/v1/sync/queues/{queue_id}/conflicts": {
            "get": {
                "operationId": "listConflicts",
                "summary": "The queue's conflicts: fields edited locally that the store says otherwise, with the "
                           "local and store values and what the sync did",
                "security": secured,
                "parameters": [_QUEUE_ID, *_PAGE],
                "responses": {"200": _success(_ref("ConflictPage"), "a page of conflicts"), **_errors(*_READ_ERRORS)},
            }
        },
        "/api/v1/organization/conflict-policy": {
            "get": {
                "operationId": "getConflictPolicy",
                "summary": "The organisation's conflict policy (store_wins unless set)",
                "security": secured,
                "responses": {"200": _success(_ref("ConflictPolicy"), "the policy"), **_errors(400, 401, 503)},
            },
            "put": {
                "operationId": "setConflictPolicy",
                "summary": "Set the organisation's conflict policy: syncs started from now on run under it unless "
                           "their request names one",
                "security": secured,
                "requestBody": _json_body("ConflictPolicyRequest"),
                "responses": {"200": _success(_ref("ConflictPolicy"), "the policy, set"),
                              **_errors(400, 401, 413, 422, 503)},
            },
        },
    }


_JOB_ID = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"},
           "description": "the sync job's id"}


def _job_paths(secured: list[dict[str, Any]]) -> dict[str, Any]:
    """Sync jobs over several stores, and the seeds' orchestrate and progress routes."""
    return {
        "/api/v1/sync/jobs": {
            "post": {
                "operationId": "startJob",
                "summary": "Start one sync job over several stores (listed, or every store the organisation has "
                           "synced), each store its own queue; or find the job with this idempotency key",
                "security": secured,
                "requestBody": _json_body("StartJobRequest"),
                "responses": {"202": _success(_ref("JobStatus"), "accepted: the job's status"),
                              **_errors(400, 401, 409, 413, 422, 429, 503)},
            }
        },
        "/api/v1/sync/jobs/{job_id}": {
            "get": {
                "operationId": "getJob",
                "summary": "Status of one job: state and counts derived from its queues, and each queue's status",
                "security": secured,
                "parameters": [_JOB_ID],
                "responses": {"200": _success(_ref("JobStatus"), "the job's status"), **_errors(*_READ_ERRORS)},
            }
        },
        "/api/v1/sync/jobs/{job_id}/retry": {
            "post": {
                "operationId": "retryJob",
                "summary": "Retry the failed lines of every queue of the job",
                "security": secured,
                "parameters": [_JOB_ID],
                "requestBody": _json_body("ActionRequest", required=False),
                "responses": {"200": _success(_ref("JobRetryResult"), "lines retried"),
                              **_errors(400, 401, 404, 409, 413, 422, 429, 503)},
            }
        },
        **{
            f"/api/v1/sync/jobs/{{job_id}}/{action}": {
                "post": {
                    "operationId": f"{action}Job",
                    "summary": summary,
                    "security": secured,
                    "parameters": [_JOB_ID],
                    "requestBody": _json_body("ActionRequest", required=False),
                    "responses": {"200": _success(_ref("JobStatus"), f"the job, {action}d"),
                                  **_errors(400, 401, 404, 409, 413, 422, 503)},
                }
            }
            for action, summary in (
                ("pause", "Pause every queue of the job that has not ended (as a sync's pause): the job reads "
                          "paused; idempotent; 409 when every queue has ended"),
                ("resume", "Resume every paused queue of the job where it stopped; idempotent; 409 when every "
                           "queue has ended"),
            )
        },
        "/api/v1/sync/jobs/{job_id}/cancel": {
            "post": {
                "operationId": "cancelJob",
                "summary": "Cancel every queue of the job that has not ended; idempotent",
                "security": secured,
                "parameters": [_JOB_ID],
                "requestBody": _json_body("ActionRequest", required=False),
                "responses": {"200": _success(_ref("JobStatus"), "the cancelled job"),
                              **_errors(400, 401, 404, 409, 413, 422, 503)},
            }
        },
        "/api/v1/integrations/sync/orchestrate": {
            "post": {
                "operationId": "orchestrateSync",
                "summary": "The MantisNXT seeds' SyncOrchestrator: one job over several stores (listed, or \"all\" "
                           "the organisation has synced), in the seed route's words",
                "security": secured,
                "requestBody": _json_body("OrchestrateRequest"),
                "responses": {"200": _success(_ref("OrchestrateStarted"), "the job, started"),
                              **_errors(400, 401, 403, 409, 413, 429, 503)},
            }
        },
        "/api/v1/integrations/sync/progress/{job_id}": {
            "get": {
                "operationId": "seedProgress",
                "summary": "The MantisNXT seeds' progress stream for a job or a single queue id: Server-Sent Events, "
                           "each an unnamed `data:` line holding a SeedProgress object, on connect and on every "
                           "change, a comment line every 15 s, and the end of the stream after the terminal state",
                "security": secured,
                "parameters": [{**_JOB_ID, "description": "a sync job's id, or a sync queue's id"}],
                "responses": {
                    "200": {"description": "the event stream (data: SeedProgress)",
                            "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                    **_errors(*_READ_ERRORS, 429),
                },
            }
        },
    }


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    inputs = [schemas.StartSyncRequest, schemas.ActionRequest, schemas.WooCommerceSyncStart, schemas.WooCommerceQueueAction,
              schemas.StartJobRequest, schemas.OrchestrateRequest, schemas.ConflictPolicyRequest,
              routes_schedules.ScheduleRequest]
    outputs = [schemas.QueueStatus, schemas.RetryResult, schemas.WooCommerceSyncStarted, schemas.JobStatus,
               schemas.JobRetryResult, schemas.OrchestrateStarted, schemas.SeedProgress, schemas.QueuePage,
               schemas.LinePage, schemas.ActivityPage, schemas.ConflictPage, schemas.ConflictPolicy, schemas.Error,
               schemas.Health, routes_schedules.SyncSchedule, routes_schedules.SchedulePage,
               routes_schedules.SchedulesDeleted, routes_stores.StorePage]
    _, generated = models_json_schema(
        [(model, "validation") for model in inputs] + [(model, "serialization") for model in outputs],
        ref_template=REF,
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "woosync status API",
            "version": "1",
            "description": "Progress of WooCommerce customer syncs. Every answer is "
                           '{"success": true, "data": ...} or {"success": false, "error": "...", "details"?: [...]}. '
                           "/api routes need 'Authorization: Bearer <api_token>' and see only the token's organisation.",
        },
        "paths": _paths(),
        "components": {
            "schemas": generated.get("$defs", {}),
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }
