"""`woosync job start|status|pause|resume|retry|cancel` run as a user runs them (the console script, in a
subprocess) against the status API on a loopback port, a real database and broker."""

from __future__ import annotations

import uuid

import orjson
import pytest

from shared.repository import queue_lines, sync_queues
from tests.integration.status_harness import a_customer, an_organization, serve, status_service
from tests.integration.test_sync_cli import woosync

pytestmark = pytest.mark.integration

STORES = [{"url": f"http://127.0.0.1:{port}", "consumer_key": "ck_test", "consumer_secret": "cs_test"} for port in (8094, 8095)]


async def finish(pool, queue_id: uuid.UUID, org_id: uuid.UUID, *, customers: int) -> None:
    added = await queue_lines.add_lines(pool, queue_id=queue_id, org_id=org_id,
                                        customers=[(n, a_customer(n)) for n in range(1, customers + 1)])
    await sync_queues.mark_enumeration_done(pool, queue_id, org_id)
    await queue_lines.claim_lines(pool, [line_id for line_id, _ in added])
    await queue_lines.mark_lines_done(pool, [(line_id, None, False) for line_id, _ in added])


async def test_job_start_then_status_follows_the_job_to_its_end(db_pool, amqp_url, tmp_path) -> None:
    org_id, token = await an_organization(db_pool)
    stores_file = tmp_path / "stores.json"
    stores_file.write_bytes(orjson.dumps(STORES))
    async with status_service(db_pool, amqp_url) as api, serve(api.app, api.ctx.hub) as base_url:
        env = {"WOOSYNC_API_URL": base_url, "WOOSYNC_API_TOKEN": token}
        code, out, err = await woosync("job", "start", "--stores-file", str(stores_file), "--limit", "3", "--json", env=env)
        assert code == 0, err
        job = orjson.loads(out)
        assert job["store_count"] == 2 and "cs_test" not in out

        code, out, _ = await woosync("job", "status", job["id"], "--once", env=env)
        assert code == 0 and f"job {job['id']}: draft 0%" in out and STORES[1]["url"] in out

        code, out, err = await woosync("job", "pause", job["id"], "--requested-by", "ops", env=env)
        assert code == 0, err
        assert f"job {job['id']}: paused" in out and f"{STORES[0]['url']} paused, {STORES[1]['url']} paused" in out
        code, out, err = await woosync("job", "resume", job["id"], env=env)
        assert code == 0 and f"job {job['id']}: draft" in out, err

        for queue in job["queues"]:
            await finish(db_pool, uuid.UUID(queue["id"]), org_id, customers=2)
        code, out, _ = await woosync("job", "status", job["id"], "--interval", "0.2", env=env)
        assert code == 0 and "done 100% (4 done, 0 failed, 0 cancelled of 4)" in out

        code, out, err = await woosync("job", "cancel", job["id"], env=env)
        assert code == 2 and "already done" in err
        code, out, err = await woosync("job", "pause", job["id"], env=env)
        assert code == 2 and "already done: nothing to pause" in err

        _, other_token = await an_organization(db_pool, "Other")
        code, _, err = await woosync("job", "status", job["id"], "--once", env={**env, "WOOSYNC_API_TOKEN": other_token})
        assert code == 2 and "no sync job" in err


async def test_job_start_without_stores_is_a_usage_error(tmp_path) -> None:
    code, _, err = await woosync("job", "start", env={"WOOSYNC_API_TOKEN": "x"})
    assert code == 2 and "--stores-file" in err
    empty = tmp_path / "empty.json"
    empty.write_text("[]")
    code, _, err = await woosync("job", "start", "--stores-file", str(empty), env={"WOOSYNC_API_TOKEN": "x"})
    assert code == 2 and "non-empty JSON list" in err
