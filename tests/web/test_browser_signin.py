"""A salesperson opens a reminder card from the WeCom sandbox in a real browser (Debian's
Chromium, driven by Playwright) and is signed in by WeCom's OAuth code flow: no password.

Given alice (a member of the WeCom sandbox's directory) owns one customer and bob another,
when a reminder for alice's task goes out through the outbox to the WeCom sandbox, and the
browser opens the card's link while the sandbox's in-app user is alice, then it lands on
alice's customer, signed in, and bob's customer is "not found".
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from playwright.sync_api import expect, sync_playwright

from connectors.kit.sandbox import serve_in_thread
from connectors.kit.sandbox.server import free_port
from connectors.kit.sandbox.universe import demo_directory
from hub.rules.reminders import ReminderPolicy, evaluate_reminders
from hub.runtime import HubRuntime
from hub.web import create_web_app
from tests.conftest import rows
from tests.support.access import build_teams
from tests.web.test_browser import CHROMIUM, CHROMIUM_ARGS, INSTALL, PHONE

pytestmark = pytest.mark.e2e  # starts servers and a browser


def test_a_salesperson_signs_in_from_a_wecom_card_and_sees_only_their_customers(db, settings, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing; install it (as root): {INSTALL}")
    member = demo_directory()[0].userid
    teams = build_teams(db, alice_wecom=member)
    port = free_port()
    hub_url = f"http://127.0.0.1:{port}"
    runtime = HubRuntime(settings.model_copy(update={"public_url": hub_url}), db, actor="test")
    try:
        wecom = runtime.sandbox("wecom")
        # given a reminder of alice's task, sent to WeCom through the outbox
        with db.begin() as conn:
            conn.execute(sa.text("UPDATE task SET due_at = now() + interval '20 minutes' WHERE id = :id"),
                         {"id": teams.alice_task})
            conn.execute(sa.text("DELETE FROM task WHERE id <> :id"), {"id": teams.alice_task})
            queued = evaluate_reminders(conn, dt.datetime.now(dt.UTC),
                                        ReminderPolicy(profile_base_url=hub_url, channels=("wecom",)))
        assert queued.queued == 1
        assert runtime.dispatcher().drain(wait_for_scheduled=True, timeout_s=60).done == 1
        [message] = httpx.get(f"{wecom.url}/__sandbox__/messages", params={"touser": member}).json()["messages"]
        links = re.findall(r'https?://[^"\s]+', json.dumps(message["content"]))
        card_link = next(u for u in links if "/auth/wecom/start" in u)
        assert card_link == f"{hub_url}/auth/wecom/start?next=/customers/{teams.alice_customer}"
        # and the phone in the sandbox is alice's
        httpx.post(f"{wecom.url}/__sandbox__/oauth/in-app-user", json={"userid": member})

        with serve_in_thread(create_web_app(runtime, runtime.settings), port=port), \
                sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_context(viewport=PHONE, is_mobile=True, locale="zh-CN").new_page()
                # when she taps the card
                page.goto(card_link)
                # then WeCom's OAuth page sent her back with a code and she is signed in on her customer
                # (the browser carries the authorize URL's #wechat_redirect fragment along the redirects)
                expect(page).to_have_url(re.compile(re.escape(f"{hub_url}/customers/{teams.alice_customer}") +
                                                    r"(#wechat_redirect)?$"))
                expect(page.get_by_role("heading", name="苏州艾丽丝测试有限公司")).to_be_visible()
                expect(page.locator('[data-k="whoami"]')).to_contain_text("艾丽丝")
                page.screenshot(path=str(tmp_path / "signed-in.png"), full_page=True)
                # another team's customer is not found, by URL or by search
                reply = page.goto(f"{hub_url}/customers/{teams.bob_customer}")
                assert reply is not None and reply.status == 404
                expect(page.locator('[data-k="not-found"]')).to_be_visible()
                page.goto(f"{hub_url}/customers?q=测试有限公司")
                expect(page.locator('[data-k="hit"]')).to_have_count(1)
                expect(page.locator('[data-k="hit"] a')).to_have_text("苏州艾丽丝测试有限公司")
            finally:
                browser.close()
    finally:
        runtime.close()
    [session] = rows(db, "SELECT role, user_id, via FROM web_session")
    assert tuple(session) == ("sales", teams.alice, "wecom")


def test_a_finance_user_signs_in_with_a_password_sees_masked_mobiles_and_signs_out(db, settings):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing; install it (as root): {INSTALL}")
    from hub.access import Role
    from hub.access.accounts import add_login
    from hub.access.principal import cli_principal

    teams = build_teams(db)
    with db.begin() as conn:
        add_login(conn, cli_principal(), "fiona", "ledger-and-credit", Role.FINANCE)
    with serve_in_thread(create_web_app(db, settings)) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport=PHONE, locale="zh-CN").new_page()
            # a profile link opened without a session asks for a sign-in first, then goes there
            page.goto(f"{server.url}/customers/{teams.bob_customer}")
            expect(page).to_have_url(re.compile(r"/login\?next="))
            page.get_by_label("用户名").fill("fiona")
            page.get_by_label("密码").fill("ledger-and-credit")
            page.get_by_role("button", name="登录").click()
            expect(page).to_have_url(f"{server.url}/customers/{teams.bob_customer}")
            expect(page.locator('[data-k="masked"]')).to_have_text("138****5678")
            assert "13812345678" not in page.content()
            # signing out ends the session: the profile asks for a sign-in again
            page.locator('[data-k="whoami"]').click()
            page.get_by_role("button", name="退出").click()
            expect(page).to_have_url(re.compile(r"/login$"))
            page.goto(f"{server.url}/customers/{teams.bob_customer}")
            expect(page).to_have_url(re.compile(r"/login\?next="))
        finally:
            browser.close()
    assert rows(db, "SELECT revoked_at IS NOT NULL AS ended FROM web_session")[0].ended


def test_a_salesperson_signs_in_from_a_dingtalk_card_with_a_mianden_code(db, settings):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing; install it (as root): {INSTALL}")
    from connectors.dingtalk.sandbox.seed import dingtalk_directory
    from hub.access.links import card_link

    member = next(m.userid for m in dingtalk_directory() if m.active)
    teams = build_teams(db, alice_dingtalk=member)
    port = free_port()
    hub_url = f"http://127.0.0.1:{port}"
    runtime = HubRuntime(settings.model_copy(update={"public_url": hub_url}), db, actor="test")
    try:
        dingtalk = runtime.sandbox("dingtalk")
        httpx.post(f"{dingtalk.url}/__sandbox__/in-app-user", json={"userid": member})
        link = card_link(hub_url, "dingtalk", f"/customers/{teams.alice_customer}")
        with serve_in_thread(create_web_app(runtime, runtime.settings), port=port), \
                sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_context(viewport=PHONE, locale="zh-CN").new_page()
                # the start page runs DingTalk's JSAPI (the sandbox's stand-in), gets a code, comes back
                page.goto(link)
                expect(page).to_have_url(f"{hub_url}/customers/{teams.alice_customer}")
                expect(page.locator('[data-k="whoami"]')).to_contain_text("艾丽丝")
                reply = page.goto(f"{hub_url}/customers/{teams.bob_customer}")
                assert reply is not None and reply.status == 404
            finally:
                browser.close()
    finally:
        runtime.close()
    [session] = rows(db, "SELECT role, user_id, via FROM web_session")
    assert tuple(session) == ("sales", teams.alice, "dingtalk")
