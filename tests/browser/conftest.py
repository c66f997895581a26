"""The console in a real browser: Debian's Chromium driven by Playwright, against the real status
service (the app on a real loopback port, a fresh database and vhost per test).

Playwright's own browser downloads are never used: the tests launch /usr/bin/chromium (or
WOOSYNC_TEST_CHROMIUM), which .ci/run installs with apt-get. Screenshots go to
WOOSYNC_TEST_ARTIFACTS when set, else to the test's tmp_path.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.integration.status_harness import StatusUnderTest, serve, status_service

CHROMIUM = os.environ.get("WOOSYNC_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
WIDE = {"width": 1280, "height": 900}
NARROW = {"width": 390, "height": 844}


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: install Debian's (apt-get install chromium; .ci/run does) "
                    "or point WOOSYNC_TEST_CHROMIUM at one", pytrace=False)
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.fail("Playwright for Python is missing: pip install -e '.[test]'", pytrace=False)
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@dataclass
class ConsoleSite:
    """The status service on a real port, and what the browser did on its pages."""

    status: StatusUnderTest
    pool: asyncpg.Pool
    base_url: str
    artifacts: Path
    console_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    request_urls: list[str] = field(default_factory=list)

    @property
    def console_url(self) -> str:
        return f"{self.base_url}/console/"

    async def page(self, browser: Any, viewport: dict[str, int] = WIDE) -> Any:
        """A new page (its own session storage) that records console errors, page errors,
        dialogs (dismissed) and every URL it requests."""
        context = await browser.new_context(viewport=viewport)
        page = await context.new_page()
        page.on("console", lambda message: self.console_errors.append(f"console {message.type}: {message.text}")
                if message.type in ("error", "warning") else None)
        page.on("pageerror", lambda error: self.console_errors.append(f"page error: {error}"))
        page.on("request", lambda request: self.request_urls.append(request.url))

        async def refuse(dialog: Any) -> None:
            self.dialogs.append(f"{dialog.type}: {dialog.message}")
            await dialog.dismiss()

        page.on("dialog", refuse)
        return page

    async def screenshot(self, page: Any, name: str) -> Path:
        path = self.artifacts / f"{name}.png"
        await page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
async def console_site(db_pool: asyncpg.Pool, amqp_url: str, tmp_path: Path,
                       request: pytest.FixtureRequest) -> AsyncIterator[ConsoleSite]:
    artifacts_root = os.environ.get("WOOSYNC_TEST_ARTIFACTS")
    artifacts = Path(artifacts_root) / request.node.name if artifacts_root else tmp_path / "screenshots"
    artifacts.mkdir(parents=True, exist_ok=True)
    async with status_service(db_pool, amqp_url) as status:
        async with serve(status.app, status.ctx.hub) as base_url:
            yield ConsoleSite(status, db_pool, base_url, artifacts)
