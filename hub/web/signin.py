"""Signing in and out: the password form, WeCom's OAuth code flow, DingTalk's 免登 code.

Routes (an APIRouter the app includes; none of them needs a session):

- ``GET /login?next=`` the form; ``POST /login`` checks it (CSRF: a double-submit token,
  a random ``hub_csrf`` cookie that the form repeats) with the lockout of
  :func:`hub.access.accounts.authenticate`; the same answer for an unknown user, a wrong
  password, a disabled or a locked login.
- ``GET /logout`` a confirmation form; ``POST /logout`` (CSRF: a token derived from the
  session) revokes the session.
- ``GET /auth/wecom/start?next=[&web=1]`` is where a WeCom card links
  (:func:`hub.access.links.card_link`): it binds a random nonce to the browser (the
  ``hub_signin`` cookie), and redirects to WeCom's in-app OAuth page (or, ``web=1``, the
  QR web login) with ``state`` = nonce + the hex of ``next``; WeCom comes back to
  ``GET /auth/wecom?code=&state=``, which checks the nonce against the cookie, exchanges
  the code (``auth/getuserinfo``), maps the userid to ``internal_user.wecom_userid`` and
  starts a session.
- ``GET /auth/dingtalk/start?next=`` is where a DingTalk card links: a page whose only
  script (allowed by a per-response CSP nonce) asks the DingTalk app for a 免登 code
  (``dd.runtime.permission.requestAuthCode``) and comes back to
  ``GET /auth/dingtalk?code=&state=``: exchanged with ``topapi/v2/user/getuserinfo``,
  mapped through ``internal_user.dingtalk_userid``. With ``web=1`` (and
  ``HUB_DINGTALK__WEB_LOGIN``) it redirects instead to DingTalk's browser (QR) login
  (``login.dingtalk.com/oauth2/auth``), which comes back to
  ``GET /auth/dingtalk/web?authCode=&state=``: the code is exchanged for the person's user
  token and their unionId (``/v1.0/oauth2/userAccessToken``, ``/v1.0/contact/users/me``),
  mapped through ``internal_user.dingtalk_unionid`` (kept by the directory sync).

``next`` is always a local path (:func:`hub.access.links.local_path`): no open redirect.
The session cookie ``hub_session`` is HttpOnly, SameSite=Lax, and Secure when
``HUB_PUBLIC_URL`` is https; only its SHA-256 is stored. Every sign-in, refusal and
sign-out is in the audit log (system ``access``), without codes, passwords or tokens.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from hub.access.accounts import (
    LoginPolicy,
    SignInRefused,
    audit_access,
    authenticate,
    directory_principal,
    end_session,
    login_principal,
    start_session,
    user_by_chat_id,
)
from hub.access.links import local_path
from hub.access.secrets import same
from hub.database import Database
from hub.errors import ConfigError, ConnectorError, SignInCodeError
from hub.settings import Settings
from hub.web.auth import SESSION_COOKIE, principal_from_request

log = logging.getLogger(__name__)

CSRF_COOKIE = "hub_csrf"
STATE_COOKIE = "hub_signin"
STATE_TTL_S = 600
MAX_FORM_BYTES = 4096
NONCE_HEX = 32
# WeCom allows a-zA-Z0-9 in state, at most 128 bytes: the nonce and the hex of ``next``.
MAX_STATE_CHARS = 128
REFUSED = "用户名或密码错误，或账号已被锁定。请稍后再试或联系管理员。"

Renderer = Callable[..., HTMLResponse]
ClientFor = Callable[[str], Any]
SectionFor = Callable[[str], Any]


def encode_state(nonce: str, next_path: str) -> str:
    """``state`` for the platform: the nonce, then ``next`` in hex (dropped when too long)."""
    encoded = next_path.encode("utf-8").hex()
    if len(nonce) + len(encoded) > MAX_STATE_CHARS:
        encoded = ""
    return nonce + encoded


def decode_state(state: str) -> tuple[str, str] | None:
    """(nonce, next) from a ``state``; None when malformed."""
    if not 0 < len(state) <= MAX_STATE_CHARS or len(state) < NONCE_HEX:
        return None
    try:
        nonce, rest = state[:NONCE_HEX], bytes.fromhex(state[NONCE_HEX:]).decode("utf-8")
        int(nonce, 16)
    except ValueError:
        return None
    return nonce, local_path(rest)


def session_csrf(cookie: str) -> str:
    """The CSRF token of forms posted by a signed-in browser: derived from its session."""
    return hashlib.sha256(f"csrf:{cookie}".encode()).hexdigest()[:32]


async def read_form(request: Request, max_fields: int = 10) -> dict[str, str]:
    """The posted URL-encoded form's fields (the first value of each); empty when it is too
    big, not UTF-8 or has more than ``max_fields`` fields (the handler then refuses it)."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return {}
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=max_fields)
    except (UnicodeDecodeError, ValueError):
        return {}
    return {k: v[0] for k, v in parsed.items() if v}


def create_signin_router(db: Database, settings: Settings, render: Renderer, client_for: ClientFor,
                         section_for: SectionFor | None = None) -> APIRouter:
    """The sign-in routes over ``db``; ``render(template, status, **context)`` makes a page,
    ``client_for(system)`` returns the configured WeCom or DingTalk client (ConfigError if
    none) and ``section_for(system)`` its settings (default: ``settings.connector``; a
    runtime's resolves a sandbox's)."""
    sections = section_for or settings.connector

    def section(system: str) -> Any:
        try:
            return sections(system)
        except ConfigError:
            return None

    router = APIRouter(include_in_schema=False)
    secure = settings.public_url.lower().startswith("https://")
    policy = LoginPolicy(max_failures=settings.web.login_max_failures, lock_minutes=settings.web.login_lock_minutes)
    hours = settings.web.session_hours
    public = settings.public_url.rstrip("/")

    def set_session(response: Response, token: str) -> None:
        response.set_cookie(SESSION_COOKIE, token, max_age=int(hours * 3600), httponly=True, samesite="lax",
                            secure=secure, path="/")

    def problem(message: str, status: int, retry: str | None = None) -> HTMLResponse:
        response = render("signin_problem.html", status, title="无法登录", message=message, retry=retry)
        response.delete_cookie(STATE_COOKIE, path="/auth")
        return response

    form = read_form

    def login_page(next_path: str, status: int = 200, error: str | None = None, username: str = "",
                   csrf: str | None = None) -> HTMLResponse:
        token = csrf or secrets.token_hex(16)
        wecom = section("wecom")
        wecom_web = bool(wecom is not None and wecom.corp_id and getattr(wecom, "web_login", False))
        ding = section("dingtalk")
        ding_web = bool(ding is not None and ding.app_key and getattr(ding, "web_login", False))
        response = render("login.html", status, title="登录", csrf=token, next=next_path, error=error,
                          username=username[:100], wecom_web_login=wecom_web, dingtalk_web_login=ding_web)
        response.set_cookie(CSRF_COOKIE, token, max_age=3600, httponly=True, samesite="strict", secure=secure,
                            path="/login")
        response.headers["Cache-Control"] = "no-store"
        return response

    # ------------------------------------------------------------------ password

    @router.get("/login")
    def login_form(request: Request, next: str = "") -> Response:
        """The sign-in form (a browser already signed in goes on to ``next``)."""
        target = local_path(next)
        if principal_from_request(db, request) is not None:
            return RedirectResponse(target, status_code=303)
        existing = request.cookies.get(CSRF_COOKIE)
        reuse = existing if existing and len(existing) == 32 else None
        return login_page(target, csrf=reuse)

    @router.post("/login")
    async def login_submit(request: Request) -> Response:
        """Check the form; on success a session cookie and a redirect to ``next``."""
        fields = await form(request)
        target = local_path(fields.get("next"))
        cookie = request.cookies.get(CSRF_COOKIE) or ""
        if not cookie or not same(cookie, fields.get("csrf", "")):
            return login_page(target, 403, error="表单已过期，请重新登录。")
        username, password = fields.get("username", "").strip(), fields.get("password", "")
        if not username or not password:
            return login_page(target, 400, error="请输入用户名和密码。", username=username)
        with db.engine.begin() as conn:
            try:
                login = authenticate(conn, username, password, policy)
            except SignInRefused as refused:
                audit_access(conn, f"web:password:{username[:60]}", "signin", f"app_login:{username[:100]}",
                             outcome="refused", reason=refused.reason)
                login = None
            if login is not None:
                principal = login_principal(conn, login)
                token = start_session(conn, principal, hours=hours, login_id=login.id)
        if login is None:
            return login_page(target, 401, error=REFUSED, username=username)
        response = RedirectResponse(target, status_code=303)
        set_session(response, token)
        response.delete_cookie(CSRF_COOKIE, path="/login")
        return response

    @router.get("/logout")
    def logout_form(request: Request) -> Response:
        """A confirmation form (sign-out is a POST: a link cannot sign anyone out)."""
        principal = principal_from_request(db, request)
        cookie = request.cookies.get(SESSION_COOKIE)
        if principal is None or not cookie:
            return RedirectResponse("/login", status_code=303)
        return render("logout.html", 200, title="退出登录", principal=principal, csrf=session_csrf(cookie))

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        """Revoke this browser's session and clear its cookie."""
        fields = await form(request)
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie or not same(session_csrf(cookie), fields.get("csrf", "")):
            return problem("表单已过期，请重新操作。", 403, retry="/logout")
        with db.engine.begin() as conn:
            end_session(conn, cookie)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # ------------------------------------------------------------------ chat platforms

    def begin(request: Request, next_param: str) -> tuple[str, str, Response | None]:
        """(nonce, next) for a new platform sign-in, or a redirect when already signed in."""
        target = local_path(next_param)
        if principal_from_request(db, request) is not None:
            return "", target, RedirectResponse(target, status_code=303)
        return secrets.token_hex(NONCE_HEX // 2), target, None

    def bind(response: Response, nonce: str) -> Response:
        response.set_cookie(STATE_COOKIE, nonce, max_age=STATE_TTL_S, httponly=True, samesite="lax", secure=secure,
                            path="/auth")
        response.headers["Cache-Control"] = "no-store"
        return response

    def checked_state(request: Request, state: str) -> str | None:
        """``next`` of a returning sign-in whose state matches this browser's nonce; else None."""
        decoded = decode_state(state)
        cookie = request.cookies.get(STATE_COOKIE) or ""
        if decoded is None or not cookie or not same(cookie, decoded[0]):
            return None
        return decoded[1]

    def finish(system: str, userid: str | None, target: str, retry: str, kind: str = "userid") -> Response:
        """Map the platform's userid (or ``kind`` of id) to an internal user and start the session."""
        with db.engine.begin() as conn:
            user_id = user_by_chat_id(conn, system, userid, kind) if userid else None
            principal = directory_principal(conn, user_id, system) if user_id is not None else None
            if principal is None:
                audit_access(conn, f"web:{system}:{(userid or '-')[:60]}", "signin", f"{system}:{userid or '-'}",
                             outcome="refused", reason="not a known active member" if userid else "not a member")
                return problem("通讯录中没有找到您的账号（或账号已停用），请联系管理员。", 403)
            token = start_session(conn, principal, hours=hours)
        response = RedirectResponse(target, status_code=303)
        set_session(response, token)
        response.delete_cookie(STATE_COOKIE, path="/auth")
        return response

    def exchange_failed(system: str, exc: Exception, retry: str) -> Response:
        with db.engine.begin() as conn:
            audit_access(conn, f"web:{system}", "signin", f"{system}:code", outcome="refused",
                         reason=type(exc).__name__, error=getattr(exc, "code", None))
        if isinstance(exc, SignInCodeError):
            return problem("登录码无效、已使用或已过期，请重新打开链接。", 400, retry=retry)
        log.warning("%s sign-in exchange failed: %s", system, exc)
        return problem(f"暂时无法连接{_LABEL[system]}，请稍后重试。", 502, retry=retry)

    def sign_in_with_code(request: Request, state: str, code: str, *, system: str, start: str, no_code: str,
                          exchange: Callable[[str], str | None], kind: str = "userid") -> Response:
        """A platform's return with a code: check the state against this browser, exchange the
        code for the person's id, sign in; every refusal offers ``start`` again."""
        target = checked_state(request, state)
        if target is None:
            return problem("登录链接已失效或不是在本浏览器中发起的，请重新打开。", 400, retry=start)
        retry = f"{start}{'&' if '?' in start else '?'}next={target}"
        if not code:
            return problem(no_code, 400, retry=retry)
        try:
            person = exchange(code)
        except (ConnectorError, ConfigError) as exc:
            return exchange_failed(system, exc, retry)
        return finish(system, person, target, retry, kind=kind)

    @router.get("/auth/wecom/start")
    def wecom_start(request: Request, next: str = "", web: str = "") -> Response:
        """Where WeCom cards link: on to WeCom's OAuth page (``web=1``: the QR web login)."""
        nonce, target, done = begin(request, next)
        if done is not None:
            return done
        wecom = section("wecom")
        if wecom is None or not wecom.corp_id:
            return problem("企业微信登录未配置。", 404, retry=f"/login?next={target}")
        state = encode_state(nonce, target)
        redirect_uri = f"{public}/auth/wecom"
        if web == "1":
            url = (f"{wecom.web_login_url.rstrip('/')}/wwlogin/sso/login?" + urlencode({
                "login_type": "CorpApp", "appid": wecom.corp_id, "agentid": wecom.agent_id,
                "redirect_uri": redirect_uri, "state": state}))
        else:
            url = (f"{wecom.oauth_url.rstrip('/')}/connect/oauth2/authorize?" + urlencode({
                "appid": wecom.corp_id, "redirect_uri": redirect_uri, "response_type": "code",
                "scope": "snsapi_base", "state": state, "agentid": wecom.agent_id}) + "#wechat_redirect")
        return bind(RedirectResponse(url, status_code=302), nonce)

    @router.get("/auth/wecom")
    def wecom_return(request: Request, code: str = "", state: str = "") -> Response:
        """WeCom's redirect back: check the state, exchange the code, sign in."""
        return sign_in_with_code(request, state, code, system="wecom", start="/auth/wecom/start",
                                 no_code="企业微信没有返回登录码（可能拒绝了授权）。",
                                 exchange=lambda c: client_for("wecom").user_for_code(c).userid)

    @router.get("/auth/dingtalk/start")
    def dingtalk_start(request: Request, next: str = "", web: str = "") -> Response:
        """Where DingTalk cards link: a page that asks the DingTalk app for a 免登 code
        (``web=1``: on to DingTalk's browser QR login, when ``web_login`` is on)."""
        nonce, target, done = begin(request, next)
        if done is not None:
            return done
        ding = section("dingtalk")
        if web == "1":
            if ding is None or not ding.app_key or not getattr(ding, "web_login", False):
                return problem("钉钉扫码登录未开启。", 404, retry=f"/login?next={target}")
            url = (f"{ding.login_url.rstrip('/')}/oauth2/auth?" + urlencode({
                "redirect_uri": f"{public}/auth/dingtalk/web", "response_type": "code", "client_id": ding.app_key,
                "scope": "openid", "state": encode_state(nonce, target), "prompt": "consent"}))
            return bind(RedirectResponse(url, status_code=302), nonce)
        if ding is None or not ding.corp_id:
            return problem("钉钉登录未配置。", 404, retry=f"/login?next={target}")
        script_nonce = secrets.token_urlsafe(16)
        response = render("dingtalk_start.html", 200, title="钉钉登录", next=target, nonce=script_nonce,
                          state=encode_state(nonce, target), corp_id=ding.corp_id, jsapi_url=ding.jsapi_url)
        # this page alone runs a script: DingTalk's JSAPI and the three lines that call it
        response.headers["Content-Security-Policy"] = (
            f"default-src 'none'; script-src 'nonce-{script_nonce}'; style-src 'unsafe-inline'; "
            "img-src 'self' data:; form-action 'self'; base-uri 'none'")
        return bind(response, nonce)

    @router.get("/auth/dingtalk")
    def dingtalk_return(request: Request, code: str = "", state: str = "") -> Response:
        """The 免登 code back from the start page: check the state, exchange the code, sign in."""
        return sign_in_with_code(request, state, code, system="dingtalk", start="/auth/dingtalk/start",
                                 no_code="钉钉没有返回登录码。",
                                 exchange=lambda c: client_for("dingtalk").user_for_code(c))

    @router.get("/auth/dingtalk/web")
    def dingtalk_web_return(request: Request, authCode: str = "", state: str = "") -> Response:
        """DingTalk's browser login back: check the state, exchange ``authCode`` for the
        person's unionId, sign in."""
        return sign_in_with_code(request, state, authCode, system="dingtalk", start="/auth/dingtalk/start?web=1",
                                 no_code="钉钉没有返回登录码（可能拒绝了授权）。", kind="unionid",
                                 exchange=lambda c: client_for("dingtalk").union_id_for_auth_code(c))

    return router


_LABEL = {"wecom": "企业微信", "dingtalk": "钉钉"}
