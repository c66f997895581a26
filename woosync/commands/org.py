"""`woosync org ...`: organisations, their API tokens, and the broker users that publish for them
(docs/contract.md section 1).

    woosync org create --name NAME [--id UUID] [--json]
    woosync org list [--json]
    woosync org disable --org ORG | woosync org enable --org ORG
    woosync org token create --org ORG [--label TEXT] [--json]
    woosync org token list --org ORG [--json]
    woosync org token revoke --org ORG (--token-prefix PREFIX | --token-id UUID)
    woosync org publisher allow|revoke --org ORG --amqp-user USER
    woosync org publisher list --org ORG [--json]
    woosync org conflict-policy --org ORG [--set store_wins|local_wins]

ORG is an organisation id, or its name when no other organisation has it.
Exit codes: 0 done, 1 the database failed, 2 bad input (unknown organisation or token, blank name,
malformed or duplicate id).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from shared import organizations
from shared.db import connect
from shared.errors import DatabaseUnavailable, PermanentError
from shared.settings import Settings, mask_url

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

_ORG_HELP = "the organisation: its id, or its name when no other organisation has it"


def _uuid(text: str) -> uuid.UUID:
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
    create.add_argument("--id", dest="org_id", type=_uuid, default=None, metavar="UUID",
                        help="use this organisation id instead of a random one")
    create.add_argument("--json", action="store_true",
                        help='print exactly one JSON object {"org_id": ..., "api_token": ...} on stdout')

    listing = actions.add_parser("list", help="list organisations: state, live tokens, publishers",
                                 description="List every organisation with its state (active or disabled), "
                                 "its number of live API tokens and of registered publishers.")
    listing.add_argument("--json", action="store_true", help="print one JSON array on stdout")

    for name, verb in (("disable", "Disable"), ("enable", "Enable")):
        toggle = actions.add_parser(
            name,
            help=f"{name} an organisation" + (" (its tokens get 403, its sync requests are refused)" if name == "disable" else ""),
            description=f"{verb} an organisation. A disabled organisation's API tokens get 403 and its sync "
            "requests are dead-lettered (reason org_disabled); nothing of it is deleted, and enabling it "
            "again restores its tokens.",
        )
        toggle.add_argument("--org", required=True, metavar="ORG", help=_ORG_HELP)

    tokens = actions.add_parser("token", help="mint, list or revoke an organisation's API tokens",
                                description="Mint, list or revoke an organisation's API tokens.")
    token_actions = tokens.add_subparsers(dest="token_action", metavar="ACTION", required=True)
    mint = token_actions.add_parser("create", help="mint another API token (shown once)",
                                    description="Mint another API token for the organisation; it is shown once.")
    mint.add_argument("--org", required=True, metavar="ORG", help=_ORG_HELP)
    mint.add_argument("--label", default=None, help="what the token is for (shown by 'token list')")
    mint.add_argument("--json", action="store_true", help='print exactly one JSON object {"org_id", "token_id", "api_token"}')
    token_list = token_actions.add_parser("list", help="list the organisation's tokens (prefix, label, use, revocation)",
                                          description="List the organisation's tokens: id, prefix, label, "
                                          "created, last used (to the minute) and revoked. Never the token itself.")
    token_list.add_argument("--org", required=True, metavar="ORG", help=_ORG_HELP)
    token_list.add_argument("--json", action="store_true", help="print one JSON array on stdout")
    revoke = token_actions.add_parser("revoke", help="revoke a token: it gets 401 from the next request on",
                                      description="Revoke one of the organisation's tokens, named by the prefix "
                                      "or the id 'token list' shows. The API refuses it (401) from the next request on.")
    revoke.add_argument("--org", required=True, metavar="ORG", help=_ORG_HELP)
    which = revoke.add_mutually_exclusive_group(required=True)
    which.add_argument("--token-prefix", metavar="PREFIX", help="the token's prefix, e.g. wsk_AbCdEfGh")
    which.add_argument("--token-id", type=_uuid, metavar="UUID", help="the token's id")

    publishers = actions.add_parser(
        "publisher",
        help="the RabbitMQ users allowed to publish sync requests for an organisation",
        description="The RabbitMQ users allowed to publish sync requests for an organisation. The producer "
        "compares a request's user_id property (which RabbitMQ checks against the publishing connection's "
        "user) with them. An organisation with none accepts requests from any user of the broker: register "
        "the calling systems' users to close that door (woosync's own user, of WOOSYNC_AMQP_URL, is always allowed).",
    )
    publisher_actions = publishers.add_subparsers(dest="publisher_action", metavar="ACTION", required=True)
    for name, text in (("allow", "let a RabbitMQ user publish sync requests for the organisation"),
                       ("revoke", "stop a RabbitMQ user publishing for the organisation")):
        change = publisher_actions.add_parser(name, help=text, description=text[:1].upper() + text[1:] + ".")
        change.add_argument("--org", required=True, metavar="ORG", help=_ORG_HELP)
        change.add_argument("--amqp-user", required=True, metavar="USER", help="the RabbitMQ user name")
    publisher_list = publisher_actions.add_parser("list", help="list the organisation's publishers",
                                                  description="List the RabbitMQ users allowed to publish for the organisation.")
    publisher_list.add_argument("--org", required=True, metavar="ORG", help=_ORG_HELP)
    publisher_list.add_argument("--json", action="store_true", help="print one JSON array on stdout")

    policy = actions.add_parser(
        "conflict-policy",
        help="show or set what syncs do with fields edited locally (store_wins or local_wins)",
        description="Show or set the organisation's conflict policy: under store_wins (the default) a sync writes the "
        "store's value over a field edited locally since woosync last wrote it; under local_wins the local value is "
        "kept. Either way each such conflict is recorded. Syncs started from now on use it, unless their request "
        "names a policy (options.conflict_policy).",
    )
    policy.add_argument("--org", required=True, metavar="ORG", help=_ORG_HELP)
    policy.add_argument("--set", dest="policy", choices=("store_wins", "local_wins"), default=None,
                        help="the new policy (without it: show the current one)")


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment is not None else "-"


def _json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value).decode() + "\n")


# --- the actions: each takes (connection, args) and returns an exit code -------------------------


async def _create(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    org_id, token = await organizations.create_organization(conn, name=args.name, org_id=args.org_id)
    if args.json:
        _json({"org_id": str(org_id), "api_token": token})
    else:
        print(f"organisation {args.name.strip()!r} created")
        print(f"org_id:    {org_id}")
        print(f"api_token: {token}")
        print("The API token is shown only now: keep it somewhere safe.")
    return EXIT_OK


async def _list(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    found = await organizations.list_organizations(conn)
    if args.json:
        _json([{"org_id": str(org.id), "name": org.name, "created_at": org.created_at, "disabled_at": org.disabled_at,
                "active_tokens": org.active_tokens, "publishers": org.publishers} for org in found])
        return EXIT_OK
    if not found:
        print("no organisations yet (woosync org create --name NAME)")
    for org in found:
        state = f"disabled since {_when(org.disabled_at)}" if org.disabled_at else "active"
        print(f"{org.id}  {org.name!r}  {state}, {org.active_tokens} live token(s), {org.publishers} publisher(s)")
    return EXIT_OK


async def _set_disabled(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    org = await organizations.find_organization(conn, args.org)
    disabled = args.org_action == "disable"
    changed = await organizations.set_organization_disabled(conn, org.id, disabled)
    word = "disabled" if disabled else "enabled"
    print(f"organisation {org.id} ({org.name!r}) {word}" if changed else f"organisation {org.id} ({org.name!r}) was already {word}")
    if disabled and changed:
        print("Its API tokens get 403 and its sync requests are refused until: woosync org enable --org " + str(org.id))
    return EXIT_OK


async def _token_create(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    org = await organizations.find_organization(conn, args.org)
    token = await organizations.create_token(conn, org.id, label=args.label)
    token_id = await conn.fetchval("SELECT id FROM api_token WHERE token_hash = $1", organizations.token_digest(token))
    if args.json:
        _json({"org_id": str(org.id), "token_id": str(token_id), "api_token": token})
    else:
        print(f"api token minted for organisation {org.id} ({org.name!r})")
        print(f"token_id:  {token_id}")
        print(f"api_token: {token}")
        print("The API token is shown only now: keep it somewhere safe.")
    return EXIT_OK


async def _token_list(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    org = await organizations.find_organization(conn, args.org)
    tokens = await organizations.list_tokens(conn, org.id)
    if args.json:
        _json([{"token_id": str(t.id), "token_prefix": t.token_prefix, "label": t.label, "created_at": t.created_at,
                "last_used_at": t.last_used_at, "revoked_at": t.revoked_at} for t in tokens])
        return EXIT_OK
    for t in tokens:
        state = f"revoked {_when(t.revoked_at)}" if t.revoked_at else "live"
        print(f"{t.id}  {t.token_prefix}…  {state}  created {_when(t.created_at)}  last used {_when(t.last_used_at)}"
              + (f"  ({t.label})" if t.label else ""))
    return EXIT_OK


async def _token_revoke(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    org = await organizations.find_organization(conn, args.org)
    prefix = args.token_prefix.strip().rstrip("…") if args.token_prefix else None  # as 'token list' prints it
    token, revoked = await organizations.revoke_organization_token(conn, org.id, token_id=args.token_id, prefix=prefix)
    if revoked:
        print(f"token {token.id} ({token.token_prefix}…) of organisation {org.id} revoked: the API refuses it from now on")
    else:
        print(f"token {token.id} ({token.token_prefix}…) of organisation {org.id} was already revoked on {_when(token.revoked_at)}")
    return EXIT_OK


async def _publisher(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    org = await organizations.find_organization(conn, args.org)
    if args.publisher_action == "list":
        users = await organizations.list_publishers(conn, org.id)
        if args.json:
            _json(users)
        elif users:
            print("\n".join(users))
        else:
            print(f"organisation {org.id} has no registered publishers: any user of the broker may publish "
                  "sync requests for it (woosync org publisher allow --org ORG --amqp-user USER)")
        return EXIT_OK
    if args.publisher_action == "allow":
        changed = await organizations.allow_publisher(conn, org.id, args.amqp_user)
        print(f"RabbitMQ user {args.amqp_user!r} {'may now' if changed else 'already may'} publish sync requests "
              f"for organisation {org.id}")
        if changed:
            print("Requests for it from other users (woosync's own user aside) are now refused.")
    else:
        changed = await organizations.revoke_publisher(conn, org.id, args.amqp_user)
        print(f"RabbitMQ user {args.amqp_user!r} {'may no longer' if changed else 'was not allowed to'} publish "
              f"sync requests for organisation {org.id}")
        if changed and not await organizations.list_publishers(conn, org.id):
            print("It has no registered publishers left: any user of the broker may publish for it again.")
    return EXIT_OK


async def _conflict_policy(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    from shared.repository import conflicts

    org = await organizations.find_organization(conn, args.org)
    if args.policy is not None:
        await conflicts.set_organization_conflict_policy(conn, org.id, args.policy)
    print(f"organisation {org.id} ({org.name!r}): conflict policy "
          f"{await conflicts.organization_conflict_policy(conn, org.id)}")
    return EXIT_OK


def _action(args: argparse.Namespace) -> tuple[str, Callable[[asyncpg.Connection, argparse.Namespace], Awaitable[int]]]:
    """The action's name (for messages) and its function."""
    if args.org_action == "token":
        return f"org token {args.token_action}", {"create": _token_create, "list": _token_list,
                                                  "revoke": _token_revoke}[args.token_action]
    if args.org_action == "publisher":
        return f"org publisher {args.publisher_action}", _publisher
    if args.org_action == "conflict-policy":
        return "org conflict-policy", _conflict_policy
    return f"org {args.org_action}", {"create": _create, "list": _list, "disable": _set_disabled,
                                      "enable": _set_disabled}[args.org_action]


def run(args: argparse.Namespace, settings: Settings) -> int:
    dsn = settings.database_url.get_secret_value()
    name, action = _action(args)

    async def with_connection() -> int:
        conn = await connect(dsn)
        try:
            return await action(conn, args)
        finally:
            await conn.close()

    try:
        return asyncio.run(with_connection())
    except PermanentError as exc:  # unknown organisation or token, blank name, taken id, bad user name
        print(f"woosync {name}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except DatabaseUnavailable as exc:
        print(f"woosync {name}: cannot reach {mask_url(dsn)}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (asyncpg.UndefinedTableError, asyncpg.UndefinedColumnError):
        print(f"woosync {name}: {mask_url(dsn)} lacks woosync's schema or its latest migrations: "
              "run 'woosync migrate' first", file=sys.stderr)
        return EXIT_FAILED
    except asyncpg.InvalidCatalogNameError as exc:
        print(f"woosync {name}: {exc}: run 'woosync migrate' first", file=sys.stderr)
        return EXIT_FAILED
