"""A deterministic synthetic source, for the engine's tests and benchmarks.

It behaves like a connector stream (pages after a cursor, pure mapping) without any
HTTP, so the engine's guarantees (crash safety, change detection, quarantine) can be
tested and measured on their own, at any size, in any process: the same seed gives
the same records in every process, which the SIGKILL test relies on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from canonical_model.records import CustomerRecord, ReceivableRecord
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
        return row

    def pages(self, rows: Any, count: int, cursor: str | None) -> Iterator[Page]:
        start = 0
        if cursor is not None:  # cursor = last committed modification time, ISO
            start = int((dt.datetime.fromisoformat(cursor) - _EPOCH).total_seconds()) + 1
        for first in range(start, count, self.page_size):
            batch = [rows(i) for i in range(first, min(first + self.page_size, count))]
            yield Page(batch, batch[-1]["modified"])


def map_synthetic_customer(raw: RawRecord) -> CustomerRecord:
    """Pure mapping of a synthetic customer row."""
    return CustomerRecord(source_system="synthetic", source_object="customer", external_id=raw["number"],
                          name=raw["name"], credit_code=raw["credit_code"],
                          modified_at=dt.datetime.fromisoformat(raw["modified"]))


def map_synthetic_receivable(raw: RawRecord) -> ReceivableRecord:
    """Pure mapping of a synthetic receivable row."""
    if not raw.get("due"):
        raise MappingError("missing due date")
    return ReceivableRecord(
        source_system="synthetic", source_object="receivable", external_id=raw["bill"], bill_number=raw["bill"],
        customer_ref=raw["customer"], bill_date=dt.date.fromisoformat(raw["date"]),
        due_date=dt.date.fromisoformat(raw["due"]), currency=raw["currency"], amount=Decimal(raw["amount"]),
        open_amount=Decimal(raw["open"]), modified_at=dt.datetime.fromisoformat(raw["modified"]),
    )


CUSTOMERS = StreamSpec(
    name="customers", source_object="customer", target="customer", key_field="number", cursor_field="modified",
    read_pages=lambda src, cursor: src.pages(src.customer_row, src.customers, cursor),
    map_record=map_synthetic_customer,
)
RECEIVABLES = StreamSpec(
    name="receivables", source_object="receivable", target="receivable", key_field="bill", cursor_field="modified",
    read_pages=lambda src, cursor: src.pages(src.receivable_row, src.receivables, cursor),
    map_record=map_synthetic_receivable, depends_on=("customers",),
)
