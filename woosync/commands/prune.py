"""`woosync prune --older-than-days N`: delete finished sync queues, with their lines and
activity, that finished more than N days ago (retention; run it from a nightly job).
Customers are never deleted."""

from __future__ import annotations

import argparse
import asyncio
import sys

from shared.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--older-than-days", type=int, required=True, metavar="N",
                        help="delete queues that finished (done, failed, partial, cancelled) more than N days ago")


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.older_than_days < 0:
        print("woosync prune: --older-than-days must be 0 or more", file=sys.stderr)
        return 2
    from shared.db import connect
    from shared.errors import DatabaseUnavailable
    from shared.repository import sync_queues

    async def prune() -> int:
        conn = await connect(settings.database_url.get_secret_value())
        try:
            return await sync_queues.delete_finished_queues(conn, older_than_days=args.older_than_days)
        finally:
            await conn.close()

    try:
        deleted = asyncio.run(prune())
    except DatabaseUnavailable as exc:
        print(f"woosync prune: {exc}", file=sys.stderr)
        return 1
    print(f"deleted {deleted} finished sync queue(s) older than {args.older_than_days} day(s)")
    return 0
