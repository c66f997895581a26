"""Every failure woosync expects, sorted by what should happen next.

    WoosyncError
    ├── RetryableError          try again later (with a delay); the work is fine
    │   ├── StoreUnavailable    store transport error, timeout, 5xx
    │   │   ├── StoreUnreachable  no HTTP answer at all (DNS, refused connection, TLS, timeout)
    │   │   └── StoreRateLimited  429 (carries Retry-After)
    │   └── DatabaseUnavailable connection lost, server restarting, serialization failure
    └── PermanentError          trying again cannot help; fail the work now
        ├── UnknownOrganization
        ├── TooManyOpenSyncs    the organisation has WOOSYNC_ORG_MAX_OPEN_SYNCS syncs open already
        ├── StoreError          the store answered 4xx (not 429): carries url, status, code, message
        │   ├── StoreAuthError  401/403: credentials refused or not sent the way the store accepts
        │   ├── StoreNotFound   404
        │   ├── StoreBadRequest 400 (e.g. rest_invalid_param)
        │   ├── NotAWooCommerceStore  the URL answers, but not as a WooCommerce REST API
        │   ├── StoreAddressRefused    the store's address is in a network woosync does not connect to
        │   └── StoreResponseTooLarge  the answer is bigger than WOOSYNC_STORE_MAX_RESPONSE_BYTES
        └── InvalidCustomer     the customer's data cannot be mapped (e.g. no valid email)

The AMQP wrapper of each service turns these into ack / retry / dead-letter in one place;
handlers only raise.

Outside the tree, StartupError: the service cannot start and the operator must act (the message
says what to do in one line).
"""

from __future__ import annotations


class WoosyncError(Exception):
    """Base of every error woosync raises on purpose."""


class RetryableError(WoosyncError):
    """Transient: the same work may succeed later."""


class PermanentError(WoosyncError):
    """Trying again cannot help."""


class DatabaseUnavailable(RetryableError):
    pass


class StoreUnavailable(RetryableError):
    """The store could not be reached, timed out, or answered 5xx."""

    def __init__(
        self, message: str, *, store_url: str = "", status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.store_url = store_url
        self.status = status
        # Seconds the store asked us to wait (Retry-After on a 429 or 503), when it said so.
        self.retry_after = retry_after


class StoreUnreachable(StoreUnavailable):
    """No HTTP answer at all (DNS, connection refused, TLS, timeout)."""


class StoreRateLimited(StoreUnavailable):
    def __init__(self, message: str, *, store_url: str = "", retry_after: float | None = None) -> None:
        super().__init__(message, store_url=store_url, status=429, retry_after=retry_after)


class UnknownOrganization(PermanentError):
    pass


class StoreError(PermanentError):
    """The store answered with a 4xx other than 429."""

    def __init__(
        self,
        message: str,
        *,
        store_url: str = "",
        status: int | None = None,
        code: str | None = None,
        store_message: str | None = None,
    ) -> None:
        super().__init__(message)
        self.store_url = store_url
        self.status = status
        self.code = code
        self.store_message = store_message


class StoreAuthError(StoreError):
    """401/403: the store refused the credentials (or how they were sent)."""


class StoreNotFound(StoreError):
    pass


class StoreBadRequest(StoreError):
    pass


class NotAWooCommerceStore(StoreError):
    """The URL answers HTTP, but not as a WooCommerce REST API v3."""


class StoreAddressRefused(StoreError):
    """The store's address resolves to a loopback, private, link-local, metadata or other
    non-public network that WOOSYNC_STORE_ALLOWED_NETWORKS does not allow: nothing was sent."""


class StoreResponseTooLarge(StoreError):
    """The store answered more bytes than WOOSYNC_STORE_MAX_RESPONSE_BYTES: reading stopped there."""


class TooManyOpenSyncs(PermanentError):
    """The organisation already has WOOSYNC_ORG_MAX_OPEN_SYNCS syncs open (draft or processing):
    a new one waits until one of them ends (the status API answers 429, the producer dead-letters
    the request with reason too_many_open_syncs)."""

    def __init__(self, org_id: object, max_open_syncs: int) -> None:
        super().__init__(
            f"organisation {org_id} already has {max_open_syncs} syncs open (draft or processing), the most "
            f"WOOSYNC_ORG_MAX_OPEN_SYNCS allows: wait for one to finish, or cancel one, before starting another"
        )
        self.org_id = org_id
        self.max_open_syncs = max_open_syncs


class InvalidCustomer(PermanentError):
    """The customer's data cannot become a customer row (e.g. missing or invalid email)."""


class StartupError(Exception):
    """The service cannot start; the message says why and what to do."""
