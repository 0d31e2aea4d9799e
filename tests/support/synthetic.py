"""A deterministic synthetic source, for the engine's tests and benchmarks.

It behaves like a connector stream (pages after a cursor, pure mapping) without any
HTTP, so the engine's guarantees (crash safety, change detection, quarantine) can be
tested and measured on their own, at any size, in any process: the same seed gives
the same records in every process, which the SIGKILL test relies on.

Hostile input for the engine's tests: ``overrides`` replaces fields of chosen receivables
(any JSON-like value, NUL and lone surrogates included), ``extra`` adds records after a
chosen one on the same page (twins of an earlier key, rows without a key, …). Like a
connector's, the mappings turn every malformed record into a ``MappingError`` (or a
validation error) naming the field, and a page's cursor is its latest *readable* stamp.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from canonical_model.pages import PagedMapping
from canonical_model.records import RECEIVABLE_PAGE, CustomerRecord, ReceivableRecord
from canonical_model.storable import shown
from hub.contracts import MappingError, Page, RawRecord, StreamSpec
from hub.identity import credit_code_check_char

_EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
_CITIES = ("北京", "上海", "深圳", "杭州", "成都", "武汉", "南京", "苏州", "西安", "重庆")
_TRADES = ("科技", "机械", "贸易", "电子", "医疗器械", "新材料", "物流", "食品", "软件", "环保")


def synthetic_credit_code(n: int) -> str:
    """A valid unified social credit code derived from ``n``."""
    body = f"91{110000 + (n % 890000):06d}{n:09d}"[:17]
    return body + credit_code_check_char(body)


@dataclass
class SyntheticSource:
    """Customers and receivables generated from ``seed``; ``bad_every`` makes every
    n-th receivable invalid (negative open amount or unknown currency)."""

    customers: int = 100
    receivables: int = 1000
    page_size: int = 500
    bad_every: int = 0
    version: int = 0  # bump to change every receivable's amount
    changed_ids: set[int] = field(default_factory=set)  # receivables changed since version 0
    overrides: dict[int, dict[str, Any]] = field(default_factory=dict)  # receivable i: fields replaced
    extra: dict[int, list[Any]] = field(default_factory=dict)  # records served right after receivable i

    def customer_row(self, i: int) -> RawRecord:
        city, trade = _CITIES[i % len(_CITIES)], _TRADES[(i // 10) % len(_TRADES)]
        return {"number": f"C{i:06d}", "name": f"{city}{trade}第{i}有限公司", "credit_code": synthetic_credit_code(i),
                "modified": (_EPOCH + dt.timedelta(seconds=i)).isoformat()}

    def receivable_row(self, i: int) -> RawRecord:
        amount = Decimal(1000 + (i * 37) % 90000) + Decimal(i % 100) / 100
        if self.version or i in self.changed_ids:
            amount += 1
        row = {"bill": f"AR{i:08d}", "customer": f"C{i % self.customers:06d}", "amount": str(amount),
               "open": str(amount if i % 3 else (amount / 2).quantize(Decimal("0.01"))), "currency": "CNY",
               "date": (dt.date(2026, 1, 1) + dt.timedelta(days=i % 300)).isoformat(),
               "due": (dt.date(2026, 2, 1) + dt.timedelta(days=i % 300)).isoformat(),
               "modified": (_EPOCH + dt.timedelta(seconds=i)).isoformat()}
        if self.bad_every and i % self.bad_every == self.bad_every - 1:
            if (i // self.bad_every) % 2:
                row["currency"] = "XYZ"
            else:
                row["open"] = "-5"
        row.update(self.overrides.get(i, {}))
        return row

    def receivable_rows(self, i: int) -> list[Any]:
        """Receivable ``i`` and the extra records served after it."""
        return [self.receivable_row(i), *self.extra.get(i, [])]

    def pages(self, rows: Callable[[int], Any], count: int, cursor: str | None) -> Iterator[Page]:
        start = 0
        if cursor is not None:  # cursor = last committed modification time, ISO
            start = int((dt.datetime.fromisoformat(cursor) - _EPOCH).total_seconds()) + 1
        for first in range(start, count, self.page_size):
            batch: list[Any] = []
            for i in range(first, min(first + self.page_size, count)):
                produced = rows(i)
                batch.extend(produced if isinstance(produced, list) else [produced])
            yield Page(batch, max(_stamps(batch), default=None))


def _stamps(batch: list[Any]) -> Iterator[str]:
    """The readable change stamps of a page (what its cursor may move to)."""
    for raw in batch:
        stamp = raw.get("modified") if isinstance(raw, dict) else None
        try:
            if isinstance(stamp, str) and dt.datetime.fromisoformat(stamp).tzinfo is not None:
                yield stamp
        except ValueError:
            continue


# Careful field readers: each names the field and what is wrong with it.

def _text(raw: RawRecord, key: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise MappingError(f"{key}: expected text, got {shown(value)}")
    return value


def _parsed(raw: RawRecord, key: str, parse: Callable[[str], Any], expected: str) -> Any:
    text = _text(raw, key)
    try:
        return parse(text)
    except (ValueError, ArithmeticError):
        raise MappingError(f"{key}: {shown(text)} is not {expected}") from None


def _number(raw: RawRecord, key: str) -> Decimal:
    return _parsed(raw, key, Decimal, "a number")


def _date(raw: RawRecord, key: str) -> dt.date:
    return _parsed(raw, key, dt.date.fromisoformat, "a date (YYYY-MM-DD)")


def _time(raw: RawRecord, key: str) -> dt.datetime:
    return _parsed(raw, key, dt.datetime.fromisoformat, "a date and time (ISO 8601)")


# The mappings read fields directly (the benchmark's speed); when a field is not what it
# should be, the record is read again with the careful readers above, which raise a
# MappingError naming the field. Module-level functions: no closure is built per record.

def _customer(number: Any, name: Any, code: Any, modified: dt.datetime) -> CustomerRecord:
    return CustomerRecord(source_system="synthetic", source_object="customer", external_id=number, name=name,
                          credit_code=code, modified_at=modified)


def _receivable(bill: Any, customer: Any, date: dt.date, due: dt.date, currency: Any, amount: Decimal,
                open_amount: Decimal, modified: dt.datetime) -> dict[str, Any]:
    return {"source_system": "synthetic", "source_object": "receivable", "external_id": bill, "bill_number": bill,
            "customer_ref": customer, "bill_date": date, "due_date": due, "currency": currency, "amount": amount,
            "open_amount": open_amount, "modified_at": modified}


_MALFORMED = (KeyError, TypeError, ValueError, ArithmeticError)


def map_synthetic_customer(raw: RawRecord) -> CustomerRecord:
    """Pure mapping of a synthetic customer row."""
    if not isinstance(raw, dict):
        raise MappingError(f"record: expected an object, got {shown(raw)}")
    try:
        return _customer(raw["number"], raw["name"], raw["credit_code"], dt.datetime.fromisoformat(raw["modified"]))
    except ValidationError:
        raise
    except _MALFORMED:
        return _customer(_text(raw, "number"), _text(raw, "name"), raw.get("credit_code"), _time(raw, "modified"))


def _receivable_fields(raw: RawRecord) -> dict[str, Any]:
    """The receivable's field values, read directly; a malformed field raises (KeyError,
    TypeError, ValueError, ArithmeticError) or a MappingError."""
    if not isinstance(raw, dict):
        raise MappingError(f"record: expected an object, got {shown(raw)}")
    if not raw.get("due"):
        raise MappingError("due: missing due date")
    return _receivable(raw["bill"], raw["customer"], dt.date.fromisoformat(raw["date"]),
                       dt.date.fromisoformat(raw["due"]), raw["currency"], Decimal(raw["amount"]),
                       Decimal(raw["open"]), dt.datetime.fromisoformat(raw["modified"]))


def map_synthetic_receivable(raw: RawRecord) -> ReceivableRecord:
    """Pure mapping of a synthetic receivable row."""
    try:
        values = _receivable_fields(raw)
    except MappingError:  # a ValueError too: its reason is the readable one
        raise
    except _MALFORMED:
        values = _receivable(_text(raw, "bill"), _text(raw, "customer"), _date(raw, "date"), _date(raw, "due"),
                             _text(raw, "currency"), _number(raw, "amount"), _number(raw, "open"),
                             _time(raw, "modified"))
    return ReceivableRecord(**values)  # a ValidationError: validation's own reasons are the readable ones


# the mapping of one receivable, which the engine may also run a page at a time
SYNTHETIC_RECEIVABLE = PagedMapping(map_synthetic_receivable, _receivable_fields, RECEIVABLE_PAGE)


CUSTOMERS: StreamSpec[Any] = StreamSpec(
    name="customers", source_object="customer", target="customer", key_field="number", cursor_field="modified",
    read_pages=lambda src, cursor: src.pages(src.customer_row, src.customers, cursor),
    map_record=map_synthetic_customer,
)
RECEIVABLES: StreamSpec[Any] = StreamSpec(
    name="receivables", source_object="receivable", target="receivable", key_field="bill", cursor_field="modified",
    read_pages=lambda src, cursor: src.pages(src.receivable_rows, src.receivables, cursor),
    map_record=SYNTHETIC_RECEIVABLE, depends_on=("customers",),
)
