"""Kingdee streams against the sandbox: incremental cursors, keyset paging, whole orders per page."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.kingdee.client import KingdeeClient
from connectors.kingdee.mapping import parse_kingdee_datetime
from connectors.kingdee.sandbox.state import ENTRIES, format_datetime
from connectors.kingdee.sandbox.testing import RunningSandbox
from connectors.kingdee.streams import STREAMS, kingdee_streams, newest_change, since_literal
from hub.contracts import MappingError, StreamSpec
from hub.errors import PermanentError

SHANGHAI = dt.timezone(dt.timedelta(hours=8))


# `server` / `sandbox` fixtures: tests/unit/conftest.py (shared by the Kingdee modules)


def stream(name: str, **options: Any) -> StreamSpec:
    return next(s for s in kingdee_streams(**options) if s.name == name)


def read_all(spec: StreamSpec, client: Any, cursor: str | None) -> tuple[list[dict[str, Any]], list[str | None]]:
    records: list[dict[str, Any]] = []
    cursors: list[str | None] = []
    for page in spec.read_pages(client, cursor):
        records.extend(page.records)
        cursors.append(page.cursor_after)
    return records, cursors


def edit_customer(client: KingdeeClient, row: dict[str, Any], phone: str) -> None:
    """What a user does in the ERP: un-audit the customer (audited base data is locked), edit it."""
    if row["FDocumentStatus"] == "C":
        client.unaudit("BD_Customer", [row["FNumber"]])
    client.save("BD_Customer", {"FCUSTID": row["FCUSTID"], "FTEL": phone}, need_update_fields=["FTEL"])


def newest_modify(sandbox: RunningSandbox, form_id: str) -> dt.datetime:
    docs = sandbox.state.tables[form_id.lower()].docs.values()
    return max(d["FModifyDate"] for d in docs).replace(tzinfo=SHANGHAI)


def test_given_the_registry_streams_then_targets_keys_and_dependencies_are_declared() -> None:
    assert [(s.name, s.target, s.key_field, s.depends_on) for s in STREAMS] == [
        ("customers", "customer", "FNumber", ()),
        ("sales_orders", "sales_order", "FBillNo", ("customers",)),
        ("receivables", "receivable", "FBillNo", ("customers",)),
        ("receipts", "receipt", "FBillNo", ("customers",)),
    ]
    assert all(s.cursor_field == "FModifyDate" for s in STREAMS)


@pytest.mark.parametrize(("name", "form_id"), [
    ("customers", "BD_Customer"), ("sales_orders", "SAL_SaleOrder"),
    ("receivables", "AR_receivable"), ("receipts", "AR_RECEIVEBILL"),
])
def test_given_no_cursor_when_reading_then_every_record_maps_and_cursor_is_the_newest_change(
    sandbox: RunningSandbox, name: str, form_id: str,
) -> None:
    spec = stream(name, page_size=7, order_page_size=9)
    records, cursors = read_all(spec, sandbox.client(), None)
    mapped = [spec.map_record(r) for r in records]
    assert len({m.external_id for m in mapped}) == len(records) == sandbox.state.count(form_id)
    assert len(cursors) > 1  # several pages at these page sizes
    assert cursors == sorted(cursors, key=lambda c: dt.datetime.fromisoformat(c or ""))
    assert dt.datetime.fromisoformat(cursors[-1] or "") == newest_modify(sandbox, form_id)


def test_given_a_cursor_when_reading_then_only_changes_within_the_overlap_and_after(sandbox: RunningSandbox) -> None:
    spec = stream("customers", overlap=dt.timedelta(days=30))
    client = sandbox.client()
    _, cursors = read_all(spec, client, None)
    cursor = cursors[-1]
    since = dt.datetime.fromisoformat(cursor or "") - dt.timedelta(days=30)
    expected = sandbox.state.count("BD_Customer", lambda d: d["FModifyDate"].replace(tzinfo=SHANGHAI) >= since)
    records, _ = read_all(spec, client, cursor)
    assert 0 < len(records) == expected < sandbox.state.count("BD_Customer")

    edit_customer(client, records[0], "021-66668888")
    changed, later = read_all(stream("customers", overlap=dt.timedelta(0)), client, cursor)
    # ">=" the watermark: the record sitting exactly on it comes again (harmless upsert), plus the edit.
    edited = [r for r in changed if r["FNumber"] == records[0]["FNumber"]]
    assert len(edited) == 1 and edited[0]["FTEL"] == "021-66668888"
    assert all(dt.datetime.fromisoformat(c) == dt.datetime.fromisoformat(cursor or "") for c in
               (dt.datetime.fromisoformat(r["FModifyDate"]).replace(tzinfo=SHANGHAI).isoformat()
                for r in changed if r is not edited[0]))
    assert dt.datetime.fromisoformat(later[-1] or "") > dt.datetime.fromisoformat(cursor or "")


class EditingClient:
    """Wraps a client and edits a record of the first page before the second page is read,
    the way a user working in the ERP during a sync would."""

    def __init__(self, client: KingdeeClient, form_id: str) -> None:
        self.client = client
        self.form_id = form_id
        self.pages = 0

    def execute_bill_query(self, form_id: str, field_keys: Sequence[str], filter_string: str = "",
                           order_string: str = "", start_row: int = 0, limit: int = 2000) -> list[dict[str, Any]]:
        rows = self.client.execute_bill_query(form_id, field_keys, filter_string, order_string, start_row, limit)
        self.pages += 1
        if self.pages == 1 and form_id == self.form_id:
            edit_customer(self.client, rows[0], "0571-12345678")
        return rows

    def query_pages(self, *args: Any, **kwargs: Any) -> Iterator[list[dict[str, Any]]]:
        return self.client.query_pages(*args, **kwargs)


def test_given_a_record_edited_during_the_read_when_paging_then_no_record_is_skipped(sandbox: RunningSandbox) -> None:
    spec = stream("customers", page_size=4)
    records, _ = read_all(spec, EditingClient(sandbox.client(), "BD_Customer"), None)
    numbers = [r["FNumber"] for r in records]
    assert set(numbers) == {d["FNumber"] for d in sandbox.state.tables["bd_customer"].docs.values()}
    assert len(numbers) == sandbox.state.count("BD_Customer") + 1  # the edited one is read again, at the end


def test_given_small_order_pages_when_reading_then_orders_are_never_split(sandbox: RunningSandbox) -> None:
    spec = stream("sales_orders", order_page_size=3)
    pages = list(spec.read_pages(sandbox.client(), None))
    assert all(len(page.records) <= 3 for page in pages)
    docs = {d["FBillNo"]: d for d in sandbox.state.tables["sal_saleorder"].docs.values()}
    for page in pages:
        for order in page.records:
            expected = [line["FEntryID"] for line in docs[order["FBillNo"]][ENTRIES]["FSaleOrderEntry"]]
            assert [line["FSaleOrderEntry_FEntryID"] for line in order["lines"]] == expected


def test_given_receipts_from_non_customers_when_reading_then_they_are_not_in_the_stream(sandbox: RunningSandbox) -> None:
    client = sandbox.client()
    client.save("AR_RECEIVEBILL", {"FBillNo": "SKD-SUPPLIER", "FDATE": "2025-06-29", "FCONTACTUNITTYPE": "BD_Supplier",
                                   "FCONTACTUNIT": {"FNumber": "CUST00001"}, "FCURRENCYID": {"FNumber": "PRE001"},
                                   "FREALRECAMOUNTFOR": 10})
    records, _ = read_all(stream("receipts"), client, None)
    assert "SKD-SUPPLIER" not in {r["FBillNo"] for r in records}
    assert len(records) == sandbox.state.count("AR_RECEIVEBILL") - 1


@pytest.mark.parametrize(("cursor", "overlap", "expected"), [
    (None, dt.timedelta(minutes=5), None),
    ("2025-06-29T10:00:00+08:00", dt.timedelta(minutes=5), "'2025-06-29 09:55:00'"),
    ("2025-06-29T02:00:00+00:00", dt.timedelta(0), "'2025-06-29 10:00:00'"),
    ("2025-06-29T10:00:00.750", dt.timedelta(minutes=1), "'2025-06-29 09:59:00'"),
])
def test_given_stored_cursor_when_converted_then_kingdee_local_literal_minus_overlap(
    cursor: str | None, overlap: dt.timedelta, expected: str | None,
) -> None:
    assert since_literal(cursor, overlap) == expected


def test_given_corrupt_cursor_when_reading_then_permanent_error(sandbox: RunningSandbox) -> None:
    with pytest.raises(PermanentError, match="stored cursor"):
        list(stream("customers").read_pages(sandbox.client(), "last tuesday"))


def newest_by_reading_every_stamp(rows: Sequence[dict[str, Any]]) -> str | None:
    """What ``newest_change`` answered before it read only the greatest text: every stamp read."""
    stamps = []
    for row in rows:
        try:
            stamps.append(parse_kingdee_datetime(row.get("FModifyDate"), "FModifyDate"))
        except MappingError:
            continue
    return max(stamps).isoformat() if stamps else None


STAMPS = [
    "2025-06-29T10:00:00", "2025-06-29T10:00:00.5", "2025-06-29T10:00:00.45", "2025-06-29T10:00:00.500000",
    "2025-06-29T09:59:59.999999", "2025-13-01T10:00:00", "2025-02-29T00:00:00", "2024-02-29T00:00:00",
    "2025-06-29 10:00:01", "2025-06-29T10:00:00+00:00", "/Date(1751162400000+0800)/", " 2025-06-29T10:00:02",
    "2025-06-29T10:00", "2025-06-29T10:00:00.1234567", "", "x", None, 5, dt.datetime(2025, 6, 29, 10, 0, 3),
]


@pytest.mark.parametrize("stamps, expected", [
    (["2025-06-29T10:00:00.5", "2025-06-29T10:00:00.45", "2025-06-29T10:00:00"], "2025-06-29T10:00:00.500000+08:00"),
    (["2025-06-29T10:00:00", "2025-13-01T10:00:00"], "2025-06-29T10:00:00+08:00"),  # month 13 is no date
    (["2025-02-29T00:00:00", "2025-13-01T10:00:00"], None),
    (["2025-06-29T10:00:00", "2025-06-29T10:00:00+00:00"], "2025-06-29T10:00:00+00:00"),  # an offset: every stamp read
    ([], None),
])
def test_given_a_page_when_its_newest_change_is_taken_then_it_is_the_latest_readable_stamp(
    stamps: list[str], expected: str | None,
) -> None:
    rows = [{"FModifyDate": stamp} for stamp in stamps]
    assert newest_change(rows) == expected == newest_by_reading_every_stamp(rows)


@given(st.lists(st.sampled_from(STAMPS), max_size=8))
def test_given_any_stamps_when_the_newest_change_is_taken_then_it_is_as_if_every_stamp_were_read(
    stamps: list[Any],
) -> None:
    # Kingdee's plain layout is read by its greatest text only; anything else by every stamp
    rows = [{"FModifyDate": stamp} for stamp in stamps]
    assert newest_change(rows) == newest_by_reading_every_stamp(rows)


def test_given_sandbox_times_when_formatted_then_milliseconds_only_when_present() -> None:
    assert format_datetime(dt.datetime(2025, 1, 2, 3, 4, 5)) == "2025-01-02T03:04:05"
    assert format_datetime(dt.datetime(2025, 1, 2, 3, 4, 5, 120000)) == "2025-01-02T03:04:05.120"


def test_given_client_read_settings_when_streams_use_defaults_then_they_follow_the_client(sandbox: RunningSandbox) -> None:
    client = sandbox.client()
    client.read_page_size = 6
    pages = list(stream("customers").read_pages(client, None))
    assert [len(p.records) for p in pages] == [6, 6, 6, 6]


# -- the order stream with read slots: header pages of 7, engine pages (line batches) of 3, three
# line queries at once beside the header read (read_concurrency 4 - 1)


def orders_by_number(sandbox: RunningSandbox) -> dict[str, dict[str, Any]]:
    return {d["FBillNo"]: d for d in sandbox.state.tables["sal_saleorder"].docs.values()}


def assert_whole_orders_in_key_order(pages: list[Any], docs: dict[str, dict[str, Any]]) -> None:
    """Every page's orders whole, in (FModifyDate, FID) order across pages, each page's cursor its newest change."""
    keys = []
    for page in pages:
        assert 0 < len(page.records) <= 3
        for order in page.records:
            expected = [line["FEntryID"] for line in docs[order["FBillNo"]][ENTRIES]["FSaleOrderEntry"]]
            assert [line["FSaleOrderEntry_FEntryID"] for line in order["lines"]] == expected
            keys.append((dt.datetime.fromisoformat(order["FModifyDate"]), order["FID"]))
        newest = max(dt.datetime.fromisoformat(o["FModifyDate"]) for o in page.records)
        assert dt.datetime.fromisoformat(page.cursor_after or "") == newest.replace(tzinfo=SHANGHAI)
    assert keys == sorted(keys)


def test_given_read_slots_when_reading_orders_then_each_order_once_whole_in_key_order(
    sandbox: RunningSandbox,
) -> None:
    client = sandbox.client(max_concurrent_reads=4)
    pages = list(stream("sales_orders", page_size=7, order_page_size=3).read_pages(client, None))
    docs = orders_by_number(sandbox)
    numbers = [order["FBillNo"] for page in pages for order in page.records]
    assert sorted(numbers) == sorted(docs)  # none missing, none twice
    assert_whole_orders_in_key_order(pages, docs)
    assert sandbox.app.state.kingdee.gate.overloaded == 0


def test_given_orders_tied_on_modify_date_across_header_pages_and_batches_then_each_is_read_once(
    sandbox: RunningSandbox,
) -> None:
    # given 40 orders sharing one FModifyDate: ties span several header pages (7) and batches (3)
    docs = sorted(sandbox.state.tables["sal_saleorder"].docs.values(), key=lambda d: d["FID"])
    tied = dt.datetime(2025, 6, 1, 12, 0, 0)
    for doc in docs[10:50]:
        doc["FModifyDate"] = tied
    sandbox.state.version += 1  # the sandbox's sorted indexes are rebuilt
    client = sandbox.client(max_concurrent_reads=4)
    pages = list(stream("sales_orders", page_size=7, order_page_size=3).read_pages(client, None))
    numbers = [order["FBillNo"] for page in pages for order in page.records]
    assert sorted(numbers) == sorted(d["FBillNo"] for d in docs)
    assert_whole_orders_in_key_order(pages, orders_by_number(sandbox))


class OrderEditingClient:
    """Passes calls to the client; after the first header page, a user saves two orders (each
    gets a new FModifyDate): one already read and one not yet read."""

    def __init__(self, client: KingdeeClient, sandbox: RunningSandbox) -> None:
        self.client = client
        self.sandbox = sandbox
        self.read_concurrency = client.read_concurrency
        self.edited: tuple[str, str] | None = None

    def execute_bill_query(self, form_id: str, field_keys: Sequence[str], filter_string: str = "",
                           order_string: str = "", start_row: int = 0, limit: int = 2000) -> list[dict[str, Any]]:
        rows = self.client.execute_bill_query(form_id, field_keys, filter_string, order_string, start_row, limit)
        if self.edited is None and "FBillNo" in field_keys:
            read = rows[0]["FBillNo"]
            later = max(self.sandbox.state.tables["sal_saleorder"].docs.values(),
                        key=lambda d: (d["FModifyDate"], d["FID"]))
            unread = sorted(self.sandbox.state.tables["sal_saleorder"].docs.values(),
                            key=lambda d: (d["FModifyDate"], d["FID"]))[len(rows) + 5]["FBillNo"]
            assert later["FBillNo"] not in (read, unread)
            state = self.sandbox.state
            for number in (read, unread):
                state.tables["sal_saleorder"].find_number(number)["FModifyDate"] = state.now()
            state.version += 1
            self.edited = (read, unread)
        return rows

    def query_pages(self, *args: Any, **kwargs: Any) -> Iterator[list[dict[str, Any]]]:
        return self.client.query_pages(*args, **kwargs)


def test_given_orders_saved_during_the_read_then_none_is_skipped_and_the_read_one_comes_again_last(
    sandbox: RunningSandbox,
) -> None:
    client = OrderEditingClient(sandbox.client(max_concurrent_reads=4), sandbox)
    pages = list(stream("sales_orders", page_size=7, order_page_size=3).read_pages(client, None))
    numbers = [order["FBillNo"] for page in pages for order in page.records]
    assert client.edited is not None
    read, unread = client.edited
    assert set(numbers) == set(orders_by_number(sandbox))
    assert numbers.count(read) == 2 and numbers.count(unread) == 1
    assert set(numbers[-2:]) == {read, unread}  # the new versions, last (their new FModifyDate)
    assert len(numbers) == len(orders_by_number(sandbox)) + 1
