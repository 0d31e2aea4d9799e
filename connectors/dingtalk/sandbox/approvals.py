"""The DingTalk sandbox's OA approvals (审批): templates, instances, their state machine and pushes.

Modelled on reference/oa-approvals.md §1 and §3 ("§" below); **guess** marks what no
source pins down.

- **Templates** (§3.3): seeded process codes with their controls; a required control
  missing or blank, an unknown control, or a value that is not a string is refused with
  HTTP 400 (§3.3; the ``code`` strings are guesses, DingTalk documents none for it).
- **Create** (§1.3): any number of instances per form content — **no dedupe** (§1.2, §3.9).
  Instance ids are UUID-like, ``businessId`` 21 digits ``yyyyMMddHHmm`` + 9 (§3.4). The
  originator must be a visible member; the approver is the originator's manager (发起人的
  主管), else the template's fallback approver (guess: the template's flow is not modelled).
- **Detail** (§1.4): the v1.0 camelCase shape, times ``yyyy-MM-ddTHH:mmZ`` UTC.
- **List** (§1.5, §3.6): by processCode and creation time, ``userIds`` (≤10, guess) and
  ``statuses``, ``maxResults`` ≤ 20, ``nextToken`` an int in, a string out, absent on the
  last page; start–end ≤ 120 days, start ≥ 365 days ago.
- **State machine** (§3.5): RUNNING → COMPLETED(agree|refuse) | TERMINATED (the originator
  revokes, or terminate as the system); COMPLETED/agree → revoke attaches a new instance with
  ``bizAction`` REVOKE, COMPLETED/agree at once (guess: its own approval is not modelled), and
  the original stays COMPLETED/agree (§1.7). Each step adds an operation record and settles tasks.
- **Pushes** (§1.8): each change is a ``bpms_instance_change`` (``type`` start|finish|terminate,
  ``result`` on finish) and, for an approver's action, a ``bpms_task_change``; a revoke pushes
  the REVOKE instance's change and (guess) a ``finish`` change of the original, so a receiver
  knows to re-read it. Delivered by :class:`~connectors.kit.sandbox.pushes.PushPlan`.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from connectors.dingtalk.sandbox.seed import DingTalkMember
from connectors.dingtalk.sandbox.state import ApiError

Json = dict[str, Any]
DAY_MS = 86_400_000
MAX_RESULTS = 20
MAX_USER_IDS = 10  # guess (§1.5)
INSTANCE_EVENT = "bpms_instance_change"
TASK_EVENT = "bpms_task_change"


@dataclass(frozen=True)
class Control:
    """One form control of a template."""

    name: str
    component: str  # TextField, MoneyField, NumberField...
    required: bool
    id: str


@dataclass(frozen=True)
class Template:
    """An approval template (审批模板) the corp has set up."""

    process_code: str
    name: str
    controls: tuple[Control, ...]


ORDER_TEMPLATE = Template("PROC-CRMORDER-0001", "CRM订单审批", (
    Control("CRM单号", "TextField", True, "TextField-CRMKEY01"),
    Control("订单编号", "TextField", False, "TextField-ORDERNO1"),
    Control("客户", "TextField", True, "TextField-CUSTOMR1"),
    Control("金额", "MoneyField", True, "MoneyField-AMOUNT01"),
))
LEAVE_TEMPLATE = Template("PROC-LEAVE-0001", "请假", (
    Control("请假类型", "DDSelectField", True, "DDSelectField-LEAVE001"),
    Control("请假事由", "TextareaField", False, "TextareaField-REASON01"),
))
TEMPLATES = (ORDER_TEMPLATE, LEAVE_TEMPLATE)


def _bad(message: str, code: str = "InvalidParameter") -> ApiError:
    return ApiError(400, code, message)  # guess: code strings (§1.9)


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%MZ")


class ApprovalBook:
    """Templates and instances; called under the sandbox state's lock."""

    def __init__(self, *, members: Callable[[], dict[str, DingTalkMember]], visible: Callable[[DingTalkMember], bool],
                 clock: Callable[[], float], corp_id: str, templates: Iterable[Template] = TEMPLATES) -> None:
        self._members = members
        self._visible = visible
        self._clock = clock
        self.corp_id = corp_id
        self.templates = {t.process_code: t for t in templates}
        self.instances: dict[str, Json] = {}
        self.created = 0
        self._task_ids = 63_000
        self._sequence = 0
        self.events: list[Json] = []  # every event DingTalk would push, in order

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def _member(self, userid: Any, what: str) -> DingTalkMember:
        member = self._members().get(str(userid or ""))
        if member is None or not self._visible(member) or not member.active:
            raise _bad(f"{what} {userid!r} 不存在或不在应用可见范围", "InvalidParameter.UserId")  # guess
        return member

    def _approver(self, originator: DingTalkMember) -> str:
        members = self._members()
        if originator.manager_userid and originator.manager_userid in members:
            return originator.manager_userid
        leaders = sorted(m.userid for m in members.values() if m.leader_in and m.userid != originator.userid)
        return leaders[0] if leaders else originator.userid

    # ------------------------------------------------------------------ API

    def create(self, body: Json) -> Json:
        """``POST /v1.0/workflow/processInstances`` → ``{"instanceId"}``."""
        template = self.templates.get(str(body.get("processCode") or ""))
        if template is None:
            raise _bad("processCode 不存在", "InvalidParameter.ProcessCode")  # guess
        originator = self._member(body.get("originatorUserId"), "originatorUserId")
        values = body.get("formComponentValues")
        if not isinstance(values, list) or not values:
            raise _bad("formComponentValues 不能为空")
        given: dict[str, str] = {}
        for item in values:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise _bad("formComponentValues 的每一项需要 name 和 value")
            value = item.get("value")
            if not isinstance(value, str):
                raise _bad(f"表单项 {item['name']} 的 value 必须是字符串")
            given[item["name"]] = value
        known = {c.name for c in template.controls}
        unknown = sorted(set(given) - known)
        if unknown:
            raise _bad(f"表单项 {', '.join(unknown)} 不在模板 {template.name} 中")
        missing = [c.name for c in template.controls if c.required and not given.get(c.name, "").strip()]
        if missing:
            raise _bad(f"必填表单项 {', '.join(missing)} 未填写")
        for control in template.controls:
            if control.component == "MoneyField" and given.get(control.name):
                try:
                    float(given[control.name])
                except ValueError:
                    raise _bad(f"表单项 {control.name} 不是金额") from None
        now = self._now_ms()
        instance_id = str(uuid.UUID(bytes=secrets.token_bytes(16), version=4))
        self._sequence += 1
        business_id = dt.datetime.fromtimestamp(now / 1000, dt.UTC).strftime("%Y%m%d%H%M") + f"{self._sequence:09d}"
        approver = self._approver(originator)
        self._task_ids += 1
        self.instances[instance_id] = {
            "id": instance_id, "processCode": template.process_code, "title": f"{originator.name}提交的{template.name}",
            "createMs": now, "finishMs": None, "originatorUserId": originator.userid,
            "originatorDeptId": str(originator.dept_id_list[0] if originator.dept_id_list else -1),
            "status": "RUNNING", "result": "", "businessId": business_id, "bizAction": "NONE",
            "approverUserIds": [approver], "ccUserIds": [str(u) for u in body.get("ccList") or []],
            "formComponentValues": [{"id": c.id, "name": c.name, "value": given.get(c.name, ""),
                                     "componentType": c.component, "extValue": None, "bizAlias": ""}
                                    for c in template.controls],
            "operationRecords": [{"userId": originator.userid, "date": now, "type": "START_PROCESS_INSTANCE",
                                  "result": "NONE", "remark": None, "showName": "发起审批"}],
            "tasks": [{"taskId": self._task_ids, "userId": approver, "status": "RUNNING", "result": "NONE",
                       "createMs": now, "finishMs": None, "activityId": "act-approve"}],
            "attachedProcessInstanceIds": [], "mainProcessInstanceId": None,
        }
        self.created += 1
        self._event(instance_id, "start")
        return {"instanceId": instance_id}

    def get(self, instance_id: str | None) -> Json:
        """``GET /v1.0/workflow/processInstances`` → ``{"result": {…}, "success": true}``."""
        instance = self.instances.get(str(instance_id or ""))
        if instance is None:
            raise _bad("processInstanceId 不存在", "InvalidParameter.ProcessInstanceId")  # guess
        return {"result": self._view(instance), "success": True}

    def _view(self, i: Json) -> Json:
        return {
            "title": i["title"], "createTime": _iso(i["createMs"]), "finishTime": _iso(i["finishMs"]),
            "originatorUserId": i["originatorUserId"], "originatorDeptId": i["originatorDeptId"],
            "status": i["status"], "result": i["result"], "businessId": i["businessId"], "bizAction": i["bizAction"],
            "approverUserIds": list(i["approverUserIds"]), "ccUserIds": list(i["ccUserIds"]),
            "formComponentValues": [dict(v) for v in i["formComponentValues"]],
            "operationRecords": [{**r, "date": _iso(r["date"])} for r in i["operationRecords"]],
            "tasks": [{"taskId": t["taskId"], "userId": t["userId"], "status": t["status"], "result": t["result"],
                       "createTime": _iso(t["createMs"]), "finishTime": _iso(t["finishMs"]),
                       "activityId": t["activityId"], "mobileUrl": "", "pcUrl": ""} for t in i["tasks"]],
            "attachedProcessInstanceIds": list(i["attachedProcessInstanceIds"]),
            "mainProcessInstanceId": i["mainProcessInstanceId"],
        }

    def list_ids(self, body: Json) -> Json:
        """``POST /v1.0/workflow/processes/instanceIds/query`` (§1.5, §3.6)."""
        code = str(body.get("processCode") or "")
        if code not in self.templates:
            raise _bad("processCode 不存在", "InvalidParameter.ProcessCode")
        try:
            start = int(body["startTime"])
            end = int(body["endTime"]) if body.get("endTime") not in (None, "") else self._now_ms()
            token = int(body.get("nextToken") or 0)
            size = int(body.get("maxResults") or MAX_RESULTS)
        except (KeyError, TypeError, ValueError):
            raise _bad("startTime、endTime、nextToken、maxResults 必须是整数，startTime 必填") from None
        now = self._now_ms()
        if not 0 < size <= MAX_RESULTS:
            raise _bad(f"maxResults 不能超过 {MAX_RESULTS}")
        if end < start or end - start > 120 * DAY_MS or start < now - 365 * DAY_MS:
            raise _bad("时间范围不合法：跨度不超过120天，开始时间不早于365天前")  # guess wording (§1.5 [comm])
        users = body.get("userIds") or []
        if not isinstance(users, list) or len(users) > MAX_USER_IDS:
            raise _bad(f"userIds 最多 {MAX_USER_IDS} 个")
        statuses = {str(s).upper() for s in body.get("statuses") or []}
        matching = [i["id"] for i in sorted(self.instances.values(), key=lambda i: (i["createMs"], i["businessId"]))
                    if i["processCode"] == code and start <= i["createMs"] <= end
                    and (not users or i["originatorUserId"] in users) and (not statuses or i["status"] in statuses)]
        page = matching[token:token + size]
        result: Json = {"list": page}
        if token + size < len(matching):
            result["nextToken"] = str(token + size)
        return {"result": result, "success": True}

    def terminate(self, body: Json) -> Json:
        """``POST /v1.0/workflow/processInstances/terminate`` → ``{"result": true, "success": true}``."""
        instance = self.instances.get(str(body.get("processInstanceId") or ""))
        if instance is None:
            raise _bad("processInstanceId 不存在", "InvalidParameter.ProcessInstanceId")
        if instance["status"] != "RUNNING":
            raise _bad("审批实例已结束，不能撤销", "InvalidParameter.InstanceStatus")  # guess
        operator = str(body.get("operatingUserId") or "") if not body.get("isSystem") else "system"
        self._finish(instance, "TERMINATED", "", operator or instance["originatorUserId"],
                     "TERMINATE_PROCESS_INSTANCE", str(body.get("remark") or ""))
        self._event(instance["id"], "terminate")
        return {"result": True, "success": True}

    # ------------------------------------------------------------------ people (admin)

    def act(self, instance_id: str, action: str, *, by: str | None = None, remark: str = "") -> Json:
        """An approver agrees or refuses, the originator revokes (撤销) a running or an approved
        instance; KeyError for an unknown instance, ValueError for an action not allowed now."""
        instance = self.instances[instance_id]
        if action in ("agree", "refuse"):
            if instance["status"] != "RUNNING":
                raise ValueError(f"instance is {instance['status']}: nothing to {action}")
            task = next(t for t in instance["tasks"] if t["status"] == "RUNNING")
            actor = by or task["userId"]
            now = self._now_ms()
            task.update(status="COMPLETED", result=action.upper(), finishMs=now, userId=actor)
            instance["operationRecords"].append({"userId": actor, "date": now, "type": "EXECUTE_TASK_NORMAL",
                                                 "result": action.upper(), "remark": remark or None,
                                                 "showName": "审批人"})
            self._finish(instance, "COMPLETED", action, actor, None, remark)
            self._event(instance_id, "finish", kind=TASK_EVENT, staff=actor, remark=remark)
            self._event(instance_id, "finish")
        elif action == "revoke" and instance["status"] == "RUNNING":
            actor = by or instance["originatorUserId"]
            self._finish(instance, "TERMINATED", "", actor, "TERMINATE_PROCESS_INSTANCE", remark)
            self._event(instance_id, "terminate")
        elif action == "revoke" and instance["status"] == "COMPLETED" and instance["result"] == "agree":
            revoke_id = self._revoke_instance(instance, by or instance["originatorUserId"], remark)
            self._event(revoke_id, "finish")
            self._event(instance_id, "finish")  # guess: lets a receiver re-read the original
        else:
            raise ValueError(f"cannot {action} an instance that is {instance['status']}/{instance['result']}")
        return self._view(instance)

    def _finish(self, instance: Json, status: str, result: str, actor: str, record: str | None, remark: str) -> None:
        now = self._now_ms()
        instance.update(status=status, result=result, finishMs=now)
        for task in instance["tasks"]:
            if task["status"] == "RUNNING":
                task.update(status="CANCELED", finishMs=now)
        if record:
            instance["operationRecords"].append({"userId": actor, "date": now, "type": record, "result": "NONE",
                                                 "remark": remark or None, "showName": "撤销"})

    def _revoke_instance(self, original: Json, actor: str, remark: str) -> str:
        now = self._now_ms()
        revoke_id = str(uuid.UUID(bytes=secrets.token_bytes(16), version=4))
        self._sequence += 1
        self.instances[revoke_id] = {
            **{k: v for k, v in original.items() if k not in ("id", "tasks", "operationRecords")},
            "id": revoke_id, "title": f"撤销：{original['title']}", "createMs": now, "finishMs": now,
            "status": "COMPLETED", "result": "agree", "bizAction": "REVOKE", "originatorUserId": actor,
            "businessId": dt.datetime.fromtimestamp(now / 1000, dt.UTC).strftime("%Y%m%d%H%M")
            + f"{self._sequence:09d}",
            "operationRecords": [{"userId": actor, "date": now, "type": "START_PROCESS_INSTANCE", "result": "NONE",
                                  "remark": remark or None, "showName": "撤销已通过的审批"}],
            "tasks": [], "attachedProcessInstanceIds": [], "mainProcessInstanceId": original["id"],
        }
        original["attachedProcessInstanceIds"].append(revoke_id)
        return revoke_id

    def _event(self, instance_id: str, change: str, *, kind: str = INSTANCE_EVENT, staff: str | None = None,
               remark: str = "") -> None:
        i = self.instances[instance_id]
        event: Json = {"EventType": kind, "processInstanceId": instance_id, "corpId": self.corp_id,
                       "createTime": i["createMs"], "title": i["title"], "type": change,
                       "staffId": staff or i["originatorUserId"], "url": f"https://aflow.dingtalk.com/?procInsId={instance_id}",
                       "processCode": i["processCode"], "businessId": i["businessId"]}
        if change in ("finish", "terminate"):
            event["finishTime"] = i["finishMs"] or self._now_ms()
        if change == "finish":
            event["result"] = i["result"] or "agree"
        if kind == TASK_EVENT:
            event["remark"] = remark
        self.events.append(event)

    def summary(self) -> Json:
        """Counts by status for the admin endpoint."""
        by_status: dict[str, int] = {}
        for i in self.instances.values():
            label = f"{i['status']}/{i['result']}" if i["result"] else i["status"]
            by_status[label] = by_status.get(label, 0) + 1
        return {"instances": len(self.instances), "created_by_api": self.created, "by_status": by_status,
                "events": len(self.events)}

    def by_key(self, control: str, value: str) -> list[Json]:
        """Admin view: the instances whose ``control`` holds ``value`` (tests count twins)."""
        return [self._view(i) | {"processInstanceId": i["id"]} for i in self.instances.values()
                if any(v["name"] == control and v["value"] == value for v in i["formComponentValues"])]


__all__ = ["INSTANCE_EVENT", "ORDER_TEMPLATE", "TASK_EVENT", "TEMPLATES", "ApprovalBook", "Control", "Template"]
