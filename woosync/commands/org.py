"""`woosync org create --name NAME [--id UUID] [--json]`: register an organisation, mint its API token.

Exit codes: 0 created, 1 the database failed, 2 bad input (blank name, malformed or duplicate id).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid

import asyncpg
import orjson

from shared.db import connect
from shared.errors import DatabaseUnavailable
from shared.organizations import DuplicateOrganization, InvalidOrganizationName, create_organization
from shared.settings import Settings, mask_url

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _org_id(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a UUID: {text!r} (expected e.g. 6f1c7c1e-6c1b-4d43-9a8e-0d6c1b8e2f10)") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="org_action", metavar="ACTION", required=True)
    create = actions.add_parser(
        "create",
        help="register an organisation and mint an API token for it",
        description="Register an organisation (optionally with the id it already has in your CRM) and "
        "mint an API token for it. The token is shown once: keep it.",
    )
    create.add_argument("--name", required=True, help="the organisation's display name")
    create.add_argument("--id", dest="org_id", type=_org_id, default=None, metavar="UUID",
                        help="use this organisation id instead of a random one")
    create.add_argument("--json", action="store_true",
                        help='print exactly one JSON object {"org_id": ..., "api_token": ...} on stdout')


async def _create(dsn: str, name: str, org_id: uuid.UUID | None) -> tuple[uuid.UUID, str]:
    conn = await connect(dsn)
    try:
        return await create_organization(conn, name=name, org_id=org_id)
    finally:
        await conn.close()


def run(args: argparse.Namespace, settings: Settings) -> int:
    dsn = settings.database_url.get_secret_value()
    try:
        org_id, token = asyncio.run(_create(dsn, args.name, args.org_id))
    except (DuplicateOrganization, InvalidOrganizationName) as exc:
        print(f"woosync org create: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except DatabaseUnavailable as exc:
        print(f"woosync org create: cannot reach {mask_url(dsn)}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except asyncpg.UndefinedTableError:
        print(f"woosync org create: {mask_url(dsn)} has no woosync schema: run 'woosync migrate' first", file=sys.stderr)
        return EXIT_FAILED
    except asyncpg.InvalidCatalogNameError as exc:
        print(f"woosync org create: {exc}: run 'woosync migrate' first", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        sys.stdout.write(orjson.dumps({"org_id": str(org_id), "api_token": token}).decode() + "\n")
    else:
        print(f"organisation {args.name.strip()!r} created")
        print(f"org_id:    {org_id}")
        print(f"api_token: {token}")
        print("The API token is shown only now: keep it somewhere safe.")
    return EXIT_OK
