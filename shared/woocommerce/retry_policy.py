"""When the WooCommerce client tries a request again, how long it waits, and how it gives up.

The request loop in `shared.woocommerce.client` retries what `shared.errors` calls retryable
(`StoreUnavailable` and its kinds): it waits a jittered exponential backoff, or longer when the
store's Retry-After asks for it, and after the last try raises the same error saying it is final.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from datetime import timezone

from shared.errors import StoreRateLimited, StoreUnavailable


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Retry-After as seconds from now: delta-seconds or an HTTP date; None if absent or garbled."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def backoff_delay(attempt: int, base_s: float, max_s: float) -> float:
    """Exponential backoff with full jitter (AWS architecture blog): spreads retries of many workers."""
    return random.uniform(0.0, min(max_s, base_s * 2 ** (attempt - 1)))


def short_reason(failure: StoreUnavailable) -> str:
    """Why a try failed, in a few words for the "will retry" log line."""
    if isinstance(failure, StoreRateLimited):
        return "429 rate limited"
    if failure.status is not None:
        return f"status {failure.status}"
    return str(failure).rsplit(": ", 1)[-1]


def gave_up(failure: StoreUnavailable, tries: int) -> StoreUnavailable:
    """The same error, saying that it is final for this call."""
    message = f"{failure} (gave up after {tries} {'try' if tries == 1 else 'tries'})"
    if isinstance(failure, StoreRateLimited):
        return StoreRateLimited(message, store_url=failure.store_url, retry_after=failure.retry_after)
    return type(failure)(message, store_url=failure.store_url, status=failure.status, retry_after=failure.retry_after)
