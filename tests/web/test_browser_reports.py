"""Finance's and IT's report pages in a real browser (Debian's Chromium via Playwright) on a
375 px phone: each sees their own page and not the other's, finance downloads a CSV that
matches the database, IT replays a dead letter and a dispatch run delivers it. Screenshots
go to the test's temporary directory (printed)."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from itertools import pairwise
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from connectors.kit.sandbox import serve_in_thread
from hub.access import Role
from hub.web import create_web_app
from hub.web.auth import SESSION_COOKIE
from hub.web.formatting import Clock
from tests.conftest import rows, scalar
from tests.support.access import issue_session
from tests.support.receivables import build_ledger
from tests.web.test_browser import CHROMIUM, CHROMIUM_ARGS, INSTALL
from tests.web.test_report_operations import dead_reminder

pytestmark = pytest.mark.e2e  # starts a server and a browser

NARROW = {"width": 375, "height": 812}


def check_layout(page) -> None:
    """No sideways scroll at 375 px, headings in order (one h1, no level skipped), every
    form control labelled."""
    assert page.evaluate("document.documentElement.scrollWidth") <= NARROW["width"]
    levels = page.evaluate("[...document.querySelectorAll('main h1, main h2, main h3')].map(h => +h.tagName[1])")
    assert levels and levels[0] == 1 and levels.count(1) == 1
    assert all(b - a <= 1 for a, b in pairwise(levels)), levels
    unlabelled = page.evaluate("""[...document.querySelectorAll('main select, main input:not([type=hidden]), main button')]
        .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.textContent.trim()).length""")
    assert unlabelled == 0


def test_finance_and_it_each_see_their_page_and_act_on_it(db, settings, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing; install it (as root): {INSTALL}")
    build_ledger(db, 30, Clock(settings.timezone).today())
    runtime, outbox_id = dead_reminder(db, settings)
    with serve_in_thread(create_web_app(db, settings)) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            def signed_in(role: Role):
                context = browser.new_context(viewport=NARROW, is_mobile=True, locale="zh-CN", accept_downloads=True)
                context.add_cookies([{"name": SESSION_COOKIE, "url": server.url, "value": issue_session(db, role)}])
                return context.new_page()

            # finance: the receivables report, not operations
            page = signed_in(Role.FINANCE)
            page.goto(f"{server.url}/reports")
            expect(page.get_by_role("link", name="应收账款")).to_be_visible()
            expect(page.get_by_role("link", name="运维")).to_have_count(0)
            reply = page.goto(f"{server.url}/reports/operations")
            assert reply is not None and reply.status == 403
            page.goto(f"{server.url}/reports/receivables")
            expect(page.get_by_role("heading", name="账龄分布（按币种）")).to_be_visible()
            check_layout(page)
            page.screenshot(path=str(tmp_path / "receivables-375.png"), full_page=True)
            with page.expect_download() as download:
                page.locator('[data-k="export-csv-over_limit"]').click()
            body = Path(download.value.path()).read_bytes()
            assert body.startswith(b"\xef\xbb\xbf")
            shown = {int(r[0]): Decimal(r[4]) for r in list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))[1:]}
            assert shown == {r.id: r.used for r in rows(db, """
                SELECT c.id, sum(r.open_amount) AS used FROM customer c JOIN receivable r ON r.customer_id = c.id
                WHERE r.currency = c.currency AND r.open_amount > 0 AND c.credit_limit IS NOT NULL
                GROUP BY c.id HAVING sum(r.open_amount) > max(c.credit_limit)""")}

            # it: operations, not the receivables report
            page = signed_in(Role.IT)
            page.goto(f"{server.url}/reports")
            expect(page.get_by_role("link", name="运维")).to_be_visible()
            expect(page.get_by_role("link", name="应收账款")).to_have_count(0)
            reply = page.goto(f"{server.url}/reports/receivables")
            assert reply is not None and reply.status == 403
            page.goto(f"{server.url}/reports/operations")
            check_layout(page)
            page.screenshot(path=str(tmp_path / "operations-375.png"), full_page=True)
            page.locator(f'[data-k="dead-letter"][data-id="{outbox_id}"] [data-k="replay"]').click()
            expect(page.locator('[data-k="notice"]')).to_contain_text("1")
            assert scalar(db, "SELECT status FROM outbox WHERE id = :id", id=outbox_id) == "pending"
            assert runtime.dispatcher().drain(wait_for_scheduled=True, timeout_s=60).done == 1
            page.reload()
            expect(page.locator('[data-k="dead-letter"]')).to_have_count(0)
            assert scalar(db, "SELECT status FROM outbox WHERE id = :id", id=outbox_id) == "done"
            page.screenshot(path=str(tmp_path / "operations-after-replay.png"), full_page=True)
        finally:
            browser.close()
    print(f"screenshots: {tmp_path}")
