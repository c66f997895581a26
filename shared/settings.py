"""Typed settings read from WOOSYNC_* environment variables (and an optional .env file).

One object, built once by each composition root and passed down; nothing reads the environment
at import time. A missing or malformed value fails fast with a message naming the variable.
"""

from __future__ import annotations

import base64
import binascii
import math
import urllib.parse
from functools import cached_property
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_serializer, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.credentials import CredentialsCipher
from shared.woocommerce.store_addresses import Network, parse_networks


class SettingsError(Exception):
    """The environment holds a value woosync cannot use; the message names the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="WOOSYNC_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    # Connections
    database_url: SecretStr = SecretStr("postgresql://postgres@127.0.0.1:5432/woosync")
    amqp_url: SecretStr = SecretStr("amqp://guest:guest@127.0.0.1:5672/")

    # Observability. None means "the service's default" (producer 9101, consumer 9102); 0 picks a free port.
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["console", "json"] = "console"

    # Delivery
    max_attempts: int = Field(default=3, ge=1, le=100)
    retry_delay_ms: int = Field(default=2000, ge=0, le=3_600_000)
    prefetch: int = Field(default=300, ge=1, le=10_000)
    producer_concurrency: int = Field(default=4, ge=1, le=100, description="sync requests enumerated at once")
    # Requests a producer holds (unacked) to choose from fairly; unset: 4 x producer_concurrency.
    producer_prefetch: int | None = Field(default=None, ge=1, le=1000, validate_default=True)
    # Slots one organisation may hold at once; unset: half of producer_concurrency, rounded up.
    producer_org_concurrency: int | None = Field(default=None, ge=1, le=100, validate_default=True)
    store_cache_ttl_s: float = Field(default=60.0, ge=0, description="how long a consumer reuses store credentials")
    dead_letter_ttl_hours: int = Field(default=24 * 14, ge=1)
    dead_letter_max_length: int = Field(default=1_000_000, ge=1)
    # Each dead-letter queue also keeps at most this many bytes of message bodies (1 GiB).
    dead_letter_max_bytes: int = Field(default=1024**3, ge=1024)

    # Dispatch (docs/architecture.md "Dispatch"): lines of one sync queued or processing at once;
    # unset: WOOSYNC_PREFETCH, one consumer's hand, so every sync keeps a consumer busy and the
    # lines queue holds at most window x active syncs whatever their size.
    dispatch_window: int | None = Field(default=None, ge=1, le=100_000)
    # A line queued this long without a claim (its message lost with a dispatcher that died
    # between recording and publishing) is published again; longer than the longest retry delay.
    dispatch_republish_after_s: float = Field(default=600.0, gt=0)
    dispatch_interval_s: float = Field(default=0.2, gt=0, le=60)

    # Page work (docs/architecture.md "Page work"): a full sync's pages of customers and orders,
    # taken by any producer. Pages one producer reads at once (all syncs), pages of one sync
    # leased at once across the fleet, how long a lease lasts unless renewed (a killed producer's
    # pages wait this long for another), and store failures of one page that fail the sync.
    producer_pages_in_flight: int = Field(default=16, ge=1, le=1000)
    sync_pages_in_flight: int = Field(default=8, ge=1, le=1000)
    page_lease_s: float = Field(default=30.0, ge=1, le=3600)
    page_max_failures: int = Field(default=3, ge=1, le=100)

    # Consumer batching
    batch_size: int = Field(default=100, ge=1, le=5000)
    batch_linger_ms: int = Field(default=50, ge=1, le=60_000)
    batches_in_flight: int = Field(default=3, ge=1, le=64)
    drain_timeout_s: float = Field(default=20.0, gt=0)
    # How long a starting service waits for PostgreSQL and RabbitMQ to answer.
    startup_timeout_s: float = Field(default=60.0, ge=0)
    # /healthz of a consumer fails when lines wait but nothing was delivered for this long.
    consumer_stall_s: float = Field(default=60.0, gt=0)

    # WooCommerce
    # Requests/s to one store host across the whole fleet (shared/woocommerce/budget.py); unset: no
    # limit. A request's store.rate_limit sets its own store's budget instead.
    store_rate_limit: float | None = Field(default=None, description="requests/s per store, fleet-wide; unset = no limit")
    # How long a consumer's request waits out a store that said slow down before its line is
    # delayed (still without spending a try); the producer's enumeration waits as long as it takes.
    store_hold_wait_s: float = Field(default=10.0, ge=0, le=900)
    store_concurrency: int = Field(default=32, ge=1, le=1000)
    # Requests in flight to one store host from the whole fleet (slots leased in PostgreSQL,
    # sql/013_store_slots.sql); each process also keeps to store_concurrency.
    store_fleet_concurrency: int = Field(default=64, ge=1, le=10_000)
    store_timeout_s: float = Field(default=30.0, gt=0)
    # The producer's first contact with a store, tries included: a dead store frees its slot soon.
    store_connect_test_timeout_s: float = Field(default=10.0, gt=0, le=600)
    store_max_tries: int = Field(default=5, ge=1, le=20)
    # An incremental sweep asks for orders modified since the last one's start less this overlap
    # (clock skew between store and database, transactions the store committed late).
    sweep_overlap_s: float = Field(default=300.0, ge=0, le=86_400)
    # Retention on a schedule (docs/contract.md section 10, "Schedules"): the producers delete
    # queues finished more than prune_keep_days ago (as `woosync prune`), one of them every
    # prune_every_s. Unset keep days: no automatic retention.
    prune_keep_days: int | None = Field(default=None, ge=0, le=36_500)
    prune_every_s: int = Field(default=86_400, ge=60, le=31 * 86_400)
    store_auth: Literal["auto", "oauth", "basic", "query"] = "auto"
    # A store's answer is read up to this many (decompressed) bytes; more fails the request (32 MiB,
    # the client's own default: a page of 100 full orders is rarely above a few MB).
    store_max_response_bytes: int = Field(default=32 * 1024 * 1024, ge=64 * 1024, le=1 << 32)
    # Non-public ranges a store may be in (comma-separated CIDRs); by default public addresses only.
    store_allowed_networks: Annotated[tuple[Network, ...], NoDecode] = ()

    # Database pool
    db_pool_min: int = Field(default=1, ge=0)
    db_pool_max: int = Field(default=10, ge=1)

    # Status and webhooks HTTP servers: what one client may cost them (shared/http_server.py)
    http_max_header_bytes: int = Field(default=32_768, ge=1024, le=1_048_576, description="request line + headers")
    http_max_headers: int = Field(default=100, ge=10, le=10_000, description="header lines per request")
    http_header_timeout_s: float = Field(default=10.0, gt=0, le=300, description="a request's headers must arrive within")
    http_keep_alive_s: float = Field(default=5.0, gt=0, le=3600, description="an idle keep-alive connection closes after")
    http_max_connections: int = Field(default=1000, ge=1, le=100_000, description="open connections; more get 503")

    # The webhooks service (docs/contract.md section 10, services/webhooks/): its port, the largest
    # delivery it reads (413 beyond), signed deliveries per second one store may send to one process
    # (429 beyond, after a burst), and how long accepted delivery ids are kept to spot repeats.
    webhooks_port: int = Field(default=8081, ge=0, le=65535)
    webhooks_max_body_bytes: int = Field(default=1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    webhooks_store_rate: float = Field(default=20.0, gt=0, le=100_000, description="deliveries/s per store")
    webhooks_store_burst: int = Field(default=200, ge=1, le=1_000_000)
    webhooks_delivery_retention_hours: float = Field(default=72.0, gt=0, le=24 * 365)

    # Limits per organisation (docs/contract.md sections 2 and 7): beyond each, 429.
    # Syncs started (and retries) per minute, with a burst; kept in PostgreSQL, shared by every process.
    org_sync_start_rate: float = Field(default=60.0, ge=0, le=60_000, description="per minute; 0 = unlimited")
    org_sync_start_burst: int = Field(default=20, ge=1, le=10_000)
    # Syncs not yet finished (draft or processing), over the API and the broker alike.
    org_max_open_syncs: int = Field(default=20, ge=1, le=100_000)
    # Event streams open at once on one status process.
    org_max_event_streams: int = Field(default=20, ge=1, le=100_000)

    # Encryption of store credentials at rest: one Fernet key, or several "newest,older,..." while
    # rotating (the newest encrypts, every one decrypts; shared/credentials.py).
    secret_key: SecretStr | None = None

    @field_validator("secret_key")
    @classmethod
    def _fernet_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        keys = value.get_secret_value().split(",")
        for position, key in enumerate(keys, start=1):
            if not _is_fernet_key(key.strip()):
                where = f"key {position} of {len(keys)} (newest first)" if len(keys) > 1 else "the key"
                raise ValueError(
                    f"{where} is not a Fernet key: each key is url-safe base64 of 32 bytes, keys are "
                    'separated by commas (make one with: python -c "from cryptography.fernet import Fernet; '
                    'print(Fernet.generate_key().decode())")'
                )
        return value

    @property
    def secret_keys(self) -> tuple[str, ...]:
        """The keys of WOOSYNC_SECRET_KEY, newest first; empty when it is not set."""
        if self.secret_key is None:
            return ()
        return tuple(key.strip() for key in self.secret_key.get_secret_value().split(","))

    @cached_property
    def credentials_cipher(self) -> CredentialsCipher | None:
        """The cipher of store credentials at rest, built once per settings object; None without
        WOOSYNC_SECRET_KEY (credentials are then stored as plain JSON)."""
        return CredentialsCipher(self.secret_keys) if self.secret_keys else None

    @property
    def amqp_user(self) -> str:
        """The RabbitMQ user of WOOSYNC_AMQP_URL: woosync's own service user, which the status API
        and the CLI put in the `user_id` of the sync requests they publish (docs/contract.md section 4)."""
        return amqp_user_of(self.amqp_url.get_secret_value())

    @property
    def dispatch_window_lines(self) -> int:
        return self.dispatch_window or self.prefetch

    @field_validator("producer_prefetch")
    @classmethod
    def _producer_prefetch(cls, value: int | None, info: ValidationInfo) -> int | None:
        concurrency = info.data.get("producer_concurrency")
        if concurrency is None:  # itself invalid: reported on its own
            return value
        if value is None:
            return min(4 * concurrency, 1000)
        if value < concurrency:
            raise ValueError(f"must be at least WOOSYNC_PRODUCER_CONCURRENCY ({concurrency})")
        return value

    @field_validator("producer_org_concurrency")
    @classmethod
    def _producer_org_concurrency(cls, value: int | None, info: ValidationInfo) -> int | None:
        concurrency = info.data.get("producer_concurrency")
        if concurrency is None:
            return value
        if value is None:
            return -(-concurrency // 2)
        if value > concurrency:
            raise ValueError(f"must be at most WOOSYNC_PRODUCER_CONCURRENCY ({concurrency})")
        return value

    @field_validator("store_rate_limit", mode="before")
    @classmethod
    def _store_rate_limit(cls, value: object) -> object:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return rate_limit_problem(value)

    @field_validator("prune_keep_days", mode="before")
    @classmethod
    def _prune_keep_days(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value  # blank: no automatic retention

    @field_validator("store_allowed_networks", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        return parse_networks(value) if isinstance(value, str) else value

    @field_serializer("store_allowed_networks")
    def _networks_text(self, networks: tuple[Network, ...]) -> str:
        return ",".join(str(network) for network in networks)

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a postgresql:// URL")
        return value

    @field_validator("amqp_url")
    @classmethod
    def _amqp_url(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith(("amqp://", "amqps://")):
            raise ValueError("must be an amqp:// or amqps:// URL")
        return value

    def masked(self) -> dict[str, object]:
        """The effective settings for the start-up log line, with secrets and URL passwords masked."""
        shown: dict[str, object] = {}
        for name, value in self.model_dump().items():
            if name in ("database_url", "amqp_url"):
                shown[name] = mask_url(getattr(self, name).get_secret_value())
            elif isinstance(value, SecretStr) or name == "secret_key":
                shown[name] = "**********" if value else None
            else:
                shown[name] = value
        return shown


# A store rate limit above this is a mistake (no WooCommerce host serves that to one client).
MAX_STORE_RATE_LIMIT = 1000.0


def rate_limit_problem(value: object) -> float:
    """A store rate limit (requests/s) as a number, or ValueError saying why it cannot be one:
    it must be a positive, finite number of at most MAX_STORE_RATE_LIMIT."""
    try:
        rate = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"must be a number of requests per second, not {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(rate) or rate <= 0:
        raise ValueError(f"must be a positive number of requests per second, not {value!r} (unset it for no limit)")
    if rate > MAX_STORE_RATE_LIMIT:
        raise ValueError(f"must be at most {MAX_STORE_RATE_LIMIT:g} requests per second, not {value!r}")
    return rate


def _is_fernet_key(key: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(key.encode())) == 32
    except (binascii.Error, ValueError):
        return False


def amqp_user_of(url: str) -> str:
    """The user an amqp:// URL logs in as ("guest", the AMQP default, when the URL names none)."""
    return urllib.parse.unquote(urllib.parse.urlsplit(url).username or "guest")


def mask_url(url: str) -> str:
    """postgresql://user:secret@host/db -> postgresql://user:***@host/db"""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    userinfo, _, hostpart = rest.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}@{hostpart}"


def load_settings(**overrides: object) -> Settings:
    """Build the settings, turning pydantic's report into one line per bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"])
            problems.append(f"WOOSYNC_{field.upper()}: {error['msg']}")
        raise SettingsError("invalid configuration: " + "; ".join(problems)) from None
