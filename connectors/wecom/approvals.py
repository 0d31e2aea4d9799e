"""WeCom OA approvals (审批), pure: the applyevent body, and what an approval's detail means.

No I/O here; facts from reference/oa-approvals.md §2 ("§" below).

- **Template** (§2.4): ``oa/gettemplatedetail`` names each control by ``property.id`` and its
  ``title`` texts; :func:`control_ids` maps the CRM fields onto them by title once (the key
  control's title is configuration, default ``CRM单号``).
- **Create** (§2.1): ``creator_userid`` (the order owner), ``template_id``,
  ``use_template_approver`` 1 (the template's own flow), ``apply_data.contents`` with
  ``{control, id, value}`` (Text ``{"text"}``, Money ``{"new_money"}``, strings), and the key
  again in ``summary_list`` so approvers see it on the card. WeCom dedupes nothing (§2.1): the
  key control is how a retry recognises the approval an earlier attempt created.
- **Outcome** (§2.3, §4.4): ``info.sp_status`` 1 pending, 2 approved, 3 rejected, 4 withdrawn
  (已撤销), 6 revoked after approval (通过后撤销), 7 withdrawn (已删除), 10 approved (已支付);
  5/8/9 are undefined and read as pending with a note. The decision is the last
  ``sp_record[].details[]`` whose node status is 2 (agreed) or 3 (rejected): its approver,
  ``speech`` and ``sptime`` (seconds; 0 = not yet).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from connectors.kit.approvals import ApprovalOutcome, key_matches

DEFAULT_KEY_CONTROL = "CRM单号"
# CRM field → (template control title, control type) besides the key
FIELDS = {"order_number": ("订单编号", "Text"), "customer_name": ("客户", "Text"), "total_amount": ("金额", "Money")}
MAX_WINDOW = dt.timedelta(days=31)  # §2.2 (old doc text)
PAGE_SIZE = 100
LOOKUP_MARGIN = dt.timedelta(minutes=5)
_STATES = {1: "pending", 2: "approved", 3: "rejected", 4: "withdrawn", 6: "revoked", 7: "withdrawn", 10: "approved"}
Json = dict[str, Any]


class TemplateMismatch(ValueError):
    """The approval template lacks a control the hub fills in (message names it)."""


def _title(control: Mapping[str, Any]) -> str:
    titles = (control.get("property") or {}).get("title") or []
    for lang in ("zh_CN", None):
        for t in titles:
            if isinstance(t, Mapping) and (lang is None or t.get("lang") == lang) and isinstance(t.get("text"), str):
                return str(t["text"])
    return ""


def control_ids(template: Mapping[str, Any], key_control: str) -> dict[str, tuple[str, str]]:
    """CRM field (``business_key`` and :data:`FIELDS`) → (control id, control type), from a
    ``gettemplatedetail`` answer; :class:`TemplateMismatch` when the key control or a required
    control the hub does not know how to fill is missing. ``key_control`` may be a title or an id."""
    controls = [c for c in (template.get("template_content") or {}).get("controls") or [] if isinstance(c, Mapping)]
    by_title = {_title(c): c for c in controls}
    by_id = {str((c.get("property") or {}).get("id")): c for c in controls}
    found: dict[str, tuple[str, str]] = {}
    key = by_id.get(key_control) or by_title.get(key_control)
    if key is None or (key.get("property") or {}).get("control") not in ("Text", "Textarea"):
        raise TemplateMismatch(f"the approval template has no text control {key_control!r} for the CRM order key")
    found["business_key"] = (str(key["property"]["id"]), str(key["property"]["control"]))
    for name, (title, kind) in FIELDS.items():
        control = by_title.get(title)
        if control is not None and (control.get("property") or {}).get("control") == kind:
            found[name] = (str(control["property"]["id"]), kind)
    filled = {ident for ident, _ in found.values()}
    missing = [_title(c) or str(c["property"].get("id")) for c in controls
               if (c.get("property") or {}).get("require") and str(c["property"].get("id")) not in filled]
    if missing:
        raise TemplateMismatch(f"the approval template requires controls the hub does not fill: {', '.join(missing)}")
    return found


def _value(kind: str, text: str) -> Json:
    return {"new_money": text} if kind == "Money" else {"text": text}


def apply_request(payload: Mapping[str, Any], *, template_id: str, controls: Mapping[str, tuple[str, str]]) -> Json:
    """The body of ``oa/applyevent`` for one order approval (module docstring)."""
    creator = payload.get("originator")
    if not isinstance(creator, str) or not creator:
        raise ValueError("payload.originator must be the owner's WeCom userid")
    order = payload.get("order") if isinstance(payload.get("order"), Mapping) else {}
    assert isinstance(order, Mapping)
    values = {"business_key": str(payload["business_key"]),
              **{name: str(order.get(name) or "") for name in FIELDS}}
    contents = [{"control": kind, "id": ident, "value": _value(kind, values[name])}
                for name, (ident, kind) in controls.items() if values.get(name)]
    summary = f"CRM订单 {order.get('order_number') or ''} {values['business_key']}".replace("  ", " ")
    return {"creator_userid": creator, "template_id": template_id, "use_template_approver": 1,
            "apply_data": {"contents": contents},
            "summary_list": [{"summary_info": [{"text": summary[:60], "lang": "zh_CN"}]}]}


def key_value(info: Mapping[str, Any], key_control_id: str) -> str | None:
    """The text of control ``key_control_id`` in a detail's ``apply_data``, or None."""
    for content in (info.get("apply_data") or {}).get("contents") or []:
        if isinstance(content, Mapping) and content.get("id") == key_control_id:
            text = (content.get("value") or {}).get("text")
            return text if isinstance(text, str) else None
    return None


def holds_key(info: Mapping[str, Any], key_control_id: str, business_key: str) -> bool:
    """True when the approval ``info`` carries ``business_key`` in its key control."""
    return key_matches(key_value(info, key_control_id), business_key)


def _decision(info: Mapping[str, Any]) -> tuple[str | None, str | None, dt.datetime | None]:
    last: tuple[str | None, str | None, dt.datetime | None] = (None, None, None)
    for node in info.get("sp_record") or []:
        for detail in (node or {}).get("details") or [] if isinstance(node, Mapping) else []:
            if isinstance(detail, Mapping) and detail.get("sp_status") in (2, 3):
                when = int(detail.get("sptime") or 0)
                speech = detail.get("speech")
                last = (str((detail.get("approver") or {}).get("userid") or "") or None,
                        speech if isinstance(speech, str) and speech else None,
                        dt.datetime.fromtimestamp(when, dt.UTC) if when else None)
    return last


def outcome(info: Mapping[str, Any], *, key_control_id: str | None = None) -> ApprovalOutcome:
    """What a ``getapprovaldetail`` ``info`` means (module docstring)."""
    sp_no = str(info.get("sp_no") or "")
    try:
        status = int(info.get("sp_status") or 0)
    except (TypeError, ValueError):
        status = 0
    key = key_value(info, key_control_id) if key_control_id else None
    approver, remark, when = _decision(info)
    state = _STATES.get(status)
    if state is None:
        return ApprovalOutcome(sp_no, "pending", f"sp_status {status}", key, extra={"unknown_sp_status": status})
    if state == "pending":
        return ApprovalOutcome(sp_no, "pending", "sp_status 1", key)
    return ApprovalOutcome(sp_no, state, f"sp_status {status}", key, approver, remark, when)


__all__ = ["DEFAULT_KEY_CONTROL", "FIELDS", "LOOKUP_MARGIN", "MAX_WINDOW", "PAGE_SIZE", "TemplateMismatch",
           "apply_request", "control_ids", "holds_key", "key_value", "outcome"]
