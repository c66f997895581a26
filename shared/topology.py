"""RabbitMQ names and the topology every service declares (docs/contract.md section 3), in one place.

Flow of a customer line:

    producer ──> woosync.lines (direct, key "customer_line") ──> woosync.customer_lines (quorum)
    consumer, transient failure: publish to woosync.retry with key "delay.<ms>" ──> the delay queue
        woosync.customer_lines.delay.<ms> (TTL <ms>) ──dead-letters to──> woosync.lines ──> work queue
    consumer, attempts exhausted, or the broker past x-delivery-limit:
        ──> woosync.dead (direct, key "customer_line") ──> woosync.customer_lines.dead (kept, bounded)
                                                     └──> woosync.customer_lines.dead.audit (marks lines failed)

Sync requests: woosync.requests (topic, "sync.#") ──> woosync.sync_requests (quorum) ──> producer;
    refused, failed, or past x-delivery-limit ──> woosync.dead (key "sync_request")
        ──> woosync.sync_requests.dead (kept, bounded; credentials removed by the producer)

Attempts are counted in the application header `woosync-attempt` and the message is
republished to a delay queue, then acked: no TTL loop back into the work queue (which the
broker's cycle detection can drop), no reliance on client-set x-death headers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Exchanges
REQUESTS_EXCHANGE = "woosync.requests"
LINES_EXCHANGE = "woosync.lines"
RETRY_EXCHANGE = "woosync.retry"
DEAD_EXCHANGE = "woosync.dead"

# Queues
SYNC_REQUESTS_QUEUE = "woosync.sync_requests"
SYNC_REQUESTS_DEAD_QUEUE = "woosync.sync_requests.dead"
CUSTOMER_LINES_QUEUE = "woosync.customer_lines"
CUSTOMER_LINES_DEAD_QUEUE = "woosync.customer_lines.dead"
CUSTOMER_LINES_DEAD_AUDIT_QUEUE = "woosync.customer_lines.dead.audit"

# Routing keys
SYNC_REQUEST_BINDING = "sync.#"
SYNC_CUSTOMERS_ROUTING_KEY = "sync.customers"
CUSTOMER_LINE_ROUTING_KEY = "customer_line"
DEAD_SYNC_REQUEST_ROUTING_KEY = "sync_request"

# Application headers
ATTEMPT_HEADER = "woosync-attempt"
ERROR_HEADER = "woosync-error"
DEAD_REASON_HEADER = "woosync-dead-reason"
# On a dead-lettered sync request: what was done to its body (credentials removed, or dropped).
BODY_HEADER = "woosync-body"

# The broker's safety net for a message that keeps killing its consumer (each crash is a
# redelivery); distinct from the application's WOOSYNC_MAX_ATTEMPTS, which counts tries that
# ended in a retryable error.
CUSTOMER_LINES_DELIVERY_LIMIT = 5
# The same net under sync requests: a limit of N allows N + 1 deliveries; the producer
# dead-letters the last one itself, credentials removed, rather than try it (docs/contract.md section 3).
SYNC_REQUESTS_DELIVERY_LIMIT = 5


def delay_queue_name(delay_ms: int) -> str:
    return f"woosync.customer_lines.delay.{delay_ms}ms"


def delay_routing_key(delay_ms: int) -> str:
    return f"delay.{delay_ms}ms"


def retry_delay_ms(base_delay_ms: int, attempt: int) -> int:
    """Delay before try number `attempt + 1`: base, 2x base, 4x base, ... capped at 5 minutes.

    Delays are few and fixed (one queue each), so queues are shared by every consumer."""
    return min(base_delay_ms * (2 ** max(attempt - 1, 0)), 300_000)


# Delays of a line whose store is held (it said slow down): the line waits without spending a
# try (docs/contract.md section 3). A few fixed delays, so a few shared delay queues.
HOLD_DELAYS_MS = (1_000, 5_000, 15_000, 60_000, 300_000)


def hold_delay_ms(held_for_s: float) -> int:
    """The shortest hold delay that covers `held_for_s` (the longest one past them all)."""
    wanted = held_for_s * 1000
    return next((delay for delay in HOLD_DELAYS_MS if delay >= wanted), HOLD_DELAYS_MS[-1])


@dataclass(frozen=True)
class QueueSpec:
    name: str
    arguments: dict[str, object] = field(default_factory=dict)
    bindings: tuple[tuple[str, str], ...] = ()  # (exchange, routing key)


@dataclass(frozen=True)
class Topology:
    exchanges: tuple[tuple[str, str], ...]  # (name, type)
    queues: tuple[QueueSpec, ...]


def build_topology(*, dead_letter_ttl_ms: int, dead_letter_max_length: int, dead_letter_max_bytes: int,
                   retry_delays_ms: tuple[int, ...]) -> Topology:
    dead_bounds = {"x-message-ttl": dead_letter_ttl_ms, "x-max-length": dead_letter_max_length,
                   "x-max-length-bytes": dead_letter_max_bytes}
    queues = [
        QueueSpec(
            SYNC_REQUESTS_QUEUE,
            {
                "x-queue-type": "quorum",
                "x-delivery-limit": SYNC_REQUESTS_DELIVERY_LIMIT,
                "x-dead-letter-exchange": DEAD_EXCHANGE,
                "x-dead-letter-routing-key": DEAD_SYNC_REQUEST_ROUTING_KEY,
                # Broker-side dead-lettering (delivery limit) must not lose the request.
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
            },
            ((REQUESTS_EXCHANGE, SYNC_REQUEST_BINDING),),
        ),
        QueueSpec(SYNC_REQUESTS_DEAD_QUEUE, dict(dead_bounds), ((DEAD_EXCHANGE, DEAD_SYNC_REQUEST_ROUTING_KEY),)),
        QueueSpec(
            CUSTOMER_LINES_QUEUE,
            {
                "x-queue-type": "quorum",
                "x-delivery-limit": CUSTOMER_LINES_DELIVERY_LIMIT,
                "x-dead-letter-exchange": DEAD_EXCHANGE,
                "x-dead-letter-routing-key": CUSTOMER_LINE_ROUTING_KEY,
                # Broker-side dead-lettering (delivery limit) must not lose the message.
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
            },
            ((LINES_EXCHANGE, CUSTOMER_LINE_ROUTING_KEY),),
        ),
        QueueSpec(CUSTOMER_LINES_DEAD_QUEUE, dict(dead_bounds), ((DEAD_EXCHANGE, CUSTOMER_LINE_ROUTING_KEY),)),
        QueueSpec(CUSTOMER_LINES_DEAD_AUDIT_QUEUE, {}, ((DEAD_EXCHANGE, CUSTOMER_LINE_ROUTING_KEY),)),
    ]
    for delay in sorted(set(retry_delays_ms) | set(HOLD_DELAYS_MS)):
        queues.append(
            QueueSpec(
                delay_queue_name(delay),
                {
                    "x-message-ttl": delay,
                    "x-dead-letter-exchange": LINES_EXCHANGE,
                    "x-dead-letter-routing-key": CUSTOMER_LINE_ROUTING_KEY,
                },
                ((RETRY_EXCHANGE, delay_routing_key(delay)),),
            )
        )
    return Topology(
        exchanges=(
            (REQUESTS_EXCHANGE, "topic"),
            (LINES_EXCHANGE, "direct"),
            (RETRY_EXCHANGE, "direct"),
            (DEAD_EXCHANGE, "direct"),
        ),
        queues=tuple(queues),
    )
