"""A preview's status object with its report (docs/contract.md section 10), for the routes that
answer with a queue's status. Kept apart from the preview routes, which import the seeds' routes,
so that the queue routes can use it without an import cycle."""

from __future__ import annotations

import math
from typing import Any

from services.status.presenters import queue_status_json
from shared.repository import conflicts, sync_queues
from shared.repository.sql import Executor

CUSTOMERS_PER_PAGE = 100  # the producer pages a store's customers 100 at a time


async def preview_json(conn: Executor, status: sync_queues.QueueStatus) -> dict[str, Any]:
    """A preview's status object with its report so far, and an estimate of the real sync: the
    store requests the preview made (a page per 100 customers, one request per customer's
    orders) and the time it took."""
    data = queue_status_json(status)
    report = await conflicts.preview_report(conn, status.id, status.org_id)
    duration = None
    if status.started_at is not None and status.finished_at is not None:
        duration = round((status.finished_at - status.started_at).total_seconds(), 1)
    report["estimate"] = {
        "store_requests": math.ceil(status.total_count / CUSTOMERS_PER_PAGE) + status.total_count,
        "duration_seconds": duration,
    }
    data["preview"] = report
    return data
