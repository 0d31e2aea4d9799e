"""Property: every mapping turns any JSON-like input into a valid canonical record or a
MappingError / ValidationError with a reason, and never raises anything else.

The engine quarantines exactly those two (issue 10): any other exception is treated as a
bug in the mapping and stops the run, so a mapping that raised TypeError on a number where
it expected text would stop every sync of that stream. Inputs: valid-looking records with a
few fields replaced by hostile values (wrong types, NaN, 1E+400, dates that do not exist,
NUL, lone surrogates, very long text, credit codes that fail their checksum), and records
made of hostile values only. Kingdee, Yonyou, WeCom and DingTalk; the CRM's records come in
through the API (tests/crm_api/test_hostile_input.py, the schemathesis fuzz tests).

A refusal also says *which* field: a record with exactly one bad field is refused naming
that field, by the vendor's name or the canonical one (the quarantine reason a person reads).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from canonical_model.records import CanonicalRecord, MappingError
from connectors.dingtalk import mapping as dingtalk
from connectors.kingdee import mapping as kingdee
from connectors.wecom import mapping as wecom
from connectors.yonyou import mapping as yonyou
from hub.engine.quarantine import exact_json, readable_json
from tests.support.hostile_values import PROPERTY, hostile, json_like, mutated


def assert_record_or_reason(map_record: Callable[[Any], Any], raw: Any) -> None:
    """The property: a valid canonical record, or a readable refusal; nothing else."""
    try:
        record = map_record(raw)
    except (MappingError, ValidationError) as exc:
        assert str(exc).strip()
        return
    assert isinstance(record, CanonicalRecord)
    again: BaseModel = type(record).model_validate(record.model_dump())  # still valid: storable as it is
    assert again == record


# -- Kingdee ------------------------------------------------------------------------------------

CUSTOMER = {
    "FCUSTID": 100231, "FNumber": "CUST00017", "FName": "深圳市华创电子科技有限公司", "FSOCIALCRECODE": "91440300708461136T",
    "FTEL": "0755-86123456", "FADDRESS": "广东省深圳市南山区科技路88号", "FSELLER.FNumber": "SP003",
    "FGroup.FName": "信息技术", "FTRADINGCURRID.FNumber": "PRE001", "FForbidStatus": "A", "FDocumentStatus": "C",
    "FModifyDate": "2024-05-01T10:20:30.123",
}
LINE = {"FID": 100501, "FSaleOrderEntry_FEntryID": 7, "FMaterialId.FNumber": "WL0001",
        "FMaterialId.FName": "伺服电机 A型", "FQty": 2.0, "FTaxPrice": 565.0, "FEntryTaxRate": 13.0, "FAllAmount": 1130.0}
ORDER = {
    "FID": 100501, "FBillNo": "XSDD000123", "FDate": "2024-04-28T00:00:00", "FCustId.FNumber": "CUST00017",
    "FSalerId.FNumber": "SP003", "FDocumentStatus": "C", "FCloseStatus": "A", "FSettleCurrId.FNumber": "PRE001",
    "FBillAllAmount": 1130.0, "FModifyDate": "2024-05-02T09:00:00", "lines": [LINE],
}
RECEIVABLE = {
    "FID": 9001, "FBillNo": "AR00000042", "FDATE": "2024-03-01T00:00:00", "FENDDATE_H": "2024-03-31T00:00:00",
    "FCUSTOMERID.FNumber": "CUST00017", "FCURRENCYID.FNumber": "PRE002", "FALLAMOUNTFOR": 10000.0,
    "FWRITTENOFFAMOUNTFOR": 2500.0, "FNOTWRITTENOFFAMOUNTFOR": 7500.0, "FDocumentStatus": "C", "FCancelStatus": "A",
    "FModifyDate": "2024-04-02T11:00:00",
}
RECEIPT = {
    "FID": 7001, "FBillNo": "SKD00000009", "FDATE": "2024-04-02T00:00:00", "FCONTACTUNITTYPE": "BD_Customer",
    "FCONTACTUNIT.FNumber": "CUST00017", "FCURRENCYID.FNumber": "PRE007", "FREALRECAMOUNTFOR": 2500.5,
    "FDocumentStatus": "C", "FModifyDate": "2024-04-02T11:00:00",
}

KINGDEE = [
    (kingdee.map_customer, CUSTOMER),
    (kingdee.map_sales_order, ORDER),
    (kingdee.map_receivable, RECEIVABLE),
    (kingdee.map_receipt, RECEIPT),
]


def test_the_valid_examples_map() -> None:
    # the hostile records below are mutations of these: they must be valid to begin with
    for map_record, base in KINGDEE:
        assert isinstance(map_record(base), CanonicalRecord)
    assert wecom.map_directory_user(MEMBER).external_id == "humin"
    assert wecom.map_external_contact(CONTACT).external_id == "wmXyz001"


@pytest.mark.parametrize(("map_record", "base"), KINGDEE, ids=lambda v: getattr(v, "__name__", ""))
@PROPERTY
@given(data=st.data())
def test_kingdee_mappings_refuse_hostile_fields_with_a_reason(map_record: Any, base: dict[str, Any],
                                                               data: st.DataObject) -> None:
    raw = data.draw(mutated(base, tuple(base)))
    assert_record_or_reason(map_record, raw)


@pytest.mark.parametrize(("map_record", "base"), KINGDEE, ids=lambda v: getattr(v, "__name__", ""))
@PROPERTY
@given(data=st.data())
def test_kingdee_mappings_refuse_records_of_hostile_values(map_record: Any, base: dict[str, Any],
                                                            data: st.DataObject) -> None:
    assert_record_or_reason(map_record, data.draw(hostile(tuple(base))))


@PROPERTY
@given(line=mutated(LINE, tuple(LINE)), extra=st.lists(json_like, max_size=2))
def test_kingdee_order_lines_refuse_hostile_fields_with_a_reason(line: dict[str, Any], extra: list[Any]) -> None:
    assert_record_or_reason(kingdee.map_sales_order, {**ORDER, "lines": [line, *extra]})


@PROPERTY
@given(raw=json_like)
def test_kingdee_mappings_refuse_anything_that_is_not_a_record(raw: Any) -> None:
    for map_record, _ in KINGDEE:
        assert_record_or_reason(map_record, raw)


@PROPERTY
@given(headers=st.lists(hostile(("FID", "FBillNo")), max_size=4),
       lines=st.lists(hostile(("FID", "FSaleOrderEntry_FEntryID")), max_size=6))
def test_grouping_order_rows_never_fails_on_odd_ids(headers: list[dict[str, Any]],
                                                     lines: list[dict[str, Any]]) -> None:
    grouped = kingdee.group_order_rows(headers, lines)
    assert len(grouped) == len(headers)


# -- WeCom --------------------------------------------------------------------------------------

MEMBER = {
    "userid": "humin", "name": "胡敏", "department": [3], "main_department": 3, "position": "高级销售代表",
    "mobile": "18682222839", "email": "humin@xinghe-precision.example.com", "biz_mail": "", "status": 1,
    "direct_leader": [], wecom.DEPARTMENTS_KEY: {
        "2": {"name": "销售中心", "parentid": 1, "department_leader": ["sunwenbo"]},
        "3": {"name": "华东销售部", "parentid": 2, "department_leader": ["caoping"]},
    },
}
CONTACT = {
    "external_contact": {"external_userid": "wmXyz001", "name": "王经理", "position": "采购经理",
                         "corp_full_name": "苏州恒瑞精密机械有限公司", "corp_name": "恒瑞精密"},
    "follow_info": {"userid": "humin", "remark": "王总", "remark_corp_name": "恒瑞", "remark_mobiles": ["13912345678"],
                    "createtime": 1714530030},
}


@PROPERTY
@given(raw=mutated(MEMBER, tuple(MEMBER)))
def test_wecom_directory_mapping_refuses_hostile_fields_with_a_reason(raw: dict[str, Any]) -> None:
    assert_record_or_reason(wecom.map_directory_user, raw)


@PROPERTY
@given(departments=json_like, leaders=json_like)
def test_wecom_directory_mapping_survives_any_department_index(departments: Any, leaders: Any) -> None:
    raw = {**MEMBER, wecom.DEPARTMENTS_KEY: departments}
    assert_record_or_reason(wecom.map_directory_user, raw)
    index = {"3": {"name": "华东销售部", "parentid": 2, "department_leader": leaders}}
    assert_record_or_reason(wecom.map_directory_user, {**MEMBER, wecom.DEPARTMENTS_KEY: index})


@PROPERTY
@given(contact=mutated(CONTACT["external_contact"], tuple(CONTACT["external_contact"])),  # type: ignore[arg-type]
       follow=mutated(CONTACT["follow_info"], tuple(CONTACT["follow_info"])),  # type: ignore[arg-type]
       follow_users=st.none() | st.lists(json_like, max_size=3) | json_like)
def test_wecom_contact_mapping_refuses_hostile_fields_with_a_reason(contact: dict[str, Any], follow: dict[str, Any],
                                                                    follow_users: Any) -> None:
    assert_record_or_reason(wecom.map_external_contact, {"external_contact": contact, "follow_info": follow})
    assert_record_or_reason(wecom.map_external_contact, {"external_contact": contact, "follow_user": follow_users})


@PROPERTY
@given(raw=json_like)
def test_wecom_mappings_refuse_anything_that_is_not_a_record(raw: Any) -> None:
    assert_record_or_reason(wecom.map_directory_user, raw)
    assert_record_or_reason(wecom.map_external_contact, raw)
    assert_record_or_reason(wecom.map_external_contact, {"external_contact": raw, "follow_info": raw})


# -- Yonyou ------------------------------------------------------------------------------------

MERCHANT = {"id": "1900000000000000001", "code": "YYC00001", "name": {"simplifiedName": "苏州恒瑞精密机械有限公司"},
            "creditCode": "91320505MA1MXXXX4X", "contactTel": "0512-66668888", "address": "苏州市高新区1号",
            "customerClass_name": "制造业", "professSalesman_code": "YG0003", "transCurrency_code": "CNY",
            "pubts": "2026-11-20 10:20:30"}
ORDER_ROW = {"id": "7", "code": "SO1", "vouchdate": "2026-11-01 00:00:00", "agentId_code": "YYC00001",
             "payMoney": 200, "orderPrices!currency": "CNY", "verifystate": 2, "pubts": "2026-11-02 09:00:00",
             "orderDetails_lineno": 1, "orderDetails_productId_code": "P-1001",
             "orderDetails_productId_name": "工业网关 G200", "orderDetails_qty": 2, "orderDetails_oriTaxUnitPrice": 100,
             "orderDetails_oriSum": 200, "orderDetails_taxRate": 13}
[YONYOU_ORDER] = yonyou.group_order_rows([ORDER_ROW])
AR = {"id": "9", "code": "ARE00000001", "accDate": "2026-10-01 00:00:00", "customer_code": "YYC00001",
      "currency_code": "CNY", "oriAmount": 1000, "bodyItem_oriBalance": "250.004",
      "bodyItem_grandsonItem_expireDate": "2026-10-31 00:00:00", "verifystate": 2, "pubts": "2026-11-03 08:00:00"}

YONYOU = [
    (yonyou.map_customer, MERCHANT),
    (yonyou.map_sales_order, YONYOU_ORDER),
    (yonyou.map_receivable, AR),
]


@pytest.mark.parametrize(("map_record", "base"), YONYOU, ids=lambda v: getattr(v, "__name__", ""))
@PROPERTY
@given(data=st.data())
def test_yonyou_mappings_refuse_hostile_fields_with_a_reason(map_record: Any, base: dict[str, Any],
                                                              data: st.DataObject) -> None:
    assert_record_or_reason(map_record, data.draw(mutated(base, tuple(base))))
    assert_record_or_reason(map_record, data.draw(hostile(tuple(base))))


@PROPERTY
@given(line=mutated(YONYOU_ORDER[yonyou.ORDER_LINES][0], tuple(YONYOU_ORDER[yonyou.ORDER_LINES][0])),
       extra=st.lists(json_like, max_size=2))
def test_yonyou_order_lines_refuse_hostile_fields_with_a_reason(line: dict[str, Any], extra: list[Any]) -> None:
    assert_record_or_reason(yonyou.map_sales_order, {**YONYOU_ORDER, yonyou.ORDER_LINES: [line, *extra]})


@PROPERTY
@given(rows=st.lists(st.one_of(mutated(ORDER_ROW, ("id", "code", "orderDetails_lineno")), json_like), max_size=6))
def test_yonyou_grouping_of_order_rows_never_fails_on_odd_rows(rows: list[Any]) -> None:
    try:
        grouped = yonyou.group_order_rows(rows)
    except MappingError as exc:  # a row that is no object is refused with a reason, not a crash
        assert str(exc).strip()
        return
    for order in grouped:
        assert_record_or_reason(yonyou.map_sales_order, order)


@PROPERTY
@given(raw=json_like)
def test_yonyou_mappings_refuse_anything_that_is_not_a_record(raw: Any) -> None:
    for map_record, _ in YONYOU:
        assert_record_or_reason(map_record, raw)


# -- DingTalk -----------------------------------------------------------------------------------

DING_MEMBER = {"userid": "rep1", "unionid": "union1iE", "name": "王伟", "mobile": "+86-13812345678",
               "email": "wangwei@xinghe.example.com", "title": "销售代表", "dept_id_list": [3], "active": True,
               "manager_userid": "mgr9", dingtalk.DEPARTMENTS_KEY: {
                   "3": {"name": "华东销售部", "parent_id": 2, "leaders": ["mgr3"]},
                   "2": {"name": "销售中心", "parent_id": 1, "leaders": ["dir2"]}}}
CARD = {"taskId": "task1", "sourceId": "crm-task-42", "isDone": True, "modifiedTime": 1_767_225_600_000,
        dingtalk.DETAIL_KEY: {"done": True, "finishTime": 1_767_225_000_000, "modifierId": "union1iE"},
        dingtalk.COMPLETED_BY_KEY: "rep1"}
DINGTALK = [(dingtalk.map_directory_user, DING_MEMBER), (dingtalk.map_todo_completion, CARD)]


@pytest.mark.parametrize(("map_record", "base"), DINGTALK, ids=lambda v: getattr(v, "__name__", ""))
@PROPERTY
@given(data=st.data())
def test_dingtalk_mappings_refuse_hostile_fields_with_a_reason(map_record: Any, base: dict[str, Any],
                                                                data: st.DataObject) -> None:
    assert_record_or_reason(map_record, data.draw(mutated(base, tuple(base))))
    assert_record_or_reason(map_record, data.draw(hostile(tuple(base))))


@PROPERTY
@given(chain=json_like, detail=json_like)
def test_dingtalk_mappings_survive_any_department_chain_or_detail(chain: Any, detail: Any) -> None:
    assert_record_or_reason(dingtalk.map_directory_user, {**DING_MEMBER, dingtalk.DEPARTMENTS_KEY: chain})
    assert_record_or_reason(dingtalk.map_todo_completion, {**CARD, dingtalk.DETAIL_KEY: detail})


@PROPERTY
@given(raw=json_like)
def test_dingtalk_mappings_refuse_anything_that_is_not_a_record(raw: Any) -> None:
    for map_record, _ in DINGTALK:
        assert_record_or_reason(map_record, raw)


# -- a refusal names what was wrong ---------------------------------------------------------------

ALL_MAPPINGS = [*KINGDEE, *YONYOU, *DINGTALK, (wecom.map_directory_user, MEMBER)]


@pytest.mark.parametrize(("map_record", "base"), ALL_MAPPINGS,
                         ids=lambda v: f"{getattr(v, '__module__', '').split('.')[-2]}.{v.__name__}"
                         if callable(v) else "")
@PROPERTY
@given(data=st.data())
def test_a_refused_record_with_one_bad_field_is_refused_naming_that_field(map_record: Any, base: dict[str, Any],
                                                                          data: st.DataObject) -> None:
    # given a valid record with exactly one field replaced by a hostile value
    key = data.draw(st.sampled_from(sorted(base)))
    raw = {**base, key: data.draw(json_like)}
    try:
        map_record(raw)
    except MappingError as exc:
        # then the reason names the field: by the vendor's name for it, by the hub's (the
        # canonical record's field it fills), or by the order line it sits in
        reason = str(exc)
        named = key in reason or reason.startswith("line ") or any(
            reason.startswith(f"{name}:") for name in canonical_fields(map_record(base)))
        assert named, (key, reason)
    except ValidationError as exc:
        assert all(error["loc"] for error in exc.errors()), str(exc)


def canonical_fields(record: BaseModel) -> set[str]:
    """The field names of a canonical record and of its lines."""
    names = set(type(record).model_fields)
    for line in getattr(record, "lines", ()):
        names |= set(type(line).model_fields)
    return names


# -- what a quarantine row keeps of such a record ----------------------------------------------

@PROPERTY
@given(payload=json_like)
def test_any_record_has_an_exact_json_text_and_a_readable_jsonb_copy(payload: Any) -> None:
    import json

    exact = exact_json(payload)
    assert "\x00" not in exact and not any("\ud800" <= c <= "\udfff" for c in exact)
    try:  # what a connector can hand over: a record decoded from JSON text
        decoded = json.loads(json.dumps(payload))
    except ValueError:  # an integer too long to print is no JSON: no round trip to promise
        decoded = None
    if decoded is not None:
        assert exact_json(json.loads(exact_json(decoded))) == exact_json(decoded)  # a retry reads the same record
    readable = readable_json(payload)
    json.loads(readable, parse_constant=lambda token: pytest.fail(f"jsonb cannot hold {token}"))
    assert "\\u0000" not in readable and not any("\ud800" <= c <= "\udfff" for c in readable)
