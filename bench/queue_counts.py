"""Queue counters: statement-level delta triggers (sql/001_foundation.sql) vs the seed's COUNT(*)
recount per line (kept in tests/integration/test_queue_counts_concurrency.py).

Moves every line of a 1,000-line and a 100,000-line queue draft -> processing -> done in UPDATEs
of 100 lines, each its own transaction, and prints lines/s. Lines are inserted before the clock
starts (for the seed, with its trigger disabled: its per-row recount makes inserting 100,000 lines
itself quadratic). The seed's recount costs O(queue size) per line update, so its runs stop after
a time budget (--seed-budget, default 20 s) and say how far they got.

    .venv/bin/python bench/queue_counts.py [--server-url postgresql://postgres@127.0.0.1:5432/postgres]
                                           [--sizes 1000,100000] [--seed-budget 20] [--json]

Creates two scratch databases on the server and drops them at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import urllib.parse
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import asyncpg
import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from shared.migrations import apply_migrations  # noqa: E402
from tests.integration.test_queue_counts_concurrency import install_seed_trigger  # noqa: E402

BATCH = 100
SEED_TRIGGER = "woo_sync_queue_line_state_change"


@dataclass
class Run:
    trigger: str
    queue_lines: int
    lines_moved: int
    seconds: float
    capped: bool
    counts_right: bool

    @property
    def lines_per_s(self) -> float:
        return self.lines_moved / self.seconds if self.seconds else 0.0


def database_url(server_url: str, name: str) -> str:
    return urllib.parse.urlunsplit(urllib.parse.urlsplit(server_url)._replace(path="/" + name))


async def admin(server_url: str, statement: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def make_queue(conn: asyncpg.Connection, lines: int, *, seed: bool) -> tuple[uuid.UUID, list[uuid.UUID]]:
    org_id = await conn.fetchval("INSERT INTO organization (name) VALUES ('bench') RETURNING id")
    queue_id = await conn.fetchval(
        "INSERT INTO woo_customer_sync_queue (org_id, queue_name, enumeration_done) VALUES ($1, 'bench', true) RETURNING id",
        org_id,
    )
    if seed:
        await conn.execute(f"ALTER TABLE woo_customer_sync_queue_line DISABLE TRIGGER {SEED_TRIGGER}")
    for start in range(1, lines + 1, 10_000):
        await conn.execute(
            """
            INSERT INTO woo_customer_sync_queue_line (queue_id, org_id, woo_customer_id, customer_data)
            SELECT $1, $2, n, jsonb_build_object('id', n, 'email', 'c' || n || '@example.com')
              FROM generate_series($3::bigint, $4::bigint) AS n
            """,
            queue_id, org_id, start, min(start + 9_999, lines),
        )
    if seed:
        await conn.execute(f"ALTER TABLE woo_customer_sync_queue_line ENABLE TRIGGER {SEED_TRIGGER}")
        await conn.execute(
            "UPDATE woo_customer_sync_queue SET total_count = $2, draft_count = $2 WHERE id = $1", queue_id, lines
        )
    await conn.execute("VACUUM ANALYZE woo_customer_sync_queue_line")
    await conn.execute("VACUUM ANALYZE woo_customer_sync_queue")
    rows = await conn.fetch(
        "SELECT id FROM woo_customer_sync_queue_line WHERE queue_id = $1 ORDER BY woo_customer_id", queue_id
    )
    return queue_id, [row["id"] for row in rows]


async def move_lines(url: str, trigger: str, lines: int, budget_s: float | None) -> Run:
    conn = await asyncpg.connect(url)
    try:
        queue_id, line_ids = await make_queue(conn, lines, seed=trigger == "seed")
        moved = 0
        started = time.perf_counter()
        for start in range(0, len(line_ids), BATCH):
            batch = line_ids[start : start + BATCH]
            await conn.execute("UPDATE woo_customer_sync_queue_line SET state = 'processing' WHERE id = ANY($1::uuid[])", batch)
            await conn.execute("UPDATE woo_customer_sync_queue_line SET state = 'done' WHERE id = ANY($1::uuid[])", batch)
            moved += len(batch)
            if budget_s is not None and time.perf_counter() - started > budget_s:
                break
        seconds = time.perf_counter() - started
        queue = await conn.fetchrow("SELECT * FROM woo_customer_sync_queue WHERE id = $1", queue_id)
        truth = dict(await conn.fetch(
            "SELECT state, count(*) FROM woo_customer_sync_queue_line WHERE queue_id = $1 GROUP BY state", queue_id
        ))
        counts_right = all(queue[f"{state}_count"] == truth.get(state, 0) for state in ("draft", "processing", "done"))
        return Run(trigger, lines, moved, seconds, moved < lines, counts_right)
    finally:
        await conn.close()


async def bench(server_url: str, sizes: list[int], seed_budget_s: float) -> list[Run]:
    suffix = uuid.uuid4().hex[:8]
    ours, seed = f"woosync_bench_delta_{suffix}", f"woosync_bench_seed_{suffix}"
    runs: list[Run] = []
    for name in (ours, seed):
        await admin(server_url, f'CREATE DATABASE "{name}"')
    try:
        await apply_migrations(database_url(server_url, ours))
        await install_seed_trigger(database_url(server_url, seed))
        for size in sizes:
            for trigger, name, budget in (("statement deltas", ours, None), ("seed", seed, seed_budget_s)):
                run = await move_lines(database_url(server_url, name), trigger, size, budget)
                runs.append(run)
                print(f"  {trigger:<16} {size:>7,} lines: {run.lines_per_s:>9,.0f} lines/s", file=sys.stderr)
    finally:
        for name in (ours, seed):
            await admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return runs


def table(runs: list[Run], seed_budget_s: float) -> str:
    out = [
        f"Moving every line draft -> processing -> done, {BATCH} lines per UPDATE, one transaction each:",
        "",
        f"{'trigger':<18}{'queue lines':>12}{'moved':>10}{'seconds':>10}{'lines/s':>11}  counts",
    ]
    for run in runs:
        note = ""
        if run.capped:
            full_hours = run.queue_lines / run.lines_per_s / 3600 if run.lines_per_s else float("inf")
            note = f"  capped at the {seed_budget_s:.0f} s budget; all {run.queue_lines:,} lines would take ~{full_hours:.1f} h"
        out.append(
            f"{run.trigger:<18}{run.queue_lines:>12,}{run.lines_moved:>10,}{run.seconds:>10.2f}{run.lines_per_s:>11,.0f}"
            f"  {'right' if run.counts_right else 'WRONG'}{note}"
        )
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server-url", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="a database on the server where scratch databases may be created (default: %(default)s)")
    parser.add_argument("--sizes", default="1000,100000", help="queue sizes, comma-separated (default: %(default)s)")
    parser.add_argument("--seed-budget", type=float, default=20.0, metavar="SECONDS",
                        help="stop each seed-trigger run after this long (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    runs = asyncio.run(bench(args.server_url, sizes, args.seed_budget))
    if args.json:
        print(orjson.dumps({"batch": BATCH, "seed_budget_s": args.seed_budget,
                            "runs": [asdict(run) | {"lines_per_s": round(run.lines_per_s, 1)} for run in runs]}).decode())
    else:
        print(table(runs, args.seed_budget))
    return 0


if __name__ == "__main__":
    sys.exit(main())
