"""Messages on the wire (docs/contract.md section 3), validated at each consumer's edge.

Each model knows its own address (exchange, routing key). Commands are imperative.
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING, Any, ClassVar, Literal
from uuid import UUID

import idna
import orjson
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from shared import topology
from shared.settings import rate_limit_problem

if TYPE_CHECKING:
    from shared.repository.queue_lines import RetryLine


# A store's address as the status API documents it (its OpenAPI pattern): http or https, a host
# name or IPv4 address, a port from 1 to 65535, a path of printable ASCII; no user name or
# password, query string or fragment. StoreConfig accepts every URL this matches, and also
# upper-case schemes, Unicode host names (IDNA) and bracketed IPv6 addresses, which it
# normalises; tests/unit/test_messages.py holds the two to each other.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PORT = r"(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
_PATH = r'(?:/[!-"$->@-~]*)?'  # printable ASCII but "?" and "#"
STORE_URL_PATTERN = rf"^https?://{_LABEL}(?:\.{_LABEL})*\.?(?::{_PORT})?{_PATH}$"
STORE_URL_MAX_LENGTH = 2048
_HOST_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def normal_store_url(url: str) -> str:
    """The one form of a store's base URL woosync connects to and records, or ValueError saying
    what is wrong (never repeating the URL: it may hold a password)."""
    url = url.strip()
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise ValueError("must not contain spaces or control characters")
    if "?" in url or "#" in url:
        raise ValueError("must not carry a query string or fragment")
    scheme, separator, rest = url.partition("://")
    scheme = scheme.lower()
    if not separator or scheme not in _DEFAULT_PORTS:
        raise ValueError("must be an http or https URL, e.g. https://shop.example.com")
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        raise ValueError("must not contain a user name or password (user:password@): the store's keys go in "
                         "consumer_key and consumer_secret")
    host, port_text = _split_authority(authority)
    port = _port(port_text)
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    normal = f"{scheme}://{netloc}{(slash + path).rstrip('/')}"
    if len(normal) > STORE_URL_MAX_LENGTH:
        raise ValueError(f"must be at most {STORE_URL_MAX_LENGTH} characters")
    return normal


def _split_authority(authority: str) -> tuple[str, str]:
    """(normal host, port text) of `host[:port]` or `[ipv6][:port]`."""
    if authority.startswith("["):
        address, bracket, after = authority[1:].partition("]")
        if not bracket or (after and not after.startswith(":")) or "%" in address:
            raise ValueError("must name the store's host: an IPv6 address goes in brackets, without a zone")
        try:
            return f"[{ipaddress.IPv6Address(address).compressed}]", after[1:]
        except ValueError:
            raise ValueError("host is not a valid IPv6 address") from None
    host, _, port_text = authority.partition(":")
    if not host:
        raise ValueError("must name the store's host, e.g. https://shop.example.com")
    if not host.isascii():
        try:
            host = idna.encode(host.rstrip("."), uts46=True).decode("ascii")
        except idna.IDNAError:
            raise ValueError(f"host {host[:100]!r} is not a valid host name") from None
    host = host.lower().rstrip(".")
    if not _HOST_NAME.fullmatch(host):
        raise ValueError(f"host {host[:100]!r} is not a valid host name (letters, digits and '-' in dot-separated "
                         "labels of at most 63)")
    return host, port_text


def _port(text: str) -> int | None:
    if not text:
        return None
    if not re.fullmatch(r"[0-9]{1,5}", text):
        raise ValueError("port must be a number from 1 to 65535")
    port = int(text)
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is out of range (1-65535)")
    return port


class StoreConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(min_length=1, max_length=STORE_URL_MAX_LENGTH)
    consumer_key: SecretStr
    consumer_secret: SecretStr
    # Requests/s this store's host may get from the whole fleet (docs/contract.md section 10);
    # None: WOOSYNC_STORE_RATE_LIMIT.
    rate_limit: float | None = None

    @field_validator("url")
    @classmethod
    def _store_url(cls, value: str) -> str:
        return normal_store_url(value)

    @field_validator("rate_limit", mode="before")
    @classmethod
    def _rate_limit(cls, value: object) -> object:
        return None if value is None else rate_limit_problem(value)

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
    # How customers' orders are read (docs/contract.md section 10): `bulk` pages every order of
    # the store once into the order mirror, `per_customer` asks for each customer's, `auto` takes
    # the one needing fewer store requests (one customer: always per_customer).
    orders: Literal["auto", "bulk", "per_customer"] = "auto"
    # What a sync does with fields edited locally (docs/contract.md section 10); None: the
    # organisation's policy, recorded on the queue when it is created.
    conflict_policy: Literal["store_wins", "local_wins"] | None = None
    # `full` lists every customer of the store; `incremental` sweeps only what changed since the
    # store's last completed sweep (docs/contract.md section 10): the whole store, so neither a
    # customer filter, a limit nor a role other than all.
    mode: Literal["full", "incremental"] = "full"

    @model_validator(mode="after")
    def _incremental_sweeps_the_whole_store(self) -> SyncOptions:
        if self.mode == "incremental" and (self.email or self.woo_customer_id or self.limit is not None
                                           or self.role != "all"):
            raise ValueError("mode incremental sweeps the whole store: it takes no email, woo_customer_id, "
                             "limit or role other than all")
        return self


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


# A sync request is UTF-8 JSON: content_type application/json (a charset parameter, if any, says
# utf-8), or no content_type at all, as publishers written before it was checked send
# (docs/contract.md section 3).
SYNC_REQUEST_CONTENT_TYPE = "application/json"


def content_type_problem(content_type: str | None) -> str | None:
    """Why a sync request with this content_type is refused, or None when it is accepted."""
    if not content_type:
        return None
    media_type, _, parameters = content_type.partition(";")
    shown = content_type[:100]
    if media_type.strip().lower() != SYNC_REQUEST_CONTENT_TYPE:
        return f"content type {shown!r} is not accepted: a sync request is {SYNC_REQUEST_CONTENT_TYPE}"
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            return f"content type {shown!r} is not accepted: a sync request is {SYNC_REQUEST_CONTENT_TYPE} in UTF-8"
    return None


# What stands in for a credential in a sync request kept after it was refused (a dead letter).
REMOVED = "[removed]"
_CREDENTIAL_KEYS = frozenset({"consumer_key", "consumer_secret", "consumerKey", "consumerSecret"})


def redacted_sync_request(body: bytes) -> tuple[bytes, str]:
    """A sync request's body fit to rest in a dead-letter queue, and a note saying what was done.

    In a JSON body every consumer key and secret (at any depth, as the API's and the seeds' field
    names spell them) becomes "[removed]", and a user name or password in a `url` too. A body
    that is not JSON cannot be searched for them, so none of it is kept."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return b"", f"removed: not JSON ({len(body)} bytes), it may hold credentials"
    removed = 0

    def redact(value: Any, key: str | None = None) -> Any:
        nonlocal removed
        if key in _CREDENTIAL_KEYS:
            removed += 1
            return REMOVED
        if isinstance(value, dict):
            return {k: redact(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [redact(v) for v in value]
        if key == "url" and isinstance(value, str):
            without = _without_userinfo(value)
            removed += without != value
            return without
        return value

    redacted = orjson.dumps(redact(data))
    return redacted, f"credentials removed ({removed})" if removed else "kept: no credentials in it"


def _without_userinfo(url: str) -> str:
    scheme, separator, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    if not separator or "@" not in authority:
        return url
    return f"{scheme}://{REMOVED}@{authority.rpartition('@')[2]}{slash}{path}"


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
