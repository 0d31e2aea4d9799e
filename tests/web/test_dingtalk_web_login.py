"""DingTalk's browser (QR) login over real HTTP, against the DingTalk sandbox standing in for
login.dingtalk.com and the v1.0 API (reference/messaging-apis.md §6): a person signed in to
DingTalk in the browser lands on their own customer (not another team's); reused, expired,
another app's and unknown authCodes are refused; a unionId the directory does not hold is
refused with a clear page; the flow is off unless ``HUB_DINGTALK__WEB_LOGIN`` is on.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from connectors.dingtalk.sandbox import SANDBOX as DINGTALK_SANDBOX
from connectors.dingtalk.sandbox import SANDBOX_APP_KEY
from connectors.dingtalk.sandbox.credentials import SANDBOX_OTHER_APP_KEY
from connectors.dingtalk.sandbox.seed import dingtalk_directory
from connectors.kit.sandbox import serve_in_thread
from connectors.kit.sandbox.server import free_port
from hub.web import create_web_app
from hub.web.auth import SESSION_COOKIE
from tests.conftest import rows, scalar
from tests.support.access import Teams, build_teams

pytestmark = pytest.mark.e2e  # starts servers

ALICE, STRANGER = [m for m in dingtalk_directory() if m.active][:2]


@dataclass
class Site:
    """The hub on ``url``, the DingTalk sandbox behind its sign-in, and the sandbox's clock."""

    url: str
    dingtalk: Any
    teams: Teams
    clock: list[float]

    def browser(self) -> httpx.Client:
        """A fresh browser with its own cookies; each redirect is followed by hand."""
        return httpx.Client(base_url=self.url, follow_redirects=False, timeout=30)

    def scan(self, userid: str | None) -> None:
        """Who is signed in to DingTalk in the browser (who scans the QR code)."""
        assert httpx.post(self.dingtalk.url + "/__sandbox__/browser-user", json={"userid": userid}).status_code == 200

    def auth_code(self, client_id: str = SANDBOX_APP_KEY) -> str:
        """An authCode straight from the emulated login page, for app ``client_id``."""
        page = httpx.get(self.dingtalk.url + "/oauth2/auth", params={
            "redirect_uri": "http://elsewhere.invalid/cb", "response_type": "code", "client_id": client_id,
            "scope": "openid", "state": "x", "prompt": "consent"})
        assert page.status_code == 302
        return str(dict(httpx.URL(page.headers["location"]).params)["authCode"])


def make_site(db: Any, settings: Any, web_login: bool, **override: Any) -> Iterator[Site]:
    clock = [time.time()]
    teams = build_teams(db, alice_dingtalk=ALICE.userid)
    with db.engine.begin() as conn:  # the directory sync keeps each member's unionId
        conn.execute(sa.text("UPDATE internal_user SET dingtalk_unionid = :u WHERE id = :id"),
                     {"u": ALICE.unionid, "id": teams.alice})
    port = free_port()
    with serve_in_thread(DINGTALK_SANDBOX.create_app(clock=lambda: clock[0])) as dingtalk:
        configured = settings.model_copy(update={"public_url": f"http://127.0.0.1:{port}"})
        ding = DINGTALK_SANDBOX.client_settings(dingtalk.url, settings.connector("dingtalk"))
        configured = configured.with_connector("dingtalk", **{**ding.model_dump(), "web_login": web_login, **override})
        with serve_in_thread(create_web_app(db, configured), port=port) as hub:
            yield Site(hub.url, dingtalk, teams, clock)


@pytest.fixture
def site(db, settings) -> Iterator[Site]:
    yield from make_site(db, settings, web_login=True)


def qr_round_trip(site: Site, http: httpx.Client, next_path: str) -> httpx.Response:
    """Start the QR login, pass DingTalk's login page, return the hub's answer to the callback."""
    start = http.get("/auth/dingtalk/start", params={"next": next_path, "web": "1"})
    assert start.status_code == 302, start.text
    page = httpx.get(start.headers["location"], follow_redirects=False)
    assert page.status_code == 302, page.text
    callback = httpx.URL(page.headers["location"])
    assert str(callback).startswith(site.url + "/auth/dingtalk/web?")
    return http.get(callback.path, params=dict(callback.params))


def test_given_a_member_signed_in_to_dingtalk_when_they_scan_then_they_see_their_customer_only(db, site):
    site.scan(ALICE.userid)
    target = f"/customers/{site.teams.alice_customer}"
    with site.browser() as http:
        assert 'data-k="dingtalk-qr"' in http.get("/login").text  # the sign-in page offers it
        back = qr_round_trip(site, http, target)
        assert back.status_code == 303 and back.headers["location"] == target
        assert http.get(target).status_code == 200
        assert http.get(f"/customers/{site.teams.bob_customer}").status_code == 404
        assert http.get(f"/api/customers/{site.teams.bob_customer}").status_code == 404
    [session] = rows(db, "SELECT role, user_id, via FROM web_session")
    assert tuple(session) == ("sales", site.teams.alice, "dingtalk")
    codes = httpx.get(site.dingtalk.url + "/__sandbox__/state").json()["web_login_codes"]
    assert (codes["issued"], codes["redeemed"]) == (1, 1)


def test_the_login_url_is_dingtalks_documented_one(site):
    with site.browser() as http:
        start = http.get("/auth/dingtalk/start", params={"next": "/customers/7", "web": "1"})
    url = httpx.URL(start.headers["location"])
    assert url.path == "/oauth2/auth" and str(url).startswith(site.dingtalk.url)
    params = dict(url.params)
    assert params["client_id"] == SANDBOX_APP_KEY and params["response_type"] == "code"
    assert params["scope"] == "openid" and params["prompt"] == "consent"
    assert params["redirect_uri"] == site.url + "/auth/dingtalk/web"
    assert bytes.fromhex(params["state"][32:]).decode() == "/customers/7"
    bound = next(c for c in start.headers.get_list("set-cookie") if c.startswith("hub_signin="))
    assert params["state"][:32] in bound and "HttpOnly" in bound


@pytest.mark.parametrize("trouble", ["reused", "expired", "foreign", "unknown"])
def test_a_reused_expired_foreign_or_unknown_auth_code_is_refused(db, site, trouble):
    site.scan(ALICE.userid)
    if trouble == "reused":
        code = site.auth_code()
        with site.browser() as spender:  # someone spends the code first
            state = dict(httpx.URL(spender.get("/auth/dingtalk/start", params={"web": "1"})
                                   .headers["location"]).params)["state"]
            assert spender.get("/auth/dingtalk/web", params={"authCode": code, "state": state}).status_code == 303
    elif trouble == "foreign":
        code = site.auth_code(SANDBOX_OTHER_APP_KEY)  # issued to another app of the corp
    elif trouble == "expired":
        code = site.auth_code()
        site.clock[0] += 301
    else:
        code = secrets.token_hex(16)
    sessions_before = scalar(db, "SELECT count(*) FROM web_session")
    with site.browser() as http:
        state = dict(httpx.URL(http.get("/auth/dingtalk/start", params={"web": "1"}).headers["location"])
                     .params)["state"]
        reply = http.get("/auth/dingtalk/web", params={"authCode": code, "state": state})
    assert reply.status_code == 400 and "登录码无效、已使用或已过期" in reply.text
    assert SESSION_COOKIE not in reply.cookies
    assert scalar(db, "SELECT count(*) FROM web_session") == sessions_before
    refusal = rows(db, "SELECT detail FROM audit_log WHERE system = 'access' AND outcome = 'refused'")[-1]
    assert refusal.detail["reason"] == "SignInCodeError" and refusal.detail["error"] == "invalidAuthCode"
    assert code not in str(rows(db, "SELECT * FROM audit_log"))  # no code in the audit


def test_a_state_from_another_browser_is_refused(site):
    site.scan(ALICE.userid)
    code = site.auth_code()
    with site.browser() as victim, site.browser() as attacker:
        state = dict(httpx.URL(attacker.get("/auth/dingtalk/start", params={"web": "1"}).headers["location"])
                     .params)["state"]
        reply = victim.get("/auth/dingtalk/web", params={"authCode": code, "state": state})
    assert reply.status_code == 400 and "不是在本浏览器中发起的" in reply.text


def test_a_union_id_unknown_to_the_directory_is_refused_with_a_clear_page(db, site):
    site.scan(STRANGER.userid)  # a DingTalk member the hub's directory does not hold
    with site.browser() as http:
        reply = qr_round_trip(site, http, "/customers")
    assert reply.status_code == 403 and "通讯录中没有找到您的账号" in reply.text
    assert SESSION_COOKIE not in reply.cookies
    assert scalar(db, "SELECT count(*) FROM web_session") == 0
    [refusal] = rows(db, "SELECT detail FROM audit_log WHERE system = 'access' AND outcome = 'refused'")
    assert refusal.detail["reason"] == "not a known active member"


def test_an_inactive_internal_user_is_refused(db, site):
    with db.engine.begin() as conn:
        conn.execute(sa.text("UPDATE internal_user SET active = false WHERE id = :id"), {"id": site.teams.alice})
    site.scan(ALICE.userid)
    with site.browser() as http:
        assert qr_round_trip(site, http, "/customers").status_code == 403
    assert scalar(db, "SELECT count(*) FROM web_session") == 0


def test_without_the_setting_there_is_no_qr_login(db, settings):
    for site in make_site(db, settings, web_login=False):
        with site.browser() as http:
            assert 'data-k="dingtalk-qr"' not in http.get("/login").text
            reply = http.get("/auth/dingtalk/start", params={"web": "1"})
        assert reply.status_code == 404 and "钉钉扫码登录未开启" in reply.text


def test_a_wrong_app_secret_is_refused_by_dingtalk_and_shown_as_unreachable_without_the_secret(db, settings, caplog):
    wrong = "not-the-app-secret-" + secrets.token_hex(4)
    for site in make_site(db, settings, web_login=True, app_secret=SecretStr(wrong)):
        site.scan(ALICE.userid)
        with site.browser() as http:
            reply = qr_round_trip(site, http, "/customers")
        assert reply.status_code == 502 and "暂时无法连接钉钉" in reply.text
        assert scalar(db, "SELECT count(*) FROM web_session") == 0
        codes = httpx.get(site.dingtalk.url + "/__sandbox__/state").json()["web_login_codes"]
        assert codes["redeemed"] == 0  # the sandbox refused the exchange before spending the code
    [refusal] = rows(db, "SELECT detail FROM audit_log WHERE system = 'access' AND outcome = 'refused'")
    assert refusal.detail["reason"] == "PermanentError" and refusal.detail["error"] == "invalidClientSecret"
    assert wrong not in str(rows(db, "SELECT * FROM audit_log")) and wrong not in caplog.text
