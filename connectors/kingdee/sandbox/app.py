"""The K/3 Cloud WebAPI emulator as a Starlette app (reference ``erp-apis.md`` §3).

Wire behaviour:

- ``POST /<vdir>/<Service>.common.kdsvc`` with any virtual directory (``/k3cloud/`` or none)
  and case-insensitive service names (§1.1 [COMM]), e.g.
  ``/k3cloud/Kingdee.BOS.WebApi.ServicesStub.DynamicFormService.ExecuteBillQuery.common.kdsvc``.
- Bodies: named ``{"formid"|"formId": …, "data": {…} | "<json>"}`` or legacy positional
  ``{"parameters": [formid, "<json>"]}`` (§1.1).
- HTTP 200 with JSON for every business outcome; HTTP 5xx and ``response_error:`` bodies only
  from injected faults (§3.2).
- Faults (``connectors.kit.sandbox.FaultPlan``, operation = lower-case method name, e.g.
  ``save``): ``latency`` sleeps; ``http_500`` → HTTP 500; ``timeout`` sleeps ``timeout_s`` then
  HTTP 500; ``auth_expired`` drops every session first; ``rate_limit`` → HTTP 503 with a
  ``response_error:`` body (Kingdee has no rate-limit code: overload shows as timeouts and
  5xx, §1.3); ``busy`` → HTTP 200 ``response_error:`` body (a server-side SQL timeout);
  ``drop_response`` applies the request and answers HTTP 504 with an empty body.

Admin endpoints (not part of the vendor API) live under ``/__sandbox__/``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from connectors.kingdee.sandbox.auth import (
    SANDBOX_CREDENTIALS,
    SandboxCredentials,
    Session,
    SessionStore,
    StaleSignedPolicy,
    check_login_sign,
    has_signed_headers,
    verify_signed_headers,
)
from connectors.kingdee.sandbox.seed import SeedStats, seed_state
from connectors.kingdee.sandbox.state import (
    MSGCODE_SESSION,
    KdError,
    KingdeeState,
    json_value,
    response_status,
    session_lost_envelope,
    wrapped_query_error,
)
from connectors.kingdee.settings import DEFAULT_MAX_CONCURRENT_CALLS
from connectors.kit.sandbox import FaultPlan
from connectors.kit.sandbox.admin import with_admin_index

_STUB = re.compile(r"^(?:.*/)?(?P<stub>[A-Za-z0-9_.]+)\.common\.kdsvc$", re.IGNORECASE)
QUERY_METHODS = frozenset({"executebillquery", "billquery"})
FORM_METHODS = frozenset({"view", "save", "batchsave", "draft", "submit", "audit", "unaudit", "delete"})
AUTH_METHODS = frozenset({"validateuser", "loginbyappsecret", "loginbysign", "logout"})
SQL_TIMEOUT_TEXT = "执行超时已过期。完成操作之前已超时或服务器未响应。"


@dataclass
class KingdeeSandbox:
    """Everything one sandbox instance holds; reachable as ``app.state.kingdee``
    (its fault plan also as ``app.state.faults``, like every sandbox's)."""

    data: KingdeeState
    credentials: SandboxCredentials
    faults: FaultPlan
    sessions: SessionStore
    strict_signatures: bool = False
    stale_signed_session: StaleSignedPolicy = "renew"
    seed_stats: SeedStats | None = None
    build_seconds: float = 0.0
    requests: dict[str, int] = field(default_factory=dict)  # method → count, for tests/admin
    max_concurrent_requests: int | None = DEFAULT_MAX_CONCURRENT_CALLS  # None: unlimited
    in_flight: int = 0  # requests being served now (handlers share one event loop: no lock needed)
    peak_in_flight: int = 0
    overloaded: int = 0  # requests refused because max_concurrent_requests were being served
    busy_seconds: float = 0.0  # summed serving time of every request (slot-seconds in use)

    def expire_sessions(self) -> int:
        """Drop every session (what the ``auth_expired`` fault does); returns how many."""
        return self.sessions.drop_all()

    def admit(self) -> float | None:
        """Take a serving slot and return when (None, and counted, when all are taken)."""
        if self.max_concurrent_requests is not None and self.in_flight >= self.max_concurrent_requests:
            self.overloaded += 1
            return None
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        return time.perf_counter()

    def done(self, admitted_at: float) -> None:
        """Give the serving slot taken at ``admitted_at`` back."""
        self.in_flight -= 1
        self.busy_seconds += time.perf_counter() - admitted_at


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal | dt.datetime):
        return json_value(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, default=_json_default).encode("utf-8")


def _lower_keys(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k).lower(): v for k, v in mapping.items()}


def _session_cookies(response: Response, session: Session) -> None:
    """Issue the session the way the server does (§3.4): no ``Expires`` (the SDK splits on commas)."""
    response.raw_headers.append((b"set-cookie", f"kdservice-sessionid={session.sid}; path=/".encode()))
    response.raw_headers.append(
        (b"set-cookie", f"ASP.NET_SessionId={session.asp_session}; path=/; HttpOnly".encode()))
    response.raw_headers.append((b"kdservice-sessionid", session.sid.encode()))


def _reply(payload: Any, session: Session | None = None) -> Response:
    response = Response(_dumps(payload), media_type="application/json; charset=utf-8")
    if session is not None:
        _session_cookies(response, session)
    return response


def _parse_json_text(text: str) -> Any:
    return json.loads(text, parse_float=Decimal) if text.strip() else {}


class _BadRequest(Exception):
    """The body cannot be read as a WebAPI request."""


def _arguments(method: str, body: Any) -> tuple[str, Any]:
    """(form id, data) from a named or positional body."""
    if not isinstance(body, Mapping):
        raise _BadRequest("请求报文必须是 JSON 对象")
    lowered = _lower_keys(body)
    if "parameters" in lowered:
        params = lowered["parameters"]
        if isinstance(params, str):
            params = _parse_json_text(params)
        if not isinstance(params, list):
            raise _BadRequest("parameters 必须是数组")
        if method in QUERY_METHODS:
            data = params[0] if params else {}
            form_id = ""
        else:
            form_id = str(params[0]) if params else ""
            data = params[1] if len(params) > 1 else {}
    else:
        form_id = str(lowered.get("formid") or "")
        data = lowered.get("data", {})
    if isinstance(data, str):
        try:
            data = _parse_json_text(data)
        except json.JSONDecodeError as exc:
            raise _BadRequest(f"data 不是有效的 JSON：{exc.msg}") from exc
    if not isinstance(data, Mapping):
        raise _BadRequest("data 必须是 JSON 对象")
    return form_id, data


async def _kdsvc(request: Request) -> Response:
    sandbox: KingdeeSandbox = request.app.state.kingdee
    match = _STUB.match(request.url.path)
    if match is None:
        return PlainTextResponse("Not Found", status_code=404)
    parts = match.group("stub").split(".")
    method = parts[-1].lower()
    service = parts[-2].lower() if len(parts) > 1 else ""
    sandbox.requests[method] = sandbox.requests.get(method, 0) + 1

    raw = await request.body()  # read first: a slow answer must not meet a client that left
    fault = sandbox.faults.next_fault(method)
    if fault == "http_500":
        return PlainTextResponse("服务器内部错误 (500)", status_code=500)
    elif fault == "timeout":
        await asyncio.sleep(sandbox.faults.timeout_s)
        return PlainTextResponse("服务器内部错误 (500)", status_code=500)
    elif fault == "rate_limit":
        return _overloaded()
    elif fault == "busy":
        return PlainTextResponse(f"response_error:{SQL_TIMEOUT_TEXT}", status_code=200)
    elif fault == "auth_expired":
        sandbox.expire_sessions()

    admitted_at = sandbox.admit()
    if admitted_at is None:
        return _overloaded()
    try:
        if fault == "latency":
            await asyncio.sleep(max(sandbox.faults.latency_ms, 0) / 1000)
        response = _dispatch(request, sandbox, service, method, raw)
    finally:
        sandbox.done(admitted_at)
    if fault == "drop_response":
        # The backend finished (state changed) but the gateway lost the reply.
        return Response(b"", status_code=504)
    return response


def _overloaded() -> Response:
    """What an overloaded K/3 Cloud server answers (no rate-limit code exists, §1.3)."""
    return PlainTextResponse("response_error:服务器繁忙，请稍后再试 (Service Unavailable)", status_code=503)


def _dispatch(request: Request, sandbox: KingdeeSandbox, service: str, method: str, raw: bytes) -> Response:
    try:
        body = _parse_json_text(raw.decode("utf-8")) if raw else {}
    except (UnicodeDecodeError, json.JSONDecodeError):
        body = None

    if service == "accountservice" and method == "getdatacenterlist":
        return _reply(_data_centres(sandbox))
    if service == "authservice" and method in AUTH_METHODS:
        return _login(request, sandbox, method, body)
    if service != "dynamicformservice" or method not in QUERY_METHODS | FORM_METHODS:
        return PlainTextResponse(f"Not Found: {service}.{method}", status_code=404)

    is_query = method in QUERY_METHODS
    session, new_session, refusal = _authenticate(request, sandbox)
    if refusal is not None:
        return _reply(refusal)
    assert session is not None

    try:
        form_id, data = _arguments(method, body)
    except _BadRequest as exc:
        error = [KdError(str(exc))]
        payload: Any = (wrapped_query_error(error) if is_query
                        else {"Result": {"ResponseStatus": response_status(errors=error)}})
        return _reply(payload, new_session)

    state = sandbox.data
    if method == "executebillquery":
        result: Any = state.query(data, as_dicts=False)
    elif method == "billquery":
        result = state.query(data, as_dicts=True)
    elif method == "view":
        result = state.view(form_id, data)
    elif method == "save":
        result = state.save(form_id, data)
    elif method == "draft":
        result = state.save(form_id, data, draft=True)
    elif method == "batchsave":
        result = state.batch_save(form_id, data)
    else:
        result = state.status_operation(method, form_id, data)

    if isinstance(body, Mapping) and "beginmethod" in _lower_keys(body):
        # The SDK's "query" invoke mode (BatchSaveQuery): done at once, Status 2 (§3.7).
        result = {"Status": 2, "TaskId": secrets.token_hex(8), "Result": result}
    return _reply(result, new_session)


def _authenticate(request: Request, sandbox: KingdeeSandbox) -> tuple[Session | None, Session | None, Any]:
    """(session, newly issued session or None, refusal reply or None)."""
    headers = {k.lower(): v for k, v in request.headers.items()}
    sid = headers.get("kdservice-sessionid") or request.cookies.get("kdservice-sessionid") or ""
    is_query = request.url.path.lower().endswith(("executebillquery.common.kdsvc", "billquery.common.kdsvc"))
    if has_signed_headers(headers):
        path = request.scope.get("raw_path", b"").decode("latin-1") or request.url.path
        check = verify_signed_headers(headers, path, sandbox.credentials, strict=sandbox.strict_signatures)
        if not check.ok:
            errors = [KdError(check.reason)]
            refusal: Any = (wrapped_query_error(errors, MSGCODE_SESSION) if is_query else
                            {"Result": {"ResponseStatus": response_status(errors=errors, msg_code=MSGCODE_SESSION)}})
            return None, None, refusal
        session = sandbox.sessions.touch(sid) if sid else None
        if session is not None:
            return session, None, None
        if sid and sandbox.stale_signed_session == "fail":
            return None, None, session_lost_envelope(is_query)
        fresh = sandbox.sessions.create(check.username, "signed")
        return fresh, fresh, None
    session = sandbox.sessions.touch(sid) if sid else None
    if session is None:
        return None, None, session_lost_envelope(is_query)
    return session, None, None


def _data_centres(sandbox: KingdeeSandbox) -> list[dict[str, Any]]:
    creds = sandbox.credentials
    return [{"Id": creds.acct_id, "Number": "01", "Name": creds.data_center_name, "DataBaseType": 3,
             "ProductEdition": 0, "Lcid": creds.lcid}]


def _login(request: Request, sandbox: KingdeeSandbox, method: str, body: Any) -> Response:
    creds = sandbox.credentials
    if method == "logout":
        sid = request.headers.get("kdservice-sessionid") or request.cookies.get("kdservice-sessionid") or ""
        sandbox.sessions.drop(sid)
        return _reply(True)
    values = _login_values(method, body)
    ok = False
    if method == "validateuser":
        ok = (values.get("acctid") == creds.acct_id and values.get("username") == creds.username
              and values.get("password") == creds.password)
    elif method == "loginbyappsecret":
        ok = (values.get("acctid") == creds.acct_id and values.get("username") == creds.username
              and values.get("appid") == creds.app_id and values.get("appsecret") == creds.app_secret)
    elif method == "loginbysign":
        ok = check_login_sign(creds, values.get("acctid", ""), values.get("username", ""),
                              values.get("appid", ""), values.get("timestamp", ""), values.get("sign", ""))
    if not ok:
        # Field names as in the login reply quoted in §1.2; the message text is a guess.
        return _reply({"Message": "用户名或密码错误，或应用授权信息不正确！", "MessageCode": "CheckPasswordPolicy",
                       "LoginResultType": 0, "Context": None, "KDSVCSessionId": None,
                       "IsSuccessByAPI": False})
    session = sandbox.sessions.create(creds.username, {"validateuser": "ValidateUser",
                                                       "loginbyappsecret": "LoginByAppSecret"}.get(method, "LoginBySign"))
    lcid = int(values.get("lcid") or creds.lcid)
    return _reply({
        "Message": None, "MessageCode": "CheckPasswordPolicy", "LoginResultType": 1,
        "Context": {"UserLocale": "zh-CN", "LogLocale": "zh-CN", "DBid": creds.acct_id,
                    "DatabaseType": 3, "SessionId": session.sid, "UserId": 16394,
                    "UserName": creds.username, "CustomName": creds.data_center_name,
                    "DataCenterName": creds.data_center_name, "UserToken": secrets.token_hex(16),
                    "CurrentOrganizationInfo": {"ID": 1, "Name": "总部"}, "IsCH_ZH_AutoTrans": False,
                    "ClientType": 32, "Weak": None, "UseLanguages": [{"LocaleId": lcid, "Alias": "CN"}]},
        "KDSVCSessionId": session.sid, "FormId": None, "RedirectFormParam": None, "FormInputObject": None,
        "ErrorStackTrace": None, "Lcid": 0, "AccessToken": None, "KdAccessResult": None,
        "IsSuccessByAPI": True,
    }, session)


_LOGIN_POSITIONS = {
    "validateuser": ("acctid", "username", "password", "lcid"),
    "loginbyappsecret": ("acctid", "username", "appid", "appsecret", "lcid"),
    "loginbysign": ("acctid", "username", "appid", "timestamp", "sign", "lcid"),
}


def _login_values(method: str, body: Any) -> dict[str, str]:
    """Login arguments from named (``acctID``/``acctid``…) or positional ``parameters`` bodies."""
    if not isinstance(body, Mapping):
        return {}
    lowered = _lower_keys(body)
    if "parameters" in lowered:
        params = lowered["parameters"]
        if isinstance(params, str):
            try:
                params = _parse_json_text(params)
            except json.JSONDecodeError:
                return {}
        if not isinstance(params, list):
            return {}
        return {name: str(value) for name, value in zip(_LOGIN_POSITIONS[method], params, strict=False)}
    return {k: "" if v is None else str(v) for k, v in lowered.items()}


# ---------------------------------------------------------------------------------------------
# Admin endpoints

async def _admin_state(request: Request) -> Response:
    """Seed sizes, table counts, sessions and requests served."""
    sandbox: KingdeeSandbox = request.app.state.kingdee
    summary = sandbox.data.summary()
    summary.update({
        "sessions": len(sandbox.sessions), "sessions_issued": sandbox.sessions.issued,
        "faults": sandbox.faults.describe(), "requests": dict(sandbox.requests),
        "max_concurrent_requests": sandbox.max_concurrent_requests, "peak_in_flight": sandbox.peak_in_flight,
        "overloaded": sandbox.overloaded, "busy_seconds": round(sandbox.busy_seconds, 6),
        "build_seconds": round(sandbox.build_seconds, 3),
        "credentials": {"acct_id": sandbox.credentials.acct_id, "username": sandbox.credentials.username,
                        "app_id": sandbox.credentials.app_id},
    })
    return JSONResponse(summary)


async def _admin_faults(request: Request) -> Response:
    """GET: armed faults; POST: arm or clear them (FaultPlan.configure JSON)."""
    sandbox: KingdeeSandbox = request.app.state.kingdee
    if request.method == "POST":
        try:
            spec = await request.json()
            if not isinstance(spec, dict):
                raise ValueError("expected a JSON object")
            sandbox.faults.configure(spec)
        except (ValueError, KeyError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
    return JSONResponse(sandbox.faults.describe())


async def _admin_expire(request: Request) -> Response:
    """Expire every session (the next call gets MsgCode 1)."""
    sandbox: KingdeeSandbox = request.app.state.kingdee
    return JSONResponse({"dropped": sandbox.expire_sessions()})


async def _admin_bill(request: Request) -> Response:
    """One document as stored, by form id and number."""
    sandbox: KingdeeSandbox = request.app.state.kingdee
    snapshot = sandbox.data.snapshot(request.path_params["form_id"], request.path_params["number"])
    if snapshot is None:
        return JSONResponse({"error": "not found"}, status_code=404)
    return Response(_dumps(snapshot), media_type="application/json")


def create_app(
    *,
    scale: float = 1.0,
    today: dt.date | None = None,
    credentials: SandboxCredentials = SANDBOX_CREDENTIALS,
    faults: FaultPlan | None = None,
    seed: int = 20240501,
    strict_signatures: bool = False,
    stale_signed_session: StaleSignedPolicy = "renew",
    session_idle_timeout_s: float = 20 * 60,
    max_concurrent_requests: int | None = DEFAULT_MAX_CONCURRENT_CALLS,
) -> Starlette:
    """Build a seeded K/3 Cloud sandbox app.

    ``scale`` 1.0 seeds 2,000 customers and 20,000 orders (well under a second); 0.01 is for
    fast tests. ``today`` fixes the sandbox date (default: today in Asia/Shanghai).
    ``strict_signatures`` also enforces ``X-Api-Signature``; ``stale_signed_session`` decides
    whether a signed request with a lost session id fails with MsgCode 1 or gets a new session.
    ``max_concurrent_requests`` is how many requests the server serves at once (None: no limit).
    """
    started = time.perf_counter()
    data = KingdeeState(today=today)
    stats = seed_state(data, scale=scale, seed=seed)
    sandbox = KingdeeSandbox(
        data=data, credentials=credentials, faults=faults or FaultPlan(),
        sessions=SessionStore(session_idle_timeout_s), strict_signatures=strict_signatures,
        stale_signed_session=stale_signed_session, seed_stats=stats,
        build_seconds=time.perf_counter() - started, max_concurrent_requests=max_concurrent_requests,
    )
    app = Starlette(routes=with_admin_index("Kingdee K/3 Cloud WebAPI", [
        Route("/__sandbox__/state", _admin_state, methods=["GET"]),
        Route("/__sandbox__/faults", _admin_faults, methods=["GET", "POST"]),
        Route("/__sandbox__/sessions/expire", _admin_expire, methods=["POST"]),
        Route("/__sandbox__/bills/{form_id}/{number:path}", _admin_bill, methods=["GET"]),
        Route("/{path:path}", _kdsvc, methods=["POST"]),
    ]))
    app.state.kingdee = sandbox
    app.state.faults = sandbox.faults  # where the hub runtime and the demo look for every sandbox's plan
    return app


__all__ = ["KingdeeSandbox", "create_app"]
