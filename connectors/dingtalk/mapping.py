"""Pure DingTalk ⇄ canonical mapping: directory members, completed to-dos, work notices, to-dos.

No I/O. Inbound, each function takes one raw record as :mod:`connectors.dingtalk.streams`
hands it over and returns a canonical record or raises :class:`MappingError` with a
reason a person can act on. Outbound, it builds DingTalk request bodies from the hub's
channel-neutral payloads; a body is built once (at enqueue time) and resent unchanged.

Field names follow the wire format (reference/messaging-apis.md §2.2, "§" below):
``topapi/v2/user/list`` rows (``userid, unionid, name, mobile, email, title, dept_id_list,
leader, manager_userid, active``), v1.0 to-do cards (``taskId, sourceId, isDone,
modifiedTime``) and to-dos (``id, done, finishTime, modifierId, executorIds``); times in
milliseconds since the epoch.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from canonical_model.records import InternalUserRecord, MappingError, TaskCompletionRecord, build
from canonical_model.storable import shown

SYSTEM = "dingtalk"
SHANGHAI = ZoneInfo("Asia/Shanghai")
# Added by the directory stream to each member: {str(dept_id): {"name", "parent_id",
# "leaders": [userid, ...]}} for the member's first department and its ancestors.
DEPARTMENTS_KEY = "_hub_departments"
# Added by the to-do stream to a completed card: the to-do's detail and who completed it.
DETAIL_KEY = "_hub_detail"
COMPLETED_BY_KEY = "_hub_completed_by"  # the finisher's userid (resolved from unionId)

SUBJECT_MAX = 1024  # to-do subject ≤1024 characters, description ≤4096 (§2.2)
DESCRIPTION_MAX = 4096
MARKDOWN_MAX = 5000  # action_card markdown: a GUESS (no documented limit in the reference)
PRIORITY_NORMAL = 20  # 10 low, 20 normal, 30 urgent, 40 very urgent (§2.2)
BUTTON = "查看客户档案"

# Reminder kinds as a DingTalk notice heads them (markdown title line, one-line hint).
NOTICE_KINDS: dict[str, tuple[str, str]] = {
    "due": ("⏰ 待办快到期了", "请在截止前完成跟进。"),
    "overdue": ("⚠️ 待办已超期", "已过截止时间，请尽快处理。"),
    "overdue_manager": ("📋 团队待办超期", "您下属的待办已超期，请关注进展。"),
    "uncontacted_24h": ("🆕 新客户未跟进", "客户分配已超过 24 小时，尚无跟进记录。"),
    "lead_assigned": ("🆕 新线索待跟进", "新分配给您的线索，请在截止时间前首次跟进。"),
    "uncontacted_24h_manager": ("📋 团队新客户未跟进", "您下属的新客户超过 24 小时未跟进。"),
}
_OTHER_KIND = ("📌 CRM 待办提醒", "请打开客户档案查看。")


# ---------------------------------------------------------------------- helpers


def _text(raw: Mapping[str, Any], key: str) -> str:
    """Text field ``key`` stripped ("" when absent); MappingError when it holds anything else."""
    value = raw.get(key)
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    raise MappingError(f"{key}: expected text, got {shown(value)}")


def _millis(raw: Mapping[str, Any], key: str) -> dt.datetime | None:
    """A millisecond timestamp field as an aware datetime (None when absent)."""
    value = raw.get(key)
    if value is None or value == "":
        return None
    # checked before any str() or int(): a whole number of thousands of digits has no text
    # form, and str.isdigit() also accepts digits such as '²' that int() refuses
    if isinstance(value, int) and not isinstance(value, bool):
        readable = 0 <= value < 10**15
    else:
        readable = isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 15
    if not readable:
        raise MappingError(f"{key}: expected milliseconds since 1970, got {shown(value)}")
    return dt.datetime.fromtimestamp(int(value) / 1000, dt.UTC)


def _department_key(value: Any) -> str | None:
    """A department id as the department index's key; None for anything that is not an id
    (text, or a whole number small enough to have a text form)."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() <= 64:
        return str(value)
    return None


def mainland_mobile(value: str) -> str | None:
    """``+86-13800000000`` or ``13800000000`` → 11 digits; other numbers as given; "" → None."""
    compact = re.sub(r"[\s()]", "", value)
    match = re.fullmatch(r"(?:\+?86-?)?(1\d{10})", compact)
    return match.group(1) if match else (compact or None)


# ---------------------------------------------------------------------- directory


def _manager(userid: str, raw: Mapping[str, Any]) -> str | None:
    """The member's manager: DingTalk's direct manager (``manager_userid``) when set, else
    the nearest department leader above them: their first department's, or — when they
    lead it themselves — the parent department's, and so on upwards."""
    direct = _text(raw, "manager_userid")
    if direct and direct != userid:
        return direct
    chain = raw.get(DEPARTMENTS_KEY, {})
    if not isinstance(chain, Mapping):
        raise MappingError(f"{DEPARTMENTS_KEY}: expected an object, got {shown(chain)}")
    dept_ids = raw.get("dept_id_list") or []
    current = _department_key(dept_ids[0]) if isinstance(dept_ids, list) and dept_ids else None
    visited: set[str] = set()
    while current is not None and current in chain and current not in visited:
        visited.add(current)
        node = chain[current]
        leaders = node.get("leaders") if isinstance(node, Mapping) else None
        for leader in leaders if isinstance(leaders, list) else []:
            if isinstance(leader, str) and leader and leader != userid:
                return leader
        current = _department_key(node.get("parent_id")) if isinstance(node, Mapping) else None
    return None


def _department_name(raw: Mapping[str, Any]) -> str | None:
    dept_ids = raw.get("dept_id_list")
    if dept_ids is not None and not isinstance(dept_ids, list):
        raise MappingError(f"dept_id_list: expected a list, got {shown(dept_ids)}")
    chain = raw.get(DEPARTMENTS_KEY) or {}
    first_id = _department_key(dept_ids[0]) if dept_ids else None
    first = chain.get(first_id) if first_id is not None and isinstance(chain, Mapping) else None
    name = first.get("name") if isinstance(first, Mapping) else None
    if not isinstance(name, str):
        return None
    return name.strip() or None


def map_directory_user(raw: Mapping[str, Any]) -> InternalUserRecord:
    """DingTalk member → ``InternalUserRecord`` (userid, unionId, manager); MappingError
    without userid or name. ``active`` is DingTalk's: the member activated their account."""
    if not isinstance(raw, Mapping):
        raise MappingError(f"member: expected an object, got {shown(raw)}")
    userid, name, mobile = _text(raw, "userid"), _text(raw, "name"), _text(raw, "mobile")
    if not (userid and name):
        raise MappingError(f"name: member {userid} has no name" if userid else "userid: member has no userid")
    active = raw.get("active", True)
    if not isinstance(active, bool):
        raise MappingError(f"active: expected true or false, got {shown(active)}")
    return build(
        InternalUserRecord,
        source_system=SYSTEM, source_object="user", external_id=userid, name=name,
        mobile=mainland_mobile(mobile) if mobile else None,
        email=_text(raw, "email") or _text(raw, "org_email") or None,
        department=_department_name(raw), title=_text(raw, "title") or None,
        manager_ref=_manager(userid, raw), dingtalk_userid=userid,
        dingtalk_unionid=_text(raw, "unionid") or None, active=active,
        employee_number=_text(raw, "job_number") or None,
    )


# ---------------------------------------------------------------------- completed to-dos


def map_todo_completion(raw: Mapping[str, Any]) -> TaskCompletionRecord:
    """A completed to-do card (+ its detail) → ``TaskCompletionRecord``.

    When: the to-do's ``finishTime``, else the card's ``modifiedTime``. Who: the userid
    the stream resolved from the to-do's ``modifierId`` (or its only executor).
    """
    if not isinstance(raw, Mapping):
        raise MappingError(f"to-do: expected an object, got {shown(raw)}")
    todo_id = _text(raw, "taskId")
    if not todo_id:
        raise MappingError("taskId: to-do card has no taskId")
    detail = raw.get(DETAIL_KEY, {})
    if not isinstance(detail, Mapping):
        raise MappingError(f"{DETAIL_KEY}: expected an object, got {shown(detail)}")
    done = detail.get("done", raw.get("isDone"))
    if not isinstance(done, bool):
        raise MappingError(f"isDone: expected true or false, got {shown(done)}")
    modified = _millis(raw, "modifiedTime")
    return build(
        TaskCompletionRecord,
        source_system=SYSTEM, source_object="todo", external_id=todo_id, done=done,
        completed_at=_millis(detail, "finishTime") or modified, modified_at=modified,
        completed_by_ref=_text(raw, COMPLETED_BY_KEY) or None, source_ref=_text(raw, "sourceId") or None,
    )


# ---------------------------------------------------------------------- outbound bodies


def due_text(due_at: dt.datetime) -> str:
    """Due time as a salesperson reads it: Asia/Shanghai, ``5月8日 15:00``."""
    if due_at.tzinfo is None:
        raise ValueError("due_at must be timezone-aware")
    local = due_at.astimezone(SHANGHAI)
    return f"{local.month}月{local.day}日 {local:%H:%M}"


def _markdown_safe(text: str) -> str:
    """One line of user text that cannot open markdown structure (headings, links, emphasis)."""
    return re.sub(r"([\\`*_\[\]#>|])", r"\\\1", " ".join(text.split()))


def build_work_notice(reminder: Mapping[str, Any]) -> dict[str, Any]:
    """An ``asyncsend_v2`` ``msg`` (``action_card``: markdown and one button to the hub's
    profile page) for a channel-neutral reminder payload (``task_id, kind, title,
    customer_name, due_at, assignee_name, profile_url``).

    The task number is in the text: DingTalk delivers an identical notice to a user only
    once a day (§2.2), so two tasks with the same title must not read the same. The
    result is deterministic: a retry resends byte-identical content.
    """
    url = str(reminder.get("profile_url") or "")
    if not re.match(r"^https?://", url):
        raise ValueError("profile_url must be an http(s) URL")
    title = " ".join(str(reminder.get("title") or "").split())
    if not title:
        raise ValueError("task title is empty")
    heading, hint = NOTICE_KINDS.get(str(reminder.get("kind")), _OTHER_KIND)
    due = dt.datetime.fromisoformat(str(reminder["due_at"]))
    lines = [f"### {heading}", f"**{_markdown_safe(title)}**",
             f"- 客户：{_markdown_safe(str(reminder.get('customer_name') or '（未关联客户）'))}",
             f"- 截止：{due_text(due)}"]
    if reminder.get("assignee_name"):
        lines.append(f"- 负责人：{_markdown_safe(str(reminder['assignee_name']))}")
    lines += [f"- 待办编号：#{reminder['task_id']}", "", hint]
    markdown = "\n".join(lines)[:MARKDOWN_MAX]
    return {"msgtype": "action_card", "action_card": {
        "title": f"{heading}｜{title}"[:60], "markdown": markdown, "single_title": BUTTON, "single_url": url,
    }}


def build_todo(todo: Mapping[str, Any], executor_union_id: str) -> dict[str, Any]:
    """The v1.0 create body of a CRM task's to-do (channel-neutral ``todo`` payload:
    ``source_id, title, description, due_at, detail_url``), executed by one person."""
    body: dict[str, Any] = {
        "sourceId": todo["source_id"], "subject": todo_subject(todo),
        "description": str(todo.get("description") or "")[:DESCRIPTION_MAX],
        "executorIds": [executor_union_id], "participantIds": [executor_union_id],
        "detailUrl": {"appUrl": todo["detail_url"], "pcUrl": todo["detail_url"]},
        "isOnlyShowExecutor": True, "priority": PRIORITY_NORMAL, "notifyConfigs": {"dingNotify": "1"},
    }
    due_ms = todo_due_ms(todo)
    if due_ms is not None:
        body["dueTime"] = due_ms
    return body


def todo_subject(todo: Mapping[str, Any]) -> str:
    """The to-do's subject: the task title (and customer), ≤1024 characters."""
    title = " ".join(str(todo.get("title") or "").split())
    if not title:
        raise ValueError("task title is empty")
    customer = " ".join(str(todo.get("customer_name") or "").split())
    return (f"{title}（{customer}）" if customer else title)[:SUBJECT_MAX]


def todo_due_ms(todo: Mapping[str, Any]) -> int | None:
    """The task's due time in milliseconds, or None."""
    due = todo.get("due_at")
    if not due:
        return None
    moment = dt.datetime.fromisoformat(str(due))
    if moment.tzinfo is None:
        raise ValueError("due_at must be timezone-aware")
    return int(moment.timestamp() * 1000)


def todo_changes(existing: Mapping[str, Any], todo: Mapping[str, Any]) -> dict[str, Any]:
    """The ``PUT`` body bringing an existing to-do in line with the CRM task (empty: in line).

    ``done`` only ever goes from false to true: a to-do someone ticked off in DingTalk is
    not reopened by the hub (the CRM task follows DingTalk instead).
    """
    changes: dict[str, Any] = {}
    subject = todo_subject(todo)
    if existing.get("subject") != subject:
        changes["subject"] = subject
    description = str(todo.get("description") or "")[:DESCRIPTION_MAX]
    if (existing.get("description") or "") != description:
        changes["description"] = description
    due_ms = todo_due_ms(todo)
    if due_ms is not None and existing.get("dueTime") != due_ms:
        changes["dueTime"] = due_ms
    if todo.get("done") and not existing.get("done"):
        changes["done"] = True
    return changes


__all__ = [
    "COMPLETED_BY_KEY",
    "DEPARTMENTS_KEY",
    "DETAIL_KEY",
    "NOTICE_KINDS",
    "SYSTEM",
    "build_todo",
    "build_work_notice",
    "due_text",
    "mainland_mobile",
    "map_directory_user",
    "map_todo_completion",
    "todo_changes",
    "todo_due_ms",
    "todo_subject",
]
