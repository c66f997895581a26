"""Schedules end to end (docs/contract.md section 10, "Schedules"): two real producers run the
scheduler against one database; schedules set through the status API and the CLI run once per
due time: one sync request published (one producer's log says so, never both) and one queue."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import httpx
import pytest

from shared import organizations
from shared.repository import schedules, sync_queues
from shared.states import TERMINAL_QUEUE_STATES
from tests.waiting import eventually

pytestmark = pytest.mark.e2e

RUNS_PER_KIND = 3


async def synced(pipeline, idempotency_key: str):
    async def finished():
        queues = await sync_queues.list_queues(pipeline.pool, pipeline.org_id, limit=50, offset=0)
        return next((q for q in queues if q.idempotency_key == idempotency_key and q.state in TERMINAL_QUEUE_STATES), None)

    return await eventually(finished, timeout=120, interval=0.2, what=f"sync {idempotency_key} to finish")


def published_keys(*producers) -> Counter[str]:
    """The idempotency keys of the schedule runs each producer published, from their JSON logs."""
    keys: Counter[str] = Counter()
    for producer in producers:
        for line in producer.log().splitlines():
            if "sync requested (schedule:" in line:
                message = json.loads(line)["message"]
                keys[message.rsplit("(", 1)[1].rstrip(")")] += 1
    return keys


async def test_two_producers_run_each_due_schedule_once(pipeline) -> None:
    pipeline.simulator("--valid-emails-only", customers=40, seed=5)
    producers = [pipeline.producer("producer-1"), pipeline.producer("producer-2")]
    pipeline.consumer()
    _, status_port = pipeline.status()
    token = await organizations.create_token(pipeline.pool, pipeline.org_id, label="e2e")

    # A store is scheduled once a sync has verified its credentials.
    await pipeline.publish(pipeline.request(idempotency_key="first"))
    assert (await synced(pipeline, "first")).state == "done"

    # The full sync through the CLI, the incremental sweep through the API: both due at once.
    cli = subprocess.run([sys.executable, "-m", "woosync", "schedule", "set", "--org", str(pipeline.org_id),
                          "--url", pipeline.store_url, "--kind", "full", "--every", "1h"],
                         env=pipeline.stack.env, capture_output=True, text=True, timeout=60)
    assert cli.returncode == 0, cli.stderr
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{status_port}",
                                 headers={"Authorization": f"Bearer {token}"}) as api:
        answer = await api.put("/api/v1/sync/schedules",
                               json={"store_url": pipeline.store_url, "kind": "incremental", "every_s": 3600})
        assert answer.status_code == 200, answer.text

        runs: dict[str, list[str]] = {"full": [], "incremental": []}
        for round_ in range(RUNS_PER_KIND):
            async def every_kind_ran_and_finished() -> list[schedules.Schedule] | None:
                found = await schedules.list_schedules(pipeline.pool, pipeline.org_id)
                if all(s.last_queue_key is not None and s.last_queue_key not in runs[s.kind]
                       and s.last_queue_state in TERMINAL_QUEUE_STATES for s in found):
                    return found
                return None

            done = await eventually(every_kind_ran_and_finished, timeout=120, interval=0.2,
                                    what=f"round {round_ + 1} of both schedules to run and its syncs to finish")
            for schedule in done:
                assert schedule.last_error is None and schedule.last_queue_state == "done", schedule
                runs[schedule.kind].append(schedule.last_queue_key)
            if round_ == RUNS_PER_KIND - 1:
                break
            # The next due time, now (an hour is long for a test): each schedule runs once more.
            await pipeline.pool.execute("UPDATE woo_sync_schedule SET next_run_at = now() WHERE org_id = $1",
                                        pipeline.org_id)

        # The API shows the last run's queue.
        listed = (await api.get("/api/v1/sync/schedules")).json()["data"]["items"]
    assert {s["kind"]: s["last_queue_key"] for s in listed} == {kind: keys[-1] for kind, keys in runs.items()}

    queues = await pipeline.pool.fetch(
        "SELECT idempotency_key, options->>'mode' AS mode, created_by FROM woo_customer_sync_queue "
        "WHERE org_id = $1 AND idempotency_key LIKE 'schedule:%'", pipeline.org_id)
    # The next runs are an hour away: what ran is what will have run.
    assert Counter(row["mode"] for row in queues) == {"full": RUNS_PER_KIND, "incremental": RUNS_PER_KIND}
    assert all(row["created_by"] == f"schedule ({row['mode']})" for row in queues)
    for kind, keys in runs.items():
        assert len(set(keys)) == RUNS_PER_KIND and all(key.startswith(f"schedule:{kind}:") for key in keys)

    # Each run was published by exactly one of the two producers, and each published run is a queue.
    published = published_keys(*producers)
    assert published and set(published.values()) == {1}, published
    assert set(published) == {row["idempotency_key"] for row in queues}
    print(f"\nschedule runs published per producer: "
          f"{[sum(1 for line in p.log().splitlines() if 'sync requested (schedule:' in line) for p in producers]}")
