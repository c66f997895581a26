"""Property-based fuzzing of the status API from its own OpenAPI document (schemathesis): with
a valid token, generated valid and invalid requests never get a 5xx, every answer matches the
documented status codes, content types and schemas, valid requests are accepted and invalid
ones rejected."""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from services.status.openapi import openapi_document
from shared.organizations import mint_token, token_digest
from shared.settings import Settings
from tests.integration.status_harness import LiveStatusServer, a_queue, an_organization

pytestmark = pytest.mark.integration

# Bounded for the suite (< 90 s on a 2-core machine); explore harder with
# WOOSYNC_FUZZ_EXAMPLES=500 WOOSYNC_FUZZ_RANDOM=1 (a fixed seed otherwise, so CI is repeatable).
EXAMPLES_PER_OPERATION = int(os.environ.get("WOOSYNC_FUZZ_EXAMPLES", "30"))
DERANDOMIZE = os.environ.get("WOOSYNC_FUZZ_RANDOM") != "1"

# Known when the tests are generated, registered for the organisation when the server starts.
# Given as the schema's bearerAuth credentials, so that schemathesis can still send requests
# without it (negative tests of authentication) and judge the answers knowing that.
FUZZ_TOKEN = mint_token()

# The document is the one the service serves (GET /openapi.json; test_status_api checks that
# route). The event stream of a live queue runs until its sync ends: it has its own tests.
schema = schemathesis.openapi.from_dict(
    openapi_document(),
    config=schemathesis.Config.from_dict({"auth": {"openapi": {"bearerAuth": {"bearer": FUZZ_TOKEN}}}}),
).exclude(path="/api/v1/sync/queues/{queue_id}/events")


async def _register_fuzz_token(pool, org_id) -> None:
    await pool.execute(
        "INSERT INTO api_token (org_id, token_hash, token_prefix, label) VALUES ($1, $2, $3, 'fuzz')",
        org_id, token_digest(FUZZ_TOKEN), FUZZ_TOKEN[:12],
    )


@pytest.fixture
def live_api(database_url, amqp_url):
    # The limits per organisation have their own tests (test_status_limits): generated requests
    # start syncs far faster, and leave far more open, than the defaults allow.
    unlimited = Settings(org_sync_start_rate=0, org_max_open_syncs=100_000)
    with LiveStatusServer(database_url, amqp_url, settings=unlimited) as server:
        org_id, _ = server.run(an_organization(server.pool))
        server.run(_register_fuzz_token(server.pool, org_id))
        # Real rows, so that list routes answer with items to check against the schema.
        server.run(a_queue(server.pool, org_id, lines=3))
        yield server


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck), derandomize=DERANDOMIZE)
def test_generated_requests_never_break_the_api(case, live_api) -> None:
    case.call_and_validate(base_url=live_api.base_url, timeout=10)
