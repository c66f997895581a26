"""The fleet's request budget as one process sees it (shared/woocommerce/budget.py) when its
database fails: an outage, whatever asyncpg calls it, is DatabaseUnavailable (retryable) or a
hold kept here only; a programming error is not hidden. The database is a stand-in that fails:
the budget's SQL is tested against PostgreSQL in tests/integration/test_store_budget.py."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

import asyncpg
import pytest

from shared.errors import DatabaseUnavailable
from shared.woocommerce.budget import FleetBudgets

pytestmark = pytest.mark.unit

URL = "https://shop.example.com"

OUTAGES = [
    asyncpg.exceptions.InternalClientError("cannot switch to state 15; another operation (2) is in progress"),
    asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.InterfaceError("connection is closed"),
    asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
    ConnectionRefusedError(111, "Connect call failed"),
]


class FailingPool:
    """A pool whose every connection fails with `error`."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.calls = 0

    @asynccontextmanager
    async def acquire(self):
        self.calls += 1
        raise self.error
        yield  # pragma: no cover


@pytest.mark.parametrize("error", OUTAGES, ids=lambda e: type(e).__name__)
async def test_a_database_outage_while_leasing_slots_is_retryable(error) -> None:
    budget = FleetBudgets(FailingPool(error), default_rate=5.0).for_store(URL)  # type: ignore[arg-type]
    with pytest.raises(DatabaseUnavailable, match="request budget could not be read"):
        await budget.acquire()


@pytest.mark.parametrize("error", OUTAGES, ids=lambda e: type(e).__name__)
async def test_a_database_outage_while_holding_a_store_holds_it_in_this_process(error) -> None:
    budget = FleetBudgets(FailingPool(error), default_rate=5.0).for_store(URL)  # type: ignore[arg-type]
    assert await budget.hold(30, status=429) == 30
    assert budget.held_for_s > 29


@pytest.mark.parametrize("error", OUTAGES, ids=lambda e: type(e).__name__)
async def test_a_database_outage_while_leasing_in_flight_slots_is_retryable(error) -> None:
    pool = FailingPool(error)
    gate = FleetBudgets(pool, default_rate=None, concurrency=4).for_store(URL).in_flight(2)  # type: ignore[arg-type]
    with pytest.raises(DatabaseUnavailable):
        await asyncio.wait_for(gate.__aenter__(), 5)
    # The client's own bound was given back: the next request waits for the database again.
    with pytest.raises(DatabaseUnavailable):
        await asyncio.wait_for(gate.__aenter__(), 5)


async def test_a_programming_error_is_not_taken_for_an_outage() -> None:
    budget = FleetBudgets(FailingPool(asyncpg.InterfaceError("cannot use a closed pool?")), default_rate=5.0)  # type: ignore[arg-type]
    with pytest.raises(asyncpg.InterfaceError):
        await budget.for_store(URL).acquire()
    with pytest.raises(asyncpg.exceptions.UndefinedFunctionError):
        await FleetBudgets(FailingPool(asyncpg.exceptions.UndefinedFunctionError("store_budget_lease")),  # type: ignore[arg-type]
                           default_rate=5.0).for_store(URL).acquire()


async def test_a_programming_error_while_leasing_in_flight_slots_reaches_the_request() -> None:
    pool = FailingPool(asyncpg.exceptions.UndefinedFunctionError("function store_slots_lease does not exist"))
    gate = FleetBudgets(pool, default_rate=None, concurrency=4).for_store(URL).in_flight(2)  # type: ignore[arg-type]
    with pytest.raises(asyncpg.exceptions.UndefinedFunctionError):
        await asyncio.wait_for(gate.__aenter__(), 5)
    assert pool.calls == 1
