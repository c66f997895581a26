"""The operations endpoints of a worker service (producer, consumer): /metrics, /healthz, /readyz.

A tiny aiohttp server beside the service's real work, so Kubernetes probes and Prometheus
scrapes never wait behind it. The probes are the service's own callables returning
`(ok, reason)`; the server only turns them into 200 `{"ok": true}` or 503 `{"ok": false, "reason": ...}`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

log = logging.getLogger(__name__)

Probe = Callable[[], Awaitable[tuple[bool, str]]]
# A probe that cannot answer in time is a failing probe (the kubelet's own timeout is 1 s by default).
PROBE_TIMEOUT_S = 5.0


class OpsServer:
    def __init__(self, runner: web.AppRunner, port: int) -> None:
        self._runner = runner
        self.port = port

    async def close(self) -> None:
        await self._runner.cleanup()


async def _answer_probe(probe: Probe) -> web.Response:
    try:
        ok, reason = await asyncio.wait_for(probe(), PROBE_TIMEOUT_S)
    except asyncio.TimeoutError:
        ok, reason = False, f"probe did not answer within {PROBE_TIMEOUT_S:g} s"
    except Exception as exc:  # a probe that raises is a failing probe, never a 500
        log.warning("probe raised %r; answering 503", exc)
        ok, reason = False, f"probe raised {type(exc).__name__}: {exc}"
    if ok:
        return web.json_response({"ok": True})
    return web.json_response({"ok": False, "reason": reason}, status=503)


async def start_ops_server(
    *,
    host: str,
    port: int,
    registry: CollectorRegistry,
    liveness: Probe,
    readiness: Probe,
) -> OpsServer:
    """Serve /metrics, /healthz and /readyz on host:port (port 0 picks a free one: see `.port`)."""

    async def metrics(_: web.Request) -> web.Response:
        # generate_latest walks the registry synchronously; it is small, so no thread is needed.
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return await _answer_probe(liveness)

    async def readyz(_: web.Request) -> web.Response:
        return await _answer_probe(readiness)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise OSError(exc.errno, f"cannot serve metrics on {host}:{port}: {exc.strerror}") from exc
    bound_port = runner.addresses[0][1] if runner.addresses else port
    log.info("ops endpoints on http://%s:%d (/metrics, /healthz, /readyz)", host, bound_port)
    return OpsServer(runner, bound_port)
