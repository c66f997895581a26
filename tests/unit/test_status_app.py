"""The status app's one handler table: every domain error is answered with its status in the
error envelope (docs/contract.md section 7)."""

from __future__ import annotations

import inspect
from uuid import UUID

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from services.status import errors
from services.status.app import ERROR_ANSWERS, EXCEPTION_HANDLERS, error_answer
from shared.errors import DatabaseUnavailable, PermanentError, RetryableError, TooManyOpenSyncs, UnknownOrganization
from shared.repository.schedules import StoreNotSynced

pytestmark = pytest.mark.unit

QUEUE_ID = UUID("00000000-0000-4000-8000-000000000001")
DETAILS = [{"field": "store.url", "message": "must be an http(s) URL"}]

# The contract: each error, and the status the API answers it with.
EXPECTED: list[tuple[Exception, int]] = [
    (errors.InvalidRequest("query parameter limit must be an integer, got 'x'"), 400),
    (errors.RequestTooLarge("request body is larger than 1000000 bytes"), 413),
    (errors.InvalidRequestBody("invalid request body: store.url: must be an http(s) URL", details=DETAILS), 422),
    (errors.NotAuthenticated("invalid or revoked API token"), 401),
    (errors.OrganizationMismatch("org_id is not the organisation of this API token"), 403),
    (errors.QueueNotFound(QUEUE_ID), 404),
    (errors.QueueCancelled(QUEUE_ID), 409),
    (errors.QueueAlreadyFinished(QUEUE_ID, "done"), 409),
    (errors.BrokerUnavailable("the sync request could not be handed to the message broker"), 503),
    (UnknownOrganization(f"organisation {QUEUE_ID} is not registered"), 401),
    (errors.SyncStartRateExceeded(per_minute=60, burst=20, retry_after_s=3), 429),
    (errors.TooManyEventStreams(20), 429),
    (TooManyOpenSyncs(QUEUE_ID, 20), 429),
    (errors.JobNotFound(QUEUE_ID), 404),
    (errors.JobCancelled(QUEUE_ID), 409),
    (errors.JobAlreadyFinished(QUEUE_ID, "done"), 409),
    (errors.NoSyncedStores("this organisation has synced no store yet"), 409),
    (errors.StoreListedTwice("https://shop.example.com is listed twice with different credentials"), 409),
    (StoreNotSynced("store https://shop.example.com is not one this organisation has synced: run a sync of it first"), 409),
    (errors.StoreConnectionFailed("Failed to connect to WooCommerce: 401 woocommerce_rest_cannot_view"), 500),
]


async def answer_to(exc: Exception) -> httpx.Response:
    """The answer of an app with the status service's handler table to a route that raises `exc`."""

    async def endpoint(request: Request) -> None:
        raise exc

    app = Starlette(routes=[Route("/boom", endpoint, methods=["GET"])], exception_handlers=EXCEPTION_HANDLERS)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://status.test") as client:
        return await client.get("/boom")


def test_every_status_service_error_has_an_answer_in_the_table() -> None:
    defined = [kind for _, kind in inspect.getmembers(errors, inspect.isclass) if kind.__module__ == errors.__name__]
    assert defined
    for kind in defined:
        assert kind in ERROR_ANSWERS, f"{kind.__name__} has no answer in ERROR_ANSWERS"
        assert kind in {type(exc) for exc, _ in EXPECTED}, f"{kind.__name__} has no expected status in this test"


def test_every_status_service_error_sits_in_the_shared_retryable_or_permanent_tree() -> None:
    for exc, _ in EXPECTED:
        assert isinstance(exc, PermanentError | RetryableError)


@pytest.mark.parametrize(("exc", "status"), EXPECTED, ids=lambda value: type(value).__name__)
async def test_domain_error_is_answered_with_its_status_in_the_error_envelope(exc: Exception, status: int) -> None:
    assert error_answer(exc).status == status
    response = await answer_to(exc)
    assert response.status_code == status
    body = response.json()
    assert body["success"] is False
    assert body["error"]
    assert body.get("details") == getattr(exc, "details", None)


async def test_domain_error_message_is_the_errors_own_words() -> None:
    response = await answer_to(errors.QueueNotFound(QUEUE_ID))
    assert response.json() == {"success": False, "error": f"no sync queue {QUEUE_ID} in this organisation"}


def test_a_more_specific_error_wins_over_its_base_class() -> None:
    assert error_answer(errors.InvalidRequestBody("invalid request body: x")).status == 422
    assert error_answer(errors.RequestTooLarge("too large")).status == 413
    assert error_answer(errors.InvalidRequest("bad query")).status == 400


async def test_not_authenticated_carries_the_bearer_challenge() -> None:
    response = await answer_to(errors.NotAuthenticated("missing Authorization header"))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="woosync"'


async def test_unknown_organization_is_answered_without_naming_the_organisation() -> None:
    response = await answer_to(UnknownOrganization(f"organisation {QUEUE_ID} is not registered"))
    assert response.status_code == 401
    assert response.json() == {"success": False, "error": "the API token's organisation is no longer registered"}
    assert "www-authenticate" not in response.headers


async def test_unavailable_database_is_a_503_to_try_again() -> None:
    response = await answer_to(DatabaseUnavailable("connection lost"))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"
    assert response.json()["success"] is False


async def test_an_unexpected_error_is_a_500_without_its_words() -> None:
    response = await answer_to(RuntimeError("secret internals"))
    assert response.status_code == 500
    assert "secret internals" not in response.text
    assert response.json()["success"] is False


def test_an_error_outside_the_table_has_no_domain_answer() -> None:
    with pytest.raises(KeyError):
        error_answer(RuntimeError("not a domain error"))


async def test_the_rate_limit_answer_says_when_to_come_back_in_retry_after() -> None:
    response = await answer_to(errors.SyncStartRateExceeded(per_minute=6, burst=3, retry_after_s=7))
    assert response.status_code == 429 and response.headers["Retry-After"] == "7"
    assert "WOOSYNC_ORG_SYNC_START_RATE" in response.json()["error"]
