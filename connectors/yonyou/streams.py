"""What the hub reads from YonBIP incrementally, described as data (one entry per stream).

Every stream is incremental on ``pubts`` (the row's change stamp) read back with an overlap
(default 5 minutes, ``HUB_YONYOU__OVERLAP_S``):

- **customers** — ``merchant/newlist`` with its documented ``pubts`` filter ("changed at or
  after", §2.5), read by page number in overlapping windows (below); ``data`` is a bare array
  without a total, so paging stops on a short window.
- **sales_orders** — ``sd/voucherorder/list`` with ``simpleVOs`` ``pubts egt`` and
  ``queryOrders`` ``pubts, id`` ascending (operator names [UNC], §4.6), read by keyset
  (below); one row per order line (§2.5), grouped back into orders. A full page may end in
  the middle of an order: that order is read whole with ``voucherorder/detail`` (one call per
  page, beside the next page's list call); its rows on the next page share its ``pubts`` and
  ``id`` and the keyset walk skips them, so each page's records are whole orders.
- **receivables** — ``EFI/arPublicEvent/list`` (pageSize ≤ 500) with the same filter and
  order, read by keyset [UNC: the reference documents date filters for this list, not pubts].

**Keyset walk** (:func:`keyset_pages`), with only the operator and order the reader already
relied on (``egt``, ``queryOrders`` ``pubts, id``; no ``gt``, no "or": unverified, §2.5/§4.6):
each list call asks for page 1 of ``pubts egt X``, X the largest ``pubts`` of the page before
(``cursor − overlap`` at first). Rows at exactly X come again and are skipped by ``id``. Page
numbers over a changing result are not stable — a row edited or deleted on a page already
read moved every later row one place towards the start, and the first row of the next page
was never read, by this run or (its ``pubts`` being old) any later one. Under the keyset
every row not yet read has ``pubts`` ≥ X and is still in ``pubts egt X``: an edit elsewhere
cannot hide it. An edited row gets a later ``pubts`` and is read again further on (records
are upserted by natural key). A page in which ``pubts`` goes backwards (the API ignoring
``queryOrders``) stops the read with a PermanentError rather than skip rows.

Residual window: a page whose rows all share X cannot move X; the rows of that one value are
walked by page number (``pageIndex`` 2, 3, … of the same filter) until a larger ``pubts``
appears. Only there can the old shift recur, and only if a row of that same tie group is
edited or deleted during that walk: it needs more rows with one ``pubts`` (a second) than a
page (500) — a mass update — and an edit inside the seconds its pages take, instead of any
edit anywhere in the list during the whole read as before.

**Customers** cannot be walked by keyset: ``newlist`` documents neither an order nor
``simpleVOs``/``queryOrders`` — its body takes ``pageIndex``, ``pageSize`` (≤ 5000), exact
filters (``id``, ``code``, ``name``, ``creditCode``…), ``beganTime``/``endTime`` and
``pubts`` "时间戳，大于(包含)当前值", and answers a bare array without a total (YonBIP API
doc 客户档案列表查询V2, apiId 1702850586252148740, as copied in public community API docs
ingested 2026-06-07; its sibling ``merchant/newlistrange`` reports ``recordCount`` but no
order either). A keyset on ``pubts egt`` alone would need the rows in ``pubts`` order, which
is not documented. So the pages are read by number in windows that overlap
(:func:`connectors.kit.paging.overlapping_pages`): each window re-reads the last few rows of
the one before and must find one of them unchanged (same ``id``, equal content) before its
new rows are trusted. An unread row that did not change stays behind such a row whatever
moved before it, so it is in this window or a later one; when no re-read row is found (rows
deleted or moved on pages already read by more than the overlap between two calls, or the
re-read rows themselves edited) the pass starts again at page 1, and after three passes the
read fails with RetryableError ``unstable_list`` before the last page, so the cursor stays
where it was. The window arithmetic (``pageIndex``/``pageSize`` as an offset of one order
whatever the size), a deterministic order that an unchanged row keeps, and the overlap and
pass counts are GUESSES, each one failing loudly, not silently, if wrong. The sandbox
answers in creation order by default, or in ``pubts`` order (``merchant_order="changed"``,
where an edit moves a row to the end) to exercise both.

**The cursor moves once per run, after the last page.** With the keyset every row below a
page's X is read by then, so the cursor could move per page; it does not, to keep one rule
for all three streams (customers are paged by number, where no window before the last can
say "everything up to here is read"). A crash, or a customer read that cannot converge,
before the last page re-reads the run, which costs nothing (records are upserted by natural
key; unchanged ones by content hash).

List calls go one at a time (each request depends on the page before), each sent as soon
as the page before is checked, before that page is handed on
(:func:`connectors.kit.paging.requests_ahead`); ``detail`` calls still overlap the next list
call, and the order APIs' quota pacing
(``HUB_YONYOU__ORDER_CALLS_PER_MINUTE``) and the client's read slots apply to every call.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from connectors import kit
from connectors.kit.paging import complete_ahead, requests_ahead, spare_workers
from connectors.yonyou.client import (
    CUSTOMER_LIST,
    ORDER_DETAIL,
    ORDER_LIST,
    RECEIVABLE_LIST,
    YonyouClient,
)
from connectors.yonyou.mapping import (
    ORDER_LINES,
    RECEIVABLE_MAPPING,
    SALES_ORDER_MAPPING,
    format_yonyou_time,
    group_order_rows,
    map_customer,
    parse_yonyou_time,
)
from hub.contracts import MappingError, Page, RawRecord, StreamSpec
from hub.errors import PermanentError

STAMP = "pubts"
Fetch = Callable[[YonyouClient, dict[str, Any]], Iterator[list[RawRecord]]]


def since_text(cursor: str | None, overlap: dt.timedelta) -> str | None:
    """``cursor − overlap`` as YonBIP writes times, or None for a first (full) read."""
    since = kit.watermark(cursor, overlap, lambda text: parse_yonyou_time(text, "cursor"),
                          call=kit.CallContext("yonyou", "list"))
    return None if since is None else format_yonyou_time(since)


def latest_stamp(records: Sequence[RawRecord], current: str | None) -> str | None:
    """The later of ``current`` and the records' readable ``pubts`` (ISO with its offset).
    A row whose stamp does not parse does not move it (the engine quarantines that row)."""
    best = dt.datetime.fromisoformat(current) if current else None
    for raw in records:
        try:
            stamp = parse_yonyou_time(raw.get(STAMP), STAMP) if isinstance(raw, dict) else None
        except MappingError:
            continue
        if stamp is not None and (best is None or stamp > best):
            best = stamp
    return best.isoformat() if best else None


@dataclass(frozen=True)
class PubtsList:
    """Reads a list incrementally (module doc): every page as it comes, the cursor on the last."""

    fetch: Fetch

    def __call__(self, client: YonyouClient, cursor: str | None) -> Iterator[Page]:
        """StreamSpec.read_pages."""
        since = since_text(cursor, dt.timedelta(seconds=client.read_overlap_s))
        held: list[RawRecord] | None = None
        newest = cursor
        for records in self.fetch(client, {} if since is None else {"since": since}):
            if held is not None:
                yield Page(records=held)
            newest = latest_stamp(records, newest)
            held = records
        yield Page(records=held or [], cursor_after=newest if newest != cursor else None)


def _pubts_after(since: str | None) -> dict[str, Any]:
    """``simpleVOs``/``queryOrders`` of a paged list read in ``pubts, id`` order from ``since``."""
    filters: dict[str, Any] = {"queryOrders": [{"field": "pubts", "order": "asc"}, {"field": "id", "order": "asc"}]}
    if since:
        filters["simpleVOs"] = [{"field": "pubts", "op": "egt", "value1": since}]
    return filters


def read_customers(client: YonyouClient, window: dict[str, Any]) -> Iterator[list[RawRecord]]:
    """``merchant/newlist`` in overlapping windows (module doc; ``pubts`` is its own documented
    filter): raises RetryableError ``unstable_list`` when rows keep moving on pages already read."""
    filters = {"pubts": window["since"]} if "since" in window else {}
    yield from client.merchant_pages(client.read_page_size, **filters)


def pages_ahead(client: YonyouClient, path: str, *, beside: int = 0) -> int:
    """How many calls of ``path`` (list pages, order details) to make at once: the client's read
    slots less the ``beside`` calls the reader makes next to them, at least one; one when the API is paced
    to its quota (a call waiting on the pacer would hold a read slot another stream could use,
    and the pacer, not the round trip, sets the speed then)."""
    if client.pacers.get(path) is not None:
        return 1
    return spare_workers(client.read_concurrency, beside=beside)


def keyset_pages(client: YonyouClient, path: str, since: str | None) -> Iterator[tuple[list[RawRecord], bool]]:
    """Every row of the paged list ``path`` changed at or after ``since``, a page at a time, by
    keyset on ``pubts`` (module doc): each page is asked as page 1 of ``pubts egt X``, X the
    largest ``pubts`` of the page before; rows at X come again and are skipped by ``id``. A page
    whose rows all carry X cannot move X: the pages of that one value are walked by number.
    Yields each page's new rows and whether the page was full (a full page may end inside an
    order). Raises :class:`~hub.errors.PermanentError` when a page is not in ``pubts`` order
    (the keyset would then skip rows, so the read stops instead)."""
    size = client.read_page_size

    def fetch(stamp: str | None, index: int) -> list[RawRecord]:
        return client.list_page(path, index, size, **_pubts_after(stamp)).records

    stamp, index = since, 1
    seen: set[str] = set()  # ids already yielded whose pubts is ``stamp``
    # the next page is asked for as soon as this one is checked, before it is handed on
    # (kit.requests_ahead): the same requests, in the same order, sooner
    with requests_ahead() as send:
        pending = send(fetch, stamp, index)
        while True:
            rows = pending.result()
            stamps = [_stamp_text(row) for row in rows]
            if stamps != sorted(stamps) or (stamp is not None and stamps and stamps[0] < stamp):
                raise PermanentError("list rows are not in pubts order from the filter: keyset paging would skip "
                                     "rows", system="yonyou", operation=path, code="unordered")
            new = [row for row, at in zip(rows, stamps, strict=True) if at != stamp or _row_id(row) not in seen]
            full = len(rows) >= size
            if full:
                top = stamps[-1]
                if top == stamp:  # a tie group larger than a page: its next page by number
                    index += 1
                else:
                    stamp, index, seen = top, 1, set()
                seen.update(_row_id(row) for row, at in zip(rows, stamps, strict=True) if at == stamp)
                pending = send(fetch, stamp, index)
            yield new, full
            if not full:
                return


def _stamp_text(row: RawRecord) -> str:
    """A row's ``pubts`` as the list writes it (``yyyy-MM-dd HH:mm:ss`` sorts as text); "" if absent."""
    value = row.get(STAMP) if isinstance(row, dict) else None
    return "" if value is None else str(value)


def _row_id(row: RawRecord) -> str:
    """A row's ``id`` (for orders: the order's, shared by its lines)."""
    return str(row.get("id")) if isinstance(row, dict) else ""


def read_receivables(client: YonyouClient, window: dict[str, Any]) -> Iterator[list[RawRecord]]:
    """``EFI/arPublicEvent/list`` pages, by keyset on ``pubts`` (:func:`keyset_pages`)."""
    for rows, _full in keyset_pages(client, RECEIVABLE_LIST, window.get("since")):
        yield rows


def read_orders(client: YonyouClient, window: dict[str, Any]) -> Iterator[list[RawRecord]]:
    """``voucherorder/list`` pages as whole orders (module doc: the order a full page ends in
    is read with ``detail``; its rows on the next page carry the same ``pubts`` and ``id`` and
    are skipped by the keyset walk, :func:`keyset_pages`).

    The ``detail`` call of page N runs beside the ``list`` call of page N+1
    (:func:`connectors.kit.paging.complete_ahead`): the next keyset request needs only page
    N's last row, not the detail. List pages themselves go one at a time (each request
    depends on the page before); with read slots to spare the details of several pages may
    run at once (:func:`pages_ahead`). A stream of N full pages costs about N + 1 round trips
    of wall time instead of 2N."""
    pages = keyset_pages(client, ORDER_LIST, window.get("since"))
    yield from complete_ahead(_grouped_pages(pages),
                              lambda page: _with_last_order_whole(client, *page),
                              workers=pages_ahead(client, ORDER_DETAIL, beside=1))


def _grouped_pages(pages: Iterator[tuple[list[RawRecord], bool]]) -> Iterator[tuple[list[RawRecord], str | None]]:
    """Each list page grouped into orders, and the id of its last order when a full page may
    have cut it (to be read whole). The rows of that order on the next page are not there:
    the keyset walk skips rows already read (same ``pubts``, same ``id``)."""
    for rows, full in pages:
        orders = group_order_rows(rows)
        cut = str(orders[-1]["id"]) if full and orders and orders[-1].get("id") not in (None, "") else None
        yield orders, cut


def _with_last_order_whole(client: YonyouClient, orders: list[RawRecord], cut: str | None) -> list[RawRecord]:
    """``orders`` with the last one replaced by its ``detail`` when the page may have cut it."""
    if cut is None:
        return orders
    return [*orders[:-1], whole_order(client.order_detail(cut))]


def whole_order(detail: dict[str, Any]) -> RawRecord:
    """A ``voucherorder/detail`` reply as a grouped order (header fields plus ``orderDetails``)."""
    lines = detail.get(ORDER_LINES)
    return {**detail, ORDER_LINES: list(lines) if isinstance(lines, list) else []}


STREAMS: tuple[StreamSpec[YonyouClient], ...] = (
    StreamSpec(name="customers", source_object=CUSTOMER_LIST, target="customer", key_field="code",
               cursor_field=STAMP, read_pages=PubtsList(read_customers), map_record=map_customer),
    StreamSpec(name="sales_orders", source_object=ORDER_LIST, target="sales_order", key_field="code",
               cursor_field=STAMP, read_pages=PubtsList(read_orders), map_record=SALES_ORDER_MAPPING,
               depends_on=("customers",)),
    StreamSpec(name="receivables", source_object=RECEIVABLE_LIST, target="receivable", key_field="code",
               cursor_field=STAMP, read_pages=PubtsList(read_receivables), map_record=RECEIVABLE_MAPPING,
               depends_on=("customers",)),
)

__all__ = ["STREAMS", "PubtsList", "latest_stamp", "read_customers", "read_orders", "read_receivables",
           "since_text", "whole_order"]
