"""`woosync prune --older-than-days N`: delete finished sync queues, with their lines and
activity, that finished more than N days ago (retention; run it from a nightly job, or let the
producers run it: WOOSYNC_PRUNE_KEEP_DAYS). Customers are never deleted.

`woosync prune --status` shows the producers' retention schedule: when it last ran, what it
deleted, and when it is due next (docs/contract.md section 10, "Schedules").
The deletion itself is shared.repository.sync_queues.delete_finished_queues, which the
producers' scheduler runs too."""

from __future__ import annotations

import argparse
import asyncio
import sys

from shared.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--older-than-days", type=int, metavar="N",
                      help="delete queues that finished (done, failed, partial, cancelled) more than N days ago")
    what.add_argument("--status", action="store_true",
                      help="show the producers' retention schedule (WOOSYNC_PRUNE_KEEP_DAYS, WOOSYNC_PRUNE_EVERY_S): "
                           "its last run, what it deleted, and its next")


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.older_than_days is not None and args.older_than_days < 0:
        print("woosync prune: --older-than-days must be 0 or more", file=sys.stderr)
        return 2
    from shared.db import connect
    from shared.errors import DatabaseUnavailable
    from shared.repository import schedules, sync_queues

    async def prune() -> int:
        conn = await connect(settings.database_url.get_secret_value())
        try:
            return await sync_queues.delete_finished_queues(conn, older_than_days=args.older_than_days)
        finally:
            await conn.close()

    async def status() -> schedules.MaintenanceTask | None:
        conn = await connect(settings.database_url.get_secret_value())
        try:
            return await schedules.maintenance_task(conn, "prune")
        finally:
            await conn.close()

    try:
        if args.status:
            task = asyncio.run(status())
        else:
            deleted = asyncio.run(prune())
    except DatabaseUnavailable as exc:
        print(f"woosync prune: {exc}", file=sys.stderr)
        return 1
    if not args.status:
        print(f"deleted {deleted} finished sync queue(s) older than {args.older_than_days} day(s)")
        return 0
    if task is None:
        print("woosync prune: the database lacks the retention schedule (migration 011): run 'woosync migrate'",
              file=sys.stderr)
        return 1
    if task.last_run_at is None:
        print("retention on a schedule has not run yet: set WOOSYNC_PRUNE_KEEP_DAYS (and WOOSYNC_PRUNE_EVERY_S, "
              "default one day) for the producers")
    else:
        result = task.last_result or {}
        print(f"retention last ran {task.last_run_at:%Y-%m-%d %H:%M:%S} UTC: deleted "
              f"{result.get('deleted_queues', 0)} sync queue(s) finished more than {result.get('keep_days')} day(s) ago")
    print(f"next due {task.next_run_at:%Y-%m-%d %H:%M:%S} UTC (run by a producer whose WOOSYNC_PRUNE_KEEP_DAYS is set)")
    if task.last_error:
        print(f"last error: {task.last_error}")
    return 0
