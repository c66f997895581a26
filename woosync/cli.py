"""`woosync`: one console script for every part of the system (docs/contract.md section 1).

Exit codes: 0 success, 1 the work failed (e.g. a sync ended failed/partial), 2 usage or
configuration error (argparse's own convention, kept for every command).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from woosync import __version__

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

# sub-command -> module implementing add_arguments(parser) and run(args, settings) -> int.
# Imported lazily: `woosync --help` must not pay for (or fail on) every service's imports.
COMMANDS: dict[str, tuple[str, str]] = {
    "migrate": ("woosync.commands.migrate", "create the database if missing and apply sql/ migrations"),
    "org": ("woosync.commands.org", "manage organisations, their API tokens and the broker users that publish for them"),
    "secrets": ("woosync.commands.secrets", "encrypt stored store credentials with the newest WOOSYNC_SECRET_KEY"),
    "run": ("woosync.commands.run", "run a service in the foreground: producer, consumer, status or webhooks"),
    "sync": ("woosync.commands.sync", "start, watch, retry or cancel a sync"),
    "webhooks": ("woosync.commands.webhooks", "install, inspect or remove the WooCommerce webhooks of a store"),
    "job": ("woosync.commands.job", "start, follow, retry or cancel one sync job over several stores"),
    "schedule": ("woosync.commands.schedule", "set, list or delete a store's periodic incremental sweep and full sync"),
    "prune": ("woosync.commands.prune", "delete finished sync queues older than N days (retention), or show the "
                                        "producers' retention schedule"),
    "demo": ("woosync.commands.demo", "run the whole system on this machine against a simulated store"),
    "bench": ("woosync.commands.bench", "benchmark a full sync through the real processes"),
}
# Commands that parse their own arguments.
PASSTHROUGH: dict[str, tuple[str, str]] = {
    "simulator": ("woosync.simulator.cli", "serve a simulated WooCommerce store (REST API v3)"),
}


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """The parser; only the selected command's module is imported to add its options."""
    parser = argparse.ArgumentParser(
        prog="woosync",
        description="Keep a Postgres customer table in step with WooCommerce stores, over RabbitMQ.",
        epilog="Configuration comes from WOOSYNC_* environment variables (see the README). "
        "Run 'woosync COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"woosync {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text[:1].upper() + help_text[1:] + ".")
        sub.set_defaults(module=module_name)
        if name == selected:
            importlib.import_module(module_name).add_arguments(sub)
    for name, (module_name, help_text) in PASSTHROUGH.items():
        sub = commands.add_parser(name, help=help_text, add_help=False)
        sub.add_argument("passthrough", nargs=argparse.REMAINDER)
        sub.set_defaults(module=module_name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in PASSTHROUGH:
        return importlib.import_module(PASSTHROUGH[argv[0]][0]).main(argv[1:])

    selected = next((arg for arg in argv if not arg.startswith("-")), None)
    args = build_parser(selected).parse_args(argv)

    from shared.settings import SettingsError, load_settings

    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"woosync: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return importlib.import_module(args.module).run(args, settings)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
