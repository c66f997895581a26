"""A job's state and totals derived from its queues (shared/repository/jobs.py): pure rules."""

from __future__ import annotations

import pytest

from shared.repository.jobs import JobTotals, derive_job_state

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("states", "cancelled", "expected"),
    [
        (["draft", "draft"], False, "draft"),
        (["draft", "processing"], False, "processing"),
        (["done", "draft"], False, "processing"),
        (["done", "done"], False, "done"),
        (["failed", "failed"], False, "failed"),
        (["done", "failed"], False, "partial"),
        (["done", "partial", "failed"], False, "partial"),
        (["cancelled", "cancelled"], False, "cancelled"),
        (["done", "cancelled"], False, "partial"),
        (["done", "cancelled"], True, "cancelled"),
        (["processing", "cancelled"], True, "processing"),
        (["paused", "paused"], False, "paused"),
        (["paused", "done"], False, "paused"),
        (["paused", "failed", "cancelled"], False, "paused"),
        (["paused", "draft"], False, "processing"),
        (["paused", "processing"], False, "processing"),
    ],
)
def test_a_jobs_state_follows_its_queues(states, cancelled, expected) -> None:
    assert derive_job_state(states, cancelled=cancelled) == expected


@pytest.mark.parametrize("state", ["draft", "processing", "paused", "done", "failed", "partial", "cancelled"])
def test_a_job_of_one_queue_has_that_queues_state(state) -> None:
    assert derive_job_state([state], cancelled=False) == state


def queue(state: str, *, done: int = 0, failed: int = 0, draft: int = 0, rate: float = 0.0, eta: int | None = 0) -> dict:
    return {"state": state, "total_count": done + failed + draft, "draft_count": draft, "processing_count": 0,
            "done_count": done, "failed_count": failed, "cancelled_count": 0, "items_per_min": rate,
            "eta_seconds": eta, "is_action_required": failed > 0}


def test_totals_add_counts_and_rates_and_wait_for_the_slowest_queue() -> None:
    totals = JobTotals.of([queue("processing", done=5, draft=5, rate=30.0, eta=10),
                           queue("processing", done=1, draft=9, rate=6.0, eta=90),
                           queue("failed", failed=2)])
    assert (totals.state, totals.total_count, totals.done_count, totals.failed_count) == ("processing", 22, 6, 2)
    assert (totals.progress, totals.items_per_min, totals.eta_seconds, totals.is_action_required) == (36, 36.0, 90, True)


def test_an_unknown_eta_of_an_open_queue_makes_the_jobs_unknown() -> None:
    assert JobTotals.of([queue("processing", draft=3, eta=None), queue("done", done=3)]).eta_seconds is None


def test_a_finished_job_is_100_percent_with_no_eta_even_without_lines() -> None:
    totals = JobTotals.of([queue("failed")])
    assert (totals.progress, totals.eta_seconds, totals.is_terminal) == (100, 0, True)
