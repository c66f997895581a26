"""The simulator's knobs: one frozen object built from defaults, a scenario file and the command line."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import date
from pathlib import Path
from typing import Any


class ScenarioError(ValueError):
    """A scenario file or option value the simulator cannot use; the message names it."""


@dataclass(frozen=True)
class SimulatorConfig:
    # Where and what
    host: str = "127.0.0.1"
    port: int = 8090
    customers: int = 250
    seed: int = 1
    as_of: date | None = None  # the store's "today"; None = the current UTC date
    gmt_offset_hours: float = 2.0
    valid_emails_only: bool = False  # no invalid or empty emails: every customer can be synced
    public_url: str | None = None  # the site URL in links and signatures; None = http://host:port
    workers: int = 1

    # Credentials
    consumer_key: str = "ck_test"
    consumer_secret: str = "cs_test"
    https_auth: bool = False  # act as if behind TLS: Basic and query-string keys accepted
    refuse_credentials: bool = False  # every key is unknown to the store
    nonce_memory: int = 200_000  # nonces remembered per key (~200 bytes each); older ones are forgotten

    # Faults
    latency_ms: tuple[float, float] = (0.0, 0.0)  # uniform in [low, high] per request
    latency_per_item_ms: float = 0.0  # added per customer/order in a list response
    error_rate: float = 0.0  # fraction of requests answered 5xx
    rate_limit_rate: float = 0.0  # fraction answered 429 with Retry-After
    max_rps: float = 0.0  # a real per-process request rate limit (429 past it); 0 = none
    retry_after_s: int = 1
    # A rate-limit storm: after this many requests (0 = none) every request is answered 429 with
    # Retry-After for storm_s seconds, as a host's limit tripping in the middle of a sync.
    storm_after: int = 0
    storm_s: float = 0.0
    fail_orders_for: frozenset[int] = field(default_factory=frozenset)
    fail_orders_every: int = 0
    fault_seed: int | None = None  # None: derived from seed (reproducible fault sequence)

    # Serving
    cache_mb: int = 256  # bound of the serialized-response cache
    prewarm: bool = False  # render every customer's orders before saying "listening"

    def __post_init__(self) -> None:
        problems = []
        if not 0 <= self.port <= 65535:
            problems.append(f"port must be 0..65535, not {self.port}")
        if self.customers < 0:
            problems.append(f"customers must be >= 0, not {self.customers}")
        if self.workers < 1:
            problems.append(f"workers must be >= 1, not {self.workers}")
        for name in ("error_rate", "rate_limit_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                problems.append(f"{name.replace('_', '-')} must be a fraction in [0, 1], not {value}")
        if self.error_rate + self.rate_limit_rate > 1.0:
            problems.append("error-rate + rate-limit-rate must not exceed 1")
        low, high = self.latency_ms
        if low < 0 or high < low:
            problems.append(f"latency-ms must be N or LOW-HIGH with 0 <= LOW <= HIGH, not {low}-{high}")
        if self.latency_per_item_ms < 0:
            problems.append("latency-per-item-ms must be >= 0")
        if self.max_rps < 0:
            problems.append("max-rps must be >= 0")
        if self.storm_after < 0 or self.storm_s < 0:
            problems.append("storm-after and storm-s must be >= 0")
        if self.retry_after_s < 0:
            problems.append("retry-after must be >= 0")
        if self.fail_orders_every < 0:
            problems.append("fail-orders-every must be >= 0")
        if not self.consumer_key or not self.consumer_secret:
            problems.append("consumer-key and consumer-secret must not be empty")
        if self.nonce_memory < 1:
            problems.append("nonce-memory must be >= 1")
        if self.public_url is not None and not self.public_url.startswith(("http://", "https://")):
            problems.append(f"public-url must start with http:// or https://, not {self.public_url!r}")
        if problems:
            raise ScenarioError("; ".join(problems))

    def orders_fail_for(self, customer_id: int) -> bool:
        """Whether the orders of this customer always answer 500 (a poison customer)."""
        if customer_id in self.fail_orders_for:
            return True
        return bool(self.fail_orders_every) and customer_id > 0 and customer_id % self.fail_orders_every == 0

    def with_overrides(self, overrides: Mapping[str, Any], source: str = "options") -> SimulatorConfig:
        """A copy with `overrides` (names with '-' or '_') converted and validated."""
        known = {f.name for f in fields(self)}
        converted: dict[str, Any] = {}
        for raw_name, value in overrides.items():
            name = raw_name.replace("-", "_")
            name = _OPTION_ALIASES.get(name, name)
            if name not in known:
                raise ScenarioError(f"{source}: unknown setting {raw_name!r} (known: {', '.join(sorted(known))})")
            try:
                converted[name] = _convert(name, value)
            except (TypeError, ValueError) as exc:
                raise ScenarioError(f"{source}: {raw_name}: {exc}") from None
        try:
            return replace(self, **converted)
        except ScenarioError as exc:
            raise ScenarioError(f"{source}: {exc}") from None


# Long option names that differ from the field they set.
_OPTION_ALIASES = {"retry_after": "retry_after_s"}


def _convert(name: str, value: Any) -> Any:
    if name == "latency_ms":
        return parse_latency(value)
    if name == "fail_orders_for":
        return parse_id_list(value)
    if name == "as_of":
        if value is None or isinstance(value, date):
            return value
        return date.fromisoformat(str(value))
    if name in ("https_auth", "refuse_credentials", "prewarm", "valid_emails_only"):
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("1", "true", "yes", "on"):
            return True
        if str(value).lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected true or false, not {value!r}")
    if name in ("port", "customers", "seed", "workers", "nonce_memory", "retry_after_s",
                "fail_orders_every", "cache_mb", "storm_after"):
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(f"expected an integer, not {value!r}")
        return int(value)
    if name == "fault_seed":
        return None if value is None else int(value)
    if name in ("gmt_offset_hours", "latency_per_item_ms", "error_rate", "rate_limit_rate", "max_rps", "storm_s"):
        return float(value)
    if name in ("public_url",):
        return None if value in (None, "") else str(value)
    return str(value)


def parse_latency(value: Any) -> tuple[float, float]:
    """`50` -> (50, 50); `"20-80"` or `[20, 80]` -> (20, 80) milliseconds."""
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return float(value[0]), float(value[1])
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value), float(value)
    text = str(value).strip()
    low, sep, high = text.partition("-")
    if sep:
        return float(low), float(high)
    return float(text), float(text)


def parse_id_list(value: Any) -> frozenset[int]:
    """`"3,17, 42"` or `[3, 17, 42]` -> {3, 17, 42}."""
    if value is None or value == "":
        return frozenset()
    items = value if isinstance(value, (list, tuple, set, frozenset)) else str(value).split(",")
    ids = set()
    for item in items:
        text = str(item).strip()
        if text:
            if not text.isdigit():
                raise ValueError(f"customer ids must be whole numbers, not {text!r}")
            ids.add(int(text))
    return frozenset(ids)


def load_scenario(path: str | Path) -> dict[str, Any]:
    """A scenario file: a JSON or YAML object whose keys are the long option names."""
    scenario_path = Path(path)
    try:
        text = scenario_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario {scenario_path}: {exc.strerror}") from None
    if scenario_path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ScenarioError(
                f"{scenario_path}: YAML scenarios need PyYAML (pip install pyyaml); JSON works without it"
            ) from None
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ScenarioError(f"{scenario_path}: not valid YAML: {exc}") from None
    else:
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ScenarioError(f"{scenario_path}: not valid JSON: {exc}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ScenarioError(f"{scenario_path}: a scenario must be an object of settings, not {type(loaded).__name__}")
    return loaded
