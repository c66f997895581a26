"""How WordPress' REST server talks: JSON encoding, error bodies, parameter validation, Link headers.

Each rule here reproduces an observed behaviour of the real store (woocommerce-fixtures), down to
the wording of validation messages, because clients branch on codes and people read messages.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Union
from urllib.parse import quote_plus

import orjson

# PHP's $_GET after parsing: `a[]=1&a[]=2` becomes {"a": {"0": "1", "1": "2"}}.
PhpValue = Union[str, dict[str, str]]
PhpQuery = dict[str, PhpValue]


_NON_ASCII = re.compile("[^\x00-\x7f]")


def _json_escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # astral: a UTF-16 surrogate pair, as PHP writes it
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def wp_json(document: Any) -> bytes:
    """`wp_json_encode`: compact, non-ASCII as \\uXXXX, '/' as '\\/' (byte-identical to the real store)."""
    body = orjson.dumps(document)
    if not body.isascii():
        # Non-ASCII only occurs inside JSON strings: escaping it in the output is safe.
        body = _NON_ASCII.sub(_json_escape, body.decode("utf-8")).encode("ascii")
    # '/' only ever appears inside JSON strings, so a blind replace is safe.
    return body.replace(b"/", b"\\/")


def php_query(pairs: Iterable[tuple[str, str]]) -> PhpQuery:
    """The request's query as PHP builds `$_GET`: last value wins, `k[]`/`k[i]` make arrays.

    Order is first appearance (PHP arrays keep insertion order); only one bracket level, which is
    all the WooCommerce API uses.
    """
    parsed: PhpQuery = {}
    for key, value in pairs:
        bracket = key.find("[")
        if bracket > 0 and key.endswith("]"):
            name, sub = key[:bracket], key[bracket + 1:-1]
            current = parsed.get(name)
            if not isinstance(current, dict):
                current = {}
                parsed[name] = current
            if sub == "":
                numeric = [int(k) for k in current if k.lstrip("-").isdigit()]
                sub = str(max(numeric) + 1 if numeric else 0)
            current[sub] = value
        else:
            parsed[key] = value
    return parsed


def php_urlencode(value: str) -> str:
    """PHP's urlencode: space as '+', only A-Z a-z 0-9 - _ . literal."""
    return quote_plus(value, safe="").replace("~", "%7E")


# --------------------------------------------------------------------------- errors


class RestError(Exception):
    """An error answer of the REST server: `{"code", "message", "data": {"status", ...}}`."""

    def __init__(self, status: int, code: str, message: str, extra: Mapping[str, Any] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.extra = dict(extra or {})

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "data": {"status": self.status, **self.extra}}


def no_route() -> RestError:
    return RestError(404, "rest_no_route", "No route was found matching the URL and request method.")


def cannot_view(*, listing: bool) -> RestError:
    message = "Sorry, you cannot list resources." if listing else "Sorry, you cannot view this resource."
    return RestError(401, "woocommerce_rest_cannot_view", message)


class CriticalError(RestError):
    """What WordPress answers when PHP dies with a fatal error (its JSON wp_die handler)."""

    def __init__(self) -> None:
        super().__init__(
            500,
            "internal_server_error",
            "<p>There has been a critical error on this website.</p><p>"
            '<a href="https://wordpress.org/documentation/article/faq-troubleshooting/">'
            "Learn more about troubleshooting WordPress.</a></p>",
        )

    def body(self) -> dict[str, Any]:
        return {**super().body(), "additional_errors": []}


def critical_error() -> RestError:
    return CriticalError()


# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True, slots=True)
class Param:
    """One argument of a route, validated like `rest_validate_value_from_schema`."""

    name: str
    type: str  # integer | string | boolean | array
    default: Any = None
    minimum: int | None = None
    maximum: int | None = None
    enum: tuple[str, ...] | None = None
    format: str | None = None  # email | date-time
    items: str | None = None  # element type of arrays: integer | string
    description: str = ""

    def schema(self) -> dict[str, Any]:
        """The route description the namespace index publishes."""
        described: dict[str, Any] = {"description": self.description, "type": self.type, "required": False}
        if self.default is not None:
            described["default"] = self.default
        if self.minimum is not None:
            described["minimum"] = self.minimum
        if self.maximum is not None:
            described["maximum"] = self.maximum
        if self.format:
            described["format"] = self.format
        if self.type == "array":
            item: dict[str, Any] = {"type": self.items or "string"}
            if self.enum:
                item["enum"] = list(self.enum)
            described["items"] = item
        elif self.enum:
            described["enum"] = list(self.enum)
        return described


@dataclass(slots=True)
class _Invalid:
    messages: dict[str, str] = field(default_factory=dict)
    details: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, name: str, code: str, message: str) -> None:
        self.messages[name] = message
        self.details[name] = {"code": code, "message": message, "data": None}


def _one_of(values: Sequence[str]) -> str:
    """wp_sprintf_l's list: "a and b", "a, b, and c"."""
    if len(values) == 1:
        return values[0]
    if len(values) == 2:
        return f"{values[0]} and {values[1]}"
    return ", ".join(values[:-1]) + f", and {values[-1]}"


_INTEGER = re.compile(r"^[+-]?\d+(\.0*)?$")
# A practical reading of WordPress' is_email(): local@domain.tld with the characters it allows.
_EMAIL = re.compile(r"^[a-zA-Z0-9!#$%&'*+/=?^_`{|}~.-]+@[a-zA-Z0-9-]+(\.[a-zA-Z0-9-]+)+$")


def _parse_list(value: PhpValue) -> list[str]:
    """wp_parse_list: arrays as given, strings split on commas and spaces."""
    if isinstance(value, dict):
        return list(value.values())
    return [part for part in re.split(r"[\s,]+", value) if part]


def _check_scalar(param: Param, label: str, raw: str, invalid: _Invalid) -> Any:
    if param.type == "integer":
        if not _INTEGER.match(raw.strip()):
            invalid.add(param.name, "rest_invalid_type", f"{label} is not of type integer.")
            return None
        number = int(float(raw))
        too_small = param.minimum is not None and number < param.minimum
        too_big = param.maximum is not None and number > param.maximum
        if too_small or too_big:
            if param.minimum is not None and param.maximum is not None:
                message = f"{label} must be between {param.minimum} (inclusive) and {param.maximum} (inclusive)"
            elif param.minimum is not None:
                message = f"{label} must be greater than or equal to {param.minimum}"
            else:
                message = f"{label} must be less than or equal to {param.maximum}"
            invalid.add(param.name, "rest_out_of_bounds", message)
            return None
        return number
    if param.type == "boolean":
        lowered = raw.strip().lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0", ""):
            return False
        invalid.add(param.name, "rest_invalid_type", f"{label} is not of type boolean.")
        return None
    if param.enum is not None and raw not in param.enum:
        invalid.add(param.name, "rest_not_in_enum", f"{label} is not one of {_one_of(param.enum)}.")
        return None
    if param.format == "email" and not _EMAIL.match(raw):
        invalid.add(param.name, "rest_invalid_email", "Invalid email address.")
        return None
    if param.format == "date-time":
        parsed = parse_rfc3339(raw)
        if parsed is None:
            invalid.add(param.name, "rest_invalid_date", "Invalid date.")
        return parsed
    return raw


def validate(query: PhpQuery, params: Sequence[Param]) -> dict[str, Any]:
    """Parsed arguments (defaults filled in), or RestError 400 `rest_invalid_param` naming each bad one."""
    invalid = _Invalid()
    parsed: dict[str, Any] = {}
    for param in params:
        if param.name not in query:
            parsed[param.name] = param.default
            continue
        raw = query[param.name]
        if param.type == "array":
            values = []
            for index, item in enumerate(_parse_list(raw)):
                item_param = Param(param.name, param.items or "string", enum=param.enum)
                checked = _check_scalar(item_param, f"{param.name}[{index}]", item, invalid)
                if param.name in invalid.messages:
                    break
                values.append(checked)
            parsed[param.name] = values
        elif isinstance(raw, dict):
            invalid.add(param.name, "rest_invalid_type", f"{param.name} is not of type {param.type}.")
        else:
            parsed[param.name] = _check_scalar(param, param.name, raw, invalid)
    if invalid.messages:
        raise RestError(
            400,
            "rest_invalid_param",
            f"Invalid parameter(s): {', '.join(invalid.messages)}",
            {"params": invalid.messages, "details": invalid.details},
        )
    return parsed


def parse_rfc3339(value: str) -> datetime | None:
    """A date-time as WordPress accepts it: `2026-01-31T10:00:00` with an optional zone."""
    if not re.match(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})?$", value):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed


def as_utc_timestamp(moment: datetime, offset_s: int, *, naive_is_gmt: bool) -> int:
    """Seconds since the epoch; a zone-less date is site-local unless `dates_are_gmt`."""
    if moment.tzinfo is None:
        stamp = int(moment.replace(tzinfo=timezone.utc).timestamp())
        return stamp if naive_is_gmt else stamp - offset_s
    return int(moment.timestamp())


def total_pages(total: int, per_page: int) -> int:
    return math.ceil(total / per_page) if total else 0


# --------------------------------------------------------------------------- Link headers


def _build_query(query: Mapping[str, PhpValue]) -> str:
    """WordPress' build_query over url-encoded values: keys raw, arrays as `k%5Bi%5D=`."""
    parts = []
    for key, value in query.items():
        if isinstance(value, dict):
            for sub, item in value.items():
                parts.append(f"{key}%5B{sub}%5D={php_urlencode(item)}")
        else:
            parts.append(f"{key}={php_urlencode(value)}")
    return "&".join(parts)


def pagination_link(
    collection_url: str,
    query: PhpQuery,
    *,
    page: int,
    max_pages: int,
    appended: Sequence[tuple[str, PhpValue]] = (),
) -> str | None:
    """The `Link` header of a collection page (prev/next), as WooCommerce builds it.

    Every query parameter is echoed, OAuth ones included (following it verbatim replays a nonce);
    `appended` are parameters the controller set while answering (orders add `status`, `dp`,
    `context`): they go last unless the request already had them. None when there is no link.
    """
    echoed: dict[str, PhpValue] = dict(query)
    for key, value in appended:
        if key not in echoed:
            echoed[key] = value
    links = []
    if page > 1:
        echoed_prev = dict(echoed)
        echoed_prev["page"] = str(min(page - 1, max_pages))
        links.append(f'<{collection_url}?{_build_query(echoed_prev)}>; rel="prev"')
    if max_pages > page:
        echoed_next = dict(echoed)
        echoed_next["page"] = str(page + 1)
        links.append(f'<{collection_url}?{_build_query(echoed_next)}>; rel="next"')
    return ", ".join(links) if links else None


# --------------------------------------------------------------------------- response fields


def filter_fields(document: dict[str, Any], fields: Sequence[str]) -> dict[str, Any]:
    """`_fields=a,b.c`: keep the named (possibly nested) keys, in the document's own order."""
    wanted: dict[str, list[str]] = {}
    for name in fields:
        top, _, rest = name.partition(".")
        wanted.setdefault(top, [])
        if rest:
            wanted[top].append(rest)
    kept: dict[str, Any] = {}
    for key, value in document.items():
        if key not in wanted:
            continue
        nested = wanted[key]
        if nested and isinstance(value, dict):
            kept[key] = filter_fields(value, nested)
        else:
            kept[key] = value
    return kept
