"""A salesperson reads the sales reports on a 375 px phone in a real browser (Debian's
Chromium via Playwright): signs in with a password, opens the funnel and the RFM page,
taps a segment, lands on its customers and opens one's profile. Each page fits the screen
(no sideways scroll), its headings go in order, and every input has a label.
Screenshots are saved in the test's output directory."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from connectors.kit.sandbox import serve_in_thread
from hub.access import Role
from hub.access.accounts import add_login
from hub.access.principal import cli_principal
from hub.web import create_web_app
from tests.support.sales_world import build_sales_world
from tests.web.test_browser import CHROMIUM, CHROMIUM_ARGS, INSTALL

pytestmark = pytest.mark.e2e  # starts a server and a browser

NARROW = {"width": 375, "height": 812}

_UNLABELLED = """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
    .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')).map(e => e.name)"""
_HEADINGS = "() => [...document.querySelectorAll('h1, h2, h3')].map(h => Number(h.tagName[1]))"


def check_fits_and_is_accessible(page: Page) -> None:
    """No horizontal scroll at 375 px, one h1 first and no heading level skipped, labelled inputs."""
    assert page.evaluate("document.documentElement.scrollWidth") <= NARROW["width"], page.url
    levels = page.evaluate(_HEADINGS)
    assert levels[0] == 1 and levels.count(1) == 1, levels
    assert all(b - a <= 1 for a, b in itertools.pairwise(levels)), levels
    assert page.evaluate(_UNLABELLED) == [], page.url


def test_a_salesperson_opens_the_funnel_and_rfm_and_taps_a_segment_to_its_customers(db, settings, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing; install it (as root): {INSTALL}")
    world = build_sales_world(db, customers=60)
    with db.begin() as conn:
        add_login(conn, cli_principal(), "alice", "pipeline-and-quota", Role.SALES, str(world.alice))
    with serve_in_thread(create_web_app(db, settings)) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport=NARROW, is_mobile=True, has_touch=True, locale="zh-CN").new_page()
            # she signs in with her password and follows the 报表 link
            page.goto(f"{server.url}/reports")
            expect(page).to_have_url(re.compile(r"/login\?next="))
            page.get_by_label("用户名").fill("alice")
            page.get_by_label("密码").fill("pipeline-and-quota")
            page.get_by_role("button", name="登录").click()
            expect(page).to_have_url(f"{server.url}/reports")
            page.get_by_role("link", name="销售漏斗").click()
            # the funnel: five stages, drawn and tabled, in Chinese
            expect(page.get_by_role("heading", name="销售漏斗", exact=True)).to_be_visible()
            expect(page.locator('[data-k="stage"]')).to_have_count(5)
            expect(page.locator('[data-k="stage"]').first).to_contain_text("潜在客户")
            expect(page.get_by_role("img", name="销售漏斗")).to_be_visible()
            check_fits_and_is_accessible(page)
            page.screenshot(path=str(tmp_path / "funnel-375.png"), full_page=True)
            # filtering keeps the page: her region only
            page.get_by_label("地区").select_option("上海")
            page.get_by_role("button", name="筛选").click()
            expect(page).to_have_url(re.compile(r"region=%E4%B8%8A%E6%B5%B7"))
            check_fits_and_is_accessible(page)
            # the RFM page, then the first segment that has customers
            page.goto(f"{server.url}/reports")
            page.get_by_role("link", name="客户价值（RFM）").click()
            expect(page.locator('[data-k="segment"]')).to_have_count(8)
            check_fits_and_is_accessible(page)
            page.screenshot(path=str(tmp_path / "rfm-375.png"), full_page=True)
            counts = page.locator('[data-k="customers"]').all_inner_texts()
            index = next(i for i, n in enumerate(counts) if int(n.replace(",", "")) > 0)
            segment = page.locator('[data-k="segment"]').nth(index)
            name = segment.get_attribute("data-segment") or ""
            segment.get_by_role("link").click()
            expect(page.get_by_role("heading", level=1)).to_contain_text(name)
            expect(page.locator('[data-k="member"]')).to_have_count(int(counts[index].replace(",", "")))
            check_fits_and_is_accessible(page)
            page.screenshot(path=str(tmp_path / "rfm-segment-375.png"), full_page=True)
            # a customer of the segment opens its profile: one of hers
            member = page.locator('[data-k="member"] a').first
            customer_name = member.inner_text()
            member.click()
            expect(page).to_have_url(re.compile(r"/customers/\d+$"))
            expect(page.get_by_role("heading", name=customer_name)).to_be_visible()
            page.screenshot(path=str(tmp_path / "customer-375.png"), full_page=True)
            # the performance page fits too
            page.goto(f"{server.url}/reports/performance")
            check_fits_and_is_accessible(page)
            page.screenshot(path=str(tmp_path / "performance-375.png"), full_page=True)
        finally:
            browser.close()
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        "customer-375.png", "funnel-375.png", "performance-375.png", "rfm-375.png", "rfm-segment-375.png"]
