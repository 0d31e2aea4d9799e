"""WeCom (企业微信) server-API client: the only module that speaks HTTP to qyapi.

What it owns (reference/messaging-apis.md §1, "§" below); the plumbing is the connector
kit's (:mod:`connectors.kit`), this module supplies WeCom's parts:

- **Token**: :class:`WeComTokenAuth`, a :class:`~connectors.kit.auth.TokenAuth` that
  fetches with ``GET /cgi-bin/gettoken?corpid&corpsecret`` and puts ``access_token`` on
  the query string. The kit makes refresh single-flight (N threads that find the token
  missing or rejected cause one gettoken) and uses a token until shortly before its
  ``expires_in``: re-fetching while valid returns the same token (§1.1).
- **Refresh once**: errcode 40014/42001 (and 40001 outside gettoken, §1.3) inside an HTTP
  200 reply make the auth drop the token, fetch a new one and resend exactly once; a
  second rejection raises :class:`AuthExpiredError`. wechatpy retries without a cap (§1.6:
  ~970 requests then ``RecursionError`` against an always-42001 server) — the counter-example.
- **Error envelope**: every reply is HTTP 200 + ``errcode`` (§1.1). Transport errors,
  HTTP statuses and non-JSON bodies are classified by the kit
  (:mod:`connectors.kit.http`: timeouts, 5xx, 408 → retryable; 429 → rate limited; other
  4xx → permanent); the errcode table :data:`ERRCODES` adds WeCom's codes::

      errcode -1                                  -> RetryableError
      45009 (minute window, wait 60 s)
      45033 (too many concurrent, wait briefly)   -> RateLimitedError(retry_after=...)
      40014/42001/40001 after one refresh         -> AuthExpiredError
      81013 on message/send                       -> RecipientError(recipients=...)
      anything else (incl. gettoken 40001/40013)  -> PermanentError(code=errcode)

  Error texts are the vendor's errmsg without its ``from ip: …, more info at …`` tail.
  They never contain a URL: ``access_token`` travels in the query string (§1.1), so a URL
  is a secret; neither the app secret nor the token appears in any message or log.
- **Audit**: every HTTP exchange (gettoken included, and a token-rejected exchange and its
  resend separately, each with its own timing and attempt number) is reported to
  ``observer`` with ``system="wecom"`` and ``operation=<path under /cgi-bin/>``.
- **Paging**: cursor-paged calls (``user/list_id``, ``externalcontact/batch/get_by_user``,
  ``externalcontact/get``'s ``follow_user``) walk the kit's :class:`CursorPaginator`.

No retries beyond the single token refresh: backoff belongs to the outbox dispatcher and
Dagster (DESIGN.md: "one layer per concern").
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr

from connectors import kit
from hub.calls import CallObserver, CallTimer, ignore_call
from hub.errors import (
    AuthExpiredError,
    PermanentError,
    RateLimitedError,
    RecipientError,
    RetryableError,
    SignInCodeError,
)

WECOM_BASE_URL = "https://qyapi.weixin.qq.com"
SYSTEM = "wecom"
Json = dict[str, Any]

# errcode → hub error (§1.3). 40001 is "treat like 40014 once" outside gettoken; 45009's
# minute window blocks ~60 s (§1.3/§1.4); 45033 says "retry after a short delay" (§1.3):
# 2 s is our choice (guess), long enough for in-flight calls to finish.
ERRCODES = kit.CodeTable({
    -1: kit.CodeRule(RetryableError, "WeCom busy"),
    40001: kit.CodeRule(AuthExpiredError, "access token rejected"),
    40014: kit.CodeRule(AuthExpiredError, "access token rejected"),
    42001: kit.CodeRule(AuthExpiredError, "access token rejected"),
    45009: kit.CodeRule(RateLimitedError, "rate limited", retry_after=60.0),
    45033: kit.CodeRule(RateLimitedError, "rate limited", retry_after=2.0),
    81013: kit.CodeRule(RecipientError, "no valid recipient"),
    # OA approvals (oa-approvals.md §2.6): 301025 bad parameters / data not matching the template
    # / creator outside the app's visibility / bad window; 301057 an internal submit failure
    # (retry); 301026 template fetch failed (retryable: a guess)
    301025: kit.CodeRule(PermanentError, "approval parameters refused (form, creator or window)"),
    301026: kit.CodeRule(RetryableError, "approval template could not be fetched"),
    301055: kit.CodeRule(PermanentError, "the app has no approval permission (审批 → API → 可调用接口的应用)"),
    301056: kit.CodeRule(PermanentError, "the approval app is disabled"),
    301057: kit.CodeRule(RetryableError, "approval submit failed inside WeCom"),
})
# On gettoken, 40001 means the app secret itself is wrong: configuration, not expiry.
GETTOKEN_ERRCODES = ERRCODES.override({40001: kit.CodeRule(PermanentError, "app secret refused by gettoken")})
# The sign-in exchange (§6): 40029 is an invalid, used or expired code (and, a guess, one
# issued to another app); the person must open the link again, so it is its own type.
SIGNIN_ERRCODES = ERRCODES.override({40029: kit.CodeRule(SignInCodeError, "sign-in code invalid, used or expired")})
# §1.2 / send doc 90236: default 1800 s, at most 4 h (quoted in binarywang/WxJava WxCpMessage.java).
DEFAULT_DUPLICATE_CHECK_INTERVAL = 1800
MAX_DUPLICATE_CHECK_INTERVAL = 4 * 3600
MAX_RECIPIENTS = 1000  # touser ≤ 1000 (§1.2)
# Cursor-paged calls: user/list_id and batch/get_by_user send "" first; externalcontact/get
# sends no cursor on its first page (§1.2).
BODY_CURSOR = kit.CursorPaginator()
QUERY_CURSOR = kit.CursorPaginator(send_empty=False)

_ERRMSG_TAIL = re.compile(r"[,;]?\s*(?:from ip:|more info at\b).*$", re.IGNORECASE | re.DOTALL)
# httpx logs every request URL at INFO; WeCom URLs carry access_token (and gettoken's corpsecret).
kit.mask_secrets_in_httpx_logs()


def clean_errmsg(errmsg: Any) -> str:
    """Vendor errmsg without the ``from ip: …, more info at <url>`` tail (keeps the hint id,
    which WeCom support asks for). Defensive: masks anything shaped like a token parameter."""
    text = _ERRMSG_TAIL.sub("", str(errmsg or "").strip()).rstrip(" ,;")
    return kit.redact(text, 300) or "no errmsg"


@dataclass(frozen=True)
class SendOutcome:
    """What ``message/send`` accepted.

    ``delivered_users`` are the requested users WeCom accepted for delivery; WeCom may
    still drop a message silently when a member gets more than 30/min or 1000/h from one
    app (§1.4) — no API reveals that.
    """

    msgid: str
    invalid_users: tuple[str, ...]
    unlicensed_users: tuple[str, ...]
    delivered_users: tuple[str, ...]


@dataclass(frozen=True)
class SignedInMember:
    """Who a sign-in code named: a member's ``userid``, or (not a member) only an external id."""

    userid: str | None
    external_id: str | None


@dataclass(frozen=True)
class CursorPage:
    """One page of a cursor-paged call; ``next_cursor`` is empty on the last page (§1.2)."""

    items: list[Json]
    next_cursor: str


class WeComTokenAuth(kit.TokenAuth[str]):
    """``access_token`` on the query string; errcode 40014/42001/40001 in a 200 reply rejects it.

    ``fetch`` is the client's gettoken call (reported to the audit as its own exchange).
    """

    requires_response_body = True

    def __init__(
        self, fetch: Callable[[], tuple[str, int]], *, observer: CallObserver = ignore_call,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(system=SYSTEM, observer=observer, clock=clock)
        self._fetch = fetch

    def fetch(self) -> kit.Credential[str]:
        """gettoken: the token and its ``expires_in`` (7200 s by default, §1.1)."""
        token, expires_in = self._fetch()
        return kit.Credential(token, float(expires_in))

    def apply(self, request: httpx.Request, credential: str) -> None:
        """Set (or replace, on the resend) the ``access_token`` query parameter."""
        request.url = request.url.copy_set_param("access_token", credential)

    def rejection(self, response: httpx.Response) -> str | None:
        """Token-rejected errcodes in the reply body (§1.3)."""
        data = kit.peek_json(response)
        errcode = _errcode(data) if isinstance(data, dict) else None
        if ERRCODES.means_expired(errcode):
            return f"access token rejected (errcode {errcode}); refreshing once"
        return None


class WeComClient(kit.OwnsHttpClient):
    """Synchronous, thread-safe client for one WeCom self-built app (corp id + app secret).

    ``base_url`` is the host without ``/cgi-bin`` (the sandbox URL in tests and demos).
    ``transport`` is for ``httpx.MockTransport`` in unit tests.
    """

    def __init__(
        self,
        *,
        corp_id: str,
        secret: SecretStr,
        agent_id: int,
        base_url: str = WECOM_BASE_URL,
        timeout: float = 10.0,
        observer: CallObserver = ignore_call,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not corp_id:
            raise ValueError("corp_id is required")
        if not secret.get_secret_value():
            raise ValueError("secret is required")
        self.corp_id = corp_id
        self.agent_id = int(agent_id)
        self._secret = secret
        self._observer = observer
        self._http = httpx.Client(
            base_url=base_url.rstrip("/") + "/cgi-bin/", timeout=timeout, transport=transport,
            headers={"User-Agent": "crm-erp-hub/wecom"},
        )
        self.auth = WeComTokenAuth(self._fetch_token, observer=observer, clock=clock)

    def __repr__(self) -> str:  # never show the secret
        return f"WeComClient(corp_id={self.corp_id!r}, agent_id={self.agent_id})"

    # ------------------------------------------------------------------ transport

    def _fetch_token(self) -> tuple[str, int]:
        params = {"corpid": self.corp_id, "corpsecret": self._secret.get_secret_value()}
        data = self._exchange("GET", "gettoken", params=params, body=None, auth=None, codes=GETTOKEN_ERRCODES)
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            raise RetryableError("gettoken returned no access_token", system=SYSTEM, operation="gettoken")
        return token, int(data.get("expires_in") or 7200)

    def _exchange(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any],
        body: Mapping[str, Any] | None,
        auth: httpx.Auth | None,
        codes: kit.CodeTable | None = None,
        accept: frozenset[int] = frozenset(),
        key: str | None = None,
        external_id: str | None = None,
        result_id: str | None = None,
    ) -> Json:
        """One audited call of ``path``; errcodes not in ``accept`` raise per ``codes`` (default
        :data:`ERRCODES`, looked up per call)."""
        content = json.dumps(body, ensure_ascii=False).encode("utf-8") if body is not None else None
        headers = {"Content-Type": "application/json; charset=utf-8"} if content is not None else None
        call = kit.CallContext(SYSTEM, path, key=key, external_id=external_id)
        request = self._http.build_request(method, path, params=dict(params), content=content, headers=headers)

        def read(response: httpx.Response, timer: CallTimer) -> Json:
            data = kit.json_object(response, call)
            errcode = _errcode(data)
            if errcode is None:
                raise RetryableError("reply has a non-numeric errcode", **call.context("bad_json"))
            if errcode != 0 and errcode not in accept:
                # 81013 still lists the refused ids in the body (§1.2); they are what the caller must fix.
                refused = list(dict.fromkeys([*_split_ids(data.get("invaliduser")),
                                              *_split_ids(data.get("unlicenseduser"))]))
                table = codes or ERRCODES
                raise table.error(errcode, clean_errmsg(data.get("errmsg")), call, recipients=refused)
            if result_id and isinstance(data.get(result_id), str):
                timer.external_id = data[result_id]
            if errcode != 0:
                timer.extra_error = f"errcode {errcode}: {clean_errmsg(data.get('errmsg'))}"
            return data

        return kit.send(self._http, request, call, self._observer, read, auth=auth)

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        accept: frozenset[int] = frozenset(),
        key: str | None = None,
        external_id: str | None = None,
        result_id: str | None = None,
        codes: kit.CodeTable | None = None,
    ) -> Json:
        """Call ``path`` with the token (the auth refreshes it once if rejected)."""
        return self._exchange(method, path, params=params or {}, body=body, auth=self.auth, accept=accept,
                              key=key, external_id=external_id, result_id=result_id, codes=codes)

    @staticmethod
    def _payload(data: Json) -> Json:
        return {k: v for k, v in data.items() if k not in ("errcode", "errmsg")}

    def check(self) -> None:
        """Verify reachability and credentials (``hub doctor``): fetch a token."""
        self.auth.current()

    # ------------------------------------------------------------------ sign-in (§6)

    def user_for_code(self, code: str) -> SignedInMember:
        """``auth/getuserinfo``: who opened the page that got ``code`` (网页授权 or web login).

        A member comes back with ``userid``; a non-member (a customer's WeChat user) with
        ``openid``/``external_userid`` and no userid. SignInCodeError (40029) for an
        invalid, used or expired code. The code is never put in a message or the audit key.
        """
        if not code or len(code) > 512:
            raise SignInCodeError("sign-in code missing or malformed", system=SYSTEM, operation="auth/getuserinfo")
        data = self._call("GET", "auth/getuserinfo", params={"code": code}, codes=SIGNIN_ERRCODES)
        userid = data.get("userid")
        return SignedInMember(userid=userid if isinstance(userid, str) and userid else None,
                              external_id=str(data.get("external_userid") or data.get("openid") or "") or None)

    # ------------------------------------------------------------------ messages

    def send_message(
        self,
        to_users: Sequence[str],
        message: Mapping[str, Any],
        *,
        enable_duplicate_check: bool = False,
        duplicate_check_interval: int = DEFAULT_DUPLICATE_CHECK_INTERVAL,
        key: str | None = None,
    ) -> SendOutcome:
        """Send an app message (``message/send``) to members by userid.

        ``message`` is the body without recipients: ``{"msgtype": "textcard", "textcard":
        {...}}``. With ``enable_duplicate_check`` WeCom suppresses an identical request
        (same JSON) inside ``duplicate_check_interval`` seconds (default 1800, max 4 h) —
        the writer's protection against a resend after a lost reply.

        Raises :class:`RecipientError` (errcode 81013) when no recipient is valid.
        """
        users = [u for u in to_users if u]
        if not users:
            raise ValueError("at least one recipient is required")
        if len(users) > MAX_RECIPIENTS:
            raise ValueError(f"at most {MAX_RECIPIENTS} recipients per message")
        if any("|" in u for u in users):
            raise ValueError("userids must not contain '|'")
        msgtype = message.get("msgtype")
        if not isinstance(msgtype, str) or not isinstance(message.get(msgtype), Mapping):
            raise ValueError("message needs 'msgtype' and a body under that key")
        body: Json = {"touser": "|".join(users), "agentid": self.agent_id, **message}
        if enable_duplicate_check:
            if not 0 < duplicate_check_interval <= MAX_DUPLICATE_CHECK_INTERVAL:
                raise ValueError("duplicate_check_interval must be within 1..14400 s")
            body["enable_duplicate_check"] = 1
            body["duplicate_check_interval"] = int(duplicate_check_interval)
        try:
            data = self._call("POST", "message/send", body=body, key=key, result_id="msgid")
        except RecipientError as exc:
            if exc.recipients:
                raise
            raise RecipientError(exc.message, recipients=users, system=SYSTEM, operation="message/send",
                                 code=exc.code) from None
        invalid = _split_ids(data.get("invaliduser"))
        unlicensed = _split_ids(data.get("unlicenseduser"))
        # invaliduser comes back lower-cased (§1.2); userids are case-insensitive.
        refused = {u.lower() for u in (*invalid, *unlicensed)}
        delivered = tuple(u for u in users if u.lower() not in refused)
        return SendOutcome(
            msgid=str(data.get("msgid") or ""), invalid_users=tuple(invalid),
            unlicensed_users=tuple(unlicensed), delivered_users=delivered,
        )

    def recall_message(self, msgid: str) -> None:
        """Recall an app message by msgid (``message/recall``)."""
        self._call("POST", "message/recall", body={"msgid": msgid}, external_id=msgid)

    # ------------------------------------------------------------------ directory

    def department_list(self, department_id: int | None = None) -> list[Json]:
        """``department/list``: departments with names and ``department_leader`` (subtree of
        ``department_id`` when given). Refused to contact-sync secrets from new IPs since
        2022-08-15 (§1.2) — then use :meth:`department_simplelist`."""
        params = {"id": department_id} if department_id is not None else None
        return list(self._call("GET", "department/list", params=params).get("department") or [])

    def department_simplelist(self, department_id: int | None = None) -> list[Json]:
        """``department/simplelist``: ``[{id, parentid, order}]`` without names."""
        params = {"id": department_id} if department_id is not None else None
        return list(self._call("GET", "department/simplelist", params=params).get("department_id") or [])

    def department_users(self, department_id: int, *, simple: bool = False) -> list[Json]:
        """``user/list`` (or ``user/simplelist``): direct members of one department."""
        path = "user/simplelist" if simple else "user/list"
        data = self._call("GET", path, params={"department_id": department_id}, external_id=str(department_id))
        return list(data.get("userlist") or [])

    def iter_user_id_pages(self, *, limit: int = 10_000) -> Iterable[list[Json]]:
        """``user/list_id`` pages of ``{userid, department}`` (one row per membership)."""
        if not 1 <= limit <= 10_000:
            raise ValueError("limit must be within 1..10000")
        pages = kit.walk(lambda cursor: self._call("POST", "user/list_id", body={**cursor, "limit": limit}),
                         BODY_CURSOR, call=kit.CallContext(SYSTEM, "user/list_id"))
        for data in pages:
            yield list(data.get("dept_user") or [])

    def list_user_ids(self, *, limit: int = 10_000) -> list[str]:
        """Every visible userid via ``user/list_id``, deduplicated (a member of two
        departments appears in two rows), in first-seen order."""
        seen: dict[str, None] = {}
        for page in self.iter_user_id_pages(limit=limit):
            for row in page:
                userid = row.get("userid")
                if isinstance(userid, str) and userid:
                    seen.setdefault(userid, None)
        return list(seen)

    def get_user(self, userid: str) -> Json:
        """``user/get``: one member (flat object). New self-built apps get no mobile/email
        since 2022-06-20 (§1.2)."""
        return self._payload(self._call("GET", "user/get", params={"userid": userid}, external_id=userid))

    def get_userid_by_mobile(self, mobile: str) -> str | None:
        """``user/getuserid``: the member with this mobile, or None.

        Misses count against a quota (>20 % of the seat cap blocks the API for a day, §1.2):
        look up only numbers that should exist. The not-found codes (46004, 60111) are
        uncertain [§1.3 U]."""
        data = self._call("POST", "user/getuserid", body={"mobile": mobile}, accept=frozenset({46004, 60111}))
        userid = data.get("userid")
        return userid if int(data.get("errcode", 0)) == 0 and isinstance(userid, str) and userid else None

    # ------------------------------------------------------------------ external contacts

    def get_follow_user_list(self) -> list[str]:
        """``externalcontact/get_follow_user_list``: members with customer-contact enabled."""
        return [u for u in self._call("GET", "externalcontact/get_follow_user_list").get("follow_user") or []
                if isinstance(u, str)]

    def list_external_contacts(self, userid: str) -> list[str]:
        """``externalcontact/list``: external_userids of one member's customers (84061, "no
        external-contact relation" [§1.3 U], counts as none)."""
        data = self._call("GET", "externalcontact/list", params={"userid": userid}, accept=frozenset({84061}),
                          external_id=userid)
        return [e for e in data.get("external_userid") or [] if isinstance(e, str)]

    def get_external_contact(self, external_userid: str) -> Json:
        """``externalcontact/get`` with every ``follow_user`` page (paged at 500, §1.2) merged."""
        pages = list(kit.walk(
            lambda cursor: self._call("GET", "externalcontact/get",
                                      params={"external_userid": external_userid, **cursor},
                                      external_id=external_userid),
            QUERY_CURSOR, call=kit.CallContext(SYSTEM, "externalcontact/get", external_id=external_userid),
        ))
        follow_users = [user for data in pages for user in data.get("follow_user") or []]
        return {"external_contact": pages[0].get("external_contact") or {}, "follow_user": follow_users}

    def batch_get_external_contacts(self, userids: Sequence[str], *, cursor: str = "", limit: int = 100) -> CursorPage:
        """``externalcontact/batch/get_by_user``: one page of ``{external_contact,
        follow_info}`` rows (one per member–customer relation) for ≤100 members."""
        data = self._external_contacts_by_user(userids, {"cursor": cursor, "limit": limit})
        return CursorPage(items=list(data.get("external_contact_list") or []), next_cursor=str(data.get("next_cursor") or ""))

    def iter_external_contact_pages(self, userids: Sequence[str], *, limit: int = 100) -> Iterator[list[Json]]:
        """Every page of ``externalcontact/batch/get_by_user`` for ≤100 members, cursor by cursor."""
        pages = kit.walk(lambda cursor: self._external_contacts_by_user(userids, {**cursor, "limit": limit}),
                         BODY_CURSOR, call=kit.CallContext(SYSTEM, "externalcontact/batch/get_by_user"))
        for data in pages:
            yield list(data.get("external_contact_list") or [])

    def _external_contacts_by_user(self, userids: Sequence[str], paging: Mapping[str, Any]) -> Json:
        if not 1 <= len(userids) <= 100:
            raise ValueError("userids must hold 1..100 members")
        if not 1 <= paging["limit"] <= 100:
            raise ValueError("limit must be within 1..100")
        return self._call("POST", "externalcontact/batch/get_by_user", body={"userid_list": list(userids), **paging})

    # ------------------------------------------------------------------ schedules

    def add_schedule(
        self,
        *,
        organizer: str | None,
        attendees: Sequence[str],
        start: dt.datetime,
        end: dt.datetime,
        summary: str,
        description: str = "",
        remind_before_s: int | None = 900,
        location: str = "",
        cal_id: str | None = None,
        key: str | None = None,
    ) -> str:
        """Create a time-bound reminder in the members' WeCom calendar (``oa/schedule/add``).

        Self-built apps have no server-side to-do API (reference §1.2 "To-do carrier": none
        found [U]), so a CRM to-do reaches a salesperson as an app message (see
        :meth:`send_message`) and, when it has a time, as a schedule with a reminder. The
        app must be enabled under 日程 → 可调用接口的应用; ≤10 000 calendars and schedules per
        app per day (§1.2). Returns the ``schedule_id``.
        """
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("start and end must be timezone-aware")
        if end <= start:
            raise ValueError("end must be after start")
        schedule: Json = {
            "start_time": int(start.timestamp()), "end_time": int(end.timestamp()),
            "attendees": [{"userid": u} for u in attendees], "summary": summary, "description": description,
        }
        if organizer:
            schedule["organizer"] = organizer
        if location:
            schedule["location"] = location
        if cal_id:
            schedule["cal_id"] = cal_id
        if remind_before_s is not None:
            schedule["reminders"] = {"is_remind": 1, "remind_before_event_secs": remind_before_s, "is_repeat": 0}
        data = self._call("POST", "oa/schedule/add", body={"schedule": schedule, "agentid": self.agent_id},
                          key=key, result_id="schedule_id")
        return str(data.get("schedule_id") or "")

    def get_schedules(self, schedule_ids: Sequence[str]) -> list[Json]:
        """``oa/schedule/get``: schedules by id."""
        return list(self._call("POST", "oa/schedule/get", body={"schedule_id_list": list(schedule_ids)})
                    .get("schedule_list") or [])

    # ------------------------------------------------------------------ OA approvals (oa-approvals.md §2)

    def get_approval_template(self, template_id: str) -> Json:
        """``oa/gettemplatedetail``: the template's names and controls (§2.4)."""
        return self._payload(self._call("POST", "oa/gettemplatedetail", body={"template_id": template_id},
                                        external_id=template_id))

    def apply_approval(self, body: Mapping[str, Any], *, key: str | None = None) -> str:
        """``oa/applyevent`` → the new ``sp_no``. WeCom dedupes nothing (§2.1): callers look the
        key up first (:meth:`iter_approval_sp_nos`)."""
        data = self._call("POST", "oa/applyevent", body=dict(body), key=key, result_id="sp_no",
                          external_id=str(body.get("template_id") or "") or None)
        sp_no = data.get("sp_no")
        if not isinstance(sp_no, str) or not sp_no:
            raise RetryableError("oa/applyevent returned no sp_no", system=SYSTEM, operation="oa/applyevent")
        return sp_no

    def get_approval(self, sp_no: str) -> Json:
        """``oa/getapprovaldetail`` → ``info`` (§2.3)."""
        info = self._call("POST", "oa/getapprovaldetail", body={"sp_no": sp_no}, external_id=sp_no).get("info")
        if not isinstance(info, dict):
            raise RetryableError("oa/getapprovaldetail returned no info", system=SYSTEM,
                                 operation="oa/getapprovaldetail", external_id=sp_no)
        return info

    def iter_approval_sp_nos(self, *, start: int, end: int, filters: Sequence[Mapping[str, str]],
                             size: int = 100) -> Iterator[list[str]]:
        """``oa/getapprovalinfo``: pages of ``sp_no`` applied in [start, end] (Unix seconds,
        ≤31 days, §2.2) matching ``filters`` (``template_id``, ``creator``…); ``new_cursor``
        "" first, an absent or empty ``new_next_cursor`` ends it. wechatpy's own method sends
        ``cursor``/``filter`` (§2.7), so this is the documented body."""
        cursor = ""
        while True:
            data = self._call("POST", "oa/getapprovalinfo", body={
                "starttime": str(start), "endtime": str(end), "new_cursor": cursor, "size": size,
                "filters": [dict(f) for f in filters]})
            yield [str(n) for n in data.get("sp_no_list") or [] if n]
            cursor = str(data.get("new_next_cursor") or "")
            if not cursor:
                return

    def delete_schedule(self, schedule_id: str) -> None:
        """``oa/schedule/del``."""
        self._call("POST", "oa/schedule/del", body={"schedule_id": schedule_id}, external_id=schedule_id)


def _split_ids(value: Any) -> list[str]:
    return [part for part in str(value or "").split("|") if part]


def _errcode(data: Mapping[str, Any]) -> int | None:
    """The reply's errcode (0 when absent, as on some success replies), None when not a number."""
    try:
        return int(data.get("errcode", 0))
    except (TypeError, ValueError):
        return None


__all__ = [
    "DEFAULT_DUPLICATE_CHECK_INTERVAL",
    "MAX_DUPLICATE_CHECK_INTERVAL",
    "SYSTEM",
    "WECOM_BASE_URL",
    "CursorPage",
    "SendOutcome",
    "WeComClient",
    "clean_errmsg",
]
