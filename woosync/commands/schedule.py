"""`woosync schedule ...`: a store's periodic incremental sweep and periodic full sync
(docs/contract.md section 10, "Schedules"), run by the producers. Talks to the database
(WOOSYNC_DATABASE_URL) as `woosync org` does; the status API's /api/v1/sync/schedules is the
same for other systems.

    woosync schedule set --org ORG --url STORE_URL --kind incremental|full [--every 1h] [--disable]
    woosync schedule list --org ORG [--json]
    woosync schedule delete --org ORG --url STORE_URL [--kind incremental|full]

ORG is an organisation id, or its name when no other organisation has it. The store must be one
the organisation has synced (its credentials accepted by the store): a schedule runs with them.
Exit codes: 0 done, 1 the database failed, 2 bad input (unknown organisation, a store not synced
yet, a malformed interval or URL).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from shared.settings import Settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

_ORG_HELP = "the organisation: its id, or its name when no other organisation has it"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}
_INTERVAL = re.compile(r"(?:(\d+)([smhdw]))+")
MIN_EVERY_S, MAX_EVERY_S = 60, 366 * 86_400  # as shared.repository.schedules (not imported: --help stays light)


def parse_interval(text: str) -> int:
    """Seconds of an interval as people write it: "3600", "90s", "15m", "1h", "1d", "1h30m", "2w"."""
    raw = text.strip().lower()
    if raw.isdigit():
        seconds = int(raw)
    elif _INTERVAL.fullmatch(raw):
        seconds = sum(int(number) * _UNITS[unit] for number, unit in re.findall(r"(\d+)([smhdw])", raw))
    else:
        raise argparse.ArgumentTypeError(
            f"not an interval: {text!r} (seconds, or a number with s, m, h, d or w, e.g. 15m, 1h, 1d, 1h30m)")
    if not MIN_EVERY_S <= seconds <= MAX_EVERY_S:
        raise argparse.ArgumentTypeError(f"{text!r} is {seconds} s: an interval must be between 60 s (1m) and 366 days")
    return seconds


def describe_interval(seconds: int) -> str:
    """15m, 1h, 1d, 1h30m: the shortest form that says it exactly."""
    parts = []
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            count, seconds = divmod(seconds, size)
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = ("A schedule's first run is due at once; the producers check every 5 s, and one of them "
                     "publishes each due run as an ordinary sync request. See also the status API's "
                     "/api/v1/sync/schedules and, for retention on a schedule, WOOSYNC_PRUNE_KEEP_DAYS.")
    actions = parser.add_subparsers(dest="schedule_action", metavar="ACTION", required=True)

    set_ = actions.add_parser(
        "set",
        help="create or change a store's periodic incremental sweep or full sync",
        description="Create or change a store's schedule of one kind: an incremental sweep (only what changed "
        "since the store's last sweep) or a full sync, every --every. The store must be one the organisation has "
        "synced: the schedule runs with the credentials the store accepted. A new schedule's first run is due at "
        "once; a shorter interval brings the next run forward. --disable keeps the schedule without running it "
        "(set it again without --disable to resume).",
    )
    set_.add_argument("--org", required=True, metavar="ORG", help=_ORG_HELP)
    set_.add_argument("--url", required=True, metavar="STORE_URL", help="the store's base URL, as its syncs name it")
    set_.add_argument("--kind", required=True, choices=("incremental", "full"),
                      help="incremental: sweep what changed since the last sweep; full: a full sync")
    set_.add_argument("--every", type=parse_interval, default=None, metavar="INTERVAL",
                      help="time between runs: seconds, or e.g. 15m, 1h, 1d, 1h30m (at least 1m); required to "
                           "create a schedule, kept when left out")
    set_.add_argument("--disable", action="store_true", help="keep the schedule but stop running it")
    set_.add_argument("--json", action="store_true", help="print the schedule as one JSON object")

    listing = actions.add_parser("list", help="list the organisation's schedules with their last and next runs",
                                 description="List the organisation's schedules: store, kind, interval, enabled, next "
                                 "run, last run, the last run's sync queue and state, and the last error.")
    listing.add_argument("--org", required=True, metavar="ORG", help=_ORG_HELP)
    listing.add_argument("--json", action="store_true", help="print one JSON array on stdout")

    delete = actions.add_parser("delete", help="delete a store's schedule (one kind, or both)",
                                description="Delete a store's schedule of one kind, or of both without --kind. "
                                "Syncs it already started go on.")
    delete.add_argument("--org", required=True, metavar="ORG", help=_ORG_HELP)
    delete.add_argument("--url", required=True, metavar="STORE_URL", help="the store's base URL")
    delete.add_argument("--kind", choices=("incremental", "full"), default=None, help="only this kind (default: both)")


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment is not None else "never"


def schedule_object(schedule: Any) -> dict[str, Any]:
    """A schedule as the status API answers it (docs/contract.md section 10)."""
    return {
        "store_url": schedule.store_url, "kind": schedule.kind, "every_s": schedule.every_s,
        "enabled": schedule.enabled, "next_run_at": schedule.next_run_at, "last_run_at": schedule.last_run_at,
        "last_queue_key": schedule.last_queue_key,
        "last_queue_id": str(schedule.last_queue_id) if schedule.last_queue_id else None,
        "last_queue_state": schedule.last_queue_state, "last_error": schedule.last_error,
        "created_at": schedule.created_at, "updated_at": schedule.updated_at,
    }


def _print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value).decode() + "\n")


def _describe(schedule: Any) -> str:
    state = "enabled" if schedule.enabled else "disabled"
    line = (f"{schedule.store_url}  {schedule.kind:<11}  every {describe_interval(schedule.every_s):<8} {state:<8}  "
            f"next {_when(schedule.next_run_at) if schedule.enabled else '-'}  last {_when(schedule.last_run_at)}")
    if schedule.last_queue_id is not None:
        line += f"  (queue {schedule.last_queue_id} {schedule.last_queue_state})"
    if schedule.last_error:
        line += f"\n    last error: {schedule.last_error}"
    return line


def _store_url(url: str) -> str:
    from shared.errors import PermanentError
    from shared.messages import normal_store_url

    try:
        return normal_store_url(url)
    except ValueError as exc:
        raise PermanentError(f"--url {exc}") from None


async def _set(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    from shared import organizations
    from shared.errors import PermanentError
    from shared.repository import schedules

    org = await organizations.find_organization(conn, args.org)
    url = _store_url(args.url)
    store_id = await schedules.synced_store(conn, org.id, url)
    schedule = await schedules.set_schedule(conn, org_id=org.id, store_id=store_id, kind=args.kind,
                                            every_s=args.every, enabled=not args.disable)
    if schedule is None:
        raise PermanentError(f"store {url} has no {args.kind} schedule yet: give --every (e.g. --every 1h) to create it")
    if args.json:
        _print_json(schedule_object(schedule))
    else:
        print(f"organisation {org.id} ({org.name!r}): {_describe(schedule)}")
    return EXIT_OK


async def _list(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    from shared import organizations
    from shared.repository import schedules

    org = await organizations.find_organization(conn, args.org)
    found = await schedules.list_schedules(conn, org.id)
    if args.json:
        _print_json([schedule_object(schedule) for schedule in found])
        return EXIT_OK
    if not found:
        print(f"organisation {org.id} ({org.name!r}) has no schedules "
              "(woosync schedule set --org ORG --url STORE_URL --kind incremental --every 15m)")
    for schedule in found:
        print(_describe(schedule))
    return EXIT_OK


async def _delete(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    from shared import organizations
    from shared.repository import schedules

    org = await organizations.find_organization(conn, args.org)
    url = _store_url(args.url)
    try:
        store_id = await schedules.synced_store(conn, org.id, url)
    except schedules.StoreNotSynced:
        deleted = 0
    else:
        deleted = await schedules.delete_schedules(conn, org.id, store_id, kind=args.kind)
    which = f"{args.kind} schedule" if args.kind else "schedules"
    print(f"store {url}: {deleted} {which} deleted" if deleted else f"store {url} had no {which} to delete")
    return EXIT_OK


def run(args: argparse.Namespace, settings: Settings) -> int:
    from shared.db import connect
    from shared.errors import DatabaseUnavailable, PermanentError
    from shared.settings import mask_url

    dsn = settings.database_url.get_secret_value()
    action = {"set": _set, "list": _list, "delete": _delete}[args.schedule_action]
    name = f"schedule {args.schedule_action}"

    async def with_connection() -> int:
        conn = await connect(dsn)
        try:
            return await action(conn, args)
        finally:
            await conn.close()

    try:
        return asyncio.run(with_connection())
    except PermanentError as exc:  # unknown organisation, a store not synced yet, a malformed URL
        print(f"woosync {name}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except DatabaseUnavailable as exc:
        print(f"woosync {name}: cannot reach {mask_url(dsn)}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (asyncpg.UndefinedTableError, asyncpg.UndefinedColumnError):
        print(f"woosync {name}: {mask_url(dsn)} lacks woosync's schema or its latest migrations: "
              "run 'woosync migrate' first", file=sys.stderr)
        return EXIT_FAILED
