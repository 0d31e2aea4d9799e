"""The profile page in a real browser at phone size: Debian's Chromium driven by Playwright.

What a salesperson does from a WeCom reminder card: open the profile, read it on a
390 px wide screen, go to the task, search for another customer. Chromium and the
Noto CJK fonts are system packages; without them this test fails (it never skips),
because a page whose Chinese renders as empty boxes is broken for every user.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from connectors.kit.sandbox import serve_in_thread
from hub.access import Role
from hub.web.auth import SESSION_COOKIE
from tests.support.access import issue_session

pytestmark = pytest.mark.e2e  # starts a server (and a browser)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
INSTALL = "apt-get install -y --no-install-recommends chromium fonts-noto-cjk"
HEADINGS = ("基本信息", "联系人/决策链", "应收/回款/信用", "订单", "待办", "互动记录", "审批", "数据完整性")
PHONE = {"width": 390, "height": 844}


def _fonts_used(page, selector: str) -> list[str]:
    """The platform fonts Chromium actually drew ``selector``'s text with (DevTools protocol)."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument")["root"]["nodeId"]
    node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
    return [f["familyName"] for f in cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]]


def test_profile_page_on_a_phone_renders_chinese_and_links_work(web_app, web_data, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing; install it (as root): {INSTALL}")
    shot = tmp_path / "profile-phone.png"
    with serve_in_thread(web_app) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True,
                                          locale="zh-CN")
            # signed in as the focus customer's salesperson (sign-in itself: test_browser_signin.py)
            context.add_cookies([{"name": SESSION_COOKIE, "url": server.url,
                                  "value": issue_session(web_data.db, Role.SALES, user_id=web_data.owner_id)}])
            page = context.new_page()
            reply = page.goto(f"{server.url}/customers/{web_data.focus_id}")
            assert reply is not None and reply.status == 200
            expect(page).to_have_title("杭州示例智能科技有限公司 · 客户360")
            for heading in HEADINGS:
                expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
            expect(page.locator('[data-k="overdue"][data-currency="CNY"]')).to_have_text("1,550.00")
            expect(page.locator('[data-k="over-limit"]')).to_be_visible()
            # Chinese drawn with a CJK font, not as empty boxes
            fonts = _fonts_used(page, "#finance h2")
            assert any("CJK" in f for f in fonts), f"no CJK font drew the headings ({fonts}); {INSTALL}"
            # fits the phone: nothing wider than the screen
            assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
            page.screenshot(path=str(shot), full_page=True)

            # from the profile to the task and back
            page.get_by_role("link", name="催收逾期货款").click()
            expect(page).to_have_url(f"{server.url}/tasks/{web_data.focus_task_id}")
            expect(page.get_by_role("heading", name="推送状态")).to_be_visible()
            page.get_by_role("link", name="杭州示例智能科技有限公司").click()
            expect(page).to_have_url(f"{server.url}/customers/{web_data.focus_id}")

            # the search box in the header, in Chinese
            page.get_by_role("searchbox", name="搜索客户").fill("示例智能")
            page.get_by_role("searchbox", name="搜索客户").press("Enter")
            expect(page.locator('[data-k="hit"]')).to_have_count(1)
            expect(page.locator('[data-k="hit"] a')).to_have_text("杭州示例智能科技有限公司")
        finally:
            browser.close()
    assert shot.stat().st_size > 50_000  # a real page, not a blank one
