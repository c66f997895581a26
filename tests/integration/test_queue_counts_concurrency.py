"""Queue counters under concurrency: the invariant of docs/contract.md section 4 holds after every commit.

Eight connections move the lines of one queue through random valid transitions, in batches of
random size (many of one line, as a consumer handling single messages does): a producer adds
the 20,000 lines in chunks while seven workers dispatch them (draft -> queued, as the
dispatcher does), claim them (draft/queued -> processing), finish them (done / failed) or hand
them back for a delayed retry (processing -> queued), then failed lines are retried
(failed -> draft) twice and the queue is cancelled during the last round. After every committed
batch the worker reads the queue row and COUNT(*) by state in one REPEATABLE READ snapshot:
each counter must equal the true number of lines in that state, they must sum to total_count,
and the queue state must be the one docs/contract.md section 4 gives for those counts.

The same workload against the seed's trigger (a COUNT(*) recount per line, kept below as the
reference) commits wrong counters: its recount reads a snapshot taken before it waited for the
queue row lock, so it misses what the transaction it waited for committed.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from uuid import UUID

import asyncpg
import pytest

from shared.db import register_codecs, translate_db_error
from shared.migrations import apply_migrations
from shared.organizations import create_organization
from shared.repository import queue_lines, sync_queues
from shared.repository.sql import rows_affected
from shared.states import LINE_STATES

pytestmark = pytest.mark.integration

# The seed's trigger (seeds/000: update_woo_sync_queue_state), kept as it was except that it
# also recounts the columns woosync added (total, queued, processing, cancelled), as it would have to.
SEED_COUNT_TRIGGER = """
CREATE OR REPLACE FUNCTION update_woo_sync_queue_state()
RETURNS TRIGGER AS $$
BEGIN
  UPDATE woo_customer_sync_queue
  SET
    total_count = (SELECT COUNT(*) FROM woo_customer_sync_queue_line
                   WHERE queue_id = NEW.queue_id),
    draft_count = (SELECT COUNT(*) FROM woo_customer_sync_queue_line
                   WHERE queue_id = NEW.queue_id AND state = 'draft'),
    queued_count = (SELECT COUNT(*) FROM woo_customer_sync_queue_line
                   WHERE queue_id = NEW.queue_id AND state = 'queued'),
    processing_count = (SELECT COUNT(*) FROM woo_customer_sync_queue_line
                   WHERE queue_id = NEW.queue_id AND state = 'processing'),
    done_count = (SELECT COUNT(*) FROM woo_customer_sync_queue_line
                  WHERE queue_id = NEW.queue_id AND state = 'done'),
    failed_count = (SELECT COUNT(*) FROM woo_customer_sync_queue_line
                    WHERE queue_id = NEW.queue_id AND state = 'failed'),
    cancelled_count = (SELECT COUNT(*) FROM woo_customer_sync_queue_line
                    WHERE queue_id = NEW.queue_id AND state = 'cancelled'),
    updated_at = NOW()
  WHERE id = NEW.queue_id;

  -- Update queue state machine
  UPDATE woo_customer_sync_queue q
  SET state = CASE
    WHEN draft_count + cancelled_count = total_count THEN 'draft'
    WHEN draft_count = 0 AND failed_count = 0 THEN 'done'
    WHEN draft_count = 0 AND done_count = 0 AND failed_count > 0 THEN 'failed'
    ELSE 'partial'
  END
  WHERE id = NEW.queue_id;

  RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER woo_sync_queue_line_state_change
AFTER INSERT OR UPDATE ON woo_customer_sync_queue_line
FOR EACH ROW
EXECUTE FUNCTION update_woo_sync_queue_state();
"""


async def install_seed_trigger(database_url: str) -> None:
    """Our schema with its counting and state triggers swapped for the seed's recount."""
    await apply_migrations(database_url)
    conn = await asyncpg.connect(database_url)
    try:
        checks = await conn.fetch(
            "SELECT conname FROM pg_constraint WHERE conrelid = 'woo_customer_sync_queue'::regclass "
            "AND contype = 'c' AND pg_get_constraintdef(oid) LIKE '%total_count = %'"
        )
        async with conn.transaction():
            for check in checks:  # the seed had no such invariant; its wrong counts would abort instead
                await conn.execute(f'ALTER TABLE woo_customer_sync_queue DROP CONSTRAINT "{check["conname"]}"')
            for trigger in ("woo_sync_line_counts_insert", "woo_sync_line_counts_update", "woo_sync_line_counts_delete"):
                await conn.execute(f"DROP TRIGGER {trigger} ON woo_customer_sync_queue_line")
            await conn.execute("DROP TRIGGER woo_sync_queue_state ON woo_customer_sync_queue")
            await conn.execute(SEED_COUNT_TRIGGER)
    finally:
        await conn.close()


# ---------------------------------------------------------------------------------------------
# docs/contract.md section 4, written out independently of the trigger.


def spec_queue_state(counts: dict[str, int], *, enumeration_done: bool, cancelled: bool, started: bool, request_failed: bool) -> str:
    pending = counts["draft"] + counts["queued"] + counts["processing"]
    if cancelled:
        return "cancelled"
    if not enumeration_done or pending > 0:
        return "processing" if started else "draft"
    if counts["failed"] == 0 and not request_failed:
        return "done"
    if counts["done"] == 0:
        return "failed"
    return "partial"


@dataclass
class Snapshot:
    counters: dict[str, int]
    total_count: int
    true_counts: dict[str, int]
    state: str
    enumeration_done: bool
    cancelled: bool
    started: bool
    is_action_required: bool
    request_failed: bool

    @property
    def pending(self) -> int:
        return self.true_counts["draft"] + self.true_counts["queued"] + self.true_counts["processing"]

    def problems(self, *, check_state: bool) -> list[str]:
        found = []
        if self.counters != self.true_counts:
            found.append(f"counters {self.counters} != true counts {self.true_counts}")
        if self.total_count != sum(self.true_counts.values()) or self.total_count != sum(self.counters.values()):
            found.append(f"total_count {self.total_count} != sum of counters {sum(self.counters.values())} / lines {sum(self.true_counts.values())}")
        if check_state:
            expected = spec_queue_state(self.true_counts, enumeration_done=self.enumeration_done, cancelled=self.cancelled,
                                        started=self.started, request_failed=self.request_failed)
            if self.state != expected:
                found.append(f"state {self.state!r}, docs/contract.md section 4 says {expected!r} for {self.true_counts} "
                             f"(enumeration_done={self.enumeration_done}, cancelled={self.cancelled})")
            if self.true_counts["failed"] and not self.is_action_required:
                found.append("a line failed but is_action_required is false")
        return found


async def read_snapshot(conn: asyncpg.Connection, queue_id: UUID) -> Snapshot:
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        queue = await conn.fetchrow("SELECT * FROM woo_customer_sync_queue WHERE id = $1", queue_id)
        rows = await conn.fetch("SELECT state, count(*) AS n FROM woo_customer_sync_queue_line WHERE queue_id = $1 GROUP BY state", queue_id)
    true_counts = {state: 0 for state in LINE_STATES} | {row["state"]: row["n"] for row in rows}
    return Snapshot(
        counters={state: queue[f"{state}_count"] for state in LINE_STATES},
        total_count=queue["total_count"],
        true_counts=true_counts,
        state=queue["state"],
        enumeration_done=queue["enumeration_done"],
        cancelled=queue["cancelled_at"] is not None,
        started=queue["started_at"] is not None or sum(true_counts.values()) > true_counts["draft"],
        is_action_required=queue["is_action_required"],
        request_failed=queue["error_message"] is not None,
    )


# ---------------------------------------------------------------------------------------------
# The workload


@dataclass
class Workload:
    queue_id: UUID
    org_id: UUID
    lines: int
    check_state: bool
    deadline: float
    rounds_of_retry: int = 2
    round: int = 0
    cancel_requested: bool = False
    finished: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    checks: int = 0
    problems: list[str] = field(default_factory=list)
    states_seen: Counter = field(default_factory=Counter)
    moves: Counter = field(default_factory=Counter)
    conflicts: int = 0
    final: Snapshot | None = None

    def record(self, snapshot: Snapshot, after: str) -> None:
        self.checks += 1
        self.states_seen[snapshot.state] += 1
        for problem in snapshot.problems(check_state=self.check_state):
            self.problems.append(f"after {after}: {problem}")


def batch_size(rng: random.Random) -> int:
    # Many single lines (one message at a time), the rest micro-batches of up to 300.
    return rng.choice((1, 1, 2, 3)) if rng.random() < 0.3 else rng.randint(4, 300)


async def pick(conn: asyncpg.Connection, queue_id: UUID, state: str | tuple[str, ...], n: int) -> list[UUID]:
    states = [state] if isinstance(state, str) else list(state)
    rows = await conn.fetch(
        "SELECT id FROM woo_customer_sync_queue_line WHERE queue_id = $1 AND state = ANY($2::text[]) ORDER BY random() LIMIT $3",
        queue_id, states, n,
    )
    return [row["id"] for row in rows]


async def producer(conn: asyncpg.Connection, work: Workload, rng: random.Random) -> None:
    chunk = 500
    for start in range(1, work.lines + 1, chunk):
        customers = [(n, {"id": n, "email": f"c{n}@example.com"}) for n in range(start, min(start + chunk, work.lines + 1))]
        await queue_lines.add_lines(conn, queue_id=work.queue_id, org_id=work.org_id, customers=customers)
        work.moves["inserted"] += len(customers)
        work.record(await read_snapshot(conn, work.queue_id), "add_lines")
        await asyncio.sleep(rng.random() * 0.01)  # pacing the load: the consumers' moves interleave with the inserts
    await sync_queues.mark_enumeration_done(conn, work.queue_id, work.org_id)
    work.record(await read_snapshot(conn, work.queue_id), "mark_enumeration_done")


async def consumer(conn: asyncpg.Connection, work: Workload, rng: random.Random) -> None:
    while not work.finished and time.monotonic() < work.deadline:
        try:
            action = await one_batch(conn, work, rng)
        except Exception as exc:
            # Deadlocks and serialization failures are retryable by contract; count them.
            if translate_db_error(exc) is None:
                raise
            work.conflicts += 1
            continue
        snapshot = await read_snapshot(conn, work.queue_id)
        work.record(snapshot, action)
        if snapshot.enumeration_done and snapshot.pending == 0:
            await end_of_round(conn, work)


async def one_batch(conn: asyncpg.Connection, work: Workload, rng: random.Random) -> str:
    if work.cancel_requested:
        work.cancel_requested = False
        await sync_queues.cancel_queue(conn, work.queue_id, work.org_id, cancelled_by="concurrency test")
        return "cancel_queue"
    n = batch_size(rng)
    roll = rng.random()
    if roll < 0.15:
        # The dispatcher's move (shared/repository/dispatch.py): draft -> queued, published.
        ids = await pick(conn, work.queue_id, "draft", n)
        moved = rows_affected(await conn.execute(
            """
            WITH picked AS MATERIALIZED (
                SELECT id FROM woo_customer_sync_queue_line WHERE id = ANY($1::uuid[]) AND state = 'draft'
                 FOR UPDATE SKIP LOCKED)
            UPDATE woo_customer_sync_queue_line l SET state = 'queued' FROM picked WHERE l.id = picked.id AND l.state = 'draft'
            """,
            ids))
        work.moves["queued"] += moved
        return "dispatch"
    if roll < 0.40:
        ids = await pick(conn, work.queue_id, ("draft", "queued"), n)
        claimed = sum(line.claimed for line in await queue_lines.claim_lines(conn, ids))
        work.moves["claimed"] += claimed
        return "claim_lines"
    if roll < 0.45:
        # A redelivery: claim lines already being processed.
        await queue_lines.claim_lines(conn, await pick(conn, work.queue_id, "processing", n))
        return "claim_lines (redelivered)"
    ids = await pick(conn, work.queue_id, "processing", n)
    outcome = rng.random()
    if outcome < 0.75:
        moved = await queue_lines.mark_lines_done(conn, [(line_id, None, rng.random() < 0.5) for line_id in ids])
        work.moves["done"] += moved
        return "mark_lines_done"
    if outcome < 0.90:
        moved = await queue_lines.mark_lines_failed(conn, [(line_id, "no valid email") for line_id in ids])
        work.moves["failed"] += moved
        return "mark_lines_failed"
    if outcome < 0.97:
        moved = await queue_lines.return_lines_to_draft(conn, [(line_id, "store 503") for line_id in ids])
        work.moves["to_queued"] += moved
        return "return_lines_to_draft"
    moved = await queue_lines.cancel_lines_of_cancelled_queues(conn, ids)
    work.moves["cancelled"] += moved
    return "cancel_lines_of_cancelled_queues"


async def end_of_round(conn: asyncpg.Connection, work: Workload) -> None:
    """Every line is finished: retry the failed ones (twice), cancelling during the last round."""
    async with work.lock:
        if work.finished:
            return
        current = await read_snapshot(conn, work.queue_id)
        if current.pending:
            return  # another worker already started the next round
        if work.round < work.rounds_of_retry:
            work.round += 1
            retried = await queue_lines.retry_failed_lines(conn, work.queue_id, work.org_id, requested_by="concurrency test")
            work.moves["retried"] += len(retried)
            work.record(await read_snapshot(conn, work.queue_id), "retry_failed_lines")
            work.cancel_requested = work.round == work.rounds_of_retry and bool(retried)
        else:
            work.finished = True


async def run_workload(database_url: str, *, lines: int, check_state: bool, budget_s: float, seed: int) -> Workload:
    connections = [await asyncpg.connect(database_url) for _ in range(8)]
    try:
        for conn in connections:
            await register_codecs(conn)
        org_id, _ = await create_organization(connections[0], name="Concurrency")
        queue, _ = await sync_queues.find_or_create_queue(
            connections[0], org_id=org_id, queue_name="concurrency", idempotency_key=None, store_id=None,
            store_url="https://shop.example.com", created_by="tests", options={},
        )
        work = Workload(queue_id=queue.id, org_id=org_id, lines=lines, check_state=check_state,
                        deadline=time.monotonic() + budget_s)
        rngs = [random.Random(seed * 100 + n) for n in range(len(connections))]
        await asyncio.gather(
            producer(connections[0], work, rngs[0]),
            *(consumer(conn, work, rng) for conn, rng in zip(connections[1:], rngs[1:])),
        )
        work.final = await read_snapshot(connections[0], work.queue_id)
        work.record(work.final, "the end")
        return work
    finally:
        for conn in connections:
            await conn.close()


def describe(work: Workload) -> str:
    return (f"{work.checks} snapshots checked, {len(work.problems)} problems, states seen {dict(work.states_seen)}, "
            f"line moves {dict(work.moves)}, {work.conflicts} retryable conflicts, round {work.round}")


# ---------------------------------------------------------------------------------------------
# Tests


async def test_delta_triggers_keep_every_count_exact_under_eight_concurrent_connections(database_url: str) -> None:
    started = time.monotonic()
    work = await run_workload(database_url, lines=20_000, check_state=True, budget_s=50, seed=1)
    print(f"delta triggers, 20,000 lines: {describe(work)} in {time.monotonic() - started:.1f} s")

    assert work.finished, f"the workload did not finish in its time budget: {describe(work)}"
    assert not work.problems, "\n".join(work.problems[:20])
    assert work.moves["inserted"] == 20_000 and work.moves["retried"] > 0 and work.moves["to_queued"] > 0
    assert work.moves["queued"] > 0
    assert work.final is not None and work.final.pending == 0 and work.final.state == "cancelled"
    # Done is terminal: the moves the repository reported are exactly the lines that are done.
    assert work.moves["done"] == work.final.true_counts["done"]
    # The sync went through every state a real one does.
    assert {"processing", "partial", "cancelled"} <= set(work.states_seen)
    assert work.checks > 200


async def test_the_seed_recount_trigger_commits_wrong_counts_under_the_same_workload(empty_database_url: str) -> None:
    await install_seed_trigger(empty_database_url)
    started = time.monotonic()
    # The recount is O(queue size) per line update: a 2,000-line queue keeps this under ~20 s.
    work = await run_workload(empty_database_url, lines=2_000, check_state=False, budget_s=25, seed=1)
    print(f"seed recount, 2,000 lines: {describe(work)} in {time.monotonic() - started:.1f} s; first: {work.problems[:1]}")

    counter_problems = [problem for problem in work.problems if "counters" in problem or "total_count" in problem]
    assert counter_problems, f"expected the seed's recount to commit wrong counters: {describe(work)}"


async def _lost_update_race(database_url: str) -> tuple[dict[str, int], dict[str, int]]:
    """Two transactions each claim one line of a queue: the second waits for the queue row lock
    the first holds, then commits after it. Returns (counters, true counts)."""
    first, second = await asyncpg.connect(database_url), await asyncpg.connect(database_url)
    try:
        await register_codecs(first)
        org_id, _ = await create_organization(first, name="Race")
        queue, _ = await sync_queues.find_or_create_queue(first, org_id=org_id, queue_name="race", idempotency_key=None,
                                                   store_id=None, store_url=None, created_by=None, options={})
        (line_a, _), (line_b, _) = sorted(
            await queue_lines.add_lines(first, queue_id=queue.id, org_id=org_id, customers=[(1, {}), (2, {})]), key=lambda p: p[1]
        )
        claim = "UPDATE woo_customer_sync_queue_line SET state = 'processing' WHERE id = $1"

        first_tx = first.transaction()
        await first_tx.start()
        await first.execute(claim, line_a)
        second_tx = second.transaction()
        await second_tx.start()
        blocked = asyncio.create_task(second.execute(claim, line_b))
        second_pid = second.get_server_pid()
        deadline = time.monotonic() + 10
        while not await first.fetchval(
            "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", second_pid
        ):
            assert time.monotonic() < deadline, "the second claim never waited for the queue row"
            await asyncio.sleep(0.02)
        await first_tx.commit()
        await blocked
        await second_tx.commit()

        snapshot = await read_snapshot(first, queue.id)
        return snapshot.counters, snapshot.true_counts
    finally:
        await first.close()
        await second.close()


async def test_the_seed_recount_loses_an_update_when_two_claims_meet(empty_database_url: str) -> None:
    await install_seed_trigger(empty_database_url)
    counters, truth = await _lost_update_race(empty_database_url)
    assert truth["processing"] == 2
    assert counters["processing"] == 1, f"the seed's recount was expected to miss one claim: {counters}"


async def test_the_delta_triggers_count_both_claims_when_two_claims_meet(database_url: str) -> None:
    counters, truth = await _lost_update_race(database_url)
    assert counters == truth == {"draft": 0, "queued": 0, "processing": 2, "done": 0, "failed": 0, "cancelled": 0}
