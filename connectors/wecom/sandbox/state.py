"""State and rules of the WeCom sandbox: what the real qyapi server would remember and decide.

The HTTP layer (:mod:`connectors.wecom.sandbox.app`) only turns requests into
``WeComState.handle(method, operation, query, body)`` calls and answers the returned
dict as JSON. Everything a client can observe lives here: access tokens and their
expiry, the directory, external contacts and their follow users, opaque cursors, the
message log with WeCom's duplicate check and per-member silent drops, schedules and
calendars, and per-API minute quotas.

Facts come from reference/messaging-apis.md (§1.1-§1.4, "§" below) unless marked
**guess**. A guess is a behaviour the real server surely has but that no source we
found pins down; each is written so that a client built against it stays safe.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from connectors.kit.sandbox.signin_codes import CodeBook, CodeRefused
from connectors.wecom.sandbox.approvals import ApprovalBook, ApprovalRefused
from connectors.wecom.sandbox.seed import (
    ROOT_DEPARTMENT_ID,
    DemoExternalContact,
    DemoUser,
    demo_departments,
    demo_directory,
    demo_external_contacts,
)
from connectors.wecom.settings import DEFAULT_MAX_CONCURRENT_CALLS

Json = dict[str, Any]

# errcode -> errmsg text. Texts marked (seen) appear verbatim in public client code and
# issue threads; the others are guesses in the same style. Clients must branch on
# errcode only (§1.1), so a wrong text cannot mislead a correct client.
ERRMSG: dict[int, str] = {
    -1: "system busy",  # guess (doc: 系统繁忙)
    40001: "invalid credential",  # seen
    40003: "invalid userid",  # guess (doc: 无效的UserID)
    40008: "invalid message type",  # guess (doc: 不合法的msgtype参数)
    40013: "invalid corpid",  # guess (doc: 不合法的CorpID)
    40014: "invalid access_token",  # seen
    40029: "invalid code",  # seen (wechatpy issue threads: "invalid code" on a used or stale OAuth code)
    40056: "invalid agentid",  # guess
    40058: "invalid parameter",  # guess (§1.3: bad parameter)
    40096: "invalid external userid",  # guess (doc: 不合法的外部联系人userid)
    41001: "access_token missing",  # seen
    41002: "corpid missing",  # guess
    41004: "corpsecret missing",  # guess
    42001: "access_token expired",  # seen
    43001: "require GET method",  # guess
    43002: "require POST method",  # guess
    45009: "api freq out of limit",  # seen
    45033: "api concurrent out of limit",  # §1.3
    46004: "user no exist",  # guess (§1.3: member not found, wording unknown)
    48002: "api forbidden",  # §1.3
    60011: "no privilege to access/modify contact/party/agent",  # guess
    60111: "userid not found",  # §1.3
    60123: "invalid party id",  # guess
    81013: "user & party & tag all invalid",  # seen (developers.weixin.qq.com community thread)
    84061: "not external contact",  # guess (§1.3 [U])
    301025: "approval param error",  # guess wording (oa-approvals.md §2.6: 审批参数错误)
    301026: "get template detail failed",  # guess wording (§2.6)
}

MESSAGE_TYPES = frozenset({"text", "textcard", "markdown", "template_card"})
# Interactive template cards return a single-use response_code (§1.2).
_INTERACTIVE_CARDS = frozenset({"button_interaction", "vote_interaction", "multiple_interaction"})
# "duplicate_check_interval: 默认1800s，最大不超过4小时" — official send doc (path 90236) as
# quoted in binarywang/WxJava WxCpMessage.java and WxJava issue #1915.
DEFAULT_DUPLICATE_CHECK_INTERVAL = 1800
MAX_DUPLICATE_CHECK_INTERVAL = 4 * 3600
# Byte limits of the send doc (§1.2; wechatpy's send_text_card docstring adds "超过会自动截断").
TEXT_MAX_BYTES = 2048
TEXTCARD_TITLE_MAX_BYTES = 128
TEXTCARD_DESCRIPTION_MAX_BYTES = 512
TASK_ID_MAX_BYTES = 128
MAX_TOUSER = 1000
REMIND_BEFORE_CHOICES = frozenset({0, 300, 900, 3600, 86400})  # §1.2 schedule reminders
FOLLOW_USER_PAGE = 500  # externalcontact/get pages follow_user at 500 (§1.2)
# Per app per member: 30 messages in any minute, 1,000 in any hour (§1.4); the excess is dropped.
MEMBER_MESSAGE_LIMITS = ((60.0, 30), (3600.0, 1000))


class WeComApiError(Exception):
    """A business error the sandbox answers as HTTP 200 + errcode (§1.1)."""

    def __init__(self, errcode: int, detail: str | None = None, extra: Json | None = None) -> None:
        self.errcode = errcode
        self.detail = detail
        self.extra = extra or {}
        super().__init__(f"{errcode} {detail or ERRMSG.get(errcode, '')}")


def truncate_utf8(text: str, max_bytes: int) -> str:
    """Cut ``text`` to at most ``max_bytes`` UTF-8 bytes without splitting a character."""
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text
    return raw[:max_bytes].decode("utf-8", errors="ignore")


@dataclass
class SentMessage:
    """One accepted ``message/send`` request, as the sandbox log keeps it."""

    msgid: str
    agentid: int
    msgtype: str
    content: Json
    requested: list[str]
    delivered_to: list[str]
    dropped_for: list[str]  # over the per-member minute/hour limit: silently not delivered
    invalid_users: list[str]
    unlicensed_users: list[str]
    sent_at: float
    body_hash: str
    duplicate_check_interval: int | None
    truncated: list[str] = field(default_factory=list)
    duplicates_suppressed: int = 0
    recalled: bool = False

    def as_json(self, for_user: str | None = None) -> Json:
        """Admin-endpoint view; with ``for_user`` the entry says what happened to that user."""
        view: Json = {
            "msgid": self.msgid, "agentid": self.agentid, "msgtype": self.msgtype,
            "content": self.content, "requested": self.requested, "delivered_to": self.delivered_to,
            "dropped_for": self.dropped_for, "invalid_users": self.invalid_users,
            "unlicensed_users": self.unlicensed_users, "sent_at": self.sent_at,
            "duplicate_check_interval": self.duplicate_check_interval, "truncated": self.truncated,
            "duplicates_suppressed": self.duplicates_suppressed, "recalled": self.recalled,
        }
        if for_user is not None:
            view["status"] = "delivered" if for_user in self.delivered_to else "dropped"
        return view


class _CursorCodec:
    """Opaque, tamper-evident cursors: an offset signed with a per-sandbox key.

    Real cursors are opaque strings (§1.2); clients must pass them back unchanged and
    stop on an empty ``next_cursor``. Signing lets the sandbox reject a hand-made cursor.
    """

    def __init__(self, key: bytes) -> None:
        self._key = key

    def encode(self, kind: str, offset: int) -> str:
        payload = hashlib.sha256(kind.encode()).digest()[:4] + offset.to_bytes(4, "big")
        tag = hmac.new(self._key, payload, hashlib.sha256).digest()[:10]
        return base64.urlsafe_b64encode(tag + payload).decode("ascii").rstrip("=")

    def decode(self, kind: str, cursor: str) -> int:
        if not cursor:
            return 0
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except ValueError as exc:
            raise WeComApiError(40058, "invalid cursor") from exc
        tag, payload = raw[:10], raw[10:]
        expected = hmac.new(self._key, payload, hashlib.sha256).digest()[:10]
        if (
            len(payload) != 8
            or not hmac.compare_digest(tag, expected)
            or payload[:4] != hashlib.sha256(kind.encode()).digest()[:4]
        ):
            # guess: the real errcode for a bad cursor is not documented
            raise WeComApiError(40058, "invalid cursor")
        return int.from_bytes(payload[4:], "big")


def _as_int(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise WeComApiError(40058, f"invalid {name}") from exc


class WeComState:
    """Everything the sandbox remembers, guarded by one lock (HTTP thread + test thread)."""

    def __init__(
        self,
        *,
        corp_id: str,
        secret: str,
        agent_id: int,
        token_ttl: int = 7200,
        seed: int,
        clock: Callable[[], float],
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
    ) -> None:
        self.corp_id = corp_id
        self._secret = secret
        self.agent_id = int(agent_id)
        self.token_ttl = int(token_ttl)
        self.seed = seed
        self.clock = clock
        self.legacy_app = legacy_app
        self.blocked_apis = frozenset(blocked_apis)
        self.api_limit_per_minute = api_limit_per_minute
        self.member_message_limits = tuple((float(seconds), int(limit)) for seconds, limit in member_message_limits)
        self.externalcontact_concurrency = externalcontact_concurrency
        self.message_concurrency = message_concurrency
        self.peak_in_flight: dict[str, int] = defaultdict(int)
        self.refused = 0  # requests answered 45009/45033 (over a per-API quota)
        self.lock = threading.RLock()
        self._cursors = _CursorCodec(hashlib.sha256(f"wecom-sandbox-{seed}".encode()).digest())
        self._counter = 0

        self.departments: dict[int, Json] = {}
        for dept in demo_departments():
            self.departments[dept.id] = {
                "id": dept.id, "name": dept.name, "name_en": dept.name_en,
                "department_leader": [], "parentid": dept.parentid, "order": dept.order,
            }
        self.users: dict[str, DemoUser] = {}  # key: lower-cased userid (userids are case-insensitive)
        for user in demo_directory(seed):
            self.users[user.userid.lower()] = user
            for dept_id, leads in zip(user.departments, user.is_leader_in_dept, strict=True):
                if leads:
                    self.departments[dept_id]["department_leader"].append(user.userid)
        self.unlicensed = {u.lower() for u in unlicensed_userids}
        self._visible_departments = self._subtree(visible_department_ids)

        self.contacts: dict[str, DemoExternalContact] = {}
        self.follows_by_user: dict[str, list[tuple[int, str]]] = defaultdict(list)  # userid -> (createtime, ext id)
        for contact in demo_external_contacts(seed):
            self.contacts[contact.external_userid] = contact
            for follow in contact.follows:
                self.follows_by_user[follow.userid].append((follow.createtime, contact.external_userid))
        for relations in self.follows_by_user.values():
            relations.sort()

        self._tokens: dict[str, float] = {}  # token -> expires_at (expired ones kept: 42001, not 40014)
        self._current_token: str | None = None
        # Other self-built apps of the same corp (secret -> agent id): their tokens work on
        # the directory too, but a sign-in code issued to this app is refused with them.
        self._apps: dict[str, int] = {secret: self.agent_id, **(other_apps or {})}
        self._token_agent: dict[str, int] = {}
        self._current_by_agent: dict[int, str] = {}
        self._caller_agent = self.agent_id
        self.codes = CodeBook(clock)
        self.approvals = ApprovalBook(user=lambda userid: self.users.get(userid.lower()), visible=self._visible_user,
                                      users=lambda: list(self.users.values()), clock=clock, corp_id=corp_id,
                                      agent_id=agent_id)
        self.in_app_user: str | None = None  # who "opens" links inside the app (OAuth page)
        self.trusted_domain = trusted_domain  # the app's 可信域名; None: any host
        self.gettoken_calls = 0
        self.tokens_issued = 0
        self.messages: list[SentMessage] = []
        self._messages_by_id: dict[str, SentMessage] = {}
        self._duplicate_index: dict[str, SentMessage] = {}
        self._member_deliveries: dict[str, deque[float]] = defaultdict(deque)
        self._api_minute: dict[str, tuple[int, int]] = {}  # op -> (minute, count)
        self.api_calls: dict[str, int] = defaultdict(int)
        self._in_flight: dict[str, int] = defaultdict(int)
        self.calendars: dict[str, Json] = {}
        self.schedules: dict[str, Json] = {}

    # ------------------------------------------------------------------ helpers

    def _next_id(self, prefix: str, length: int) -> str:
        self._counter += 1
        digest = hashlib.sha256(f"{self.seed}:{prefix}:{self._counter}".encode()).digest()
        return (prefix + base64.urlsafe_b64encode(digest * 3).decode("ascii").replace("=", ""))[:length]

    def _subtree(self, roots: Iterable[int]) -> frozenset[int]:
        result: set[int] = set()
        frontier = [r for r in roots if r in self.departments]
        while frontier:
            dept_id = frontier.pop()
            if dept_id in result:
                continue
            result.add(dept_id)
            frontier.extend(d for d, row in self.departments.items() if row["parentid"] == dept_id)
        return frozenset(result)

    def _visible_user(self, user: DemoUser) -> bool:
        return any(d in self._visible_departments for d in user.departments)

    def _user(self, userid: Any) -> DemoUser:
        if not isinstance(userid, str) or not userid:
            raise WeComApiError(40003, "userid missing or invalid")
        user = self.users.get(userid.lower())
        if user is None:
            raise WeComApiError(60111)
        if not self._visible_user(user):
            raise WeComApiError(60011)
        return user

    def user_json(self, user: DemoUser, *, simple: bool = False) -> Json:
        """``user/get`` / ``user/list`` row. New self-built apps (``legacy_app=False``) get no
        mobile, email, avatar, gender or address since 2022-06-20 (§1.2 directory caveats)."""
        if simple:
            return {"userid": user.userid, "name": user.name, "department": list(user.departments),
                    "open_userid": "wo" + hashlib.sha1(user.userid.encode()).hexdigest()[:28]}
        row: Json = {
            "userid": user.userid, "name": user.name, "department": list(user.departments),
            "order": [0] * len(user.departments), "position": user.position,
            "mobile": user.mobile, "gender": user.gender, "email": user.email,
            "biz_mail": user.email, "is_leader_in_dept": list(user.is_leader_in_dept),
            "direct_leader": list(user.direct_leader),
            "avatar": f"https://wework.qpic.cn/wwhead/{user.userid}/0",
            "thumb_avatar": f"https://wework.qpic.cn/wwhead/{user.userid}/100",
            "telephone": "", "alias": "", "status": user.status,
            "address": "", "open_userid": "wo" + hashlib.sha1(user.userid.encode()).hexdigest()[:28],
            "main_department": user.department_id, "extattr": {"attrs": []},
            "qr_code": f"https://open.work.weixin.qq.com/wwopen/userQRCode?vcode={user.userid}",
            "external_position": "", "external_profile": {"external_attr": []},
        }
        if not self.legacy_app:
            for key in ("mobile", "gender", "email", "biz_mail", "avatar", "thumb_avatar", "qr_code", "address"):
                row.pop(key, None)
        return row

    # ------------------------------------------------------------------ tokens

    def issue_token(self, corpid: str | None, corpsecret: str | None) -> Json:
        """``gettoken``: same token while valid (§1.1), a fresh one after expiry."""
        self.gettoken_calls += 1
        if not corpid:
            raise WeComApiError(41002)
        if not corpsecret:
            raise WeComApiError(41004)
        if corpid != self.corp_id:
            raise WeComApiError(40013)
        agent = next((a for known, a in self._apps.items() if hmac.compare_digest(corpsecret, known)), None)
        if agent is None:
            raise WeComApiError(40001)
        now = self.clock()
        current = self._current_by_agent.get(agent)
        if current is not None and self._tokens[current] > now:
            # guess: expires_in is the remaining lifetime, not a fresh 7200, on a re-fetch.
            return {"access_token": current, "expires_in": max(1, int(self._tokens[current] - now))}
        token = secrets.token_urlsafe(96)[:128]
        self._tokens[token] = now + self.token_ttl
        self._token_agent[token] = agent
        self._current_by_agent[agent] = token
        if agent == self.agent_id:
            self._current_token = token
        self.tokens_issued += 1
        for old, expires_at in list(self._tokens.items()):
            if expires_at < now - 86400:  # keep a day of expired tokens so they answer 42001
                del self._tokens[old]
        return {"access_token": token, "expires_in": self.token_ttl}

    def check_token(self, token: str | None) -> None:
        """41001 when missing, 40014 when never issued, 42001 when expired (§1.3)."""
        if not token:
            raise WeComApiError(41001)
        expires_at = self._tokens.get(token)
        if expires_at is None:
            raise WeComApiError(40014)
        if expires_at <= self.clock():
            raise WeComApiError(42001)

    def expire_all_tokens(self) -> int:
        """Invalidate every token early (the real server may, §1.1); returns how many."""
        with self.lock:
            now = self.clock()
            for token in self._tokens:
                self._tokens[token] = min(self._tokens[token], now - 1)
            self._current_token = None
            self._current_by_agent.clear()
            return len(self._tokens)

    # ------------------------------------------------------------------ dispatch

    def _concurrency_limit(self, operation: str) -> int | None:
        if operation.startswith("externalcontact/"):
            return self.externalcontact_concurrency
        if operation == "message/send":
            return self.message_concurrency
        return None

    def enter(self, operation: str) -> None:
        """Count a request against the per-API quotas; raise 45009/45033 when over.

        Per corp per API ≤ 10 000/min (§1.4), modelled as a fixed minute window. Some
        externalcontact calls allow ≈5 concurrent requests (§1.3 [3p]) → 45033; so does
        message/send past ``message_concurrency`` (guess: no number is documented).
        """
        with self.lock:
            self.api_calls[operation] += 1
            minute = int(self.clock() // 60)
            window, count = self._api_minute.get(operation, (minute, 0))
            count = count + 1 if window == minute else 1
            self._api_minute[operation] = (minute, count)
            if count > self.api_limit_per_minute:
                self.refused += 1
                raise WeComApiError(45009)
            limit = self._concurrency_limit(operation)
            if limit is not None:
                if self._in_flight[operation] >= limit:
                    self.refused += 1
                    raise WeComApiError(45033)
                self._in_flight[operation] += 1
                self.peak_in_flight[operation] = max(self.peak_in_flight[operation], self._in_flight[operation])

    def leave(self, operation: str) -> None:
        """Release the concurrency slot taken by :meth:`enter`."""
        with self.lock:
            if self._concurrency_limit(operation) is not None and self._in_flight[operation] > 0:
                self._in_flight[operation] -= 1

    def handle(self, method: str, operation: str, query: dict[str, str], body: Json | None) -> Json:
        """Run one API call and return its JSON (errcode 0) or raise :class:`WeComApiError`."""
        route = _ROUTES.get(operation)
        if route is None:
            raise KeyError(operation)
        expected_method, handler = route
        with self.lock:
            if operation == "gettoken":
                return {"errcode": 0, "errmsg": "ok", **self.issue_token(query.get("corpid"), query.get("corpsecret"))}
            self.check_token(query.get("access_token"))
            self._caller_agent = self._token_agent.get(query.get("access_token") or "", self.agent_id)
            if method != expected_method:
                raise WeComApiError(43001 if expected_method == "GET" else 43002)
            if operation in self.blocked_apis:
                # e.g. department/list from a new IP since 2022-08-15 (§1.2); exact code is a guess
                raise WeComApiError(48002)
            result = handler(self, query, body or {})
            return {"errcode": 0, "errmsg": "ok", **result}

    # ------------------------------------------------------------------ sign-in (§6)

    def issue_code(self, userid: str, agent_id: int | None = None) -> str:
        """A 网页授权 code for member ``userid`` of app ``agent_id`` (default: this app), as
        WeCom hands one to a page the member opens inside the app. KeyError for a userid
        that is no visible member."""
        with self.lock:
            user = self.users.get(userid.lower())
            if user is None or not self._visible_user(user) or user.status != 1:
                raise KeyError(userid)
            return self.codes.issue(user.userid, str(agent_id or self.agent_id))

    def authorize(self, appid: str | None, redirect_uri: str | None, agentid: str | None) -> str:
        """``connect/oauth2/authorize`` (and the web login page) for the in-app user: the URL
        to redirect to (``redirect_uri`` with ``code``; the caller appends ``state``).
        ValueError with the text WeCom's error page would show."""
        from urllib.parse import urlsplit

        if appid != self.corp_id:
            raise ValueError("appid 参数错误")  # guess: WeCom shows an error page, no redirect
        if not redirect_uri or urlsplit(redirect_uri).scheme not in ("http", "https"):
            raise ValueError("redirect_uri 参数错误")
        if self.trusted_domain and urlsplit(redirect_uri).hostname != self.trusted_domain:
            raise ValueError("redirect_uri 需使用应用可信域名")  # the doc's rule; the page text is a guess
        if self.in_app_user is None:
            raise ValueError("请在企业微信客户端打开链接")
        agent = int(agentid) if agentid and agentid.isdigit() else self.agent_id
        return self.issue_code(self.in_app_user, agent)

    def _auth_getuserinfo(self, query: dict[str, str], _body: Json) -> Json:
        """``auth/getuserinfo``: code → ``userid`` (members; §6). Every refusal is 40029."""
        try:
            userid = self.codes.redeem(query.get("code"), str(self._caller_agent))
        except CodeRefused:
            raise WeComApiError(40029) from None
        return {"userid": userid}

    def _user_getuserinfo(self, query: dict[str, str], _body: Json) -> Json:
        """The older ``user/getuserinfo`` (wechatpy's ``oauth.get_user_info``): ``UserId``, capitalised."""
        try:
            userid = self.codes.redeem(query.get("code"), str(self._caller_agent))
        except CodeRefused:
            raise WeComApiError(40029) from None
        return {"UserId": userid, "DeviceId": ""}

    # ------------------------------------------------------------------ directory

    def _department_list(self, query: dict[str, str], _body: Json) -> Json:
        return {"department": [dict(self.departments[d]) for d in self._department_ids(query.get("id"))]}

    def _department_simplelist(self, query: dict[str, str], _body: Json) -> Json:
        return {"department_id": [
            {"id": d, "parentid": self.departments[d]["parentid"], "order": self.departments[d]["order"]}
            for d in self._department_ids(query.get("id"))
        ]}

    def _department_ids(self, raw_id: str | None) -> list[int]:
        if raw_id in (None, ""):
            return sorted(self._visible_departments)
        dept_id = _as_int(raw_id, "department id")
        if dept_id not in self.departments:
            raise WeComApiError(60123)
        if dept_id not in self._visible_departments:
            raise WeComApiError(60011)
        return sorted(self._subtree([dept_id]))  # the department and all its descendants

    def _department_members(self, query: dict[str, str], simple: bool) -> Json:
        raw = query.get("department_id")
        if raw in (None, ""):
            raise WeComApiError(40058, "department_id missing")
        dept_id = _as_int(raw, "department_id")
        if dept_id not in self.departments:
            raise WeComApiError(60123)
        if dept_id not in self._visible_departments:
            raise WeComApiError(60011)
        # fetch_child is legacy (§1.2) but still honoured, as wechatpy always sends it.
        scope = self._subtree([dept_id]) if query.get("fetch_child") in ("1", "true", "True") else {dept_id}
        members = [u for u in self.users.values() if any(d in scope for d in u.departments)]
        members.sort(key=lambda u: u.userid)
        return {"userlist": [self.user_json(u, simple=simple) for u in members]}

    def _user_list(self, query: dict[str, str], _body: Json) -> Json:
        return self._department_members(query, simple=False)

    def _user_simplelist(self, query: dict[str, str], _body: Json) -> Json:
        return self._department_members(query, simple=True)

    def _user_list_id(self, _query: dict[str, str], body: Json) -> Json:
        limit = _as_int(body.get("limit", 10_000), "limit")
        if not 1 <= limit <= 10_000:
            raise WeComApiError(40058, "limit out of range 1..10000")
        offset = self._cursors.decode("list_id", str(body.get("cursor") or ""))
        rows = sorted(
            (u.userid, d) for u in self.users.values() if self._visible_user(u) for d in u.departments
        )  # one row per membership (§1.2)
        page = rows[offset:offset + limit]
        end = offset + len(page)
        return {
            "next_cursor": self._cursors.encode("list_id", end) if end < len(rows) else "",
            "dept_user": [{"userid": userid, "department": dept} for userid, dept in page],
        }

    def _user_get(self, query: dict[str, str], _body: Json) -> Json:
        return self.user_json(self._user(query.get("userid")))

    def _user_getuserid(self, _query: dict[str, str], body: Json) -> Json:
        mobile = str(body.get("mobile") or "").strip()
        if not mobile:
            raise WeComApiError(40058, "mobile missing")
        for user in self.users.values():
            if user.mobile == mobile and self._visible_user(user):
                return {"userid": user.userid}
        # Misses beyond 20 % of the seat cap block the API for a day (§1.2): not modelled.
        raise WeComApiError(46004)

    # ------------------------------------------------------------------ external contacts

    def _contact_json(self, contact: DemoExternalContact) -> Json:
        row: Json = {
            "external_userid": contact.external_userid, "name": contact.name, "type": contact.type,
            "avatar": f"https://wx.qlogo.cn/mmhead/{contact.external_userid[:12]}/0",
            "gender": contact.gender, "unionid": contact.unionid,
        }
        if contact.type == 2:  # only WeCom users carry their corp fields (§1.2)
            row.update({
                "position": contact.position, "corp_name": contact.corp_name,
                "corp_full_name": contact.corp_full_name,
                "external_profile": {"external_attr": []},
            })
        return row

    @staticmethod
    def _follow_json(follow: Any, *, bulk: bool) -> Json:
        row: Json = {
            "userid": follow.userid, "remark": follow.remark, "description": follow.description,
            "createtime": follow.createtime, "remark_corp_name": follow.remark_corp_name,
            "remark_mobiles": list(follow.remark_mobiles), "add_way": follow.add_way,
            "oper_userid": follow.userid,
        }
        if follow.state:
            row["state"] = follow.state
        if bulk:  # batch/get_by_user's follow_info carries tag ids only (§1.2)
            row["tag_id"] = [tag_id for _, _, tag_id in follow.tags]
        else:
            row["tags"] = [
                {"group_name": group, "tag_name": name, "tag_id": tag_id, "type": 1}
                for group, name, tag_id in follow.tags
            ]
        return row

    def _follow_users(self) -> list[str]:
        return sorted(
            self.users[u.lower()].userid for u in self.follows_by_user
            if u.lower() in self.users and self._visible_user(self.users[u.lower()])
        )

    def _get_follow_user_list(self, _query: dict[str, str], _body: Json) -> Json:
        return {"follow_user": self._follow_users()}

    def _externalcontact_list(self, query: dict[str, str], _body: Json) -> Json:
        user = self._user(query.get("userid"))
        relations = self.follows_by_user.get(user.userid, [])
        if not relations:
            raise WeComApiError(84061)  # guess: a member without customers answers 84061
        return {"external_userid": [ext for _, ext in relations]}

    def _externalcontact_get(self, query: dict[str, str], _body: Json) -> Json:
        contact = self.contacts.get(query.get("external_userid") or "")
        if contact is None:
            raise WeComApiError(40096)
        offset = self._cursors.decode("follow:" + contact.external_userid, query.get("cursor") or "")
        follows = [
            f for f in contact.follows
            if f.userid.lower() in self.users and self._visible_user(self.users[f.userid.lower()])
        ]
        page = follows[offset:offset + FOLLOW_USER_PAGE]
        end = offset + len(page)
        return {
            "external_contact": self._contact_json(contact),
            "follow_user": [self._follow_json(f, bulk=False) for f in page],
            "next_cursor": self._cursors.encode("follow:" + contact.external_userid, end) if end < len(follows) else "",
        }

    def _batch_get_by_user(self, _query: dict[str, str], body: Json) -> Json:
        # Accept the documented userid_list and the single userid wechatpy 2.x sends (§1.6).
        userids = body.get("userid_list")
        if userids is None and body.get("userid"):
            userids = [body["userid"]]
        if not isinstance(userids, list) or not userids or len(userids) > 100:
            raise WeComApiError(40058, "userid_list must hold 1..100 userids")
        limit = _as_int(body.get("limit", 50), "limit")
        if not 1 <= limit <= 100:
            raise WeComApiError(40058, "limit out of range 1..100")
        scope = hashlib.sha1("|".join(map(str, userids)).encode()).hexdigest()[:8]
        offset = self._cursors.decode("batch:" + scope, str(body.get("cursor") or ""))
        rows: list[tuple[str, DemoExternalContact]] = []
        for raw_userid in userids:
            user = self.users.get(str(raw_userid).lower())
            if user is None or not self._visible_user(user):
                continue  # guess: unknown or invisible members contribute no rows
            rows.extend((user.userid, self.contacts[ext]) for _, ext in self.follows_by_user.get(user.userid, []))
        page = rows[offset:offset + limit]
        end = offset + len(page)
        items = []
        for userid, contact in page:
            follow = next(f for f in contact.follows if f.userid == userid)
            items.append({"external_contact": self._contact_json(contact), "follow_info": self._follow_json(follow, bulk=True)})
        return {
            "external_contact_list": items,
            "next_cursor": self._cursors.encode("batch:" + scope, end) if end < len(rows) else "",
        }

    # ------------------------------------------------------------------ messages

    def _send(self, _query: dict[str, str], body: Json) -> Json:
        now = self.clock()
        agentid = _as_int(body.get("agentid"), "agentid")
        if agentid != self.agent_id:
            raise WeComApiError(40056)
        msgtype = body.get("msgtype")
        if msgtype not in MESSAGE_TYPES:
            raise WeComApiError(40008)
        content = body.get(msgtype)
        if not isinstance(content, dict):
            raise WeComApiError(40058, f"{msgtype} body missing")
        content, truncated = self._validate_content(msgtype, dict(content))

        duplicate_key = None
        interval = None
        if _as_int(body.get("enable_duplicate_check", 0), "enable_duplicate_check") == 1:
            interval = _as_int(body.get("duplicate_check_interval", DEFAULT_DUPLICATE_CHECK_INTERVAL),
                               "duplicate_check_interval")
            if not 0 < interval <= MAX_DUPLICATE_CHECK_INTERVAL:
                raise WeComApiError(40058, "duplicate_check_interval out of range")  # guess: code
            # "同样内容(请求json)的消息" — the whole request JSON is the identity (send doc).
            if len(self._duplicate_index) > 10_000:  # nothing older than the 4 h maximum can match
                horizon = now - MAX_DUPLICATE_CHECK_INTERVAL
                self._duplicate_index = {k: m for k, m in self._duplicate_index.items() if m.sent_at >= horizon}
            duplicate_key = hashlib.sha256(
                json.dumps(body, sort_keys=True, ensure_ascii=False).encode("utf-8")
            ).hexdigest()
            earlier = self._duplicate_index.get(duplicate_key)
            if earlier is not None and now - earlier.sent_at < interval:
                # guess: the real reply to a suppressed twin is undocumented. We answer like the
                # original send (errcode 0, same msgid and invalid lists) and deliver nothing.
                earlier.duplicates_suppressed += 1
                return self._send_reply(earlier)

        requested, valid, invalid, unlicensed = self._resolve_recipients(body)
        if not valid:
            # 81013 still lists invaliduser in the body (§1.2); a real reply even carries a msgid.
            raise WeComApiError(81013, extra={
                "invaliduser": "|".join(invalid), "invalidparty": "", "invalidtag": "",
                "unlicenseduser": "|".join(unlicensed), "msgid": self._next_id("", 86),
            })
        delivered, dropped = [], []
        for userid in valid:
            if self._within_member_limits(userid, now):
                delivered.append(userid)
            else:
                dropped.append(userid)  # §1.4: excess is silently dropped, no error
        message = SentMessage(
            msgid=self._next_id("", 86), agentid=agentid, msgtype=msgtype, content=content,
            requested=requested, delivered_to=delivered, dropped_for=dropped, invalid_users=invalid,
            unlicensed_users=unlicensed, sent_at=now, body_hash=duplicate_key or "",
            duplicate_check_interval=interval, truncated=truncated,
        )
        self.messages.append(message)
        self._messages_by_id[message.msgid] = message
        if duplicate_key is not None:
            self._duplicate_index[duplicate_key] = message
        reply = self._send_reply(message)
        if msgtype == "template_card" and content.get("card_type") in _INTERACTIVE_CARDS:
            reply["response_code"] = self._next_id("rc", 40)
        return reply

    @staticmethod
    def _send_reply(message: SentMessage) -> Json:
        # guess: all four lists are always present (empty strings when nothing is invalid).
        return {
            "invaliduser": "|".join(message.invalid_users), "invalidparty": "", "invalidtag": "",
            "unlicenseduser": "|".join(message.unlicensed_users), "msgid": message.msgid,
        }

    def _resolve_recipients(self, body: Json) -> tuple[list[str], list[str], list[str], list[str]]:
        touser = str(body.get("touser") or "")
        toparty = str(body.get("toparty") or "")
        requested = [u.strip() for u in touser.split("|") if u.strip()]
        if len(requested) > MAX_TOUSER:
            raise WeComApiError(40058, "touser exceeds 1000")  # guess: the doc's 40032 may apply
        candidates: list[DemoUser | str] = []
        if requested == ["@all"]:
            candidates.extend(u for u in self.users.values() if self._visible_user(u))
        else:
            for raw in requested:
                user = self.users.get(raw.lower())  # userids are case-insensitive (user/get doc)
                candidates.append(user if user is not None else raw)
        for raw_party in (p.strip() for p in toparty.split("|") if p.strip()):
            if raw_party.isdigit() and int(raw_party) in self._visible_departments:
                candidates.extend(u for u in self.users.values() if int(raw_party) in u.departments)
        valid: list[str] = []
        invalid: list[str] = []
        unlicensed: list[str] = []
        for candidate in candidates:
            if isinstance(candidate, str) or not self._visible_user(candidate) or candidate.status == 2:
                # invaliduser is lower-cased (§1.2); disabled members count as invalid (guess)
                label = (candidate if isinstance(candidate, str) else candidate.userid).lower()
                if label not in invalid:
                    invalid.append(label)
            elif candidate.userid.lower() in self.unlicensed:
                # "unlicenseduser: 没有基础接口许可(包含已过期)的userid"; not delivered (guess)
                if candidate.userid not in unlicensed:
                    unlicensed.append(candidate.userid)
            elif candidate.userid not in valid:
                valid.append(candidate.userid)
        return requested, valid, invalid, unlicensed

    def _within_member_limits(self, userid: str, now: float) -> bool:
        """≤30/min and ≤1000/h per app per member (§1.4: ``member_message_limits``, sliding
        windows); only deliveries count (guess)."""
        history = self._member_deliveries[userid]
        horizon = max((seconds for seconds, _ in self.member_message_limits), default=0.0)
        while history and history[0] <= now - horizon:
            history.popleft()
        for seconds, limit in self.member_message_limits:
            if sum(1 for t in history if t > now - seconds) >= limit:
                return False
        history.append(now)
        return True

    def _validate_content(self, msgtype: str, content: Json) -> tuple[Json, list[str]]:
        truncated: list[str] = []

        def cap(key: str, limit: int) -> None:
            value = str(content.get(key) or "")
            cut = truncate_utf8(value, limit)
            if cut != value:
                truncated.append(f"{msgtype}.{key}")  # the doc says over-long text is cut, not refused
            content[key] = cut

        if msgtype in ("text", "markdown"):
            if not str(content.get("content") or "").strip():
                raise WeComApiError(40058, "content empty")  # guess: code
            cap("content", TEXT_MAX_BYTES)
        elif msgtype == "textcard":
            for key in ("title", "description", "url"):
                if not str(content.get(key) or "").strip():
                    raise WeComApiError(40058, f"textcard.{key} missing")  # guess: code
            cap("title", TEXTCARD_TITLE_MAX_BYTES)
            cap("description", TEXTCARD_DESCRIPTION_MAX_BYTES)
        else:
            card_type = content.get("card_type")
            if card_type not in ("text_notice", "news_notice", *_INTERACTIVE_CARDS):
                raise WeComApiError(40058, "invalid card_type")
            task_id = content.get("task_id")
            if task_id is not None and len(str(task_id).encode("utf-8")) > TASK_ID_MAX_BYTES:
                raise WeComApiError(40058, "task_id longer than 128 bytes")
            if card_type in _INTERACTIVE_CARDS and not task_id:
                raise WeComApiError(40058, "task_id required")
            if card_type in ("text_notice", "news_notice"):
                action = content.get("card_action")
                if not isinstance(action, dict) or action.get("type") not in (1, 2):
                    raise WeComApiError(40058, "card_action required")  # mandatory for text_notice (§1.2)
                if action.get("type") == 1 and not action.get("url"):
                    raise WeComApiError(40058, "card_action.url required")
                title = (content.get("main_title") or {}).get("title")
                if card_type == "text_notice" and not title and not content.get("sub_title_text"):
                    raise WeComApiError(40058, "main_title.title or sub_title_text required")  # guess
        return content, truncated

    def _recall(self, _query: dict[str, str], body: Json) -> Json:
        message = self._messages_by_id.get(str(body.get("msgid") or ""))
        if message is None:
            raise WeComApiError(40058, "invalid msgid")  # guess: code
        message.recalled = True
        return {}

    # ------------------------------------------------------------------ calendar and schedule

    def _calendar_add(self, _query: dict[str, str], body: Json) -> Json:
        calendar = body.get("calendar")
        if not isinstance(calendar, dict) or not calendar.get("summary"):
            raise WeComApiError(40058, "calendar.summary missing")
        organizer = self._user(calendar.get("organizer"))
        for share in calendar.get("shares") or []:
            self._user((share or {}).get("userid"))
        cal_id = self._next_id("wc", 32)
        self.calendars[cal_id] = {**calendar, "organizer": organizer.userid, "cal_id": cal_id}
        return {"cal_id": cal_id}

    def _schedule_fields(self, schedule: Any, *, partial: bool) -> Json:
        if not isinstance(schedule, dict):
            raise WeComApiError(40058, "schedule missing")
        out = dict(schedule)
        if not partial or "start_time" in schedule or "end_time" in schedule:
            start = _as_int(schedule.get("start_time"), "start_time")
            end = _as_int(schedule.get("end_time"), "end_time")
            if end <= start:
                raise WeComApiError(40058, "end_time must be after start_time")  # guess: code
        if schedule.get("organizer"):
            out["organizer"] = self._user(schedule["organizer"]).userid
        attendees = []
        for attendee in schedule.get("attendees") or []:
            attendees.append({"userid": self._user((attendee or {}).get("userid")).userid, "response_status": 0})
        out["attendees"] = attendees
        reminders = schedule.get("reminders") or {}
        before = reminders.get("remind_before_event_secs")
        if before is not None and _as_int(before, "remind_before_event_secs") not in REMIND_BEFORE_CHOICES:
            raise WeComApiError(40058, "remind_before_event_secs not allowed")
        cal_id = schedule.get("cal_id")
        if cal_id and cal_id not in self.calendars:
            raise WeComApiError(40058, "invalid cal_id")
        return out

    def _schedule_add(self, _query: dict[str, str], body: Json) -> Json:
        schedule = self._schedule_fields(body.get("schedule"), partial=False)
        schedule_id = self._next_id("", 32)
        self.schedules[schedule_id] = {**schedule, "schedule_id": schedule_id, "sequence": 1}
        return {"schedule_id": schedule_id}

    def _schedule_update(self, _query: dict[str, str], body: Json) -> Json:
        schedule = body.get("schedule") or {}
        existing = self.schedules.get(str(schedule.get("schedule_id") or ""))
        if existing is None:
            raise WeComApiError(40058, "invalid schedule_id")
        merged = {**existing, **self._schedule_fields({**existing, **schedule}, partial=False)}
        merged["sequence"] = existing["sequence"] + 1
        self.schedules[existing["schedule_id"]] = merged
        return {}

    def _schedule_get(self, _query: dict[str, str], body: Json) -> Json:
        ids = body.get("schedule_id_list")
        if not isinstance(ids, list) or not ids:
            raise WeComApiError(40058, "schedule_id_list missing")
        return {"schedule_list": [self.schedules[i] for i in ids if i in self.schedules]}

    def _schedule_del(self, _query: dict[str, str], body: Json) -> Json:
        if self.schedules.pop(str(body.get("schedule_id") or ""), None) is None:
            raise WeComApiError(40058, "invalid schedule_id")
        return {}

    # ------------------------------------------------------------------ admin views

    def message_log(self, touser: str | None = None) -> list[Json]:
        """Accepted messages, optionally only those addressed (delivered or dropped) to ``touser``."""
        with self.lock:
            if touser is None:
                return [m.as_json() for m in self.messages]
            return [
                m.as_json(for_user=touser) for m in self.messages
                if touser in m.delivered_to or touser in m.dropped_for
            ]

    def summary(self) -> Json:
        """Counts for the admin endpoint and the demo."""
        with self.lock:
            return {
                "corp_id": self.corp_id, "agent_id": self.agent_id,
                "departments": len(self.departments), "users": len(self.users),
                "external_contacts": len(self.contacts), "follow_users": len(self._follow_users()),
                "tokens_issued": self.tokens_issued, "gettoken_calls": self.gettoken_calls,
                "messages": len(self.messages),
                "deliveries": sum(len(m.delivered_to) for m in self.messages),
                "dropped": sum(len(m.dropped_for) for m in self.messages),
                "duplicates_suppressed": sum(m.duplicates_suppressed for m in self.messages),
                "calendars": len(self.calendars), "schedules": len(self.schedules),
                "signin_codes": self.codes.summary(),
                "api_calls": dict(self.api_calls),
                "peak_in_flight": dict(self.peak_in_flight), "refused": self.refused,
            }


_Handler = Callable[[WeComState, dict[str, str], Json], Json]


def _approval_call(operation: Callable[[ApprovalBook, Json], Json]) -> _Handler:
    """An ``oa/*`` approval route: the book's answer, or its refusal as a WeCom errcode."""
    def handler(state: WeComState, _query: dict[str, str], body: Json) -> Json:
        try:
            return operation(state.approvals, body)
        except ApprovalRefused as exc:
            raise WeComApiError(exc.errcode, exc.detail) from None
    return handler

# operation (path under /cgi-bin/) -> (HTTP method, handler); keys exactly as §1.2.
_ROUTES: dict[str, tuple[str, _Handler]] = {
    "gettoken": ("GET", lambda s, q, b: {}),  # handled before the token check
    "auth/getuserinfo": ("GET", WeComState._auth_getuserinfo),
    "user/getuserinfo": ("GET", WeComState._user_getuserinfo),
    "message/send": ("POST", WeComState._send),
    "message/recall": ("POST", WeComState._recall),
    "department/list": ("GET", WeComState._department_list),
    "department/simplelist": ("GET", WeComState._department_simplelist),
    "user/list": ("GET", WeComState._user_list),
    "user/simplelist": ("GET", WeComState._user_simplelist),
    "user/list_id": ("POST", WeComState._user_list_id),
    "user/get": ("GET", WeComState._user_get),
    "user/getuserid": ("POST", WeComState._user_getuserid),
    "externalcontact/get_follow_user_list": ("GET", WeComState._get_follow_user_list),
    "externalcontact/list": ("GET", WeComState._externalcontact_list),
    "externalcontact/get": ("GET", WeComState._externalcontact_get),
    "externalcontact/batch/get_by_user": ("POST", WeComState._batch_get_by_user),
    "oa/calendar/add": ("POST", WeComState._calendar_add),
    "oa/schedule/add": ("POST", WeComState._schedule_add),
    "oa/schedule/update": ("POST", WeComState._schedule_update),
    "oa/schedule/get": ("POST", WeComState._schedule_get),
    "oa/schedule/del": ("POST", WeComState._schedule_del),
    "oa/gettemplatedetail": ("POST", _approval_call(ApprovalBook.template_detail)),
    "oa/applyevent": ("POST", _approval_call(ApprovalBook.apply)),
    "oa/getapprovalinfo": ("POST", _approval_call(ApprovalBook.info)),
    "oa/getapprovaldetail": ("POST", _approval_call(ApprovalBook.detail)),
}

OPERATIONS = frozenset(_ROUTES)

__all__ = [
    "DEFAULT_DUPLICATE_CHECK_INTERVAL",
    "ERRMSG",
    "MAX_DUPLICATE_CHECK_INTERVAL",
    "OPERATIONS",
    "SentMessage",
    "WeComApiError",
    "WeComState",
    "truncate_utf8",
]
