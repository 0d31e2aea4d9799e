"""HTTP face of the DingTalk sandbox: both hosts' routes, at the root, over :class:`DingTalkState`.

Wire rules (reference/messaging-apis.md §2.1, §3):

- oapi: ``GET /gettoken?appkey&appsecret``; ``POST /topapi/...`` with a JSON body and
  ``access_token`` in the query; every business answer is HTTP 200 with ``errcode`` /
  ``errmsg`` and a ``request_id``; data under ``result`` (or the call's own keys). An
  unknown API answers errcode 22 exactly as oapi does (``sub_msg`` naming the ApiName).
  Token errors on topapi come wrapped as errcode 88 (``sub_code``, ``sub_msg``), as seen
  in production (§2.1), unless the app is built with ``wrap_token_errors=False``.
- v1.0: ``POST /v1.0/oauth2/accessToken`` (JSON only) and the to-do routes of §2.2 under
  ``/v1.0/todo/users/{unionId}/``, token in ``x-acs-dingtalk-access-token``; success is a
  plain JSON body, failure a 4xx/5xx with ``{code, message, requestid}``.
- Faults (:class:`~connectors.kit.sandbox.FaultPlan`, keyed by operation: ``gettoken``,
  ``topapi/message/corpconversation/asyncsend_v2``, ``todo/tasks/create``...): ``auth_expired``
  expires every token first, ``busy`` → oapi errcode -1 / v1.0 HTTP 503, ``rate_limit`` →
  oapi 90018 / v1.0 403 QPS, ``refused`` → oapi 60011 / v1.0 400 InvalidParameter (permanent),
  ``http_500``, ``timeout`` (sleep, then 504), ``drop_response``
  (apply, then an empty 504), ``latency``.

Sign-in (§6): ``topapi/v2/user/getuserinfo`` (and the older ``GET /user/getuserinfo``)
exchange a 免登 code once; ``POST /__sandbox__/authcode`` hands one out for a chosen
member, standing in for ``dd.getAuthCode`` inside the app; ``GET /__sandbox__/dingtalk.open.js``
stands in for the JSAPI script itself, answering ``requestAuthCode`` with a code for the member
chosen by ``POST /__sandbox__/in-app-user`` (so a browser can follow a card link end to end).
Browser (QR) login: ``GET /oauth2/auth`` stands in for login.dingtalk.com (it redirects back
with an ``authCode`` for the person chosen by ``POST /__sandbox__/browser-user``, as if they
had scanned and consented), ``POST /v1.0/oauth2/userAccessToken`` exchanges the code once with
the app's own clientId and clientSecret, ``GET /v1.0/contact/users/me`` names the person.

Sandbox-only admin endpoints (never on the real hosts), listed at ``GET /__sandbox__/``.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors.dingtalk.sandbox.approvals import ApprovalBook
from connectors.dingtalk.sandbox.callbacks import CallbackDriver
from connectors.dingtalk.sandbox.credentials import SANDBOX_OTHER_APP_KEY, SANDBOX_OTHER_APP_SECRET
from connectors.dingtalk.sandbox.seed import DEFAULT_SEED, ROOT_DEPARTMENT_ID
from connectors.dingtalk.sandbox.state import ERRMSG, ApiError, DingTalkState, OapiError, Throttled
from connectors.dingtalk.settings import DEFAULT_MAX_CONCURRENT_CALLS, DEFAULT_NOTICES_PER_USER_PER_DAY
from connectors.kit.sandbox import FaultPlan
from connectors.kit.sandbox.admin import admin_faults, admin_pushes, with_admin_index
from connectors.kit.sandbox.pushes import PushPlan

Json = dict[str, Any]
_TOKEN_HEADER = "x-acs-dingtalk-access-token"
_QPS_CODE = "Forbidden.AccessDenied.QpsLimitForApi"  # §2.1 [U]
_TOPAPI: dict[str, Callable[[DingTalkState, Json], Json]] = {
    "topapi/v2/department/get": DingTalkState.department_get,
    "topapi/v2/department/listsub": DingTalkState.department_listsub,
    "topapi/v2/user/list": DingTalkState.user_list,
    "topapi/user/listid": DingTalkState.user_listid,
    "topapi/v2/user/get": DingTalkState.user_get,
    "topapi/v2/user/getbymobile": DingTalkState.user_getbymobile,
    "topapi/user/getbyunionid": DingTalkState.user_getbyunionid,
    "topapi/message/corpconversation/asyncsend_v2": DingTalkState.send_notice,
    "topapi/message/corpconversation/getsendresult": DingTalkState.send_result,
    "topapi/message/corpconversation/getsendprogress": DingTalkState.send_progress,
    "topapi/message/corpconversation/recall": DingTalkState.recall,
    "topapi/v2/user/getuserinfo": DingTalkState.getuserinfo,
}
# (method, path under /v1.0/todo/users/{unionId}/) → operation name
_TODO_ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("POST", re.compile(r"tasks"), "todo/tasks/create"),
    ("GET", re.compile(r"tasks/sources/(?P<source>[^/]+)"), "todo/tasks/sources"),
    ("PUT", re.compile(r"tasks/(?P<task>[^/]+)/executorStatus"), "todo/tasks/executorStatus"),
    ("GET", re.compile(r"tasks/(?P<task>[^/]+)"), "todo/tasks/get"),
    ("PUT", re.compile(r"tasks/(?P<task>[^/]+)"), "todo/tasks/update"),
    ("DELETE", re.compile(r"tasks/(?P<task>[^/]+)"), "todo/tasks/delete"),
    ("POST", re.compile(r"org/tasks/query"), "todo/org/tasks/query"),
)


class _JSON(JSONResponse):
    """UTF-8 JSON without ASCII escaping, as DingTalk answers."""

    media_type = "application/json;charset=utf-8"

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _request_id() -> str:
    return secrets.token_hex(6)


def _oapi_error(exc: OapiError, *, wrapped: bool = False) -> Json:
    text = exc.detail or ERRMSG.get(exc.errcode, "error")
    if wrapped:
        return {"errcode": 88, "sub_code": str(exc.errcode), "sub_msg": text,
                "errmsg": f"ding talk error[subcode={exc.errcode},submsg={text}]", "request_id": _request_id()}
    return {"errcode": exc.errcode, "errmsg": text, "request_id": _request_id()}


def _api_error(exc: ApiError) -> Response:
    return _JSON({"code": exc.code, "message": exc.message, "requestid": _request_id()}, status_code=exc.status)


async def _json_body(request: Request) -> Json | None:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        parsed = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return parsed if isinstance(parsed, dict) else None


def create_app(
    *, app_key: str, app_secret: str, agent_id: int, corp_id: str, token_ttl: int = 7200,
    faults: FaultPlan | None = None, seed: int = DEFAULT_SEED, clock: Callable[[], float] = time.time,
    visible_department_ids: Iterable[int] = (ROOT_DEPARTMENT_ID,), api_qps: int = 20,
    max_in_flight: int = DEFAULT_MAX_CONCURRENT_CALLS, notices_per_user_per_day: int = DEFAULT_NOTICES_PER_USER_PER_DAY,
    notice_person_times_per_minute: int = 5000, wrap_token_errors: bool = True,
    reject_duplicate_source_ids: bool = False, todo_page_size: int = 50,
    trusted_ips: Iterable[str] | None = None, blocked_apis: Iterable[str] = (),
    other_apps: dict[str, str] | None = None,
) -> Starlette:
    """Build the DingTalk sandbox; its state is ``app.state.dingtalk`` (a DingTalkState).

    ``trusted_ips`` (None: any) models the app's server egress IPs: a call from elsewhere
    gets 60020 (oapi) / 403 ``Forbidden.AccessDenied.IpNotInWhiteList`` (v1.0, a guess);
    ``blocked_apis`` lists operations the app has no permission for (60011 / 403
    ``Forbidden.AccessDenied.AccessTokenPermissionDenied``, a guess).

    ``visible_department_ids`` is the app's directory scope; ``api_qps`` and
    ``max_in_flight`` the app's limits (a test may raise them to run hundreds of writes
    in seconds); ``clock`` lets tests move time (token expiry, same-day suppression).
    """
    state = DingTalkState(
        app_key=app_key, app_secret=app_secret, agent_id=agent_id, corp_id=corp_id, seed=seed, clock=clock,
        token_ttl=token_ttl, visible_department_ids=visible_department_ids, api_qps=api_qps,
        max_in_flight=max_in_flight, notices_per_user_per_day=notices_per_user_per_day,
        notice_person_times_per_minute=notice_person_times_per_minute, wrap_token_errors=wrap_token_errors,
        reject_duplicate_source_ids=reject_duplicate_source_ids, todo_page_size=todo_page_size,
        other_apps=other_apps if other_apps is not None else {SANDBOX_OTHER_APP_KEY: SANDBOX_OTHER_APP_SECRET},
    )
    plan = faults if faults is not None else FaultPlan()
    book = ApprovalBook(members=lambda: state.members, visible=state.member_visible, clock=clock, corp_id=corp_id)
    pushes = PushPlan()
    pushed = [0]  # events of the book handed to the push plan so far

    def push_events() -> None:
        """Hand every new approval event to the push plan (DingTalk pushes each change)."""
        with state.lock:
            fresh, pushed[0] = book.events[pushed[0]:], len(book.events)
        for event in fresh:
            def send(url: str, event: Json = event) -> bool:
                with CallbackDriver(url, app_key=app_key) as driver:
                    return driver.push(event).acknowledged
            pushes.push(f"{event['processInstanceId']}:{event['EventType']}:{event['type']}", send)
    trusted = frozenset(trusted_ips) if trusted_ips is not None else None
    blocked = frozenset(blocked_apis)

    def refused(request: Request, operation: str) -> tuple[int, str] | None:
        """The app-configuration refusal of this call, if any: (oapi errcode, v1.0 code)."""
        if trusted is not None and (request.client.host if request.client else "") not in trusted:
            return 60020, "Forbidden.AccessDenied.IpNotInWhiteList"
        if operation in blocked:
            return 60011, "Forbidden.AccessDenied.AccessTokenPermissionDenied"
        return None

    async def faulted(operation: str, v1: bool, work: Callable[[], Awaitable[Response]]) -> Response:
        """Apply the armed fault of ``operation`` around ``work``, DingTalk's way per host."""
        fault = plan.next_fault(operation)
        if fault == "timeout":
            await asyncio.sleep(plan.timeout_s)
            return Response(status_code=504)
        if fault == "http_500":
            return Response("Internal Server Error", status_code=500, media_type="text/plain")
        if fault == "busy":
            return _JSON({"code": "ServiceUnavailable", "message": "系统繁忙", "requestid": _request_id()},
                         status_code=503) if v1 else _JSON(_oapi_error(OapiError(-1)))
        if fault == "rate_limit":
            return _api_error(ApiError(403, _QPS_CODE, "api qps limit")) if v1 else _JSON(_oapi_error(OapiError(90018)))
        if fault == "refused":
            return _api_error(ApiError(400, "InvalidParameter", "参数错误")) if v1 else _JSON(_oapi_error(OapiError(60011)))
        if fault == "auth_expired":
            state.expire_all_tokens()
        if fault == "latency":
            await asyncio.sleep(plan.latency_ms / 1000)
        response = await work()
        return Response(status_code=504) if fault == "drop_response" else response

    async def v1_call(request: Request, operation: str, body: Json | None, answer: Callable[[], Response]) -> Response:
        """A v1.0 business call: token, body, app permissions, QPS, then ``answer()`` under the
        state's lock; an ApiError becomes DingTalk's error reply."""
        if state.token_problem(request.headers.get(_TOKEN_HEADER)) is not None:
            return _api_error(ApiError(400, "InvalidAuthentication", "不合法的access_token"))
        if body is None:
            return _api_error(ApiError(400, "InvalidParameter", "body is not a JSON object"))  # guess
        if (refusal := refused(request, operation)) is not None:
            return _api_error(ApiError(403, refusal[1], "not allowed for this app"))
        try:
            state.enter(operation)
        except Throttled:
            return _api_error(ApiError(403, _QPS_CODE, "api qps limit"))
        try:
            with state.lock:
                return answer()
        except ApiError as exc:
            return _api_error(exc)
        finally:
            state.leave()

    # -------------------------------------------------------------- oapi

    async def gettoken(request: Request) -> Response:
        async def work() -> Response:
            if (refusal := refused(request, "gettoken")) is not None:
                return _JSON(_oapi_error(OapiError(refusal[0])))
            issued = state.issue_token(request.query_params.get("appkey"), request.query_params.get("appsecret"))
            if issued is None:
                return _JSON(_oapi_error(OapiError(40089)))
            return _JSON({"errcode": 0, "errmsg": "ok", "access_token": issued[0], "expires_in": issued[1]})
        return await faulted("gettoken", False, work)

    async def topapi(request: Request) -> Response:
        operation = "topapi/" + request.path_params["operation"].strip("/")
        handler = _TOPAPI.get(operation)
        if handler is None:
            api_name = "dingtalk.oapi." + operation.removeprefix("topapi/").replace("/", ".")
            sub = f"不合法ApiName，ApiName = {api_name}"
            return _JSON({"errcode": 22, "sub_msg": sub, "errmsg": f"Invalid method[submsg={sub}]",
                          "request_id": _request_id()})
        body = await _json_body(request)

        async def work() -> Response:
            problem = state.token_problem(request.query_params.get("access_token"))
            if problem is not None:
                return _JSON(_oapi_error(OapiError(problem), wrapped=state.wrap_token_errors))
            if body is None:
                return _JSON(_oapi_error(OapiError(40035, "body is not a JSON object")))
            if (refusal := refused(request, operation)) is not None:
                return _JSON(_oapi_error(OapiError(refusal[0])))
            try:
                state.enter(operation)
            except Throttled:
                return _JSON(_oapi_error(OapiError(90018)))
            try:
                with state.lock:
                    state.caller_app = state.app_of_token(request.query_params.get("access_token"))
                    result = handler(state, body)
            except OapiError as exc:
                return _JSON(_oapi_error(exc))
            finally:
                state.leave()
            return _JSON({"errcode": 0, "errmsg": "ok", **result, "request_id": _request_id()})
        return await faulted(operation, False, work)

    async def legacy_getuserinfo(request: Request) -> Response:
        """``GET /user/getuserinfo?access_token&code`` (the pre-topapi 免登 exchange)."""
        async def work() -> Response:
            token = request.query_params.get("access_token")
            problem = state.token_problem(token)
            if problem is not None:
                return _JSON(_oapi_error(OapiError(problem)))
            try:
                with state.lock:
                    state.caller_app = state.app_of_token(token)
                    result = state.legacy_getuserinfo(request.query_params.get("code"))
            except OapiError as exc:
                return _JSON(_oapi_error(exc))
            return _JSON({"errcode": 0, "errmsg": "ok", **result})
        return await faulted("user/getuserinfo", False, work)

    # -------------------------------------------------------------- v1.0

    async def access_token(request: Request) -> Response:
        body = await _json_body(request) if "json" in request.headers.get("content-type", "json") else None

        async def work() -> Response:
            if body is None or not body.get("appKey"):
                return _api_error(ApiError(400, "MissingappKey", "appKey is mandatory for this action."))  # guess
            issued = state.issue_token(body.get("appKey"), body.get("appSecret"))
            if issued is None:
                return _api_error(ApiError(400, "invalidClientSecret", "无效的clientSecret"))  # guess
            return _JSON({"accessToken": issued[0], "expireIn": issued[1]})
        return await faulted("oauth2/accessToken", True, work)

    async def user_access_token(request: Request) -> Response:
        body = await _json_body(request)

        async def work() -> Response:
            if body is None:
                return _api_error(ApiError(400, "InvalidParameter", "body is not a JSON object"))  # guess
            try:
                return _JSON(state.user_access_token(body))
            except ApiError as exc:
                return _api_error(exc)
        return await faulted("oauth2/userAccessToken", True, work)

    async def users_me(request: Request) -> Response:
        async def work() -> Response:
            try:
                return _JSON(state.users_me(request.headers.get(_TOKEN_HEADER)))
            except ApiError as exc:
                return _api_error(exc)
        return await faulted("contact/users/me", True, work)

    async def web_login_page(request: Request) -> Response:
        """login.dingtalk.com/oauth2/auth: back to ``redirect_uri`` with ``authCode`` and
        ``state`` for the browser's person; a plain "scan to sign in" page while nobody has."""
        query = request.query_params
        redirect_uri, client_id = query.get("redirect_uri") or "", query.get("client_id") or ""
        if query.get("response_type") != "code" or not redirect_uri.startswith(("http://", "https://")):
            return Response("bad request: response_type=code and an absolute redirect_uri are required",
                            status_code=400, media_type="text/plain; charset=utf-8")
        try:
            code = state.web_authorize(client_id)
        except KeyError:
            return Response("unknown client_id", status_code=400, media_type="text/plain; charset=utf-8")
        if code is None:
            return Response("<!doctype html><title>钉钉登录</title><p>请使用钉钉扫码登录</p>",
                            media_type="text/html; charset=utf-8")
        back = httpx.URL(redirect_uri).copy_merge_params({"authCode": code, "state": query.get("state") or ""})
        return Response(status_code=302, headers={"Location": str(back), "Cache-Control": "no-store"})

    async def admin_browser_user(request: Request) -> Response:
        """Choose who is signed in to DingTalk in the browser (``{"userid": …}``, null: nobody)."""
        body = await _json_body(request) or {}
        userid = body.get("userid")
        if userid is not None and userid not in state.members:
            return _JSON({"error": "no such member"}, status_code=404)
        state.browser_user = userid
        return _JSON({"browser_user": userid})

    async def todo(request: Request) -> Response:
        union_id, rest = request.path_params["union"], request.path_params["rest"].strip("/")
        route = next(((op, m) for method, pattern, op in _TODO_ROUTES
                      if method == request.method and (m := pattern.fullmatch(rest))), None)
        if route is None:
            return _api_error(ApiError(404, "InvalidAction.NotFound", "Specified api is not found."))  # guess
        operation, match = route
        body = await _json_body(request)

        operator = request.query_params.get("operatorId")
        return await faulted(operation, True, lambda: v1_call(
            request, operation, body, lambda: _JSON(_todo_call(state, operation, union_id, match, operator, body or {}))))

    async def workflow(request: Request) -> Response:
        """The v1.0 approval routes (oa-approvals.md §1.3–1.5, terminate §1.9)."""
        path = request.url.path.removeprefix("/v1.0/workflow/")
        operation = {("POST", "processInstances"): "workflow/processInstances/create",
                     ("GET", "processInstances"): "workflow/processInstances/get",
                     ("POST", "processes/instanceIds/query"): "workflow/instanceIds/query",
                     ("POST", "processInstances/terminate"): "workflow/processInstances/terminate",
                     }.get((request.method, path))
        if operation is None:
            return _api_error(ApiError(404, "InvalidAction.NotFound", "Specified api is not found."))  # guess
        body = await _json_body(request) if request.method == "POST" else {}

        def answer() -> Response:
            given = body or {}
            if operation.endswith("/create"):
                return _JSON(book.create(given))
            if operation.endswith("/get"):
                return _JSON(book.get(request.query_params.get("processInstanceId")))
            return _JSON(book.list_ids(given) if operation.endswith("/query") else book.terminate(given))

        async def work() -> Response:
            response = await v1_call(request, operation, body, answer)
            push_events()
            return response
        return await faulted(operation, True, work)

    # -------------------------------------------------------------- admin

    async def admin_approvals(request: Request) -> Response:
        """Approval instances (?key= the CRM单号 value: the instances holding it) and counts."""
        key = request.query_params.get("key")
        control = request.query_params.get("control") or "CRM单号"
        with state.lock:
            found = book.by_key(control, key) if key is not None else None
            return _JSON({"summary": book.summary(), "instances": found})

    async def admin_approval_act(request: Request) -> Response:
        """Act on an instance as a person: JSON {"action": agree|refuse|revoke, "by": userid?, "remark": …};
        the change is pushed to the configured callback URL."""
        body = await _json_body(request) or {}
        try:
            with state.lock:
                view = book.act(request.path_params["instance"], str(body.get("action") or ""),
                                by=body.get("by") or None, remark=str(body.get("remark") or ""))
        except KeyError:
            return _JSON({"error": "no such instance"}, status_code=404)
        except ValueError as exc:
            return _JSON({"error": str(exc)}, status_code=409)
        push_events()
        return _JSON({"instance": view})


    async def admin_notices(request: Request) -> Response:
        """Work notices sent, with each recipient's fate (?userid= for one person)."""
        return _JSON({"notices": state.notice_log(request.query_params.get("userid"))})

    async def admin_todos(request: Request) -> Response:
        """The to-do store (?sourceId= for one CRM task's) and every update made through the API."""
        return _JSON({"todos": state.todo_list(request.query_params.get("sourceId")),
                      "updates": list(state.todo_updates)})

    async def admin_complete(request: Request) -> Response:
        """Tick a to-do off as a person would in the app (JSON {"by": unionId} optional)."""
        body = await _json_body(request) or {}
        try:
            event = state.complete_todo(request.path_params["task"], body.get("by"))
        except KeyError:
            return _JSON({"error": "no such to-do"}, status_code=404)
        return _JSON({"event": event})

    async def admin_code(request: Request) -> Response:
        """Hand out a 免登 code for a member, as ``dd.getAuthCode`` does for a page opened inside
        DingTalk: JSON ``{"userid": …, "appKey": optional}`` → ``{"code": …}`` (single use, ~5 min)."""
        body = await _json_body(request) or {}
        try:
            code = state.issue_code(str(body.get("userid") or ""), body.get("appKey") or None)
        except KeyError:
            return _JSON({"error": "no such active member"}, status_code=404)
        return _JSON({"code": code, "expires_in": int(state.codes.ttl_s)})

    async def admin_in_app_user(request: Request) -> Response:
        """Choose who "holds the phone": JSON ``{"userid": …}`` (null: nobody); the JSAPI below
        answers ``requestAuthCode`` with a code for this member."""
        body = await _json_body(request) or {}
        userid = body.get("userid")
        if userid is not None and userid not in state.members:
            return _JSON({"error": "no such member"}, status_code=404)
        state.in_app_user = userid
        return _JSON({"in_app_user": userid})

    async def jsapi(_request: Request) -> Response:
        """A stand-in for DingTalk's JSAPI script inside the app (dingtalk.open.js): ``dd.ready``
        and ``dd.runtime.permission.requestAuthCode`` hand the page a fresh 免登 code for the
        in-app user (``onFail`` when nobody holds the phone). Each load issues one code."""
        code = None
        if state.in_app_user is not None:
            try:
                code = state.issue_code(state.in_app_user)
            except KeyError:
                code = None
        script = ("window.dd={ready:function(f){f();},runtime:{permission:{requestAuthCode:function(o){"
                  + (f"o.onSuccess({{code:{json.dumps(code)}}});" if code else
                     "o.onFail({errorCode:'3',errorMessage:'not inside DingTalk'});")
                  + "}}}};")
        return Response(script, media_type="application/javascript; charset=utf-8",
                        headers={"Cache-Control": "no-store"})

    async def admin_state(_request: Request) -> Response:
        """Directory, tokens, notices and to-dos in numbers."""
        return _JSON(state.summary())

    async def admin_expire(_request: Request) -> Response:
        """Expire every access token (the next call gets 42001 / InvalidAuthentication)."""
        return _JSON({"expired": state.expire_all_tokens()})

    app = Starlette(routes=with_admin_index("DingTalk server API (oapi + v1.0)", [
        Route("/gettoken", gettoken, methods=["GET"]),
        Route("/topapi/{operation:path}", topapi, methods=["POST"]),
        Route("/v1.0/oauth2/accessToken", access_token, methods=["POST"]),
        Route("/v1.0/oauth2/userAccessToken", user_access_token, methods=["POST"]),
        Route("/v1.0/contact/users/me", users_me, methods=["GET"]),
        Route("/oauth2/auth", web_login_page, methods=["GET"]),
        Route("/__sandbox__/browser-user", admin_browser_user, methods=["POST"]),
        Route("/v1.0/todo/users/{union}/{rest:path}", todo, methods=["GET", "POST", "PUT", "DELETE"]),
        Route("/v1.0/workflow/{rest:path}", workflow, methods=["GET", "POST"]),
        Route("/__sandbox__/approvals", admin_approvals, methods=["GET"]),
        Route("/__sandbox__/approvals/callbacks", admin_pushes, methods=["GET", "POST"]),
        Route("/__sandbox__/approvals/{instance}/act", admin_approval_act, methods=["POST"]),
        Route("/__sandbox__/notices", admin_notices, methods=["GET"]),
        Route("/__sandbox__/todos", admin_todos, methods=["GET"]),
        Route("/__sandbox__/todos/{task}/complete", admin_complete, methods=["POST"]),
        Route("/__sandbox__/faults", admin_faults, methods=["GET", "POST"]),
        Route("/__sandbox__/state", admin_state, methods=["GET"]),
        Route("/__sandbox__/expire-tokens", admin_expire, methods=["POST"]),
        Route("/__sandbox__/authcode", admin_code, methods=["POST"]),
        Route("/__sandbox__/in-app-user", admin_in_app_user, methods=["POST"]),
        Route("/__sandbox__/dingtalk.open.js", jsapi, methods=["GET"]),
        Route("/user/getuserinfo", legacy_getuserinfo, methods=["GET"]),
    ]))
    app.state.dingtalk = state
    app.state.approvals = book
    app.state.approval_pushes = pushes
    app.state.faults = plan
    return app


def _todo_call(state: DingTalkState, operation: str, union_id: str, match: re.Match[str], operator: str | None,
               body: Json) -> Json:
    """Dispatch one v1.0 to-do operation (under the state's lock)."""
    if operation == "todo/tasks/create":
        return state.create_todo(union_id, operator, body)
    if operation == "todo/tasks/sources":
        return state.todo_by_source(union_id, match["source"])
    if operation == "todo/tasks/get":
        return state.get_todo(union_id, match["task"])
    if operation == "todo/tasks/update":
        return state.update_todo(union_id, match["task"], operator, body)
    if operation == "todo/tasks/executorStatus":
        return state.executor_status(union_id, match["task"], operator, body)
    if operation == "todo/tasks/delete":
        return state.delete_todo(union_id, match["task"])
    return state.query_todos(union_id, body)


__all__ = ["create_app"]
