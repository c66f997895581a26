"""Messages on the wire (docs/contract.md section 3), validated at each consumer's edge.

Each model knows its own address (exchange, routing key). Commands are imperative.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal
from urllib.parse import urlsplit
from uuid import UUID

import orjson
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from shared import topology

if TYPE_CHECKING:
    from shared.repository.queue_lines import RetryLine


class StoreConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(min_length=1, max_length=2048)
    consumer_key: SecretStr
    consumer_secret: SecretStr

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip()
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"store.url must be an http(s) URL, got {value!r}")
        if parts.query or parts.fragment:
            raise ValueError("store.url must not carry a query string or fragment")
        return value.rstrip("/")

    @field_validator("consumer_key", "consumer_secret")
    @classmethod
    def _non_empty(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("must not be empty")
        return value


class SyncOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    email: str | None = Field(default=None, max_length=320)
    woo_customer_id: int | None = Field(default=None, ge=1)
    limit: int | None = Field(default=None, ge=1)
    role: str = Field(default="all", pattern=r"^[a-z_]{1,64}$")


class StartSync(BaseModel):
    """A sync request: page a store's customers into a new (or the idempotent) queue."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    exchange: ClassVar[str] = topology.REQUESTS_EXCHANGE
    routing_key: ClassVar[str] = topology.SYNC_CUSTOMERS_ROUTING_KEY

    org_id: UUID
    store: StoreConfig
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=255)
    requested_by: str | None = Field(default=None, max_length=255)
    options: SyncOptions = Field(default_factory=SyncOptions)
    # Set when the queue row was created up front (by the status API); the producer fills it.
    queue_id: UUID | None = None

    def to_body(self) -> bytes:
        """The wire form, secrets included: sync requests are the one place they travel."""
        data = self.model_dump(mode="json", exclude_none=True)
        data["store"]["consumer_key"] = self.store.consumer_key.get_secret_value()
        data["store"]["consumer_secret"] = self.store.consumer_secret.get_secret_value()
        return orjson.dumps(data)


class SyncReply(BaseModel):
    queue_id: UUID | None = None
    state: str | None = None
    total_count: int | None = None
    error: str | None = None


class CustomerLine(BaseModel):
    """One customer to sync. Carries the customer record, never store credentials: consumers
    read those from the woo_store row named by store_id."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    exchange: ClassVar[str] = topology.LINES_EXCHANGE
    routing_key: ClassVar[str] = topology.CUSTOMER_LINE_ROUTING_KEY

    line_id: UUID
    queue_id: UUID
    org_id: UUID
    store_id: UUID
    woo_customer_id: int
    customer: dict[str, Any]

    @classmethod
    def from_recorded(cls, line: RetryLine, *, store_id: UUID | None = None) -> CustomerLine:
        """The message for a line recorded in Postgres (a retried line, or one still in draft),
        carrying the customer data recorded with it. `store_id` replaces the line's own when
        the caller holds the store in hand (the producer resuming a request)."""
        resolved_store = store_id if store_id is not None else line.store_id
        if resolved_store is None:
            raise ValueError(f"line {line.line_id} has no store to sync from")
        return cls(line_id=line.line_id, queue_id=line.queue_id, org_id=line.org_id, store_id=resolved_store,
                   woo_customer_id=line.woo_customer_id, customer=line.customer_data)


LineOutcome = Literal["done", "failed", "retried", "dead_lettered", "cancelled"]


def describe_validation_error(exc: ValidationError, *, most: int = 5) -> str:
    """A failed validation for people: its first `most` problems, each as `field.path: message`
    (`body` when the whole document is wrong), joined by "; "."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()[:most])
