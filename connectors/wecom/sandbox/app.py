"""HTTP face of the WeCom sandbox: Starlette routes over :class:`WeComState`.

Wire rules (reference/messaging-apis.md §1.1, §3):

- everything under ``/cgi-bin/``; ``access_token`` always in the query string;
- POST bodies parsed as JSON whatever the Content-Type (wechatpy sends none, §1.6);
- business errors are HTTP 200 with an int ``errcode`` and an errmsg shaped like the real
  one (``"<text>, hint: [<id>], from ip: <ip>, more info at <url>?e=<code>"``);
- faults from :class:`~connectors.kit.sandbox.FaultPlan` become WeCom wire behaviour:
  ``auth_expired`` expires every token (42001), ``busy`` → errcode -1, ``rate_limit`` →
  45009, ``refused`` → 301025 on ``oa/`` calls, else 48002 (permanent refusals),
  ``http_500`` → HTTP 500, ``timeout`` → sleep ``timeout_s`` then 504,
  ``drop_response`` → apply the request then HTTP 504 with an empty body, ``latency`` →
  sleep ``latency_ms`` first. Faults are keyed by operation = path under ``/cgi-bin/``
  (``"message/send"``, ``"gettoken"``...).

Sandbox-only admin endpoints (never on the real host):
``GET /__sandbox__/messages?touser=`` (message log), ``GET|POST /__sandbox__/faults``
(``FaultPlan.configure`` JSON), ``GET /__sandbox__/state`` (summary) and
``POST /__sandbox__/expire-tokens``; for sign-in (§6) ``POST /__sandbox__/oauth/code`` (a code
for a chosen member, as the app hands one to a page) and ``POST /__sandbox__/oauth/in-app-user``
(who holds the phone), which the emulated ``GET /connect/oauth2/authorize`` (open.weixin.qq.com)
and ``GET /wwlogin/sso/login`` (the web/QR login) sign in by redirecting to ``redirect_uri``
with a code.
"""

from __future__ import annotations

import asyncio
import html
import json
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from connectors.kit.sandbox import FaultPlan
from connectors.kit.sandbox.admin import admin_faults, admin_pushes, with_admin_index
from connectors.kit.sandbox.pushes import PushPlan
from connectors.wecom.sandbox.callbacks import CallbackDriver
from connectors.wecom.sandbox.credentials import SANDBOX_OTHER_AGENT_ID, SANDBOX_OTHER_SECRET
from connectors.wecom.sandbox.seed import DEFAULT_SEED, ROOT_DEPARTMENT_ID
from connectors.wecom.sandbox.state import (
    ERRMSG,
    MEMBER_MESSAGE_LIMITS,
    OPERATIONS,
    WeComApiError,
    WeComState,
)
from connectors.wecom.settings import DEFAULT_MAX_CONCURRENT_CALLS

_MORE_INFO = "https://open.work.weixin.qq.com/devtool/query?e="


class _WeComJSON(JSONResponse):
    """UTF-8 JSON without ASCII escaping, as qyapi answers."""

    media_type = "application/json; charset=UTF-8"

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class _Errmsg:
    """Builds realistic errmsg tails with a fresh hint id per error."""

    def __init__(self) -> None:
        self._n = 0

    def __call__(self, errcode: int, detail: str | None, client_ip: str) -> str:
        self._n += 1
        hint = f"{int(time.time())}{self._n:013d}"
        text = ERRMSG.get(errcode, "unknown error")
        if detail:
            text = f"{text}: {detail}"
        return f"{text}, hint: [{hint}], from ip: {client_ip}, more info at {_MORE_INFO}{errcode}"


def create_app(
    *,
    corp_id: str,
    secret: str,
    agent_id: int,
    token_ttl: int = 7200,
    faults: FaultPlan | None = None,
    seed: int = DEFAULT_SEED,
    clock: Callable[[], float] = time.time,
    legacy_app: bool = True,
    visible_department_ids: Iterable[int] = (ROOT_DEPARTMENT_ID,),
    unlicensed_userids: Iterable[str] = (),
    blocked_apis: Iterable[str] = (),
    api_limit_per_minute: int = 10_000,
    member_message_limits: Iterable[tuple[float, int]] = MEMBER_MESSAGE_LIMITS,
    externalcontact_concurrency: int = 5,
    message_concurrency: int = DEFAULT_MAX_CONCURRENT_CALLS,
    other_apps: dict[str, int] | None = None,
    trusted_domain: str | None = None,
) -> Starlette:
    """Build the WeCom sandbox ASGI app; its state is ``app.state.wecom`` (a WeComState).

    ``legacy_app=False`` models a self-built app created after 2022-06-20 (no mobile/email
    in user/get); ``blocked_apis`` lists operations answered with 48002 (e.g. the
    contact-sync restrictions of 2022-08-15); ``clock`` lets tests move time (token expiry,
    duplicate-check windows, per-member limits). ``member_message_limits`` are (seconds,
    limit) sliding windows per member (§1.4: 30 a minute, 1,000 an hour); a test may shorten
    them. ``message_concurrency`` caps message/send requests served at once (45033, a guess).
    ``other_apps`` (secret → agent id) are further self-built apps of the corp (default: one,
    :data:`SANDBOX_OTHER_SECRET`), whose tokens a sign-in code of this app is refused with;
    ``trusted_domain`` is the app's 可信域名 for the OAuth redirect (None: any host).
    """
    state = WeComState(
        corp_id=corp_id, secret=secret, agent_id=agent_id, token_ttl=token_ttl, seed=seed, clock=clock,
        legacy_app=legacy_app, visible_department_ids=visible_department_ids,
        unlicensed_userids=unlicensed_userids, blocked_apis=blocked_apis,
        api_limit_per_minute=api_limit_per_minute, member_message_limits=member_message_limits,
        externalcontact_concurrency=externalcontact_concurrency, message_concurrency=message_concurrency,
        other_apps=other_apps if other_apps is not None else {SANDBOX_OTHER_SECRET: SANDBOX_OTHER_AGENT_ID},
        trusted_domain=trusted_domain,
    )
    plan = faults if faults is not None else FaultPlan()
    errmsg = _Errmsg()
    pushes = PushPlan()
    pushed = [0]  # approval events handed to the push plan so far

    def push_events() -> None:
        """Hand every new ``sys_approval_change`` to the push plan (WeCom pushes each change)."""
        with state.lock:
            fresh, pushed[0] = state.approvals.events[pushed[0]:], len(state.approvals.events)
        for event in fresh:
            fields = {k: v for k, v in event.items() if k not in ("ToUserName", "AgentID")}

            def send(url: str, fields: dict[str, Any] = fields) -> bool:
                with CallbackDriver(url, corp_id=corp_id, agent_id=agent_id, retries=0) as driver:
                    return driver.push(fields).accepted
            info = event["ApprovalInfo"]
            pushes.push(f"{info['SpNo']}:{info['SpStatus']}:{info['StatuChangeEvent']}", send)

    def error_body(exc: WeComApiError, client_ip: str) -> dict[str, Any]:
        return {"errcode": exc.errcode, "errmsg": errmsg(exc.errcode, exc.detail, client_ip), **exc.extra}

    async def api(request: Request) -> Response:
        operation = request.path_params["operation"].strip("/")
        if operation not in OPERATIONS:
            return Response(status_code=404)  # guess: unknown paths answer a bare 404
        client_ip = request.client.host if request.client else "0.0.0.0"
        query = dict(request.query_params)
        body: dict[str, Any] | None = None
        if request.method == "POST":
            raw = await request.body()
            try:
                parsed = json.loads(raw.decode("utf-8")) if raw.strip() else {}
            except (UnicodeDecodeError, json.JSONDecodeError):
                # The real server appends "Warning: wrong json format." (error-code doc 90455).
                return _WeComJSON(error_body(WeComApiError(40058, "Warning: wrong json format."), client_ip))
            if not isinstance(parsed, dict):
                return _WeComJSON(error_body(WeComApiError(40058, "Warning: wrong json format."), client_ip))
            body = parsed

        fault = plan.next_fault(operation)
        if fault == "timeout":
            await asyncio.sleep(plan.timeout_s)
            return Response(status_code=504)
        elif fault == "http_500":
            return Response("Internal Server Error", status_code=500, media_type="text/plain")
        elif fault == "busy":
            return _WeComJSON(error_body(WeComApiError(-1), client_ip))
        elif fault == "rate_limit":
            return _WeComJSON(error_body(WeComApiError(45009), client_ip))
        elif fault == "refused":
            return _WeComJSON(error_body(WeComApiError(301025 if operation.startswith("oa/") else 48002), client_ip))
        elif fault == "auth_expired":
            state.expire_all_tokens()

        try:
            state.enter(operation)
        except WeComApiError as exc:
            return _WeComJSON(error_body(exc, client_ip))
        try:
            if fault == "latency":
                await asyncio.sleep(plan.latency_ms / 1000)
            result = state.handle(request.method, operation, query, body)
        except WeComApiError as exc:
            result = error_body(exc, client_ip)
        finally:
            state.leave(operation)
        if operation.startswith("oa/"):
            push_events()
        if fault == "drop_response":
            return Response(status_code=504)  # the effect happened; the reply is lost
        return _WeComJSON(result)

    async def admin_approvals(request: Request) -> Response:
        """Approvals (?key= the CRM单号 value: the approvals holding it) and counts."""
        key = request.query_params.get("key")
        title = request.query_params.get("title") or "CRM单号"
        with state.lock:
            found = state.approvals.by_key(title, key) if key is not None else None
            return _WeComJSON({"summary": state.approvals.summary(), "approvals": found})

    async def admin_approval_act(request: Request) -> Response:
        """Act on an approval as a person: JSON {"action": agree|refuse|revoke|delete, "by": userid?,
        "remark": …}; the change is pushed to the configured callback URL."""
        try:
            body = await _json_object(request)
        except ValueError:
            body = {}
        try:
            with state.lock:
                answer = state.approvals.act(request.path_params["sp_no"], str(body.get("action") or ""),
                                             by=body.get("by") or None, remark=str(body.get("remark") or ""))
        except KeyError:
            return _WeComJSON({"error": "no such approval"}, status_code=404)
        except ValueError as exc:
            return _WeComJSON({"error": str(exc)}, status_code=409)
        push_events()
        return _WeComJSON(answer)


    async def admin_messages(request: Request) -> Response:
        """Messages sent, with delivery status (?touser= for one member)."""
        return _WeComJSON({"messages": state.message_log(request.query_params.get("touser"))})

    async def admin_state(_request: Request) -> Response:
        """Directory, contacts, tokens and messages in numbers."""
        return _WeComJSON(state.summary())

    async def admin_expire_tokens(_request: Request) -> Response:
        """Expire every access token (the next call gets 42001)."""
        return _WeComJSON({"expired": state.expire_all_tokens()})

    async def admin_code(request: Request) -> Response:
        """Hand out a sign-in code for a member, as the app does for a page opened inside it:
        JSON ``{"userid": …, "agentid": optional}`` → ``{"code": …}`` (single use, ~5 min)."""
        body = await _json_object(request)
        try:
            code = state.issue_code(str(body.get("userid") or ""), _optional_int(body.get("agentid")))
        except KeyError:
            return _WeComJSON({"error": "no such active member"}, status_code=404)
        return _WeComJSON({"code": code, "expires_in": int(state.codes.ttl_s)})

    async def admin_in_app_user(request: Request) -> Response:
        """Choose who "holds the phone": JSON ``{"userid": …}`` (null: nobody). The OAuth
        page below signs this member in, as WeCom's in-app browser would."""
        body = await _json_object(request)
        userid = body.get("userid")
        if userid is not None and (not isinstance(userid, str) or userid.lower() not in state.users):
            return _WeComJSON({"error": "no such member"}, status_code=404)
        state.in_app_user = state.users[userid.lower()].userid if isinstance(userid, str) else None
        return _WeComJSON({"in_app_user": state.in_app_user})

    def oauth_page(request: Request) -> Response:
        """``open.weixin.qq.com/connect/oauth2/authorize`` and ``login.work.weixin.qq.com/wwlogin/sso/login``:
        redirect to ``redirect_uri`` with ``code`` and ``state`` for the in-app user (§6)."""
        q = request.query_params
        try:
            with state.lock:
                code = state.authorize(q.get("appid"), q.get("redirect_uri"), q.get("agentid"))
        except ValueError as exc:
            return HTMLResponse(f"<!doctype html><title>企业微信</title><p>{html.escape(str(exc))}</p>",
                                status_code=400)
        target = q["redirect_uri"]
        joiner = "&" if "?" in target else "?"
        extra = {"code": code, **({"state": q["state"]} if q.get("state") else {})}
        return RedirectResponse(target + joiner + urlencode(extra), status_code=302)

    async def oauth_authorize(request: Request) -> Response:
        return oauth_page(request)

    async def sso_login(request: Request) -> Response:
        if request.query_params.get("login_type") != "CorpApp":
            return HTMLResponse("<!doctype html><p>login_type 参数错误</p>", status_code=400)  # guess
        return oauth_page(request)

    app = Starlette(routes=with_admin_index("WeCom server API", [
        Route("/cgi-bin/{operation:path}", api, methods=["GET", "POST"]),
        Route("/__sandbox__/approvals", admin_approvals, methods=["GET"]),
        Route("/__sandbox__/approvals/callbacks", admin_pushes, methods=["GET", "POST"]),
        Route("/__sandbox__/approvals/{sp_no}/act", admin_approval_act, methods=["POST"]),
        Route("/__sandbox__/messages", admin_messages, methods=["GET"]),
        Route("/__sandbox__/faults", admin_faults, methods=["GET", "POST"]),
        Route("/__sandbox__/state", admin_state, methods=["GET"]),
        Route("/__sandbox__/expire-tokens", admin_expire_tokens, methods=["POST"]),
        Route("/__sandbox__/oauth/code", admin_code, methods=["POST"]),
        Route("/__sandbox__/oauth/in-app-user", admin_in_app_user, methods=["POST"]),
        Route("/connect/oauth2/authorize", oauth_authorize, methods=["GET"]),
        Route("/wwlogin/sso/login", sso_login, methods=["GET"]),
    ]))
    app.state.wecom = state
    app.state.faults = plan
    app.state.approval_pushes = pushes
    return app


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        parsed = json.loads((await request.body()).decode("utf-8") or "{}")
    except (UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _optional_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


__all__ = ["create_app"]
