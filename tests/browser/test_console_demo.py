"""`woosync demo --keep-running`: after its sync the demo keeps every process up, prints the
console's address and a token, and a new user opens the console on the demo's data; Ctrl-C
(SIGINT) stops everything."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.browser.conftest import WIDE
from tests.conftest import _admin
from tests.processes import free_port
from woosync.stack import LOCAL_STORE_NETWORKS

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


def wait_for_output(proc: subprocess.Popen, log: Path, pattern: str, timeout: float) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while True:
        found = re.search(pattern, log.read_text(errors="replace"))
        if found:
            return found
        if proc.poll() is not None:
            raise AssertionError(f"demo exited with {proc.returncode} before {pattern!r}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"demo did not print {pattern!r} within {timeout:g} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)


async def test_demo_keeps_running_for_the_console_until_ctrl_c(browser, pg_server_url, broker, tmp_path) -> None:
    from playwright.async_api import expect

    log = tmp_path / "demo.log"
    # The demo makes its own database and vhost on the test servers: names of this test's own, so
    # no earlier demo's data (or another run of this test) is in the way.
    suffix = os.urandom(4).hex()
    database, vhost = f"woosync_demo_test_{suffix}", f"woosync-demo-test-{suffix}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WOOSYNC_")}
    env.update(WOOSYNC_DATABASE_URL=pg_server_url, WOOSYNC_AMQP_URL=broker.amqp_url,
               WOOSYNC_STORE_ALLOWED_NETWORKS=LOCAL_STORE_NETWORKS, PYTHONUNBUFFERED="1")
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "woosync", "demo", "--customers", "60", "--consumers", "1",
             "--status-port", str(free_port()), "--keep-running", "--database", database, "--vhost", vhost],
            env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    try:
        wait_for_output(proc, log, r"press Ctrl-C", 240)
        text = log.read_text()
        console_url = re.search(r"console +(http://127\.0\.0\.1:\d+/console/) ", text).group(1)
        token = re.search(r"API token +(wsk_\S+)", text).group(1)
        queue_id = re.search(r"this sync: \S+#/syncs/([0-9a-f-]{36})", text).group(1)

        page = await (await browser.new_context(viewport=WIDE)).new_page()
        errors: list[str] = []
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        await page.goto(console_url)
        await page.get_by_label("API token").fill(token)
        await page.get_by_role("button", name="Sign in").click()
        row = page.locator(f"tr[data-queue-id='{queue_id}']")
        await expect(row.locator("[data-field=state]")).to_have_text(re.compile("^(done|partial)$"), timeout=15_000)
        await row.get_by_role("link").click()
        await expect(page.locator("#counts [data-count='total']")).to_have_text("60", timeout=15_000)
        assert errors == []
        assert proc.poll() is None, "the demo stopped before Ctrl-C"

        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0, log.read_text()[-3000:]
        assert re.search(r"stopped: .*status \(0\)", log.read_text())
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        broker.delete_vhost(vhost)
        await _admin(pg_server_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
