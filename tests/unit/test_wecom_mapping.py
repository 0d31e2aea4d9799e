"""WeCom mapping: tables of real-looking records (Chinese text included) and card byte limits."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from canonical_model.records import MappingError
from connectors.wecom.mapping import (
    DEPARTMENTS_KEY,
    ReminderTask,
    build_reminder_card,
    card_task_id,
    format_due,
    map_directory_user,
    map_external_contact,
    normalize_mobile,
    truncate_utf8,
)

DEPARTMENTS = {
    "1": {"name": "星河精工仪器有限公司", "parentid": 0, "department_leader": ["liusiyuan"]},
    "2": {"name": "销售中心", "parentid": 1, "department_leader": ["sunwenbo"]},
    "3": {"name": "华东销售部", "parentid": 2, "department_leader": ["caoping"]},
}


def member(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "userid": "humin", "name": "胡敏", "department": [3], "main_department": 3, "position": "高级销售代表",
        "mobile": "18682222839", "email": "humin@xinghe-precision.example.com", "status": 1,
        "direct_leader": [], "is_leader_in_dept": [0], DEPARTMENTS_KEY: DEPARTMENTS,
    }
    base.update(overrides)
    return base


# ---------------------------------------------------------------- directory

@pytest.mark.parametrize(
    ("case", "raw", "expected"),
    [
        ("rep, manager from department_leader", member(),
         {"name": "胡敏", "department": "华东销售部", "manager_ref": "caoping", "mobile": "18682222839",
          "title": "高级销售代表", "active": True}),
        ("rep with direct_leader wins over department_leader", member(direct_leader=["sunwenbo"]),
         {"manager_ref": "sunwenbo"}),
        ("department head: manager is the parent's leader", member(userid="caoping", name="曹平"),
         {"manager_ref": "sunwenbo", "department": "华东销售部"}),
        ("general manager: nobody above", member(userid="liusiyuan", name="刘思远", department=[1], main_department=1),
         {"manager_ref": None, "department": "星河精工仪器有限公司"}),
        ("new app: no mobile/email fields", member(mobile=None, email=None),
         {"mobile": None, "email": None}),
        ("+86 mobile with separators", member(mobile="+86 186-8222-2839"), {"mobile": "18682222839"}),
        ("biz_mail when email empty", member(email="", biz_mail="humin@corp.example.com"),
         {"email": "humin@corp.example.com"}),
        ("disabled member is inactive", member(status=2), {"active": False}),
        ("not yet activated member stays active", member(status=4), {"active": True}),
        ("no department index (simplelist fallback)", member(**{DEPARTMENTS_KEY: {}}),
         {"department": None, "manager_ref": None}),
        ("name with surrounding blanks", member(name="  欧阳 娜娜 "), {"name": "欧阳 娜娜"}),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_directory_user_mapping(case, raw, expected):
    # given a WeCom member, when mapped, then the canonical fields are as expected
    record = map_directory_user(raw)
    assert record.source_system == "wecom" and record.source_object == "user"
    assert record.external_id == raw["userid"] == record.wecom_userid
    for field, value in expected.items():
        assert getattr(record, field) == value, (case, field)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [(member(userid=""), "no userid"), (member(name="  "), "has no name"), (member(name=None), "has no name")],
)
def test_directory_user_without_identity_is_a_mapping_error(raw, reason):
    with pytest.raises(MappingError, match=reason):
        map_directory_user(raw)


# ---------------------------------------------------------------- external contacts

def bulk(contact: dict[str, object], follow: dict[str, object]) -> dict[str, object]:
    return {"external_contact": contact, "follow_info": follow}


WECOM_USER = {"external_userid": "wmAAA", "name": "郑子涵", "type": 2, "position": "采购经理",
              "corp_name": "恒瑞精密", "corp_full_name": "深圳恒瑞精密机械股份有限公司"}
WECHAT_USER = {"external_userid": "wmBBB", "name": "老王🚀", "type": 1}
FOLLOW = {"userid": "humin", "remark": "郑子涵-恒瑞精密", "remark_corp_name": "恒瑞精密",
          "remark_mobiles": ["13753870627"], "createtime": 1714108261, "tag_id": ["etAAAA0001"]}


@pytest.mark.parametrize(
    ("case", "raw", "expected"),
    [
        ("WeCom user: corp_full_name preferred", bulk(WECOM_USER, FOLLOW),
         {"name": "郑子涵", "corp_name": "深圳恒瑞精密机械股份有限公司", "mobile": "13753870627",
          "owner_ref": "humin", "title": "采购经理"}),
        ("corp_name when no full name", bulk({**WECOM_USER, "corp_full_name": ""}, FOLLOW),
         {"corp_name": "恒瑞精密"}),
        ("WeChat user: company from the rep's remark", bulk(WECHAT_USER, {**FOLLOW, "remark_corp_name": "无锡华锐电子科技有限公司"}),
         {"name": "老王🚀", "corp_name": "无锡华锐电子科技有限公司", "title": None}),
        ("WeChat user without any company", bulk(WECHAT_USER, {**FOLLOW, "remark_corp_name": "", "remark_mobiles": []}),
         {"corp_name": None, "mobile": None}),
        ("blank nickname falls back to the remark", bulk({**WECHAT_USER, "name": "\u3000"}, FOLLOW),
         {"name": "郑子涵-恒瑞精密"}),
        ("detail reply: earliest follow user owns", {"external_contact": WECOM_USER, "follow_user": [
            {**FOLLOW, "userid": "zhuxia", "createtime": 1714200000}, {**FOLLOW, "userid": "humin", "createtime": 1700000000}]},
         {"owner_ref": "humin"}),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_external_contact_mapping(case, raw, expected):
    record = map_external_contact(raw)
    assert record.source_object == "external_contact"
    assert record.external_id == raw["external_contact"]["external_userid"] == record.wecom_external_userid
    for field, value in expected.items():
        assert getattr(record, field) == value, (case, field)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (bulk({**WECHAT_USER, "name": "  "}, {**FOLLOW, "remark": ""}), "no usable name"),
        (bulk({**WECHAT_USER, "external_userid": ""}, FOLLOW), "no external_userid"),
        ({"follow_info": FOLLOW}, "no external_contact"),
    ],
)
def test_unusable_external_contacts_are_mapping_errors(raw, reason):
    with pytest.raises(MappingError, match=reason):
        map_external_contact(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("13800000000", "13800000000"), ("+86 138 0000 0000", "13800000000"), ("86-13800000000", "13800000000"),
     ("021-62345678", "02162345678"), ("", None), (None, None), ("+852 9123 4567", "+85291234567")],
)
def test_mobile_normalization(raw, expected):
    assert normalize_mobile(raw) == expected


# ---------------------------------------------------------------- reminder cards

SHANGHAI_3PM_UTC = dt.datetime(2024, 5, 8, 7, 0, tzinfo=dt.UTC)
PROFILE = "https://hub.example.com/customers/7"


def task(**overrides: object) -> ReminderTask:
    values: dict[str, object] = {"task_id": 42, "title": "回访采购经理，确认年度框架协议报价",
                                 "customer_name": "苏州恒瑞精密机械有限公司", "due_at": SHANGHAI_3PM_UTC,
                                 "assignee_name": "胡敏"}
    values.update(overrides)
    return ReminderTask(**values)  # type: ignore[arg-type]


def test_template_card_is_a_text_notice_with_action_customer_due_and_link():
    card = build_reminder_card(task(), profile_url=PROFILE, kind="due")
    body = card["template_card"]
    assert card["msgtype"] == "template_card" and body["card_type"] == "text_notice"
    assert body["card_action"] == {"type": 1, "url": PROFILE}  # mandatory for text_notice
    assert body["main_title"]["title"] == "待办即将到期"
    assert body["sub_title_text"] == "回访采购经理，确认年度框架协议报价"
    assert {"keyname": "客户", "value": "苏州恒瑞精密机械有限公司"} in body["horizontal_content_list"]
    assert {"keyname": "截止", "value": "2024-05-08 15:00（周三）"} in body["horizontal_content_list"]
    assert body["task_id"] == "crm-42-due-202405080700"


def test_textcard_shows_due_time_in_shanghai_and_links_the_profile():
    card = build_reminder_card(task(), profile_url=PROFILE, kind="overdue_manager", msgtype="textcard")
    body = card["textcard"]
    assert body["title"] == "下属待办已逾期｜回访采购经理，确认年度框架协议报价"
    assert '<div class="gray">截止 2024-05-08 15:00（周三）</div>' in body["description"]
    assert "客户：苏州恒瑞精密机械有限公司" in body["description"] and "负责人：胡敏" in body["description"]
    assert body["url"] == PROFILE and len(body["btntxt"]) <= 4


def test_user_text_is_html_escaped_in_textcards():
    card = build_reminder_card(task(customer_name="A&B <贸易> 公司"), profile_url=PROFILE, kind="due", msgtype="textcard")
    assert "A&amp;B &lt;贸易&gt; 公司" in card["textcard"]["description"]


@settings(max_examples=80, deadline=None)
@given(
    title=st.text(min_size=1, max_size=600).filter(lambda s: s.strip()),
    customer=st.text(min_size=1, max_size=300).filter(lambda s: s.strip()),
    assignee=st.one_of(st.none(), st.text(min_size=1, max_size=80).filter(lambda s: s.strip())),
    kind=st.sampled_from(["due", "overdue", "overdue_manager", "uncontacted_24h", "weird kind/√"]),
)
def test_cards_always_respect_wecom_byte_limits(title, customer, assignee, kind):
    # given any task text (CJK, emoji, markup characters), when rendered
    t = task(title=title, customer_name=customer, assignee_name=assignee)
    textcard = build_reminder_card(t, profile_url=PROFILE, kind=kind, msgtype="textcard")["textcard"]
    template = build_reminder_card(t, profile_url=PROFILE, kind=kind)["template_card"]
    # then textcard title ≤128 B, description ≤512 B, task_id ≤128 B, all valid UTF-8 text
    assert len(textcard["title"].encode("utf-8")) <= 128
    assert len(textcard["description"].encode("utf-8")) <= 512
    assert len(template["task_id"].encode("utf-8")) <= 128 and template["task_id"].isascii()
    assert len(template["main_title"]["title"]) <= 36 and len(template["sub_title_text"]) <= 160
    json.dumps(textcard, ensure_ascii=False).encode("utf-8")


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("苏州恒瑞精密", 9, "苏州…"),  # 3 B per character; the ellipsis takes 3
        ("苏州恒瑞精密", 18, "苏州恒瑞精密"),
        ("ab苏州", 5, "ab…"),
        ("🚀🚀", 6, "…"),
    ],
)
def test_truncate_utf8_cuts_on_character_boundaries(text, limit, expected):
    cut = truncate_utf8(text, limit)
    assert cut == expected and len(cut.encode("utf-8")) <= limit


def test_card_is_deterministic_for_identical_inputs():
    # WeCom's duplicate check compares request JSON: a rebuilt card must be identical
    assert build_reminder_card(task(), profile_url=PROFILE, kind="due") == build_reminder_card(
        task(), profile_url=PROFILE, kind="due")


def test_task_ids_differ_by_kind_and_due_time_and_fit_128_bytes():
    a = card_task_id(42, "due", SHANGHAI_3PM_UTC)
    b = card_task_id(42, "overdue_manager", SHANGHAI_3PM_UTC)
    c = card_task_id(42, "due", SHANGHAI_3PM_UTC + dt.timedelta(days=1))
    assert len({a, b, c}) == 3
    long_id = card_task_id("x" * 200, "due", SHANGHAI_3PM_UTC)
    assert len(long_id.encode()) <= 128


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"task": task(due_at=dt.datetime(2024, 5, 8, 15, 0))}, "timezone-aware"),
        ({"task": task(), "profile_url": "javascript:alert(1)"}, "http"),
        ({"task": task(title="  ")}, "title"),
    ],
)
def test_card_builder_refuses_bad_input(kwargs, error):
    args = {"profile_url": PROFILE, "kind": "due", **kwargs}
    with pytest.raises(ValueError, match=error):
        build_reminder_card(args.pop("task"), **args)


def test_due_display_uses_asia_shanghai():
    assert format_due(dt.datetime(2024, 12, 31, 16, 30, tzinfo=dt.UTC)) == "2025-01-01 00:30（周三）"
