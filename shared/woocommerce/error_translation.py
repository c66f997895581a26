"""What a store's answer means: its JSON body, or the one typed error of `shared.errors` it stands for.

`accept` is the table in `shared.woocommerce.client`'s docstring, status by status: a 2xx is its
JSON, 429 and 5xx/408 are retryable, the rest permanent, each error naming the request and what
the store said (its error fields only, see `shared.woocommerce.responses`), with a hint when
credentials are refused. Two OAuth refusals are our side's to fix, once per client: a proxy that
drops the Authorization header, and a store clock far from ours; for those `accept` raises
`AuthAdjustment`, which the request loop applies before sending the request again.
"""

from __future__ import annotations

import email.utils
import time
from typing import Any, Literal

from shared.errors import (
    NotAWooCommerceStore,
    StoreAuthError,
    StoreBadRequest,
    StoreError,
    StoreNotFound,
    StoreRateLimited,
    StoreUnavailable,
)
from shared.woocommerce.credentials import API_PREFIX, redact
from shared.woocommerce.responses import Answer, content_type, decode_json, error_fields, plain_text
from shared.woocommerce.retry_policy import parse_retry_after

# A store whose clock is this far from ours gets signed with its own clock (OAuth allows 15 min).
_CLOCK_SKEW_TOLERANCE_S = 60.0


class AuthAdjustment(Exception):
    """The store refused a request for a reason we can fix on our side (how OAuth is sent, our
    clock): apply the fix for every later request of this client, then send this one again.

    `kind` "header": send OAuth in the query string from now on; "clock": sign with our clock
    plus `clock_offset_s` (the store's clock)."""

    def __init__(
        self, kind: Literal["header", "clock"], note: str, error: StoreAuthError, clock_offset_s: float = 0.0
    ) -> None:
        super().__init__(str(error))
        self.kind, self.note, self.error, self.clock_offset_s = kind, note, error, clock_offset_s


def accept(answer: Answer, shown: str, adjusted: set[str], store_url: str, auth: str, secrets: tuple[str, ...]) -> Any:
    """The JSON body of a 2xx answer, or the typed error the answer means (or an `AuthAdjustment`
    of a kind not in `adjusted`). `shown` describes the request, `auth` is the client's mode."""
    status = answer.status_code
    where = store_url
    if 200 <= status < 300:
        try:
            return decode_json(answer.content)
        except ValueError:
            raise NotAWooCommerceStore(
                f"store {where} answered {shown} with {status} but not with JSON "
                f"({content_type(answer)}): is this the URL of a WooCommerce site?",
                store_url=where,
                status=status,
            ) from None
    retry_after = parse_retry_after(answer.headers.get("Retry-After"))
    if status == 429:
        wait = f"; it asks to wait {retry_after:g} s" if retry_after is not None else ""
        raise StoreRateLimited(
            f"store {where} is rate limiting us (429 on {shown}){wait}", store_url=where, retry_after=retry_after
        )
    if status >= 500 or status == 408:
        code, store_message, _, _ = error_fields(answer, secrets)
        status_line = f"{status} {plain_text(answer.reason_phrase, 80)}".rstrip()
        said = ": ".join(part for part in (status_line, code, store_message) if part)
        raise StoreUnavailable(
            f"store {where} answered {shown} with {said}",
            store_url=where,
            status=status,
            retry_after=retry_after,
        )
    code, store_message, bad_params, is_json = error_fields(answer, secrets)
    said = ": ".join(part for part in (f"{status}", code, store_message) if part)
    if 300 <= status < 400:
        location = redact(plain_text(answer.headers.get("Location", "?"), 200), *secrets)
        raise NotAWooCommerceStore(
            f"store {where} answered {shown} with a redirect ({status}) to {location}: "
            "use the URL it redirects to as the store URL",
            store_url=where,
            status=status,
        )
    fields = {"store_url": where, "status": status, "code": code, "store_message": store_message}
    if status in (401, 403):
        error = StoreAuthError(
            f"store {where} refused the credentials ({said}) on {shown}"
            + _auth_hint(store_url, auth, status, code, store_message),
            **fields,
        )
        adjustment = _adjustment(answer, auth, code, store_message, error, adjusted)
        if adjustment is not None:
            raise adjustment
        raise error
    if status == 404:
        if not is_json or code == "rest_no_route":
            raise NotAWooCommerceStore(
                f"store {where} has no WooCommerce REST API v3 at {API_PREFIX} ({said}) on {shown}: "
                "is WooCommerce active and are pretty permalinks on?",
                **fields,
            )
        raise StoreNotFound(f"store {where} has no such resource ({said}) on {shown}", **fields)
    if status == 400:
        detail = "; ".join(f"{name}: {problem}" for name, problem in bad_params.items())
        raise StoreBadRequest(
            f"store {where} rejected {shown} ({said})" + (f" [{detail}]" if detail else ""), **fields
        )
    raise StoreError(f"store {where} answered {shown} with {said}", **fields)


def not_json_of_kind(store_url: str, kind: str, path: str, body: Any) -> NotAWooCommerceStore:
    """The error for a 2xx whose JSON is not the `kind` of value `path` answers with."""
    return NotAWooCommerceStore(
        f"store {store_url} answered GET {API_PREFIX}{path} with JSON that is not {kind} "
        f"(got {type(body).__name__}): is this a WooCommerce REST API v3?",
        store_url=store_url,
        status=200,
    )


def _auth_hint(store_url: str, auth: str, status: int, code: str | None, store_message: str | None) -> str:
    plain_http = store_url.startswith("http://")
    if status == 403:
        return ": the key needs Read access and its user must be allowed to manage WooCommerce"
    if code == "woocommerce_rest_cannot_view" and plain_http and auth in ("basic", "query"):
        return (
            ": over plain http WooCommerce ignores Basic and query-string keys;"
            " use OAuth (auth='oauth' or 'auto') or an https URL"
        )
    if code == "woocommerce_rest_cannot_view" and auth == "basic":
        return ": the consumer key is unknown, or a proxy drops the Authorization header (then try auth='query')"
    if code == "woocommerce_rest_cannot_view":
        return ": the store did not recognise the consumer key"
    if store_message and "timestamp" in store_message.lower():
        return ": the store's clock and ours disagree by more than 15 minutes"
    if code == "woocommerce_rest_authentication_error":
        return ": check the consumer key and secret"
    return ""


def _adjustment(
    answer: Answer,
    auth: str,
    code: str | None,
    store_message: str | None,
    error: StoreAuthError,
    adjusted: set[str],
) -> AuthAdjustment | None:
    """A fix on our side for this OAuth refusal, if there is one we have not tried yet."""
    if auth != "oauth" or answer.status_code != 401:
        return None
    sent_in_header = answer.request.headers.get("Authorization", "").startswith("OAuth ")
    if code == "woocommerce_rest_cannot_view" and sent_in_header and "header" not in adjusted:
        # "cannot view" means no credentials arrived at all (bad ones get a precise message):
        # something between us and WordPress drops the Authorization header.
        note = (
            "the store never saw the OAuth Authorization header (a proxy drops it?): "
            "sending OAuth in the query string"
        )
        return AuthAdjustment("header", note, error)
    if "clock" in adjusted or not store_message or "timestamp" not in store_message.lower():
        return None
    date = answer.headers.get("Date")
    try:
        server_time = email.utils.parsedate_to_datetime(date).timestamp() if date else None
    except (TypeError, ValueError):
        server_time = None
    if server_time is None:
        return None
    offset = server_time - time.time()
    if abs(offset) <= _CLOCK_SKEW_TOLERANCE_S:
        return None
    note = f"its clock is {offset:+.0f} s from ours and it refused our OAuth timestamp: signing with its clock"
    return AuthAdjustment("clock", note, error, clock_offset_s=offset)
