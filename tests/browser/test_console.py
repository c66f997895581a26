"""The operators' console (services/status/console) in a real browser, against the real status
service: signing in and out, watching a sync finish live, retrying and cancelling with a
confirmation, escaping store-provided text, a preview's report and a sync's conflicts, and one
organisation seeing nothing of another's.

Consumers are simulated by moving lines through the data layer (shared.repository), exactly as
the real consumer does; the console only sees what the API serves.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest

from services.status.console.routes import CONTENT_SECURITY_POLICY
from shared.customer_changes import Conflict
from shared.repository import conflicts, queue_lines, stores, sync_queues
from tests.browser.conftest import NARROW, WIDE, ConsoleSite
from tests.integration.status_harness import STORE_URL, a_customer, a_queue, an_organization
from tests.waiting import eventually

pytestmark = pytest.mark.browser

EXPECT_TIMEOUT_MS = 15_000
HOSTILE_NAME = "<img src=x onerror=alert(1)>"
HOSTILE_ERROR = "customer 2 has no valid email: '<script>alert(2)</script><img src=x onerror=alert(3)>'"


async def sign_in(site: ConsoleSite, page: Any, token: str) -> None:
    """Signs in by keyboard only: the token field has focus, Enter submits."""
    await page.goto(site.console_url)
    field = page.get_by_label("API token")
    await expect(field).to_be_focused()
    await page.keyboard.type(token)
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Syncs", level=1)).to_be_visible()


def expect(target: Any) -> Any:
    from playwright.async_api import expect as playwright_expect

    playwright_expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    return playwright_expect(target)


def count_of(page: Any, state: str) -> Any:
    return page.locator(f"#counts [data-count='{state}']")


async def finish_lines(pool: asyncpg.Pool, line_ids: list[UUID]) -> None:
    """What a consumer does with lines that sync: claim them, then mark them done."""
    await queue_lines.claim_lines(pool, line_ids)
    await queue_lines.mark_lines_done(pool, [(line_id, None, False) for line_id in line_ids])


async def fail_lines(pool: asyncpg.Pool, failures: list[tuple[UUID, str]]) -> None:
    await queue_lines.claim_lines(pool, [line_id for line_id, _ in failures])
    await queue_lines.mark_lines_failed(pool, failures)


def assert_clean(site: ConsoleSite, token: str) -> None:
    """No browser console errors, no dialog (an injected alert), and the token in no URL."""
    assert site.console_errors == []
    assert site.dialogs == []
    assert not [url for url in site.request_urls if token in url or token[:16] in url]


# ------------------------------------------------------------------------------------- tests
async def test_operator_signs_in_and_watches_a_sync_reach_done_live_without_reloading(browser, console_site) -> None:
    site = console_site
    org_id, token = await an_organization(site.pool)
    queue, line_ids = await a_queue(site.pool, org_id, lines=6, enumerated=True)

    page = await site.page(browser)
    await sign_in(site, page, token)
    row = page.locator(f"tr[data-queue-id='{queue.id}']")
    await expect(row).to_contain_text(queue.queue_name)
    await expect(row.locator("[data-field=state]")).to_have_text("draft")
    await site.screenshot(page, "syncs-1280")

    await row.get_by_role("link", name=queue.queue_name).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(queue.queue_name)
    await expect(page.locator("#live")).to_have_text(re.compile("live"))
    await expect(count_of(page, "draft")).to_have_text("6")
    await page.evaluate("window.notReloaded = true")

    await finish_lines(site.pool, line_ids[:3])
    await expect(count_of(page, "done")).to_have_text("3")
    await expect(page.locator(".overview [data-field=state]")).to_have_text("processing")
    await expect(page.locator(".overview [data-field=progress]")).to_have_text("50%")

    await finish_lines(site.pool, line_ids[3:])
    await expect(page.locator(".overview [data-field=state]")).to_have_text("done")
    await expect(count_of(page, "done")).to_have_text("6")
    await expect(page.locator("#live")).to_have_text("finished (done)")
    assert await page.evaluate("window.notReloaded") is True
    await site.screenshot(page, "sync-done-1280")
    assert_clean(site, token)


async def test_operator_retries_a_failed_line_after_confirming_and_sees_it_go_through(browser, console_site) -> None:
    site = console_site
    org_id, token = await an_organization(site.pool)
    queue, line_ids = await a_queue(site.pool, org_id, lines=3, enumerated=True)
    await finish_lines(site.pool, line_ids[:2])
    await fail_lines(site.pool, [(line_ids[2], "store answered 500 for customer 3's orders")])

    page = await site.page(browser)
    await sign_in(site, page, token)
    await page.goto(f"{site.console_url}#/syncs/{queue.id}")
    await expect(page.locator(".overview [data-field=state]")).to_have_text("partial")
    failed_row = page.locator(f"#lines tr[data-line-id='{line_ids[2]}']")
    await expect(failed_row).to_contain_text("store answered 500 for customer 3's orders")

    # Keeping it as it is changes nothing.
    await page.get_by_role("button", name="Retry failed lines").click()
    dialog = page.locator("dialog#confirm")
    await expect(dialog).to_be_visible()
    await expect(dialog).to_contain_text("1 failed line(s) go back to draft")
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    assert (await sync_queues.queue_status(site.pool, queue.id, org_id)).failed_count == 1

    await page.get_by_role("button", name="Retry failed lines").click()
    await dialog.get_by_role("button", name="Retry failed lines").click()
    await expect(page.locator("#action-outcome")).to_have_text("1 failed line(s) sent again.")
    await expect(count_of(page, "failed")).to_have_text("0")
    await expect(page.locator("#lines-summary")).to_have_text("No failed lines.")

    await finish_lines(site.pool, [line_ids[2]])  # the dispatcher publishes it again and a consumer finishes it
    await expect(page.locator(".overview [data-field=state]")).to_have_text("done")
    await expect(count_of(page, "done")).to_have_text("3")
    await expect(page.locator("#activity")).to_contain_text("failed line(s) back to draft, requested by console")
    assert_clean(site, token)


async def test_cancel_asks_first_and_then_cancels_the_sync(browser, console_site) -> None:
    site = console_site
    org_id, token = await an_organization(site.pool)
    queue, _ = await a_queue(site.pool, org_id, lines=4, enumerated=True)

    page = await site.page(browser)
    await sign_in(site, page, token)
    await page.goto(f"{site.console_url}#/syncs/{queue.id}")
    await page.get_by_role("button", name="Cancel sync").click()
    dialog = page.locator("dialog#confirm")
    await dialog.get_by_role("button", name="Keep it as it is").click()
    await expect(dialog).to_be_hidden()
    assert (await sync_queues.queue_status(site.pool, queue.id, org_id)).state == "draft"

    await page.get_by_role("button", name="Cancel sync").click()
    await dialog.get_by_role("button", name="Cancel sync").click()
    await expect(page.locator(".overview [data-field=state]")).to_have_text("cancelled")
    await expect(count_of(page, "cancelled")).to_have_text("4")
    await expect(page.get_by_role("button", name="Cancel sync")).to_have_count(0)
    assert_clean(site, token)


async def test_hostile_customer_data_and_error_messages_show_as_text_and_never_run(browser, console_site) -> None:
    site = console_site
    org_id, token = await an_organization(site.pool)
    store_id = await stores.upsert_store(site.pool, org_id=org_id, url=STORE_URL, consumer_key="ck_test",
                                         consumer_secret="cs_test", cipher=None)
    queue, _ = await sync_queues.find_or_create_queue(
        site.pool, org_id=org_id, queue_name=HOSTILE_NAME, idempotency_key=None, store_id=store_id,
        store_url=STORE_URL, created_by="test", options={},
    )
    hostile = {**a_customer(2), "first_name": HOSTILE_NAME, "last_name": HOSTILE_NAME, "email": HOSTILE_NAME}
    added = await queue_lines.add_lines(site.pool, queue_id=queue.id, org_id=org_id,
                                        customers=[(1, a_customer(1)), (2, hostile)])
    await sync_queues.mark_enumeration_done(site.pool, queue.id, org_id)
    by_woo_id = {woo_id: line_id for line_id, woo_id in added}
    await finish_lines(site.pool, [by_woo_id[1]])
    await fail_lines(site.pool, [(by_woo_id[2], HOSTILE_ERROR)])

    for viewport, suffix in ((WIDE, "1280"), (NARROW, "390")):
        page = await site.page(browser, viewport)
        await sign_in(site, page, token)
        await expect(page.locator(f"tr[data-queue-id='{queue.id}'] a")).to_have_text(HOSTILE_NAME)
        await page.locator(f"tr[data-queue-id='{queue.id}'] a").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text(HOSTILE_NAME)
        failed_row = page.locator(f"#lines tr[data-line-id='{by_woo_id[2]}']")
        await expect(failed_row).to_contain_text(HOSTILE_NAME)
        await expect(failed_row).to_contain_text(HOSTILE_ERROR)
        assert await page.locator("main img, main script").count() == 0
        await site.screenshot(page, f"sync-hostile-{suffix}")
    assert_clean(site, token)


async def test_preview_report_and_conflicts_show_store_values_as_text_and_never_run(browser, console_site) -> None:
    site = console_site
    org_id, token = await an_organization(site.pool)
    store_id = await stores.upsert_store(site.pool, org_id=org_id, url=STORE_URL, consumer_key="ck_test",
                                         consumer_secret="cs_test", cipher=None)
    queue, _ = await sync_queues.find_or_create_queue(
        site.pool, org_id=org_id, queue_name="preview of the shop", idempotency_key=None, store_id=store_id,
        store_url=STORE_URL, created_by="test", kind="preview",
        options={"orders": "bulk", "mode": "full", "conflict_policy": "local_wins"},
    )
    added = await queue_lines.add_lines(site.pool, queue_id=queue.id, org_id=org_id,
                                        customers=[(n, a_customer(n)) for n in (1, 2, 3)])
    await sync_queues.mark_enumeration_done(site.pool, queue.id, org_id)
    by_woo_id = {woo_id: line_id for line_id, woo_id in added}
    # What the consumer records for a preview's lines: the outcome and {field: [old, new]}.
    outcomes = {
        by_woo_id[1]: ("would_create", {"email": [None, "customer1@example.com"]}),
        by_woo_id[2]: ("would_update", {"first_name": ["Ann", HOSTILE_NAME]}),
        by_woo_id[3]: ("unchanged", None),
    }
    await queue_lines.claim_lines(site.pool, list(by_woo_id.values()))
    await queue_lines.mark_lines_done(site.pool, [(line_id, None, False) for line_id in by_woo_id.values()],
                                      outcomes=outcomes)
    await conflicts.record_conflicts(site.pool, [conflicts.LineConflicts(
        queue_id=queue.id, line_id=by_woo_id[2], org_id=org_id, customer_id=None, woo_customer_id=2,
        conflicts=[Conflict(field="last_name", local_value="Local <b>name</b>", store_value=HOSTILE_NAME,
                            resolution="kept_local")],
    )])

    page = await site.page(browser)
    await sign_in(site, page, token)
    row = page.locator(f"tr[data-queue-id='{queue.id}']")
    await expect(row.locator("[data-field=kind]")).to_have_text("preview")
    await expect(row.locator("[data-field=strategy]")).to_have_text("bulk")

    await row.get_by_role("link", name="preview of the shop").click()
    await expect(page.get_by_role("heading", name="Preview report", level=2)).to_be_visible()
    for key, expected in (("would_create", "1"), ("would_update", "1"), ("unchanged", "1"), ("would_fail", "0"),
                          ("conflicts", "1")):
        await expect(page.locator(f"#preview-counts [data-preview='{key}']")).to_have_text(expected)
    await expect(page.locator("#preview-report tr[data-field='first_name']")).to_contain_text("1")
    change = page.locator("#preview-report tr[data-woo-customer-id='2'] li[data-field='first_name']")
    await expect(change).to_have_text(f"first_name: Ann → {HOSTILE_NAME}")
    await expect(change.locator(".new")).to_have_text(HOSTILE_NAME)
    await expect(page.locator("#preview-report tr[data-woo-customer-id='1']")).to_contain_text(
        "email: (empty) → customer1@example.com")

    await expect(page.get_by_role("heading", name="Conflicts", level=2)).to_be_visible()
    conflict_row = page.locator("#conflicts tbody tr").first
    await expect(conflict_row).to_contain_text("last_name")
    await expect(conflict_row).to_contain_text("Local <b>name</b>")
    await expect(conflict_row).to_contain_text(HOSTILE_NAME)
    await expect(conflict_row).to_contain_text("kept the local value")
    await expect(page.locator("#conflicts-summary")).to_have_text("Conflicts 1–1 of 1")
    await expect(page.locator("main > dl.facts")).to_contain_text("local_wins")
    assert await page.locator("main img, main script, main b").count() == 0
    await site.screenshot(page, "preview-1280")
    assert_clean(site, token)


async def test_a_sync_without_conflicts_shows_no_conflicts_or_preview_section(browser, console_site) -> None:
    site = console_site
    org_id, token = await an_organization(site.pool)
    queue, line_ids = await a_queue(site.pool, org_id, lines=2, enumerated=True)
    await finish_lines(site.pool, line_ids)

    page = await site.page(browser)
    await sign_in(site, page, token)
    await expect(page.locator(f"tr[data-queue-id='{queue.id}'] [data-field=kind]")).to_have_text("sync")
    await page.goto(f"{site.console_url}#/syncs/{queue.id}")
    await expect(page.locator(".overview [data-field=state]")).to_have_text("done")
    await expect(page.get_by_role("heading", name="Conflicts")).to_be_hidden()
    await expect(page.get_by_role("heading", name="Preview report")).to_be_hidden()
    assert_clean(site, token)


async def test_another_organisations_token_sees_none_of_its_syncs(browser, console_site) -> None:
    site = console_site
    org_id, _ = await an_organization(site.pool, "Acme")
    queue, line_ids = await a_queue(site.pool, org_id, lines=2, enumerated=True)
    await fail_lines(site.pool, [(line_ids[0], "secret failure of Acme")])
    _, other_token = await an_organization(site.pool, "Globex")

    page = await site.page(browser)
    await sign_in(site, page, other_token)
    await expect(page.locator("#syncs-summary")).to_have_text(re.compile("Syncs 0–0"))
    await expect(page.locator("main")).to_contain_text("No syncs yet")
    await page.goto(f"{site.console_url}#/syncs/{queue.id}")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Sync not found")
    content = await page.locator("body").inner_text()
    assert queue.queue_name not in content and "secret failure of Acme" not in content
    assert "customer1@example.com" not in content
    # The browser reports the API's 404 for the unknown sync as a failed resource load; nothing else.
    assert [e for e in site.console_errors if "404" not in e] == []
    assert site.dialogs == []


async def test_signing_out_forgets_the_token_and_a_revoked_token_is_asked_for_again(browser, console_site) -> None:
    site = console_site
    _, token = await an_organization(site.pool)
    page = await site.page(browser)

    await page.goto(site.console_url)
    await page.get_by_label("API token").fill("wsk_not_a_token")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("That token was refused")
    site.console_errors.clear()  # the refused token's 401, reported by the browser as a failed load

    await page.get_by_label("API token").fill(token)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Syncs", level=1)).to_be_visible()
    assert await page.evaluate("sessionStorage.getItem('woosync.console.token')") == token
    assert await page.evaluate("localStorage.length") == 0
    assert token not in page.url

    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_label("API token")).to_be_visible()
    assert await page.evaluate("sessionStorage.length") == 0
    await page.reload()
    await expect(page.get_by_label("API token")).to_be_visible()
    assert_clean(site, token)


async def test_operator_starts_a_sync_from_the_console(browser, console_site) -> None:
    site = console_site
    org_id, token = await an_organization(site.pool)
    page = await site.page(browser, NARROW)
    await sign_in(site, page, token)
    await page.get_by_role("link", name="Start a sync").first.click()
    await page.get_by_label("Store address").fill(STORE_URL)
    await page.get_by_label("Consumer key").fill("ck_console")
    await page.get_by_label("Consumer secret").fill("cs_console")
    await page.get_by_label("At most this many customers").fill("10")
    await page.get_by_role("button", name="Start the sync").click()

    await expect(page).to_have_url(re.compile(r"#/syncs/[0-9a-f-]{36}$"))
    queue_id = UUID(page.url.rsplit("/", 1)[1])
    await expect(page.locator(".overview [data-field=state]")).to_have_text("draft")
    queues = await sync_queues.list_queues(site.pool, org_id, limit=5, offset=0)
    assert [q.id for q in queues] == [queue_id]
    assert not [url for url in site.request_urls if "cs_console" in url]
    await site.screenshot(page, "start-390")
    assert_clean(site, token)


async def test_operator_starts_a_preview_instead_of_a_sync(browser, console_site) -> None:
    site = console_site
    org_id, token = await an_organization(site.pool)
    page = await site.page(browser)
    await sign_in(site, page, token)
    await page.get_by_role("link", name="Start a sync").first.click()
    await page.get_by_label("Store address").fill(STORE_URL)
    await page.get_by_label("Consumer key").fill("ck_console")
    await page.get_by_label("Consumer secret").fill("cs_console")
    await page.get_by_role("button", name="Preview instead").click()

    await expect(page).to_have_url(re.compile(r"#/syncs/[0-9a-f-]{36}$"))
    queue_id = UUID(page.url.rsplit("/", 1)[1])
    await expect(page.get_by_role("heading", name="Preview report", level=2)).to_be_visible()
    status = await sync_queues.queue_status(site.pool, queue_id, org_id)
    assert status is not None and status.kind == "preview"
    assert any(url.endswith("/api/v1/sync/preview") for url in site.request_urls)
    assert_clean(site, token)


async def test_console_responses_carry_a_strict_content_security_policy(console_site) -> None:
    async with httpx.AsyncClient(base_url=console_site.base_url) as client:
        for path in ("/console/", "/console/static/console.js", "/console/static/console.css"):
            response = await client.get(path)
            assert response.status_code == 200, path
            assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["referrer-policy"] == "no-referrer"
        assert (await client.get("/console", follow_redirects=False)).headers["location"] == "/console/"
    for directive in ("default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'"):
        assert directive in CONTENT_SECURITY_POLICY
    assert "unsafe" not in CONTENT_SECURITY_POLICY
    # No inline script or style anywhere in the console's files.
    static = Path(__file__).parents[2] / "services" / "status" / "console" / "static"
    html = (static / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)", html) and "<style" not in html and " style=" not in html
    for module in static.rglob("*.js"):
        assert "innerHTML" not in module.read_text() and "insertAdjacentHTML" not in module.read_text(), module


def test_every_console_file_is_shipped_in_the_package() -> None:
    # A regular install (the Docker image) carries only the files pyproject's package-data names.
    import fnmatch
    import tomllib

    repo = Path(__file__).parents[2]
    patterns = tomllib.loads((repo / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "services.status.console"]
    package = repo / "services" / "status" / "console"
    for path in (package / "static").rglob("*"):
        if path.is_file():
            relative = path.relative_to(package).as_posix()
            assert any(fnmatch.fnmatch(relative, pattern) and relative.count("/") == pattern.count("/")
                       for pattern in patterns), relative
