"""Where a store is, how woosync authenticates to it, and keeping its credentials out of text.

`StoreCredentials` is a store's normalised URL, consumer key and secret and auth mode (docs/contract.md
section 6); `normalize_store_url` is the one reading of a store URL people paste. Key, secret and
OAuth signatures never reach a message, log line or repr: `redact` masks them in text coming back
from the network, and a filter on httpx's logger masks them in the request URLs it logs.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

# Where WooCommerce's REST API v3 lives below a store's URL.
API_PREFIX = "/wp-json/wc/v3"
AuthMode = Literal["auto", "oauth", "basic", "query"]
_AUTH_MODES = ("auto", "oauth", "basic", "query")
# A credential in a query string (k=v) or an OAuth Authorization header (k="v").
_CREDENTIAL_IN_QUERY = re.compile(
    r"((?:oauth_consumer_key|oauth_signature|oauth_nonce|consumer_key|consumer_secret)=)(?:\"[^\"]*\"|[^&\s\"'<>;,]*)",
    re.IGNORECASE,
)


def normalize_store_url(url: str) -> str:
    """`" https://Shop.test/wp-json/wc/v3/ "` -> `"https://shop.test"`; refuses what is not http(s)."""
    cleaned = url.strip().rstrip("/")
    parts = urlsplit(cleaned)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"store URL must be an http:// or https:// URL with a host, got {cleaned!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"store URL must not carry a query or fragment: {redact(cleaned)!r}")
    if parts.username or parts.password:
        raise ValueError("store URL must not carry credentials: give consumer_key and consumer_secret instead")
    path = parts.path
    # People paste the API root they see in WooCommerce's docs; the store is what is above it.
    for suffix in (API_PREFIX, "/wp-json"):
        if path.lower().endswith(suffix):
            path = path[: -len(suffix)]
            break
    return f"{scheme}://{parts.netloc.lower()}{path.rstrip('/')}"


def redact(text: str, *secrets: str) -> str:
    """Text safe to log: credential query parameters masked, and any of `secrets` replaced."""
    text = _CREDENTIAL_IN_QUERY.sub(r"\1***", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


@dataclass(frozen=True, repr=False)
class StoreCredentials:
    """Where a store is and how to authenticate; the repr never shows the key or secret."""

    url: str
    consumer_key: str
    consumer_secret: str
    auth: AuthMode = "auto"  # auto: https -> basic, http -> oauth (WooCommerce refuses the others over http)

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", normalize_store_url(self.url))
        object.__setattr__(self, "consumer_key", self.consumer_key.strip())
        object.__setattr__(self, "consumer_secret", self.consumer_secret.strip())
        if not self.consumer_key or not self.consumer_secret:
            raise ValueError("store consumer_key and consumer_secret must both be non-empty")
        if self.auth not in _AUTH_MODES:
            raise ValueError(f"store auth must be one of {', '.join(_AUTH_MODES)}, got {self.auth!r}")

    @property
    def effective_auth(self) -> Literal["oauth", "basic", "query"]:
        if self.auth != "auto":
            return self.auth
        return "basic" if self.url.startswith("https://") else "oauth"

    def __repr__(self) -> str:
        return f"StoreCredentials(url={self.url!r}, auth={self.auth!r}, consumer_key='***', consumer_secret='***')"

    __str__ = __repr__


class _RedactCredentials(logging.Filter):
    """httpx logs each request URL (at INFO): mask OAuth and query-string credentials in it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = _CREDENTIAL_IN_QUERY.sub(r"\1***", message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def guard_httpx_request_log() -> None:
    """Put the credential mask on httpx's logger, once however many clients are made."""
    httpx_logger = logging.getLogger("httpx")
    if not any(isinstance(existing, _RedactCredentials) for existing in httpx_logger.filters):
        httpx_logger.addFilter(_RedactCredentials())
