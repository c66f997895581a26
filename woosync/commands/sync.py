"""`woosync sync start|status|retry|pause|resume|cancel`: the command-line client of a sync.

- `start` publishes a sync request straight to RabbitMQ (WOOSYNC_AMQP_URL), as any client may
  (docs/contract.md section 3), and waits for the producer's answer on the direct reply-to pseudo-queue.
- `status` (and `start --wait`) watch a queue through the status API: its token scopes what
  you can see to your organisation, and the API is the documented contract (Postgres's tables
  are not). A live progress bar on a terminal; plain periodic lines otherwise.
- `retry`, `pause`, `resume` and `cancel` call the status API.

Exit codes: 0 the sync is done (or the action succeeded), 1 it ended failed, partial or
cancelled, or the producer refused or did not answer the request, 2 usage errors: bad
arguments, unknown queue, missing or refused token, status API unreachable.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from shared.states import TERMINAL_QUEUE_STATES

if TYPE_CHECKING:
    from shared.settings import Settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_API_URL = "http://127.0.0.1:8080"


class UsageError(Exception):
    """A problem with what was asked (exit 2); the message says what to change."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="sync_action", metavar="ACTION", required=True)

    def api_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--api-url", default=None, help=f"status API (default: $WOOSYNC_API_URL or {DEFAULT_API_URL})")
        sub.add_argument("--token", default=None, help="API token (default: $WOOSYNC_API_TOKEN; prefer the variable)")
        sub.add_argument("--json", action="store_true",
                         help="print one JSON object on stdout instead of text (start: the producer's reply; "
                              "with --wait or status: the final queue status)")

    start = actions.add_parser(
        "start",
        help="publish a sync request to RabbitMQ and print the queue id",
        description="Publish a sync request (WOOSYNC_AMQP_URL) and wait for the producer's answer. "
        "Keep secrets out of your shell history with WOOSYNC_STORE_CONSUMER_KEY / WOOSYNC_STORE_CONSUMER_SECRET.",
    )
    start.add_argument("--org", required=True, metavar="ORG_ID", help="organisation id (UUID)")
    start.add_argument("--url", required=True, help="the store's base URL, e.g. https://shop.example.com")
    start.add_argument("--consumer-key", default=None, help="default: $WOOSYNC_STORE_CONSUMER_KEY")
    start.add_argument("--consumer-secret", default=None, help="default: $WOOSYNC_STORE_CONSUMER_SECRET")
    start.add_argument("--idempotency-key", default=None, help="the same org and key always map to the same queue")
    start.add_argument("--email", default=None, help="sync only the customer with this email")
    start.add_argument("--customer-id", type=int, default=None, help="sync only this WooCommerce customer id")
    start.add_argument("--limit", type=int, default=None, help="sync at most this many customers")
    start.add_argument("--role", default="all", help="WooCommerce role filter (default: %(default)s)")
    start.add_argument("--orders", choices=("auto", "bulk", "per_customer"), default="auto",
                       help="how customers' orders are read: bulk pages every order of the store once, per_customer "
                            "asks for each customer's, auto takes the one with fewer store requests (default: %(default)s)")
    start.add_argument("--conflict-policy", choices=("store_wins", "local_wins"), default=None,
                       help="what the sync does with fields edited locally since woosync wrote them "
                            "(default: the organisation's policy, see 'woosync org conflict-policy')")
    start.add_argument("--mode", choices=("full", "incremental"), default="full",
                       help="full lists every customer of the store; incremental sweeps only the customers whose "
                            "orders changed, and those registered, since the store's last completed sweep (a store "
                            "never swept gets a full sync that sets it); incremental takes no --email, --customer-id, "
                            "--limit or --role (default: %(default)s)")
    start.add_argument("--requested-by", default=None, help="free text recorded with the sync")
    start.add_argument("--reply-timeout", type=float, default=30.0, metavar="SECONDS",
                       help="how long to wait for the producer's answer (default: %(default)s)")
    start.add_argument("--wait", action="store_true", help="then watch the sync until it ends (needs the status API)")
    api_options(start)

    preview = actions.add_parser(
        "preview",
        help="what a sync would change, without writing any customer row",
        description="Start a preview through the status API (the organisation is the token's), watch it and print its "
        "report: customers a sync would create, update or leave unchanged, would fail, the conflicts with local edits, "
        "changes per field and samples with old and new values. Same store flags as 'start'.",
    )
    preview.add_argument("--url", required=True, help="the store's base URL, e.g. https://shop.example.com")
    preview.add_argument("--consumer-key", default=None, help="default: $WOOSYNC_STORE_CONSUMER_KEY")
    preview.add_argument("--consumer-secret", default=None, help="default: $WOOSYNC_STORE_CONSUMER_SECRET")
    preview.add_argument("--idempotency-key", default=None, help="the same org and key always map to the same queue")
    preview.add_argument("--email", default=None, help="preview only the customer with this email")
    preview.add_argument("--customer-id", type=int, default=None, help="preview only this WooCommerce customer id")
    preview.add_argument("--limit", type=int, default=None, help="preview at most this many customers")
    preview.add_argument("--role", default="all", help="WooCommerce role filter (default: %(default)s)")
    preview.add_argument("--orders", choices=("auto", "bulk", "per_customer"), default="auto",
                         help="how customers' orders are read (as for start; default: %(default)s)")
    preview.add_argument("--conflict-policy", choices=("store_wins", "local_wins"), default=None,
                         help="the policy to preview under (default: the organisation's)")
    preview.add_argument("--mode", choices=("full", "incremental"), default="full",
                         help="preview a full sync, or an incremental sweep of what changed since the store's last "
                              "completed sweep (a preview never moves it) (default: %(default)s)")
    preview.add_argument("--requested-by", default=None, help="free text recorded with the preview")
    api_options(preview)

    status = actions.add_parser("status", help="watch a sync with a live progress bar until it ends")
    status.add_argument("queue_id", metavar="QUEUE_ID")
    status.add_argument("--once", action="store_true", help="print the current status and exit")
    status.add_argument("--interval", type=float, default=None, metavar="SECONDS",
                        help="seconds between plain-text lines when not on a terminal (default: 2)")
    api_options(status)

    for name, help_text in (("retry", "move a sync's failed lines back to draft and re-publish them"),
                            ("pause", "pause a sync: no more of its lines are sent to consumers"),
                            ("resume", "resume a paused sync where it stopped"),
                            ("cancel", "cancel a sync: its remaining lines end cancelled")):
        sub = actions.add_parser(name, help=help_text)
        sub.add_argument("queue_id", metavar="QUEUE_ID")
        sub.add_argument("--requested-by", default=None, help="free text recorded in the activity log")
        api_options(sub)


def run(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    from woosync.sync_client import ApiProblem, ReplyProblem

    try:
        return asyncio.run(_dispatch(args, settings))
    except UsageError as exc:
        print(f"woosync sync: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ApiProblem as exc:
        print(f"woosync sync: {exc}", file=sys.stderr)
        return exc.exit_code
    except ReplyProblem as exc:
        print(f"woosync sync: {exc}", file=sys.stderr)
        return EXIT_FAILED


async def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    from woosync import sync_client

    if args.sync_action == "start":
        request = _start_request(args)
        api = _api(args) if args.wait else None  # checked before publishing anything
        try:
            reply = await sync_client.request_sync(
                settings.amqp_url.get_secret_value(), request, reply_timeout=args.reply_timeout
            )
            if api is None:
                _print_started(reply, as_json=args.json)
                return EXIT_OK
            if not args.json:
                _print_started(reply, as_json=False)
            final = await sync_client.watch(api, str(reply["queue_id"]), as_json=args.json, interval=None)
            return _exit_for(final)
        finally:
            if api is not None:
                await api.aclose()

    if args.sync_action == "preview":
        body = _preview_body(args)
        api = _api(args)
        try:
            started = await api.start_preview(body)
            if args.json:
                await _poll_quietly(api, str(started["id"]))
            else:
                await sync_client.watch(api, str(started["id"]), as_json=False, interval=None)
            final = await api.queue_status(str(started["id"]))
        finally:
            await api.aclose()
        if args.json:
            _print_json(final)
        else:
            print(describe_preview(final))
        return _exit_for(final)

    queue_id = _queue_id(args.queue_id)
    api = _api(args)
    try:
        return await _queue_action(args, api, queue_id)
    finally:
        await api.aclose()


async def _queue_action(args: argparse.Namespace, api: Any, queue_id: str) -> int:
    from woosync import sync_client

    if args.sync_action == "status":
        if args.once:
            status = await api.queue_status(queue_id)
            _print_status(status, as_json=args.json)
            return _exit_for(status) if status["state"] in TERMINAL_QUEUE_STATES else EXIT_OK
        final = await sync_client.watch(api, queue_id, as_json=args.json, interval=args.interval)
        return _exit_for(final)
    if args.sync_action == "retry":
        result = await api.retry(queue_id, requested_by=args.requested_by)
        if args.json:
            _print_json(result)
        else:
            print(f"queue {queue_id}: {result['retried']} failed line(s) back to draft and re-published; "
                  f"state {result['queue']['state']}")
        return EXIT_OK
    if args.sync_action in ("pause", "resume"):
        change = api.pause if args.sync_action == "pause" else api.resume
        status = await change(queue_id, requested_by=args.requested_by)
        if args.json:
            _print_json(status)
        else:
            print(f"queue {queue_id}: {status['state']} ({status['draft_count']} waiting, "
                  f"{status.get('queued_count', 0)} queued, {status['processing_count']} processing, "
                  f"{status['done_count']} done)")
        return EXIT_OK
    status = await api.cancel(queue_id, requested_by=args.requested_by)
    if args.json:
        _print_json(status)
    else:
        print(f"queue {queue_id}: cancelled ({status['cancelled_count']} line(s) cancelled, "
              f"{status['done_count']} done, {status['failed_count']} failed)")
    return EXIT_OK


def _queue_id(raw: str) -> str:
    from uuid import UUID

    try:
        return str(UUID(raw))
    except ValueError:
        raise UsageError(f"QUEUE_ID must be a UUID, got {raw!r}") from None


def _api(args: argparse.Namespace):  # -> sync_client.StatusApi
    from woosync.sync_client import StatusApi

    token = args.token or os.environ.get("WOOSYNC_API_TOKEN")
    if not token:
        raise UsageError("an API token is needed: set WOOSYNC_API_TOKEN (or pass --token); "
                         "'woosync org create --name NAME' mints one")
    url = args.api_url or os.environ.get("WOOSYNC_API_URL") or DEFAULT_API_URL
    return StatusApi(url, token)


def _start_request(args: argparse.Namespace):  # -> shared.messages.StartSync
    from pydantic import ValidationError

    from shared.messages import StartSync

    key = args.consumer_key or os.environ.get("WOOSYNC_STORE_CONSUMER_KEY")
    secret = args.consumer_secret or os.environ.get("WOOSYNC_STORE_CONSUMER_SECRET")
    if not key or not secret:
        raise UsageError("the store's consumer key and secret are needed: set WOOSYNC_STORE_CONSUMER_KEY and "
                         "WOOSYNC_STORE_CONSUMER_SECRET (or pass --consumer-key/--consumer-secret)")
    options: dict[str, Any] = {"role": args.role, "orders": args.orders, "mode": args.mode}
    for name, value in (("email", args.email), ("woo_customer_id", args.customer_id), ("limit", args.limit),
                        ("conflict_policy", args.conflict_policy)):
        if value is not None:
            options[name] = value
    try:
        return StartSync.model_validate({
            "org_id": args.org,
            "store": {"url": args.url, "consumer_key": key, "consumer_secret": secret},
            "idempotency_key": args.idempotency_key,
            "requested_by": args.requested_by,
            "options": options,
        })
    except ValidationError as exc:
        flags = {"org_id": "--org", "store.url": "--url", "options.woo_customer_id": "--customer-id",
                 "options.limit": "--limit", "options.role": "--role", "options.email": "--email",
                 "options.orders": "--orders", "options.mode": "--mode",
                 "options": "--mode",  # the options together: an incremental sweep narrowed to some customers
                 "idempotency_key": "--idempotency-key", "requested_by": "--requested-by",
                 "store.consumer_key": "the consumer key", "store.consumer_secret": "the consumer secret"}
        problems = []
        for error in exc.errors(include_input=False, include_url=False):
            field = ".".join(str(part) for part in error["loc"])
            problems.append(f"{flags.get(field, field)}: {error['msg']}")
        raise UsageError("; ".join(problems)) from None


def _print_json(value: Any) -> None:
    import json

    print(json.dumps(value, separators=(",", ":"), default=str))


def _print_started(reply: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        _print_json(reply)
        return
    print(f"sync started: queue {reply['queue_id']} ({reply.get('state')}, "
          f"{reply.get('total_count', 0)} line(s) so far)")
    print(f"watch it with: woosync sync status {reply['queue_id']}")


def _print_status(status: dict[str, Any], *, as_json: bool) -> None:
    from woosync.sync_client import describe

    if as_json:
        _print_json(status)
    else:
        print(describe(status))


def _exit_for(status: dict[str, Any]) -> int:
    return EXIT_OK if status["state"] == "done" else EXIT_FAILED


async def _poll_quietly(api: Any, queue_id: str) -> None:
    """Wait for the queue to end without printing (the --json output is the final object alone)."""
    import asyncio

    while (await api.queue_status(queue_id))["state"] not in TERMINAL_QUEUE_STATES:
        await asyncio.sleep(1)


def _preview_body(args: argparse.Namespace) -> dict[str, Any]:
    """The body of POST /api/v1/sync/preview from the flags."""
    key = args.consumer_key or os.environ.get("WOOSYNC_STORE_CONSUMER_KEY")
    secret = args.consumer_secret or os.environ.get("WOOSYNC_STORE_CONSUMER_SECRET")
    if not key or not secret:
        raise UsageError("the store's consumer key and secret are needed: set WOOSYNC_STORE_CONSUMER_KEY and "
                         "WOOSYNC_STORE_CONSUMER_SECRET (or pass --consumer-key/--consumer-secret)")
    options: dict[str, Any] = {"role": args.role, "orders": args.orders, "mode": args.mode}
    for name, value in (("email", args.email), ("woo_customer_id", args.customer_id), ("limit", args.limit),
                        ("conflict_policy", args.conflict_policy)):
        if value is not None:
            options[name] = value
    body: dict[str, Any] = {"store": {"url": args.url, "consumer_key": key, "consumer_secret": secret},
                            "options": options}
    for name, value in (("idempotency_key", args.idempotency_key), ("requested_by", args.requested_by)):
        if value is not None:
            body[name] = value
    return body


def describe_preview(status: dict[str, Any]) -> str:
    """A preview's report for people (docs/contract.md section 10)."""
    report = status.get("preview") or {}
    policy = (status.get("options") or {}).get("conflict_policy", "store_wins")
    lines = [
        f"preview {status['id']} ({status['state']}), under {policy}:",
        f"  would create {report.get('would_create', 0)}, would update {report.get('would_update', 0)}, "
        f"unchanged {report.get('unchanged', 0)}, would fail {report.get('would_fail', 0)}, "
        f"conflicts {report.get('conflicts', 0)}",
    ]
    for reason in report.get("fail_reasons", []):
        lines.append(f"  fails ({reason['count']}): {reason['reason']}")
    if report.get("field_changes"):
        lines.append("  changes per field: " + ", ".join(f"{field} {count}" for field, count in report["field_changes"].items()))
    estimate = report.get("estimate") or {}
    if estimate:
        took = estimate.get("duration_seconds")
        lines.append(f"  a sync would make about {estimate.get('store_requests', 0)} store requests"
                     + (f" and take about {took} s" if took is not None else ""))
    for sample in report.get("samples", []):
        lines.append(f"  {sample['action']} {sample['woo_customer_id']} <{sample['email']}>:")
        for field, (old, new) in sample["changes"].items():
            lines.append(f"      {field}: {old!r} -> {new!r}")
    if status.get("conflict_count"):
        lines.append(f"  conflicts: GET /api/v1/sync/queues/{status['id']}/conflicts")
    return "\n".join(lines)
