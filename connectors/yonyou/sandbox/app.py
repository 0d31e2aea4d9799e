"""The YonBIP open-API emulator as a Starlette app (reference ``erp-apis.md`` §3 "Yonyou sandbox").

Wire behaviour:

1. Token: ``GET …/open-auth/selfAppAuth/getAccessToken`` and ``…/selfAppAuth/base/v1/getAccessToken``,
   with or without the ``/iuap-api-auth`` prefix (the vendor package prefixes it itself), and
   the suite-app variants (``suiteApp``, with ``suiteKey``/``tenantId``). The HMAC is verified
   (§2.2) and the timestamp must be within 5 minutes of the sandbox clock [guess: the real
   window is undocumented]; reply ``{"code":"00000","message":"成功！","data":{"access_token",
   "expire"}}``; an unknown appKey gets ``10018``, a wrong signature ``10019`` [guess].
2. ``GET /open-auth/dataCenter/getGatewayAddress?tenantId=`` points at the sandbox itself;
   another tenant gets ``{"code":"500"}``.
3. ``/iuap-api-gateway/yonbip/<path>``: an unknown path is HTTP 404 ``310404`` (checked before
   the token); the token comes from the query or the ``access_token`` header; missing →
   ``310001``, unknown or expired → ``310036`` "非法token".
4. Envelopes of §2.3/§2.5 (``code "200"``), the tenant's rules and ``resubmitCheckKey``
   replay (:mod:`.state`).
5. Limits: at most ``max_concurrent_requests`` business calls served at once; more answer
   ``310046`` (API rate limit). The announced per-minute quota (erp-apis.md §2.3 [DOC]: sales
   order list, detail and singleSave, 60 calls a minute each from 2026-03-31): past
   ``order_calls_per_minute`` calls of one of those APIs in the last ``quota_window_s`` (60 s;
   a sliding window, the strictest reading — the platform's window type is undocumented)
   the call answers ``310046`` with HTTP 200; refused calls do not count.
6. Faults (``connectors.kit.sandbox.FaultPlan``, operation = the path below ``/yonbip/``, e.g.
   ``sd/voucherorder/singlesave``): ``latency``; ``http_500`` → HTTP 500 page; ``timeout`` →
   sleeps ``timeout_s`` then ``310504``; ``auth_expired`` → the caller's token dies first
   (``310036``); ``rate_limit`` → ``310046``/``310039`` in turn; ``busy`` → ``202`` ("still
   processing") on idempotent saves, ``310071`` elsewhere; ``drop_response`` → applied, then
   HTTP 504 with an empty body. ``token_ttl_s`` gives short-lived tokens.

Admin endpoints (not part of the vendor API) live under ``/__sandbox__/``.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import json
import secrets
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from connectors.kit.sandbox import FaultPlan
from connectors.kit.sandbox.admin import admin_faults, with_admin_index
from connectors.kit.sandbox.gate import ServingGate
from connectors.yonyou.sandbox.seed import SeedStats, seed_state
from connectors.yonyou.sandbox.state import Refused, YonyouState
from connectors.yonyou.settings import DEFAULT_MAX_CONCURRENT_CALLS, DEFAULT_ORDER_CALLS_PER_MINUTE

TIMESTAMP_WINDOW_S = 300.0  # a guess: the real tolerance is undocumented (§2.2)
GATEWAY_PREFIX = "/iuap-api-gateway/yonbip/"
IDEMPOTENT_SAVES = frozenset({"sd/voucherorder/singlesave", "digitalmodel/merchant/idempotent/newinsert"})
QUOTA_OPERATIONS = frozenset({"sd/voucherorder/list", "sd/voucherorder/detail", "sd/voucherorder/singlesave"})


@dataclass
class ApiQuota:
    """Calls per API in a sliding window (§2.3's per-minute quota); ``limit`` None: no quota.
    Handlers share one event loop, so no lock is needed."""

    limit: int | None
    window_s: float = 60.0
    clock: Callable[[], float] = time.monotonic
    refused: int = 0  # calls answered 310046 because the quota was spent
    _calls: dict[str, deque[float]] = field(default_factory=dict)

    def admit(self, operation: str) -> bool:
        """Count a call of ``operation`` now, or refuse it (counted as refused, not as a call)."""
        if self.limit is None or operation not in QUOTA_OPERATIONS:
            return True
        now = self.clock()
        calls = self._calls.setdefault(operation, deque())
        while calls and calls[0] <= now - self.window_s:
            calls.popleft()
        if len(calls) >= self.limit:
            self.refused += 1
            return False
        calls.append(now)
        return True

    def describe(self) -> dict[str, float | int | None]:
        """The figures for the admin endpoint."""
        return {"order_calls_per_minute": self.limit, "quota_window_s": self.window_s, "quota_refused": self.refused}


@dataclass(frozen=True)
class SandboxCredentials:
    """The sandbox tenant and its apps (test values, not secrets of any real tenant)."""

    tenant_id: str = "sandbox-tenant-0001"
    app_key: str = "5f1d3c9a8b7e4d2f9a0b1c2d3e4f5a6b"
    app_secret: str = "8e2b6c1d4f7a9e3b5c0d2a6f8b1e4c7d9a2f5b8e"
    suite_key: str = "suite-sandbox-0001"
    suite_secret: str = "3c5e7a9b1d2f4a6c8e0b2d4f6a8c0e2b"


SANDBOX_CREDENTIALS = SandboxCredentials()


@dataclass
class YonyouSandbox:
    """Everything one sandbox instance holds; ``app.state.yonyou`` (faults also ``app.state.faults``)."""

    data: YonyouState
    credentials: SandboxCredentials
    faults: FaultPlan
    gate: ServingGate
    quota: ApiQuota = field(default_factory=lambda: ApiQuota(None))
    token_ttl_s: int = 7200
    seed_stats: SeedStats | None = None
    tokens: dict[str, float] = field(default_factory=dict)  # token → expires at (monotonic)
    tokens_issued: int = 0
    requests: dict[str, int] = field(default_factory=dict)  # operation → count
    _rate_limit_turn: int = 0

    def issue_token(self) -> str:
        """A new token valid for ``token_ttl_s``."""
        token = secrets.token_urlsafe(48)  # new-style tokens are long (§2.2)
        self.tokens[token] = time.monotonic() + self.token_ttl_s
        self.tokens_issued += 1
        return token

    def token_valid(self, token: str) -> bool:
        """True while ``token`` was issued here and has not expired."""
        expires = self.tokens.get(token)
        return expires is not None and time.monotonic() < expires

    def expire_tokens(self) -> int:
        """Expire every token (the admin endpoint); returns how many."""
        count = len(self.tokens)
        self.tokens.clear()
        return count


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)  # amounts have ≤ 15 significant digits: repr round-trips them exactly
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _reply(payload: Any, status: int = 200) -> Response:
    body = json.dumps(payload, ensure_ascii=False, default=_json_default).encode("utf-8")
    return Response(body, status_code=status, media_type="application/json;charset=UTF-8")


def _refusal(code: str, message: str, status: int = 200) -> Response:
    return _reply({"code": code, "message": message, "data": None}, status)


def _signature(params: Mapping[str, str], secret: str) -> str:
    text = "".join(f"{k}{params[k]}" for k in sorted(params) if k != "signature")
    return base64.b64encode(hmac.new(secret.encode(), text.encode(), hashlib.sha256).digest()).decode()


# ---------------------------------------------------------------------------------------------
# Auth service and discovery

async def _gateway_address(request: Request) -> Response:
    sandbox: YonyouSandbox = request.app.state.yonyou
    if request.query_params.get("tenantId") != sandbox.credentials.tenant_id:
        return _refusal("500", "租户不存在或未开通")
    base = str(request.base_url).rstrip("/")
    return _reply({"code": "00000", "message": "成功！",
                   "data": {"gatewayUrl": f"{base}/iuap-api-gateway", "tokenUrl": f"{base}/iuap-api-auth"}})


async def _self_app_token(request: Request) -> Response:
    return _token(request, key_param="appKey")


async def _suite_app_token(request: Request) -> Response:
    return _token(request, key_param="suiteKey")


def _token(request: Request, *, key_param: str) -> Response:
    sandbox: YonyouSandbox = request.app.state.yonyou
    creds = sandbox.credentials
    params = dict(request.query_params)
    sandbox.requests["getAccessToken"] = sandbox.requests.get("getAccessToken", 0) + 1
    known = {creds.app_key: creds.app_secret} if key_param == "appKey" else {creds.suite_key: creds.suite_secret}
    secret = known.get(params.get(key_param, ""))
    if secret is None or (key_param == "suiteKey" and params.get("tenantId") != creds.tenant_id):
        return _refusal("10018", "应用不存在或appKey已停用")
    try:
        stamp = int(params.get("timestamp", "")) / 1000
    except ValueError:
        return _refusal("10019", "timestamp 参数错误")
    if abs(time.time() - stamp) > TIMESTAMP_WINDOW_S:
        return _refusal("10019", "时间戳已过期")
    if not hmac.compare_digest(_signature(params, secret), params.get("signature", "")):
        return _refusal("10019", "签名验证失败")
    return _reply({"code": "00000", "message": "成功！",
                   "data": {"access_token": sandbox.issue_token(), "expire": sandbox.token_ttl_s}})


# ---------------------------------------------------------------------------------------------
# Business gateway

def _route(sandbox: YonyouSandbox, method: str, operation: str, body: Any, query: Mapping[str, str]) -> Any:
    """The ``data`` of a business call (or a whole reply dict with ``code``); Refused otherwise."""
    state = sandbox.data
    if operation == "sd/voucherorder/detail" and method == "GET":
        return state.order_detail(str(query.get("id") or ""))
    if not isinstance(body, Mapping):
        raise Refused("请求体必须是 JSON 对象", "310023")
    data = body.get("data")
    if operation == "digitalmodel/merchant/newlist":
        return state.merchant_list(body)
    if operation == "sd/voucherorder/list":
        return state.order_list(body)
    if operation == "efi/arpublicevent/list":
        return state.receivable_list(body)
    if operation == "digitalmodel/staff/list":
        return state.staff_list(body)
    if operation in ("sd/voucherorder/batchsubmit", "sd/voucherorder/batchaudit", "sd/voucherorder/batchunaudit"):
        return state.order_batch(operation.rsplit("/", 1)[-1], data)
    if not isinstance(data, Mapping):
        raise Refused("data 不能为空", "310008")
    if operation == "sd/voucherorder/singlesave":
        return state.order_save(data)
    return state.merchant_insert(data)


ROUTES = {  # lower-cased path below /yonbip/ → method
    "digitalmodel/merchant/newlist": "POST", "digitalmodel/merchant/idempotent/newinsert": "POST",
    "sd/voucherorder/list": "POST", "sd/voucherorder/detail": "GET", "sd/voucherorder/singlesave": "POST",
    "sd/voucherorder/batchsubmit": "POST", "sd/voucherorder/batchaudit": "POST",
    "sd/voucherorder/batchunaudit": "POST", "efi/arpublicevent/list": "POST", "digitalmodel/staff/list": "POST",
}


async def _gateway(request: Request) -> Response:
    sandbox: YonyouSandbox = request.app.state.yonyou
    operation = request.path_params["path"].strip("/").lower()
    if ROUTES.get(operation) != request.method:
        return _refusal("310404", f"API不存在：/yonbip/{request.path_params['path']}", status=404)
    sandbox.requests[operation] = sandbox.requests.get(operation, 0) + 1
    token = request.query_params.get("access_token") or request.headers.get("access_token") or ""
    raw = await request.body()  # read first: a slow answer must not meet a client that left
    fault = sandbox.faults.next_fault(operation)
    if fault == "auth_expired":
        sandbox.tokens.pop(token, None)
    if not token:
        return _refusal("310001", "access_token 不能为空")
    if not sandbox.token_valid(token):
        return _refusal("310036", "非法token")
    early = await _early_fault(sandbox, fault, operation)
    if early is not None:
        return early
    if not sandbox.quota.admit(operation):
        return _refusal("310046", "API调用频率超过限制（每分钟调用次数已用完），请稍后重试")
    admitted_at = sandbox.gate.admit()
    if admitted_at is None:
        return _refusal("310046", "API调用频率超过限制，请稍后重试")
    try:
        if fault == "latency":
            await asyncio.sleep(max(sandbox.faults.latency_ms, 0) / 1000)
        response = _answer(sandbox, request.method, operation, raw, request.query_params)
    finally:
        sandbox.gate.done(admitted_at)
    if fault == "drop_response":
        return Response(b"", status_code=504)  # the tenant applied it; the gateway lost the reply
    return response


async def _early_fault(sandbox: YonyouSandbox, fault: str | None, operation: str) -> Response | None:
    """Faults that answer without touching the tenant's state."""
    if fault == "http_500":
        return HTMLResponse("<html><body><h1>500 Internal Server Error</h1></body></html>", status_code=500)
    if fault == "timeout":
        await asyncio.sleep(sandbox.faults.timeout_s)
        return _refusal("310504", "后端服务调用超时")
    if fault == "rate_limit":
        sandbox._rate_limit_turn += 1
        return (_refusal("310046", "API调用频率超过限制") if sandbox._rate_limit_turn % 2
                else _refusal("310039", "应用调用频率超过限制"))
    if fault == "busy":
        return (_refusal("202", "幂等请求处理中，请稍后重试") if operation in IDEMPOTENT_SAVES
                else _refusal("310071", "后端服务异常"))
    return None


def _answer(sandbox: YonyouSandbox, method: str, operation: str, raw: bytes, query: Mapping[str, str]) -> Response:
    try:
        body = json.loads(raw, parse_float=Decimal) if raw.strip() else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _refusal("310023", "请求体不是有效的 JSON")
    try:
        result = _route(sandbox, method, operation, body, query)
    except Refused as refused:
        return _refusal(refused.code, refused.message)
    if isinstance(result, Mapping) and "code" in result and operation in IDEMPOTENT_SAVES:
        return _reply(result)  # an idempotent save's own envelope (replayed verbatim)
    return _reply({"code": "200", "message": "操作成功", "data": result})


# ---------------------------------------------------------------------------------------------
# Admin endpoints

async def _admin_state(request: Request) -> Response:
    """Seed sizes, counts, tokens, limits and requests served."""
    sandbox: YonyouSandbox = request.app.state.yonyou
    return _reply({**sandbox.data.summary(), **sandbox.gate.describe(), **sandbox.quota.describe(),
                   "tokens": len(sandbox.tokens),
                   "tokens_issued": sandbox.tokens_issued, "token_ttl_s": sandbox.token_ttl_s,
                   "faults": sandbox.faults.describe(), "requests": dict(sandbox.requests),
                   "credentials": {"tenant_id": sandbox.credentials.tenant_id, "app_key": sandbox.credentials.app_key}})


async def _admin_expire(request: Request) -> Response:
    """Expire every token (the next business call gets 310036)."""
    sandbox: YonyouSandbox = request.app.state.yonyou
    return JSONResponse({"expired": sandbox.expire_tokens()})


async def _admin_order(request: Request) -> Response:
    """One sales order as stored, by code."""
    sandbox: YonyouSandbox = request.app.state.yonyou
    with sandbox.data.lock:
        order = sandbox.data.order_by_code(request.path_params["code"])
        return _reply(order) if order else JSONResponse({"error": "not found"}, status_code=404)


def create_app(
    *, scale: float = 1.0, today: dt.date | None = None, credentials: SandboxCredentials = SANDBOX_CREDENTIALS,
    faults: FaultPlan | None = None, seed: int = 20240601, token_ttl_s: int = 7200,
    max_concurrent_requests: int | None = DEFAULT_MAX_CONCURRENT_CALLS, replay_window_s: float = 3600.0,
    order_calls_per_minute: int | None = DEFAULT_ORDER_CALLS_PER_MINUTE, quota_window_s: float = 60.0,
    clock: Callable[[], float] = time.monotonic, merchant_order: str = "created",
) -> Starlette:
    """Build a seeded YonBIP sandbox app.

    ``scale`` 1.0 seeds 2,000 customers and 20,000 order lines; 0.05 is for fast tests.
    ``today`` fixes the sandbox date (default: today in Asia/Shanghai); ``token_ttl_s`` gives
    short-lived tokens; ``max_concurrent_requests`` is the concurrency limit (None: none).
    ``order_calls_per_minute`` is the per-API quota of the sales order list, detail and
    singleSave (60, the platform's free quota; None or 0: a purchased quota, none enforced);
    ``quota_window_s`` (the minute) and ``clock`` (the quota's clock) are for tests.
    ``merchant_order`` is the order ``merchant/newlist`` answers in (undocumented): "created"
    (insertion order) or "changed" (``pubts``, then id: an edit moves a customer to the end).
    """
    if merchant_order not in ("created", "changed"):
        raise ValueError(f"merchant_order is 'created' or 'changed', not {merchant_order!r}")
    today = today or dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date()
    data = YonyouState(today=today, replay_window_s=replay_window_s, merchant_order=merchant_order)
    stats = seed_state(data, scale=scale, seed=seed)
    sandbox = YonyouSandbox(data=data, credentials=credentials, faults=faults or FaultPlan(),
                            gate=ServingGate(max_concurrent_requests),
                            quota=ApiQuota(order_calls_per_minute or None, quota_window_s, clock), token_ttl_s=token_ttl_s, seed_stats=stats)
    token_paths = [f"{prefix}/open-auth/{kind}/{version}getAccessToken"
                   for prefix in ("/iuap-api-auth", "") for kind in ("selfAppAuth", "suiteApp")
                   for version in ("", "base/v1/")]
    routes = [
        Route("/__sandbox__/state", _admin_state, methods=["GET"]),
        Route("/__sandbox__/faults", admin_faults, methods=["GET", "POST"]),
        Route("/__sandbox__/tokens/expire", _admin_expire, methods=["POST"]),
        Route("/__sandbox__/orders/{code:path}", _admin_order, methods=["GET"]),
        Route("/open-auth/dataCenter/getGatewayAddress", _gateway_address, methods=["GET"]),
        *(Route(path, _self_app_token if "selfAppAuth" in path else _suite_app_token, methods=["GET", "POST"])
          for path in token_paths),
        Route(GATEWAY_PREFIX + "{path:path}", _gateway, methods=["GET", "POST"]),
    ]
    app = Starlette(routes=with_admin_index("Yonyou YonBIP open API", routes))
    app.state.yonyou = sandbox
    app.state.faults = sandbox.faults  # where the hub runtime and the demo look for every sandbox's plan
    return app


__all__ = ["QUOTA_OPERATIONS", "SANDBOX_CREDENTIALS", "ApiQuota", "SandboxCredentials", "YonyouSandbox", "create_app"]
