"""Pure mappings between WeCom records and the hub's canonical records. No I/O.

Inbound:

- :func:`map_directory_user` — a ``user/get`` / ``user/list`` member → ``InternalUserRecord``
  (external id = userid). The manager comes from ``direct_leader`` when WeCom has it,
  else from the ``department_leader`` of the member's main department (walking up when
  the member leads it). Department names and leaders are not part of a user object: the
  ``directory`` stream attaches them under :data:`DEPARTMENTS_KEY`.
- :func:`map_external_contact` — a customer contact (``batch/get_by_user`` row
  ``{external_contact, follow_info}`` or ``externalcontact/get`` reply ``{external_contact,
  follow_user: [...]}``) → ``ContactRecord`` (external id = external_userid; owner = the
  follow user).

Malformed input (a number or an object where text is expected, a string where a list is, odd
Unicode, text too long for its column) becomes a :class:`MappingError` naming the field;
nothing else is raised for bad data, since the engine treats any other exception as a bug.

Outbound: :func:`build_reminder_card` renders a CRM to-do reminder as a ``message/send``
body (``template_card`` text_notice or ``textcard``) within the documented limits: textcard
title ≤128 bytes and description ≤512 bytes (reference/messaging-apis.md §1.2; longer text
is cut by WeCom — we cut first, on a UTF-8 boundary, so the cut is ours and readable);
template_card ``task_id`` ≤128 bytes and ``card_action`` mandatory for text_notice (§1.2).
The template-card character suggestions (main title ≤36, desc ≤44, sub_title_text ≤160,
keyname ≤5, value ≤26 characters) come from the send doc as quoted in binarywang/WxJava
``WxCpMessage.java`` and several SDKs; the textcard ``<div class="gray|normal|highlight">``
markup and the 4-character ``btntxt`` from the same doc as quoted in wechatpy's
``send_text_card`` docstring.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from zoneinfo import ZoneInfo

from canonical_model.records import ContactRecord, InternalUserRecord, MappingError, build
from canonical_model.storable import shown

SYSTEM = "wecom"
SHANGHAI = ZoneInfo("Asia/Shanghai")
# Added by connectors.wecom.streams to each directory record: {dept_id (str): {"name",
# "parentid", "department_leader"}}. Not a WeCom field.
DEPARTMENTS_KEY = "_hub_departments"

# WeCom member status: 1 active, 2 disabled, 4 not yet activated, 5 left the corp
# (user/get doc). Disabled and departed members are not active employees.
_INACTIVE_STATUSES = frozenset({2, 5})

TEXTCARD_TITLE_MAX_BYTES = 128
TEXTCARD_DESCRIPTION_MAX_BYTES = 512
TASK_ID_MAX_BYTES = 128
BTNTXT = "客户档案"  # ≤4 characters
_WEEKDAYS = "一二三四五六日"


# ---------------------------------------------------------------------- helpers


def truncate_utf8(text: str, max_bytes: int, *, ellipsis: str = "…") -> str:
    """Cut ``text`` to at most ``max_bytes`` UTF-8 bytes on a character boundary, ending
    with ``ellipsis`` when something was cut."""
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text
    budget = max_bytes - len(ellipsis.encode("utf-8"))
    if budget <= 0:
        return raw[:max_bytes].decode("utf-8", errors="ignore")
    return raw[:budget].decode("utf-8", errors="ignore") + ellipsis


def truncate_chars(text: str, max_chars: int, *, ellipsis: str = "…") -> str:
    """Cut ``text`` to ``max_chars`` characters (the unit of WeCom's card suggestions)."""
    if len(text) <= max_chars:
        return text
    return text[: max(0, max_chars - len(ellipsis))] + ellipsis


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _field(raw: Mapping[str, Any], key: str) -> str:
    """Text field ``key`` of a WeCom object, stripped ("" when absent); MappingError when it
    holds anything but text."""
    value = raw.get(key)
    if value is None or isinstance(value, str):
        return _text(value)
    raise MappingError(f"{key}: expected text, got {shown(value)}")


def _list(raw: Mapping[str, Any], key: str) -> list[Any]:
    """List field ``key`` ([] when absent); MappingError when it holds anything else."""
    value = raw.get(key)
    if value is None:
        return []
    if isinstance(value, list):
        return value
    raise MappingError(f"{key}: expected a list, got {shown(value)}")


def _object(value: Any, what: str) -> Mapping[str, Any]:
    if isinstance(value, Mapping):
        return value
    raise MappingError(f"{what}: expected an object, got {shown(value)}")


def normalize_mobile(value: Any) -> str | None:
    """Mainland mobiles as 11 digits (``+86 138-0000-0000`` → ``13800000000``); other
    numbers keep their digits and leading ``+``; empty → None."""
    text = _text(value)
    if not text:
        return None
    compact = re.sub(r"[\s\-()]", "", text)
    match = re.fullmatch(r"(?:\+?86)?(1\d{10})", compact)
    if match:
        return match.group(1)
    return compact or None


# ---------------------------------------------------------------------- directory


def _departments(raw: Mapping[str, Any]) -> dict[int, Mapping[str, Any]]:
    index = _object(raw.get(DEPARTMENTS_KEY) or {}, DEPARTMENTS_KEY)
    out: dict[int, Mapping[str, Any]] = {}
    for key, value in index.items():
        if isinstance(key, str) and key.isdecimal() and len(key) <= 18 and isinstance(value, Mapping):
            out[int(key)] = value
    return out


def _manager_from_departments(userid: str, main_department: int | None, departments: dict[int, Mapping[str, Any]]) -> str | None:
    """Leader of the main department; if the member leads it, the parent's leader, upwards."""
    dept_id = main_department
    seen: set[int] = set()
    while dept_id is not None and dept_id in departments and dept_id not in seen:
        seen.add(dept_id)
        listed = departments[dept_id].get("department_leader")
        leaders = [u for u in listed if isinstance(u, str) and u.strip()] if isinstance(listed, list) else []
        others = [u.strip() for u in leaders if u.strip().lower() != userid.lower()]
        if others:
            return others[0]
        parent = departments[dept_id].get("parentid")
        dept_id = int(parent) if isinstance(parent, int) and parent > 0 else None
    return None


def map_directory_user(raw: Mapping[str, Any]) -> InternalUserRecord:
    """WeCom member → ``InternalUserRecord``; raises :class:`MappingError` without userid or name."""
    raw = _object(raw, "member")
    userid = _field(raw, "userid")
    if not userid:
        raise MappingError("userid: member has no userid")
    name = _field(raw, "name")
    if not name:
        raise MappingError(f"name: member {userid} has no name")
    departments = _departments(raw)
    member_of = [d for d in _list(raw, "department") if isinstance(d, int) and not isinstance(d, bool)]
    main = raw.get("main_department")
    main_department = main if isinstance(main, int) and not isinstance(main, bool) and main > 0 else (
        member_of[0] if member_of else None)
    department_name = None
    if main_department is not None and main_department in departments:
        department_name = _text(departments[main_department].get("name")) or None

    direct = [u.strip() for u in _list(raw, "direct_leader")
              if isinstance(u, str) and u.strip() and u.strip().lower() != userid.lower()]
    manager = direct[0] if direct else _manager_from_departments(userid, main_department, departments)

    email = _field(raw, "email") or _field(raw, "biz_mail") or None
    status = raw.get("status")
    mobile = raw.get("mobile")
    if mobile is not None and not isinstance(mobile, str):
        raise MappingError(f"mobile: expected text, got {shown(mobile)}")
    return build(
        InternalUserRecord,
        source_system=SYSTEM,
        source_object="user",
        external_id=userid,
        name=name,
        mobile=normalize_mobile(raw.get("mobile")),
        email=email,
        department=department_name,
        title=_field(raw, "position") or None,
        manager_ref=manager,
        wecom_userid=userid,
        active=not (isinstance(status, int) and status in _INACTIVE_STATUSES),
        employee_number=employee_number(raw),
    )


# WeCom members have no standard employee-number (工号) field (``user/get``, developer.work.weixin.qq.com
# /document/path/90196): tenants that keep one add a custom text attribute under ``extattr.attrs``
# ({"type": 0, "name": ..., "text": {"value": ...}}). Which name they give it is a guess: these.
EMPLOYEE_NUMBER_ATTRS = ("工号", "员工工号", "员工编号", "employee_number", "Employee ID")


def employee_number(raw: Mapping[str, Any]) -> str | None:
    """The member's 工号 from a custom text attribute named as in :data:`EMPLOYEE_NUMBER_ATTRS`, or None."""
    extattr = raw.get("extattr")
    attrs = extattr.get("attrs") if isinstance(extattr, Mapping) else None
    for attr in attrs if isinstance(attrs, list) else []:
        if not isinstance(attr, Mapping) or attr.get("name") not in EMPLOYEE_NUMBER_ATTRS:
            continue
        text = attr.get("text")
        value = text.get("value") if isinstance(text, Mapping) else attr.get("value")
        if isinstance(value, str) and value.strip():
            return value.strip()[:64]
    return None


# ---------------------------------------------------------------------- external contacts


def _follow_of(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    """The follow relation of a bulk row, or the earliest follow user of a detail reply."""
    follow_info = raw.get("follow_info")
    if isinstance(follow_info, Mapping):
        return follow_info
    if follow_info is not None:
        raise MappingError(f"follow_info: expected an object, got {shown(follow_info)}")
    follow_users = [f for f in _list(raw, "follow_user") if isinstance(f, Mapping)]
    if not follow_users:
        return {}
    return min(follow_users, key=lambda f: (_createtime(f), str(f.get("userid") or "")[:100]))


def _createtime(follow: Mapping[str, Any]) -> int:
    """When the rep added the contact (Unix seconds); unknown ones sort last."""
    value = follow.get("createtime")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdecimal() and len(value.strip()) <= 12:
        return int(value.strip())
    return 2**63


def map_external_contact(raw: Mapping[str, Any]) -> ContactRecord:
    """WeCom external contact (+ its follow relation) → ``ContactRecord``.

    Name: the WeChat/WeCom name, else the rep's remark for the contact; neither → MappingError.
    Company: ``corp_full_name``, else ``corp_name`` (WeCom users of another corp), else the
    rep's ``remark_corp_name`` (personal WeChat users carry no corp fields, §1.2).
    Mobile: first of the rep's ``remark_mobiles``. Owner: the following rep's userid.
    """
    raw = _object(raw, "record")
    contact = raw.get("external_contact")
    if not isinstance(contact, Mapping):
        raise MappingError("external_contact: record has no external_contact object")
    external_userid = _field(contact, "external_userid")
    if not external_userid:
        raise MappingError("external_userid: external contact has no external_userid")
    follow = _follow_of(raw)
    name = _field(contact, "name") or _field(follow, "remark")
    if not name:
        raise MappingError(f"name: external contact {external_userid} has no usable name (blank nickname, no remark)")
    corp_name = (
        _field(contact, "corp_full_name") or _field(contact, "corp_name")
        or _field(follow, "remark_corp_name") or None
    )
    mobiles = [m for m in (normalize_mobile(x) for x in _list(follow, "remark_mobiles")) if m]
    return build(
        ContactRecord,
        source_system=SYSTEM,
        source_object="external_contact",
        external_id=external_userid,
        name=name,
        title=_field(contact, "position") or None,
        mobile=mobiles[0] if mobiles else None,
        corp_name=corp_name,
        owner_ref=_field(follow, "userid") or None,
        wecom_external_userid=external_userid,
    )


# ---------------------------------------------------------------------- reminders


@dataclass(frozen=True)
class ReminderTask:
    """The CRM to-do a reminder is about, as the hub core hands it over."""

    task_id: int | str
    title: str
    customer_name: str
    due_at: dt.datetime  # timezone-aware
    assignee_name: str | None = None


# kind -> (heading, short line under it). Unknown kinds get a neutral heading.
REMINDER_KINDS: dict[str, tuple[str, str]] = {
    "due": ("待办即将到期", "请在截止时间前完成跟进"),
    "overdue": ("待办已逾期", "已超过截止时间，请尽快处理"),
    "overdue_manager": ("下属待办已逾期", "您团队成员的待办已逾期，请关注"),
    "uncontacted_24h": ("新客户24小时未跟进", "新分配的客户超过24小时未联系"),
    "lead_assigned": ("新线索待首次跟进", "新分配给您的线索，请在截止时间前首次跟进"),
}
_DEFAULT_KIND = ("CRM待办提醒", "请查看客户档案")


def format_due(due_at: dt.datetime) -> str:
    """Due time as salespeople read it: Asia/Shanghai, ``2024-05-08 15:00（周三）``."""
    if due_at.tzinfo is None:
        raise ValueError("due_at must be timezone-aware")
    local = due_at.astimezone(SHANGHAI)
    return f"{local:%Y-%m-%d %H:%M}（周{_WEEKDAYS[local.weekday()]}）"


def card_task_id(task_id: int | str, kind: str, due_at: dt.datetime) -> str:
    """template_card ``task_id``: ASCII, ≤128 bytes, distinct per (task, kind, due time).

    WeCom wants it unique per app (§1.2), so a second reminder for the same task (another
    kind, or a rescheduled due time) needs another id; an exact resend keeps the same one,
    which WeCom's duplicate check relies on (the request JSON must be identical).
    """
    safe_kind = re.sub(r"[^A-Za-z0-9_]", "", kind)[:32] or "reminder"
    safe_task = re.sub(r"[^A-Za-z0-9_\-]", "", str(task_id))
    candidate = f"crm-{safe_task}-{safe_kind}-{due_at.astimezone(dt.UTC):%Y%m%d%H%M}"
    if len(candidate.encode("ascii")) <= TASK_ID_MAX_BYTES and safe_task:
        return candidate
    digest = hashlib.sha256(f"{task_id}|{kind}|{due_at.isoformat()}".encode()).hexdigest()[:40]
    return f"crm-{digest}"


def _fit_escaped(text: str, budget: int) -> str:
    """Longest prefix of ``text`` (plus … when cut) whose HTML-escaped UTF-8 form fits ``budget``."""
    if len(html.escape(text).encode("utf-8")) <= budget:
        return html.escape(text)
    low, high = 0, len(text)
    while low < high:  # binary search on the character count
        mid = (low + high + 1) // 2
        if len(html.escape(text[:mid] + "…").encode("utf-8")) <= budget:
            low = mid
        else:
            high = mid - 1
    return html.escape(text[:low] + "…") if low else ""


def _textcard(task: ReminderTask, heading: str, line: str, profile_url: str) -> dict[str, Any]:
    title = truncate_utf8(f"{heading}｜{task.title.strip()}", TEXTCARD_TITLE_MAX_BYTES)
    head = f'<div class="gray">截止 {format_due(task.due_at)}</div>'
    tail = f'<div class="normal">客户：{html.escape(truncate_utf8(task.customer_name.strip(), 150))}</div>'
    if task.assignee_name:
        tail += f'<div class="normal">负责人：{html.escape(truncate_utf8(task.assignee_name.strip(), 60))}</div>'
    tail += f'<div class="gray">{line}</div>'
    # The task title gets whatever the fixed parts leave of the 512 bytes.
    budget = TEXTCARD_DESCRIPTION_MAX_BYTES - len((head + '<div class="highlight"></div>' + tail).encode("utf-8"))
    description = head + f'<div class="highlight">{_fit_escaped(task.title.strip(), budget)}</div>' + tail
    return {"msgtype": "textcard", "textcard": {
        "title": title, "description": description, "url": profile_url, "btntxt": BTNTXT,
    }}


def _template_card(task: ReminderTask, kind: str, heading: str, line: str, profile_url: str) -> dict[str, Any]:
    horizontal = [
        {"keyname": "客户", "value": truncate_chars(task.customer_name.strip(), 26)},
        {"keyname": "截止", "value": format_due(task.due_at)},
    ]
    if task.assignee_name:
        horizontal.append({"keyname": "负责人", "value": truncate_chars(task.assignee_name.strip(), 26)})
    return {"msgtype": "template_card", "template_card": {
        "card_type": "text_notice",
        "source": {"desc": "CRM"},
        "main_title": {"title": truncate_chars(heading, 36), "desc": truncate_chars(line, 44)},
        "sub_title_text": truncate_chars(task.title.strip(), 160),
        "horizontal_content_list": horizontal,
        "card_action": {"type": 1, "url": profile_url},
        "task_id": card_task_id(task.task_id, kind, task.due_at),
    }}


def build_reminder_card(
    task: ReminderTask,
    *,
    profile_url: str,
    kind: str,
    msgtype: Literal["template_card", "textcard"] = "template_card",
) -> dict[str, Any]:
    """A ``message/send`` body (msgtype + content) reminding a salesperson (or, for
    ``overdue_manager``, their manager) of a CRM to-do, linking to the hub's customer profile.

    The result is deterministic for the same inputs — a retry must resend byte-identical
    JSON for WeCom's duplicate check to recognise it, so build once and store it in the
    outbox payload.
    """
    if not task.title.strip():
        raise ValueError("task title is empty")
    if not task.customer_name.strip():
        raise ValueError("customer name is empty")
    if not re.match(r"^https?://", profile_url):
        raise ValueError("profile_url must be an http(s) URL")
    heading, line = REMINDER_KINDS.get(kind, _DEFAULT_KIND)
    format_due(task.due_at)  # validates awareness before building anything
    if msgtype == "textcard":
        return _textcard(task, heading, line, profile_url)
    if msgtype == "template_card":
        return _template_card(task, kind, heading, line, profile_url)
    raise ValueError(f"unsupported msgtype {msgtype!r}")


__all__ = [
    "DEPARTMENTS_KEY",
    "REMINDER_KINDS",
    "SHANGHAI",
    "SYSTEM",
    "ReminderTask",
    "build_reminder_card",
    "card_task_id",
    "format_due",
    "map_directory_user",
    "map_external_contact",
    "normalize_mobile",
    "truncate_chars",
    "truncate_utf8",
]
