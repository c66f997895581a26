"""The topology of docs/contract.md section 3 as declared: the requests queue has the broker's
delivery limit as a last safety net, and every dead-letter queue is bounded by bytes as well as
by count and age."""

from __future__ import annotations

import pytest

from shared import amqp, topology
from shared.settings import Settings

pytestmark = pytest.mark.unit


def queues(**settings) -> dict[str, dict[str, object]]:
    plan = amqp.topology_for(Settings(_env_file=None, **settings))
    return {spec.name: spec.arguments for spec in plan.queues}


def test_the_sync_requests_queue_is_a_quorum_queue_that_dead_letters_past_its_delivery_limit():
    arguments = queues()[topology.SYNC_REQUESTS_QUEUE]
    assert arguments == {
        "x-queue-type": "quorum",
        "x-delivery-limit": topology.SYNC_REQUESTS_DELIVERY_LIMIT,
        "x-dead-letter-exchange": topology.DEAD_EXCHANGE,
        "x-dead-letter-routing-key": topology.DEAD_SYNC_REQUEST_ROUTING_KEY,
        "x-dead-letter-strategy": "at-least-once",
        "x-overflow": "reject-publish",
    }
    assert topology.SYNC_REQUESTS_DELIVERY_LIMIT == 5


def test_dead_letter_queues_are_capped_by_bytes_count_and_age():
    declared = queues(dead_letter_max_bytes=5_000_000, dead_letter_max_length=10, dead_letter_ttl_hours=2)
    for name in (topology.SYNC_REQUESTS_DEAD_QUEUE, topology.CUSTOMER_LINES_DEAD_QUEUE):
        assert declared[name] == {"x-max-length-bytes": 5_000_000, "x-max-length": 10, "x-message-ttl": 7_200_000}


def test_the_dead_letter_byte_cap_defaults_to_one_gibibyte():
    assert Settings(_env_file=None).dead_letter_max_bytes == 1024**3
    assert queues()[topology.SYNC_REQUESTS_DEAD_QUEUE]["x-max-length-bytes"] == 1024**3
