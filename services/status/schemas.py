"""Request and response models of the status API: they validate input at the edge and are the
source of the OpenAPI document's schemas (services/status/openapi.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, create_model

from services.status.http import PATTERN_HINTS
from shared.messages import STORE_URL_PATTERN
from shared.states import LineState, QueueState


# ---------------------------------------------------------------------------- requests
# The documented patterns are the rules: requests are checked with Python's `re`, as schema
# tools generate and check them, so what the OpenAPI document accepts, the API accepts.
_STRICT = ConfigDict(extra="forbid", regex_engine="python-re")
# ASCII classes only (no \s): Python's `re` and the ECMA regexes of JSON Schema tools disagree
# about which control characters are whitespace. The store URL's pattern is the sync request's
# own (shared/messages.py), which also checks what a pattern cannot and normalises the URL.
# WooCommerce keys are "ck_"/"cs_" and 40 hex digits; printable ASCII without spaces covers them.
CREDENTIAL_PATTERN = r"^[!-~]+$"
ROLE_PATTERN = r"^[a-z_]{1,64}$"
# Free text goes to text and jsonb columns, where PostgreSQL refuses NUL characters.
TEXT_PATTERN = r"^[^\x00]*$"
MAX_ID = 2**53 - 1  # WooCommerce ids; also the largest integer every JSON client reads exactly
MAX_LIMIT = 10_000_000
PATTERN_HINTS.update({
    STORE_URL_PATTERN: "must be the store's http(s) base URL, e.g. https://shop.example.com (no query string)",
    CREDENTIAL_PATTERN: "must be printable ASCII without spaces, like WooCommerce's ck_... and cs_... keys",
    ROLE_PATTERN: "must be a WooCommerce role name (lower-case letters and _), or 'all'",
    TEXT_PATTERN: "must not contain NUL characters",
})


class Store(BaseModel):
    model_config = _STRICT

    url: str = Field(max_length=2048, pattern=STORE_URL_PATTERN, description="the store's base URL, http or https",
                     examples=["https://shop.example.com"])
    consumer_key: str = Field(max_length=512, pattern=CREDENTIAL_PATTERN, repr=False, json_schema_extra={"writeOnly": True})
    consumer_secret: str = Field(max_length=512, pattern=CREDENTIAL_PATTERN, repr=False, json_schema_extra={"writeOnly": True})


class SyncRequestOptions(BaseModel):
    """Narrow a sync: one customer (email or WooCommerce id), a maximum count, a role."""

    # An incremental sweep covers the whole store: the document says so (if/then), so clients and
    # generated requests know it, and shared.messages.SyncOptions refuses it (422) all the same.
    model_config = ConfigDict(**_STRICT, json_schema_extra={
        "if": {"properties": {"mode": {"const": "incremental"}}, "required": ["mode"]},
        "then": {"properties": {"email": {"type": "null"}, "woo_customer_id": {"type": "null"},
                                "limit": {"type": "null"}, "role": {"const": "all"}}},
    })

    email: str | None = Field(default=None, max_length=320, pattern=TEXT_PATTERN)
    woo_customer_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    limit: int | None = Field(default=None, ge=1, le=MAX_LIMIT)
    role: str = Field(default="all", pattern=ROLE_PATTERN, description="WooCommerce role; 'all' by default")
    orders: Literal["auto", "bulk", "per_customer"] = Field(
        default="auto", description="how customers' orders are read: bulk pages every order of the store once, "
                                    "per_customer asks for each customer's, auto takes the one with fewer store requests")
    conflict_policy: Literal["store_wins", "local_wins"] | None = Field(
        default=None, description="what the sync does with fields edited locally; default: the organisation's policy")
    mode: Literal["full", "incremental"] = Field(
        default="full", description="full lists every customer; incremental sweeps only what changed since the store's "
                                    "last completed sweep (no email, woo_customer_id, limit or role with it)")


class StartSyncRequest(BaseModel):
    """POST /api/v1/sync/queues. The organisation is the API token's."""

    model_config = _STRICT

    store: Store
    idempotency_key: str | None = Field(
        default=None, min_length=1, max_length=255, pattern=TEXT_PATTERN,
        description="The same organisation and key always map to the same queue; a repeat does no duplicate work.",
    )
    requested_by: str | None = Field(default=None, max_length=255, pattern=TEXT_PATTERN, description="free text, recorded in the activity log")
    options: SyncRequestOptions = Field(default_factory=SyncRequestOptions)


class ActionRequest(BaseModel):
    """Optional body of retry and cancel: who asks, for the activity log."""

    model_config = _STRICT

    requested_by: str | None = Field(default=None, max_length=255, pattern=TEXT_PATTERN)


class WooCommerceConfig(BaseModel):
    model_config = _STRICT

    url: str = Field(max_length=2048, pattern=STORE_URL_PATTERN)
    consumerKey: str = Field(max_length=512, pattern=CREDENTIAL_PATTERN, repr=False)
    consumerSecret: str = Field(max_length=512, pattern=CREDENTIAL_PATTERN, repr=False)


class WooCommerceSyncOptions(BaseModel):
    """The seed's options. batchSize, batchDelayMs, maxRetries and initialBackoffMs are accepted
    for compatibility and ignored: batching and retries are the consumers' settings
    (WOOSYNC_BATCH_SIZE, WOOSYNC_MAX_ATTEMPTS, WOOSYNC_RETRY_DELAY_MS)."""

    model_config = _STRICT

    limit: int | None = Field(default=None, ge=1, le=MAX_LIMIT)
    email: str | None = Field(default=None, max_length=320, pattern=TEXT_PATTERN)
    wooCustomerId: int | None = Field(default=None, ge=1, le=MAX_ID)
    role: str | None = Field(default=None, pattern=ROLE_PATTERN)
    batchSize: int | None = Field(default=None, ge=1, le=10_000)
    batchDelayMs: int | None = Field(default=None, ge=0, le=3_600_000)
    maxRetries: int | None = Field(default=None, ge=0, le=100)
    initialBackoffMs: int | None = Field(default=None, ge=0, le=3_600_000)
    orders: Literal["auto", "bulk", "per_customer"] = Field(
        default="auto", description="how customers' orders are read (bulk, per_customer or auto, as in the sync route)")
    conflictPolicy: Literal["store_wins", "local_wins"] | None = Field(
        default=None, description="what the sync does with fields edited locally; default: the organisation's policy")


class WooCommerceSyncStart(BaseModel):
    """The seed route's `start` (the default action): config is required."""

    model_config = _STRICT

    action: Literal["start"] = "start"
    config: WooCommerceConfig
    org_id: UUID = Field(description="must be the API token's organisation")
    user_id: str | None = Field(default=None, max_length=255, pattern=TEXT_PATTERN)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=255, pattern=TEXT_PATTERN)
    options: WooCommerceSyncOptions | None = None


class WooCommerceQueueAction(BaseModel):
    """The seed route's `status`, `retry` and `force-done`: queue_id is required; config and
    options are accepted (the seed sent them with every action) and unused."""

    model_config = _STRICT

    action: Literal["status", "retry", "force-done", "pause", "resume"]
    queue_id: UUID
    org_id: UUID = Field(description="must be the API token's organisation")
    user_id: str | None = Field(default=None, max_length=255, pattern=TEXT_PATTERN)
    config: WooCommerceConfig | None = None
    options: WooCommerceSyncOptions | None = None


SEED_ACTIONS = ("start", "status", "retry", "force-done", "pause", "resume")
MAX_JOB_STORES = 100


def _all_stores(value: Any) -> Any:
    """A job's `stores`: a list, or "all" (every store the organisation has synced), read as None."""
    if value is None:
        raise ValueError('must be a list of stores or "all"')
    return None if value == "all" else value


def _stores_schema(store_model: str) -> dict[str, Any]:
    # Written out: the model reads "all" as None, which the generated schema would show as null.
    return {"anyOf": [
        {"type": "array", "items": {"$ref": f"#/components/schemas/{store_model}"}, "minItems": 1, "maxItems": MAX_JOB_STORES},
        {"const": "all"},
    ]}


class StartJobRequest(BaseModel):
    """POST /api/v1/sync/jobs: one sync job over several stores of the token's organisation,
    each store its own queue. `stores` lists them, or is "all": every store the organisation
    has synced, with the credentials each store last accepted."""

    model_config = _STRICT

    stores: Annotated[list[Store] | None, Field(min_length=1, max_length=MAX_JOB_STORES), BeforeValidator(_all_stores),
                      WithJsonSchema(_stores_schema("Store"))] = Field(
        description='the stores to sync, or "all": every store the organisation has synced (read back as null)'
    )
    idempotency_key: str | None = Field(
        default=None, min_length=1, max_length=255, pattern=TEXT_PATTERN,
        description="The same organisation and key always map to the same job; a repeat does no duplicate work.",
    )
    requested_by: str | None = Field(default=None, max_length=255, pattern=TEXT_PATTERN)
    options: SyncRequestOptions = Field(default_factory=SyncRequestOptions)


class OrchestrateRequest(BaseModel):
    """POST /api/v1/integrations/sync/orchestrate, the seeds' SyncOrchestrator: a job over
    several stores, in the seed route's words. `stores` lists their configurations, or is "all"."""

    model_config = _STRICT

    org_id: UUID = Field(description="must be the API token's organisation")
    user_id: str | None = Field(default=None, max_length=255, pattern=TEXT_PATTERN)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=255, pattern=TEXT_PATTERN)
    stores: Annotated[list[WooCommerceConfig] | None, Field(min_length=1, max_length=MAX_JOB_STORES),
                      BeforeValidator(_all_stores), WithJsonSchema(_stores_schema("WooCommerceConfig"))] = Field(
        description='the stores to sync, or "all": every store the organisation has synced (read back as null)'
    )
    options: WooCommerceSyncOptions | None = None


# ---------------------------------------------------------------------------- responses
class QueueStatus(BaseModel):
    """The queue status object (docs/contract.md section 7); counts are the trigger-maintained columns."""

    model_config = ConfigDict(extra="allow")

    id: UUID
    queue_name: str
    state: QueueState
    total_count: int = Field(ge=0)
    draft_count: int = Field(ge=0)
    queued_count: int = Field(ge=0, description="published, not yet claimed by a consumer")
    processing_count: int = Field(ge=0)
    done_count: int = Field(ge=0)
    failed_count: int = Field(ge=0)
    cancelled_count: int = Field(ge=0)
    progress: int = Field(ge=0, le=100, description="percent of lines done, failed or cancelled")
    is_action_required: bool
    items_per_min: float = Field(ge=0, description="lines finished per minute since the sync started")
    eta_seconds: int | None = Field(ge=0, description="null when unknown or finished")
    created_at: datetime
    updated_at: datetime
    plan: dict[str, Any] | None = Field(
        default=None,
        description="the sync's plan (docs/contract.md section 10): `orders` (the order strategy chosen: bulk or "
                    "per_customer), `pages` ({customers: {total, done}, orders: {total, done}}: the store's pages "
                    "of each, totals null until known) and `store_requests` (requests made to the store so far)",
    )
    preview: PreviewReport | None = Field(
        default=None, description="a preview's report (queues of kind preview only; docs/contract.md section 10)")


ConflictPolicyName = Literal["store_wins", "local_wins"]


class ConflictPolicyRequest(BaseModel):
    """PUT /api/v1/organization/conflict-policy (docs/contract.md section 10)."""

    model_config = _STRICT

    conflict_policy: ConflictPolicyName


class ConflictPolicy(BaseModel):
    """The organisation's conflict policy: syncs started from now on run under it unless their
    request names one (options.conflict_policy)."""

    org_id: UUID
    conflict_policy: ConflictPolicyName


class Conflict(BaseModel):
    """A field edited locally since woosync last wrote it, which the store says otherwise, and what
    the sync did with it (docs/contract.md section 10)."""

    model_config = ConfigDict(extra="allow")

    id: UUID
    queue_line_id: UUID
    customer_id: UUID | None
    woo_customer_id: int
    field: str
    local_value: Any
    store_value: Any
    resolution: Literal["kept_local", "store_written"] = Field(description="kept_local (local_wins) or store_written (store_wins)")
    created_at: datetime


class PreviewFailReason(BaseModel):
    reason: str | None
    count: int = Field(ge=0)


class PreviewSample(BaseModel):
    woo_customer_id: int
    email: str | None
    action: Literal["create", "update"]
    changes: dict[str, Any] = Field(description="{field: [old value, new value]}")


class PreviewEstimate(BaseModel):
    store_requests: int = Field(ge=0, description="the store requests the real sync would make")
    duration_seconds: float | None = Field(description="how long the preview took; null until it ends")


class PreviewReport(BaseModel):
    """What a sync would do (docs/contract.md section 10), read from the preview's lines."""

    model_config = ConfigDict(extra="allow")

    would_create: int = Field(ge=0)
    would_update: int = Field(ge=0)
    unchanged: int = Field(ge=0)
    would_fail: int = Field(ge=0)
    fail_reasons: list[PreviewFailReason]
    conflicts: int = Field(ge=0)
    field_changes: dict[str, int] = Field(description="per field, the existing rows a sync would change there")
    samples: list[PreviewSample]
    estimate: PreviewEstimate


class RetryResult(BaseModel):

    retried: int = Field(ge=0, description="failed lines moved back to draft and re-published")
    queue: QueueStatus


class QueueLine(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: UUID
    woo_customer_id: int
    email: str | None
    state: LineState
    process_count: int
    error_count: int
    error_message: str | None
    result_customer_id: UUID | None
    was_update: bool | None
    last_process_date: datetime | None
    created_at: datetime
    updated_at: datetime


class Activity(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: UUID
    queue_line_id: UUID | None
    activity_type: str
    status: str
    message: str | None
    details: Any = Field(description="JSON, shape depends on activity_type")
    created_at: datetime


class WooCommerceSyncStarted(QueueStatus):
    """The seed's start answer: {queueId, state, totalCount, progress, message} and the status object."""

    model_config = ConfigDict(extra="allow")

    queueId: UUID
    totalCount: int
    message: str


class JobStatus(BaseModel):
    """The job status object: state and counts derived from its queues (a job of one store reads
    as that store's sync), and each queue's status object in the order of its stores."""

    model_config = ConfigDict(extra="allow")

    id: UUID
    job_name: str
    state: QueueState
    store_count: int = Field(ge=1)
    total_count: int = Field(ge=0)
    draft_count: int = Field(ge=0)
    processing_count: int = Field(ge=0)
    done_count: int = Field(ge=0)
    failed_count: int = Field(ge=0)
    cancelled_count: int = Field(ge=0)
    progress: int = Field(ge=0, le=100)
    is_action_required: bool
    items_per_min: float = Field(ge=0, description="the queues' rates added up")
    eta_seconds: int | None = Field(ge=0, description="the slowest open queue's; null when unknown")
    idempotency_key: str | None
    created_at: datetime
    cancelled_at: datetime | None
    queues: list[QueueStatus]


class JobRetryResult(BaseModel):

    retried: int = Field(ge=0, description="failed lines of the job's queues moved back to draft and re-published")
    job: JobStatus


class OrchestrateStarted(JobStatus):
    """The seeds' orchestrate answer: the job, with jobId, totalCount, queueIds and message."""

    model_config = ConfigDict(extra="allow")

    jobId: UUID
    totalCount: int
    queueIds: list[UUID]
    message: str


class SeedProgress(BaseModel):
    """One event of the seeds' progress stream (its `data:` line): the seed's metrics first."""

    model_config = ConfigDict(extra="allow")

    processedCount: int = Field(ge=0, description="lines synced (done)")
    failedCount: int = Field(ge=0)
    itemsPerMin: float = Field(ge=0)
    etaSeconds: int | None = Field(ge=0)
    completionPercent: int = Field(ge=0, le=100, description="lines finished: done, failed or cancelled")
    state: QueueState
    totalCount: int = Field(ge=0)


def page_of(item: type[BaseModel], title: str) -> type[BaseModel]:
    return create_model(
        title,
        __config__=ConfigDict(title=title),
        items=(list[item], ...),  # type: ignore[valid-type]
        limit=(int, Field(ge=1)),
        offset=(int, Field(ge=0)),
        next_offset=(int | None, Field(description="offset of the next page; null on the last page")),
    )


QueuePage = page_of(QueueStatus, "QueuePage")
LinePage = page_of(QueueLine, "LinePage")
ActivityPage = page_of(Activity, "ActivityPage")
ConflictPage = page_of(Conflict, "ConflictPage")


class ErrorDetail(BaseModel):
    field: str
    message: str


class Error(BaseModel):

    success: Literal[False]
    error: str
    details: list[ErrorDetail] | None = None


class Health(BaseModel):
    ok: bool
    reason: str | None = None
