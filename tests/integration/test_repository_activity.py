"""shared.repository.activity against a real PostgreSQL: entries are appended in one statement,
read back newest first as typed entries, and the database refuses to rewrite them."""

from __future__ import annotations

import asyncpg
import pytest

from shared.repository import activity
from tests.integration.repository_setup import new_org, new_queue

pytestmark = pytest.mark.integration


async def test_activity_is_read_newest_first_and_cannot_be_updated(db_pool: asyncpg.Pool) -> None:
    queue, lines = await new_queue(db_pool, await new_org(db_pool), customers=1)
    await activity.append_activity(db_pool, [
        activity.ActivityRow(queue_id=queue.id, org_id=queue.org_id, activity_type="customer_sync", status="retry",
                             message="attempt 1 of 3: store 503", details={"attempt": 1}, queue_line_id=lines[0]),
        activity.ActivityRow(queue_id=queue.id, org_id=queue.org_id, activity_type="customer_sync", status="success",
                             message="customer synced", details=None, queue_line_id=lines[0]),
    ])
    read = await activity.read_activity(db_pool, queue.id, queue.org_id, limit=10, offset=0)
    assert [entry.status for entry in read] == ["success", "retry"]
    assert read[1] == activity.ActivityEntry(
        id=read[1].id, queue_line_id=lines[0], activity_type="customer_sync", status="retry",
        message="attempt 1 of 3: store 503", details={"attempt": 1}, created_at=read[1].created_at,
    )
    assert read[0].created_at >= read[1].created_at
    assert [entry.status for entry in await activity.read_activity(db_pool, queue.id, queue.org_id, limit=1, offset=1)] == ["retry"]

    with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
        await db_pool.execute("UPDATE woo_sync_activity SET message = 'rewritten' WHERE queue_id = $1", queue.id)
    assert {entry.message for entry in await activity.read_activity(db_pool, queue.id, queue.org_id, limit=10, offset=0)} == {
        "customer synced", "attempt 1 of 3: store 503"}


async def test_appending_nothing_writes_nothing(db_pool: asyncpg.Pool) -> None:
    queue, _ = await new_queue(db_pool, await new_org(db_pool))
    await activity.append_activity(db_pool, [])
    assert await activity.read_activity(db_pool, queue.id, queue.org_id, limit=10, offset=0) == []
