"""Property: every mapping turns any JSON-like input into a valid canonical record or a
MappingError / ValidationError with a reason, and never raises anything else.

The engine quarantines exactly those two (issue 10): any other exception is treated as a
bug in the mapping and stops the run, so a mapping that raised TypeError on a number where
it expected text would stop every sync of that stream. Inputs: valid-looking records with a
few fields replaced by hostile values (wrong types, NaN, 1E+400, dates that do not exist,
NUL, lone surrogates, very long text), and records made of hostile values only.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from canonical_model.records import CanonicalRecord, MappingError
from connectors.kingdee import mapping as kingdee
from connectors.wecom import mapping as wecom
from hub.engine.quarantine import exact_json, readable_json

PROPERTY = settings(max_examples=250, deadline=None, database=None, derandomize=os.environ.get("CI") == "true",
                    suppress_health_check=[HealthCheck.too_slow])

ODD_CHARACTERS = ["\x00", "\ud800", "\udfff", "\u200b", "\ufeff", "\u0301", "𠀀", "\u202e", "\n", "１"]
odd_text = st.lists(st.one_of(st.sampled_from(ODD_CHARACTERS), st.characters()), max_size=12).map("".join)
long_text = st.builds(lambda unit, n: unit * n, st.sampled_from(["a", "公", "\x00", " ", "9"]),
                      st.integers(0, 1200))
number_text = st.sampled_from([
    "1E+400", "-1E+400", "NaN", "-NaN", "Infinity", "-inf", "-0", "1e-400", "0.000000001", "12345678901234567.89",
    "9999999999999999.99", "1_000", "１２３", "1e999999999", "1E-999999999999", "0x10", " 12 ", "",
])
date_text = st.sampled_from([
    "2024-13-99", "2024-02-30T00:00:00", "0000-01-01", "0001-01-01T00:00:00", "9999-12-31T23:59:59+14:00",
    "/Date(99999999999999999)/", "/Date(-62135596800001)/", "/Date(" + "9" * 5000 + ")/", "2024-05-01T10:20:30",
    "2024-05-01T10:20:30.123", "/Date(1714530030000+0800)/", "2024-05-01 10:20:30", "上周五", "",
])
def huge_integer() -> int:
    """A whole number Python cannot even print (int → text stops at 4300 digits)."""
    return 10**5000


scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.builds(huge_integer), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20), odd_text, long_text, number_text, date_text,
)
json_like = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                         | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)


def mutated(base: dict[str, Any], keys: tuple[str, ...]) -> st.SearchStrategy[dict[str, Any]]:
    """``base`` with some of ``keys`` replaced by hostile values or removed."""
    changes = st.dictionaries(st.sampled_from(keys), st.one_of(json_like, st.just(_REMOVE)), min_size=1,
                              max_size=4)
    return changes.map(lambda c: {k: v for k, v in {**base, **c}.items() if v is not _REMOVE})


def hostile(keys: tuple[str, ...]) -> st.SearchStrategy[dict[str, Any]]:
    """A record of hostile values only, over the keys the mapping reads (and others)."""
    return st.fixed_dictionaries({}, optional={key: json_like for key in keys})


_REMOVE = object()


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
