"""DingTalk (钉钉) server-API client: the only module that speaks HTTP to DingTalk.

DingTalk is two APIs on two hosts (reference/messaging-apis.md §2, "§" below); this
client speaks both, with the connector kit's plumbing (:mod:`connectors.kit`):

- **oapi** (``base_url``, ``https://oapi.dingtalk.com``): work notices, the directory.
  Token from ``GET /gettoken?appkey&appsecret`` (``expires_in`` 7200 s), carried as the
  ``access_token`` query parameter. Every reply is HTTP 200 with ``errcode``/``errmsg``
  (topapi adds ``request_id`` and wraps data in ``result``); some errors come wrapped as
  ``errcode 88`` whose ``sub_code`` is the real code (§2.1) — :func:`oapi_error` unwraps it.
- **v1.0** (``api_base_url``, ``https://api.dingtalk.com``): to-dos. Token from ``POST
  /v1.0/oauth2/accessToken {appKey, appSecret}`` (``expireIn``), carried in the
  ``x-acs-dingtalk-access-token`` header. Success is a plain 2xx JSON body; failure a
  4xx/5xx with ``{code, message, requestid}`` — an invalid token is HTTP 400
  ``InvalidAuthentication`` (§2.1).

Each flavour is a :class:`~connectors.kit.auth.TokenAuth`: cached until shortly before
it expires, fetched once for all waiting threads, refreshed **once** when a reply says
it is no longer valid (oapi 40014/42001, also inside errcode 88 — dingtalk-sdk does not
refresh on those, §2.5; v1.0 ``InvalidAuthentication``), a second refusal raises
:class:`AuthExpiredError`.

Errors into the hub's tree (§2.3; the kit classifies transport errors, statuses and
non-JSON bodies)::

    oapi errcode -1                         → RetryableError
    40014 / 42001 after one refresh         → AuthExpiredError
    90002 (global/IP throttle; wait ≥ body
      "wait", else the ~5 min IP ban)       → RateLimitedError
    {"status":1111,"wait":N} (the same
      throttle as a gateway page)           → RateLimitedError(retry_after=N)
    90018 / 90019 (app / ISV QPS)           → RateLimitedError(1 s)
    143103 / 143104 (notice person-times
      per minute, app / corp)               → RateLimitedError(60 s)
    33012 / 60121 (unknown user)            → RecipientError (the task records it)
    60011 / 60020 (no API permission / IP
      not whitelisted)                      → PermanentError saying what to configure
    90020 (monthly quota), 22 (unknown API),
      anything else                         → PermanentError(code=errcode)
    v1.0 InvalidAuthentication (after one
      refresh)                              → AuthExpiredError
    v1.0 QPS / flow-control codes           → RateLimitedError(1 s)
    v1.0 other 4xx / 5xx                    → PermanentError / RetryableError (kit)

No retries beyond the single token refresh: backoff belongs to the outbox dispatcher and
Dagster. Every exchange (token fetches and a refused exchange's resend included) is
reported to ``observer`` with ``system="dingtalk"``; no URL, token or secret reaches an
error text, log line or audit row.

Not used: dingtalk-sdk's work-notice path posts to a hard-coded Taobao gateway
(``eco.taobao.com/router/rest``) and its token retry on it crashes (§2.5).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from connectors import kit
from connectors.dingtalk.settings import API_BASE_URL, DEFAULT_MAX_QPS, OAPI_BASE_URL
from hub.calls import CallObserver, CallTimer, ignore_call
from hub.errors import (
    AuthExpiredError,
    PermanentError,
    RateLimitedError,
    RecipientError,
    RetryableError,
    SignInCodeError,
)

# oapi errcode → hub error (§2.3), throttles first. 22 is what oapi answers for an unknown
# API (§2.1). 40089 on gettoken: wrong AppKey/AppSecret — a GUESS recalled from DingTalk's
# error list, not in the reference; any other gettoken error is permanent too.
ERRCODES = kit.CodeTable({
    90002: kit.CodeRule(RateLimitedError, "throttled (global or per-IP limit)", retry_after=300.0),
    90018: kit.CodeRule(RateLimitedError, "throttled (app QPS)", retry_after=1.0),
    90019: kit.CodeRule(RateLimitedError, "throttled (ISV QPS)", retry_after=1.0),
    143103: kit.CodeRule(RateLimitedError, "work notice person-times per minute (app)", retry_after=60.0),
    143104: kit.CodeRule(RateLimitedError, "work notice person-times per minute (corp)", retry_after=60.0),
    -1: kit.CodeRule(RetryableError, "DingTalk busy"),
    40014: kit.CodeRule(AuthExpiredError, "access token rejected"),
    42001: kit.CodeRule(AuthExpiredError, "access token expired"),
    33012: kit.CodeRule(RecipientError, "invalid userid"),
    60121: kit.CodeRule(RecipientError, "user not found"),
    22: kit.CodeRule(PermanentError, "unknown DingTalk API"),
    # 免登 exchange (§6 [unc]): an unknown, used or expired code; the person must open the page again
    40078: kit.CodeRule(SignInCodeError, "sign-in code invalid, used or expired"),
    40089: kit.CodeRule(PermanentError, "AppKey or AppSecret refused (check HUB_DINGTALK__APP_KEY and HUB_DINGTALK__APP_SECRET)"),
    60011: kit.CodeRule(PermanentError, "the app lacks permission for this API or user (grant it in the developer "
                                        "console: 权限管理 / 通讯录范围)"),
    60020: kit.CodeRule(PermanentError, "this server's IP address is not in the app's trusted IPs (developer "
                                        "console: 开发管理 → 服务器出口IP)"),
    90020: kit.CodeRule(PermanentError, "monthly API call quota used up"),
})
# v1.0 ``code`` → hub error. InvalidAuthentication is observed (§2.1); the throttle code is
# uncertain (§2.1: HTTP 403, ``Forbidden.AccessDenied.QpsLimitForApi`` [U]); the to-do
# create flow-control code is third-party documentation (HTTP 400, [3p]); the two
# credential codes of oauth2/accessToken are GUESSES (not in the reference).
API_CODES = kit.CodeTable({
    "InvalidAuthentication": kit.CodeRule(AuthExpiredError, "access token rejected"),
    "Forbidden.AccessDenied.QpsLimitForApi": kit.CodeRule(RateLimitedError, "throttled (API QPS)", retry_after=1.0),
    "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi": kit.CodeRule(RateLimitedError, "throttled (app QPS)",
                                                                   retry_after=1.0),
    "todo.taskCreate.flowControlError": kit.CodeRule(RateLimitedError, "to-do creation throttled", retry_after=1.0),
    "Forbidden.AccessDenied.IpNotInWhiteList": kit.CodeRule(
        PermanentError, "this server's IP address is not in the app's trusted IPs"),
    "Forbidden.AccessDenied.AccessTokenPermissionDenied": kit.CodeRule(
        PermanentError, "the app lacks this API's permission (developer console: 权限管理)"),
    "invalidClientSecret": kit.CodeRule(PermanentError, "AppSecret refused (check HUB_DINGTALK__APP_SECRET)"),
    "invalidClientId": kit.CodeRule(PermanentError, "AppKey unknown (check HUB_DINGTALK__APP_KEY)"),
    # browser login (§6): an authCode unknown, used, expired or another app's. The code is a
    # GUESS (not in the reference; DingTalk documents no list for oauth2/userAccessToken).
    "invalidAuthCode": kit.CodeRule(SignInCodeError, "sign-in code invalid, used or expired"),
})
# A v1.0 lookup of an id that does not exist: HTTP 404, or 400 with this message — the
# update API documents 400 "task not exist" ([3p]); that lookups answer alike is a GUESS.
_NOT_FOUND_MESSAGES = frozenset({"task not exist"})
# ≤5000 recipients per call, older docs say 100 (§2.2 [U]): the lower bound.
MAX_NOTICE_RECIPIENTS = 100
USER_PAGE_SIZE = 100  # topapi/v2/user/list: size ≤ 100 (§2.2)
# topapi/v2/user/list pages by an integer cursor, "has_more" and "next_cursor" in "result".
USER_PAGES = kit.CursorPaginator(next_field=("result", "next_cursor"), more_field=("result", "has_more"),
                                 send_empty=False)
# v1.0 lists page by "nextToken" (no token on the first request).
TODO_PAGES = kit.CursorPaginator(cursor_param="nextToken", next_field="nextToken", send_empty=False)
# sourceIds and to-do ids travel as path segments (alibabacloud-dingtalk puts them in the URL
# unescaped, sdk-quirks.md): only URL-safe ones are sent.
_PATH_ID = re.compile(r"[A-Za-z0-9._~-]{1,128}")
SYSTEM = "dingtalk"
Json = dict[str, Any]

kit.mask_secrets_in_httpx_logs()  # oapi URLs carry access_token, gettoken's appsecret


@dataclass(frozen=True)
class SendResult:
    """``getsendresult`` for one work notice: who could not be reached, and why (§2.2)."""

    invalid: tuple[str, ...] = ()  # not a user of the org (or outside the app's scope)
    forbidden: tuple[str, ...] = ()  # the platform refused them (limits: forbidden_list codes)
    failed: tuple[str, ...] = ()  # delivery failed
    read: tuple[str, ...] = ()
    unread: tuple[str, ...] = ()
    forbidden_codes: Mapping[str, str] | None = None  # userid → forbidden_list code

    def refusal(self, userid: str) -> str | None:
        """"invalid", "forbidden" or "failed" when ``userid`` was not reached, else None."""
        for label, users in (("invalid", self.invalid), ("forbidden", self.forbidden), ("failed", self.failed)):
            if userid in users:
                return label
        return None


def oapi_error(data: Mapping[str, Any]) -> tuple[int | None, str]:
    """The effective errcode and message of an oapi reply: ``sub_code``/``sub_msg`` inside an
    errcode 88 wrapper (§2.1), else ``errcode``/``errmsg``; None for a non-numeric code."""
    code, text = _int(data.get("errcode", 0)), data.get("errmsg")
    if code == 88 and data.get("sub_code") not in (None, ""):
        sub = _int(data.get("sub_code"))
        if sub is not None:
            code, text = sub, data.get("sub_msg") or text
    return code, kit.redact(str(text or ""), 300) or "no errmsg"


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _gateway_throttle(data: Mapping[str, Any]) -> float | None:
    """The ``wait`` of the throttle page ``{"status":1111,"wait":5}`` (§2.3), else None."""
    if _int(data.get("status")) == 1111 and "errcode" not in data:
        return float(max(1, _int(data.get("wait")) or 1))
    return None


class _DingTalkToken(kit.TokenAuth[str]):
    """A DingTalk token fetched by the client (its own audited call); error bodies decide."""

    requires_response_body = True

    def __init__(self, client: DingTalkClient, **options: Any) -> None:
        super().__init__(system=SYSTEM, **options)
        self._client = client


class OapiTokenAuth(_DingTalkToken):
    """The oapi token on the query string; errcode 40014/42001 (bare or as errcode 88's
    sub_code) in a 200 reply rejects it."""

    def fetch(self) -> kit.Credential[str]:
        """``gettoken``."""
        return self._client.fetch_oapi_token()

    def apply(self, request: httpx.Request, credential: str) -> None:
        """Set (or replace, on the resend) ``access_token``."""
        request.url = request.url.copy_set_param("access_token", credential)

    def rejection(self, response: httpx.Response) -> str | None:
        """40014/42001, bare or wrapped, mean the token is no longer valid."""
        data = kit.peek_json(response)
        code = oapi_error(data)[0] if isinstance(data, dict) else None
        return f"oapi token rejected (errcode {code}); refreshing once" if ERRCODES.means_expired(code) else None


class ApiTokenAuth(_DingTalkToken):
    """The v1.0 token in ``x-acs-dingtalk-access-token``; an error reply whose ``code`` is
    InvalidAuthentication rejects it."""

    header = "x-acs-dingtalk-access-token"

    def fetch(self) -> kit.Credential[str]:
        """``oauth2/accessToken``."""
        return self._client.fetch_api_token()

    def apply(self, request: httpx.Request, credential: str) -> None:
        """Set (or replace) the token header."""
        request.headers[self.header] = credential

    def rejection(self, response: httpx.Response) -> str | None:
        """A non-2xx reply naming InvalidAuthentication."""
        if response.is_success:
            return None
        data = kit.peek_json(response)
        code = data.get("code") if isinstance(data, dict) else None
        return "v1.0 token rejected (InvalidAuthentication); refreshing once" if API_CODES.means_expired(code) \
            else None


class DingTalkClient(kit.OwnsHttpClient):
    """Synchronous, thread-safe client for one DingTalk internal app (AppKey + AppSecret).

    ``base_url``/``api_base_url`` are the oapi and v1.0 hosts (both the sandbox's URL in
    tests and demos); ``operator_union_id`` is the account to-dos are created and updated
    as; ``max_qps`` the app's calls per second, which the client keeps to
    (:class:`~connectors.kit.pacing.Pacer`). ``transport`` is for ``httpx.MockTransport``.
    """

    def __init__(
        self, *, app_key: str, app_secret: SecretStr, agent_id: int, operator_union_id: str,
        base_url: str = OAPI_BASE_URL, api_base_url: str = API_BASE_URL, timeout: float = 10.0,
        observer: CallObserver = ignore_call, transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic, polls_todo_completions: bool = True,
        max_qps: float = DEFAULT_MAX_QPS,
    ) -> None:
        if not app_key or not app_secret.get_secret_value():
            raise ValueError("app_key and app_secret are required")
        if not _PATH_ID.fullmatch(operator_union_id or ""):
            raise ValueError("operator_union_id must be a DingTalk unionId")
        self.app_key = app_key
        self.agent_id = int(agent_id)
        self.operator_union_id = operator_union_id
        self.polls_todo_completions = polls_todo_completions
        self._secret = app_secret
        self._observer = observer
        self._oapi_base = base_url.rstrip("/") + "/"
        self._api_base = api_base_url.rstrip("/") + "/"
        self._http = httpx.Client(timeout=timeout, transport=transport,
                                  headers={"User-Agent": "crm-erp-hub/dingtalk"})
        self.oapi_auth = OapiTokenAuth(self, observer=observer, clock=clock)
        self.api_auth = ApiTokenAuth(self, observer=observer, clock=clock)
        # business calls only (token fetches are not counted: a guess); one pacer per app and host
        self.pacer = kit.shared_pacer(f"{SYSTEM}:{app_key}@{self._oapi_base}", max_qps)
        self._ids_lock = threading.Lock()
        self._union_ids: dict[str, str] = {}
        self._userids: dict[str, str] = {}

    def __repr__(self) -> str:  # never show the secret
        return f"DingTalkClient(app_key={self.app_key!r}, agent_id={self.agent_id})"

    # ------------------------------------------------------------------ tokens

    def fetch_oapi_token(self) -> kit.Credential[str]:
        """``GET /gettoken?appkey&appsecret`` → the oapi token and its lifetime (§2.1)."""
        data = self._oapi("GET", "gettoken", params={"appkey": self.app_key,
                                                     "appsecret": self._secret.get_secret_value()}, authed=False)
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            raise RetryableError("gettoken returned no access_token", system=SYSTEM, operation="gettoken")
        return kit.Credential(token, float(_int(data.get("expires_in")) or 7200))

    def fetch_api_token(self) -> kit.Credential[str]:
        """``POST /v1.0/oauth2/accessToken`` (JSON only, §2.1) → the v1.0 token and its lifetime."""
        data = self._api("POST", "v1.0/oauth2/accessToken", "oauth2/accessToken", authed=False,
                         body={"appKey": self.app_key, "appSecret": self._secret.get_secret_value()}) or {}
        token = data.get("accessToken")
        if not isinstance(token, str) or not token:
            raise RetryableError("oauth2/accessToken returned no accessToken", system=SYSTEM,
                                 operation="oauth2/accessToken")
        return kit.Credential(token, float(_int(data.get("expireIn")) or 7200))

    def check(self) -> None:
        """Reachability and credentials (``hub doctor``): fetch both tokens."""
        self.oapi_auth.current()
        self.api_auth.current()

    # ------------------------------------------------------------------ transport

    def _oapi(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, body: Mapping[str, Any] | None = None,
        authed: bool = True, accept: frozenset[int] = frozenset(), key: str | None = None,
        external_id: str | None = None, recipients: Sequence[str] = (),
    ) -> Json:
        """One audited oapi call; errcodes outside ``accept`` raise per :data:`ERRCODES`
        (RecipientError naming ``recipients``)."""
        call = kit.CallContext(SYSTEM, path, key=key, external_id=external_id)
        content = json.dumps(body, ensure_ascii=False).encode("utf-8") if body is not None else None
        request = self._http.build_request(
            method, self._oapi_base + path, params=dict(params or {}), content=content,
            headers={"Content-Type": "application/json; charset=utf-8"} if content is not None else None)

        def read(response: httpx.Response, timer: CallTimer) -> Json:
            data = kit.json_object(response, call)
            wait = _gateway_throttle(data)
            if wait is not None:
                raise RateLimitedError("throttled (gateway page)", retry_after=wait, **call.context("90002"))
            code, text = oapi_error(data)
            if code is None:
                raise RetryableError("reply has a non-numeric errcode", **call.context("bad_json"))
            if code != 0 and code not in accept:
                error = ERRCODES.error(code, text, call, recipients=list(recipients))
                if isinstance(error, RateLimitedError) and _int(data.get("wait")):
                    error.retry_after = max(error.retry_after, float(_int(data.get("wait")) or 0))
                raise error
            if code != 0:
                timer.extra_error = f"errcode {code}: {text}"
            return data

        if authed:
            # the token first (a gettoken is not a paced call): a fetch inside the paced send
            # would delay the call's arrival past the departure the pacer recorded, and the
            # 21st call could then reach DingTalk within its one-second window (90018)
            self.oapi_auth.current()
            self.pacer.wait()
        return kit.send(self._http, request, call, self._observer, read,
                        auth=self.oapi_auth if authed else None)

    def _api(
        self, method: str, path: str, operation: str, *, params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None, authed: bool = True, missing_ok: bool = False,
        key: str | None = None, external_id: str | None = None,
    ) -> Json | None:
        """One audited v1.0 call; with ``missing_ok`` a "does not exist" answer is None."""
        call = kit.CallContext(SYSTEM, operation, key=key, external_id=external_id)
        content = json.dumps(body, ensure_ascii=False).encode("utf-8") if body is not None else None
        request = self._http.build_request(
            method, self._api_base + path, params=dict(params or {}), content=content,
            headers={"Content-Type": "application/json; charset=utf-8"} if content is not None else None)

        def read(response: httpx.Response, _timer: CallTimer) -> Json | None:
            if response.is_success:
                data = kit.parse_json(response, call) if response.content.strip() else {}
                if not isinstance(data, dict):
                    raise RetryableError("reply is not a JSON object", **call.context("bad_json"))
                return data
            data = kit.peek_json(response)
            code = data.get("code") if isinstance(data, dict) else None
            message = kit.redact(str(data.get("message") or ""), 300) if isinstance(data, dict) else ""
            if API_CODES.knows(code):
                raise API_CODES.error(code, message or str(code), call)
            if missing_ok and (response.status_code == 404 or message in _NOT_FOUND_MESSAGES):
                return None
            kit.raise_for_status(response, call)
            return None  # unreachable: a non-2xx status always raises

        if authed:
            self.api_auth.current()  # the token before pacing (see _oapi)
            self.pacer.wait()
        return kit.send(self._http, request, call, self._observer, read,
                        auth=self.api_auth if authed else None)

    def _todo_path(self, *parts: str) -> str:
        for part in parts:
            if not _PATH_ID.fullmatch(part):
                raise ValueError(f"{part!r} is not a URL-safe DingTalk id")
        return "/".join(["v1.0/todo/users", quote(self.operator_union_id), *parts])

    # ------------------------------------------------------------------ work notices

    def send_work_notice(self, userids: Sequence[str], msg: Mapping[str, Any], *, key: str | None = None) -> int:
        """``asyncsend_v2``: queue a work notice to members by userid; returns DingTalk's ``task_id``.

        Asynchronous (§2.2): acceptance is not delivery — ask :meth:`get_send_result`. An
        identical notice from one app reaches a user once a day; over-limit sends are
        accepted and silently dropped.
        """
        users = [u for u in userids if u]
        problem = (f"1..{MAX_NOTICE_RECIPIENTS} recipients per notice" if not 0 < len(users) <= MAX_NOTICE_RECIPIENTS
                   else "userids must not contain ','" if any("," in u for u in users)
                   else "msg needs 'msgtype' and a body under that key"
                   if not isinstance(msg.get(str(msg.get("msgtype"))), Mapping) else None)
        if problem:
            raise ValueError(problem)
        body = {"agent_id": self.agent_id, "userid_list": ",".join(users), "to_all_user": False, "msg": dict(msg)}
        data = self._oapi("POST", "topapi/message/corpconversation/asyncsend_v2", body=body, key=key,
                          external_id=users[0] if len(users) == 1 else None, recipients=users)
        task_id = _int(data.get("task_id"))
        if task_id is None:
            raise RetryableError("asyncsend_v2 returned no task_id", system=SYSTEM,
                                 operation="topapi/message/corpconversation/asyncsend_v2")
        return task_id

    def get_send_result(self, task_id: int) -> SendResult:
        """``getsendresult``: the recipients a notice could not reach (§2.2, partly [U])."""
        data = self._oapi("POST", "topapi/message/corpconversation/getsendresult",
                          body={"agent_id": self.agent_id, "task_id": task_id}, external_id=str(task_id))
        result = data.get("send_result") or {}

        def ids(name: str) -> tuple[str, ...]:
            return tuple(str(u) for u in result.get(name) or [] if u)

        codes = {str(f.get("userid")): str(f.get("code")) for f in result.get("forbidden_list") or []
                 if isinstance(f, dict) and f.get("userid")}
        return SendResult(invalid=ids("invalid_user_id_list"), forbidden=ids("forbidden_user_id_list"),
                          failed=ids("failed_user_id_list"), read=ids("read_user_id_list"),
                          unread=ids("unread_user_id_list"), forbidden_codes=codes)

    def get_send_progress(self, task_id: int) -> tuple[int, int]:
        """``getsendprogress``: (percent done, status: 0 waiting, 1 sending, 2 done) [U]."""
        data = self._oapi("POST", "topapi/message/corpconversation/getsendprogress",
                          body={"agent_id": self.agent_id, "task_id": task_id}, external_id=str(task_id))
        progress = data.get("progress") or {}
        return _int(progress.get("progress_in_percent")) or 0, _int(progress.get("status")) or 0

    # ------------------------------------------------------------------ directory

    def get_department(self, dept_id: int) -> Json:
        """``topapi/v2/department/get``: one department (``dept_id, name, parent_id, …``)."""
        return dict(self._oapi("POST", "topapi/v2/department/get", body={"dept_id": dept_id, "language": "zh_CN"},
                               external_id=str(dept_id)).get("result") or {})

    def list_subdepartments(self, dept_id: int) -> list[Json]:
        """``topapi/v2/department/listsub``: the direct children of ``dept_id`` (§2.2)."""
        result = self._oapi("POST", "topapi/v2/department/listsub", body={"dept_id": dept_id, "language": "zh_CN"},
                            external_id=str(dept_id)).get("result")
        return [d for d in result or [] if isinstance(d, dict)]

    def iter_user_pages(self, dept_id: int, *, size: int = USER_PAGE_SIZE) -> Iterator[list[Json]]:
        """``topapi/v2/user/list``: every page of one department's direct members."""
        if not 1 <= size <= USER_PAGE_SIZE:
            raise ValueError(f"size must be within 1..{USER_PAGE_SIZE}")

        def page(params: Mapping[str, Any]) -> Json:
            return self._oapi("POST", "topapi/v2/user/list", external_id=str(dept_id), body={
                "dept_id": dept_id, "cursor": params.get("cursor", 0), "size": size, "language": "zh_CN"})

        for data in kit.walk(page, USER_PAGES, call=kit.CallContext(SYSTEM, "topapi/v2/user/list")):
            yield [u for u in (data.get("result") or {}).get("list") or [] if isinstance(u, dict)]

    def get_user(self, userid: str) -> Json:
        """``topapi/v2/user/get``; RecipientError when DingTalk does not know the userid."""
        return dict(self._oapi("POST", "topapi/v2/user/get", body={"userid": userid, "language": "zh_CN"},
                               external_id=userid, recipients=[userid]).get("result") or {})

    def get_userid_by_mobile(self, mobile: str) -> str | None:
        """``topapi/v2/user/getbymobile``: the member with this mobile, or None (60121, §2.2 [U])."""
        data = self._oapi("POST", "topapi/v2/user/getbymobile", body={"mobile": mobile},
                          accept=frozenset({60121, 33012}))
        userid = (data.get("result") or {}).get("userid") if oapi_error(data)[0] == 0 else None
        return userid if isinstance(userid, str) and userid else None

    def union_id(self, userid: str) -> str:
        """The unionId of a userid (to-dos address people by unionId, §2.2); asked once per
        client, the hub keeps it on ``internal_user.dingtalk_unionid``."""
        with self._ids_lock:
            known = self._union_ids.get(userid)
        if known:
            return known
        union = self.get_user(userid).get("unionid")
        if not isinstance(union, str) or not union:
            raise RecipientError(f"DingTalk returned no unionId for {userid}", recipients=[userid], system=SYSTEM,
                                 operation="topapi/v2/user/get", external_id=userid, code="no_unionid")
        with self._ids_lock:
            self._union_ids[userid] = union
        return union

    def userid_of(self, union_id: str) -> str | None:
        """``topapi/user/getbyunionid``: the userid of a unionId, or None when it is no member."""
        with self._ids_lock:
            known = self._userids.get(union_id)
        if known:
            return known
        data = self._oapi("POST", "topapi/user/getbyunionid", body={"unionid": union_id},
                          accept=frozenset({60121, 33012}), external_id=union_id)
        userid = (data.get("result") or {}).get("userid") if oapi_error(data)[0] == 0 else None
        if not isinstance(userid, str) or not userid:
            return None
        with self._ids_lock:
            self._userids[union_id] = userid
        return userid

    # ------------------------------------------------------------------ 免登 (§6)

    def user_for_code(self, code: str) -> str:
        """``topapi/v2/user/getuserinfo``: the userid of the member whose page got the 免登
        ``code``; SignInCodeError when the code is unknown, used or expired."""
        if not code or len(code) > 512:
            raise SignInCodeError("sign-in code missing or malformed", system=SYSTEM,
                                  operation="topapi/v2/user/getuserinfo")
        data = self._oapi("POST", "topapi/v2/user/getuserinfo", body={"code": code})
        userid = (data.get("result") or {}).get("userid")
        if not isinstance(userid, str) or not userid:
            raise SignInCodeError("DingTalk named no member for this code", system=SYSTEM,
                                  operation="topapi/v2/user/getuserinfo", code="no_userid")
        return userid

    def union_id_for_auth_code(self, auth_code: str) -> str:
        """Browser (QR) login outside the app (§6): exchange ``authCode`` for the person's
        user access token (``POST /v1.0/oauth2/userAccessToken``), then ask who that is
        (``GET /v1.0/contact/users/me``) → their unionId. SignInCodeError when the code is
        unknown, used, expired or another app's, or DingTalk names nobody; the user token is
        used once and never kept."""
        if not auth_code or len(auth_code) > 512:
            raise SignInCodeError("sign-in code missing or malformed", system=SYSTEM,
                                  operation="oauth2/userAccessToken")
        data = self._api("POST", "v1.0/oauth2/userAccessToken", "oauth2/userAccessToken", authed=False, body={
            "clientId": self.app_key, "clientSecret": self._secret.get_secret_value(), "code": auth_code,
            "grantType": "authorization_code"}) or {}
        token = data.get("accessToken")
        if not isinstance(token, str) or not token:
            raise SignInCodeError("DingTalk returned no user access token", system=SYSTEM,
                                  operation="oauth2/userAccessToken", code="no_access_token")
        call = kit.CallContext(SYSTEM, "contact/users/me")
        request = self._http.build_request("GET", self._api_base + "v1.0/contact/users/me",
                                           headers={ApiTokenAuth.header: token})

        def read(response: httpx.Response, _timer: CallTimer) -> Json:
            if not response.is_success:
                data = kit.peek_json(response)
                code = data.get("code") if isinstance(data, dict) else None
                if API_CODES.knows(code):
                    raise API_CODES.error(code, str(code), call)
                kit.raise_for_status(response, call)
            parsed = kit.parse_json(response, call)
            if not isinstance(parsed, dict):
                raise RetryableError("reply is not a JSON object", **call.context("bad_json"))
            return parsed

        self.pacer.wait()
        me = kit.send(self._http, request, call, self._observer, read)
        union = me.get("unionId")
        if not isinstance(union, str) or not union:
            raise SignInCodeError("DingTalk named no person for this code", system=SYSTEM,
                                  operation="contact/users/me", code="no_unionid")
        return union

    # ------------------------------------------------------------------ to-dos (v1.0)

    def create_todo(self, todo: Mapping[str, Any], *, key: str | None = None) -> Json:
        """``POST /v1.0/todo/users/{operator}/tasks``: create a to-do (fields as §2.2); returns it.

        Whether DingTalk refuses a second to-do with the same ``sourceId`` is undocumented
        (§5 [U]; a third-party copy of the docs lists 400 "task exist"): callers look the
        sourceId up first (:meth:`find_todo_by_source`).
        """
        data = self._api("POST", self._todo_path("tasks"), "todo/tasks/create", key=key,
                         params={"operatorId": self.operator_union_id}, body=dict(todo),
                         external_id=str(todo.get("sourceId") or "") or None)
        if not data or not isinstance(data.get("id"), str):
            raise RetryableError("to-do create returned no id", system=SYSTEM, operation="todo/tasks/create")
        return data

    def find_todo_by_source(self, source_id: str) -> Json | None:
        """``GET …/tasks/sources/{sourceId}``: the to-do with this business id, or None."""
        data = self._api("GET", self._todo_path("tasks", "sources", source_id), "todo/tasks/sources",
                         missing_ok=True, external_id=source_id)
        return data if data and data.get("id") else None

    def get_todo(self, todo_id: str) -> Json | None:
        """``GET …/tasks/{taskId}``: one to-do (``done``, ``finishTime``, ``modifierId``…), or None."""
        data = self._api("GET", self._todo_path("tasks", todo_id), "todo/tasks/get", missing_ok=True,
                         external_id=todo_id)
        return data if data and data.get("id") else None

    def update_todo(self, todo_id: str, changes: Mapping[str, Any], *, key: str | None = None) -> None:
        """``PUT …/tasks/{taskId}?operatorId=``: change subject, description, dueTime, done… (§2.2)."""
        self._api("PUT", self._todo_path("tasks", todo_id), "todo/tasks/update", key=key, external_id=todo_id,
                  params={"operatorId": self.operator_union_id}, body=dict(changes))

    def delete_todo(self, todo_id: str) -> None:
        """``DELETE …/tasks/{taskId}?operatorId=``."""
        self._api("DELETE", self._todo_path("tasks", todo_id), "todo/tasks/delete", external_id=todo_id,
                  params={"operatorId": self.operator_union_id})

    def iter_todo_pages(self, *, done: bool, role: str = "creator") -> Iterator[list[Json]]:
        """``POST …/org/tasks/query``: every page of the operator's to-dos in ``role``
        (creator: the ones the hub made) that are (not) done; cards carry ``taskId,
        sourceId, isDone, modifiedTime, …`` but not who finished them."""
        def page(params: Mapping[str, Any]) -> Json:
            data = self._api("POST", self._todo_path("org", "tasks", "query"), "todo/org/tasks/query",
                             body={"isDone": done, "roleTypes": [[role]], **params})
            return data or {}

        for data in kit.walk(page, TODO_PAGES, call=kit.CallContext(SYSTEM, "todo/org/tasks/query")):
            yield [card for card in data.get("todoCards") or [] if isinstance(card, dict)]

    # ------------------------------------------------------------------ OA approvals (v1.0, oa-approvals.md §1)

    def start_approval(self, body: Mapping[str, Any], *, key: str | None = None) -> str:
        """``POST /v1.0/workflow/processInstances`` → the new instance id. DingTalk dedupes
        nothing (§1.2): callers look the business key up first (:meth:`iter_approval_ids`)."""
        data = self._api("POST", "v1.0/workflow/processInstances", "workflow/processInstances/create", key=key,
                         body=dict(body), external_id=str(body.get("processCode") or "") or None) or {}
        instance_id = data.get("instanceId")
        if not isinstance(instance_id, str) or not instance_id:
            raise RetryableError("processInstances create returned no instanceId", system=SYSTEM,
                                 operation="workflow/processInstances/create")
        return instance_id

    def get_approval(self, instance_id: str) -> Json:
        """``GET /v1.0/workflow/processInstances?processInstanceId=`` → the detail ``result``
        (``success`` is typed a string by the SDK: not relied on, §1.4)."""
        data = self._api("GET", "v1.0/workflow/processInstances", "workflow/processInstances/get",
                         params={"processInstanceId": instance_id}, external_id=instance_id) or {}
        result = data.get("result")
        if not isinstance(result, dict):
            raise RetryableError("processInstances get returned no result", system=SYSTEM,
                                 operation="workflow/processInstances/get", external_id=instance_id)
        return result

    def iter_approval_ids(self, process_code: str, *, start_ms: int, end_ms: int,
                          originators: Sequence[str] = (), page_size: int = 20) -> Iterator[list[str]]:
        """``POST /v1.0/workflow/processes/instanceIds/query``: pages of the ids of instances
        of ``process_code`` created in [start_ms, end_ms] by ``originators``; ``nextToken`` is
        an int in the request, a string in the answer, absent on the last page (§1.5)."""
        token: int | None = 0
        while token is not None:
            data = self._api("POST", "v1.0/workflow/processes/instanceIds/query", "workflow/instanceIds/query",
                             external_id=process_code, body={
                                 "processCode": process_code, "startTime": start_ms, "endTime": end_ms,
                                 "nextToken": token, "maxResults": page_size,
                                 **({"userIds": list(originators)} if originators else {})}) or {}
            result = data.get("result") if isinstance(data.get("result"), dict) else {}
            assert isinstance(result, dict)
            yield [str(i) for i in result.get("list") or [] if isinstance(i, str) and i]
            following = _int(result.get("nextToken"))
            token = following if following is not None and result.get("nextToken") not in (None, "") else None

    def terminate_approval(self, instance_id: str, *, remark: str, key: str | None = None) -> None:
        """``POST /v1.0/workflow/processInstances/terminate`` as the system (``isSystem``): a
        twin instance created despite the lookup is withdrawn (§4.3)."""
        self._api("POST", "v1.0/workflow/processInstances/terminate", "workflow/processInstances/terminate",
                  key=key, external_id=instance_id,
                  body={"processInstanceId": instance_id, "isSystem": True, "remark": remark})


__all__ = [
    "API_CODES",
    "ERRCODES",
    "MAX_NOTICE_RECIPIENTS",
    "SYSTEM",
    "ApiTokenAuth",
    "DingTalkClient",
    "OapiTokenAuth",
    "SendResult",
    "oapi_error",
]
