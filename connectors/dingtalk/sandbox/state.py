"""State and rules of the DingTalk sandbox: what oapi and the v1.0 API remember and decide.

The HTTP layer (:mod:`connectors.dingtalk.sandbox.app`) turns requests into calls of
:class:`DingTalkState` and answers what they return; everything a client can observe
lives here: tokens and their expiry, the directory and the app's visible scope, work
notices with DingTalk's delivery rules, the to-do store, per-app QPS and writes in flight.

Facts are from reference/messaging-apis.md (§2, "§" below) unless marked **guess** — a
behaviour the real platform surely has but that no source we found pins down, modelled
so that a client written against it stays safe.

- **Tokens** (§2.1): ``gettoken`` and ``oauth2/accessToken`` hand out the same token
  while it is valid (reuse semantics as WeCom; one token serves both hosts, [3p]);
  unknown → oapi 40014 / v1.0 400 InvalidAuthentication, expired → 42001 / the same 400.
  On ``topapi`` routes token errors come wrapped as errcode 88 with ``sub_code`` (§2.1,
  ``wrap_token_errors``): clients must unwrap them.
- **Directory** (§2.2): departments and the universe's people (:mod:`.seed`); the app sees
  the subtrees of ``visible_department_ids`` (its 通讯录范围); departments above them
  are passed through by ``listsub`` but their members are not listed (60011).
- **Work notices** (§2.2): asynchronous; ``getsendresult`` names invalid (unknown or out
  of scope), failed (not activated: **guess**) and forbidden (over the per-user daily
  limit: **guess** of where they show) recipients. An identical notice reaches a user once
  a day (Asia/Shanghai calendar day: **guess**), ≤ ``notices_per_user_per_day`` a day, the
  excess silently dropped; over ``notice_person_times_per_minute`` person-times a minute
  the app gets 143103 (the number is a **guess**).
- **To-dos** (§2.2, v1.0): identities are unionIds, times milliseconds; lookup by
  ``sourceId``; ``done`` set by an update, the executor status API, or a person ticking
  it off (:meth:`DingTalkState.complete_todo`, the admin endpoint). A second to-do with
  the same sourceId is created unless ``reject_duplicate_source_ids`` (400 "task exist",
  [3p]): whether DingTalk refuses twins is undocumented, and the default is the harder
  case for clients. Unknown ids: 400 "task not exist" ([3p] wording of the update API;
  that lookups answer alike is a **guess**).
- **Limits**: ``api_qps`` business calls per second per app (20, standard edition, §2.3
  [3p]) and ``max_in_flight`` business calls at once (the connector's own guess) → oapi
  90018, v1.0 HTTP 403 ``Forbidden.AccessDenied.QpsLimitForApi`` (§2.1 [U]).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import secrets
import threading
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from connectors.dingtalk.callbacks import TODO_EVENT
from connectors.dingtalk.sandbox.seed import (
    ROOT_DEPARTMENT_ID,
    DingTalkMember,
    demo_departments,
    dingtalk_directory,
)
from connectors.dingtalk.settings import DEFAULT_MAX_CONCURRENT_CALLS, DEFAULT_NOTICES_PER_USER_PER_DAY
from connectors.kit.sandbox.signin_codes import CodeBook, CodeRefused

Json = dict[str, Any]
SHANGHAI = ZoneInfo("Asia/Shanghai")

# errcode → errmsg. (seen): quoted in the reference or public replies; the rest are guesses
# in the same style. Clients branch on errcode only.
ERRMSG: dict[int, str] = {
    -1: "系统繁忙",  # (seen, §2.3: busy)
    22: "Invalid method",  # (seen: oapi's reply for an unknown API)
    40014: "不合法的access_token",  # (seen)
    40035: "不合法的参数",  # guess
    40078: "不存在的临时授权码",  # guess wording; the code is the one public replies quote for a bad 免登 code (§6 [unc])
    40089: "不合法的appkey或appsecret",  # guess
    42001: "access_token超时",  # guess wording
    60003: "部门不存在",  # guess
    60011: "管理员权限不足，（user/department/agent）无权限",  # guess wording (§2.3: no permission)
    60020: "访问ip不在白名单之中",  # guess wording (§2.3: IP not whitelisted)
    60121: "找不到该用户",  # guess wording (§2.2: getbymobile miss)
    90018: "当前应用api调用频率超过限制",  # guess wording (§2.3)
    143103: "发送消息人次超过每分钟的上限",  # guess wording (§2.2)
}
MSG_TYPES = frozenset({"text", "markdown", "link", "action_card", "oa"})
MAX_NOTICE_RECIPIENTS = 5000  # §2.2 (older docs: 100)
USER_PAGE_MAX = 100
SUBJECT_MAX, DESCRIPTION_MAX = 1024, 4096
NOT_FOUND = "task not exist"


class OapiError(Exception):
    """An oapi business error: HTTP 200 with ``errcode`` (§2.1)."""

    def __init__(self, errcode: int, detail: str | None = None) -> None:
        self.errcode = errcode
        self.detail = detail
        super().__init__(f"{errcode} {detail or ERRMSG.get(errcode, '')}")


class ApiError(Exception):
    """A v1.0 error: an HTTP status with ``{code, message}`` (§2.1)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status = status
        self.code = code
        self.message = message
        super().__init__(f"{status} {code}: {message}")


class Throttled(Exception):
    """The app is over its QPS or calls in flight; each host answers it its own way."""


@dataclass
class Notice:
    """One accepted ``asyncsend_v2`` request and what became of each recipient."""

    task_id: int
    msg: Json
    requested: list[str]
    sent_at: float
    delivered_to: list[str] = field(default_factory=list)
    suppressed_for: list[str] = field(default_factory=list)  # identical notice already delivered today
    dropped_for: list[str] = field(default_factory=list)  # over the daily per-user limit (silent)
    invalid: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    recalled: bool = False

    def as_json(self) -> Json:
        """Admin-endpoint view."""
        return {"task_id": self.task_id, "msg": self.msg, "requested": self.requested, "sent_at": self.sent_at,
                "delivered_to": self.delivered_to, "suppressed_for": self.suppressed_for,
                "dropped_for": self.dropped_for, "invalid": self.invalid, "failed": self.failed,
                "recalled": self.recalled}


def _int(value: Any, what: str, error: Callable[[str], Exception]) -> int:
    if isinstance(value, bool):
        raise error(f"{what} must be a number")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise error(f"{what} must be a number") from None


def _oapi_param(detail: str) -> OapiError:
    return OapiError(40035, detail)


class DingTalkState:
    """Everything the sandbox remembers, guarded by one lock (HTTP thread + test thread)."""

    def __init__(
        self, *, app_key: str, app_secret: str, agent_id: int, corp_id: str, seed: int,
        clock: Callable[[], float], token_ttl: int = 7200,
        visible_department_ids: Iterable[int] = (ROOT_DEPARTMENT_ID,), api_qps: int = 20,
        max_in_flight: int = DEFAULT_MAX_CONCURRENT_CALLS,
        notices_per_user_per_day: int = DEFAULT_NOTICES_PER_USER_PER_DAY,
        notice_person_times_per_minute: int = 5000, wrap_token_errors: bool = True,
        reject_duplicate_source_ids: bool = False, todo_page_size: int = 50,
        other_apps: dict[str, str] | None = None,
    ) -> None:
        self.app_key, self._app_secret, self.agent_id, self.corp_id = app_key, app_secret, int(agent_id), corp_id
        self.seed, self.clock, self.token_ttl = seed, clock, int(token_ttl)
        self.api_qps, self.max_in_flight = api_qps, max_in_flight
        self.notices_per_user_per_day = notices_per_user_per_day
        self.notice_person_times_per_minute = notice_person_times_per_minute
        self.wrap_token_errors = wrap_token_errors
        self.reject_duplicate_source_ids = reject_duplicate_source_ids
        self.todo_page_size = todo_page_size
        self.lock = threading.RLock()

        self.departments: dict[int, Json] = {
            d.id: {"dept_id": d.id, "name": d.name, "parent_id": d.parentid, "order": d.order}
            for d in demo_departments()
        }
        self.members: dict[str, DingTalkMember] = {m.userid: m for m in dingtalk_directory(seed)}
        self._by_union = {m.unionid: m for m in self.members.values()}
        self.visible = self._subtree(visible_department_ids)
        self._transit = {a for d in self.visible for a in self._ancestors(d)} - self.visible

        self._tokens: dict[str, float] = {}  # token → expires_at; expired ones kept (42001, not 40014)
        self._current: str | None = None
        # Other apps of the same corp (appKey → appSecret): their tokens work, but a 免登 code
        # issued to this app is refused with them (§6).
        self._apps: dict[str, str] = {app_key: app_secret, **(other_apps or {})}
        self._token_app: dict[str, str] = {}
        self._current_by_app: dict[str, str] = {}
        self.caller_app = app_key
        self.codes = CodeBook(clock)
        self.in_app_user: str | None = None  # who "opens" pages inside the app (the JSAPI stand-in)
        # Browser (QR) login (§6): its authCodes are not 免登 codes (a separate book), and the
        # person "signed in" at login.dingtalk.com in the browser that comes to the page.
        self.web_codes = CodeBook(clock)
        self.browser_user: str | None = None
        self._user_tokens: dict[str, tuple[str, float]] = {}  # user access token → (userid, expires_at)
        self.tokens_issued = 0
        self.token_requests = 0
        self.calls: dict[str, int] = defaultdict(int)
        self._recent_calls: deque[float] = deque()
        self._in_flight = 0
        self.peak_in_flight = 0
        self.throttled = 0

        self._task_ids = 100_000_000
        self.notices: dict[int, Notice] = {}
        self._delivered_today: dict[tuple[str, str], int] = defaultdict(int)  # (userid, day) → count
        self._identical: set[tuple[str, str, str]] = set()  # (userid, day, content hash)
        self._person_times: deque[tuple[float, int]] = deque()

        self.todos: dict[str, Json] = {}
        self.todo_updates: list[Json] = []  # every update by the API: {"id", "operator", "fields"}
        self.events: list[Json] = []  # events DingTalk would push (to-dos completed by people)

    # ------------------------------------------------------------------ scope helpers

    def _ancestors(self, dept_id: int) -> list[int]:
        chain, parent = [], self.departments.get(dept_id, {}).get("parent_id")
        while isinstance(parent, int) and parent in self.departments and parent not in chain:
            chain.append(parent)
            parent = self.departments[parent].get("parent_id")
        return chain

    def _subtree(self, roots: Iterable[int]) -> frozenset[int]:
        found: set[int] = set()
        frontier = [r for r in roots if r in self.departments]
        while frontier:
            dept_id = frontier.pop()
            if dept_id not in found:
                found.add(dept_id)
                frontier.extend(d for d, row in self.departments.items() if row["parent_id"] == dept_id)
        return frozenset(found)

    def member_visible(self, member: DingTalkMember) -> bool:
        """True when the app's scope covers one of the member's departments."""
        return any(d in self.visible for d in member.dept_id_list)

    def visible_members(self) -> list[DingTalkMember]:
        """The members the app may see."""
        return [m for m in self.members.values() if self.member_visible(m)]

    def member_by_union(self, union_id: str) -> DingTalkMember | None:
        """The visible member with this unionId."""
        member = self._by_union.get(union_id)
        return member if member is not None and self.member_visible(member) else None

    # ------------------------------------------------------------------ tokens and limits

    def issue_token(self, app_key: str | None, app_secret: str | None) -> tuple[str, int] | None:
        """The current token (a new one after expiry) and its remaining life, or None when
        the credentials are wrong (each host answers that its own way)."""
        with self.lock:
            self.token_requests += 1
            known = self._apps.get(str(app_key or ""))
            if known is None or not secrets.compare_digest(str(app_secret or ""), known):
                return None
            app = str(app_key)
            now = self.clock()
            current = self._current_by_app.get(app)
            if current is not None and self._tokens[current] > now:
                return current, max(1, int(self._tokens[current] - now))
            token = secrets.token_hex(16)
            self._tokens[token] = now + self.token_ttl
            self._token_app[token] = app
            self._current_by_app[app] = token
            if app == self.app_key:
                self._current = token
            self.tokens_issued += 1
            return token, self.token_ttl

    def token_problem(self, token: str | None) -> int | None:
        """None for a valid token, else the oapi errcode: 40014 unknown, 42001 expired."""
        with self.lock:
            expires_at = self._tokens.get(token or "")
            if expires_at is None:
                return 40014
            return 42001 if expires_at <= self.clock() else None

    def expire_all_tokens(self) -> int:
        """Invalidate every token early (platforms may, §2.1); returns how many."""
        with self.lock:
            now = self.clock()
            for token in self._tokens:
                self._tokens[token] = min(self._tokens[token], now - 1)
            self._current = None
            self._current_by_app.clear()
            return len(self._tokens)

    def enter(self, operation: str) -> None:
        """Count a business call against the app's QPS and calls in flight; :class:`Throttled` when over."""
        with self.lock:
            now = self.clock()
            self.calls[operation] += 1
            while self._recent_calls and self._recent_calls[0] <= now - 1.0:
                self._recent_calls.popleft()
            if len(self._recent_calls) >= self.api_qps or self._in_flight >= self.max_in_flight:
                self.throttled += 1
                raise Throttled(operation)
            self._recent_calls.append(now)
            self._in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)

    def leave(self) -> None:
        """Release the slot taken by :meth:`enter`."""
        with self.lock:
            self._in_flight = max(0, self._in_flight - 1)

    def app_of_token(self, token: str | None) -> str:
        """The appKey a (valid) token was issued to."""
        with self.lock:
            return self._token_app.get(token or "", self.app_key)

    # ------------------------------------------------------------------ 免登 (§6)

    def issue_code(self, userid: str, app_key: str | None = None) -> str:
        """A 免登 authCode for member ``userid`` of app ``app_key`` (default: this app), as
        ``dd.getAuthCode`` hands one to a page inside DingTalk. KeyError for no active visible member."""
        with self.lock:
            member = self.members.get(userid)
            if member is None or not member.active or not self.member_visible(member):
                raise KeyError(userid)
            return self.codes.issue(member.userid, app_key or self.app_key)

    def getuserinfo(self, body: Json) -> Json:
        """``topapi/v2/user/getuserinfo``: ``{"code"}`` → ``result`` {userid, unionid, name, sys,
        sys_level} (§6). Every refusal (unknown, used, expired, another app's) is 40078 (guess)."""
        member = self._redeem(body.get("code"))
        return {"result": {"userid": member.userid, "unionid": member.unionid, "name": member.name,
                           "device_id": "", "sys": bool(member.leader_in), "sys_level": 2 if member.leader_in else 0,
                           "associated_unionid": ""}}

    def legacy_getuserinfo(self, code: str | None) -> Json:
        """The older ``GET /user/getuserinfo?code=`` (dingtalk-sdk's ``user.getuserinfo``)."""
        member = self._redeem(code)
        return {"userid": member.userid, "sys_level": 2 if member.leader_in else 0, "is_sys": bool(member.leader_in),
                "deviceId": ""}

    # ------------------------------------------------------------------ browser (QR) login (§6)

    def web_authorize(self, client_id: str) -> str | None:
        """The ``authCode`` login.dingtalk.com hands back for the browser's signed-in person
        and app ``client_id``; None when nobody has scanned (or they are no active member).
        KeyError for an unknown client_id."""
        with self.lock:
            if client_id not in self._apps:
                raise KeyError(client_id)
            member = self.members.get(self.browser_user or "")
            if member is None or not member.active:
                return None
            return self.web_codes.issue(member.userid, client_id)

    def user_access_token(self, body: Json) -> Json:
        """``POST /v1.0/oauth2/userAccessToken``: an authCode, once, with its own app's
        clientId and clientSecret → ``{accessToken, refreshToken, expireIn, corpId}``. Error
        codes are GUESSES (undocumented): invalidClientSecret, invalidAuthCode."""
        with self.lock:
            client_id = str(body.get("clientId") or "")
            known = self._apps.get(client_id)
            if known is None:
                raise ApiError(400, "invalidClientId", "无效的clientId")
            if not secrets.compare_digest(str(body.get("clientSecret") or ""), known):
                raise ApiError(400, "invalidClientSecret", "无效的clientSecret")
            if body.get("grantType") != "authorization_code":
                raise ApiError(400, "invalidGrantType", "grantType must be authorization_code")
            code = body.get("code")
            try:
                userid = self.web_codes.redeem(code if isinstance(code, str) else None, client_id)
            except CodeRefused:
                raise ApiError(400, "invalidAuthCode", "无效的authCode") from None
            token = secrets.token_hex(16)
            self._user_tokens[token] = (userid, self.clock() + self.token_ttl)
            return {"accessToken": token, "refreshToken": secrets.token_hex(16), "expireIn": self.token_ttl,
                    "corpId": self.corp_id}

    def users_me(self, token: str | None) -> Json:
        """``GET /v1.0/contact/users/me`` with a user access token → the person (§6)."""
        with self.lock:
            held = self._user_tokens.get(token or "")
            if held is None or held[1] <= self.clock():
                raise ApiError(400, "InvalidAuthentication", "不合法的access_token")
            member = self.members[held[0]]
            return {"nick": member.name, "unionId": member.unionid, "openId": "o" + member.unionid[:27],
                    "mobile": member.mobile, "stateCode": "86", "email": member.email, "avatarUrl": ""}

    def _redeem(self, code: Any) -> DingTalkMember:
        try:
            userid = self.codes.redeem(code if isinstance(code, str) else None, self.caller_app)
        except CodeRefused:
            raise OapiError(40078) from None
        return self.members[userid]

    # ------------------------------------------------------------------ directory (oapi)

    def _department(self, body: Json) -> int:
        dept_id = _int(body.get("dept_id"), "dept_id", _oapi_param)
        if dept_id not in self.departments:
            raise OapiError(60003)
        return dept_id

    def department_get(self, body: Json) -> Json:
        """``topapi/v2/department/get``."""
        dept_id = self._department(body)
        if dept_id not in self.visible and dept_id not in self._transit:
            raise OapiError(60011)
        row = self.departments[dept_id]
        leaders = [m.userid for m in self.visible_members() if dept_id in m.leader_in]
        return {"result": {**row, "dept_manager_userid_list": leaders}}

    def department_listsub(self, body: Json) -> Json:
        """``topapi/v2/department/listsub``: visible (or passed-through) direct children."""
        dept_id = self._department(body)
        if dept_id not in self.visible and dept_id not in self._transit:
            raise OapiError(60011)
        children = [dict(row) for d, row in sorted(self.departments.items())
                    if row["parent_id"] == dept_id and (d in self.visible or d in self._transit)]
        return {"result": children}

    def _member_json(self, member: DingTalkMember, dept_id: int | None = None) -> Json:
        row: Json = {
            "userid": member.userid, "unionid": member.unionid, "name": member.name, "mobile": member.mobile,
            "state_code": "86", "email": member.email, "title": member.title, "job_number": member.job_number,
            "dept_id_list": list(member.dept_id_list), "active": member.active, "admin": False,
            "boss": member.person.manager_userid is None, "hide_mobile": False,
            "leader_in_dept": [{"dept_id": d, "leader": d in member.leader_in} for d in member.dept_id_list],
        }
        if member.manager_userid:
            row["manager_userid"] = member.manager_userid
        if dept_id is not None:
            row["leader"] = dept_id in member.leader_in  # relative to the department listed
        return row

    def user_list(self, body: Json) -> Json:
        """``topapi/v2/user/list``: a department's direct members, cursor-paged (§2.2)."""
        dept_id = self._department(body)
        if dept_id not in self.visible:
            raise OapiError(60011)
        cursor = _int(body.get("cursor", 0), "cursor", _oapi_param)
        size = _int(body.get("size", USER_PAGE_MAX), "size", _oapi_param)
        if not 1 <= size <= USER_PAGE_MAX or cursor < 0:
            raise OapiError(40035, "size must be 1..100, cursor ≥ 0")
        members = sorted((m for m in self.members.values() if dept_id in m.dept_id_list), key=lambda m: m.userid)
        page = members[cursor:cursor + size]
        more = cursor + len(page) < len(members)
        result: Json = {"has_more": more, "list": [self._member_json(m, dept_id) for m in page]}
        if more:
            result["next_cursor"] = cursor + len(page)
        return {"result": result}

    def user_listid(self, body: Json) -> Json:
        """``topapi/user/listid``."""
        dept_id = self._department(body)
        if dept_id not in self.visible:
            raise OapiError(60011)
        return {"result": {"userid_list": sorted(m.userid for m in self.members.values()
                                                 if dept_id in m.dept_id_list)}}

    def _visible_member(self, userid: Any) -> DingTalkMember:
        member = self.members.get(str(userid or ""))
        if member is None:
            raise OapiError(60121)
        if not self.member_visible(member):
            raise OapiError(60011)
        return member

    def user_get(self, body: Json) -> Json:
        """``topapi/v2/user/get``."""
        return {"result": self._member_json(self._visible_member(body.get("userid")))}

    def user_getbymobile(self, body: Json) -> Json:
        """``topapi/v2/user/getbymobile`` (a miss: 60121, §2.2 [U])."""
        mobile = str(body.get("mobile") or "").strip()
        for member in self.visible_members():
            if member.mobile == mobile:
                return {"result": {"userid": member.userid}}
        raise OapiError(60121)

    def user_getbyunionid(self, body: Json) -> Json:
        """``topapi/user/getbyunionid``."""
        member = self.member_by_union(str(body.get("unionid") or ""))
        if member is None:
            raise OapiError(60121)
        return {"result": {"contact_type": 0, "userid": member.userid}}

    # ------------------------------------------------------------------ work notices (oapi)

    def _agent(self, body: Json) -> None:
        if _int(body.get("agent_id"), "agent_id", _oapi_param) != self.agent_id:
            raise OapiError(40035, "agent_id does not belong to this app")  # guess: code

    @staticmethod
    def _check_msg(msg: Any) -> Json:
        if isinstance(msg, str):  # some clients send msg as a JSON string
            try:
                msg = json.loads(msg)
            except ValueError:
                raise OapiError(40035, "msg is not JSON") from None
        if not isinstance(msg, dict) or msg.get("msgtype") not in MSG_TYPES \
                or not isinstance(msg.get(msg["msgtype"]), dict):
            raise OapiError(40035, "msg needs msgtype and its body")
        content = msg[msg["msgtype"]]
        if msg["msgtype"] == "action_card":
            has_button = content.get("single_title") and content.get("single_url")
            if not content.get("title") or not content.get("markdown") or not (has_button or content.get("btn_json_list")):
                raise OapiError(40035, "action_card needs title, markdown and a button")
        elif msg["msgtype"] in ("text", "markdown") and not (content.get("content") or content.get("text")):
            raise OapiError(40035, f"{msg['msgtype']} is empty")
        return msg

    def send_notice(self, body: Json) -> Json:
        """``asyncsend_v2``: accept, then deliver by DingTalk's rules (see the module docstring)."""
        self._agent(body)
        if body.get("to_all_user") in (True, "true"):
            raise OapiError(40035, "to_all_user is not modelled by the sandbox")
        msg = self._check_msg(body.get("msg"))
        requested = [u.strip() for u in str(body.get("userid_list") or "").split(",") if u.strip()]
        if not requested or len(requested) > MAX_NOTICE_RECIPIENTS:
            raise OapiError(40035, "userid_list must name 1..5000 users")
        now = self.clock()
        while self._person_times and self._person_times[0][0] <= now - 60:
            self._person_times.popleft()
        if sum(n for _, n in self._person_times) + len(requested) > self.notice_person_times_per_minute:
            raise OapiError(143103)
        self._person_times.append((now, len(requested)))
        self._task_ids += 1
        notice = Notice(task_id=self._task_ids, msg=msg, requested=requested, sent_at=now)
        day = dt.datetime.fromtimestamp(now, SHANGHAI).date().isoformat()
        content = hashlib.sha256(json.dumps(msg, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
        for userid in dict.fromkeys(requested):
            member = self.members.get(userid)
            if member is None or not self.member_visible(member):
                notice.invalid.append(userid)
            elif not member.active:
                notice.failed.append(userid)
            elif (userid, day, content) in self._identical:
                notice.suppressed_for.append(userid)
            elif self._delivered_today[(userid, day)] >= self.notices_per_user_per_day:
                notice.dropped_for.append(userid)
            else:
                self._identical.add((userid, day, content))
                self._delivered_today[(userid, day)] += 1
                notice.delivered_to.append(userid)
        self.notices[notice.task_id] = notice
        return {"task_id": notice.task_id}

    def _notice(self, body: Json, key: str = "task_id") -> Notice:
        self._agent(body)
        notice = self.notices.get(_int(body.get(key), key, _oapi_param))
        if notice is None:
            raise OapiError(40035, f"unknown {key}")  # guess: code
        return notice

    def send_result(self, body: Json) -> Json:
        """``getsendresult``: who was not reached (dropped users look delivered: silent)."""
        notice = self._notice(body)
        reached = [*notice.delivered_to, *notice.suppressed_for, *notice.dropped_for]
        return {"send_result": {
            "invalid_user_id_list": notice.invalid, "forbidden_user_id_list": [], "failed_user_id_list": notice.failed,
            "read_user_id_list": [], "unread_user_id_list": reached, "invalid_dept_id_list": [],
            "forbidden_list": [],
        }}

    def send_progress(self, body: Json) -> Json:
        """``getsendprogress``: the sandbox finishes every send at once."""
        self._notice(body)
        return {"progress": {"progress_in_percent": 100, "status": 2}}

    def recall(self, body: Json) -> Json:
        """``recall``."""
        self._notice(body, "msg_task_id").recalled = True
        return {}

    # ------------------------------------------------------------------ to-dos (v1.0)

    def _todo_member(self, union_id: str, what: str) -> DingTalkMember:
        # to-dos address any member of the org: the app's directory scope limits what the
        # directory APIs show, not whom a to-do may name (guess)
        member = self._by_union.get(union_id)
        if member is None:
            raise ApiError(400, f"todo.{what}.paramError", f"user {union_id} not exist")  # guess: wording
        return member

    def _todo_for(self, union_id: str, todo_id: str) -> Json:
        todo = self.todos.get(todo_id)
        if todo is None or union_id not in (todo["creatorId"], *todo["executorIds"], *todo["participantIds"]):
            raise ApiError(400, "todo.taskQuery.paramError", NOT_FOUND)
        return todo

    def create_todo(self, union_id: str, operator: str | None, body: Json) -> Json:
        """``POST /v1.0/todo/users/{unionId}/tasks``: the new to-do (§2.2)."""
        self._todo_member(union_id, "taskCreate")
        subject = body.get("subject")
        if not isinstance(subject, str) or not subject.strip():
            raise ApiError(400, "todo.taskCreate.paramError", "subject is empty")
        if len(subject) > SUBJECT_MAX:
            raise ApiError(400, "todo.taskCreate.paramError", "subject is oversize")
        if len(str(body.get("description") or "")) > DESCRIPTION_MAX:
            raise ApiError(400, "todo.taskCreate.paramError", "description is oversize")
        executors = [str(e) for e in body.get("executorIds") or []]
        for executor in executors:
            self._todo_member(executor, "taskCreate")
        due = body.get("dueTime")
        if due is not None and (isinstance(due, bool) or not isinstance(due, int) or due < 0):
            raise ApiError(400, "todo.taskCreate.paramError", "dueTime is invalid")
        source_id = body.get("sourceId")
        if self.reject_duplicate_source_ids and source_id and self._by_source(union_id, str(source_id)):
            raise ApiError(400, "todo.taskCreate.paramError", "task exist")
        now = int(self.clock() * 1000)
        todo_id = "task" + hashlib.sha256(f"{self.seed}:{len(self.todos)}:{now}".encode()).hexdigest()[:24]
        todo: Json = {
            "id": todo_id, "subject": subject, "description": body.get("description") or "",
            "startTime": None, "dueTime": due, "finishTime": None, "done": False,
            "executorIds": executors, "participantIds": [str(p) for p in body.get("participantIds") or []],
            "detailUrl": body.get("detailUrl") or {}, "source": "isv_dingtalkTodo", "sourceId": source_id,
            "createdTime": now, "modifiedTime": now, "creatorId": union_id, "modifierId": operator or union_id,
            "bizTag": "isv_dingtalkTodo", "isOnlyShowExecutor": bool(body.get("isOnlyShowExecutor")),
            "priority": body.get("priority", 20), "notifyConfigs": body.get("notifyConfigs") or {},
            "tenantId": self.corp_id, "tenantType": "org",
        }
        self.todos[todo_id] = todo
        return {**todo, "requestId": secrets.token_hex(8)}

    def _by_source(self, union_id: str, source_id: str) -> list[Json]:
        return [t for t in self.todos.values() if t["sourceId"] == source_id
                and union_id in (t["creatorId"], *t["executorIds"], *t["participantIds"])]

    def todo_by_source(self, union_id: str, source_id: str) -> Json:
        """``GET …/tasks/sources/{sourceId}`` (the oldest one if twins exist)."""
        found = sorted(self._by_source(union_id, source_id), key=lambda t: t["createdTime"])
        if not found:
            raise ApiError(400, "todo.taskQuery.paramError", NOT_FOUND)
        return {**found[0], "requestId": secrets.token_hex(8)}

    def get_todo(self, union_id: str, todo_id: str) -> Json:
        """``GET …/tasks/{taskId}``."""
        return {**self._todo_for(union_id, todo_id), "requestId": secrets.token_hex(8)}

    def update_todo(self, union_id: str, todo_id: str, operator: str | None, body: Json) -> Json:
        """``PUT …/tasks/{taskId}``: subject, description, dueTime, done, executorIds, participantIds."""
        todo = self.todos.get(todo_id)
        if todo is None or todo["creatorId"] != union_id:
            raise ApiError(400, "todo.taskUpdate.paramError", NOT_FOUND)
        fields: Json = {k: body[k] for k in ("subject", "description", "dueTime", "done", "executorIds", "participantIds")
                  if k in body}
        if "subject" in fields and len(str(fields["subject"])) > SUBJECT_MAX:
            raise ApiError(400, "todo.taskUpdate.paramError", "subject is oversize")
        for executor in [*fields.get("executorIds", []), *fields.get("participantIds", [])]:
            self._todo_member(str(executor), "taskUpdate")
        now = int(self.clock() * 1000)
        if fields.get("done") and not todo["done"]:
            todo["finishTime"] = now
        todo.update(fields)
        todo.update(modifiedTime=now, modifierId=operator or union_id)
        self.todo_updates.append({"id": todo_id, "operator": operator, "fields": sorted(fields), "at": now})
        return {"result": True, "requestId": secrets.token_hex(8)}

    def executor_status(self, union_id: str, todo_id: str, operator: str | None, body: Json) -> Json:
        """``PUT …/tasks/{taskId}/executorStatus``: done once every executor is."""
        todo = self._todo_for(union_id, todo_id)
        statuses = {str(s.get("id")): bool(s.get("isDone")) for s in body.get("executorStatusList") or []
                    if isinstance(s, dict)}
        done_now = all(statuses.get(e, False) for e in todo["executorIds"]) if todo["executorIds"] else False
        return self.update_todo(todo["creatorId"], todo_id, operator, {"done": done_now})

    def delete_todo(self, union_id: str, todo_id: str) -> Json:
        """``DELETE …/tasks/{taskId}``."""
        todo = self.todos.get(todo_id)
        if todo is None or todo["creatorId"] != union_id:
            raise ApiError(400, "todo.taskDelete.paramError", NOT_FOUND)
        del self.todos[todo_id]
        return {"result": True, "requestId": secrets.token_hex(8)}

    def query_todos(self, union_id: str, body: Json) -> Json:
        """``POST …/org/tasks/query``: the user's to-dos in the given roles, newest first,
        ``todo_page_size`` per page, an opaque ``nextToken``."""
        self._todo_member(union_id, "taskQuery")
        roles = {r for group in body.get("roleTypes") or [["executor"], ["creator"], ["participant"]]
                 for r in (group if isinstance(group, list) else [group])}
        is_done = body.get("isDone")
        chosen = [t for t in self.todos.values()
                  if (is_done is None or t["done"] == bool(is_done)) and (
                      ("creator" in roles and t["creatorId"] == union_id)
                      or ("executor" in roles and union_id in t["executorIds"])
                      or ("participant" in roles and union_id in t["participantIds"]))]
        chosen.sort(key=lambda t: (-t["createdTime"], t["id"]))
        start = self._page_offset(body.get("nextToken"))
        page = chosen[start:start + self.todo_page_size]
        end = start + len(page)
        cards = [{"taskId": t["id"], "subject": t["subject"], "sourceId": t["sourceId"], "isDone": t["done"],
                  "dueTime": t["dueTime"], "createdTime": t["createdTime"], "modifiedTime": t["modifiedTime"],
                  "creatorId": t["creatorId"], "detailUrl": t["detailUrl"], "priority": t["priority"],
                  "bizTag": t["bizTag"]} for t in page]
        reply: Json = {"todoCards": cards, "totalCount": len(chosen)}
        if end < len(chosen):
            reply["nextToken"] = base64.urlsafe_b64encode(f"todo:{end}".encode()).decode()
        return reply

    @staticmethod
    def _page_offset(token: Any) -> int:
        if not token:
            return 0
        try:
            kind, _, offset = base64.urlsafe_b64decode(str(token)).decode().partition(":")
            if kind == "todo" and offset.isdigit():
                return int(offset)
        except ValueError:
            pass
        raise ApiError(400, "todo.taskQuery.paramError", "nextToken is invalid")  # guess: wording

    # ------------------------------------------------------------------ people (admin)

    def complete_todo(self, todo_id: str, by_union_id: str | None = None) -> Json:
        """A person ticks the to-do off in the DingTalk app (its executor unless ``by_union_id``);
        returns the event DingTalk would push (recorded in :attr:`events`)."""
        with self.lock:
            todo = self.todos.get(todo_id)
            if todo is None:
                raise KeyError(todo_id)
            who = by_union_id or (todo["executorIds"][0] if todo["executorIds"] else todo["creatorId"])
            now = int(self.clock() * 1000)
            if not todo["done"]:
                todo.update(done=True, finishTime=now)
            todo.update(modifiedTime=now, modifierId=who)
            event = {"EventType": TODO_EVENT, "CorpId": self.corp_id, "TimeStamp": str(now), "taskId": todo_id,
                     "sourceId": todo["sourceId"], "done": True, "operatorUnionId": who,
                     "finishTime": todo["finishTime"]}
            self.events.append(event)
            return event

    # ------------------------------------------------------------------ admin views

    def notice_log(self, userid: str | None = None) -> list[Json]:
        """Accepted notices, optionally only those addressed to ``userid``."""
        with self.lock:
            return [n.as_json() for n in self.notices.values() if userid is None or userid in n.requested]

    def todo_list(self, source_id: str | None = None) -> list[Json]:
        """The to-do store (optionally one sourceId's), oldest first."""
        with self.lock:
            todos = [dict(t) for t in self.todos.values() if source_id is None or t["sourceId"] == source_id]
            return sorted(todos, key=lambda t: (t["createdTime"], t["id"]))

    def summary(self) -> Json:
        """Counts for the admin endpoint and the demo."""
        with self.lock:
            return {
                "corp_id": self.corp_id, "agent_id": self.agent_id, "departments": len(self.departments),
                "members": len(self.members), "visible_members": len(self.visible_members()),
                "signin_codes": self.codes.summary(),
                "web_login_codes": self.web_codes.summary(),
                "tokens_issued": self.tokens_issued, "token_requests": self.token_requests,
                "notices": len(self.notices),
                "deliveries": sum(len(n.delivered_to) for n in self.notices.values()),
                "suppressed": sum(len(n.suppressed_for) for n in self.notices.values()),
                "todos": len(self.todos), "todos_done": sum(t["done"] for t in self.todos.values()),
                "todo_updates": len(self.todo_updates), "throttled": self.throttled,
                "peak_in_flight": self.peak_in_flight, "calls": dict(self.calls),
            }


__all__ = [
    "ERRMSG",
    "NOT_FOUND",
    "TODO_EVENT",
    "ApiError",
    "DingTalkState",
    "Notice",
    "OapiError",
    "Throttled",
]
