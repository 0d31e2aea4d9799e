"""Pure parts of the report pages: spreadsheet-safe cells, DSO, cursor stamps, lag text,
masked quarantine payloads."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from pydantic import ValidationError

from hub.settings import DagsterSettings
from hub.web.exports import csv_bytes, neutral
from hub.web.reports.operations import cursor_time, lag_text, masked_payload
from hub.web.reports.receivables import dso


@pytest.mark.parametrize(("value", "expected"), [
    ("=1+2", "'=1+2"), ("+86 138", "'+86 138"), ("-2+3", "'-2+3"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\t=x", "'\t=x"), ("杭州=公司", "杭州=公司"), ("", ""), (Decimal("-5.00"), Decimal("-5.00")), (-3, -3),
])
def test_given_a_cell_when_exported_then_formulas_are_text_and_numbers_stay_numbers(value, expected):
    assert neutral(value) == expected


def test_given_chinese_text_when_written_as_csv_then_excel_sees_utf8_with_bom():
    body = csv_bytes(["客户", "金额"], [["=cmd|' /C calc'!A0", Decimal("-1.50")], [None, 3]])
    assert body == "\ufeff客户,金额\r\n'=cmd|' /C calc'!A0,-1.50\r\n,3\r\n".encode()


def test_given_open_receivables_and_sales_then_dso_is_their_ratio_times_90():
    assert dso(Decimal("300"), Decimal("900")) == Decimal("30.0")
    assert dso(Decimal("100"), Decimal("3")) == Decimal("3000.0")
    assert dso(Decimal("100"), Decimal("0")) is None  # no credit sales: undefined, not infinite


def test_given_cursors_then_only_timestamps_are_stamps():
    assert cursor_time("2026-11-27T08:00:00+08:00") == dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
    assert cursor_time("2026-11-27 00:00:00") == dt.datetime(2026, 11, 27, tzinfo=dt.UTC)
    assert cursor_time("page-token-abc") is None and cursor_time(None) is None and cursor_time("") is None


def test_given_lags_then_text_is_short():
    assert lag_text(None) == "—"
    assert lag_text(dt.timedelta(minutes=7, seconds=59)) == "7 min"
    assert lag_text(dt.timedelta(hours=2, minutes=5)) == "2 h 5 min"
    assert lag_text(dt.timedelta(days=3, hours=4, minutes=1)) == "3 d 4 h"


def test_given_a_quarantined_record_then_it_reaches_it_without_personal_data():
    shown = masked_payload({"FName": "甲公司", "mobile": "13812345678", "email": "zhangsan@corp.cn",
                            "contacts": [{"note": "call 13987654321 or li@corp.cn"}], "n": 5})
    assert shown == {"FName": "甲公司", "mobile": "138****5678", "email": "z***@corp.cn",
                     "contacts": [{"note": "call 139****4321 or l***@corp.cn"}], "n": 5}


@pytest.mark.parametrize("url", ["javascript:alert(1)", "127.0.0.1:3000", "http://", "http://host/a b",
                                 "ftp://dagster", "http://host?x=1"])
def test_given_a_bad_dagster_ui_url_then_the_setting_is_refused(url):
    with pytest.raises(ValidationError):
        DagsterSettings(ui_url=url)
    assert DagsterSettings(ui_url="https://ops.example.cn/dagster").ui_url == "https://ops.example.cn/dagster"
