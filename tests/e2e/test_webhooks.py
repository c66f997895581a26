"""Webhooks through the real processes (docs/contract.md section 10): `woosync webhooks install`
against the simulator, the simulator delivering as a WooCommerce store does, and `woosync run
webhooks` turning deliveries into one-customer syncs that the producer and a consumer carry into
Postgres; deliveries that must change nothing, and the genuine deliveries of a real store."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from cryptography.fernet import Fernet

from shared.credentials import CredentialsCipher
from shared.repository import webhooks as webhook_rows
from shared.woocommerce import webhooks as wc
from shared.woocommerce.client import WooCommerceClient
from shared.woocommerce.credentials import StoreCredentials
from tests.waiting import eventually
from woosync.simulator import rest
from woosync.stack import LOCAL_STORE_NETWORKS, free_port

pytestmark = pytest.mark.e2e

FIXTURES = Path(__file__).parent.parent / "fixtures" / "woocommerce-fixtures" / "webhooks"
MAX_BODY = 16_384


@dataclass
class Hooked:
    pipeline: Any
    key: str
    webhooks_url: str
    webhooks: Any  # the service's Process

    @property
    def cipher(self) -> CredentialsCipher:
        return CredentialsCipher([self.key])

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**self.pipeline.stack.env, "WOOSYNC_STORE_CONSUMER_KEY": "ck_test",
               "WOOSYNC_STORE_CONSUMER_SECRET": "cs_test"}
        return subprocess.run([sys.executable, "-m", "woosync", "webhooks", *args, "--org", str(self.pipeline.org_id),
                               "--url", self.pipeline.store_url, "--json"],
                              env=env, capture_output=True, text=True, timeout=60)

    async def install(self) -> dict[str, Any]:
        done = await asyncio.to_thread(self.cli, "install", "--public-url", self.webhooks_url)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def store_webhooks(self) -> Any:
        client = WooCommerceClient(StoreCredentials(self.pipeline.store_url, "ck_test", "cs_test"),
                                   allowed_networks=_networks())
        return client, wc.StoreWebhooks(client)

    async def store_id(self) -> UUID:
        return await webhook_rows.find_store(self.pipeline.pool, self.pipeline.org_id, self.pipeline.store_url)

    async def endpoint(self, topic: str) -> webhook_rows.WebhookEndpoint:
        token = await webhook_rows.path_token_of(self.pipeline.pool, await self.store_id())
        return await webhook_rows.endpoint_for(self.pipeline.pool, token, topic, cipher=self.cipher)

    async def delivery_url(self) -> str:
        token = await webhook_rows.path_token_of(self.pipeline.pool, await self.store_id())
        return f"{self.webhooks_url}/woocommerce/{token}"


def _networks():
    from shared.woocommerce.store_addresses import parse_networks

    return parse_networks(LOCAL_STORE_NETWORKS)


@pytest.fixture
async def hooked(pipeline) -> AsyncIterator[Hooked]:
    key = Fernet.generate_key().decode()
    pipeline.stack.env["WOOSYNC_SECRET_KEY"] = key
    pipeline.simulator(customers=40, seed=5)
    port = free_port()
    webhooks = pipeline.stack.start("webhooks", ["run", "webhooks", "--host", "127.0.0.1", "--port", str(port)],
                                    WOOSYNC_WEBHOOKS_MAX_BODY_BYTES=str(MAX_BODY))
    webhooks.wait_for(r"webhooks service on http://", 60)
    pipeline.producer()
    pipeline.consumer()
    yield Hooked(pipeline, key, f"http://127.0.0.1:{port}", webhooks)


async def _customer_row(pipeline, woo_id: int) -> dict | None:
    row = await pipeline.pool.fetchrow(
        "SELECT * FROM customer WHERE org_id = $1 AND woo_store_url = $2 AND woo_customer_id = $3",
        pipeline.org_id, pipeline.store_url, woo_id)
    return dict(row) if row else None


async def _count(pipeline, table: str) -> int:
    return await pipeline.pool.fetchval(f"SELECT count(*) FROM {table}")


async def test_install_registers_the_seven_topics_and_again_repairs_a_disabled_and_a_deleted_one(hooked):
    report = await hooked.install()
    assert [(row["topic"], row["action"]) for row in report["webhooks"]] == [(t, "created") for t in wc.TOPICS]
    client, store = hooked.store_webhooks()
    async with client:
        at_store = {hook.topic: hook for hook in await store.list()}
        assert sorted(at_store) == sorted(wc.TOPICS)
        url = await hooked.delivery_url()
        assert {(hook.status, hook.delivery_url) for hook in at_store.values()} == {("active", url)}
        # Each creation pinged the service, which answered 200 (a failed ping would not show here).
        await eventually(lambda: hooked.webhooks.log().count('"200 POST /woocommerce/') >= 7 or
                         hooked.webhooks.log().count(": ping") >= 7, what="seven pings answered")

        await store.update(at_store["order.updated"].id, status="disabled")
        await store.delete(at_store["customer.created"].id)
        again = await hooked.install()
        actions = {row["topic"]: (row["action"], row["status_at_store"]) for row in again["webhooks"]}
        assert actions["order.updated"] == ("repaired", "disabled")
        assert actions["customer.created"] == ("created", "missing")
        assert {topic for topic, (action, _) in actions.items() if action == "ok"} == \
            set(wc.TOPICS) - {"order.updated", "customer.created"}
        repaired = {hook.topic: hook for hook in await store.list()}
        assert sorted(repaired) == sorted(wc.TOPICS)
        assert {hook.status for hook in repaired.values()} == {"active"}

    status = await asyncio.to_thread(hooked.cli, "status")
    assert status.returncode == 0, status.stderr
    assert {row["status_at_store"] for row in json.loads(status.stdout)["webhooks"]} == {"active"}


async def test_a_signed_delivery_for_a_changed_customer_puts_the_change_in_postgres(hooked):
    pipeline = hooked.pipeline
    await hooked.install()
    async with httpx.AsyncClient(base_url=pipeline.store_url) as simulator:
        answer = await simulator.post("/__simulator/customers/7", json={"first_name": "Webhooked",
                                                                         "email": "webhooked.7@example.com"})
    assert answer.status_code == 200 and answer.json()["deliveries"][0]["status"] == 200

    async def changed():
        row = await _customer_row(pipeline, 7)
        return row if row and row["email"] == "webhooked.7@example.com" else None

    row = await eventually(changed, timeout=30, what="customer 7 changed in Postgres")
    assert row["name"].startswith("Webhooked")

    # Deleted in the store: the row is marked and kept, and the activity log says so.
    async with httpx.AsyncClient(base_url=pipeline.store_url) as simulator:
        answer = await simulator.delete("/__simulator/customers/7")
    assert answer.json()["deliveries"][0]["status"] == 200
    marked = await _customer_row(pipeline, 7)
    assert marked is not None and marked["metadata"]["woo_deleted"]["by"] == "webhook customer.deleted"
    activity = await pipeline.pool.fetchrow(
        "SELECT * FROM woo_sync_activity WHERE org_id = $1 AND activity_type = 'customer_deleted_in_store'",
        pipeline.org_id)
    assert activity is not None and activity["details"]["woo_customer_id"] == 7


async def test_unsigned_forged_altered_replayed_oversized_and_unknown_store_deliveries_change_nothing(hooked):
    pipeline = hooked.pipeline
    await hooked.install()
    endpoint = await hooked.endpoint("customer.updated")
    url = await hooked.delivery_url()
    body = rest.wp_json({"id": 9, "email": "someone@example.com", "first_name": "X"})
    delivery_id = "0123456789abcdef0123456789abcdef"

    def headers(signed_body: bytes, *, secret: str = endpoint.secret, delivery: str = delivery_id) -> dict[str, str]:
        return {"Content-Type": "application/json", "X-WC-Webhook-Topic": "customer.updated",
                "X-WC-Webhook-Resource": "customer", "X-WC-Webhook-Event": "updated",
                "X-WC-Webhook-Signature": wc.signature(signed_body, secret), "X-WC-Webhook-ID": "2",
                "X-WC-Webhook-Delivery-ID": delivery}

    async with httpx.AsyncClient(timeout=10) as http:
        accepted = await http.post(url, content=body, headers=headers(body))
        assert accepted.status_code == 200
        await eventually(lambda: _customer_row(pipeline, 9), what="customer 9 synced")
        queues, deliveries = await _count(pipeline, "woo_customer_sync_queue"), await _count(pipeline, "webhook_delivery")

        unsigned = {k: v for k, v in headers(body).items() if k != "X-WC-Webhook-Signature"}
        big = rest.wp_json({"id": 9, "note": "x" * MAX_BODY})
        answers = {
            "missing signature": await http.post(url, content=body, headers=unsigned),
            "wrong signature": await http.post(url, content=body, headers=headers(body, secret="not the secret")),
            "body changed after signing": await http.post(url, content=body.replace(b"X", b"Y"), headers=headers(body)),
            "replayed delivery": await http.post(url, content=body, headers=headers(body)),
            "body over the size limit": await http.post(url, content=big, headers=headers(big)),
            "unknown store": await http.post(f"{hooked.webhooks_url}/woocommerce/{'A' * 43}", content=body,
                                             headers=headers(body)),
        }
        assert {name: answer.status_code for name, answer in answers.items()} == {
            "missing signature": 401, "wrong signature": 401, "body changed after signing": 401,
            "replayed delivery": 200, "body over the size limit": 413, "unknown store": 404}
        assert answers["replayed delivery"].text.strip() == "ok"

        # A last good delivery is the barrier: once its sync is recorded, anything the refused
        # ones had published would have been recorded before it.
        barrier = rest.wp_json({"id": 11})
        assert (await http.post(url, content=barrier, headers=headers(barrier, delivery="f" * 32))).status_code == 200
        await eventually(lambda: _customer_row(pipeline, 11), what="customer 11 synced")
    assert await _count(pipeline, "woo_customer_sync_queue") == queues + 1
    assert await _count(pipeline, "webhook_delivery") == deliveries + 1
    log = hooked.webhooks.log()
    assert "someone@example.com" not in log and "x" * 100 not in log  # refused bodies are never logged


async def test_the_genuine_deliveries_of_a_real_store_verify_with_their_fixture_secrets(hooked):
    pipeline = hooked.pipeline
    await hooked.install()
    store_id = await hooked.store_id()
    token = await webhook_rows.path_token_of(pipeline.pool, store_id)
    url = await hooked.delivery_url()
    names = ["delivery_customer_updated_customer_update", "delivery_order_created_order_create",
             "delivery_order_deleted_order_trash", "delivery_customer_deleted_customer_delete"]
    async with httpx.AsyncClient(timeout=10) as http:
        for name in names:
            delivery = json.loads((FIXTURES / f"{name}.json").read_text())
            topic = delivery["meta"]["topic"]
            await webhook_rows.save_webhook_secret(pipeline.pool, store_id, topic, path_token=token, delivery_url=url,
                                                   secret=delivery["meta"]["webhook_secret"], cipher=hooked.cipher)
            headers = [(k, v) for k, v in delivery["raw_headers"] if k.lower() not in ("host", "content-length",
                                                                                     "connection")]
            body = delivery["raw_body"].encode("latin-1")
            answer = await http.post(url, content=body, headers=headers)
            assert answer.status_code == 200, (name, answer.text)
            digest = hashlib.sha256(body).digest()
            assert await pipeline.pool.fetchval(
                "SELECT outcome FROM webhook_delivery WHERE delivery_id = $1 AND body_sha256 = $2",
                delivery["headers"]["X-WC-Webhook-Delivery-ID"], digest)
        for name in ("delivery_ping_customer_created", "delivery_ping_order_updated"):
            ping = json.loads((FIXTURES / f"{name}.json").read_text())
            headers = [(k, v) for k, v in ping["raw_headers"] if k.lower() not in ("host", "content-length", "connection")]
            assert (await http.post(url, content=ping["raw_body"].encode(), headers=headers)).status_code == 200
