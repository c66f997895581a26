"""`woosync schedule`'s intervals: the friendly forms people type, and the bounds of a schedule."""

from __future__ import annotations

import argparse

import pytest

from shared.repository import schedules
from woosync.commands.schedule import MAX_EVERY_S, MIN_EVERY_S, describe_interval, parse_interval

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(("text", "seconds"), [
    ("60", 60), ("90s", 90), ("15m", 900), ("1h", 3600), (" 1H ", 3600), ("1d", 86400), ("1h30m", 5400), ("2w", 1209600),
])
def test_an_interval_is_read_in_seconds_or_with_units(text: str, seconds: int) -> None:
    assert parse_interval(text) == seconds


@pytest.mark.parametrize(("text", "fragment"), [
    ("59", "between 60 s"), ("30s", "between 60 s"), ("367d", "between 60 s"), ("hourly", "not an interval"),
    ("1.5h", "not an interval"), ("", "not an interval"), ("h", "not an interval"), ("-60", "not an interval"),
])
def test_a_bad_interval_is_refused_saying_what_is_allowed(text: str, fragment: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=fragment):
        parse_interval(text)


@pytest.mark.parametrize(("seconds", "text"), [(60, "1m"), (900, "15m"), (5400, "1h30m"), (86400, "1d"), (90061, "1d1h1m1s")])
def test_an_interval_is_shown_in_its_shortest_exact_form(seconds: int, text: str) -> None:
    assert describe_interval(seconds) == text
    assert parse_interval(text) == seconds


def test_the_command_keeps_the_repositorys_bounds() -> None:
    assert (MIN_EVERY_S, MAX_EVERY_S) == (schedules.MIN_EVERY_S, schedules.MAX_EVERY_S)
