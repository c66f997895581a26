"""`woosync secrets reencrypt [--dry-run] [--batch-size N]`: encrypt every store's credentials with
the newest key of WOOSYNC_SECRET_KEY (docs/contract.md section 1).

Credentials stored in clear (before a key was set) are encrypted, those of an older key rotated to
the newest, those already of the newest key left alone: running it twice changes nothing the
second time. Rotating a key: set WOOSYNC_SECRET_KEY="NEW,OLD" everywhere and restart the services
(they read both and write with NEW), run this, then drop OLD from the variable.

Exit codes: 0 every store's credentials are (or, with --dry-run, would be) encrypted with the
newest key; 1 some cannot be decrypted with any of the keys (listed by store), or the database
failed; 2 WOOSYNC_SECRET_KEY is not set, or bad options.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import asyncpg

from shared.db import connect
from shared.errors import DatabaseUnavailable
from shared.repository.stores import ReencryptReport, reencrypt_credentials
from shared.settings import Settings, mask_url

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 100_000:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to 100000, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="secrets_action", metavar="ACTION", required=True)
    reencrypt = actions.add_parser(
        "reencrypt",
        help="encrypt every store's credentials with the newest key of WOOSYNC_SECRET_KEY",
        description="Encrypt every store's credentials with the newest (first) key of WOOSYNC_SECRET_KEY: "
        "credentials stored in clear are encrypted, those of an older key re-encrypted, those already of the "
        "newest key left alone (running it again changes nothing). To rotate the key: set "
        'WOOSYNC_SECRET_KEY="NEW,OLD" for every service and restart them, run this, then remove OLD. '
        "Stores whose credentials no key opens are listed and the exit code is 1.",
    )
    reencrypt.add_argument("--dry-run", action="store_true",
                           help="report what would change, change nothing")
    reencrypt.add_argument("--batch-size", type=_positive, default=500, metavar="N",
                           help="stores read and written per statement (default 500)")


def _summary(report: ReencryptReport, dry_run: bool) -> str:
    would = "would be " if dry_run else ""
    parts = [
        f"{report.encrypted} {would}encrypted from plain",
        f"{report.rotated} {would}rotated to the newest key",
        f"{report.current} already current",
        f"{len(report.undecryptable)} undecryptable",
    ]
    if report.changed_meanwhile:
        parts.append(f"{report.changed_meanwhile} saved anew by a service meanwhile (left alone)")
    return f"{report.total} store(s): " + ", ".join(parts)


def run(args: argparse.Namespace, settings: Settings) -> int:
    cipher = settings.credentials_cipher
    if cipher is None:
        print("woosync secrets reencrypt: WOOSYNC_SECRET_KEY is not set: set it to the key to encrypt with "
              '(several keys "NEW,OLD" while rotating)', file=sys.stderr)
        return EXIT_USAGE
    dsn = settings.database_url.get_secret_value()

    def progress(done: int, total: int) -> None:
        if total > args.batch_size:  # a line per batch only when there is more than one
            print(f"{done} of {total} store(s) examined", file=sys.stderr, flush=True)

    async def reencrypt() -> ReencryptReport:
        conn = await connect(dsn)
        try:
            return await reencrypt_credentials(conn, cipher, dry_run=args.dry_run, batch_size=args.batch_size,
                                               on_batch=progress)
        finally:
            await conn.close()

    try:
        report = asyncio.run(reencrypt())
    except DatabaseUnavailable as exc:
        print(f"woosync secrets reencrypt: cannot reach {mask_url(dsn)}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (asyncpg.UndefinedTableError, asyncpg.InvalidCatalogNameError):
        print(f"woosync secrets reencrypt: {mask_url(dsn)} has no woosync schema: run 'woosync migrate' first",
              file=sys.stderr)
        return EXIT_FAILED
    print(("dry run: " if args.dry_run else "") + _summary(report, args.dry_run))
    if report.undecryptable:
        print("None of the keys of WOOSYNC_SECRET_KEY opens the credentials of these stores (add the key they "
              "were encrypted with, or send each store's credentials again with a sync request):", file=sys.stderr)
        for store_id, url in report.undecryptable:
            print(f"  store {store_id} {url}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK
