"""The ops server of the producer and consumer: /metrics, /healthz, /readyz on a real socket."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess

import aiohttp
import pytest

from shared.metrics import Metrics
from shared.ops_server import start_ops_server

pytestmark = pytest.mark.integration


def promtool_or_skip() -> str:
    """promtool's path; a missing promtool fails in CI and skips elsewhere."""
    path = shutil.which("promtool")
    if path:
        return path
    if os.environ.get("CI") == "true":
        pytest.fail("promtool is missing (install the 'prometheus' package)", pytrace=False)
    pytest.skip("promtool is not installed")


def promtool_check_metrics(exposition: bytes) -> None:
    result = subprocess.run(
        [promtool_or_skip(), "check", "metrics"], input=exposition, capture_output=True, timeout=30
    )
    assert result.returncode == 0, (result.stdout + result.stderr).decode()


async def ok() -> tuple[bool, str]:
    return True, ""


async def get(port: int, path: str) -> tuple[int, bytes, str]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}{path}") as response:
            return response.status, await response.read(), response.headers.get("Content-Type", "")


async def test_port_zero_binds_a_free_port_and_serves_the_registry_metrics() -> None:
    metrics = Metrics()
    metrics.lines_processed.labels("done").inc(3)
    server = await start_ops_server(host="127.0.0.1", port=0, registry=metrics.registry, liveness=ok, readiness=ok)
    try:
        assert server.port > 0
        status, body, content_type = await get(server.port, "/metrics")
        assert status == 200
        assert content_type.startswith("text/plain")
        assert b'woosync_lines_processed_total{outcome="done"} 3.0' in body
    finally:
        await server.close()


async def test_metrics_exposition_passes_promtool() -> None:
    metrics = Metrics()
    metrics.observe_woocommerce("customers", 200, 0.3)
    metrics.line_processing_seconds.observe(0.02)
    server = await start_ops_server(host="127.0.0.1", port=0, registry=metrics.registry, liveness=ok, readiness=ok)
    try:
        _, body, _ = await get(server.port, "/metrics")
    finally:
        await server.close()
    promtool_check_metrics(body)


async def test_healthy_probes_answer_200_ok() -> None:
    server = await start_ops_server(host="127.0.0.1", port=0, registry=Metrics().registry, liveness=ok, readiness=ok)
    try:
        for path in ("/healthz", "/readyz"):
            status, body, _ = await get(server.port, path)
            assert (status, body) == (200, b'{"ok": true}')
    finally:
        await server.close()


async def test_failing_readiness_answers_503_with_the_reason_while_liveness_stays_200() -> None:
    async def not_ready() -> tuple[bool, str]:
        return False, "RabbitMQ connection is closed"

    server = await start_ops_server(
        host="127.0.0.1", port=0, registry=Metrics().registry, liveness=ok, readiness=not_ready
    )
    try:
        status, body, _ = await get(server.port, "/readyz")
        assert status == 503
        assert b'"ok": false' in body and b"RabbitMQ connection is closed" in body
        status, _, _ = await get(server.port, "/healthz")
        assert status == 200
    finally:
        await server.close()


async def test_a_probe_that_raises_is_a_503_not_a_500() -> None:
    async def broken() -> tuple[bool, str]:
        raise RuntimeError("pool is closed")

    server = await start_ops_server(host="127.0.0.1", port=0, registry=Metrics().registry, liveness=broken, readiness=ok)
    try:
        status, body, _ = await get(server.port, "/healthz")
        assert status == 503
        assert b"pool is closed" in body
    finally:
        await server.close()


async def test_a_busy_port_is_an_error_naming_the_address() -> None:
    first = await start_ops_server(host="127.0.0.1", port=0, registry=Metrics().registry, liveness=ok, readiness=ok)
    try:
        with pytest.raises(OSError, match=f"127.0.0.1:{first.port}"):
            await start_ops_server(host="127.0.0.1", port=first.port, registry=Metrics().registry, liveness=ok, readiness=ok)
    finally:
        await first.close()


async def test_close_releases_the_port() -> None:
    server = await start_ops_server(host="127.0.0.1", port=0, registry=Metrics().registry, liveness=ok, readiness=ok)
    port = server.port
    await server.close()
    with pytest.raises(aiohttp.ClientConnectorError):
        await asyncio.wait_for(get(port, "/healthz"), 5)
