"""WeCom (企业微信) server-API client: the only module that speaks HTTP to qyapi.

What it owns (reference/messaging-apis.md §1, "§" below):

- **Token**: ``GET /cgi-bin/gettoken?corpid&corpsecret``, cached per client. Refresh is
  single-flight: N threads that find the token missing or rejected cause one gettoken,
  because the fetch happens under a lock and a rejected token is only dropped if it is
  still the current *generation*. Re-fetching while valid returns the same token (§1.1),
  so the cache uses a token until close to its ``expires_in``.
- **Refresh once**: errcode 40014/42001 (and 40001 outside gettoken, §1.3) drop the token,
  fetch a new one and retry the call exactly once; a second rejection raises
  :class:`AuthExpiredError`. wechatpy retries without a cap (§1.6: ~970 requests then
  ``RecursionError`` against an always-42001 server) — the counter-example.
- **Error envelope**: every reply is HTTP 200 + ``errcode`` (§1.1); this module turns it
  into the hub's tree (``hub.errors``)::

      errcode -1, HTTP 5xx/504, timeouts, connection errors,
      non-JSON bodies (gateway pages)             -> RetryableError
      45009 (minute window, wait 60 s)
      45033 (too many concurrent, wait briefly)    -> RateLimitedError(retry_after=...)
      40014/42001/40001 after one refresh          -> AuthExpiredError
      81013 on message/send                        -> RecipientError(recipients=...)
      anything else (incl. gettoken 40001/40013)   -> PermanentError(code=errcode)

  Error texts are the vendor's errmsg without its ``from ip: …, more info at …`` tail.
  They never contain a URL: ``access_token`` travels in the query string (§1.1), so a URL
  is a secret; neither the app secret nor the token appears in any message or log.
- **Audit**: every HTTP exchange (gettoken included) is reported to ``observer`` through
  :func:`hub.calls.timed_call` with ``system="wecom"`` and ``operation=<path under
  /cgi-bin/>``.

Token handling is explicit here rather than an ``httpx.Auth`` flow (STYLE.md's default):
the audit needs each exchange — the rejected one and its retry — reported separately with
its own timing and attempt number, and an Auth flow hides the second exchange inside one
``client.send``. Business methods still never mention tokens.

No retries beyond the single token refresh: backoff belongs to the outbox dispatcher and
Dagster (DESIGN.md: "one layer per concern").
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr

from hub.calls import CallObserver, ignore_call, timed_call
from hub.errors import (
    AuthExpiredError,
    ConnectorError,
    PermanentError,
    RateLimitedError,
    RecipientError,
    RetryableError,
)

WECOM_BASE_URL = "https://qyapi.weixin.qq.com"
SYSTEM = "wecom"
Json = dict[str, Any]

ERRCODE_BUSY = -1
ERRCODE_NO_VALID_RECIPIENT = 81013
# Token rejected: refresh once and retry once (§1.3; 40001 "treat like 40014 once" outside gettoken).
TOKEN_REJECTED = frozenset({40001, 40014, 42001})
# 45009: minute window → blocked ~60 s (§1.3/§1.4). 45033: concurrency → "retry after a short
# delay" (§1.3); 2 s is our choice (guess), long enough for in-flight calls to finish.
RATE_LIMIT_RETRY_AFTER = {45009: 60.0, 45033: 2.0}
# §1.2 / send doc 90236: default 1800 s, at most 4 h (quoted in binarywang/WxJava WxCpMessage.java).
DEFAULT_DUPLICATE_CHECK_INTERVAL = 1800
MAX_DUPLICATE_CHECK_INTERVAL = 4 * 3600
MAX_RECIPIENTS = 1000  # touser ≤ 1000 (§1.2)

_ERRMSG_TAIL = re.compile(r"[,;]?\s*(?:from ip:|more info at\b).*$", re.IGNORECASE | re.DOTALL)
_TOKEN_LIKE = re.compile(r"(access_token|corpsecret)=[^&\s]*", re.IGNORECASE)


class _RedactQuerySecrets(logging.Filter):
    """httpx logs every request URL at INFO ("HTTP Request: GET <url> ..."); WeCom URLs carry
    ``access_token`` (and gettoken's ``corpsecret``) in the query, so mask those values."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(
                _TOKEN_LIKE.sub(r"\1=***", str(arg)) if isinstance(arg, httpx.URL | str) else arg
                for arg in record.args
            )
        return True


def _install_log_redaction() -> None:
    # Global but harmless: it only masks secret query values, for every httpx user.
    httpx_logger = logging.getLogger("httpx")
    if not any(isinstance(f, _RedactQuerySecrets) for f in httpx_logger.filters):
        httpx_logger.addFilter(_RedactQuerySecrets())


_install_log_redaction()


def clean_errmsg(errmsg: Any) -> str:
    """Vendor errmsg without the ``from ip: …, more info at <url>`` tail (keeps the hint id,
    which WeCom support asks for). Defensive: masks anything shaped like a token parameter."""
    text = str(errmsg or "").strip()
    text = _ERRMSG_TAIL.sub("", text).rstrip(" ,;")
    return _TOKEN_LIKE.sub(r"\1=***", text)[:300] or "no errmsg"


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
class CursorPage:
    """One page of a cursor-paged call; ``next_cursor`` is empty on the last page (§1.2)."""

    items: list[Json]
    next_cursor: str


class _TokenCache:
    """Single-flight access-token cache with generations.

    ``get`` holds the lock while fetching, so concurrent callers wait for one gettoken
    instead of each sending their own. ``invalidate(generation)`` drops the token only if
    no one refreshed it since the caller obtained it, so 20 threads rejected with the
    same stale token trigger one refresh, not 20.
    """

    def __init__(self, fetch: Callable[[], tuple[str, int]], clock: Callable[[], float]) -> None:
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._valid_until = 0.0
        self._generation = 0

    def get(self) -> tuple[str, int]:
        with self._lock:
            if self._token is None or self._clock() >= self._valid_until:
                token, expires_in = self._fetch()
                # Use the token until shortly before expiry: a re-fetch while valid only returns
                # the same token (§1.1), so refreshing early gains nothing; the margin covers
                # in-flight calls and the refresh-once path covers an early invalidation.
                lifetime = max(1.0, float(expires_in))
                self._valid_until = self._clock() + max(lifetime - 60.0, lifetime / 2)
                self._token = token
                self._generation += 1
            return self._token, self._generation

    def invalidate(self, generation: int) -> None:
        with self._lock:
            if generation == self._generation:
                self._token = None


class WeComClient:
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
        self._timeout = timeout
        self._observer = observer
        self._http = httpx.Client(
            base_url=base_url.rstrip("/") + "/cgi-bin/", timeout=timeout, transport=transport,
            headers={"User-Agent": "crm-erp-hub/wecom"},
        )
        self._tokens = _TokenCache(self._fetch_token, clock)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> WeComClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:  # never show the secret
        return f"WeComClient(corp_id={self.corp_id!r}, agent_id={self.agent_id})"

    # ------------------------------------------------------------------ transport

    def _fetch_token(self) -> tuple[str, int]:
        params = {"corpid": self.corp_id, "corpsecret": self._secret.get_secret_value()}
        try:
            data = self._exchange("GET", "gettoken", params=params, body=None, attempt=1)
        except AuthExpiredError as exc:
            # 40001 on gettoken means the secret itself is wrong: configuration, not expiry.
            raise PermanentError(
                f"app secret refused by gettoken: {exc.message}", system=SYSTEM, operation="gettoken",
                code=exc.code,
            ) from None
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
        attempt: int,
        accept: frozenset[int] = frozenset(),
        key: str | None = None,
        external_id: str | None = None,
        result_id: str | None = None,
    ) -> Json:
        """One HTTP exchange, reported to the observer; errcode → exception (module doc)."""
        content = json.dumps(body, ensure_ascii=False).encode("utf-8") if body is not None else None
        headers = {"Content-Type": "application/json; charset=utf-8"} if content is not None else None
        with timed_call(self._observer, SYSTEM, path, key=key, external_id=external_id, attempt=attempt) as timer:
            context: dict[str, Any] = {"system": SYSTEM, "operation": path, "external_id": external_id}
            try:
                response = self._http.request(method, path, params=dict(params), content=content, headers=headers)
            except httpx.TimeoutException as exc:
                # str(exc) may carry request details; the class name is enough and safe.
                raise RetryableError(f"no response within {self._timeout:g} s ({type(exc).__name__})",
                                     **context) from None
            except httpx.RequestError as exc:
                raise RetryableError(f"request failed ({type(exc).__name__})", **context) from None
            timer.http_status = response.status_code
            if response.status_code >= 500:
                # 504 from a gateway may follow a completed write: the caller treats the
                # outcome as unknown (the writer relies on WeCom's duplicate check).
                raise RetryableError(f"HTTP {response.status_code} from WeCom", code=f"HTTP {response.status_code}",
                                     **context)
            if response.status_code == 429:  # not a WeCom reply; proxies in front of it may send it
                raise RateLimitedError("HTTP 429 from WeCom", retry_after=60.0,
                                       code="HTTP 429", **context)
            if response.status_code >= 400:
                raise PermanentError(f"HTTP {response.status_code} from WeCom", code=f"HTTP {response.status_code}",
                                     **context)
            try:
                data = response.json()
            except ValueError:
                raise RetryableError("reply is not JSON (proxy or gateway page?)", **context) from None
            if not isinstance(data, dict):
                raise RetryableError("reply is not a JSON object", **context)
            try:
                errcode = int(data.get("errcode", 0))
            except (TypeError, ValueError):
                raise RetryableError("reply has a non-numeric errcode", **context) from None
            if errcode != 0 and errcode not in accept:
                raise _error_for(errcode, data, path, external_id)
            if result_id and isinstance(data.get(result_id), str):
                timer.external_id = data[result_id]
            if errcode != 0:
                timer.extra_error = f"errcode {errcode}: {clean_errmsg(data.get('errmsg'))}"
            return data

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
    ) -> Json:
        """Call ``path`` with the cached token; on a token rejection refresh once, retry once."""
        base_params = dict(params or {})
        token, generation = self._tokens.get()
        for attempt in (1, 2):
            try:
                return self._exchange(
                    method, path, params={**base_params, "access_token": token}, body=body, attempt=attempt,
                    accept=accept, key=key, external_id=external_id, result_id=result_id,
                )
            except AuthExpiredError as exc:
                if attempt == 2:
                    raise AuthExpiredError(
                        f"token rejected again after one refresh: {exc.message}", system=SYSTEM,
                        operation=path, external_id=external_id, code=exc.code,
                    ) from None
                self._tokens.invalidate(generation)
                token, generation = self._tokens.get()
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _payload(data: Json) -> Json:
        return {k: v for k, v in data.items() if k not in ("errcode", "errmsg")}

    def check(self) -> None:
        """Verify reachability and credentials (``hub doctor``): fetch a token."""
        self._tokens.get()

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
        cursor = ""
        while True:
            data = self._call("POST", "user/list_id", body={"cursor": cursor, "limit": limit})
            yield list(data.get("dept_user") or [])
            cursor = str(data.get("next_cursor") or "")
            if not cursor:
                return

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
        follow_users: list[Json] = []
        cursor = ""
        while True:
            params = {"external_userid": external_userid, **({"cursor": cursor} if cursor else {})}
            data = self._call("GET", "externalcontact/get", params=params, external_id=external_userid)
            follow_users.extend(data.get("follow_user") or [])
            cursor = str(data.get("next_cursor") or "")
            if not cursor:
                return {"external_contact": data.get("external_contact") or {}, "follow_user": follow_users}

    def batch_get_external_contacts(self, userids: Sequence[str], *, cursor: str = "", limit: int = 100) -> CursorPage:
        """``externalcontact/batch/get_by_user``: one page of ``{external_contact,
        follow_info}`` rows (one per member–customer relation) for ≤100 members."""
        if not 1 <= len(userids) <= 100:
            raise ValueError("userids must hold 1..100 members")
        if not 1 <= limit <= 100:
            raise ValueError("limit must be within 1..100")
        data = self._call(
            "POST", "externalcontact/batch/get_by_user",
            body={"userid_list": list(userids), "cursor": cursor, "limit": limit},
        )
        return CursorPage(items=list(data.get("external_contact_list") or []), next_cursor=str(data.get("next_cursor") or ""))

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

    def delete_schedule(self, schedule_id: str) -> None:
        """``oa/schedule/del``."""
        self._call("POST", "oa/schedule/del", body={"schedule_id": schedule_id}, external_id=schedule_id)


def _split_ids(value: Any) -> list[str]:
    return [part for part in str(value or "").split("|") if part]


def _error_for(errcode: int, data: Json, operation: str, external_id: str | None) -> ConnectorError:
    """Map a non-zero errcode to the hub's error tree (module docstring)."""
    text = clean_errmsg(data.get("errmsg"))
    context: dict[str, Any] = {"system": SYSTEM, "operation": operation, "external_id": external_id,
                               "code": str(errcode)}
    if errcode == ERRCODE_NO_VALID_RECIPIENT:
        # 81013 still lists the refused ids in the body (§1.2); they are what the caller must fix.
        rejected = list(dict.fromkeys([*_split_ids(data.get("invaliduser")), *_split_ids(data.get("unlicenseduser"))]))
        return RecipientError(f"no valid recipient: {text}", recipients=rejected, **context)
    if errcode == ERRCODE_BUSY:
        return RetryableError(f"WeCom busy: {text}", **context)
    if errcode in RATE_LIMIT_RETRY_AFTER:
        return RateLimitedError(f"rate limited: {text}", retry_after=RATE_LIMIT_RETRY_AFTER[errcode], **context)
    if errcode in TOKEN_REJECTED:
        return AuthExpiredError(f"access token rejected: {text}", **context)
    return PermanentError(text, **context)


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
