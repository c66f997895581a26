"""Authentication as WooCommerce's `WC_REST_Authentication` does it, step for step.

Over plain http only OAuth 1.0a one-legged requests authenticate: HMAC-SHA1 or HMAC-SHA256 over
the PHP-parsed query, signing key `consumer_secret + "&"`, timestamp within 15 minutes, nonce never
reused. HTTP Basic and `consumer_key`/`consumer_secret` query parameters are simply not looked at,
so such a request is anonymous and later refused with 401 `woocommerce_rest_cannot_view`. Behind
TLS (`https=True`, the simulator's `--https-auth`) Basic and query keys are tried first.

Error codes and messages are the real store's (woocommerce-fixtures/auth_*.json).

Two deliberate differences from WooCommerce, both in the client's favour only where harmless:
- The signature base URL is the site URL (WordPress' home URL), as in WooCommerce; the simulator
  also accepts a signature made for the `Host` the client actually used, so tests can reach it as
  `localhost` or `127.0.0.1` alike.
- WooCommerce remembers one nonce per timestamp second (a later nonce with the same timestamp
  overwrites it); the simulator remembers every nonce seen within the window (up to a bound), so
  it catches every replay a client makes, not only some.
"""

from __future__ import annotations

import base64
import binascii
import collections
import functools
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote, unquote_plus

from woosync.simulator.rest import PhpQuery, RestError

TIMESTAMP_WINDOW_S = 15 * 60
OAUTH_PARAMETER_NAMES = (
    "oauth_consumer_key",
    "oauth_timestamp",
    "oauth_nonce",
    "oauth_signature",
    "oauth_signature_method",
)
_DIGESTS = {"HMAC-SHA1": hashlib.sha1, "HMAC-SHA256": hashlib.sha256}
_HEADER_PARAM = re.compile(r'(oauth_[a-z_-]*)=(:?"([^"]*)"|([^,]*))')


@dataclass(frozen=True, slots=True)
class AuthOutcome:
    """Who the request is: a known API key (`consumer_key`), anonymous (both None), or an error."""

    consumer_key: str | None = None
    error: RestError | None = None

    @property
    def authenticated(self) -> bool:
        return self.consumer_key is not None


ANONYMOUS = AuthOutcome()


def _auth_error(message: str, code: str = "woocommerce_rest_authentication_error") -> AuthOutcome:
    return AuthOutcome(error=RestError(401, code, message))


def rfc3986(value: str) -> str:
    """wc_rest_urlencode_rfc3986: PHP rawurlencode (only A-Z a-z 0-9 - . _ ~ literal)."""
    return quote(value, safe="~")


def _php_empty(value: object) -> bool:
    # PHP's empty(): "", "0" and missing are all empty.
    return value is None or value == "" or value == "0" or value == {}


class NonceMemory:
    """Nonces seen within the timestamp window, oldest forgotten first past `capacity`."""

    def __init__(self, window_s: int, capacity: int) -> None:
        self._window_s = window_s
        self._capacity = capacity
        self._seen: set[str] = set()
        self._arrivals: collections.deque[tuple[int, str]] = collections.deque()

    def __len__(self) -> int:
        return len(self._seen)

    def remember(self, nonce: str, timestamp: int, now: float) -> bool:
        """True if the nonce is fresh (and now remembered), False if it was used before."""
        horizon = now - self._window_s
        arrivals = self._arrivals
        while arrivals and (arrivals[0][0] < horizon or len(arrivals) >= self._capacity):
            self._seen.discard(arrivals.popleft()[1])
        if nonce in self._seen:
            return False
        self._seen.add(nonce)
        arrivals.append((timestamp, nonce))
        return True


class Authenticator:
    """Decides who a request is. One per server process; holds the nonce memory."""

    def __init__(
        self,
        credentials: Mapping[str, str],
        *,
        https: bool = False,
        window_s: int = TIMESTAMP_WINDOW_S,
        nonce_capacity: int = 200_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secrets = dict(credentials)  # consumer_key -> consumer_secret
        self.https = https
        self._window_s = window_s
        self._clock = clock
        self._nonces = {key: NonceMemory(window_s, nonce_capacity) for key in self._secrets}

    def authenticate(
        self,
        *,
        method: str,
        raw_path: str,
        query: PhpQuery,
        authorization: str | None,
        site_urls: Iterable[str],
    ) -> AuthOutcome:
        """`WC_REST_Authentication::authenticate`: Basic (TLS only), then OAuth 1.0a.

        `raw_path` is the path as sent (percent-encoding kept); `site_urls` are the URLs the
        signature base may start with (scheme://host[:port], no trailing slash).
        """
        if self.https:
            basic = self._basic(query, authorization)
            if basic is not None:
                return basic
        return self._oauth(method, raw_path, query, authorization, site_urls)

    # ----------------------------------------------------------------- Basic / query keys

    def _basic(self, query: PhpQuery, authorization: str | None) -> AuthOutcome | None:
        key = secret = ""
        query_key, query_secret = query.get("consumer_key"), query.get("consumer_secret")
        if isinstance(query_key, str) and isinstance(query_secret, str) and query_key and query_secret:
            key, secret = query_key, query_secret
        elif authorization and authorization[:6].lower() == "basic ":
            try:
                decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                decoded = ""
            key, _, secret = decoded.partition(":")
        if not key or not secret:
            return None
        expected = self._secrets.get(key)
        if expected is None:
            # An unknown key is not an error: the request goes on anonymous (and is refused later).
            return None
        if not hmac.compare_digest(expected.encode(), secret.encode()):
            return _auth_error("Consumer secret is invalid.")
        return AuthOutcome(consumer_key=key)

    # ----------------------------------------------------------------- OAuth 1.0a

    def _oauth(
        self,
        method: str,
        raw_path: str,
        query: PhpQuery,
        authorization: str | None,
        site_urls: Iterable[str],
    ) -> AuthOutcome:
        params: dict[str, str | dict[str, str]] = dict(query)
        if authorization and authorization.strip().startswith("OAuth "):
            for match in _HEADER_PARAM.finditer(authorization.strip()):
                name, quoted, bare = match.group(1), match.group(3), match.group(4)
                params[name] = unquote_plus(quoted if quoted else bare)

        missing = [name for name in OAUTH_PARAMETER_NAMES if _php_empty(params.get(name))]
        if len(missing) == len(OAUTH_PARAMETER_NAMES):
            return ANONYMOUS  # not even trying OAuth
        if missing:
            noun = "parameter" if len(missing) == 1 else "parameters"
            return _auth_error(f"Missing OAuth {noun} {', '.join(missing)}",
                               "woocommerce_rest_authentication_missing_parameter")

        consumer_key = str(params["oauth_consumer_key"])
        secret = self._secrets.get(consumer_key)
        if secret is None:
            return _auth_error("Consumer key is invalid.")

        signature_method = params["oauth_signature_method"]
        digest = _DIGESTS.get(signature_method) if isinstance(signature_method, str) else None
        if digest is None:
            return _auth_error("Invalid signature - signature method is invalid.")

        provided = params.pop("oauth_signature")
        # PHP decoded '+' to ' ' in the query; WooCommerce undoes that, then rawurldecodes again.
        provided_signature = unquote(str(provided).replace(" ", "+"))
        normalized = _normalized_parameters(params)
        signing_key = f"{secret}&".encode()
        verb = method.upper()
        matched = False
        for site_url in site_urls:
            base_string = f"{verb}&{_encoded_base_url(site_url + raw_path)}&{normalized}"
            expected = base64.b64encode(hmac.new(signing_key, base_string.encode(), digest).digest())
            if hmac.compare_digest(expected, provided_signature.encode("utf-8", "replace")):
                matched = True
                break
        if not matched:
            return _auth_error("Invalid signature - provided signature does not match.")

        now = self._clock()
        try:
            timestamp = int(str(params["oauth_timestamp"]))
        except ValueError:
            return _auth_error("Invalid timestamp.")
        if timestamp < now - self._window_s or timestamp > now + self._window_s:
            return _auth_error("Invalid timestamp.")
        if not self._nonces[consumer_key].remember(str(params["oauth_nonce"]), timestamp, now):
            return _auth_error("Invalid nonce - nonce has already been used.")
        return AuthOutcome(consumer_key=consumer_key)


_UNRESERVED = re.compile(r"[A-Za-z0-9._~-]*\Z")


def _encode(value: str) -> str:
    # Most keys and values (ids, hex nonces, numbers) need no escaping: skip quote() for them.
    return value if _UNRESERVED.match(value) else quote(value, safe="~")


@functools.lru_cache(maxsize=1024)
def _encoded_base_url(url: str) -> str:
    return rfc3986(url)


def _normalized_parameters(params: Mapping[str, str | dict[str, str]]) -> str:
    """Sorted by raw key (`uksort(..., 'strcmp')`), each `k=v` encoded, joined by an encoded '&'.

    Arrays (`status[0]=x`) sign as `status%5B0%5D=x` in their own order, as PHP keeps them.
    A `k=v` of encoded parts holds only unreserved characters, '%' and '=': encoding it again
    is exactly '%' -> '%25' and '=' -> '%3D'.
    """
    pieces = []
    for key in sorted(params, key=lambda name: name.encode()):
        value = params[key]
        encoded_key = _encode(key).replace("%", "%25")
        if isinstance(value, dict):
            for sub, item in value.items():
                pieces.append(rfc3986(f"{_encode(key)}%5B{sub}%5D={_encode(item)}"))
        else:
            pieces.append(f"{encoded_key}%3D{_encode(value).replace('%', '%25')}")
    return "%26".join(pieces)
