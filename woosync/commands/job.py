"""`woosync job start|status|pause|resume|retry|cancel`: sync jobs over several stores, through
the status API (docs/contract.md section 7).

- `start` creates one job over the stores of a JSON file (`--stores-file`, a list of
  {url, consumer_key, consumer_secret}; `-` reads stdin, so secrets stay out of the shell
  history) or over every store the organisation has synced (`--all-stores`), and prints its id.
- `status` (and `start --wait`) follows the job until it ends, one line per change.
- `pause`, `resume`, `retry` and `cancel` act on every queue of the job and print the job.

Exit codes, as `woosync sync`: 0 the job is done (or the action succeeded), 1 it ended failed,
partial or cancelled, 2 usage errors: bad arguments, unknown job, missing or refused token,
status API unreachable.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from shared.states import TERMINAL_QUEUE_STATES
from woosync.commands.sync import EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError, _api

if TYPE_CHECKING:
    from shared.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="job_action", metavar="ACTION", required=True)

    def api_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--api-url", default=None, help="status API (default: $WOOSYNC_API_URL or http://127.0.0.1:8080)")
        sub.add_argument("--token", default=None, help="API token (default: $WOOSYNC_API_TOKEN; prefer the variable)")
        sub.add_argument("--json", action="store_true", help="print the job as one JSON object on stdout")

    start = actions.add_parser("start", help="start one sync job over several stores and print its id")
    which = start.add_mutually_exclusive_group(required=True)
    which.add_argument("--stores-file", metavar="FILE",
                       help="JSON list of {url, consumer_key, consumer_secret}, one per store ('-': stdin)")
    which.add_argument("--all-stores", action="store_true", help="every store the organisation has synced")
    start.add_argument("--idempotency-key", default=None, help="the same organisation and key always map to the same job")
    start.add_argument("--email", default=None, help="sync only the customer with this email")
    start.add_argument("--customer-id", type=int, default=None, help="sync only this WooCommerce customer id")
    start.add_argument("--limit", type=int, default=None, help="sync at most this many customers per store")
    start.add_argument("--role", default="all", help="WooCommerce role filter (default: %(default)s)")
    start.add_argument("--requested-by", default=None, help="free text recorded with the job's syncs")
    start.add_argument("--wait", action="store_true", help="then follow the job until it ends")
    api_options(start)

    status = actions.add_parser("status", help="follow a job until it ends (one line per change)")
    status.add_argument("job_id", metavar="JOB_ID")
    status.add_argument("--once", action="store_true", help="print the current status and exit")
    status.add_argument("--interval", type=float, default=2.0, metavar="SECONDS", help="seconds between reads (default: 2)")
    api_options(status)

    for name, help_text in (("pause", "pause every queue of a job that has not ended"),
                            ("resume", "resume every paused queue of a job"),
                            ("retry", "retry the failed lines of every queue of a job"),
                            ("cancel", "cancel every queue of a job that has not ended")):
        sub = actions.add_parser(name, help=help_text)
        sub.add_argument("job_id", metavar="JOB_ID")
        sub.add_argument("--requested-by", default=None, help="free text recorded in the activity log")
        api_options(sub)


def run(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    from woosync.sync_client import ApiProblem

    try:
        return asyncio.run(_dispatch(args))
    except UsageError as exc:
        print(f"woosync job: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ApiProblem as exc:
        print(f"woosync job: {exc}", file=sys.stderr)
        return exc.exit_code


async def _dispatch(args: argparse.Namespace) -> int:
    body = _start_body(args) if args.job_action == "start" else None
    job_id = None if body is not None else _job_id(args.job_id)
    api = _api(args)
    try:
        if body is not None:
            job = await api._call("POST", "/api/v1/sync/jobs", body)
            if not args.wait:
                _print(job, as_json=args.json)
                return EXIT_OK
            if not args.json:
                print(f"job {job['id']} started over {job['store_count']} store(s)")
            return await _follow(api, job["id"], as_json=args.json, interval=2.0)
        assert job_id is not None
        if args.job_action == "status":
            if args.once:
                job = await api._call("GET", f"/api/v1/sync/jobs/{job_id}")
                _print(job, as_json=args.json)
                return _exit_for(job) if job["state"] in TERMINAL_QUEUE_STATES else EXIT_OK
            return await _follow(api, job_id, as_json=args.json, interval=args.interval)
        result = await api._call("POST", f"/api/v1/sync/jobs/{job_id}/{args.job_action}", {"requested_by": args.requested_by})
        if args.job_action == "retry":
            if args.json:
                print(json.dumps(result))
            else:
                print(f"job {job_id}: {result['retried']} failed line(s) back to draft and re-published; "
                      f"state {result['job']['state']}")
        else:
            _print(result, as_json=args.json)
        return EXIT_OK
    finally:
        await api.aclose()


async def _follow(api: Any, job_id: str, *, as_json: bool, interval: float) -> int:
    import asyncio

    last = None
    while True:
        job = await api._call("GET", f"/api/v1/sync/jobs/{job_id}")
        line = describe(job)
        if line != last and not as_json:
            print(line, flush=True)
            last = line
        if job["state"] in TERMINAL_QUEUE_STATES:
            if as_json:
                print(json.dumps(job))
            return _exit_for(job)
        await asyncio.sleep(interval)


def describe(job: dict[str, Any]) -> str:
    stores = ", ".join(f"{queue['store_url']} {queue['state']}" for queue in job["queues"])
    return (f"job {job['id']}: {job['state']} {job['progress']}% ({job['done_count']} done, {job['failed_count']} failed, "
            f"{job['cancelled_count']} cancelled of {job['total_count']}) [{stores}]")


def _print(job: dict[str, Any], *, as_json: bool) -> None:
    print(json.dumps(job) if as_json else describe(job))


def _exit_for(job: dict[str, Any]) -> int:
    return EXIT_OK if job["state"] == "done" else EXIT_FAILED


def _job_id(raw: str) -> str:
    from uuid import UUID

    try:
        return str(UUID(raw))
    except ValueError:
        raise UsageError(f"JOB_ID must be a UUID, got {raw!r}") from None


def _start_body(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {"role": args.role}
    for name, value in (("email", args.email), ("woo_customer_id", args.customer_id), ("limit", args.limit)):
        if value is not None:
            options[name] = value
    body: dict[str, Any] = {"options": options, "idempotency_key": args.idempotency_key, "requested_by": args.requested_by}
    if args.all_stores:
        return {**body, "stores": "all"}
    try:
        raw = sys.stdin.read() if args.stores_file == "-" else open(args.stores_file, encoding="utf-8").read()
        stores = json.loads(raw)
    except OSError as exc:
        raise UsageError(f"cannot read --stores-file {args.stores_file}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"--stores-file {args.stores_file} is not JSON: {exc}") from None
    if not isinstance(stores, list) or not stores:
        raise UsageError("--stores-file must hold a non-empty JSON list of {url, consumer_key, consumer_secret}")
    return {**body, "stores": stores}
