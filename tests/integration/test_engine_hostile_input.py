"""Hostile input through the engine, on the real Postgres: no crash, nothing stuck, nothing lost.

Every test feeds one class of bad record through ``hub.engine.sync_stream`` together with good
ones, using the real Kingdee and WeCom mappings (and the Kingdee client and sandbox where the
read itself is at stake), then checks that

- the run completes, the good records are stored and the bad one is quarantined whole (its
  exact JSON text) with a reason a person can act on;
- every record is accounted for: read = inserted + updated + unchanged + quarantined + superseded;
- the NEXT sync completes too and moves the cursor (the stream is not stuck).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import httpx
import psycopg
import pytest
from pydantic import SecretStr

from canonical_model.models import (
    EMAIL_CHARS,
    MOBILE_CHARS,
    Contact,
    Customer,
    ExternalIdentity,
    InternalUser,
    Receipt,
    Receivable,
    SalesOrder,
    SalesOrderLine,
)
from connectors.kingdee.client import KingdeeClient
from connectors.kingdee.mapping import parse_kingdee_datetime
from connectors.kingdee.sandbox.auth import SANDBOX_CREDENTIALS
from connectors.kingdee.sandbox.testing import RunningSandbox, running_sandbox
from connectors.kingdee.streams import kingdee_streams
from connectors.wecom.mapping import DEPARTMENTS_KEY
from connectors.wecom.streams import DIRECTORY, EXTERNAL_CONTACTS
from hub.contracts import MappingError, Page, StreamSpec
from hub.engine import sync_stream
from hub.engine.quarantine import visible
from hub.engine.sync import SyncReport
from hub.engine.targets import HANDLERS
from hub.errors import MappingBugError
from tests.conftest import rows, scalar
from tests.support.synthetic import CUSTOMERS, RECEIVABLES, SyntheticSource

# -- a source that serves pages after a cursor, as a connector does ------------------------------


def stamp(n: int) -> str:
    """Kingdee's FModifyDate of the n-th record: later for larger n."""
    return f"2024-05-01T10:{n // 60:02d}:{n % 60:02d}"


def readable_stamp(raw: Any) -> str | None:
    value = raw.get("FModifyDate") if isinstance(raw, dict) else None
    try:
        return parse_kingdee_datetime(value, "FModifyDate").isoformat() if isinstance(value, str) else None
    except MappingError:
        return None


@dataclass
class Feed:
    """Pages of raw records; a page is served again until the cursor has passed its latest
    readable stamp (streams without a cursor get every page every time)."""

    pages: list[list[Any]] = field(default_factory=list)

    def read(self, cursor: str | None) -> Iterator[Page]:
        for records in self.pages:
            stamps = [s for s in map(readable_stamp, records) if s]
            after = max(stamps) if stamps else None
            if cursor is None or after is None or after > cursor:
                yield Page(copy.deepcopy(records), after)


def fed(stream: StreamSpec[Any]) -> StreamSpec[Any]:
    """The connector's stream (name, key, cursor, mapping, target) reading from a Feed."""
    return dataclasses.replace(stream, read_pages=lambda feed, cursor: feed.read(cursor))


KINGDEE = {s.name: fed(s) for s in kingdee_streams()}
WECOM = {"directory": fed(DIRECTORY), "external_contacts": fed(EXTERNAL_CONTACTS)}
SYSTEM_OF = {**dict.fromkeys(KINGDEE, "kingdee"), **dict.fromkeys(WECOM, "wecom")}
STREAMS = {**KINGDEE, **WECOM}


def sync(db: Any, stream: str, feed: Feed, *, full: bool = False) -> SyncReport:
    report = sync_stream(db, SYSTEM_OF[stream], STREAMS[stream], feed, full=full)
    assert_accounted(report)
    return report


def assert_accounted(report: SyncReport) -> None:
    c = report.counts
    assert c.read == c.inserted + c.updated + c.unchanged + c.quarantined + c.superseded, c


def quarantine(db: Any) -> list[Any]:
    """Open quarantine rows, the record's exact text opened (it is stored sealed: hub.vault)."""
    return [SimpleNamespace(**{**r._mapping, "payload_text": db.vault.open("quarantine", "payload_text",
                                                                           r.payload_text)})
            for r in rows(db, "SELECT source_ref, reason, payload, payload_text, attempts FROM quarantine "
                              "WHERE status = 'open' ORDER BY id")]


def cursor_of(db: Any, stream: str) -> Any:
    return scalar(db, "SELECT value FROM sync_cursor WHERE stream = :s", s=stream)


# -- real-looking source records -----------------------------------------------------------------

def kd_customer(n: int, **fields: Any) -> dict[str, Any]:
    return {"FCUSTID": 1000 + n, "FNumber": f"CUST{n:05d}", "FName": f"华创第{n}电子科技有限公司",
            "FSOCIALCRECODE": None, "FTEL": "0755-86123456", "FADDRESS": "广东省深圳市南山区科技路88号",
            "FSELLER.FNumber": None, "FGroup.FName": "信息技术", "FTRADINGCURRID.FNumber": "PRE001",
            "FForbidStatus": "A", "FDocumentStatus": "C", "FModifyDate": stamp(n), **fields}


def kd_receivable(n: int, **fields: Any) -> dict[str, Any]:
    return {"FID": 9000 + n, "FBillNo": f"AR{n:08d}", "FDATE": "2024-03-01T00:00:00",
            "FENDDATE_H": "2024-03-31T00:00:00", "FCUSTOMERID.FNumber": "CUST00001", "FCURRENCYID.FNumber": "PRE001",
            "FALLAMOUNTFOR": 1000.0 + n, "FWRITTENOFFAMOUNTFOR": 0.0, "FNOTWRITTENOFFAMOUNTFOR": 1000.0 + n,
            "FDocumentStatus": "C", "FCancelStatus": "A", "FModifyDate": stamp(n), **fields}


def kd_receipt(n: int, **fields: Any) -> dict[str, Any]:
    return {"FID": 7000 + n, "FBillNo": f"SKD{n:08d}", "FDATE": "2024-04-02T00:00:00",
            "FCONTACTUNITTYPE": "BD_Customer", "FCONTACTUNIT.FNumber": "CUST00001", "FCURRENCYID.FNumber": "PRE001",
            "FREALRECAMOUNTFOR": 500.0 + n, "FDocumentStatus": "C", "FModifyDate": stamp(n), **fields}


def kd_order(n: int, **fields: Any) -> dict[str, Any]:
    line = {"FID": 500 + n, "FSaleOrderEntry_FEntryID": 1, "FMaterialId.FNumber": "WL0001",
            "FMaterialId.FName": "伺服电机 A型", "FQty": 2.0, "FTaxPrice": 565.0, "FEntryTaxRate": 13.0,
            "FAllAmount": 1130.0}
    return {"FID": 500 + n, "FBillNo": f"XSDD{n:06d}", "FDate": "2024-04-28T00:00:00",
            "FCustId.FNumber": "CUST00001", "FSalerId.FNumber": "SP003", "FDocumentStatus": "C", "FCloseStatus": "A",
            "FSettleCurrId.FNumber": "PRE001", "FBillAllAmount": 1130.0, "FModifyDate": stamp(n), "lines": [line],
            **fields}


def wc_member(n: int, **fields: Any) -> dict[str, Any]:
    return {"userid": f"user{n:03d}", "name": f"销售{n}", "department": [3], "main_department": 3,
            "position": "销售代表", "mobile": f"186{n:08d}", "email": f"user{n}@example.com", "status": 1,
            "direct_leader": ["boss"], DEPARTMENTS_KEY: {"3": {"name": "华东销售部", "parentid": 1,
                                                          "department_leader": ["boss"]}}, **fields}


CORP = "苏州恒瑞精密机械有限公司"


def wc_contact(n: int, **contact: Any) -> dict[str, Any]:
    external_userid = contact.pop("external_userid", f"wm{n:06d}")
    follow = contact.pop("follow_info", {"userid": "user001", "remark": "", "remark_corp_name": "",
                                         "remark_mobiles": [f"139{n:08d}"], "createtime": 1714530030})
    return {"external_contact": {"external_userid": external_userid, "name": f"联系人{n}", "position": "采购经理",
                                 "corp_full_name": CORP, **contact},
            "follow_info": follow, "external_userid": external_userid}


BUILDERS = {"customers": kd_customer, "receivables": kd_receivable, "receipts": kd_receipt,
            "sales_orders": kd_order, "directory": wc_member, "external_contacts": wc_contact}


def with_value(record: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """A copy of ``record`` with the value at ``path`` (keys and list positions) replaced."""
    changed = copy.deepcopy(record)
    target: Any = changed
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    if path == ("external_contact", "external_userid"):
        changed["external_userid"] = value  # the stream copies it up as the record's key
    return changed


def given_known_customers(db: Any) -> None:
    """The customers the bills, orders and contacts below refer to."""
    report = sync(db, "customers", Feed([[kd_customer(1), kd_customer(2, FName=CORP)]]))
    assert report.counts.inserted == 2


# -- text longer than its column, for every length-limited column a mapping fills --------------

LONG_TEXT = [
    # stream, where in the source record, the canonical field named in the reason, its column
    ("customers", ("FName",), "name", Customer.name),
    ("customers", ("FTEL",), "phone", Customer.phone),
    ("customers", ("FADDRESS",), "address", Customer.address),
    ("customers", ("FGroup.FName",), "industry", Customer.industry),
    ("customers", ("FSELLER.FNumber",), "owner_ref", InternalUser.external_id),
    ("receivables", ("FBillNo",), "bill_number", Receivable.bill_number),
    ("receivables", ("FDocumentStatus",), "status", Receivable.status),
    ("receivables", ("FCUSTOMERID.FNumber",), "customer_ref", ExternalIdentity.external_id),
    ("receipts", ("FBillNo",), "bill_number", Receipt.bill_number),
    ("receipts", ("FCONTACTUNIT.FNumber",), "customer_ref", ExternalIdentity.external_id),
    ("sales_orders", ("FBillNo",), "bill_number", SalesOrder.order_number),
    ("sales_orders", ("FDocumentStatus",), "erp_status", SalesOrder.erp_status),
    ("sales_orders", ("FCustId.FNumber",), "customer_ref", ExternalIdentity.external_id),
    ("sales_orders", ("lines", 0, "FMaterialId.FNumber"), "product_code", SalesOrderLine.product_code),
    ("sales_orders", ("lines", 0, "FMaterialId.FName"), "product_name", SalesOrderLine.product_name),
    ("directory", ("userid",), "wecom_userid", InternalUser.wecom_userid),
    ("directory", ("name",), "name", InternalUser.name),
    ("directory", ("position",), "title", InternalUser.title),
    ("directory", ("email",), "email", InternalUser.email),
    ("directory", ("mobile",), "mobile", InternalUser.mobile),
    ("directory", ("direct_leader", 0), "manager_ref", InternalUser.manager_ref),
    ("directory", (DEPARTMENTS_KEY, "3", "name"), "department", InternalUser.department),
    ("external_contacts", ("external_contact", "external_userid"), "wecom_external_userid",
     Contact.wecom_external_userid),
    ("external_contacts", ("external_contact", "name"), "name", Contact.name),
    ("external_contacts", ("external_contact", "position"), "title", Contact.title),
    ("external_contacts", ("external_contact", "corp_full_name"), "corp_name", Customer.name),
    ("external_contacts", ("follow_info", "remark_mobiles", 0), "mobile", Contact.mobile),
    ("external_contacts", ("follow_info", "userid"), "owner_ref", InternalUser.external_id),
]


def column_limit(column: Any) -> int:
    """The characters a field landing in ``column`` may have: the column's length, or for a
    sealed personal column (text, hub.vault) the plaintext limit its record field declares."""
    mapped = column.property.columns[0]
    return mapped.type.length or {"mobile": MOBILE_CHARS, "email": EMAIL_CHARS}[mapped.name]


def too_long(column: Any, path: tuple[Any, ...]) -> str:
    """One character more than ``column`` holds: digits for phone numbers, Chinese otherwise
    (the limit counts characters, not bytes)."""
    length = column_limit(column) + 1
    return "1" * length if "mobile" in str(path) else "长" * length


@pytest.mark.parametrize(("stream", "path", "field_name", "column"), LONG_TEXT,
                         ids=[f"{s}-{'.'.join(map(str, p))}" for s, p, _, _ in LONG_TEXT])
def test_text_longer_than_its_column_is_quarantined_naming_field_and_length(db, stream, path, field_name, column):
    # given a page of three records, the middle one with a text one character longer than its column
    given_known_customers(db)
    build = BUILDERS[stream]
    limit = column_limit(column)
    hostile = with_value(build(11), path, too_long(column, path))
    feed = Feed([[build(10), hostile, build(12)]])

    # when the stream is synced
    report = sync(db, stream, feed)

    # then the other two are stored, the long one is quarantined whole with field and length named
    assert (report.counts.read, report.counts.inserted, report.counts.quarantined) == (3, 2, 1)
    [row] = quarantine(db)
    assert json.loads(row.payload_text) == hostile
    assert f"{field_name}: {limit + 1} characters, more than the {limit} the hub stores" in row.reason
    assert row.reason.startswith("record 2 of page 1: ")
    table_column = column.property.columns[0]
    assert f"({table_column.table.name}.{table_column.name})" in row.reason

    # and the next sync completes and takes in what is new
    feed.pages.append([build(13)])
    again = sync(db, stream, feed)
    assert again.counts.inserted == 1
    if STREAMS[stream].cursor_field:
        assert again.cursor_after is not None and again.cursor_after > report.cursor_after


def test_text_exactly_as_long_as_its_column_is_stored(db):
    # given a customer whose phone and address fill their columns to the last character
    phone, address = "8" * Customer.phone.type.length, "路" * Customer.address.type.length

    report = sync(db, "customers", Feed([[kd_customer(1, FTEL=phone, FADDRESS=address)]]))

    assert report.counts.inserted == 1
    assert rows(db, "SELECT phone, address FROM customer")[0] == (phone, address)


# -- keys: too long for any column, missing, not text ------------------------------------------

@pytest.mark.parametrize(("key", "reason"), [
    ("K" * 350, "key FNumber is 350 characters long; the hub keeps keys of at most 200"),
    ("K" * 10_000, "key FNumber is 10000 characters long"),
    (None, "key FNumber is missing"),
    ({"Key": 2052}, "key FNumber is an object, expected text"),
    (["CUST1"], "key FNumber is a list, expected text"),
    (True, "key FNumber is true, expected text"),
    ("   ", "FNumber: missing customer number"),
    ("CUST\x0001", "key FNumber contains a NUL character (U+0000) at position 5"),
    ("CUST\ud83d01", "key FNumber contains a lone surrogate (U+D83D) at position 5"),
])
def test_a_record_whose_key_cannot_be_used_is_quarantined_with_its_position(db, key, reason):
    # given a page whose third record has an unusable key
    hostile = kd_customer(3, FNumber=key)
    feed = Feed([[kd_customer(1), kd_customer(2), hostile, kd_customer(4)]])

    report = sync(db, "customers", feed)

    assert (report.counts.inserted, report.counts.quarantined) == (3, 1)
    [row] = quarantine(db)
    assert row.reason.startswith(f"record 3 of page 1: {reason}")
    if isinstance(key, str):
        assert json.loads(row.payload_text)["FNumber"] == key  # the quarantine holds any key whole
        assert row.source_ref == visible(key)  # ␀ for NUL, \udXXX for a lone surrogate
    assert report.cursor_after == readable_stamp(kd_customer(4))
    feed.pages.append([kd_customer(5)])
    assert sync(db, "customers", feed).counts.inserted == 1


# -- characters Postgres text cannot hold -------------------------------------------------------

def test_nul_and_lone_surrogates_in_mapped_fields_are_quarantined_naming_the_field(db):
    feed = Feed([[kd_customer(1, FTEL="0755\x008612"), kd_customer(2, FADDRESS="南山区\udc80科技路"), kd_customer(3)]])

    report = sync(db, "customers", feed)

    assert (report.counts.inserted, report.counts.quarantined) == (1, 2)
    nul, surrogate = quarantine(db)
    assert "phone: contains a NUL character (U+0000) at position 5" in nul.reason
    assert "address: contains a lone surrogate (U+DC80) at position 4" in surrogate.reason
    # the quarantine holds each record exactly (text), and readably (jsonb, with the NUL made visible)
    assert json.loads(nul.payload_text) == kd_customer(1, FTEL="0755\x008612")
    assert nul.payload["FTEL"] == "0755␀8612"
    assert json.loads(surrogate.payload_text)["FADDRESS"] == "南山区\udc80科技路"
    assert surrogate.payload["FADDRESS"] == "南山区\\udc80科技路"


def test_a_record_bound_for_quarantine_for_another_reason_may_hold_nul_anywhere(db):
    # given a bill of an unknown customer carrying NUL in a field the mapping does not read,
    # and NaN and an infinity (1E+400 read by a JSON parser) in fields it does not read either
    hostile = kd_receivable(1, **{"FCUSTOMERID.FNumber": "CUST00009", "FDocumentStatus": "C",
                                  "FNote\x00": "备注\x00", "FExtra": [float("nan"), float("inf")]})

    report = sync(db, "receivables", Feed([[hostile, kd_receivable(2)]]))

    # then it is quarantined whole, and a retry after the customer arrives reads the exact record
    assert report.counts.quarantined == 2  # kd_receivable(2)'s customer is unknown too
    row = quarantine(db)[0]
    assert "customer_ref: no customer 'CUST00009' from kingdee is known to the hub" in row.reason
    assert json.loads(row.payload_text)["FNote\x00"] == "备注\x00"
    assert row.payload["FNote␀"] == "备注␀" and row.payload["FExtra"] == ["NaN", "Infinity"]
    from hub.engine import retry_quarantined

    sync(db, "customers", Feed([[kd_customer(1), kd_customer(9)]]))
    counts = retry_quarantined(db, "kingdee", KINGDEE["receivables"])
    assert (counts.read, counts.inserted, counts.quarantined) == (2, 2, 0)


def test_retry_reads_the_exact_record_not_the_readable_copy(db):
    # given a customer quarantined for a NUL in its phone (the jsonb copy shows ␀ instead)
    sync(db, "customers", Feed([[kd_customer(1, FTEL="0755\x008612")]]))

    from hub.engine import retry_quarantined

    counts = retry_quarantined(db, "kingdee", KINGDEE["customers"])

    # then the retry sees the NUL again (it read payload_text): still quarantined, same reason
    assert (counts.read, counts.quarantined) == (1, 1)
    [row] = quarantine(db)
    assert "phone: contains a NUL character" in row.reason and row.attempts == 2
    assert scalar(db, "SELECT count(*) FROM customer") == 0


# -- change stamps that cannot be read ----------------------------------------------------------

@pytest.mark.parametrize(("modified", "reason"), [
    ("2024-13-99", "modified: '2024-13-99' is not a date and time"),
    (["2024-05-01"], "change stamp modified is a list, expected a time (text) or a number"),
    ({"$date": 1}, "change stamp modified is an object"),
    ("9" * 100, "change stamp modified is 100 characters long"),
    (float("nan"), "change stamp modified is nan, not a finite number"),
    ("2024-05-01\x00", "change stamp modified contains a NUL character"),
    (None, "modified: expected text, got empty (null)"),
])
def test_a_record_whose_change_stamp_cannot_be_read_is_quarantined_and_the_cursor_moves_on(db, modified, reason):
    # given 30 receivables in three pages; the 15th (record 5 of page 2) has an unreadable stamp
    source = SyntheticSource(customers=3, receivables=30, page_size=10, overrides={14: {"modified": modified}})
    sync_stream(db, "synthetic", CUSTOMERS, source)

    report = sync_stream(db, "synthetic", RECEIVABLES, source)

    assert_accounted(report)
    assert (report.counts.read, report.counts.inserted, report.counts.quarantined) == (30, 29, 1)
    [row] = quarantine(db)
    assert row.reason.startswith(f"record 5 of page 2: {reason}")
    assert cursor_of(db, "receivables") == source.receivable_row(29)["modified"]
    # the next sync reads from there: nothing new, nothing stuck
    assert sync_stream(db, "synthetic", RECEIVABLES, source).counts.read == 0


# -- amounts and references a person has to look at -------------------------------------------

@pytest.mark.parametrize(("fields", "reason"), [
    ({"FALLAMOUNTFOR": "1E+400"}, "FALLAMOUNTFOR: '1E+400' is too large: the hub stores at most 16 digits before "
                                  "the decimal point"),
    ({"FALLAMOUNTFOR": float("inf")}, "FALLAMOUNTFOR: inf is not a finite number; expected an amount"),
    ({"FALLAMOUNTFOR": float("nan")}, "FALLAMOUNTFOR: nan is not a finite number; expected an amount"),
    ({"FNOTWRITTENOFFAMOUNTFOR": "NaN"}, "FNOTWRITTENOFFAMOUNTFOR: 'NaN' is not a finite number"),
    ({"FALLAMOUNTFOR": -500.0, "FNOTWRITTENOFFAMOUNTFOR": -500.0},
     "open amount -500.00 is negative: the hub keeps what a customer still owes, 0 or more"),
    ({"FCURRENCYID.FNumber": "PRE999"}, "FCURRENCYID.FNumber: unknown Kingdee currency number 'PRE999'"),
    ({"FCUSTOMERID.FNumber": "CUST99999"}, "customer_ref: no customer 'CUST99999' from kingdee is known to the hub: "
                                           "it is not synced yet or does not exist in kingdee; sync kingdee "
                                           "customers, then run `hub quarantine retry kingdee receivables`"),
    ({"FDATE": "2024-02-30T00:00:00"}, "FDATE: '2024-02-30T00:00:00' is not a date/time"),
])
def test_absurd_amounts_and_unknown_references_get_a_reason_a_person_can_act_on(db, fields, reason):
    given_known_customers(db)

    report = sync(db, "receivables", Feed([[kd_receivable(1), kd_receivable(2, **fields)]]))

    assert (report.counts.inserted, report.counts.quarantined) == (1, 1)
    [row] = quarantine(db)
    assert reason in row.reason, row.reason
    assert "<class" not in row.reason and "InvalidOperation" not in row.reason


# -- the same key twice in one page ------------------------------------------------------------

# stream, the field that differs between the twins, how to read the stored value back
TWINS = [
    ("customers", ("FName",), "SELECT c.name FROM customer c JOIN external_identity e ON e.canonical_id = c.id "
                              "WHERE e.external_id = 'CUST00005'"),
    ("receivables", ("FDocumentStatus",), "SELECT status FROM receivable WHERE external_id = 'AR00000005'"),
    ("receipts", ("FREALRECAMOUNTFOR",), "SELECT amount::text FROM receipt WHERE external_id = 'SKD00000005'"),
    ("sales_orders", ("FDocumentStatus",), "SELECT erp_status FROM sales_order WHERE erp_bill_number = 'XSDD000005'"),
    ("directory", ("name",), "SELECT name FROM internal_user WHERE wecom_userid = 'user005'"),
    ("external_contacts", ("external_contact", "name"),
     "SELECT name FROM contact WHERE external_id = 'wm000005'"),
]
VALUES = {"FName": ("甲公司", "乙公司"), "FDocumentStatus": ("A", "C"), "FREALRECAMOUNTFOR": (100.0, 200.0),
          "name": ("甲", "乙")}


def value_text(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


@pytest.mark.parametrize(("stream", "path", "query"), TWINS, ids=[t[0] for t in TWINS])
def test_twins_in_a_page_resolve_to_the_latest_and_the_stored_value_stays_put(db, stream, path, query):
    given_known_customers(db)
    build = BUILDERS[stream]
    first, second = VALUES[path[-1]]
    has_stamp = STREAMS[stream].cursor_field is not None
    # given a page holding record 5 twice: the earlier position carries the later modification
    # (WeCom records carry none: there the later position wins)
    newer = with_value(build(5, FModifyDate=stamp(50)) if has_stamp else build(5), path, first)
    older = with_value(build(5), path, second)
    page = [newer, build(6), older] if has_stamp else [older, build(6), newer]
    feed = Feed([page])

    report = sync(db, stream, feed)

    # then one of them is stored, the other counted as superseded, nothing unaccounted
    assert (report.counts.read, report.counts.inserted, report.counts.superseded) == (3, 2, 1)
    assert scalar(db, query) == value_text(first)
    assert scalar(db, "SELECT count(*) FROM quarantine") == 0

    # and syncing the same page again and again never flips the stored value
    for _ in range(2):
        again = sync(db, stream, feed, full=True)
        assert (again.counts.updated, again.counts.unchanged, again.counts.superseded) == (0, 2, 1)
        assert scalar(db, query) == value_text(first)


def test_identical_twins_and_equally_recent_twins(db):
    # given customer 5 twice with the same stamp (the later position wins) and customer 6 twice, identical
    page = [kd_customer(5, FName="甲公司"), kd_customer(6), kd_customer(5, FName="乙公司"), kd_customer(6)]

    report = sync(db, "customers", Feed([page]))

    assert (report.counts.read, report.counts.inserted, report.counts.superseded) == (4, 2, 2)
    assert scalar(db, "SELECT name FROM customer WHERE name LIKE '%公司' AND name NOT LIKE '华创%'") == "乙公司"


def test_a_twin_that_fails_mapping_loses_to_one_whose_modification_is_known(db):
    # given record 5 twice: the later one in the page cannot be mapped (its date does not exist)
    page = [kd_customer(5, FName="甲公司"), kd_customer(5, FName="乙公司", FModifyDate="2024-13-99")]

    report = sync(db, "customers", Feed([page]))

    # then the readable one is stored and the unreadable one superseded, not quarantined
    assert (report.counts.inserted, report.counts.superseded, report.counts.quarantined) == (1, 1, 0)
    assert scalar(db, "SELECT name FROM customer") == "甲公司"


# -- the Kingdee read itself: unreadable stamps, odd ids, short rows ---------------------------

@pytest.fixture(scope="module")
def kingdee_server() -> Iterator[RunningSandbox]:
    with running_sandbox(scale=0.01) as running:
        yield running


@dataclass
class CorruptingClient:
    """A K/3 Cloud client whose replies carry broken values in chosen rows (what a colleague
    measured against a stub): ``corrupt`` maps a FNumber/FBillNo to the fields to replace."""

    client: KingdeeClient
    corrupt: dict[str, dict[str, Any]]
    read_page_size: int = 5

    def execute_bill_query(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        rows_ = self.client.execute_bill_query(*args, **kwargs)
        return [{**row, **self.corrupt.get(row.get("FNumber") or row.get("FBillNo") or "", {})} for row in rows_]

    def query_pages(self, *args: Any, **kwargs: Any) -> Any:
        return self.client.query_pages(*args, **kwargs)


def test_kingdee_rows_with_unreadable_stamps_do_not_stop_the_read(db, kingdee_server):
    # given the ERP's customers read five per page, two of which come back with a broken
    # FModifyDate, one of them the last row of its page (the keyset paging anchor)
    kingdee_server.reset()
    state = kingdee_server.state
    numbers = sorted((d["FModifyDate"], d["FCUSTID"], d["FNumber"]) for d in state.table("BD_Customer").docs.values())
    broken = {numbers[4][2]: {"FModifyDate": "2024-13-99"}, numbers[7][2]: {"FModifyDate": 20240501}}
    client = CorruptingClient(kingdee_server.client(), broken)
    stream = kingdee_streams()[0]

    report = sync_stream(db, "kingdee", stream, client)

    # then every customer is read exactly once: the two broken ones quarantined with reasons
    assert_accounted(report)
    assert report.counts.read == len(numbers)
    assert (report.counts.inserted, report.counts.quarantined) == (len(numbers) - 2, 2)
    reasons = {row.source_ref: row.reason for row in quarantine(db)}
    assert "FModifyDate: '2024-13-99' is not a date/time" in reasons[numbers[4][2]]
    assert "FModifyDate: expected a date/time, got 20240501" in reasons[numbers[7][2]]
    assert reasons[numbers[4][2]].startswith("record 5 of page 1: ")
    # and the cursor is the newest readable stamp; the next sync completes
    newest = numbers[-1][0].replace(tzinfo=parse_kingdee_datetime("2024-01-01T00:00:00", "x").tzinfo)
    assert report.cursor_after == newest.isoformat()
    again = sync_stream(db, "kingdee", stream, client)
    assert again.counts.inserted == again.counts.updated == 0


def test_kingdee_orders_with_a_header_id_that_is_not_a_number_are_quarantined(db, kingdee_server):
    kingdee_server.reset()
    client = kingdee_server.client()
    sync_stream(db, "kingdee", kingdee_streams()[0], client)
    orders = sorted(kingdee_server.state.table("SAL_SaleOrder").docs.values(), key=lambda d: d["FModifyDate"])
    bill = orders[0]["FBillNo"]
    hostile = CorruptingClient(client, {bill: {"FID": "XSDD-abc"}}, read_page_size=2000)
    stream = kingdee_streams(order_page_size=50)[1]

    report = sync_stream(db, "kingdee", stream, hostile)

    assert_accounted(report)
    assert report.counts.quarantined >= 1
    reasons = {row.source_ref: row.reason for row in quarantine(db)}
    assert "FID: 'XSDD-abc' is not a bill id (a whole number)" in reasons[bill]
    assert report.counts.inserted >= len(orders) - report.counts.quarantined


def query_reply(rows_: list[Any]) -> httpx.Response:
    return httpx.Response(200, content=json.dumps(rows_, ensure_ascii=False).encode())


def test_a_query_row_with_fewer_values_than_fields_is_quarantined_not_the_page(db):
    # given an ERP whose reply holds a short row (11 values for 12 fields) and a row that is no list
    fields = ["FCUSTID", "FNumber", "FName", "FSOCIALCRECODE", "FTEL", "FADDRESS", "FSELLER.FNumber",
              "FGroup.FName", "FTRADINGCURRID.FNumber", "FForbidStatus", "FDocumentStatus", "FModifyDate"]
    good = [[kd_customer(n)[f] for f in fields] for n in (1, 2, 3)]
    replies = [[good[0], good[1][:-1], "CUST?", good[2]], [[kd_customer(4)[f] for f in fields]]]

    def handler(request: httpx.Request) -> httpx.Response:
        return query_reply(replies.pop(0) if replies else [])

    creds = SANDBOX_CREDENTIALS
    client = KingdeeClient(base_url="https://erp.example.com/k3cloud/", acct_id=creds.acct_id,
                           username=creds.username, app_id=creds.app_id, app_secret=SecretStr(creds.app_secret),
                           transport=httpx.MockTransport(handler))
    stream = kingdee_streams(page_size=100)[0]

    report = sync_stream(db, "kingdee", stream, client)

    # then the good rows are stored and the two odd ones quarantined, with the values they had
    assert_accounted(report)
    assert (report.counts.read, report.counts.inserted, report.counts.quarantined) == (4, 2, 2)
    short, not_a_list = quarantine(db)
    assert short.reason == ("record 2 of page 1: ExecuteBillQuery row 2 of its page has 11 values for the 12 field "
                            "keys asked for; its values cannot be matched to fields")
    assert json.loads(short.payload_text)["row"] == good[1][:-1]
    assert "ExecuteBillQuery row 3 of its page is 'CUST?', not a list of 12 values" in not_a_list.reason
    # and the next sync completes
    assert sync_stream(db, "kingdee", stream, client).counts.inserted == 1


# -- what the database still refuses: isolated, the rest of the page stored ---------------------

def test_a_record_the_database_refuses_is_isolated_and_the_rest_of_its_page_stored(db):
    # given a customer name that passes validation (80 characters) but grows to 320 when
    # normalized for matching (NFKC turns ㍿ into 株式会社), too long for customer.normalized_name
    page = [kd_customer(n) for n in range(1, 8)]
    page[4] = kd_customer(5, FName="㍿" * 80)
    feed = Feed([page])

    report = sync(db, "customers", feed)

    assert (report.counts.read, report.counts.inserted, report.counts.quarantined) == (7, 6, 1)
    [row] = quarantine(db)
    assert row.source_ref == "CUST00005"
    assert row.reason == (
        "record 5 of page 1: the database refused this customer record: a text is longer than its column allows "
        "(value too long for type character varying(300), SQLSTATE 22001); it was set aside so the rest of its "
        "page could be stored")
    assert "㍿" not in row.reason and "株式会社" not in row.reason
    feed.pages.append([kd_customer(8)])
    assert sync(db, "customers", feed).counts.inserted == 1


def test_a_lost_connection_is_not_bad_data_it_fails_the_run_and_commits_nothing(db, monkeypatch):
    def connection_lost(ctx: Any, mapped: Any) -> Any:
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setitem(HANDLERS, "customer", connection_lost)

    with pytest.raises(psycopg.OperationalError):
        sync(db, "customers", Feed([[kd_customer(1)]]))

    assert scalar(db, "SELECT count(*) FROM quarantine") == 0
    assert cursor_of(db, "customers") is None
    assert scalar(db, "SELECT status FROM sync_run") == "failed"


# -- a bug in a mapping is not bad data ---------------------------------------------------------

def test_a_mapping_bug_fails_the_run_and_leaves_its_page_uncommitted(db, caplog):
    # given a mapping that raises KeyError (quoting a value) on the 25th receivable, page 3 of 4
    source = SyntheticSource(customers=3, receivables=40, page_size=10)
    sync_stream(db, "synthetic", CUSTOMERS, source)

    def buggy(raw: dict[str, Any]) -> Any:
        if raw["bill"] == "AR00000024":
            raise KeyError(f"amount {raw['amount']} for 13800138000")
        return RECEIVABLES.map_record(raw)

    stream = dataclasses.replace(RECEIVABLES, map_record=buggy)

    # when it is synced, the run fails loudly, naming the record by position and reference only
    with caplog.at_level(logging.DEBUG), pytest.raises(MappingBugError) as failure:
        sync_stream(db, "synthetic", stream, source)

    message = str(failure.value)
    assert "the mapping raised KeyError" in message and "record 5 of page 3" in message
    assert "'AR00000024'" in message and "13800138000" not in message
    # then the pages before it are committed, that page is not, and the cursor is where they ended
    assert scalar(db, "SELECT count(*) FROM receivable") == 20
    assert cursor_of(db, "receivables") == source.receivable_row(19)["modified"]
    assert scalar(db, "SELECT count(*) FROM quarantine") == 0
    run = rows(db, "SELECT status, error, counts FROM sync_run WHERE stream = 'receivables'")[0]
    assert run.status == "failed" and "KeyError" in run.error and "13800138000" not in run.error
    audit = scalar(db, "SELECT error FROM audit_log WHERE operation = 'run:receivables' AND outcome = 'error'")
    assert "13800138000" not in str(audit) and "13800138000" not in caplog.text


def test_a_mapping_bug_on_the_first_page_leaves_the_cursor_unset(db):
    def buggy(raw: dict[str, Any]) -> Any:
        return {}["no such field"]

    with pytest.raises(MappingBugError):
        sync_stream(db, "kingdee", dataclasses.replace(KINGDEE["customers"], map_record=buggy),
                    Feed([[kd_customer(1)]]))
    assert cursor_of(db, "customers") is None
    assert scalar(db, "SELECT count(*) FROM customer") == 0


# -- error paths carry references, never row contents ------------------------------------------

def test_no_log_line_or_run_text_carries_record_values(db, caplog):
    phone = "13800138000" * 6  # 66 characters: longer than customer.phone holds
    with caplog.at_level(logging.DEBUG):
        report = sync(db, "customers", Feed([[kd_customer(1, FTEL=phone), kd_customer(2)]]))

    assert report.counts.quarantined == 1
    assert "13800138000" not in caplog.text
    assert "13800138000" not in str(scalar(db, "SELECT string_agg(detail::text, ' ') FROM audit_log"))
    [row] = quarantine(db)
    assert "13800138000" not in row.reason  # a long value is described by its length
