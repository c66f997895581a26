"""The consumer's decisions, case by case, without a broker or a database: what a batch's
claims mean (plan_batch), what a worked line's result means (judge), and what happens to the
message once the outcome is committed (decide). A message only names its line: one that
disagrees with the line's row is dead-lettered as tampered, and work uses the row's data."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from services.consumer.decisions import (
    Ack,
    Cancel,
    DeadLetter,
    Delivery,
    Failed,
    GaveUp,
    Retry,
    Synced,
    TryAgain,
    Work,
    attempt_of,
    decide,
    judge,
    plan_batch,
    stated_lines,
    unrecordable,
)
from shared import topology
from shared.errors import InvalidCustomer, StoreNotFound, StoreUnavailable
from shared.mapping import CustomerRow
from shared.messages import CustomerLine
from shared.repository.queue_lines import ClaimedLine, StatedLine

pytestmark = pytest.mark.unit

MAX_ATTEMPTS = 3


@dataclass
class Delivered:
    """What Delivery.decode reads of a delivered message: its body and headers."""

    body: bytes
    headers: dict = field(default_factory=dict)


def customer_line(woo_customer_id: int = 7) -> CustomerLine:
    return CustomerLine(line_id=uuid.uuid4(), queue_id=uuid.uuid4(), org_id=uuid.uuid4(), store_id=uuid.uuid4(),
                        woo_customer_id=woo_customer_id, customer={"id": woo_customer_id, "email": "a@x.io"})


def delivery(line: CustomerLine | None, attempt: int = 1, problem: str | None = None) -> Delivery:
    return Delivery(message=None, received_at=100.0, line=line, attempt=attempt, problem=problem)  # type: ignore[arg-type]


def claim(line: CustomerLine, *, state: str = "processing", claimed: bool = True, queue_cancelled: bool = False,
          disagreeing: tuple[str, ...] = ()) -> ClaimedLine:
    """The line's row as claim_lines answers it for `line`'s message (the row records what the
    message says unless `disagreeing` names fields that differ)."""
    return ClaimedLine(line_id=line.line_id, queue_id=line.queue_id, org_id=line.org_id,
                       woo_customer_id=line.woo_customer_id, customer_data=dict(line.customer), state=state,  # type: ignore[arg-type]
                       claimed=claimed, queue_cancelled=queue_cancelled, process_count=1, error_count=0,
                       store_id=line.store_id, store_url="https://shop.example", disagreeing=disagreeing)


def plan_one(line: CustomerLine, claims: list[ClaimedLine | None], attempt: int = 1):
    [step] = plan_batch([delivery(line, attempt)], claims, max_attempts=MAX_ATTEMPTS)
    return step


ROW = CustomerRow(
    email="a@x.io", name="A", phone=None, company=None, segment="individual", status="prospect",
    lifetime_value=Decimal("0.00"), acquisition_date=datetime(2025, 1, 1, tzinfo=timezone.utc),
    last_interaction_date=None, address={}, metadata={}, tags=["woocommerce"], woo_customer_id=7,
    store_url="https://shop.example",
)


# ---- decoding a delivery -------------------------------------------------------------------


def test_a_readable_message_decodes_to_its_line_and_attempt():
    line = customer_line()
    decoded = Delivery.decode(Delivered(line.model_dump_json().encode(), {topology.ATTEMPT_HEADER: 2}))  # type: ignore[arg-type]
    assert (decoded.line, decoded.attempt, decoded.problem) == (line, 2, None)


@pytest.mark.parametrize(("customer", "woo_customer_id", "problem"), [
    ({"email": "a\u0000@x.io"}, 7, "customer: a NUL character"),
    ({"a\u0000": 1}, 7, "customer: a NUL character"),
    ({"nested": [{"x": "\u0000"}]}, 7, "customer: a NUL character"),
    ({"id": 2**70}, 7, "customer: not a storable JSON document"),
    ({"id": 7}, 2**63, "woo_customer_id: out of range"),
])
def test_a_message_whose_line_could_never_hold_it_is_unreadable(customer, woo_customer_id, problem):
    body = ('{"line_id": "%s", "queue_id": "%s", "org_id": "%s", "store_id": "%s", "woo_customer_id": %d, "customer": %s}'
            % (uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), woo_customer_id,
               json.dumps(customer)))
    decoded = Delivery.decode(Delivered(body.encode()))  # type: ignore[arg-type]
    assert decoded.line is None
    assert decoded.problem is not None and decoded.problem.startswith(f"malformed customer line: {problem}")


def test_a_backslash_u0000_written_as_text_is_recordable():
    line = customer_line().model_copy(update={"customer": {"note": "\\u0000 is not a NUL"}})
    assert unrecordable(line) is None


def test_an_unreadable_message_decodes_to_the_problem_naming_at_most_three_fields():
    decoded = Delivery.decode(Delivered(b'{"customer": 1}'))  # type: ignore[arg-type]
    assert decoded.line is None
    assert decoded.problem is not None and decoded.problem.startswith("malformed customer line: line_id: Field required")
    assert decoded.problem.count("; ") == 2


def test_a_message_that_is_not_json_is_described_as_a_whole():
    decoded = Delivery.decode(Delivered(b"not json"))  # type: ignore[arg-type]
    assert decoded.problem is not None and decoded.problem.startswith("malformed customer line: body: ")


@pytest.mark.parametrize(("headers", "attempt"), [
    (None, 1), ({}, 1), ({topology.ATTEMPT_HEADER: 3}, 3), ({topology.ATTEMPT_HEADER: "2"}, 2),
    ({topology.ATTEMPT_HEADER: 0}, 1), ({topology.ATTEMPT_HEADER: -4}, 1), ({topology.ATTEMPT_HEADER: "x"}, 1),
    ({topology.ATTEMPT_HEADER: None}, 1),
])
def test_the_attempt_header_counts_from_one_and_nonsense_counts_as_a_first_try(headers, attempt):
    assert attempt_of(headers) == attempt


# ---- step 1: the plan ----------------------------------------------------------------------


def test_every_readable_delivery_states_its_line_for_the_claim_in_order():
    first, second = customer_line(1), customer_line(2)
    deliveries = [delivery(first), delivery(None, problem="bad"), delivery(second), delivery(first)]
    assert stated_lines(deliveries) == [
        StatedLine(line_id=line.line_id, org_id=line.org_id, queue_id=line.queue_id, store_id=line.store_id,
                   woo_customer_id=line.woo_customer_id, customer_data=line.customer)
        for line in (first, second, first)]


def test_a_claimed_line_is_worked_on_with_its_attempt():
    line = customer_line()
    assert plan_one(line, [claim(line)], attempt=2) == Work(claim(line), 2, 100.0)


def test_the_work_carries_the_lines_row_not_the_message():
    line = customer_line()
    row = claim(line)
    [step] = plan_batch([delivery(line)], [row], max_attempts=MAX_ATTEMPTS)
    assert isinstance(step, Work) and step.line is row


def test_a_malformed_message_is_dead_lettered_with_its_problem_without_claiming_anything():
    malformed = delivery(None, problem="malformed customer line: line_id: Field required")
    assert stated_lines([malformed]) == []
    assert plan_batch([malformed], [], max_attempts=MAX_ATTEMPTS) == [
        DeadLetter("malformed", "malformed customer line: line_id: Field required")]


def test_a_line_delivered_twice_in_one_batch_is_worked_once_and_the_copy_acked():
    line = customer_line()
    deliveries = [delivery(line), delivery(line)]
    assert plan_batch(deliveries, [claim(line), claim(line)], max_attempts=MAX_ATTEMPTS) == [
        Work(claim(line), 1, 100.0), Ack()]


def test_a_line_that_no_longer_exists_is_acked():
    assert plan_one(customer_line(), [None]) == Ack()


def test_a_line_of_a_cancelled_queue_is_cancelled():
    line = customer_line()
    cancelled = claim(line, state="draft", claimed=False, queue_cancelled=True)
    assert plan_one(line, [cancelled]) == Cancel(cancelled)


# A message that disagrees with its line's row, field by field: claim_lines did not claim the
# line for it (claimed=False) and names the fields; the line stays in draft.
@pytest.mark.parametrize("fields", [
    ("org_id",), ("queue_id",), ("store_id",), ("woo_customer_id",), ("customer",),
    ("org_id", "queue_id", "store_id"),
])
def test_a_message_that_disagrees_with_its_lines_row_is_dead_lettered_as_tampered(fields, caplog):
    line = customer_line()
    step = plan_one(line, [claim(line, state="draft", claimed=False, disagreeing=fields)])
    assert step == DeadLetter("tampered", f"the message disagrees with line {line.line_id} as recorded: {', '.join(fields)}")
    assert not step.line_failed
    [record] = [r for r in caplog.records if "tampering" in r.getMessage()]
    assert record.levelname == "WARNING"
    assert str(line.line_id) in record.getMessage() and ", ".join(fields) in record.getMessage()
    assert "a@x.io" not in record.getMessage()  # never the customer data


@pytest.mark.parametrize("state", ["draft", "processing", "done", "failed", "cancelled"])
def test_a_tampered_message_is_dead_lettered_whatever_its_line_state(state):
    line = customer_line()
    assert plan_one(line, [claim(line, state=state, claimed=False, disagreeing=("org_id",))]).reason == "tampered"


def test_a_tampered_message_is_dead_lettered_even_when_its_queue_is_cancelled():
    line = customer_line()
    row = claim(line, state="draft", claimed=False, queue_cancelled=True, disagreeing=("customer",))
    assert plan_one(line, [row]).reason == "tampered"


def test_a_forged_copy_does_not_hide_the_genuine_message_in_the_same_batch():
    genuine = customer_line()
    forged = genuine.model_copy(update={"customer": {"id": 7, "email": "attacker@example.com"}})
    deliveries = [delivery(forged), delivery(genuine), delivery(forged)]
    claims = [claim(genuine, disagreeing=("customer",)), claim(genuine), claim(genuine, disagreeing=("customer",))]
    assert [type(step).__name__ for step in plan_batch(deliveries, claims, max_attempts=MAX_ATTEMPTS)] == [
        "DeadLetter", "Work", "DeadLetter"]


def test_a_genuine_copy_after_the_worked_one_is_acked_and_a_forged_one_dead_lettered():
    genuine = customer_line()
    forged = genuine.model_copy(update={"org_id": uuid.uuid4()})
    deliveries = [delivery(genuine), delivery(forged), delivery(genuine)]
    claims = [claim(genuine), claim(genuine, disagreeing=("org_id",)), claim(genuine)]
    steps = plan_batch(deliveries, claims, max_attempts=MAX_ATTEMPTS)
    assert steps[0] == Work(claim(genuine), 1, 100.0)
    assert steps[1].reason == "tampered"
    assert steps[2] == Ack()


@pytest.mark.parametrize("state", ["done", "failed", "cancelled"])
def test_a_redelivery_of_finished_work_is_acked(state):
    line = customer_line()
    assert plan_one(line, [claim(line, state=state, claimed=False)], attempt=MAX_ATTEMPTS - 1) == Ack()


def test_a_failed_line_on_its_last_try_is_dead_lettered_again_in_case_the_first_was_lost():
    line = customer_line()
    step = plan_one(line, [claim(line, state="failed", claimed=False)], attempt=MAX_ATTEMPTS)
    assert step == DeadLetter("max_attempts", f"line failed after {MAX_ATTEMPTS} attempts")
    assert not step.line_failed  # already counted as failed when it was committed


def test_a_done_line_on_its_last_try_is_only_acked():
    line = customer_line()
    assert plan_one(line, [claim(line, state="done", claimed=False)], attempt=MAX_ATTEMPTS) == Ack()


def test_a_plan_keeps_the_order_of_the_deliveries():
    worked, gone, cancelled = customer_line(1), customer_line(2), customer_line(3)
    deliveries = [delivery(None, problem="bad"), delivery(worked), delivery(gone), delivery(cancelled)]
    cancelled_row = claim(cancelled, state="draft", claimed=False, queue_cancelled=True)
    assert plan_batch(deliveries, [claim(worked), None, cancelled_row], max_attempts=MAX_ATTEMPTS) == [
        DeadLetter("malformed", "bad"), Work(claim(worked), 1, 100.0), Ack(), Cancel(cancelled_row)]


# ---- step 2: judging a result --------------------------------------------------------------


def test_a_mapped_row_is_synced():
    work = Work(claim(customer_line()), 1, 100.0)
    assert judge(work, ROW, max_attempts=MAX_ATTEMPTS) == Synced(work, ROW)


@pytest.mark.parametrize("error", [InvalidCustomer("no valid email"), StoreNotFound("customer 7 is gone")])
def test_a_permanent_error_fails_the_line_on_any_attempt(error):
    work = Work(claim(customer_line()), 1, 100.0)
    assert judge(work, error, max_attempts=MAX_ATTEMPTS) == Failed(work, str(error))


def test_a_transient_error_with_attempts_left_is_tried_again():
    work = Work(claim(customer_line()), 2, 100.0)
    assert judge(work, StoreUnavailable("503"), max_attempts=MAX_ATTEMPTS) == TryAgain(work, "attempt 2 of 3: 503")


def test_a_transient_error_on_the_last_attempt_gives_up():
    work = Work(claim(customer_line()), 3, 100.0)
    assert judge(work, StoreUnavailable("503"), max_attempts=MAX_ATTEMPTS) == GaveUp(work, "gave up after 3 attempts: 503")


def test_any_other_error_counts_as_transient():
    work = Work(claim(customer_line()), 1, 100.0)
    assert isinstance(judge(work, RuntimeError("bug"), max_attempts=MAX_ATTEMPTS), TryAgain)


# ---- step 3: the message's fate ------------------------------------------------------------


def test_a_synced_line_is_acked_as_done():
    assert decide(Synced(Work(claim(customer_line()), 1, 0.0), ROW), retry_delay_ms=2000) == Ack("done")


def test_a_cancelled_line_is_acked_as_cancelled():
    assert decide(Cancel(claim(customer_line())), retry_delay_ms=2000) == Ack("cancelled")


def test_a_line_failed_for_good_is_acked_as_failed_not_dead_lettered():
    assert decide(Failed(Work(claim(customer_line()), 1, 0.0), "no valid email"), retry_delay_ms=2000) == Ack("failed")


def test_a_line_given_up_on_is_dead_lettered_as_failed():
    assert decide(GaveUp(Work(claim(customer_line()), 3, 0.0), "gave up"), retry_delay_ms=2000) == DeadLetter(
        "max_attempts", "gave up", line_failed=True)


@pytest.mark.parametrize(("attempt", "delay_ms"), [(1, 2000), (2, 4000), (3, 8000)])
def test_a_line_tried_again_is_retried_as_the_next_attempt_after_a_doubling_delay(attempt, delay_ms):
    assert decide(TryAgain(Work(claim(customer_line()), attempt, 0.0), "503"), retry_delay_ms=2000) == Retry(
        "503", attempt + 1, delay_ms)
