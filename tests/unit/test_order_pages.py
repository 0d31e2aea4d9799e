"""A page of sales orders mapped at once (``SALES_ORDER_MAPPING``: the order and its lines
validated as one page, canonical_model.pages) stores and quarantines exactly what mapping
the orders one by one through the pydantic models does: the same records, value for value
(the same Decimal digits, the same times), and the same refusals with the same reasons.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from canonical_model.records import MappingError, SalesOrderRecord, SalesOrderRow
from connectors.kingdee import mapping as kingdee
from connectors.kingdee.streams import kingdee_streams
from connectors.kit.fields import QUANTITY_WHOLE_DIGITS, money, number, quantity, scaled
from connectors.yonyou import mapping as yonyou
from connectors.yonyou.streams import STREAMS as YONYOU_STREAMS
from hub.contracts import StreamSpec
from hub.engine.intake import Entry, map_entries
from tests.support.hostile_values import PROPERTY, json_like, mutated, number_text, odd_text

LINE = {"FID": 100501, "FSaleOrderEntry_FEntryID": 7, "FMaterialId.FNumber": "WL0001",
        "FMaterialId.FName": "伺服电机 A型", "FQty": 2.0, "FTaxPrice": 565.0, "FEntryTaxRate": 13.0, "FAllAmount": 1130.0}
ORDER = {
    "FID": 100501, "FBillNo": "XSDD000123", "FDate": "2024-04-28T00:00:00", "FCustId.FNumber": "CUST00017",
    "FSalerId.FNumber": "SP003", "FDocumentStatus": "C", "FCloseStatus": "A", "FSettleCurrId.FNumber": "PRE001",
    "FBillAllAmount": 1695.0, "FModifyDate": "2024-05-02T09:00:00",
    "lines": [LINE, {**LINE, "FSaleOrderEntry_FEntryID": 8, "FMaterialId.FNumber": "WL0002", "FQty": 1,
                     "FTaxPrice": "565.0000000000", "FEntryTaxRate": None, "FAllAmount": 565}],
}
YONYOU_LINE = {"lineno": 1, "productId_code": "P-1001", "productId_name": "工业网关 G200", "qty": 2,
               "oriTaxUnitPrice": 100, "oriSum": 200, "taxRate": 13}
YONYOU_ORDER = {"id": "7", "code": "SO1", "vouchdate": "2026-11-01 00:00:00", "agentId_code": "YYC00001",
                "payMoney": 250, "orderPrices!currency": "CNY", "verifystate": 2, "pubts": "2026-11-02 09:00:00",
                yonyou.ORDER_LINES: [YONYOU_LINE, {**YONYOU_LINE, "lineno": 2, "productId_code": "P-2", "qty": "0.5",
                                                   "taxRate": "", "productId_name": None, "oriSum": "50.00"}]}

KINGDEE_STREAM = next(s for s in kingdee_streams() if s.name == "sales_orders")
YONYOU_STREAM = next(s for s in YONYOU_STREAMS if s.name == "sales_orders")
# the same streams mapping order by order only (the page path's fallback, and what ran before)
KINGDEE_ONE_BY_ONE = dataclasses.replace(KINGDEE_STREAM, map_record=kingdee.map_sales_order)
YONYOU_ONE_BY_ONE = dataclasses.replace(YONYOU_STREAM, map_record=yonyou.map_sales_order)

# hostile values a mapping reads without complaint but the models refuse, and the other way round
NUMBERS = st.one_of(st.sampled_from([0, -1, "0", "-0.01", 100, 101, "100.0000001", "1E+11", "1E-7", 0.1, "NaN",
                                     3, "0.5", "12.3456789", "1E+2", 99.995, "13.000", 250.5, Decimal("2.0"),
                                     Decimal("-0"), Decimal("1E+13"), Decimal("0.0000001"), Decimal("sNaN")]),
                    number_text)
TEXT = st.one_of(odd_text, st.sampled_from(["A" * 101, "公" * 301, " WL0001 ", "WL\x00", "\ud800", "", "P-9", "名"]))
LINE_VALUES = st.one_of(NUMBERS, TEXT, json_like)


def totalled(order: dict[str, Any], lines_key: str, total_key: str, amount_key: str) -> dict[str, Any]:
    """``order`` with its header total the sum of its lines' amounts where the mapping can
    read them (so that orders with odd but valid lines are not all refused for their total)."""
    try:
        total = sum((money(line, amount_key) for line in order[lines_key]), Decimal(0))
    except (MappingError, TypeError, AttributeError):
        return order
    return {**order, total_key: str(total)}


def stored(value: Any) -> Any:
    """A mapped value as the writers store it: every field, nested lines included, with its
    exact type and text (``Decimal('2')`` and ``Decimal('2.0')`` differ here)."""
    if isinstance(value, BaseModel | msgspec.Struct):
        names = type(value).model_fields if isinstance(value, BaseModel) else value.__struct_fields__
        return {name: stored(getattr(value, name)) for name in names}
    if isinstance(value, tuple):
        return [stored(item) for item in value]
    return (type(value).__name__, str(value))


def mapped_both_ways(page_stream: StreamSpec[Any], record_stream: StreamSpec[Any],
                     raws: list[Any]) -> tuple[Any, Any, bool]:
    """(page path's outcome, record path's outcome, whether the page path took the page):
    each outcome is what the engine would store (raw, record) and quarantine (key, reason)."""
    entries: list[Entry] = [(i, raw, f"key{i}", f"digest{i}") for i, raw in enumerate(raws, 1)]
    took = page_stream.map_record.page(raws) is not None

    def outcome(stream: StreamSpec[Any]) -> Any:
        mapped, rejected = map_entries(stream, entries, 1, {})
        return ([(raw, stored(record), digest) for raw, record, digest in mapped],
                [(r.source_ref, r.reason, r.payload) for r in rejected])

    return outcome(page_stream), outcome(record_stream), took


def assert_same(page_stream: StreamSpec[Any], record_stream: StreamSpec[Any], raws: list[Any]) -> bool:
    page, one_by_one, took = mapped_both_ways(page_stream, record_stream, raws)
    assert page == one_by_one
    if took:  # only a page of which every order maps is taken at once
        assert not one_by_one[1]
    return took


@pytest.mark.parametrize(("page_stream", "record_stream", "order", "lines_key"), [
    (KINGDEE_STREAM, KINGDEE_ONE_BY_ONE, ORDER, "lines"),
    (YONYOU_STREAM, YONYOU_ONE_BY_ONE, YONYOU_ORDER, yonyou.ORDER_LINES),
], ids=["kingdee", "yonyou"])
def test_a_page_of_valid_orders_is_mapped_at_once_into_the_records_the_models_give(
        page_stream: Any, record_stream: Any, order: dict[str, Any], lines_key: str) -> None:
    # given a page of valid orders of one and two lines
    page = [{**order, "FBillNo": f"XSDD{i}", "code": f"SO{i}", lines_key: order[lines_key][: 1 + i % 2]}
            for i in range(6)]
    for raw in page[::2]:  # one line: the header total is that line's
        raw["FBillAllAmount" if lines_key == "lines" else "payMoney"] = 1130.0 if lines_key == "lines" else 200
    # when the page is mapped at once
    rows = page_stream.map_record.page(page)
    # then every order is a Struct with Struct lines, holding what the models hold
    assert rows is not None and all(isinstance(row, SalesOrderRow) for row in rows)
    assert [len(row.lines) for row in rows] == [1, 2, 1, 2, 1, 2]
    assert [stored(row) for row in rows] == [stored(record_stream.map_record(raw)) for raw in page]
    assert all(isinstance(record_stream.map_record(raw), SalesOrderRecord) for raw in page)
    assert assert_same(page_stream, record_stream, page)


@pytest.mark.parametrize("line_changes", [
    {"FQty": 0}, {"FQty": -2, "FAllAmount": -1130.0}, {"FTaxPrice": -1, "FAllAmount": -2.0},
    {"FEntryTaxRate": 101}, {"FEntryTaxRate": -1}, {"FMaterialId.FNumber": "W" * 101},
    {"FMaterialId.FName": "伺服\x00"}, {"FMaterialId.FName": "名" * 301}, {"FAllAmount": 1131.0},
    {"FQty": "1E+12"}, {"FQty": True}, {"FMaterialId.FNumber": None},
])
def test_a_page_holding_an_order_the_models_refuse_is_mapped_order_by_order(line_changes: dict[str, Any]) -> None:
    # given a page whose second order has a line the line model (or the mapping) refuses
    bad = {**ORDER, "FBillNo": "BAD", "lines": [{**LINE, **line_changes}, *ORDER["lines"][1:]]}
    page = [ORDER, bad, {**ORDER, "FBillNo": "XSDD9"}]
    # when it is mapped: not at once, and the bad order is quarantined with the model's reason
    page_outcome, one_by_one, took = mapped_both_ways(KINGDEE_STREAM, KINGDEE_ONE_BY_ONE, page)
    assert not took
    assert page_outcome == one_by_one
    assert [ref for ref, _, _ in one_by_one[1]] == ["key2"] and len(one_by_one[0]) == 2


@given(st.lists(mutated(LINE, tuple(LINE), st.one_of(NUMBERS, TEXT)), min_size=1, max_size=2),
       st.lists(mutated(ORDER, tuple(k for k in ORDER if k != "lines"), LINE_VALUES), max_size=2),
       st.integers(0, 2))
@PROPERTY
def test_kingdee_order_pages_with_hostile_values_store_and_quarantine_as_order_by_order(
        lines: list[dict[str, Any]], headers: list[dict[str, Any]], at: int) -> None:
    good = [{**ORDER, "FBillNo": f"XSDD{i}"} for i in range(2)]
    bad = [totalled({**ORDER, "FBillNo": "LINES", "lines": lines}, "lines", "FBillAllAmount", "FAllAmount"), *headers]
    assert_same(KINGDEE_STREAM, KINGDEE_ONE_BY_ONE, good[:at] + bad + good[at:])


@given(st.lists(mutated(YONYOU_LINE, tuple(YONYOU_LINE), st.one_of(NUMBERS, TEXT)), min_size=1, max_size=2),
       st.lists(mutated(YONYOU_ORDER, tuple(k for k in YONYOU_ORDER if k != yonyou.ORDER_LINES), LINE_VALUES),
                max_size=2),
       st.integers(0, 2))
@PROPERTY
def test_yonyou_order_pages_with_hostile_values_store_and_quarantine_as_order_by_order(
        lines: list[dict[str, Any]], headers: list[dict[str, Any]], at: int) -> None:
    good = [{**YONYOU_ORDER, "code": f"SO{i}"} for i in range(2)]
    bad = [totalled({**YONYOU_ORDER, "code": "LINES", yonyou.ORDER_LINES: lines}, yonyou.ORDER_LINES, "payMoney",
                    "oriSum"), *headers]
    assert_same(YONYOU_STREAM, YONYOU_ONE_BY_ONE, good[:at] + bad + good[at:])


@given(st.lists(st.one_of(json_like, mutated(ORDER, tuple(ORDER), json_like)), min_size=1, max_size=3))
@PROPERTY
def test_pages_of_anything_store_and_quarantine_as_order_by_order(raws: list[Any]) -> None:
    assert_same(KINGDEE_STREAM, KINGDEE_ONE_BY_ONE, raws)
    assert_same(YONYOU_STREAM, YONYOU_ONE_BY_ONE, raws)


def test_a_valid_page_of_one_order_with_a_decimal_tax_rate_keeps_its_digits() -> None:
    # given a line whose quantity and price carry trailing zeros (stored without them)
    raw = {**ORDER, "FBillAllAmount": "1130", "lines": [{**LINE, "FQty": "2.000000", "FTaxPrice": "565.000"}]}
    # when mapped at once, the values are the readers' own (2, 565), as one by one
    (row,) = KINGDEE_STREAM.map_record.page([raw]) or []
    assert (row.lines[0].quantity, str(row.lines[0].quantity), row.lines[0].tax_rate) == (
        Decimal(2), "2", Decimal(13))
    assert stored(row) == stored(kingdee.map_sales_order(raw))


@pytest.mark.parametrize("values", [
    [0.0, -0.0, 0, "-0", "0", Decimal("0.00"), Decimal("-0"), Decimal(0)],  # equal keys, read apart (-0 kept)
    [Decimal("2.0"), Decimal("2"), Decimal("2.000000"), Decimal("1E+2"), Decimal("100.0"), Decimal("NaN"), Decimal("sNaN")],
    [1, 1.0, True, "1", " 1 "],  # equal dict keys of different types: True is refused, not 1
    [2.0, "2.000000", 2, 1e2, "1E+2", 100],
    ["1.0000005", 1.0000005, "12345678901234", 1e12, float("nan"), "NaN"],
])
def test_a_quantity_reads_the_same_whether_or_not_an_equal_value_was_read_before(values: list[Any]) -> None:
    # given what each value reads as afresh (the reader's parts, which keep nothing)
    def read(value: Any, reader: Any = quantity) -> tuple[str, str]:
        try:
            found = reader({"FQty": value}, "FQty")
        except MappingError as exc:
            return ("refused", str(exc))
        return (type(found).__name__, str(found))

    def afresh(raw: dict[str, Any], key: str) -> Decimal:
        return scaled(number(raw, key, QUANTITY_WHOLE_DIGITS))

    expected = [read(value, afresh) for value in values]
    # when quantities are read forwards, backwards and forwards again (equal values reused)
    # then each reads as it does afresh
    assert [read(value) for value in values] == expected
    assert [read(value) for value in reversed(values)] == expected[::-1]
    assert [read(value) for value in values] == expected
    assert ("refused", "FQty: expected a number, got true") in expected or all(v is not True for v in values)
