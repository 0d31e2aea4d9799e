"""The sandbox's FilterString / OrderString parser: grammar, typing, SQL semantics."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.kingdee.client import quote_literal
from connectors.kingdee.sandbox import filter as flt

KINDS: dict[str, flt.FieldKind] = {
    "FNumber": "text", "FName": "text", "FModifyDate": "datetime", "FQty": "decimal", "FID": "int",
    "FCustId.FNumber": "text", "FIsIncludedTax": "bool",
}


def resolver(key: str) -> tuple[flt.Getter, flt.FieldKind]:
    """Rows in these tests are plain dicts keyed by field key."""
    return (lambda row: row.get(key)), KINDS[key]


def matches(filter_text: str, row: dict[str, Any]) -> bool:
    return flt.compile_filter(flt.parse_filter(filter_text), resolver)(row)


ROW = {
    "FNumber": "CUST00001", "FName": "苏州市立宏医药股份有限公司", "FModifyDate": dt.datetime(2024, 5, 1, 10, 20, 30),
    "FQty": Decimal("12.5"), "FID": 100042, "FCustId.FNumber": "C'001", "FIsIncludedTax": True,
}


# -- parsing ----------------------------------------------------------------------------------

def test_given_and_or_without_parentheses_when_parsed_then_and_binds_tighter() -> None:
    node = flt.parse_filter("FID = 1 or FID = 2 and FNumber = 'x'")
    assert isinstance(node, flt.Or)
    assert isinstance(node.items[1], flt.And)


def test_given_parentheses_when_parsed_then_they_override_precedence() -> None:
    node = flt.parse_filter("(FID = 1 or FID = 2) and FNumber = 'x'")
    assert isinstance(node, flt.And)
    assert isinstance(node.items[0], flt.Or)


def test_given_keywords_in_any_case_when_parsed_then_accepted() -> None:
    node = flt.parse_filter("FID In (1, 2) AND fnumber NOT LIKE 'A%' oR FName iS nOt NuLl")
    assert isinstance(node, flt.Or)


@pytest.mark.parametrize(("text", "expected"), [
    ("FNumber = 'it''s'", "it's"),
    ("FNumber = N'华东'", "华东"),
    ("FNumber = ''", ""),
])
def test_given_quoted_strings_when_tokenized_then_escapes_and_unicode_prefix_are_handled(text: str, expected: str) -> None:
    node = flt.parse_filter(text)
    assert isinstance(node, flt.Compare)
    assert node.value == expected


def test_given_referenced_fields_when_listed_then_every_key_in_order() -> None:
    node = flt.parse_filter("FCustId.FNumber = 'C1' and (FModifyDate >= '2024-01-01' or not FID in (1))")
    assert flt.referenced_fields(node) == ["FCustId.FNumber", "FModifyDate", "FID"]


@pytest.mark.parametrize("text", ["", "   ", None])
def test_given_blank_filter_when_parsed_then_no_filter(text: str | None) -> None:
    assert flt.parse_filter(text or "") is None
    assert flt.compile_filter(None, resolver)(ROW)


@pytest.mark.parametrize(("text", "fragment"), [
    ("FNumber = 'open", "unterminated string"),
    ("FNumber = ", "expected a value"),
    ("FNumber 'x'", "expected an operator"),
    ("(FID = 1", "expected ')'"),
    ("FID = 1 FID = 2", "unexpected"),
    ("FID in ()", "expected a value"),
    ("FName like 5", "quoted LIKE pattern"),
    ("FID = 1; drop table t", "unexpected character"),
    ("FName is 1", "expected NULL"),
])
def test_given_malformed_filter_when_parsed_then_syntax_error_says_where(text: str, fragment: str) -> None:
    with pytest.raises(flt.FilterSyntaxError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        flt.parse_filter(text)


# -- semantics ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("FNumber = 'CUST00001'", True),
    ("FNumber = 'cust00001'", True),  # SQL Server's default collation is case-insensitive
    ("FNumber <> 'CUST00001'", False),
    ("FNumber != 'CUST00002'", True),
    ("FID > 100041 and FID <= 100042", True),
    ("FID >= 100043", False),
    ("FQty > 12.4 and FQty < '12.6'", True),
    ("FModifyDate >= '2024-05-01'", True),
    ("FModifyDate > '2024-05-01 10:20:30'", False),
    ("FModifyDate = '2024-05-01T10:20:30'", True),
    ("FModifyDate < '2024/05/02'", True),
    ("FModifyDate >= '2024-05-01 10:20:30.001'", False),
    ("FName like '%医药%'", True),
    ("FName like '苏州_立宏%'", True),
    ("FName not like '%科技%'", True),
    ("FNumber like 'cust[0-9]%'", True),
    ("FID in (1, 100042, 3)", True),
    ("FID not in (100042)", False),
    ("FNumber in ('A', 'cust00001')", True),
    ("FCustId.FNumber = 'C''001'", True),
    ("FIsIncludedTax = 1", True),
    ("not (FID = 1)", True),
    ("FID = 1 or (FNumber = 'CUST00001' and FQty = 12.5)", True),
])
def test_given_a_row_when_filtered_then_sql_semantics_apply(text: str, expected: bool) -> None:
    assert matches(text, ROW) is expected


@pytest.mark.parametrize(("text", "expected"), [
    ("FName = 'x'", False),
    ("FName <> 'x'", False),  # NULL <> 'x' is unknown, not true
    ("not (FName = 'x')", False),  # and NOT unknown stays unknown
    ("FName is null", True),
    ("FName is not null", False),
    ("FName like '%'", False),
    ("FName in ('x')", False),
    ("FName not in ('x')", False),
])
def test_given_null_field_when_compared_then_three_valued_logic_applies(text: str, expected: bool) -> None:
    assert matches(text, {**ROW, "FName": None}) is expected


def test_given_unparseable_date_literal_when_compiled_then_type_error_like_sql_server() -> None:
    with pytest.raises(flt.FilterTypeError, match="转换失败"):
        flt.compile_filter(flt.parse_filter("FModifyDate >= 'yesterday'"), resolver)


def test_given_text_literal_for_number_field_when_compiled_then_type_error() -> None:
    with pytest.raises(flt.FilterTypeError):
        flt.compile_filter(flt.parse_filter("FQty = 'many'"), resolver)


def test_given_like_pattern_with_regex_characters_when_matched_then_taken_literally() -> None:
    assert matches("FName like '%(%'", {**ROW, "FName": "华创电子（深圳）有限公司 (HK)"})
    assert not matches("FName like 'a.c'", {**ROW, "FName": "abc"})


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=40))
def test_property_any_text_quoted_by_the_client_round_trips_through_the_parser(value: str) -> None:
    node = flt.parse_filter(f"FNumber = {quote_literal(value)}")
    assert isinstance(node, flt.Compare)
    assert node.value == value


# -- OrderString ----------------------------------------------------------------------------

def test_given_order_string_when_parsed_then_keys_and_directions() -> None:
    assert flt.parse_order("FModifyDate ASC,FCUSTID desc, FNumber") == [
        flt.OrderItem("FModifyDate"), flt.OrderItem("FCUSTID", True), flt.OrderItem("FNumber"),
    ]
    assert flt.parse_order("") == []


def test_given_bad_order_item_when_parsed_then_syntax_error() -> None:
    with pytest.raises(flt.FilterSyntaxError, match="bad OrderString"):
        flt.parse_order("FModifyDate upwards")
