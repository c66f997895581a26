"""Prometheus metrics (docs/contract.md section 8). Each service builds one `Metrics` on its own registry in
its composition root and passes it down; labels stay low-cardinality (never an id or email)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LINE_OUTCOMES = ("done", "failed", "retried", "dead_lettered", "cancelled")

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.lines_processed = Counter(
            "woosync_lines_processed", "Customer lines by outcome", ["outcome"], registry=r
        )
        for outcome in LINE_OUTCOMES:
            self.lines_processed.labels(outcome)
        self.line_processing_seconds = Histogram(
            "woosync_line_processing_seconds",
            "Time from a line's delivery to its committed outcome",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.woocommerce_requests = Counter(
            "woosync_woocommerce_requests",
            "WooCommerce REST requests by endpoint and HTTP status (or 'error' with no answer)",
            ["endpoint", "status"],
            registry=r,
        )
        self.woocommerce_request_seconds = Histogram(
            "woosync_woocommerce_request_seconds",
            "WooCommerce REST request latency",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        # The fleet's request budget per store (shared/woocommerce/budget.py): no store label, the
        # status API names the held stores (docs/contract.md section 8).
        self.store_budget_wait_seconds = Histogram(
            "woosync_store_budget_wait_seconds",
            "Time a WooCommerce request waited for its slot of the store's request budget (holds included)",
            buckets=(0, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900),
            registry=r,
        )
        self.store_holds = Counter(
            "woosync_store_holds",
            "Times a store said slow down (429, or 503 with Retry-After) and the fleet held it",
            registry=r,
        )
        self.lines_held = Counter(
            "woosync_lines_held",
            "Customer lines delayed because their store was held (no try spent)",
            registry=r,
        )
        self.customers_published = Counter(
            "woosync_customers_published", "Customer lines published by the producer", registry=r
        )
        self.sync_requests = Counter(
            "woosync_sync_requests", "Sync requests handled by the producer, by outcome", ["outcome"], registry=r
        )
        self.queue_lines = Gauge(
            "woosync_queue_lines", "Lines of unfinished sync queues, by state", ["state"], registry=r
        )
        # Freshness of the stores kept current by incremental sweeps (status service, on scrape; no
        # store label: GET /api/v1/sync/stores names them).
        self.sweep_oldest_age = Gauge(
            "woosync_sweep_oldest_age_seconds",
            "Seconds since the last completed sweep of the store swept longest ago, among stores with an "
            "enabled incremental schedule (0 when there is none)",
            registry=r,
        )
        self.sweeps_overdue = Gauge(
            "woosync_sweeps_overdue_stores",
            "Stores with an enabled incremental schedule whose last completed sweep is older than twice the "
            "schedule's interval (and 10 minutes)",
            registry=r,
        )
        self.conflicts = Counter(
            "woosync_conflicts",
            "Fields edited locally that the store says otherwise, by resolution (kept_local, store_written; "
            "a preview's count what a sync would do)",
            ["resolution"],
            registry=r,
        )
        for resolution in ("kept_local", "store_written"):
            self.conflicts.labels(resolution)
        self.batch_size = Histogram(
            "woosync_consumer_batch_size",
            "Customer lines committed per consumer micro-batch",
            buckets=(1, 2, 5, 10, 25, 50, 100, 200, 500),
            registry=r,
        )
        self.deliveries = Counter(
            "woosync_consumer_deliveries", "Messages delivered to this consumer", registry=r
        )
        self.http_requests = Counter(
            "woosync_http_requests", "Status API requests by route and status", ["route", "method", "status"], registry=r
        )
        self.http_request_seconds = Histogram(
            "woosync_http_request_seconds", "Status API latency by route", ["route"], buckets=_LATENCY_BUCKETS, registry=r
        )

    def observe_woocommerce(self, endpoint: str, status: int | str, seconds: float) -> None:
        self.woocommerce_requests.labels(endpoint, str(status)).inc()
        self.woocommerce_request_seconds.labels(endpoint).observe(seconds)
