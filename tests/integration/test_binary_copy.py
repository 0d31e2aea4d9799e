"""Pages are COPYed in binary when every value allows it, in text otherwise, and store the same.

``hub.engine.binary_copy``: the binary format takes a value only in the Python type of its
column (a date as a date, a time stamp with its time zone); anything else would fail in the
client, so such a page goes in text, as before.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from hub.engine import sync_stream
from hub.engine.binary_copy import binary_types
from hub.engine.bulk import merge_rows
from hub.engine.isolation import DATA_ERRORS, refusal
from tests.conftest import rows, scalar
from tests.support.synthetic import CUSTOMERS, SyntheticSource

COLUMNS = ["source_system", "external_id", "fetched_at", "content_hash", "source_cursor", "customer_id",
           "bill_number", "bill_date", "due_date", "currency", "amount", "open_amount"]
NOW = dt.datetime(2026, 11, 28, 8, 0, tzinfo=dt.UTC)


def bill(n: int, customer_id: int = 1, **changes) -> tuple:
    row = {"source_system": "synthetic", "external_id": f"AR{n}", "fetched_at": NOW, "content_hash": f"h{n}",
           "source_cursor": f"2026-11-{n % 28 + 1:02d}", "customer_id": customer_id, "bill_number": f"B{n}",
           "bill_date": dt.date(2026, 1, 1), "due_date": dt.date(2026, 2, 1), "currency": "CNY",
           "amount": Decimal("1234.50"), "open_amount": Decimal("34.5")}
    row.update(changes)
    return tuple(row[c] for c in COLUMNS)


def test_a_page_of_typed_values_goes_binary():
    assert binary_types("receivable", COLUMNS, [bill(1), bill(2, open_amount=0, bill_number=None)]) is not None


@pytest.mark.parametrize("change", [
    {"bill_date": "2026-01-01"},                       # a date as text
    {"bill_date": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)},  # a time stamp in a date column
    {"fetched_at": dt.datetime(2026, 1, 1)},            # a time stamp without its time zone
    {"amount": 1.5},                                    # a float for a number
    {"customer_id": 2**63},                             # beyond bigint
    {"customer_id": Decimal(5)},                        # a number of another type
    {"currency": 5},                                    # a number for a text
], ids=str)
def test_one_value_of_another_type_sends_the_whole_page_in_text(change):
    assert binary_types("receivable", COLUMNS, [bill(1), bill(2, **change)]) is None


def test_a_table_or_column_type_not_listed_goes_in_text():
    assert binary_types("no_such_table", ["a"], [("x",)]) is None
    assert binary_types("receivable", ["source_system", "id"], [("x", 1)]) is not None  # id is bigint
    assert binary_types("sales_order_line", ["line_no"], [(1,)]) is None  # an integer column: not listed


def test_binary_and_text_pages_store_the_same_values(db):
    # given a customer, and two pages of the same bills: one all typed (binary), one with a
    # date given as text (the whole page in text)
    sync_stream(db, "synthetic", CUSTOMERS, SyntheticSource(customers=1, receivables=0))
    cid = int(scalar(db, "SELECT id FROM customer"))
    typed = [bill(n, cid) for n in range(3)]
    texty = [bill(n + 10, cid, due_date="2026-02-01") if n == 0 else bill(n + 10, cid) for n in range(3)]
    assert binary_types("receivable", COLUMNS, typed) and binary_types("receivable", COLUMNS, texty) is None
    # when both are merged in (the COPY-only path and the staged merge)
    with db.begin() as conn:
        merge_rows(conn, "receivable", COLUMNS, typed, key=["source_system", "external_id"], assume_new=True,
                   guarded=True)
        merge_rows(conn, "receivable", COLUMNS, texty, key=["source_system", "external_id"])
    # then each bill reads back the same, whichever format carried it
    stored = rows(db, "SELECT external_id, fetched_at, customer_id, bill_date, due_date, amount, open_amount "
                      "FROM receivable ORDER BY id")
    assert [tuple(r)[1:] for r in stored] == [(NOW, cid, dt.date(2026, 1, 1), dt.date(2026, 2, 1),
                                               Decimal("1234.50"), Decimal("34.50"))] * 6


def test_what_the_server_refuses_in_binary_is_a_data_error_naming_its_column(db):
    # given a customer, and a bill whose number is longer than its column (varchar 100)
    sync_stream(db, "synthetic", CUSTOMERS, SyntheticSource(customers=1, receivables=0))
    cid = int(scalar(db, "SELECT id FROM customer"))
    page = [bill(1, cid, bill_number="B" * 101)]
    assert binary_types("receivable", COLUMNS, page) is not None
    # when it is COPYed in
    with db.engine.connect() as conn, pytest.raises(DATA_ERRORS) as refused:
        merge_rows(conn, "receivable", COLUMNS, page, key=["source_system", "external_id"], assume_new=True,
                   guarded=True)
    # then the refusal names the column, not the value
    reason = refusal(refused.value, "receivable")
    assert "column receivable.bill_number" in reason and "BBBB" not in reason
