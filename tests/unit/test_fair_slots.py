"""The producer's fair slots on their own: an organisation holds at most its share, freed slots go
to the organisations waiting in turn, a request without an organisation needs no slot, a cancelled
waiter takes no slot (nor keeps one granted as it was cancelled), and closing sends the waiting
requests back while the running ones finish."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import orjson
import pytest

from services.producer.fair_slots import FairSlots, SlotsClosed, organisation_of
from tests.waiting import eventually

pytestmark = pytest.mark.unit


class Requests:
    """Sync requests taking slots: each holds its slot until the test finishes it."""

    def __init__(self, slots: FairSlots) -> None:
        self.slots = slots
        self.started: list[str] = []
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self._finish: dict[str, asyncio.Event] = {}

    def submit(self, name: str, org: str | None) -> None:
        finish = self._finish[name] = asyncio.Event()

        async def run() -> None:
            async with self.slots.slot(org):
                self.started.append(name)
                await finish.wait()

        self.tasks[name] = asyncio.create_task(run())

    async def finish(self, name: str) -> None:
        self._finish[name].set()
        await self.tasks[name]


async def settle() -> None:
    """Let every task that can run, run (a few turns of the loop, no time passes)."""
    for _ in range(10):
        await asyncio.sleep(0)


async def test_an_organisation_holds_at_most_its_share_and_another_starts_at_once() -> None:
    requests = Requests(FairSlots(concurrency=4, per_org=2))
    for n in range(1, 6):
        requests.submit(f"A{n}", "A")
    await settle()
    assert requests.started == ["A1", "A2"]  # two slots stay free for the others

    requests.submit("B1", "B")
    await settle()
    assert requests.started == ["A1", "A2", "B1"]
    assert requests.slots.held_by("A") == 2 and requests.slots.waiting == 3


async def test_a_freed_slot_goes_to_the_waiting_organisation_served_least_recently() -> None:
    requests = Requests(FairSlots(concurrency=2, per_org=2))
    for name in ("A1", "A2", "A3", "A4", "B1", "B2", "C1", "C2"):
        requests.submit(name, name[0])
    await settle()
    assert requests.started == ["A1", "A2"]

    for name in ("A1", "A2", "B1", "C1", "A3", "B2", "C2"):
        await requests.finish(name)
        await settle()
    assert requests.started == ["A1", "A2", "B1", "C1", "A3", "B2", "C2", "A4"]


async def test_an_organisation_alone_still_waits_past_its_share() -> None:
    requests = Requests(FairSlots(concurrency=4, per_org=2))
    for name in ("A1", "A2", "A3"):
        requests.submit(name, "A")
    await settle()
    assert requests.started == ["A1", "A2"] and requests.slots.in_use == 2

    await requests.finish("A1")
    await eventually(lambda: requests.started == ["A1", "A2", "A3"], what="A3 to start once A1 is done")


async def test_a_request_without_an_organisation_runs_without_a_slot() -> None:
    requests = Requests(FairSlots(concurrency=1, per_org=1))
    requests.submit("A1", "A")
    requests.submit("unreadable", None)
    await settle()
    assert requests.started == ["A1", "unreadable"] and requests.slots.in_use == 1


async def test_a_waiter_cancelled_before_its_turn_takes_no_slot() -> None:
    requests = Requests(FairSlots(concurrency=1, per_org=1))
    requests.submit("A1", "A")
    requests.submit("B1", "B")
    await settle()
    requests.tasks["B1"].cancel()
    await settle()
    assert requests.slots.waiting == 0

    await requests.finish("A1")
    assert requests.slots.in_use == 0
    requests.submit("C1", "C")
    await settle()
    assert requests.started == ["A1", "C1"]


async def test_a_waiter_cancelled_as_its_slot_is_granted_passes_the_slot_on() -> None:
    slots = FairSlots(concurrency=1, per_org=1)
    await slots.acquire("A")
    b = asyncio.create_task(slots.acquire("B"))
    c = asyncio.create_task(slots.acquire("C"))
    await settle()

    slots.release("A")  # grants B's turn ...
    b.cancel()  # ... and B is cancelled before it could run
    await settle()
    assert b.cancelled() and c.done() and c.exception() is None
    assert slots.held_by("B") == 0 and slots.held_by("C") == 1 and slots.in_use == 1


async def test_closing_sends_the_waiting_requests_back_and_lets_the_running_ones_finish() -> None:
    requests = Requests(FairSlots(concurrency=1, per_org=1))
    for name, org in (("A1", "A"), ("A2", "A"), ("B1", "B")):
        requests.submit(name, org)
    await settle()

    requests.slots.close()
    await settle()
    for name in ("A2", "B1"):
        assert requests.tasks[name].done() and isinstance(requests.tasks[name].exception(), SlotsClosed)
    assert not requests.tasks["A1"].done()
    await requests.finish("A1")
    assert requests.slots.in_use == 0 and requests.started == ["A1"]
    with pytest.raises(SlotsClosed):
        await requests.slots.acquire("C")


@pytest.mark.parametrize(("concurrency", "per_org"), [(0, 1), (2, 0), (2, 3)])
def test_a_share_outside_one_to_the_concurrency_is_refused(concurrency: int, per_org: int) -> None:
    with pytest.raises(ValueError):
        FairSlots(concurrency, per_org)


def test_the_organisation_of_a_request_is_its_org_id_in_one_spelling() -> None:
    org = uuid4()
    assert organisation_of(orjson.dumps({"org_id": str(org), "store": {}})) == str(org)
    assert organisation_of(orjson.dumps({"org_id": str(org).upper()})) == str(org)


@pytest.mark.parametrize("body", [b"", b"not json", b"[1, 2]", b'"text"', b"{}", b'{"org_id": 7}',
                                  b'{"org_id": "not-a-uuid"}', b'{"org_id": null}', b'{"org_id": ["x"]}'])
def test_a_body_that_names_no_organisation_has_none(body: bytes) -> None:
    assert organisation_of(body) is None
