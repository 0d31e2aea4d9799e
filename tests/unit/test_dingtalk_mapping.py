"""DingTalk mapping, table-driven: members, completed to-dos, notices and to-do bodies."""

from __future__ import annotations

import datetime as dt

import pytest

from canonical_model.records import MappingError
from connectors.dingtalk.mapping import (
    COMPLETED_BY_KEY,
    DEPARTMENTS_KEY,
    DETAIL_KEY,
    build_todo,
    build_work_notice,
    due_text,
    map_directory_user,
    map_todo_completion,
    todo_changes,
)

CHAIN = {
    "3": {"name": "华东销售部", "parent_id": 2, "leaders": ["mgr3"]},
    "2": {"name": "销售中心", "parent_id": 1, "leaders": ["dir2"]},
    "1": {"name": "星河精工仪器有限公司", "parent_id": None, "leaders": ["ceo"]},
}


def member(**fields: object) -> dict[str, object]:
    return {"userid": "rep1", "unionid": "union1iE", "name": "王伟", "mobile": "+86-13812345678",
            "email": "wangwei@xinghe.example.com", "title": "销售代表", "dept_id_list": [3], "active": True,
            DEPARTMENTS_KEY: CHAIN, **fields}


@pytest.mark.parametrize(("fields", "manager"), [
    ({"manager_userid": "direct9"}, "direct9"),  # DingTalk's 直属主管 wins
    ({}, "mgr3"),  # else the leader of the member's department
    ({"userid": "mgr3"}, "dir2"),  # a leader's manager: the parent department's leader
    ({"userid": "ceo", "dept_id_list": [1]}, None),  # the top has nobody above
    ({"manager_userid": "rep1"}, "mgr3"),  # a member is never their own manager
    ({DEPARTMENTS_KEY: {}}, None),  # no chain: no manager guessed
], ids=["direct", "dept-leader", "leader-of-parent", "top", "self-direct", "no-chain"])
def test_the_manager_comes_from_the_direct_manager_or_the_department_leaders(fields, manager):
    assert map_directory_user(member(**fields)).manager_ref == manager


def test_a_member_becomes_an_internal_user_with_both_dingtalk_ids():
    record = map_directory_user(member())
    assert (record.external_id, record.dingtalk_userid, record.dingtalk_unionid) == ("rep1", "rep1", "union1iE")
    assert (record.name, record.mobile, record.department, record.title) == ("王伟", "13812345678", "华东销售部",
                                                                             "销售代表")
    assert record.email == "wangwei@xinghe.example.com" and record.active and record.wecom_userid is None


@pytest.mark.parametrize(("fields", "reason"), [
    ({"userid": ""}, "userid: member has no userid"),
    ({"name": "  "}, "name: member rep1 has no name"),
    ({"name": 7}, "name: expected text"),
    ({"active": "yes"}, "active: expected true or false"),
    ({"dept_id_list": "3"}, "dept_id_list: expected a list"),
])
def test_unusable_members_are_refused_with_a_reason(fields, reason):
    with pytest.raises(MappingError, match=reason):
        map_directory_user(member(**fields))


def test_a_not_activated_member_is_inactive():
    assert map_directory_user(member(active=False)).active is False


def card(**fields: object) -> dict[str, object]:
    return {"taskId": "task1", "sourceId": "crm-task-42", "isDone": True, "modifiedTime": 1_767_225_600_000,
            DETAIL_KEY: {"done": True, "finishTime": 1_767_225_000_000, "modifierId": "union1iE"},
            COMPLETED_BY_KEY: "rep1", **fields}


def test_a_completed_card_says_who_and_when():
    record = map_todo_completion(card())
    assert (record.external_id, record.source_ref, record.done, record.completed_by_ref) == (
        "task1", "crm-task-42", True, "rep1")
    assert record.completed_at == dt.datetime(2025, 12, 31, 23, 50, tzinfo=dt.UTC)
    assert record.modified_at == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_without_a_finish_time_the_modification_time_is_when():
    record = map_todo_completion(card(**{DETAIL_KEY: {"done": True}}))
    assert record.completed_at == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.mark.parametrize(("fields", "reason"), [
    ({"taskId": None}, "taskId: to-do card has no taskId"),
    ({"modifiedTime": "yesterday"}, "modifiedTime: expected milliseconds"),
    ({DETAIL_KEY: {"done": "yes"}}, "isDone: expected true or false"),
    ({DETAIL_KEY: []}, f"{DETAIL_KEY}: expected an object"),
])
def test_unusable_cards_are_refused_with_a_reason(fields, reason):
    with pytest.raises(MappingError, match=reason):
        map_todo_completion(card(**fields))


REMINDER = {"task_id": 42, "kind": "due", "title": "发送报价单", "customer_name": "苏州恒瑞精密机械有限公司",
            "due_at": "2026-05-08T07:00:00+00:00", "assignee_name": "王伟",
            "profile_url": "https://hub.example/customers/7"}


def test_a_notice_is_an_action_card_to_the_profile_naming_the_task():
    msg = build_work_notice(REMINDER)
    card_body = msg["action_card"]
    assert msg["msgtype"] == "action_card" and card_body["single_url"] == "https://hub.example/customers/7"
    assert "发送报价单" in card_body["markdown"] and "苏州恒瑞精密机械有限公司" in card_body["markdown"]
    assert "#42" in card_body["markdown"] and "5月8日 15:00" in card_body["markdown"]
    # built again, it is byte for byte the same (DingTalk suppresses identical resends)
    assert build_work_notice(dict(REMINDER)) == msg
    # another task with the same title reads differently (identical notices arrive once a day)
    assert build_work_notice({**REMINDER, "task_id": 43}) != msg


def test_user_text_cannot_open_markdown_structure():
    msg = build_work_notice({**REMINDER, "title": "# 标题 [点我](http://evil.example)", "customer_name": "**粗体**"})
    markdown = msg["action_card"]["markdown"]
    assert r"\# 标题 \[点我\](http://evil.example)" in markdown and r"\*\*粗体\*\*" in markdown


@pytest.mark.parametrize(("change", "problem"), [
    ({"profile_url": "javascript:alert(1)"}, "http"), ({"title": " "}, "title")])
def test_notices_refuse_bad_input(change, problem):
    with pytest.raises(ValueError, match=problem):
        build_work_notice({**REMINDER, **change})


TODO = {"task_id": 42, "source_id": "crm-task-42", "title": "发送报价单", "customer_name": "苏州恒瑞精密",
        "description": "CRM 自动生成的跟进任务", "due_at": "2026-05-08T07:00:00+00:00", "done": False,
        "detail_url": "https://hub.example/customers/7"}


def test_a_todo_body_addresses_the_executor_by_union_id():
    body = build_todo(TODO, "union1iE")
    assert body["sourceId"] == "crm-task-42" and body["executorIds"] == ["union1iE"]
    assert body["subject"] == "发送报价单（苏州恒瑞精密）" and body["dueTime"] == 1_778_223_600_000
    assert body["detailUrl"] == {"appUrl": TODO["detail_url"], "pcUrl": TODO["detail_url"]}


def test_changes_bring_a_todo_in_line_but_never_reopen_it():
    existing = {**build_todo(TODO, "u"), "done": False}
    assert todo_changes(existing, TODO) == {}
    moved = {**TODO, "due_at": "2026-05-09T07:00:00+00:00", "title": "确认合同条款"}
    assert todo_changes(existing, moved) == {"dueTime": 1_778_310_000_000, "subject": "确认合同条款（苏州恒瑞精密）"}
    assert todo_changes(existing, {**TODO, "done": True}) == {"done": True}
    # ticked off in DingTalk, still open in the CRM: the hub does not undo the person's tick
    assert "done" not in todo_changes({**existing, "done": True}, TODO)


def test_due_times_read_in_shanghai():
    assert due_text(dt.datetime(2026, 5, 8, 16, 30, tzinfo=dt.UTC)) == "5月9日 00:30"
    with pytest.raises(ValueError):
        due_text(dt.datetime(2026, 5, 8, 16, 30))
