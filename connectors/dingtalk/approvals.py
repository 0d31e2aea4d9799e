"""DingTalk OA approvals (审批), pure: the create request, and what an instance's detail means.

No I/O here (the client speaks HTTP, the writer decides); facts from
reference/oa-approvals.md §1 ("§" below).

- **Create** (§1.3, v1.0 ``POST /v1.0/workflow/processInstances``): ``processCode``,
  ``originatorUserId`` (the order owner's userid), ``deptId`` (-1: the originator's root,
  §1.2 [comm]) and ``formComponentValues`` ``[{name, value}]`` matched by control label;
  every value is a string (§1.6). The order's business key goes into its own text control
  (``CRM单号`` by default): neither DingTalk API has a client token (§1.2), so that control is
  how a retry finds the instance an earlier attempt created.
- **Outcome** (§1.7, §4.4): branch on ``status`` first — ``RUNNING``/``NEW`` pending,
  ``TERMINATED``/``CANCELED`` withdrawn (a TERMINATED instance may still say
  ``result: agree``), ``COMPLETED`` + ``agree`` approved, + ``refuse`` rejected. Revoking an
  *approved* instance leaves it COMPLETED/agree and attaches a new instance whose
  ``bizAction`` is ``REVOKE`` (§1.7 [src]): once that one is COMPLETED/agree the approval is
  ``revoked``. Whether the revoke instance goes through approval itself is not documented; a
  REVOKE instance still RUNNING leaves the approval approved (noted in ``extra``).
- **Times**: v1.0 detail ``"yyyy-MM-ddTHH:mmZ"`` in UTC (§1.1 [src]); list windows in ms.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from connectors.kit.approvals import ApprovalOutcome, key_matches

DEFAULT_KEY_CONTROL = "CRM单号"
ROOT_DEPT = -1
# v1.0 instanceIds/query: maxResults ≤ 20 [comm]; userIds ≤ 10 [guess] (§1.5)
LIST_PAGE_SIZE = 20
LOOKUP_MARGIN = dt.timedelta(minutes=5)  # §4.3: search from the first attempt minus 5 minutes
Json = dict[str, Any]


def form_values(payload: Mapping[str, Any], key_control: str) -> list[Json]:
    """The form of one order approval (labels of the seeded/expected template; values strings)."""
    order = payload.get("order") if isinstance(payload.get("order"), Mapping) else {}
    assert isinstance(order, Mapping)
    values = [
        {"name": key_control, "value": str(payload["business_key"])},
        {"name": "订单编号", "value": str(order.get("order_number") or "")},
        {"name": "客户", "value": str(order.get("customer_name") or "")},
        {"name": "金额", "value": str(order.get("total_amount") or "")},
    ]
    return [v for v in values if v["value"]]


def start_request(payload: Mapping[str, Any], *, process_code: str, key_control: str) -> Json:
    """The body of ``POST /v1.0/workflow/processInstances`` for one order approval."""
    originator = payload.get("originator")
    if not isinstance(originator, str) or not originator:
        raise ValueError("payload.originator must be the owner's DingTalk userid")
    return {"processCode": process_code, "originatorUserId": originator, "deptId": ROOT_DEPT,
            "formComponentValues": form_values(payload, key_control)}


def form_value(instance: Mapping[str, Any], control: str) -> str | None:
    """The value of the control labelled (or with id / bizAlias) ``control``, or None."""
    for item in instance.get("formComponentValues") or []:
        if isinstance(item, Mapping) and control in (item.get("name"), item.get("id"), item.get("bizAlias")):
            value = item.get("value")
            return value if isinstance(value, str) else None
    return None


def holds_key(instance: Mapping[str, Any], key_control: str, business_key: str) -> bool:
    """True when ``instance`` (a v1.0 detail ``result``) carries ``business_key``."""
    return key_matches(form_value(instance, key_control), business_key)


def parse_time(value: Any) -> dt.datetime | None:
    """``"2024-05-06T02:10Z"`` (v1.0, UTC) or ``"2024-05-06 10:10:00"`` (topapi, Asia/Shanghai
    [guess]) → an aware datetime; None for anything else."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    for pattern, tz in (("%Y-%m-%dT%H:%MZ", dt.UTC), ("%Y-%m-%dT%H:%M:%SZ", dt.UTC),
                        ("%Y-%m-%d %H:%M:%S", dt.timezone(dt.timedelta(hours=8)))):
        try:
            return dt.datetime.strptime(text, pattern).replace(tzinfo=tz)
        except ValueError:
            continue
    return None


def _decision(instance: Mapping[str, Any]) -> tuple[str | None, str | None, dt.datetime | None]:
    """(approver, remark, when) of the last approver action (an AGREE/REFUSE operation record)."""
    for record in reversed([r for r in instance.get("operationRecords") or [] if isinstance(r, Mapping)]):
        if str(record.get("result") or "").upper() in ("AGREE", "REFUSE"):
            remark = record.get("remark")
            return (str(record.get("userId") or "") or None, remark if isinstance(remark, str) and remark else None,
                    parse_time(record.get("date")))
    return None, None, None


def outcome(instance_id: str, instance: Mapping[str, Any], attached: Sequence[Mapping[str, Any]] = (),
            *, key_control: str = DEFAULT_KEY_CONTROL) -> ApprovalOutcome:
    """What a v1.0 detail ``result`` (plus its attached instances' details) means (module doc)."""
    status = str(instance.get("status") or "").upper()
    result = str(instance.get("result") or "").lower()
    vendor = f"{status}/{result}" if result else status
    approver, remark, when = _decision(instance)
    finished = parse_time(instance.get("finishTime")) or when
    key = form_value(instance, key_control)
    if status in ("TERMINATED", "CANCELED"):
        return ApprovalOutcome(instance_id, "withdrawn", vendor, key, approver, remark, finished)
    if status != "COMPLETED":
        return ApprovalOutcome(instance_id, "pending", vendor or "RUNNING", key)
    if result == "refuse":
        return ApprovalOutcome(instance_id, "rejected", vendor, key, approver, remark, finished)
    if result != "agree":
        return ApprovalOutcome(instance_id, "pending", vendor, key, extra={"unreadable_result": result})
    revokes = [a for a in attached if str(a.get("bizAction") or "").upper() == "REVOKE"]
    done = [a for a in revokes if str(a.get("status") or "").upper() == "COMPLETED"
            and str(a.get("result") or "").lower() == "agree"]
    if done:
        revoke = done[-1]
        who, why, at = _decision(revoke)
        return ApprovalOutcome(instance_id, "revoked", f"{vendor}+REVOKE", key, approver, remark, finished,
                               extra={"revoked_by": who or revoke.get("originatorUserId"), "revoke_remark": why,
                                      "revoked_at": (parse_time(revoke.get("finishTime")) or at or finished or
                                                     dt.datetime.now(dt.UTC)).isoformat()})
    extra = {"revoke_pending": True} if revokes else {}
    return ApprovalOutcome(instance_id, "approved", vendor, key, approver, remark, finished, extra=extra)


__all__ = ["DEFAULT_KEY_CONTROL", "LIST_PAGE_SIZE", "LOOKUP_MARGIN", "ROOT_DEPT", "form_value", "form_values",
           "holds_key", "outcome", "parse_time", "start_request"]
