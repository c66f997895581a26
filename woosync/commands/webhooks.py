"""`woosync webhooks install|status|uninstall`: the WooCommerce webhooks that keep Postgres
current between syncs (docs/contract.md section 10).

    woosync webhooks install   --org ORG --url STORE_URL --public-url WEBHOOKS_BASE_URL [--json]
    woosync webhooks status    --org ORG --url STORE_URL [--public-url ...] [--json]
    woosync webhooks uninstall --org ORG --url STORE_URL [--public-url ...] [--json]

The store's key and secret come as for `woosync sync start` (WOOSYNC_STORE_CONSUMER_KEY and
WOOSYNC_STORE_CONSUMER_SECRET, or the flags); the key needs Read/Write access to create webhooks.

`install` creates one webhook per topic (customer.created/updated/deleted, order.created/updated/
deleted/restored), each with a secret of its own that woosync generates and keeps encrypted with
WOOSYNC_SECRET_KEY (required), all delivering to WEBHOOKS_BASE_URL/woocommerce/<store token>
(served by `woosync run webhooks`). Run again, it repairs: a webhook missing at the store is
created again, one disabled (the store disables a webhook after repeated failed deliveries) or
paused, or pointing elsewhere, is set active at the right URL with a new secret, and a webhook
left at the store by an earlier install that woosync no longer has the secret of is deleted.

Exit codes: 0 done, 1 the store or the database failed, 2 bad input or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID

import orjson

if TYPE_CHECKING:
    from shared.settings import Settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DELIVERY_PATH = "/woocommerce/"


class UsageError(Exception):
    """Something to change in the command or the configuration (exit 2)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="webhooks_action", metavar="ACTION", required=True)
    for name, help_text in (
        ("install", "create (or repair) the store's seven webhooks pointing at the webhooks service"),
        ("status", "show each webhook's state at the store and woosync's last accepted delivery per topic"),
        ("uninstall", "delete woosync's webhooks from the store and forget their secrets"),
    ):
        sub = actions.add_parser(name, help=help_text, description=help_text[:1].upper() + help_text[1:] + ".")
        sub.add_argument("--org", required=True, metavar="ORG_ID", help="organisation id (UUID)")
        sub.add_argument("--url", required=True, help="the store's base URL, e.g. https://shop.example.com")
        sub.add_argument("--public-url", required=name == "install", metavar="WEBHOOKS_BASE_URL",
                         help="where the store reaches `woosync run webhooks`, e.g. https://hooks.example.com")
        sub.add_argument("--consumer-key", default=None, help="default: $WOOSYNC_STORE_CONSUMER_KEY")
        sub.add_argument("--consumer-secret", default=None, help="default: $WOOSYNC_STORE_CONSUMER_SECRET")
        sub.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from shared.errors import DatabaseUnavailable, PermanentError, RetryableError, StoreError

    try:
        report = asyncio.run(_dispatch(args, settings))
    except UsageError as exc:
        print(f"woosync webhooks: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (StoreError, RetryableError, DatabaseUnavailable, PermanentError) as exc:
        print(f"woosync webhooks: {exc}", file=sys.stderr)
        return EXIT_FAILED
    _print(report, as_json=args.json)
    return EXIT_OK


@dataclass
class TopicReport:
    topic: str
    webhook_id: int | None
    status_at_store: str  # active | paused | disabled | missing
    action: str  # created | repaired | ok | deleted | none
    last_delivery_at: str | None


async def _dispatch(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from shared.db import connect, create_pool
    from shared.messages import normal_store_url
    from shared.organizations import organization_exists
    from shared.woocommerce.budget import FleetBudgets
    from shared.woocommerce.client import WooCommerceClient
    from shared.woocommerce.credentials import StoreCredentials
    from shared.woocommerce.webhooks import StoreWebhooks

    try:
        org_id = UUID(args.org)
    except ValueError:
        raise UsageError(f"--org must be an organisation id (UUID), got {args.org!r}") from None
    try:
        store_url = normal_store_url(args.url)
    except ValueError as exc:
        raise UsageError(f"--url {exc}") from None
    public_url = _public_url(args.public_url) if args.public_url else None
    if args.webhooks_action == "install" and settings.credentials_cipher is None:
        raise UsageError("webhook secrets are kept encrypted: set WOOSYNC_SECRET_KEY (a Fernet key; the webhooks "
                         "service needs the same one)")
    key = args.consumer_key or os.environ.get("WOOSYNC_STORE_CONSUMER_KEY")
    secret = args.consumer_secret or os.environ.get("WOOSYNC_STORE_CONSUMER_SECRET")
    if not key or not secret:
        raise UsageError("the store's consumer key and secret are needed: set WOOSYNC_STORE_CONSUMER_KEY and "
                         "WOOSYNC_STORE_CONSUMER_SECRET (or pass --consumer-key/--consumer-secret)")

    conn = await connect(settings.database_url.get_secret_value())
    # The store's request budget is the fleet's (docs/contract.md section 6): these requests take
    # their slots like every producer's and consumer's, and a 429 holds the store for all of them.
    # One request at a time: no share of the fleet's in-flight slots is leased.
    budget_pool = None
    try:
        budget_pool = await create_pool(settings.database_url.get_secret_value(), min_size=1, max_size=1)
        if not await organization_exists(conn, org_id):
            raise UsageError(f"organisation {org_id} is not registered (woosync org create)")
        credentials = StoreCredentials(url=store_url, consumer_key=key, consumer_secret=secret, auth=settings.store_auth)
        budget = FleetBudgets(budget_pool, default_rate=settings.store_rate_limit).for_store(store_url)
        async with WooCommerceClient(credentials, timeout_s=settings.store_timeout_s, max_tries=settings.store_max_tries,
                                     allowed_networks=settings.store_allowed_networks,
                                     max_response_bytes=settings.store_max_response_bytes, budget=budget,
                                     hold_patience_s=settings.store_hold_wait_s) as client:
            await client.test_connection(within_s=settings.store_connect_test_timeout_s)
            installer = _Installer(conn, settings, org_id, store_url, StoreWebhooks(client), credentials)
            if args.webhooks_action == "install":
                return await installer.install(public_url)
            if args.webhooks_action == "uninstall":
                return await installer.uninstall(public_url)
            return await installer.status(public_url)
    finally:
        if budget_pool is not None:
            await budget_pool.close()
        await conn.close()


def _public_url(raw: str) -> str:
    from urllib.parse import urlsplit

    url = raw.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise UsageError(f"--public-url must be an http(s) URL without a query, e.g. https://hooks.example.com "
                         f"(got {raw!r}); the store refuses any other delivery URL")
    return url


class _Installer:
    def __init__(self, conn: Any, settings: Settings, org_id: UUID, store_url: str, webhooks: Any,
                 credentials: Any) -> None:
        self._conn = conn
        self._settings = settings
        self._org_id = org_id
        self._store_url = store_url
        self._webhooks = webhooks
        self._credentials = credentials

    async def _store_id(self, *, create: bool) -> UUID | None:
        from shared.repository import stores, webhooks

        if not create:
            return await webhooks.find_store(self._conn, self._org_id, self._store_url)
        cipher = self._settings.credentials_cipher
        store_id = await stores.record_store(
            self._conn, org_id=self._org_id, url=self._store_url, consumer_key=self._credentials.consumer_key,
            consumer_secret=self._credentials.consumer_secret, cipher=cipher)
        # The store just answered with them (the connection test): the webhooks service publishes
        # its one-customer syncs with these.
        await stores.save_verified_credentials(
            self._conn, store_id, consumer_key=self._credentials.consumer_key,
            consumer_secret=self._credentials.consumer_secret, cipher=cipher)
        return store_id

    async def install(self, public_url: str | None) -> dict[str, Any]:
        from shared.repository import webhooks as rows
        from shared.woocommerce import webhooks as wc

        assert public_url is not None
        cipher = self._settings.credentials_cipher
        assert cipher is not None
        store_id = await self._store_id(create=True)
        assert store_id is not None
        token = await rows.path_token_of(self._conn, store_id) or wc.new_path_token()
        delivery_url = f"{public_url}{DELIVERY_PATH}{token}"
        installed = await rows.installed_webhooks(self._conn, store_id)
        at_store = {hook.id: hook for hook in await self._webhooks.list()}
        reports = []
        kept_ids = set()
        for topic in wc.TOPICS:
            row = installed.get(topic)
            hook = at_store.get(row.woo_webhook_id) if row and row.woo_webhook_id else None
            if hook is not None and hook.topic != topic:
                hook = None  # the id now belongs to something else: ours is gone
            secret = wc.new_secret()
            if hook is None:
                # Kept first: the store pings the new webhook before its create call returns.
                await rows.save_webhook_secret(self._conn, store_id, topic, path_token=token,
                                               delivery_url=delivery_url, secret=secret, cipher=cipher)
                hook = await self._webhooks.create(topic=topic, delivery_url=delivery_url, secret=secret,
                                                   name=wc.webhook_name(topic))
                await rows.set_woo_webhook_id(self._conn, store_id, topic, hook.id)
                action, before = "created", "missing"
            elif hook.status != "active" or hook.delivery_url != delivery_url:
                before = hook.status
                await rows.save_webhook_secret(self._conn, store_id, topic, path_token=token,
                                               delivery_url=delivery_url, secret=secret, cipher=cipher)
                hook = await self._webhooks.update(hook.id, status="active", delivery_url=delivery_url, secret=secret)
                await rows.set_woo_webhook_id(self._conn, store_id, topic, hook.id)
                action = "repaired"
            else:
                action, before = "ok", hook.status
            kept_ids.add(hook.id)
            reports.append(TopicReport(topic, hook.id, before, action, _when(row.last_delivery_at if row else None)))
        # Webhooks at the store that deliver to this store's URL but are not the ones we keep:
        # left by an install whose secrets are lost; they could only ever fail.
        for hook in at_store.values():
            if hook.id not in kept_ids and hook.delivery_url == delivery_url:
                await self._webhooks.delete(hook.id)
                reports.append(TopicReport(hook.topic, hook.id, hook.status, "deleted", None))
        return {"store_url": self._store_url, "delivery_url": _shown(delivery_url), "webhooks": reports}

    async def status(self, public_url: str | None) -> dict[str, Any]:
        from shared.repository import webhooks as rows
        from shared.woocommerce import webhooks as wc

        store_id = await self._store_id(create=False)
        installed = await rows.installed_webhooks(self._conn, store_id) if store_id else {}
        at_store = {hook.id: hook for hook in await self._webhooks.list()}
        reports = []
        delivery_url = None
        for topic in wc.TOPICS:
            row = installed.get(topic)
            hook = at_store.get(row.woo_webhook_id) if row and row.woo_webhook_id else None
            state = "missing" if hook is None or hook.topic != topic else hook.status
            if row is not None:
                delivery_url = row.delivery_url
                if hook is not None and hook.delivery_url != row.delivery_url:
                    state = f"{state}, delivers elsewhere"
            reports.append(TopicReport(topic, hook.id if hook else None, state, "none",
                                       _when(row.last_delivery_at if row else None)))
        return {"store_url": self._store_url, "delivery_url": _shown(delivery_url) if delivery_url else None,
                "webhooks": reports}

    async def uninstall(self, public_url: str | None) -> dict[str, Any]:
        from shared.errors import StoreNotFound
        from shared.repository import webhooks as rows

        store_id = await self._store_id(create=False)
        installed = await rows.installed_webhooks(self._conn, store_id) if store_id else {}
        urls = {row.delivery_url for row in installed.values()}
        ours = {row.woo_webhook_id for row in installed.values() if row.woo_webhook_id}
        reports = []
        for hook in await self._webhooks.list():
            if hook.id in ours or hook.delivery_url in urls:
                try:
                    await self._webhooks.delete(hook.id)
                except StoreNotFound:
                    pass  # deleted meanwhile
                reports.append(TopicReport(hook.topic, hook.id, hook.status, "deleted", None))
        if store_id is not None:
            await rows.forget_webhooks(self._conn, store_id)
        return {"store_url": self._store_url, "delivery_url": None, "webhooks": reports}


def _when(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _shown(delivery_url: str) -> str:
    """The delivery URL with most of its store token hidden (it is not a secret from the store's
    admins, but need not travel through terminals and logs whole)."""
    base, _, token = delivery_url.rpartition(DELIVERY_PATH)
    return f"{base}{DELIVERY_PATH}{token[:6]}..." if token else delivery_url


def _print(report: dict[str, Any], *, as_json: bool) -> None:
    rows = [asdict(item) for item in report["webhooks"]]
    if as_json:
        print(orjson.dumps({**report, "webhooks": rows}).decode())
        return
    print(f"store {report['store_url']}" + (f": deliveries to {report['delivery_url']}" if report["delivery_url"] else ""))
    print(f"  {'topic':<18} {'webhook':>8}  {'at the store':<24} {'action':<9} last accepted delivery")
    for row in rows:
        webhook_id = str(row["webhook_id"]) if row["webhook_id"] is not None else "-"
        print(f"  {row['topic']:<18} {webhook_id:>8}  {row['status_at_store']:<24} {row['action']:<9} "
              f"{row['last_delivery_at'] or '-'}")
