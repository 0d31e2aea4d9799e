"""Signing in over real HTTP: the password form (CSRF, lockout, sign-out) and both chat
platforms' code flows against their sandboxes (reused, expired, foreign and unknown codes,
a state from another browser, an open-redirect attempt, a person not in the directory).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from connectors.dingtalk.sandbox import SANDBOX as DINGTALK_SANDBOX
from connectors.dingtalk.sandbox.credentials import SANDBOX_OTHER_APP_KEY
from connectors.kit.sandbox import serve_in_thread
from connectors.kit.sandbox.server import free_port
from connectors.kit.sandbox.universe import demo_directory
from connectors.wecom.sandbox import SANDBOX as WECOM_SANDBOX
from connectors.wecom.sandbox import SANDBOX_OTHER_AGENT_ID
from hub.access import Role
from hub.access.accounts import add_login
from hub.access.principal import cli_principal
from hub.web import create_web_app
from hub.web.auth import SESSION_COOKIE
from tests.conftest import rows, scalar
from tests.support.access import Teams, build_teams

pytestmark = pytest.mark.e2e  # starts servers

PASSWORD = "correct horse battery"
WECOM_MEMBER = demo_directory()[0].userid  # a member of the WeCom and DingTalk sandboxes' directories


@dataclass
class Site:
    """The hub (on ``url``) with the WeCom and DingTalk sandboxes behind its sign-in."""

    url: str
    wecom: Any  # RunningServer of the WeCom sandbox
    dingtalk: Any
    teams: Teams
    clock: list[float]  # the sandboxes' clock, to expire codes

    def browser(self) -> httpx.Client:
        """A fresh browser: its own cookies, redirects not followed (each hop is checked)."""
        return httpx.Client(base_url=self.url, follow_redirects=False, timeout=30)

    def wecom_code(self, userid: str = WECOM_MEMBER, agentid: int | None = None) -> str:
        body: dict[str, Any] = {"userid": userid, **({"agentid": agentid} if agentid else {})}
        return str(httpx.post(self.wecom.url + "/__sandbox__/oauth/code", json=body).json()["code"])

    def dingtalk_code(self, userid: str, app_key: str | None = None) -> str:
        body = {"userid": userid, **({"appKey": app_key} if app_key else {})}
        return str(httpx.post(self.dingtalk.url + "/__sandbox__/authcode", json=body).json()["code"])


@pytest.fixture
def site(db, settings) -> Iterator[Site]:
    clock = [time.time()]
    ding_member = next(iter(_dingtalk_members()))
    teams = build_teams(db, alice_wecom=WECOM_MEMBER.upper(), alice_dingtalk=ding_member)  # WeCom ids: any case
    port = free_port()
    with serve_in_thread(WECOM_SANDBOX.create_app(clock=lambda: clock[0])) as wecom, \
            serve_in_thread(DINGTALK_SANDBOX.create_app(clock=lambda: clock[0])) as dingtalk:
        configured = settings.model_copy(update={"public_url": f"http://127.0.0.1:{port}"})
        configured = configured.with_connector(
            "wecom", **WECOM_SANDBOX.client_settings(wecom.url, settings.connector("wecom")).model_dump())
        configured = configured.with_connector(
            "dingtalk", **DINGTALK_SANDBOX.client_settings(dingtalk.url, settings.connector("dingtalk")).model_dump())
        with serve_in_thread(create_web_app(db, configured), port=port) as hub:
            yield Site(hub.url, wecom, dingtalk, teams, clock)


def _dingtalk_members() -> list[str]:
    from connectors.dingtalk.sandbox.seed import dingtalk_directory

    return [m.userid for m in dingtalk_directory() if m.active]


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert match, "the form carries a CSRF token"
    return match.group(1)


def sign_in(http: httpx.Client, username: str, password: str, next_path: str = "/customers") -> httpx.Response:
    form = http.get("/login", params={"next": next_path})
    return http.post("/login", data={"csrf": csrf_of(form.text), "username": username, "password": password,
                                     "next": next_path})


# ---------------------------------------------------------------------- password


@pytest.fixture
def alice_login(db, site) -> str:
    with db.engine.begin() as conn:
        add_login(conn, cli_principal(), "alice", PASSWORD, Role.SALES, str(site.teams.alice))
    return "alice"


def test_password_sign_in_lands_on_next_with_a_hardened_cookie_and_a_hashed_session(db, site, alice_login):
    with site.browser() as http:
        reply = sign_in(http, "alice", PASSWORD, f"/customers/{site.teams.alice_customer}")
        assert reply.status_code == 303 and reply.headers["location"] == f"/customers/{site.teams.alice_customer}"
        cookie = next(c for c in reply.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE + "="))
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
        assert "Secure" not in cookie  # http://; https public URLs get Secure (test_signin_cookie_is_secure_on_https)
        assert http.get(f"/customers/{site.teams.alice_customer}").status_code == 200
        assert http.get(f"/customers/{site.teams.bob_customer}").status_code == 404
        value = http.cookies[SESSION_COOKIE]
    [session] = rows(db, "SELECT * FROM web_session")
    assert (session.role, session.user_id, session.via) == ("sales", site.teams.alice, "password")
    assert value not in session.token_hash and len(session.token_hash) == 64  # only its SHA-256
    assert scalar(db, "SELECT count(*) FROM audit_log WHERE system = 'access' AND operation = 'signin' "
                      "AND outcome = 'ok'") == 1


def test_a_login_is_locked_after_five_wrong_passwords_even_for_the_right_one(db, site, alice_login):
    with site.browser() as http:
        for _ in range(5):
            refused = sign_in(http, "alice", "wrong password!")
            assert refused.status_code == 401 and "用户名或密码错误" in refused.text
        locked = sign_in(http, "alice", PASSWORD)
        unknown = sign_in(http, "nobody", PASSWORD)
    assert locked.status_code == 401 and SESSION_COOKIE not in locked.cookies
    # the person cannot tell a locked login from a wrong password or an unknown user
    assert re.sub(r'value="[0-9a-f]{32}"', "", locked.text).replace("alice", "") == \
        re.sub(r'value="[0-9a-f]{32}"', "", unknown.text).replace("nobody", "")
    [login] = rows(db, "SELECT failed_attempts, locked_until > now() AS locked FROM app_login")
    assert (login.failed_attempts, login.locked) == (5, True)
    assert scalar(db, "SELECT count(*) FROM web_session") == 0
    reasons = [r.detail["reason"] for r in rows(db, "SELECT detail FROM audit_log WHERE system = 'access' "
                                                       "AND outcome = 'refused' ORDER BY id")]
    assert reasons == ["wrong password"] * 4 + ["locked now", "locked", "unknown"]


def test_a_sign_in_post_without_the_forms_csrf_token_is_refused_and_changes_nothing(db, site, alice_login):
    with site.browser() as http:
        http.get("/login")  # the browser has a CSRF cookie...
        forged = http.post("/login", data={"csrf": "0" * 32, "username": "alice", "password": PASSWORD})
        bare = httpx.post(site.url + "/login", data={"username": "alice", "password": PASSWORD})  # ...another has none
    assert (forged.status_code, bare.status_code) == (403, 403)
    assert scalar(db, "SELECT count(*) FROM web_session") == 0
    assert scalar(db, "SELECT failed_attempts FROM app_login") == 0


def test_sign_out_revokes_the_session_and_needs_the_forms_token(db, site, alice_login):
    with site.browser() as http:
        sign_in(http, "alice", PASSWORD)
        assert http.post("/logout", data={"csrf": "f" * 32}).status_code == 403  # a forged sign-out
        assert http.get("/customers").status_code == 200
        confirm = http.get("/logout")
        done = http.post("/logout", data={"csrf": csrf_of(confirm.text)})
        assert done.status_code == 303 and done.headers["location"] == "/login"
        assert http.get("/customers").status_code == 303  # back to the sign-in page
    [session] = rows(db, "SELECT revoked_at FROM web_session")
    assert session.revoked_at is not None


def test_next_is_only_ever_a_local_path(site, alice_login):
    for hostile in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "/auth/wecom?code=x",
                    "javascript:alert(1)"):
        with site.browser() as http:
            reply = sign_in(http, "alice", PASSWORD, hostile)
        assert reply.status_code == 303 and reply.headers["location"] == "/customers", hostile


def test_signin_cookie_is_secure_on_https(db, settings):
    build_teams(db)
    with db.engine.begin() as conn:
        add_login(conn, cli_principal(), "admin1", PASSWORD, Role.ADMIN)
    https = settings.model_copy(update={"public_url": "https://hub.example.com"})
    with serve_in_thread(create_web_app(db, https)) as hub, \
            httpx.Client(base_url=hub.url, follow_redirects=False) as http:
        form = http.get("/login")
        csrf_cookie = next(c for c in form.headers.get_list("set-cookie") if c.startswith("hub_csrf="))
        assert "Secure" in csrf_cookie and "SameSite=strict" in csrf_cookie
        # (a Secure cookie is not sent back over this test's plain http: send it as a browser on https would)
        token = csrf_of(form.text)
        reply = http.post("/login", data={"csrf": token, "username": "admin1", "password": PASSWORD},
                          headers={"Cookie": f"hub_csrf={token}"})
    cookie = next(c for c in reply.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE + "="))
    assert "Secure" in cookie


# ---------------------------------------------------------------------- WeCom OAuth


def wecom_round_trip(site: Site, http: httpx.Client, next_path: str, in_app_user: str | None = WECOM_MEMBER
                     ) -> httpx.Response:
    """Open the card link and follow WeCom's OAuth page back to the hub's callback."""
    httpx.post(site.wecom.url + "/__sandbox__/oauth/in-app-user", json={"userid": in_app_user})
    start = http.get("/auth/wecom/start", params={"next": next_path})
    assert start.status_code == 302
    authorize = httpx.get(start.headers["location"], follow_redirects=False)
    assert authorize.status_code == 302, authorize.text
    return http.get(authorize.headers["location"])


def test_wecom_card_link_signs_the_salesperson_in_by_the_oauth_code_flow(db, site):
    target = f"/customers/{site.teams.alice_customer}"
    with site.browser() as http:
        back = wecom_round_trip(site, http, target)
        assert back.status_code == 303 and back.headers["location"] == target
        assert http.get(target).status_code == 200
        assert http.get(f"/customers/{site.teams.bob_customer}").status_code == 404
        # a second card link goes straight through: already signed in
        again = http.get("/auth/wecom/start", params={"next": target})
        assert again.status_code == 303 and again.headers["location"] == target
    [session] = rows(db, "SELECT role, user_id, via FROM web_session")
    assert tuple(session) == ("sales", site.teams.alice, "wecom")
    state = httpx.get(site.wecom.url + "/__sandbox__/state").json()["signin_codes"]
    assert (state["issued"], state["redeemed"]) == (1, 1)


def test_wecom_authorize_url_is_the_documented_one(site):
    with site.browser() as http:
        start = http.get("/auth/wecom/start", params={"next": "/customers/7"})
    url = httpx.URL(start.headers["location"])
    assert url.path == "/connect/oauth2/authorize" and start.headers["location"].endswith("#wechat_redirect")
    params = dict(url.params)
    assert params["appid"] == "wwe7b5c3a1d9f24680" and params["scope"] == "snsapi_base"
    assert params["response_type"] == "code" and params["redirect_uri"] == site.url + "/auth/wecom"
    assert re.fullmatch(r"[0-9a-f]{32}[0-9a-f]*", params["state"]) and len(params["state"]) <= 128
    assert bytes.fromhex(params["state"][32:]).decode() == "/customers/7"
    bound = next(c for c in start.headers.get_list("set-cookie") if c.startswith("hub_signin="))
    assert params["state"][:32] in bound and "HttpOnly" in bound


@pytest.mark.parametrize("trouble", ["reused", "expired", "foreign", "unknown"])
def test_wecom_refuses_a_reused_expired_foreign_or_unknown_code(db, site, trouble):
    if trouble == "reused":
        with site.browser() as first:
            callback = wecom_round_trip(site, first, "/customers").request.url
        code = dict(callback.params)["code"]
    elif trouble == "foreign":
        code = site.wecom_code(agentid=SANDBOX_OTHER_AGENT_ID)  # another app of the same corp
    elif trouble == "expired":
        code = site.wecom_code()
        site.clock[0] += 301
    else:
        code = "0123456789abcdef0123456789abcdef"
    with site.browser() as http:
        state = dict(httpx.URL(http.get("/auth/wecom/start").headers["location"]).params)["state"]
        reply = http.get("/auth/wecom", params={"code": code, "state": state})
    assert reply.status_code == 400 and "登录码无效、已使用或已过期" in reply.text
    assert SESSION_COOKIE not in reply.cookies
    assert scalar(db, "SELECT count(*) FROM web_session WHERE revoked_at IS NULL") == (1 if trouble == "reused" else 0)
    [refusal] = rows(db, "SELECT detail FROM audit_log WHERE system = 'access' AND outcome = 'refused'")
    assert refusal.detail["reason"] == "SignInCodeError" and refusal.detail["error"] == "40029"
    assert code not in str(rows(db, "SELECT * FROM audit_log"))  # no code in the audit


def test_a_state_from_another_browser_is_refused_before_the_code_is_spent(site):
    code = site.wecom_code()
    with site.browser() as victim_of_login_csrf, site.browser() as attacker:
        state = dict(httpx.URL(attacker.get("/auth/wecom/start").headers["location"]).params)["state"]
        reply = victim_of_login_csrf.get("/auth/wecom", params={"code": code, "state": state})
    assert reply.status_code == 400 and "不是在本浏览器中发起的" in reply.text
    with site.browser() as http:  # the code is still good for the browser that started a sign-in
        state = dict(httpx.URL(http.get("/auth/wecom/start").headers["location"]).params)["state"]
        assert http.get("/auth/wecom", params={"code": code, "state": state}).status_code == 303


def test_a_wecom_member_unknown_to_the_directory_is_not_signed_in(db, site):
    stranger = demo_directory()[1].userid
    with site.browser() as http:
        reply = wecom_round_trip(site, http, "/customers", in_app_user=stranger)
    assert reply.status_code == 403 and "通讯录中没有找到您的账号" in reply.text
    assert scalar(db, "SELECT count(*) FROM web_session") == 0


def test_wecom_web_login_uses_the_sso_page_and_the_same_exchange(site):
    httpx.post(site.wecom.url + "/__sandbox__/oauth/in-app-user", json={"userid": WECOM_MEMBER})
    with site.browser() as http:
        start = http.get("/auth/wecom/start", params={"next": "/customers", "web": 1})
        url = httpx.URL(start.headers["location"])
        assert url.path == "/wwlogin/sso/login" and dict(url.params)["login_type"] == "CorpApp"
        back = http.get(httpx.get(str(url), follow_redirects=False).headers["location"])
    assert back.status_code == 303 and back.headers["location"] == "/customers"


# ---------------------------------------------------------------------- DingTalk 免登


def dingtalk_state(http: httpx.Client, next_path: str) -> str:
    page = http.get("/auth/dingtalk/start", params={"next": next_path})
    assert page.status_code == 200
    nonce = re.search(r"script-src 'nonce-([^']+)'", page.headers["content-security-policy"])
    assert nonce and f'nonce="{nonce.group(1)}"' in page.text  # only this page's own scripts run
    match = re.search(r"state=([0-9a-f]+)", page.text)
    assert match
    return match.group(1)


def test_dingtalk_card_link_signs_the_salesperson_in_with_a_mianden_code(db, site):
    member = _dingtalk_members()[0]
    target = f"/customers/{site.teams.alice_customer}"
    with site.browser() as http:
        state = dingtalk_state(http, target)
        code = site.dingtalk_code(member)
        back = http.get("/auth/dingtalk", params={"code": code, "state": state})
        assert back.status_code == 303 and back.headers["location"] == target
        assert http.get(target).status_code == 200
        assert http.get(f"/api/customers/{site.teams.bob_customer}").status_code == 404
        # the same code again, from a new sign-in: refused
        http.cookies.delete(SESSION_COOKIE)
        again = http.get("/auth/dingtalk", params={"code": code, "state": dingtalk_state(http, target)})
    assert again.status_code == 400 and "已使用" in again.text
    [session] = rows(db, "SELECT role, user_id, via FROM web_session")
    assert tuple(session) == ("sales", site.teams.alice, "dingtalk")


@pytest.mark.parametrize("trouble", ["expired", "foreign"])
def test_dingtalk_refuses_an_expired_or_foreign_code(db, site, trouble):
    member = _dingtalk_members()[0]
    code = site.dingtalk_code(member, SANDBOX_OTHER_APP_KEY if trouble == "foreign" else None)
    if trouble == "expired":
        site.clock[0] += 301
    with site.browser() as http:
        reply = http.get("/auth/dingtalk", params={"code": code, "state": dingtalk_state(http, "/customers")})
    assert reply.status_code == 400
    assert scalar(db, "SELECT count(*) FROM web_session") == 0
    [refusal] = rows(db, "SELECT detail FROM audit_log WHERE system = 'access' AND outcome = 'refused'")
    assert refusal.detail["error"] == "40078"


def test_a_member_signed_in_from_chat_gets_their_directory_role(db, site):
    with db.engine.begin() as conn:
        conn.execute(sa.text("UPDATE internal_user SET role = 'finance' WHERE id = :id"), {"id": site.teams.alice})
    with site.browser() as http:
        wecom_round_trip(site, http, "/customers")
        assert http.get(f"/customers/{site.teams.bob_customer}").status_code == 200  # finance sees all
    assert scalar(db, "SELECT role FROM web_session") == "finance"
