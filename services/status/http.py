"""The HTTP edge of the status API: one envelope, and input parsing that refuses bad input
naming the problem (services.status.errors: InvalidRequest and its kinds) instead of letting it
reach an action (docs/contract.md section 7).

    {"success": true,  "data": ...}
    {"success": false, "error": "human readable message", "details": [...]}   (details optional)
"""

from __future__ import annotations

from typing import Any, TypeVar
from uuid import UUID

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from services.status.errors import InvalidRequest, InvalidRequestBody, RequestTooLarge

ModelT = TypeVar("ModelT", bound=BaseModel)

MAX_BODY_BYTES = 1_000_000
MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 50
# Postgres takes OFFSET as bigint; far below that, deep offsets are a client bug, not a page.
MAX_OFFSET = 10_000_000


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def ok(data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse({"success": True, "data": data}, status_code=status)


def error_response(status: int, message: str, *, details: list[dict[str, Any]] | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"success": False, "error": message}
    if details:
        body["details"] = details
    return JSONResponse(body, status_code=status, headers=headers)


# Regular expressions of request models -> what they mean, for messages a person can act on.
PATTERN_HINTS: dict[str, str] = {}


def validation_details(exc: ValidationError, *, prefix: tuple[str | int, ...] = ()) -> list[dict[str, Any]]:
    """pydantic's errors as [{"field": "store.url", "message": "..."}], input values left out:
    they may be secrets (consumer_secret)."""
    details = []
    for error in exc.errors(include_url=False, include_input=False):
        location = ".".join(str(part) for part in (*prefix, *error["loc"]))
        message = error["msg"].removeprefix("Value error, ")  # pydantic's wrapper for our own ValueErrors
        if error["type"] == "string_pattern_mismatch":
            message = PATTERN_HINTS.get(str(error.get("ctx", {}).get("pattern")), message)
        details.append({"field": location or "body", "message": message})
    return details


def describe_validation(exc: ValidationError, *, prefix: tuple[str | int, ...] = ()) -> tuple[str, list[dict[str, Any]]]:
    details = validation_details(exc, prefix=prefix)
    first = details[0]
    message = f"{first['field']}: {first['message']}"
    if len(details) > 1:
        message += f" (and {len(details) - 1} more problem{'s' if len(details) > 2 else ''})"
    return message, details


def _is_json_media_type(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


_EMPTY = object()


async def read_json(request: Request, *, optional: bool = False) -> Any:
    """The request body parsed as JSON. A missing Content-Type is tolerated; a non-JSON one is an
    InvalidRequest naming it. An empty body is `_EMPTY` when `optional`, else an InvalidRequest."""
    content_type = request.headers.get("content-type")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise RequestTooLarge(f"request body is larger than {MAX_BODY_BYTES} bytes")
    if not body.strip():
        if optional:
            return _EMPTY
        raise InvalidRequest("request body is empty: send a JSON object with Content-Type: application/json")
    if content_type is not None and not _is_json_media_type(content_type):
        raise InvalidRequest(f"Content-Type must be application/json, got {content_type[:100]!r}")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from None


async def parse_body(request: Request, model: type[ModelT], *, optional: bool = False) -> ModelT | None:
    payload = await read_json(request, optional=optional)
    if payload is _EMPTY:
        return None
    if not isinstance(payload, dict):
        kind = "null" if payload is None else type(payload).__name__
        raise InvalidRequestBody(f"request body must be a JSON object, got {kind}")
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        message, details = describe_validation(exc)
        raise InvalidRequestBody(f"invalid request body: {message}", details=details) from None


def path_uuid(request: Request, name: str = "queue_id") -> UUID:
    raw = request.path_params[name]
    try:
        return UUID(raw)
    except ValueError:
        raise InvalidRequest(f"{name} must be a UUID, got {raw[:64]!r}") from None


def only_query(request: Request, *allowed: str) -> None:
    """Refuse query parameters the route does not take: a typo (?stat=failed) would otherwise
    be silently ignored and answer something the caller did not ask for."""
    for name in request.query_params:
        if name not in allowed:
            takes = f"this route takes {', '.join(allowed)}" if allowed else "this route takes none"
            raise InvalidRequest(f"unknown query parameter {name[:64]!r}: {takes}")


def query_int(request: Request, name: str, *, default: int, minimum: int, maximum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise InvalidRequest(f"query parameter {name} must be an integer, got {raw[:64]!r}") from None
    if not minimum <= value <= maximum:
        raise InvalidRequest(f"query parameter {name} must be between {minimum} and {maximum}, got {value}")
    return value


def page_params(request: Request, *also: str) -> tuple[int, int]:
    """(limit, offset) from ?limit=&offset=, refusing any other parameter but `also`."""
    only_query(request, "limit", "offset", *also)
    limit = query_int(request, "limit", default=DEFAULT_PAGE_SIZE, minimum=1, maximum=MAX_PAGE_SIZE)
    offset = query_int(request, "offset", default=0, minimum=0, maximum=MAX_OFFSET)
    return limit, offset


def page(items: list[Any], *, limit: int, offset: int) -> dict[str, Any]:
    """A page of a list fetched with limit + 1 rows: the extra row only says there is more."""
    has_more = len(items) > limit
    return {
        "items": items[:limit],
        "limit": limit,
        "offset": offset,
        "next_offset": offset + limit if has_more else None,
    }
