"""What an OA approval instance means to the hub: DingTalk status + result (+ an attached REVOKE),
WeCom sp_status 1/2/3/4/6/7/10, the key control, and the create bodies (reference/oa-approvals.md)."""

from __future__ import annotations

import datetime as dt

import pytest

from connectors.dingtalk import approvals as dingtalk
from connectors.kit.approvals import ApprovalOutcome, outcome_from_detail
from connectors.wecom import approvals as wecom

KEY = "crm-order-42-r1"


def ding(status: str, result: str = "", *, records: list[dict] | None = None, **more) -> dict:
    return {"status": status, "result": result, "finishTime": "2026-11-27T02:10Z" if status != "RUNNING" else None,
            "formComponentValues": [{"id": "TextField-1", "name": "CRM单号", "value": KEY, "componentType": "TextField"}],
            "operationRecords": records or [], **more}


@pytest.mark.parametrize(("status", "result", "state"), [
    ("RUNNING", "", "pending"),
    ("NEW", "", "pending"),
    ("COMPLETED", "agree", "approved"),
    ("COMPLETED", "refuse", "rejected"),
    ("TERMINATED", "", "withdrawn"),
    ("TERMINATED", "agree", "withdrawn"),  # a terminated instance may still say agree: status first (§1.7)
    ("CANCELED", "", "withdrawn"),
    ("COMPLETED", "", "pending"),  # completed without a readable result: not acted on
])
def test_dingtalk_status_and_result_map_to_the_hubs_states(status, result, state):
    found = dingtalk.outcome("inst-1", ding(status, result))
    assert found.state == state and found.business_key == KEY


def test_dingtalk_refusal_carries_the_approvers_remark_and_time():
    records = [{"userId": "li.si", "date": "2026-11-27T02:00Z", "type": "START_PROCESS_INSTANCE", "result": "NONE"},
               {"userId": "wang.wu", "date": "2026-11-27T02:09Z", "type": "EXECUTE_TASK_NORMAL", "result": "REFUSE",
                "remark": "价格低于底价"}]
    found = dingtalk.outcome("inst-1", ding("COMPLETED", "refuse", records=records))
    assert (found.state, found.approver, found.remark) == ("rejected", "wang.wu", "价格低于底价")
    assert found.decided_at == dt.datetime(2026, 11, 27, 2, 10, tzinfo=dt.UTC)


def test_dingtalk_revocation_after_approval_is_an_attached_revoke_instance():
    approved = ding("COMPLETED", "agree", attachedProcessInstanceIds=["rev-1"])
    running = {"bizAction": "REVOKE", "status": "RUNNING", "result": ""}
    done = {"bizAction": "REVOKE", "status": "COMPLETED", "result": "agree", "finishTime": "2026-11-28T01:00Z",
            "operationRecords": [{"userId": "li.si", "type": "START_PROCESS_INSTANCE", "result": "NONE",
                                  "remark": "客户取消"}]}
    modify = {"bizAction": "MODIFY", "status": "COMPLETED", "result": "agree"}
    assert dingtalk.outcome("i", approved, [modify]).state == "approved"
    pending = dingtalk.outcome("i", approved, [running])
    assert pending.state == "approved" and pending.extra == {"revoke_pending": True}
    revoked = dingtalk.outcome("i", approved, [done])
    assert revoked.state == "revoked" and revoked.extra["revoked_at"].startswith("2026-11-28T01:00")


@pytest.mark.parametrize(("sp_status", "state"), [
    (1, "pending"), (2, "approved"), (3, "rejected"), (4, "withdrawn"), (6, "revoked"), (7, "withdrawn"),
    (10, "approved"), (5, "pending"), (8, "pending"),
])
def test_wecom_sp_status_maps_to_the_hubs_states(sp_status, state):
    info = {"sp_no": "202611270001", "sp_status": sp_status, "apply_data": {"contents": [
        {"control": "Text", "id": "Text-1", "value": {"text": KEY}}]}}
    found = wecom.outcome(info, key_control_id="Text-1")
    assert found.state == state and found.business_key == KEY
    if sp_status in (5, 8):
        assert found.extra == {"unknown_sp_status": sp_status}


def test_wecom_rejection_reads_the_deciding_approvers_speech():
    info = {"sp_no": "202611270002", "sp_status": 3, "sp_record": [
        {"sp_status": 2, "details": [{"approver": {"userid": "mgr"}, "speech": "同意", "sp_status": 2,
                                     "sptime": 1764200000}]},
        {"sp_status": 3, "details": [{"approver": {"userid": "director"}, "speech": "折扣过大", "sp_status": 3,
                                     "sptime": 1764200600}, {"approver": {"userid": "x"}, "sp_status": 1,
                                                             "sptime": 0}]}]}
    found = wecom.outcome(info)
    assert (found.approver, found.remark) == ("director", "折扣过大")
    assert found.decided_at == dt.datetime.fromtimestamp(1764200600, dt.UTC)


def test_key_control_match_ignores_blanks_but_nothing_else():
    assert dingtalk.holds_key(ding("RUNNING"), "CRM单号", KEY)
    assert dingtalk.holds_key(ding("RUNNING"), "TextField-1", KEY)  # by control id too
    assert not dingtalk.holds_key(ding("RUNNING"), "CRM单号", "crm-order-42-r2")
    info = {"apply_data": {"contents": [{"id": "Text-1", "value": {"text": f" {KEY} "}}]}}
    assert wecom.holds_key(info, "Text-1", KEY) and not wecom.holds_key(info, "Text-2", KEY)


TEMPLATE = {"template_content": {"controls": [
    {"property": {"control": "Text", "id": "Text-1", "title": [{"text": "CRM单号", "lang": "zh_CN"}], "require": 1}},
    {"property": {"control": "Text", "id": "Text-2", "title": [{"text": "客户", "lang": "zh_CN"}], "require": 1}},
    {"property": {"control": "Money", "id": "Money-3", "title": [{"text": "金额", "lang": "zh_CN"}], "require": 1}},
]}}
PAYLOAD = {"business_key": KEY, "originator": "li.si",
           "order": {"order_number": "SO-2026-0042", "customer_name": "深圳华南精密制造有限公司",
                     "total_amount": "128000.00"}}


def test_create_bodies_carry_the_key_in_its_control_and_wecoms_summary():
    body = dingtalk.start_request(PAYLOAD, process_code="PROC-X-1", key_control="CRM单号")
    assert body["originatorUserId"] == "li.si" and body["deptId"] == -1
    assert {"name": "CRM单号", "value": KEY} in body["formComponentValues"]
    assert all(isinstance(v["value"], str) for v in body["formComponentValues"])
    controls = wecom.control_ids(TEMPLATE, "CRM单号")
    apply = wecom.apply_request(PAYLOAD, template_id="tpl", controls=controls)
    assert {"control": "Text", "id": "Text-1", "value": {"text": KEY}} in apply["apply_data"]["contents"]
    assert {"control": "Money", "id": "Money-3", "value": {"new_money": "128000.00"}} in apply["apply_data"]["contents"]
    assert KEY in apply["summary_list"][0]["summary_info"][0]["text"]
    with pytest.raises(ValueError, match="originator"):
        dingtalk.start_request({**PAYLOAD, "originator": ""}, process_code="PROC-X-1", key_control="CRM单号")


def test_a_template_without_the_key_control_or_with_unknown_required_controls_is_refused():
    with pytest.raises(wecom.TemplateMismatch, match="CRM单号"):
        wecom.control_ids({"template_content": {"controls": TEMPLATE["template_content"]["controls"][1:]}}, "CRM单号")
    extra = {"property": {"control": "Date", "id": "Date-9", "title": [{"text": "交货日期", "lang": "zh_CN"}],
                          "require": 1}}
    with pytest.raises(wecom.TemplateMismatch, match="交货日期"):
        wecom.control_ids({"template_content": {"controls": [*TEMPLATE["template_content"]["controls"], extra]}},
                          "CRM单号")


def test_an_outcome_survives_the_outbox_result_round_trip():
    found = ApprovalOutcome("inst", "revoked", "COMPLETED/agree+REVOKE", KEY, "mgr", "ok",
                            dt.datetime(2026, 11, 27, tzinfo=dt.UTC), extra={"revoked_at": "2026-11-28T00:00:00+00:00"})
    assert outcome_from_detail(found.as_detail()) == found
    with pytest.raises(ValueError, match="unknown approval state"):
        ApprovalOutcome("i", "maybe", "?")
