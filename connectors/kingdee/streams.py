"""What the hub reads from Kingdee incrementally, described as data (one entry per stream).

Every stream is an ``ExecuteBillQuery`` over one form, incremental on ``FModifyDate`` (§1.5:
"``FModifyDate >=`` watermark minus overlap, ordered by ``FModifyDate, <pk>``"):

- **Cursor**: the largest ``FModifyDate`` seen, stored as an ISO string with the +08:00
  offset (Kingdee times are Asia/Shanghai local time, see ``mapping.py``). The next run reads
  from ``cursor − overlap`` (default 5 minutes), so a record saved in the same second as the
  watermark, or committed late by a long transaction, is read again rather than missed;
  re-reading is harmless because the engine upserts by natural key.
- **Paging**: keyset paging with ``StartRow`` 0 and ``Limit`` = page size, each page asking for
  rows after the last (FModifyDate, pk) seen. Plain StartRow offsets over a result ordered by
  modify date are unsafe while users work: a record edited during the read jumps to the end
  and every later row shifts one place towards the start, so the row at the page boundary is
  skipped for good (its date is below the new watermark). Keyset paging cannot skip.
- **Rows that cannot be read** never stop a read: a row whose ``FModifyDate`` does not parse
  (or is not text) does not move the cursor, and keyset paging anchors on the last row of the
  page whose stamp and key can be written into a filter; the rows after that anchor come back
  at the start of the next page and are skipped there (they were yielded already). The
  engine quarantines such rows with their reasons (the mapping names the field). Only a full
  page without a single readable row stops paging (PermanentError): nothing to anchor on.
  The next page's query is sent as soon as a full page's anchor is known, before the page
  is handed on (:func:`connectors.kit.paging.requests_ahead`): the same queries in the same
  order, the round trip beside the engine's hashing and the order lines' batches.
- **Sales orders**: a query that touches entry fields returns one row per line (§1.4), and a
  page boundary could split an order. The reader therefore pages over *headers* (header-only
  keys, one row per order) and fetches the lines of exactly those orders with
  ``FID in (…)``; each page's records are whole orders with their ``lines``. The alternative
  (carrying a partial order over to the next page) couples paging to line counts and breaks
  keyset paging; two small queries per page are cheaper than that complexity. Headers are
  read 2,000 at a time and their lines in batches of 500 orders, the batches' line queries
  in parallel within the client's read slots (:class:`SalesOrderQuery`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from connectors.kingdee.client import MAX_PAGE_SIZE, quote_literal
from connectors.kingdee.mapping import (
    CUSTOMER_FIELDS,
    KINGDEE_TZ,
    RECEIPT_FIELDS,
    RECEIVABLE_FIELDS,
    RECEIVABLE_MAPPING,
    SALES_ORDER_FIELDS,
    SALES_ORDER_LINE_FIELDS,
    SALES_ORDER_MAPPING,
    group_order_rows,
    header_id,
    map_customer,
    map_receipt,
    parse_kingdee_datetime,
)
from connectors.kit.http import CallContext
from connectors.kit.paging import complete_ahead, requests_ahead, spare_workers, watermark
from hub.contracts import UNREADABLE, MappingError, Page, RawRecord, StreamSpec
from hub.errors import PermanentError

MODIFY_KEY = "FModifyDate"
DEFAULT_OVERLAP = dt.timedelta(minutes=5)
DEFAULT_ORDER_PAGE_SIZE = 500  # orders per engine page; their ≈2–3 lines each fit one line query


class QueryClient(Protocol):
    """The part of :class:`~connectors.kingdee.client.KingdeeClient` the readers use."""

    def execute_bill_query(
        self, form_id: str, field_keys: Sequence[str], filter_string: str = "", order_string: str = "",
        start_row: int = 0, limit: int = MAX_PAGE_SIZE,
    ) -> list[dict[str, Any]]:
        """One page of rows keyed by field key."""
        ...

    def query_pages(
        self, form_id: str, field_keys: Sequence[str], filter_string: str = "", order_string: str = "",
        page_size: int = MAX_PAGE_SIZE,
    ) -> Iterator[list[dict[str, Any]]]:
        """StartRow/Limit pages until a short page."""
        ...


def _filter_time(value: dt.datetime) -> str:
    """A FilterString date literal in Kingdee local time, milliseconds kept when present."""
    local = value.astimezone(KINGDEE_TZ).replace(tzinfo=None) if value.tzinfo else value
    text = local.strftime("%Y-%m-%d %H:%M:%S")
    if local.microsecond:
        text += f".{local.microsecond // 1000:03d}"
    return quote_literal(text)


def since_literal(cursor: str | None, overlap: dt.timedelta) -> str | None:
    """``cursor − overlap`` as a date literal, or None for a first (full) read."""
    since = watermark(cursor, overlap, lambda text: parse_kingdee_datetime(text, "cursor"),
                      call=CallContext("kingdee", "ExecuteBillQuery"))
    return None if since is None else _filter_time(since.replace(microsecond=0))


def _cursor_value(raw: Any) -> str | None:
    """A row's FModifyDate as the ISO cursor text; None when missing or unreadable (such a
    row is quarantined by the engine and must not move the cursor)."""
    if raw is None or raw == "":
        return None
    try:
        return parse_kingdee_datetime(raw, MODIFY_KEY).isoformat()
    except MappingError:
        return None


# Kingdee's own layout of a time, no offset (``2024-05-01T10:20:30``, optional fraction): among
# texts of this layout, text order is time order (fixed-width fields, most significant first; a
# shorter fraction is a prefix, read as padded with zeros).
_PLAIN_STAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?")


def newest_change(rows: Sequence[RawRecord]) -> str | None:
    """The largest readable ``FModifyDate`` of ``rows`` as ISO cursor text (None: none readable).

    When every stamp is text in Kingdee's own layout (:data:`_PLAIN_STAMP`), the greatest text
    is the latest time, so only it is read (the next greatest when it is no date, such as
    month 13); otherwise every stamp is read. This runs on every page, in the reading thread:
    reading all of them cost about 70 ms of the hub's CPU per sync of the sandbox (15,500
    stamps), which a loaded machine takes from the engine's work on the same pages."""
    values = [row.get(MODIFY_KEY) for row in rows]
    texts: list[str] = [value for value in values if type(value) is str and _PLAIN_STAMP.fullmatch(value)]
    if texts and len(texts) == len(values):
        for text in sorted(set(texts), reverse=True):
            if (stamp := _cursor_value(text)) is not None:
                return stamp
        return None
    stamps = [s for s in map(_cursor_value, values) if s]
    return max(stamps, key=dt.datetime.fromisoformat) if stamps else None


def _filterable_pk(value: Any) -> bool:
    """True when a primary key value can be written into a FilterString (a whole number)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return True
    return isinstance(value, str) and value.strip().isdecimal() and len(value.strip()) <= 19


def _anchor(rows: Sequence[RawRecord], pk: str) -> int | None:
    """Index of the last row whose (FModifyDate, pk) a keyset condition can use: the stamp
    missing (NULL sorts first) or readable, the key a whole number."""
    for index in range(len(rows) - 1, -1, -1):
        row = rows[index]
        stamp = row.get(MODIFY_KEY)
        if _filterable_pk(row.get(pk)) and (stamp is None or _cursor_value(stamp) is not None):
            return index
    return None


def _identity(row: RawRecord, pk: str) -> Any:
    """What recognises a row read again at the start of the next page."""
    key = row.get(pk)
    return ("pk", key) if _filterable_pk(key) else ("row", repr(row))


def _after(keys: Sequence[str], values: Sequence[Any]) -> str:
    """Keyset condition "(k1, k2, …) > (v1, v2, …)" in FilterString, NULL-aware on the first key."""
    first, rest = keys[0], keys[1:]
    value = values[0]
    tail = _after(rest, values[1:]) if rest else None
    if value is None:
        # NULL sorts first: after (NULL, …) come the later NULL rows and every non-NULL row.
        later_nulls = f"({first} is null and {tail})" if tail else None
        return f"({later_nulls} or {first} is not null)" if later_nulls else f"{first} is not null"
    literal = _filter_time(parse_kingdee_datetime(value, first)) if first == MODIFY_KEY else _literal(value)
    if tail is None:
        return f"{first} > {literal}"
    return f"({first} > {literal} or ({first} = {literal} and {tail}))"


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float | Decimal):
        return str(value)
    return quote_literal(str(value))


@dataclass(frozen=True)
class IncrementalQuery:
    """Reads one form incrementally with keyset paging on (FModifyDate, pk); see the module doc."""

    form_id: str
    field_keys: tuple[str, ...]
    pk: str
    base_filter: str = ""
    page_size: int | None = None  # None: the client's read_page_size (hub setting), else 2000
    overlap: dt.timedelta | None = None  # None: the client's read_overlap (hub setting), else 5 min

    def pages(self, client: QueryClient, cursor: str | None) -> Iterator[tuple[list[RawRecord], str | None]]:
        """Yield (rows, max FModifyDate of the rows as ISO) per page, in cursor order."""
        keys = list(self.field_keys)
        for required in (MODIFY_KEY, self.pk):
            if required not in keys:
                keys.append(required)
        order = f"{MODIFY_KEY} ASC,{self.pk} ASC"
        overlap: dt.timedelta = (self.overlap if self.overlap is not None
                                 else getattr(client, "read_overlap", DEFAULT_OVERLAP))
        since = since_literal(cursor, overlap)
        client_size: int = getattr(client, "read_page_size", MAX_PAGE_SIZE)
        page_size = self.page_size if self.page_size is not None else client_size
        size = min(max(page_size, 1), MAX_PAGE_SIZE)

        def query(after: tuple[Any, Any] | None) -> list[RawRecord]:
            conditions = [f"({self.base_filter})"] if self.base_filter else []
            if since:
                conditions.append(f"{MODIFY_KEY} >= {since}")
            if after is not None:
                conditions.append(_after([MODIFY_KEY, self.pk], after))
            return client.execute_bill_query(self.form_id, keys, " and ".join(conditions), order, 0, size)

        last: tuple[Any, Any] | None = None
        carried: set[Any] = set()  # rows after the last anchor, yielded already
        # the next page is asked for as soon as this one's anchor is known, before this one is
        # handed on (kit.requests_ahead): the same requests, in the same order, sooner
        with requests_ahead() as send:
            pending = send(query, None)
            while True:
                rows = pending.result()
                skip = 0
                while skip < len(rows) and carried and _identity(rows[skip], self.pk) in carried:
                    skip += 1
                fresh = rows[skip:]
                full = len(rows) >= size
                stuck = False
                if full:
                    at = _anchor(rows, self.pk)
                    if at is None or (rows[at].get(MODIFY_KEY), rows[at].get(self.pk)) == last:
                        stuck = True
                    else:
                        last = (rows[at].get(MODIFY_KEY), rows[at].get(self.pk))
                        carried = {_identity(row, self.pk) for row in rows[at + 1:]}
                        pending = send(query, last)
                if fresh:
                    yield fresh, newest_change(fresh)
                if not full:
                    return
                if stuck:
                    raise PermanentError(
                        f"{self.form_id}: keyset paging cannot go on: no row of a full page after "
                        f"{last!r} has a readable {MODIFY_KEY} and {self.pk}",
                        system="kingdee", operation="ExecuteBillQuery", code="paging")

    def __call__(self, client: QueryClient, cursor: str | None) -> Iterator[Page]:
        """StreamSpec.read_pages: one Page per query page."""
        for rows, cursor_after in self.pages(client, cursor):
            yield Page(records=rows, cursor_after=cursor_after)


@dataclass(frozen=True)
class SalesOrderQuery:
    """Pages over order headers, then fetches the lines of those orders (never splits an order).

    Headers come in pages as large as the other streams' (``headers.page_size``, by default
    the client's ``read_page_size``, 2,000: header rows are one per order and small); each
    page of headers is cut into batches of ``batch_size`` orders, whose lines fit one line
    query (≈2–3 lines an order), and each batch is one engine page.
    """

    headers: IncrementalQuery
    line_keys: tuple[str, ...] = SALES_ORDER_LINE_FIELDS
    batch_size: int = DEFAULT_ORDER_PAGE_SIZE

    def __call__(self, client: QueryClient, cursor: str | None) -> Iterator[Page]:
        """StreamSpec.read_pages: records are whole orders with a ``lines`` list, in
        ``(FModifyDate, FID)`` order, each page's cursor its newest change.

        Only the headers are keyset-paged (the next page's filter is this page's last
        header), so only they are read one after another; the line queries of the batches
        depend on nothing but their own batch and run beside each other and beside the next
        header page (:func:`connectors.kit.paging.complete_ahead`), in as many threads as the
        client's read slots allow less the one the header read needs
        (``read_concurrency`` − 1, at least one). Pages still come out in header order, so
        the stream is the same sequence of pages, with the same cursors, as when read one
        call at a time: a failed or resumed run never skips a record. For 5,000 orders:
        3 header queries (2,000 + 2,000 + 1,000) and 10 line queries, against 11 + 10 when
        headers were paged 500 at a time (``benchmarks/end_to_end.py``)."""
        workers = spare_workers(getattr(client, "read_concurrency", None), beside=1)
        # ahead: the next header page is read while this page's batches are still being
        # completed, not after the first of them is done (one round trip less per header page)
        yield from complete_ahead(self._batches(client, cursor), lambda batch: self._with_lines(client, *batch),
                                  workers=workers, ahead=workers)

    def _batches(self, client: QueryClient, cursor: str | None) -> Iterator[tuple[list[RawRecord], str | None]]:
        """Each header page cut into batches of ``batch_size`` orders, with each batch's newest change."""
        size = max(self.batch_size, 1)
        for headers, _newest in self.headers.pages(client, cursor):
            for start in range(0, len(headers), size):
                batch = headers[start:start + size]
                yield batch, newest_change(batch)

    def _with_lines(self, client: QueryClient, headers: list[RawRecord], cursor_after: str | None) -> Page:
        # a header whose FID is not a bill id gets no lines; its mapping names the FID
        ids = [str(fid) for fid in dict.fromkeys(header_id(h) for h in headers) if fid is not None]
        lines: list[RawRecord] = []
        if ids:
            condition = f"FID in ({', '.join(ids)})"
            order = "FID ASC,FSaleOrderEntry_FEntryID ASC"
            for page in client.query_pages(self.headers.form_id, self.line_keys, condition, order):
                lines.extend(page)
        # A line row the client could not read belongs to an unknown order: it travels as
        # a record of its own (the engine quarantines it with its reason), and the order
        # it is missing from fails its total check instead of being stored without it.
        unreadable = [line for line in lines if UNREADABLE in line]
        return Page(records=[*group_order_rows(headers, lines), *unreadable], cursor_after=cursor_after)


def kingdee_streams(
    *, page_size: int | None = None, order_page_size: int = DEFAULT_ORDER_PAGE_SIZE,
    overlap: dt.timedelta | None = None,
) -> tuple[StreamSpec, ...]:
    """The Kingdee streams; page size and overlap default to the client's read settings."""
    return (
        StreamSpec(
            name="customers", source_object="BD_Customer", target="customer", key_field="FNumber",
            cursor_field=MODIFY_KEY,
            read_pages=IncrementalQuery("BD_Customer", CUSTOMER_FIELDS, "FCUSTID", page_size=page_size,
                                        overlap=overlap),
            map_record=map_customer,
        ),
        StreamSpec(
            name="sales_orders", source_object="SAL_SaleOrder", target="sales_order", key_field="FBillNo",
            cursor_field=MODIFY_KEY,
            read_pages=SalesOrderQuery(IncrementalQuery("SAL_SaleOrder", SALES_ORDER_FIELDS, "FID",
                                                        page_size=page_size, overlap=overlap),
                                       batch_size=order_page_size),
            map_record=SALES_ORDER_MAPPING, depends_on=("customers",),
        ),
        StreamSpec(
            name="receivables", source_object="AR_receivable", target="receivable", key_field="FBillNo",
            cursor_field=MODIFY_KEY,
            read_pages=IncrementalQuery("AR_receivable", RECEIVABLE_FIELDS, "FID", page_size=page_size,
                                        overlap=overlap),
            map_record=RECEIVABLE_MAPPING, depends_on=("customers",),
        ),
        StreamSpec(
            name="receipts", source_object="AR_RECEIVEBILL", target="receipt", key_field="FBillNo",
            cursor_field=MODIFY_KEY,
            # Receipts from suppliers, employees… are not customer money (§1.5 FCONTACTUNITTYPE).
            read_pages=IncrementalQuery("AR_RECEIVEBILL", RECEIPT_FIELDS, "FID",
                                        base_filter="FCONTACTUNITTYPE = 'BD_Customer'", page_size=page_size,
                                        overlap=overlap),
            map_record=map_receipt, depends_on=("customers",),
        ),
    )


STREAMS: tuple[StreamSpec, ...] = kingdee_streams()

__all__ = [
    "DEFAULT_ORDER_PAGE_SIZE",
    "DEFAULT_OVERLAP",
    "STREAMS",
    "IncrementalQuery",
    "QueryClient",
    "SalesOrderQuery",
    "kingdee_streams",
    "since_literal",
]
