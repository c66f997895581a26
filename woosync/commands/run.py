"""`woosync run producer|consumer|status|webhooks`: one service in the foreground until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import importlib

from shared.settings import Settings

SERVICES = {
    "producer": "services.producer.main",
    "consumer": "services.consumer.main",
    "status": "services.status.main",
    "webhooks": "services.webhooks.main",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    services = parser.add_subparsers(dest="service", metavar="SERVICE", required=True)
    services.add_parser(
        "producer",
        help="consume sync requests, page the store, publish one message per customer line",
        description="Consume woosync.sync_requests, page each store's customers, record one queue line "
        "per customer and publish it to woosync.lines. Metrics, /healthz and /readyz on "
        "WOOSYNC_METRICS_PORT (default 9101).",
    )
    services.add_parser(
        "consumer",
        help="process customer lines: fetch orders, map, upsert, ack (run as many as you like)",
        description="Consume woosync.customer_lines: fetch each customer's orders, compute lifetime value "
        "and segment, upsert the customer, and ack; retry transient failures with a delay and "
        "dead-letter after WOOSYNC_MAX_ATTEMPTS. Metrics, /healthz and /readyz on "
        "WOOSYNC_METRICS_PORT (default 9102).",
    )
    status = services.add_parser(
        "status",
        help="serve sync progress over HTTP: JSON, Server-Sent Events, Prometheus",
        description="The status HTTP API (docs/contract.md section 7), /metrics, /healthz and /readyz. "
        "What one client may cost it is bounded by WOOSYNC_HTTP_MAX_HEADER_BYTES, WOOSYNC_HTTP_MAX_HEADERS, "
        "WOOSYNC_HTTP_HEADER_TIMEOUT_S, WOOSYNC_HTTP_KEEP_ALIVE_S and WOOSYNC_HTTP_MAX_CONNECTIONS.",
    )
    status.add_argument("--host", default="0.0.0.0", help="address to listen on (default: %(default)s)")
    status.add_argument("--port", type=int, default=8080, help="port to listen on (default: %(default)s)")
    webhooks = services.add_parser(
        "webhooks",
        help="take signed WooCommerce webhook deliveries and sync the customers they name",
        description="The one service meant to face the internet (docs/contract.md section 10): verifies each "
        "delivery's X-WC-Webhook-Signature, answers the store's ping, and turns customer.* and order.* deliveries "
        "into one-customer syncs. Limits: WOOSYNC_WEBHOOKS_MAX_BODY_BYTES, WOOSYNC_WEBHOOKS_STORE_RATE/_BURST and "
        "the WOOSYNC_HTTP_* limits. Metrics, /healthz and /readyz on WOOSYNC_METRICS_PORT (default 9103).",
    )
    webhooks.add_argument("--host", default="0.0.0.0", help="address to listen on (default: %(default)s)")
    webhooks.add_argument("--port", type=int, default=None,
                          help="port to listen on (default: $WOOSYNC_WEBHOOKS_PORT or 8081)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    service = importlib.import_module(SERVICES[args.service])
    return service.main(settings, args)
