"""Why a customer line was dead-lettered, as the dead-letter recorder writes it on the line,
read from the dead letter's headers: woosync's own reason, or the broker's x-death."""

from __future__ import annotations

import pytest

from services.consumer.dead_letters import dead_letter_reason
from shared import topology

pytestmark = pytest.mark.unit


def test_a_line_woosync_gave_up_on_records_woosyncs_error():
    headers = {topology.DEAD_REASON_HEADER: "max_attempts", topology.ERROR_HEADER: "gave up after 3 attempts: 503"}
    assert dead_letter_reason(headers) == ("gave up after 3 attempts: 503", False)


def test_a_dead_letter_from_woosync_without_an_error_records_its_reason():
    assert dead_letter_reason({topology.DEAD_REASON_HEADER: "malformed"}) == ("malformed", False)


@pytest.mark.parametrize("reason", ["delivery_limit", b"delivery_limit"])
def test_a_line_past_the_delivery_limit_says_it_was_never_settled_and_how_often_it_came(reason):
    headers = {"x-death": [{"reason": reason, "queue": topology.CUSTOMER_LINES_QUEUE}], "x-delivery-count": 5}
    assert dead_letter_reason(headers) == (
        "dead-lettered by the broker after 5 deliveries that were never settled "
        "(the consumer crashed or was killed while handling it)",
        True,
    )


def test_a_line_past_the_delivery_limit_keeps_the_last_error_woosync_recorded():
    headers = {"x-death": [{"reason": "delivery_limit"}], "x-delivery-count": 6,
               topology.ERROR_HEADER: "attempt 1 of 3: timeout"}
    assert dead_letter_reason(headers) == (
        "dead-lettered by the broker after 6 deliveries that were never settled "
        "(the consumer crashed or was killed while handling it); last error: attempt 1 of 3: timeout",
        True,
    )


def test_a_delivery_limit_without_a_count_says_too_many():
    error, by_broker = dead_letter_reason({"x-death": [{"reason": "delivery_limit"}]})
    assert error.startswith("dead-lettered by the broker after too many deliveries") and by_broker


@pytest.mark.parametrize("reason", ["expired", "maxlen", "rejected"])
def test_any_other_broker_reason_is_named(reason):
    assert dead_letter_reason({"x-death": [{"reason": reason}]}) == (f"dead-lettered by the broker ({reason})", True)


@pytest.mark.parametrize("headers", [None, {}, {"x-death": []}, {"x-death": ["not a table"]}])
def test_a_dead_letter_that_says_nothing_is_an_unknown_broker_reason(headers):
    assert dead_letter_reason(headers) == ("dead-lettered by the broker (unknown reason)", True)
