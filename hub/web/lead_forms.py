"""``POST /forms/lead``: the public web form a company website posts leads to.

Nobody signs in to a website's contact form, so the endpoint guards itself:

- **per-form key**: the form carries ``form_key``, one of ``HUB_LEADS__FORM_KEYS``
  (``site=KEY,expo=KEY``: which form it was is the lead's channel ``web_form:<form>``);
  compared in constant time; unknown or missing → 403;
- **size**: only ``application/x-www-form-urlencoded`` (else 415), at most
  ``HUB_LEADS__FORM_MAX_BYTES`` (413, refused before the body is read past the limit), at
  most :data:`MAX_FIELDS` fields;
- **honeypot**: a field named ``website`` that people never see (hidden by the site's CSS);
  a bot that fills it is thanked and nothing is stored (counted in the audit);
- **rate limit**: at most ``HUB_LEADS__FORM_RATE_PER_MINUTE`` posts per client address in
  a sliding minute, per web process (429 with ``Retry-After``). Behind a reverse proxy the
  client address is the proxy's unless uvicorn is told to trust ``X-Forwarded-For``.

Fields: ``company`` (required), ``name``, ``mobile``, ``email``, ``region``, ``industry``,
``amount`` (estimated, yuan), ``credit_code``. The answer is a small thank-you page, or
``{"received": true}`` for a client that accepts JSON; it never says whether the company
was known (the form is public). The lead goes through the same capture, de-duplication and
assignment as the API's (``hub.rules.leads``).
"""

from __future__ import annotations

import collections
import html
import threading
import time
import uuid
from decimal import Decimal, InvalidOperation
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from hub.access.secrets import same
from hub.audit import write_audit
from hub.rules.leads import LeadInput, capture_lead, valid_credit_code
from hub.settings import Settings

MAX_FIELDS = 20
HONEYPOT = "website"
_LIMITS = {"company": 300, "name": 200, "mobile": 32, "email": 200, "region": 100, "industry": 100, "amount": 30,
           "credit_code": 40}
_THANKS = ("<!doctype html><html lang=\"zh-CN\"><meta charset=\"utf-8\"><title>提交成功</title>"
           "<p>感谢您的咨询，我们会尽快与您联系。</p></html>")


class RateLimiter:
    """At most ``limit`` events per key in any sliding ``window_s`` (in this process)."""

    def __init__(self, limit: int, window_s: float = 60.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._events: dict[str, collections.deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str, now: float | None = None) -> float | None:
        """None when the event is allowed (and counted); else seconds until it would be."""
        at = time.monotonic() if now is None else now
        with self._lock:
            events = self._events.setdefault(key, collections.deque())
            while events and events[0] <= at - self.window_s:
                events.popleft()
            if len(events) >= self.limit:
                return max(events[0] + self.window_s - at, 0.0)
            events.append(at)
            if len(self._events) > 10_000:  # forget idle addresses
                for idle in [k for k, v in self._events.items() if not v][:5_000]:
                    del self._events[idle]
            return None


def _problem(request: Request, status: int, detail: str, headers: dict[str, str] | None = None) -> Response:
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse({"detail": detail}, status_code=status, headers=headers)
    page = f"<!doctype html><html lang=\"zh-CN\"><meta charset=\"utf-8\"><title>提交失败</title><p>{html.escape(detail)}</p>"
    return HTMLResponse(page, status_code=status, headers=headers)


async def _body(request: Request, limit: int) -> bytes | None:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdecimal() or int(declared) > limit):
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def lead_form_router(settings: Settings) -> APIRouter:
    """The form endpoint (module doc) over the hub's settings."""
    router = APIRouter()
    leads = settings.leads
    keys = leads.form_key_map()
    limiter = RateLimiter(leads.form_rate_per_minute)

    @router.post("/forms/lead", include_in_schema=False)
    async def lead_form(request: Request) -> Response:
        """Take one lead from a website's form."""
        client = request.client.host if request.client else "unknown"
        wait = limiter.allow(client)
        if wait is not None:
            return _problem(request, 429, "提交过于频繁，请稍后再试。", {"Retry-After": str(int(wait) + 1)})
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != \
                "application/x-www-form-urlencoded":
            return _problem(request, 415, "只接受 application/x-www-form-urlencoded 表单。")
        body = await _body(request, leads.form_max_bytes)
        if body is None:
            return _problem(request, 413, f"表单过大（最多 {leads.form_max_bytes} 字节）。")
        try:
            parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FIELDS, errors="strict",
                              strict_parsing=False)
        except (UnicodeDecodeError, ValueError):
            return _problem(request, 400, "表单无法解析（UTF-8，最多 20 个字段）。")
        fields = {k: v[0].strip() for k, v in parsed.items() if v}
        given = fields.get("form_key", "")
        form = next((name for name, key in keys.items() if same(given, key)), None) if given else None
        if form is None:
            return _problem(request, 403, "表单未授权（form_key 无效）。")
        if any(ord(ch) < 32 or ord(ch) == 127 for value in fields.values() for ch in value):
            return _problem(request, 422, "表单含有控制字符。")
        for name, most in _LIMITS.items():
            if len(fields.get(name, "")) > most:
                return _problem(request, 422, f"{name}: 最多 {most} 个字符。")
        if fields.get(HONEYPOT):
            await run_in_threadpool(_audit_honeypot, request, form, client)
            return _thanks(request)
        if not fields.get("company"):
            return _problem(request, 422, "company: 请填写公司名称。")
        amount = None
        if fields.get("amount"):
            try:
                amount = Decimal(fields["amount"].replace(",", ""))
            except InvalidOperation:
                return _problem(request, 422, "amount: 请填写数字金额。")
            if not amount.is_finite() or amount < 0 or amount >= Decimal(10) ** 16:
                return _problem(request, 422, "amount: 金额不在有效范围内。")
            amount = amount.quantize(Decimal("0.01"))
        code, _problem_text = valid_credit_code(fields.get("credit_code") or None)
        data = LeadInput(source_system="web_form", external_id=f"{form}:{uuid.uuid4()}",
                         company_name=fields["company"], channel=f"web_form:{form}"[:50], credit_code=code,
                         region=fields.get("region") or None, industry=fields.get("industry") or None,
                         contact_name=fields.get("name") or None, mobile=fields.get("mobile") or None,
                         email=fields.get("email") or None, estimated_amount=amount)

        def store() -> None:
            with request.app.state.db.engine.begin() as conn:
                capture = capture_lead(conn, data, leads, actor=f"web:form:{form}")
                write_audit(conn, actor=f"web:form:{form}", system="hub", operation=f"lead:form:{capture.outcome}",
                            outcome="ok", key=f"lead:{capture.lead_id}", detail={"form": form})

        await run_in_threadpool(store)
        return _thanks(request)

    def _audit_honeypot(request: Request, form: str, client: str) -> None:
        with request.app.state.db.engine.begin() as conn:
            write_audit(conn, actor=f"web:form:{form}", system="hub", operation="lead:form:honeypot",
                        outcome="refused", detail={"form": form, "client": client})

    return router


def _thanks(request: Request) -> Response:
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse({"received": True})
    return HTMLResponse(_THANKS)


__all__ = ["HONEYPOT", "RateLimiter", "lead_form_router"]
