"""Request and response models of the status API: they validate input at the edge and are the
source of the OpenAPI document's schemas (services/status/openapi.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

from shared.messages import StoreConfig, SyncOptions

QueueState = Literal["draft", "processing", "partial", "done", "failed", "cancelled"]
LineState = Literal["draft", "processing", "done", "failed", "cancelled"]
TERMINAL_STATES = frozenset({"done", "failed", "partial", "cancelled"})


# ---------------------------------------------------------------------------- requests
class StartSyncRequest(BaseModel):
    """POST /api/v1/sync/queues. The organisation is the API token's."""

    model_config = ConfigDict(extra="forbid")

    store: StoreConfig
    idempotency_key: str | None = Field(
        default=None, min_length=1, max_length=255,
        description="The same organisation and key always map to the same queue; a repeat does no duplicate work.",
    )
    requested_by: str | None = Field(default=None, max_length=255, description="free text, recorded in the activity log")
    options: SyncOptions = Field(default_factory=SyncOptions)


class ActionRequest(BaseModel):
    """Optional body of retry and cancel: who asks, for the activity log."""

    model_config = ConfigDict(extra="forbid")

    requested_by: str | None = Field(default=None, max_length=255)


class WooCommerceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2048)
    consumerKey: str = Field(min_length=1, max_length=512)
    consumerSecret: str = Field(min_length=1, max_length=512)


class WooCommerceSyncOptions(BaseModel):
    """The seed's options. batchSize, batchDelayMs, maxRetries and initialBackoffMs are accepted
    for compatibility and ignored: batching and retries are the consumers' settings
    (WOOSYNC_BATCH_SIZE, WOOSYNC_MAX_ATTEMPTS, WOOSYNC_RETRY_DELAY_MS)."""

    model_config = ConfigDict(extra="forbid")

    limit: int | None = Field(default=None, ge=1)
    email: str | None = Field(default=None, max_length=320)
    wooCustomerId: int | None = Field(default=None, ge=1)
    role: str | None = Field(default=None, pattern=r"^[a-z_]{1,64}$")
    batchSize: int | None = Field(default=None, ge=1)
    batchDelayMs: int | None = Field(default=None, ge=0)
    maxRetries: int | None = Field(default=None, ge=0)
    initialBackoffMs: int | None = Field(default=None, ge=0)


class WooCommerceSyncRequest(BaseModel):
    """POST /api/v1/integrations/woocommerce/sync/customers: the MantisNXT route's request."""

    model_config = ConfigDict(extra="forbid")

    config: WooCommerceConfig | None = None
    org_id: str = Field(description="must be the API token's organisation")
    user_id: str | None = Field(default=None, max_length=255)
    action: Literal["start", "status", "retry", "force-done"] = "start"
    queue_id: str | None = None
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=255)
    options: WooCommerceSyncOptions | None = None

    @field_validator("org_id", "queue_id")
    @classmethod
    def _uuid_text(cls, value: str | None) -> str | None:
        if value is not None:
            UUID(value)  # ValueError -> a validation error naming the field
        return value


# ---------------------------------------------------------------------------- responses
class QueueStatus(BaseModel):
    """The queue status object (SPEC section 7); counts are the trigger-maintained columns."""

    model_config = ConfigDict(extra="allow")

    id: UUID
    queue_name: str
    state: QueueState
    total_count: int = Field(ge=0)
    draft_count: int = Field(ge=0)
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
