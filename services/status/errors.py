"""What can go wrong in a status API request, in the domain's words; the app answers each with
its HTTP status in one table (services/status/app.py, ERROR_ANSWERS). Nothing here knows HTTP.

They sit in the tree of shared/errors.py:

    PermanentError                  the caller must change something before asking again
    ├── InvalidRequest              the request cannot be read as asked (bad JSON, query, id)
    │   ├── RequestTooLarge         the body is over the limit
    │   └── InvalidRequestBody      well-formed, but fails the documented schema (with details)
    ├── NotAuthenticated            no API token, a malformed one, or one that is unknown or revoked
    ├── OrganizationMismatch        the body names another organisation than the token's
    ├── QueueNotFound               no such sync queue in the caller's organisation
    ├── QueueCancelled              a cancelled queue's failed lines cannot be retried
    ├── QueueAlreadyFinished        a finished queue cannot be cancelled
    ├── JobNotFound                 no such sync job (or, on the progress stream, queue) in the caller's organisation
    ├── JobCancelled                a cancelled job's failed lines cannot be retried
    ├── JobAlreadyFinished          a job whose every queue has ended cannot be cancelled, paused or resumed
    ├── NoSyncedStores              a job over "all" stores, when the organisation has synced none yet
    ├── StoreListedTwice            a job lists one store twice with different credentials
    └── StoreConnectionFailed       the seeds' start: the store refused the credentials or did not answer the test
    RetryableError
    ├── BrokerUnavailable           a message could not be handed to RabbitMQ
    ├── SyncStartRateExceeded       the organisation starts syncs faster than its allowance (with retry_after_s)
    └── TooManyEventStreams         the organisation has as many event streams open as it may on this process

Shared errors the routes meet too: shared.errors.UnknownOrganization (the token's organisation
is gone), shared.errors.TooManyOpenSyncs, shared.errors.DatabaseUnavailable and
shared.repository.schedules.StoreNotSynced (a schedule names a store the organisation has not
synced: nothing to schedule with yet).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from shared.errors import PermanentError, RetryableError


class InvalidRequest(PermanentError):
    """The request cannot be read as asked. `details` lists the problems field by field
    ([{"field": "store.url", "message": "..."}]) when there are several to name."""

    def __init__(self, message: str, *, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.details = details


class RequestTooLarge(InvalidRequest):
    pass


class InvalidRequestBody(InvalidRequest):
    """The body is a JSON object, but not one the route takes."""


class NotAuthenticated(PermanentError):
    pass


class OrganizationMismatch(PermanentError):
    pass


class QueueNotFound(PermanentError):
    """Another organisation's queue is indistinguishable from an unknown one."""

    def __init__(self, queue_id: UUID) -> None:
        super().__init__(f"no sync queue {queue_id} in this organisation")
        self.queue_id = queue_id


class QueueCancelled(PermanentError):
    """A cancelled queue's failed lines cannot be retried."""

    def __init__(self, queue_id: UUID) -> None:
        super().__init__(f"sync queue {queue_id} is cancelled: its failed lines cannot be retried")
        self.queue_id = queue_id


class QueueAlreadyFinished(PermanentError):
    """A queue that already reached a terminal state cannot be cancelled, paused or resumed."""

    def __init__(self, queue_id: UUID, state: str, *, action: str = "cancel") -> None:
        super().__init__(f"sync queue {queue_id} is already {state}: nothing to {action}")
        self.queue_id = queue_id
        self.state = state


class BrokerUnavailable(RetryableError):
    """RabbitMQ did not confirm a message the request had to publish; the message says what
    was recorded meanwhile."""


class SyncStartRateExceeded(RetryableError):
    """The organisation started syncs (or retries) faster than WOOSYNC_ORG_SYNC_START_RATE per
    minute, in bursts of WOOSYNC_ORG_SYNC_START_BURST, allow; `retry_after_s` says when the next
    one will be (whole seconds, rounded up)."""

    def __init__(self, *, per_minute: float, burst: int, retry_after_s: int) -> None:
        super().__init__(
            f"this organisation may start {per_minute:g} syncs per minute, in bursts of up to {burst} "
            f"(retries count as starts; WOOSYNC_ORG_SYNC_START_RATE, WOOSYNC_ORG_SYNC_START_BURST): "
            f"try again in {retry_after_s} s"
        )
        self.retry_after_s = retry_after_s


class TooManyEventStreams(RetryableError):
    """The organisation has WOOSYNC_ORG_MAX_EVENT_STREAMS event streams open on this status process."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"this organisation already has {limit} event streams open on this status process, the most "
            f"WOOSYNC_ORG_MAX_EVENT_STREAMS allows: close one, or read the queue's status instead of watching it"
        )
        self.limit = limit


class JobNotFound(PermanentError):
    """Another organisation's job is indistinguishable from an unknown one."""

    def __init__(self, job_id: UUID, *, or_queue: bool = False) -> None:
        super().__init__(f"no sync job {'or queue ' if or_queue else ''}{job_id} in this organisation")
        self.job_id = job_id


class JobCancelled(PermanentError):
    """A cancelled job's failed lines cannot be retried."""

    def __init__(self, job_id: UUID) -> None:
        super().__init__(f"sync job {job_id} is cancelled: its failed lines cannot be retried")
        self.job_id = job_id


class JobAlreadyFinished(PermanentError):
    """Every queue of the job has ended: nothing to cancel, pause or resume."""

    def __init__(self, job_id: UUID, state: str, *, action: str = "cancel") -> None:
        super().__init__(f"sync job {job_id} is already {state}: nothing to {action}")
        self.job_id = job_id
        self.state = state


class NoSyncedStores(PermanentError):
    """A job over every store the organisation has synced, when it has synced none yet."""


class StoreListedTwice(PermanentError):
    """A job lists the same store (after normalising its URL) twice with different credentials:
    which to use is not woosync's guess. (Listed twice the same, it is one store.)"""


class StoreConnectionFailed(PermanentError):
    """The seeds' `start` tests the store before creating anything: it refused the credentials,
    did not answer within WOOSYNC_STORE_CONNECT_TEST_TIMEOUT_S, or is not a WooCommerce store."""
