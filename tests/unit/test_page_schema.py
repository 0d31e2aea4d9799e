"""A page validated at once (canonical_model.pages) gives exactly the records the pydantic
model gives one by one, or gives up (None) and leaves the page to the per-record mapping,
whose refusals are the readable ones. It never accepts a record the model refuses.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError, field_validator, model_validator

from canonical_model.pages import PagedMapping, PageSchema
from canonical_model.records import (
    RECEIVABLE_PAGE,
    InternalUserRecord,
    MappingError,
    ReceivableRecord,
    ReceivableRow,
)
from connectors.kingdee import mapping as kingdee
from connectors.yonyou import mapping as yonyou
from tests.support.hostile_values import PROPERTY, json_like, mutated, odd_text
from tests.support.synthetic import SYNTHETIC_RECEIVABLE, SyntheticSource

GOOD = SyntheticSource(customers=10, receivables=20).receivable_row(7)
KINGDEE = {
    "FID": 9001, "FBillNo": "AR00000042", "FDATE": "2024-03-01T00:00:00", "FENDDATE_H": "2024-03-31T00:00:00",
    "FCUSTOMERID.FNumber": "CUST00017", "FCURRENCYID.FNumber": "PRE002", "FALLAMOUNTFOR": 10000.0,
    "FWRITTENOFFAMOUNTFOR": 2500.0, "FNOTWRITTENOFFAMOUNTFOR": 7500.0, "FDocumentStatus": "C", "FCancelStatus": "A",
    "FModifyDate": "2024-04-02T11:00:00",
}
YONYOU = {"id": "9", "code": "ARE00000001", "accDate": "2026-10-01 00:00:00", "customer_code": "YYC00001",
          "currency_code": "CNY", "oriAmount": 1000, "bodyItem_oriBalance": "250.00",
          "bodyItem_grandsonItem_expireDate": "2026-10-31 00:00:00", "verifystate": 2, "pubts": "2026-11-03 08:00:00"}
FIELDS = tuple(GOOD)


def values(**changes: Any) -> dict[str, Any]:
    """A valid receivable's field values (as a mapping hands them to the model), changed."""
    return {"source_system": "kingdee", "source_object": "AR_receivable", "external_id": "AR1", "bill_number": "AR1",
            "customer_ref": "C1", "bill_date": dt.date(2026, 1, 5), "due_date": dt.date(2026, 2, 5),
            "currency": "CNY", "amount": Decimal("100.00"), "open_amount": Decimal("40.5"),
            "modified_at": dt.datetime(2026, 1, 5, 10, tzinfo=dt.UTC), "status": "C", **changes}


def per_record(mapping: PagedMapping[Any], raw: Any) -> dict[str, Any] | None:
    """The per-record mapping's fields, or None when it refuses the record."""
    try:
        return mapping(raw).model_dump()
    except (MappingError, ValidationError):
        return None


def assert_same_or_given_up(raws: list[Any], mapping: PagedMapping[Any] = SYNTHETIC_RECEIVABLE) -> None:
    """The property: the page path's records equal the per-record mapping's, field by field,
    and it gives up on every page holding a record the model refuses."""
    rows = mapping.page(raws)
    one_by_one = [per_record(mapping, raw) for raw in raws]
    if rows is None:
        return
    assert None not in one_by_one, "the page path accepted a record the model refuses"
    assert [msgspec.structs.asdict(row) for row in rows] == one_by_one
    for row, expected in zip(rows, one_by_one, strict=True):  # same types too (Decimal, date, aware time)
        assert all(type(getattr(row, name)) is type(value) for name, value in expected.items())  # type: ignore[union-attr]


def test_a_valid_page_validates_to_rows_equal_to_the_models() -> None:
    raws = [SyntheticSource(customers=10, receivables=50).receivable_row(i) for i in range(50)]
    kingdee_raws = [{**KINGDEE, "FBillNo": f"AR{i}", "FCancelStatus": "AB"[i % 2]} for i in range(10)]
    yonyou_raws = [{**YONYOU, "code": f"ARE{i}", "verifystate": i % 3} for i in range(10)]
    for mapping, page in ((SYNTHETIC_RECEIVABLE, raws), (kingdee.RECEIVABLE_MAPPING, kingdee_raws),
                          (yonyou.RECEIVABLE_MAPPING, yonyou_raws)):
        rows = mapping.page(page)
        assert rows is not None and len(rows) == len(page) and all(isinstance(row, ReceivableRow) for row in rows)
        assert_same_or_given_up(page, mapping)


@given(st.lists(mutated(KINGDEE, tuple(KINGDEE)), min_size=1, max_size=3), st.integers(0, 3))
@PROPERTY
def test_kingdee_pages_with_hostile_fields_give_the_models_records_or_none(bad: list[dict[str, Any]],
                                                                          at: int) -> None:
    good = [{**KINGDEE, "FBillNo": f"AR{i}"} for i in range(3)]
    assert_same_or_given_up(good[:at] + bad + good[at:], kingdee.RECEIVABLE_MAPPING)


@given(st.lists(mutated(YONYOU, tuple(YONYOU)), min_size=1, max_size=3), st.integers(0, 3))
@PROPERTY
def test_yonyou_pages_with_hostile_fields_give_the_models_records_or_none(bad: list[dict[str, Any]],
                                                                         at: int) -> None:
    good = [{**YONYOU, "code": f"ARE{i}"} for i in range(3)]
    assert_same_or_given_up(good[:at] + bad + good[at:], yonyou.RECEIVABLE_MAPPING)


@given(st.lists(mutated(GOOD, FIELDS), min_size=1, max_size=4), st.integers(0, 4))
@PROPERTY
def test_pages_with_hostile_fields_give_the_models_records_or_none(bad: list[dict[str, Any]], at: int) -> None:
    good = [SyntheticSource(customers=10, receivables=10).receivable_row(i) for i in range(5)]
    assert_same_or_given_up(good[:at] + bad + good[at:])


@given(st.lists(st.one_of(mutated(GOOD, FIELDS, odd_text), mutated(GOOD, FIELDS, json_like)), min_size=1,
                max_size=3))
@PROPERTY
def test_pages_with_odd_text_give_the_models_records_or_none(raws: list[dict[str, Any]]) -> None:
    assert_same_or_given_up(raws)


@pytest.mark.parametrize("changes", [
    {"external_id": " AR1"},  # the model strips text: a page only takes what is stripped already
    {"external_id": ""},
    {"bill_number": "A" * 101},  # receivable.bill_number is varchar(100)
    {"customer_ref": "C\x00"},
    {"status": "\ud800"},
    {"currency": "cny"},  # the model upper-cases it: not the value given
    {"currency": "XYZ"},
    {"open_amount": Decimal("-0.01")},
    {"amount": Decimal("1.001")},
    {"amount": Decimal("1E+16")},
    {"amount": Decimal("NaN")},
    {"amount": Decimal("Infinity")},
    {"amount": 100},  # an int where a Decimal is expected: the model decides how to read it
    {"amount": "100.00"},
    {"bill_date": dt.datetime(2026, 1, 5, tzinfo=dt.UTC)},  # a time given for a date
    {"modified_at": dt.datetime(2026, 1, 5, 10)},  # naive
    {"modified_at": "2026-01-05T10:00:00+00:00"},
    {"unknown": 1},
])
def test_a_page_holding_one_value_the_model_would_change_or_refuse_is_given_up(changes: dict[str, Any]) -> None:
    page = [values(), values(**changes), values()]
    assert RECEIVABLE_PAGE.validate(page) is None
    assert RECEIVABLE_PAGE.validate([values(), values()]) is not None


def test_a_missing_field_is_given_up_and_a_missing_optional_one_defaults() -> None:
    incomplete = values()
    del incomplete["due_date"]
    assert RECEIVABLE_PAGE.validate([incomplete]) is None
    bare = values()
    del bare["status"], bare["modified_at"]
    (row,) = RECEIVABLE_PAGE.validate([bare]) or []
    assert (row.status, row.modified_at) == (None, None)
    assert msgspec.structs.asdict(row) == ReceivableRecord(**bare).model_dump()


def test_a_model_with_a_rule_pages_cannot_check_gets_no_page_schema() -> None:
    class Checked(ReceivableRecord):
        @model_validator(mode="after")
        def _due_after_bill(self) -> Checked:
            return self

    class Before(ReceivableRecord):
        @field_validator("currency", mode="before")
        @classmethod
        def _code(cls, value: Any) -> Any:
            return value

    for model in (Checked, Before, InternalUserRecord):  # a bool field
        with pytest.raises(TypeError):
            PageSchema(model)
