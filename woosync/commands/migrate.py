"""`woosync migrate`: create the database if it is missing, then apply the sql/ migrations.

Safe to run repeatedly and from several processes at once (docs/contract.md section 1).
Exit codes: 0 up to date, 1 a migration failed or was refused, 2 the database is unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import asyncpg

from shared.errors import DatabaseUnavailable
from shared.logs import setup_logging
from shared.migrations import MigrationError, apply_migrations, ensure_database, sql_dir
from shared.settings import Settings, mask_url

EXIT_OK, EXIT_FAILED, EXIT_UNREACHABLE = 0, 1, 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="keep trying to reach PostgreSQL for this long before giving up (default: %(default)s), "
        "e.g. in a container that starts next to the database",
    )


async def _migrate(dsn: str, wait_s: float) -> list[str]:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            await ensure_database(dsn)
            return await apply_migrations(dsn)
        except DatabaseUnavailable:
            if time.monotonic() >= deadline:
                raise
            await asyncio.sleep(1.0)


def run(args: argparse.Namespace, settings: Settings) -> int:
    setup_logging(settings.log_level, settings.log_format, service="migrate")
    dsn = settings.database_url.get_secret_value()
    where = mask_url(dsn)
    try:
        applied = asyncio.run(_migrate(dsn, getattr(args, "wait", 0.0)))
    except MigrationError as exc:
        print(f"woosync migrate: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except DatabaseUnavailable as exc:
        print(f"woosync migrate: cannot reach {where}: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except asyncpg.PostgresError as exc:
        # E.g. permission denied to create the database: name the problem, no traceback.
        print(f"woosync migrate: {where}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if applied:
        print(f"applied {len(applied)} migration(s) from {sql_dir()} to {where}: {', '.join(applied)}")
    else:
        print(f"{where} is up to date")
    return EXIT_OK
