"""The WeCom sandbox's OA approvals (审批): templates, applications, their state machine and events.

Modelled on reference/oa-approvals.md §2 and §3 ("§" below); **guess** marks what no source
pins down.

- **Templates** (§2.4, §3.3): seeded ``template_id`` → controls (``property{control, id, title,
  require}``); ``oa/gettemplatedetail`` answers them. ``oa/applyevent`` refuses a missing or
  blank required control, an unknown control id, a value of the wrong shape for its control
  (Text ``text``, Money ``new_money`` as a numeric string) and a creator outside the app's
  visible range with **301025** (§2.6). Any number of identical applications are accepted:
  **no dedupe** (§2.1, §3.9).
- **Ids** (§3.4): ``sp_no`` = ``yyyyMMdd`` (Asia/Shanghai) + a 4-digit daily sequence, a string.
- **List** (§2.2, §3.6): ``oa/getapprovalinfo`` takes ``starttime``/``endtime`` in Unix
  *seconds* (strings or ints; milliseconds or a window over 31 days → 301025), ``new_cursor``
  ("" first), ``size`` ≤ 100 and ``filters`` (same key OR, different keys AND) on
  ``template_id``, ``creator``, ``sp_status``, ``department``; it filters on apply time and
  answers ``sp_no_list`` with ``new_next_cursor`` absent on the last page.
- **State machine** (§3.5): 1 → 2 (agreed) | 3 (rejected) | 4 (revoked by the applicant) |
  7 (deleted); 2 → 6 (revoked after approval). Each step is a ``sp_record`` detail
  (``speech``, ``sptime``) and a ``sys_approval_change`` event whose ``StatuChangeEvent`` is
  1 提单, 2 同意, 3 驳回, 6 撤销, 8 通过后撤销 (§2.5; deletion pushes 6: a **guess**).
- **Approver**: the applicant's manager, else the first department leader (guess: the
  template's own flow is not modelled).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from connectors.kit.sandbox.universe import DemoUser

Json = dict[str, Any]
SHANGHAI = ZoneInfo("Asia/Shanghai")
MAX_WINDOW_S = 31 * 86_400
MAX_SIZE = 100
PARAM_ERROR = 301025
CHANGE_EVENT = {2: 2, 3: 3, 4: 6, 6: 8, 7: 6}  # new sp_status → StatuChangeEvent


class ApprovalRefused(Exception):
    """An approval call refused with a WeCom errcode (the state turns it into its own error)."""

    def __init__(self, errcode: int, detail: str) -> None:
        self.errcode = errcode
        self.detail = detail
        super().__init__(f"{errcode} {detail}")


@dataclass(frozen=True)
class Control:
    """One control of a template."""

    control: str  # Text, Textarea, Money, Number, Date, Selector...
    id: str
    title: str
    required: bool


@dataclass(frozen=True)
class Template:
    """An approval template (审批模板)."""

    template_id: str
    name: str
    controls: tuple[Control, ...]


ORDER_TEMPLATE = Template("3TkaCRMOrderApproval0000000000000000001", "CRM订单审批", (
    Control("Text", "Text-1569573760849", "CRM单号", True),
    Control("Text", "Text-1569573760850", "订单编号", False),
    Control("Text", "Text-1569573760851", "客户", True),
    Control("Money", "Money-1569573760852", "金额", True),
))
LEAVE_TEMPLATE = Template("3TkaLeave00000000000000000000000000000001", "请假", (
    Control("Textarea", "Textarea-1569573761000", "请假事由", True),
))
TEMPLATES = (ORDER_TEMPLATE, LEAVE_TEMPLATE)


def _bad(detail: str) -> ApprovalRefused:
    return ApprovalRefused(PARAM_ERROR, detail)


def _seconds(value: Any, what: str) -> int:
    try:
        number = int(str(value))
    except (TypeError, ValueError):
        raise _bad(f"invalid {what}") from None
    if number > 10_000_000_000:  # milliseconds (§2.2 [comm]: refused)
        raise _bad("invalid starttime or endtime")
    return number


class ApprovalBook:
    """Templates and applications; called under the sandbox state's lock."""

    def __init__(self, *, user: Callable[[str], DemoUser | None], visible: Callable[[DemoUser], bool],
                 users: Callable[[], list[DemoUser]], clock: Callable[[], float], corp_id: str, agent_id: int) -> None:
        self._user = user
        self._visible = visible
        self._users = users
        self._clock = clock
        self.corp_id = corp_id
        self.agent_id = agent_id
        self.templates = {t.template_id: t for t in TEMPLATES}
        self.approvals: dict[str, Json] = {}
        self._daily: dict[str, int] = {}
        self.events: list[Json] = []  # sys_approval_change events, as dicts for the XML writer

    # ------------------------------------------------------------------ API

    def template_detail(self, body: Json) -> Json:
        """``oa/gettemplatedetail``."""
        template = self.templates.get(str(body.get("template_id") or ""))
        if template is None:
            raise ApprovalRefused(301026, "template not found")  # guess: which code
        return {"template_names": [{"text": template.name, "lang": "zh_CN"}], "template_content": {"controls": [
            {"property": {"control": c.control, "id": c.id, "title": [{"text": c.title, "lang": "zh_CN"}],
                          "placeholder": [], "require": 1 if c.required else 0, "un_print": 0}, "config": {}}
            for c in template.controls]}}

    def apply(self, body: Json) -> Json:
        """``oa/applyevent`` → ``{"sp_no"}`` (validation in the module docstring)."""
        template = self.templates.get(str(body.get("template_id") or ""))
        if template is None:
            raise _bad("invalid template_id")
        creator = self._user(str(body.get("creator_userid") or ""))
        if creator is None or not self._visible(creator) or creator.status != 1:
            raise _bad("creator_userid is not a member in the app's visible range")
        contents = (body.get("apply_data") or {}).get("contents") if isinstance(body.get("apply_data"), dict) else None
        if not isinstance(contents, list):
            raise _bad("apply_data.contents missing")
        by_id = {c.id: c for c in template.controls}
        given: dict[str, Json] = {}
        for item in contents:
            if not isinstance(item, dict) or item.get("id") not in by_id:
                raise _bad(f"control {item.get('id') if isinstance(item, dict) else item!r} not in template")
            control = by_id[str(item["id"])]
            value = item.get("value") if isinstance(item.get("value"), dict) else None
            if value is None or item.get("control") != control.control:
                raise _bad(f"control {control.id} value does not match its type {control.control}")
            text = value.get("new_money") if control.control == "Money" else value.get("text")
            if not isinstance(text, str):
                raise _bad(f"control {control.id} value does not match its type {control.control}")
            if control.control == "Money":
                try:
                    float(text)
                except ValueError:
                    raise _bad(f"control {control.id} is not an amount") from None
            given[control.id] = item
        missing = [c.title for c in template.controls if c.required and not self._text(given.get(c.id)).strip()]
        if missing:
            raise _bad(f"required control {', '.join(missing)} is empty")
        now = int(self._clock())
        day = dt.datetime.fromtimestamp(now, SHANGHAI).strftime("%Y%m%d")
        self._daily[day] = self._daily.get(day, 0) + 1
        sp_no = f"{day}{self._daily[day]:04d}"
        approver = creator.manager_userid or next(
            (u.userid for u in self._users() if u.is_leader_in_dept and any(u.is_leader_in_dept)), creator.userid)
        self.approvals[sp_no] = {
            "sp_no": sp_no, "sp_name": template.name, "sp_status": 1, "template_id": template.template_id,
            "apply_time": now, "applyer": {"userid": creator.userid, "partyid": str(creator.department_id)},
            "sp_record": [{"sp_status": 1, "approverattr": 1, "details": [
                {"approver": {"userid": approver}, "speech": "", "sp_status": 1, "sptime": 0, "media_id": []}]}],
            "notifyer": [], "comments": [],
            "apply_data": {"contents": [
                {**given[c.id], "title": [{"text": c.title, "lang": "zh_CN"}]} for c in template.controls
                if c.id in given]},
            "summary_list": body.get("summary_list") or [],
        }
        self._event(sp_no, 1)
        return {"sp_no": sp_no}

    @staticmethod
    def _text(item: Json | None) -> str:
        value = (item or {}).get("value") or {}
        text = value.get("new_money", value.get("text", ""))
        return text if isinstance(text, str) else ""

    def detail(self, body: Json) -> Json:
        """``oa/getapprovaldetail`` → ``{"info": …}``."""
        info = self.approvals.get(str(body.get("sp_no") or ""))
        if info is None:
            raise _bad("invalid sp_no")  # guess: which code
        return {"info": {k: v for k, v in info.items() if k != "summary_list"}}

    def info(self, body: Json) -> Json:
        """``oa/getapprovalinfo`` (module docstring)."""
        if "starttime" not in body or "endtime" not in body:
            raise _bad("invalid starttime or endtime")
        start, end = _seconds(body["starttime"], "starttime"), _seconds(body["endtime"], "endtime")
        if end < start or end - start > MAX_WINDOW_S:
            raise _bad("invalid starttime or endtime")  # §2.2: over 31 days (the error is a guess)
        try:
            size = int(body.get("size") or MAX_SIZE)
            offset = int(body.get("new_cursor") or 0)
        except (TypeError, ValueError):
            raise _bad("invalid new_cursor or size") from None
        if not 0 < size <= MAX_SIZE:
            raise _bad(f"size must be within 1..{MAX_SIZE}")
        wanted: dict[str, set[str]] = {}
        for f in body.get("filters") or []:
            if not isinstance(f, dict) or f.get("key") not in ("template_id", "creator", "sp_status", "department",
                                                                "record_type"):
                raise _bad("invalid filters")
            wanted.setdefault(str(f["key"]), set()).add(str(f.get("value")))

        def keep(a: Json) -> bool:
            facts = {"template_id": a["template_id"], "creator": a["applyer"]["userid"],
                     "sp_status": str(a["sp_status"]), "department": a["applyer"]["partyid"], "record_type": ""}
            return all(facts[k] in values for k, values in wanted.items())

        matching = [a["sp_no"] for a in sorted(self.approvals.values(), key=lambda a: (a["apply_time"], a["sp_no"]))
                    if start <= a["apply_time"] <= end and keep(a)]
        page = matching[offset:offset + size]
        answer: Json = {"sp_no_list": page}
        if offset + size < len(matching):
            answer["new_next_cursor"] = str(offset + size)
        return answer

    # ------------------------------------------------------------------ people (admin)

    def act(self, sp_no: str, action: str, *, by: str | None = None, remark: str = "") -> Json:
        """An approver agrees or rejects; the applicant revokes (before or after approval) or
        deletes. KeyError for an unknown sp_no, ValueError for an action not allowed now."""
        approval = self.approvals[sp_no]
        status = approval["sp_status"]
        now = int(self._clock())
        moves = {("agree", 1): 2, ("refuse", 1): 3, ("revoke", 1): 4, ("delete", 1): 7, ("revoke", 2): 6}
        new = moves.get((action, status))
        if new is None:
            raise ValueError(f"cannot {action} an approval whose sp_status is {status}")
        if action in ("agree", "refuse"):
            node = approval["sp_record"][-1]
            detail = node["details"][0]
            detail.update(sp_status=new, speech=remark, sptime=now)
            if by:
                detail["approver"] = {"userid": by}
            node["sp_status"] = new
        else:
            actor = by or approval["applyer"]["userid"]
            approval["comments"].append({"commentUserInfo": {"userid": actor}, "commenttime": now,
                                         "commentcontent": remark or ("撤销" if action == "revoke" else "删除"),
                                         "commentid": f"{sp_no}{len(approval['comments']) + 1:04d}", "media_id": []})
        approval["sp_status"] = new
        self._event(sp_no, CHANGE_EVENT[new])
        return {"info": {k: v for k, v in approval.items() if k != "summary_list"}}

    def _event(self, sp_no: str, change: int) -> None:
        a = self.approvals[sp_no]
        records = [{"SpStatus": r["sp_status"], "ApproverAttr": r["approverattr"], "Details": [
            {"Approver": {"UserId": d["approver"]["userid"]}, "Speech": d["speech"], "SpStatus": d["sp_status"],
             "SpTime": d["sptime"]} for d in r["details"]]} for r in a["sp_record"]]
        self.events.append({
            "ToUserName": self.corp_id, "FromUserName": "sys", "CreateTime": int(self._clock()), "MsgType": "event",
            "Event": "sys_approval_change", "AgentID": self.agent_id,
            "ApprovalInfo": {"SpNoStr": sp_no, "SpNo": sp_no, "SpName": a["sp_name"], "SpStatus": a["sp_status"],
                             "TemplateId": a["template_id"], "ApplyTime": a["apply_time"],
                             "Applyer": {"UserId": a["applyer"]["userid"], "Party": a["applyer"]["partyid"]},
                             "SpRecord": records, "StatuChangeEvent": change}})

    def by_key(self, title: str, value: str) -> list[Json]:
        """Admin view: the approvals whose control titled ``title`` holds ``value``."""
        found = []
        for a in self.approvals.values():
            for c in a["apply_data"]["contents"]:
                if c["title"][0]["text"] == title and self._text(c) == value:
                    found.append(a)
                    break
        return found

    def summary(self) -> Json:
        """Counts by sp_status."""
        counts: dict[str, int] = {}
        for a in self.approvals.values():
            counts[str(a["sp_status"])] = counts.get(str(a["sp_status"]), 0) + 1
        return {"approvals": len(self.approvals), "by_sp_status": counts, "events": len(self.events)}


__all__ = ["CHANGE_EVENT", "ORDER_TEMPLATE", "TEMPLATES", "ApprovalBook", "ApprovalRefused", "Control", "Template"]
