"""`woosync prune`: retention of finished sync queues."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_prune_deletes_only_queues_finished_long_ago(database_url):
    import asyncio
    import subprocess
    import sys

    from shared.db import connect

    async def setup() -> tuple[int, int]:
        conn = await connect(database_url)
        try:
            org = await conn.fetchval("INSERT INTO organization (name) VALUES ('o') RETURNING id")
            for age_days, enumerated in ((40, True), (5, True), (40, False)):
                await conn.execute(
                    "INSERT INTO woo_customer_sync_queue (org_id, queue_name, enumeration_done) VALUES ($1, 'q', $2)",
                    org, enumerated)
                # Empty + enumerated = done; age the finish time by hand.
                await conn.execute(
                    "UPDATE woo_customer_sync_queue SET finished_at = now() - make_interval(days => $1) "
                    "WHERE id = (SELECT id FROM woo_customer_sync_queue ORDER BY created_at DESC LIMIT 1) AND state = 'done'",
                    age_days)
            return await conn.fetchval("SELECT count(*) FROM woo_customer_sync_queue"), 0
        finally:
            await conn.close()

    total, _ = asyncio.run(setup())
    assert total == 3
    env = {**__import__("os").environ, "WOOSYNC_DATABASE_URL": database_url}
    result = subprocess.run([sys.executable, "-m", "woosync", "prune", "--older-than-days", "30"],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "deleted 1 finished sync queue" in result.stdout

    async def remaining() -> list[str]:
        conn = await connect(database_url)
        try:
            return [r["state"] for r in await conn.fetch("SELECT state FROM woo_customer_sync_queue ORDER BY state")]
        finally:
            await conn.close()

    assert asyncio.run(remaining()) == ["done", "draft"]
