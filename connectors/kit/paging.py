"""Declared paginators: tiny classes with one job each, chosen per paged call (dlt-style).

A paginator decides two things and nothing else: the paging parameters of the first
request (:meth:`Paginator.first`) and, from the parameters just sent and the reply, those
of the next request or None when the reply was the last page (:meth:`Paginator.next`).
:func:`walk` drives any of them over a ``fetch(params) -> reply`` function, so a client
method that pages is "this call, this paginator"::

    for reply in walk(lambda p: self._call("POST", "user/list_id", body={**p, "limit": n}),
                      CursorPaginator(), call=CallContext("wecom", "user/list_id")):
        yield reply["dept_user"]

Paginators are frozen and keep no state between pages (the state travels in the
parameters), so one declared instance serves every call and every thread.

=========================  ====================================================  ==========================
paginator                  stops when                                            used by
=========================  ====================================================  ==========================
:class:`OffsetPaginator`   a page is shorter than the limit (no total reported)  Kingdee StartRow/Limit
:class:`KeysetPaginator`   a page is shorter than the limit                      Kingdee (FModifyDate, pk)
:class:`CursorPaginator`   the next cursor is empty, or "has more" is false      WeCom next_cursor;
                                                                                 DingTalk next_cursor /
                                                                                 nextToken
:class:`PageNumberPaginator`  a short page, or the last page by the total        Yonyou pageIndex/pageSize
                                                                                 (lists that do not change
                                                                                 while read: staff)
:func:`overlapping_pages`  a short window that still holds an unchanged row of   Yonyou merchant/newlist
                           the window before (page numbers over a list that may  (no documented order)
                           change while read)
=========================  ====================================================  ==========================

A paginator that would request the same page again (a cursor or keyset that does not
move) raises instead of looping forever: :func:`walk` turns that into a PermanentError
with code "paging" naming the call.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from connectors.kit.http import CallContext
from hub.errors import PermanentError, RetryableError

log = logging.getLogger(__name__)

Params = dict[str, Any]
FieldPath = str | tuple[str, ...]
R = TypeVar("R")
R_contra = TypeVar("R_contra", contravariant=True)


class PagingStalled(Exception):
    """A paginator found that the next request would repeat the last one."""


class Paginator(Protocol[R_contra]):
    """Paging parameters for the first request, then for each next one (None: done)."""

    def first(self) -> Params:
        """Parameters of the first page's request."""
        ...

    def next(self, sent: Params, reply: R_contra) -> Params | None:
        """Parameters of the page after ``reply`` (fetched with ``sent``), or None."""
        ...


def walk(fetch: Callable[[Params], R], paginator: Paginator[R], *, call: CallContext) -> Iterator[R]:
    """Yield the reply of every page, first to last; ``call`` names the call in a paging error."""
    params: Params | None = paginator.first()
    while params is not None:
        reply = fetch(params)
        yield reply
        try:
            params = paginator.next(params, reply)
        except PagingStalled as exc:
            raise PermanentError(f"paging made no progress: {exc}", **call.context("paging")) from None


def watermark(cursor: str | None, overlap: dt.timedelta, parse: Callable[[str], dt.datetime], *,
              call: CallContext) -> dt.datetime | None:
    """Where an incremental read starts: the stored cursor (a time) minus the overlap, or None
    for a first, full read. A cursor that is not a time is a PermanentError naming the call."""
    if not cursor:
        return None
    try:
        stamp = parse(cursor)
    except ValueError as exc:  # MappingError is a ValueError
        raise PermanentError(f"stored cursor is not a time: {cursor!r}", **call.context("bad_cursor")) from exc
    return stamp - overlap


def dig(reply: Any, path: FieldPath) -> Any:
    """The value at ``path`` ("next_cursor" or ("result", "next_cursor")) of a JSON reply, or None."""
    for name in (path,) if isinstance(path, str) else path:
        if not isinstance(reply, Mapping):
            return None
        reply = reply.get(name)
    return reply


def _count_items(reply: Any) -> int:
    return len(reply) if isinstance(reply, Sequence) else 0


@dataclass(frozen=True)
class OffsetPaginator:
    """Row offset and page size (Kingdee ``StartRow``/``Limit``); stops on a short page."""

    limit: int
    offset_param: str = "offset"
    limit_param: str = "limit"
    count: Callable[[Any], int] = _count_items  # rows in a reply (default: the reply is the row list)

    def first(self) -> Params:
        """Offset 0."""
        return {self.offset_param: 0, self.limit_param: self.limit}

    def next(self, sent: Params, reply: Any) -> Params | None:
        """The offset after the rows received, unless the page was short."""
        rows = self.count(reply)
        if rows < sent[self.limit_param]:
            return None
        return {**sent, self.offset_param: sent[self.offset_param] + rows}


@dataclass(frozen=True)
class KeysetPaginator:
    """Rows after the last key seen (``(FModifyDate, pk) > last``); stops on a short page.

    Stable while the data moves, unlike offsets: an edited row jumps to the end instead of
    shifting every later row by one. The fetch function turns ``sent[after_param]`` (None
    for the first page, else the tuple of ``keys`` of the last row) into its filter.
    """

    keys: tuple[str, ...]
    limit: int
    after_param: str = "after"
    limit_param: str = "limit"

    def first(self) -> Params:
        """No lower bound."""
        return {self.after_param: None, self.limit_param: self.limit}

    def next(self, sent: Params, reply: Sequence[Mapping[str, Any]]) -> Params | None:
        """The last row's key, unless the page was short; raises if the key did not move."""
        if len(reply) < sent[self.limit_param]:
            return None
        last = tuple(reply[-1].get(key) for key in self.keys)
        if last == sent[self.after_param]:
            raise PagingStalled(f"keyset stuck at {last!r}")
        return {**sent, self.after_param: last}


@dataclass(frozen=True)
class CursorPaginator:
    """An opaque cursor from each reply (WeCom ``next_cursor``, DingTalk ``nextToken``).

    ``send_empty``: the first request carries an empty cursor (WeCom ``user/list_id``),
    or none at all (WeCom ``externalcontact/get``). ``more_field``, when the API has one
    (DingTalk ``has_more``), must be true for another page; an empty cursor always ends.
    """

    cursor_param: str = "cursor"
    next_field: FieldPath = "next_cursor"
    more_field: FieldPath | None = None
    send_empty: bool = True

    def first(self) -> Params:
        """The empty cursor, or nothing."""
        return {self.cursor_param: ""} if self.send_empty else {}

    def next(self, sent: Params, reply: Any) -> Params | None:
        """The reply's next cursor, unless it is empty or the reply says there is no more."""
        if self.more_field is not None and not dig(reply, self.more_field):
            return None
        cursor = dig(reply, self.next_field)
        if cursor in (None, ""):
            return None
        if cursor == sent.get(self.cursor_param):
            raise PagingStalled(f"the reply returned the cursor it was sent ({self.cursor_param})")
        return {**sent, self.cursor_param: cursor}


@dataclass(frozen=True)
class PageNumberPaginator:
    """A page index and page size (Yonyou ``pageIndex``/``pageSize``, 1-based by default).

    Stops on a short page or, when ``total_pages_field`` names the reply's page count, after
    that page. ``count`` gives the rows in a reply.
    """

    size: int
    count: Callable[[Any], int]
    page_param: str = "page"
    size_param: str = "size"
    first_page: int = 1
    total_pages_field: FieldPath | None = None

    def first(self) -> Params:
        """The first page."""
        return {self.page_param: self.first_page, self.size_param: self.size}

    def next(self, sent: Params, reply: Any) -> Params | None:
        """The following page, unless this one was short or the last by the total."""
        page = sent[self.page_param]
        if self.total_pages_field is not None:
            total = dig(reply, self.total_pages_field)
            if isinstance(total, int) and page - self.first_page + 1 >= total:
                return None
        if self.count(reply) < sent[self.size_param]:
            return None
        return {**sent, self.page_param: page + 1}


__all__ = [
    "CursorPaginator",
    "KeysetPaginator",
    "OffsetPaginator",
    "PageNumberPaginator",
    "Paginator",
    "PagingStalled",
    "Params",
    "ReadSlots",
    "complete_ahead",
    "dig",
    "overlapping_pages",
    "requests_ahead",
    "spare_workers",
    "walk",
    "watermark",
]


T = TypeVar("T")
Done = TypeVar("Done")


def spare_workers(read_concurrency: int | None, *, beside: int = 0) -> int:
    """Completions a reader may run at once (:func:`complete_ahead`'s ``workers``): the client's
    read slots (``read_concurrency``; None, unbounded, counts as one) less the ``beside`` calls the
    reader makes next to them, at least one. The client's slots still bound the calls in flight."""
    return max(1, (read_concurrency or 1) - beside)


def complete_ahead(pages: Iterator[T], complete: Callable[[T], Done], *, workers: int = 1,
                   ahead: int = 0) -> Iterator[Done]:
    """``complete(page)`` of each page in order, completions running in ``workers`` helper
    threads while the following pages are read in a thread of their own.

    For readers that need a second call per page (Kingdee's order lines for a batch of order
    headers, Yonyou's detail of the order a page cut): when the next page's request does not
    depend on the completion (keyset paging needs only the page's last row), the round trips
    overlap. With one worker a stream of N pages costs about N + 1 round trips of wall time
    instead of 2N: at most two calls in flight (the next page, this page's completion) and
    two pages held. With ``workers`` = k, up to k completions run at once beside the read of
    the next page (k + 1 calls, k + 1 pages held): a reader whose one read yields several
    pages (Kingdee: 2,000 headers, four batches of lines) completes them together. The
    client's own limit (its read slots) still bounds the calls in flight. ``ahead`` more pages
    may wait for a worker before the next page is read no further: a reader whose one read
    yields several pages then reads its next page while the completions of this one's are
    still under way (memory: ``workers + ahead + 1`` pages, and the one being read).

    A page is handed on as soon as it and the pages before it are completed, even while the
    next page's read is still under way (that read runs in its own thread): the consumer
    (the engine's writer) is not kept waiting for a round trip it does not need.

    Pages come out in the order they were read, whatever order their completions finish in;
    errors keep that order too: completed pages are yielded before a failure to read the
    next one is raised, and a completion's failure is raised at its page's turn.
    """
    from collections import deque
    from concurrent.futures import FIRST_COMPLETED, wait

    if workers < 1 or ahead < 0:
        raise ValueError(f"workers must be at least 1 (not {workers}), ahead at least 0 (not {ahead})")
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="page-read") as reader, \
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="page-complete") as helper:
        pending: deque[Future[Done]] = deque()
        reading: Future[Any] | None = None
        more = True  # the source may have further pages
        while True:
            if more and reading is None and len(pending) <= workers + ahead:
                reading = reader.submit(_next_or_end, pages)  # one read at a time: the source is not shared
            if pending and pending[0].done():
                yield pending.popleft().result()
                continue
            if reading is not None and reading.done():
                done, reading = reading, None
                try:
                    page = done.result()
                except BaseException:
                    while pending:
                        yield pending.popleft().result()
                    raise
                if page is _END:
                    more = False
                else:
                    pending.append(helper.submit(_completing, complete, page))
                continue
            if reading is None and not pending:
                return
            wait([f for f in (reading, pending[0] if pending else None) if f is not None],
                 return_when=FIRST_COMPLETED)


@contextmanager
def requests_ahead() -> Iterator[Callable[..., Future[Any]]]:
    """``submit(fetch, *args)`` for a walk whose next request is known as soon as a page has
    come (a keyset walk: the page's last row): the walk sends it at once, in a thread of its
    own, and only then hands the page on, so the round trip overlaps whatever the consumer
    does with the page (hashing, checks, cutting it into batches whose completions would
    otherwise take the read slots first). A walk keeps one request in flight, the one it
    would make next anyway: no call is added, except one dropped when the consumer stops
    early (it is not waited for). Results and errors come out in the walk's order: a failed
    request raises where the walk would have made it."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="next-page")
    try:
        yield pool.submit
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


_END = object()
# Set while a helper of :func:`complete_ahead` completes a page: its calls wait behind the
# reader's own (:class:`ReadSlots`).
_COMPLETING: ContextVar[bool] = ContextVar("completing_a_page", default=False)


def _completing(complete: Callable[[T], Done], page: T) -> Done:
    token = _COMPLETING.set(True)
    try:
        return complete(page)
    finally:
        _COMPLETING.reset(token)


class ReadSlots:
    """At most ``limit`` reads of one client in flight (the vendor's concurrency), where a call
    made to *complete* a page (:func:`complete_ahead`'s helpers: Kingdee's order lines,
    Yonyou's order details) waits while any other read waits for a slot.

    A stream's next page (a keyset walk: each request needs the page before) is a chain, and
    every later call of the stream waits on it; a completion is a leaf nothing waits on but
    its own page. So when a slot frees, the chain goes first: measured against the Kingdee
    sandbox at 200 ms a call, the order headers' third page waited 0.29 s behind line
    batches (4 slots, 19 calls) before this. It only orders the waiting calls: the number in
    flight never exceeds ``limit``, and a completion waits at most while chain reads queue
    (one per stream reading at most, each followed by its own processing).
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        self.limit = limit
        self._free = limit
        self._first_waiting = 0  # reads that are not completions, waiting for a slot
        self._waiting = 0
        self._changed = threading.Condition()

    @property
    def waiting(self) -> int:
        """Reads waiting for a slot now (completions included)."""
        with self._changed:
            return self._waiting

    def __enter__(self) -> None:
        completing = _COMPLETING.get()
        with self._changed:
            self._waiting += 1
            self._first_waiting += not completing
            try:
                while self._free == 0 or (completing and self._first_waiting):
                    self._changed.wait()
            finally:
                self._waiting -= 1
                self._first_waiting -= not completing
            self._free -= 1

    def __exit__(self, *exc: object) -> None:
        with self._changed:
            self._free += 1
            self._changed.notify_all()


def _next_or_end(pages: Iterator[Any]) -> Any:
    """The next page, or :data:`_END` (a StopIteration cannot travel through a Future)."""
    return next(pages, _END)


# overlapping_pages: rows each window re-reads of the one before (at most a quarter of a page),
# and passes before giving up. Both GUESSES, not vendor figures: a window absorbs up to
# OVERLAP_ROWS - 1 rows deleted or moved on pages already read between two list calls (one
# round trip); a pass that loses its footing (a bulk edit, a mass delete) is read again, and
# a list that keeps changing under PASSES passes fails the read, to be retried by a later run.
OVERLAP_ROWS = 8
PASSES = 3


def overlapping_pages(fetch: Callable[[int, int], Sequence[R]], size: int, *, key: Callable[[R], Hashable | None],
                      call: CallContext, overlap: int = OVERLAP_ROWS, passes: int = PASSES) -> Iterator[list[R]]:
    """Every row of a list read by page number (``fetch(page_index, page_size)``, 1-based) that
    may change while it is read, without losing one silently; each window's rows as they come.

    The hazard: page numbers count positions, and a row deleted (or moved by an edit) on a
    page already read moves every later row one place towards the start, so the first row of
    the next page was never read. Here each window (``pageIndex``/``pageSize`` chosen by
    :func:`_next_window`, ``pageSize`` ≤ ``size``) re-reads the last ``overlap`` positions of
    the window before, and must find among its rows one row of the window before, *unchanged*
    (same ``key``, equal content). That row R stood before every row not yet read; R and an
    unchanged unread row X keep their order, so X is now after R: in this window or past its
    end. A window that finds no such row (rows moved by ``overlap`` or more, or every
    re-read row edited) cannot tell where the unread rows went: the pass starts again at
    page 1, up to ``passes`` passes, then :class:`~hub.errors.RetryableError` (code
    ``unstable_list``) naming ``call``: a caller that stores a cursor after the last page
    (``PubtsList``) then keeps the one it had. Rows re-read in the overlap are not yielded
    again; a restarted pass yields its rows again (records are upserted by natural key).

    Assumptions, each a GUESS where the vendor documents none: a page is the window
    ``[(pageIndex − 1) × pageSize, pageIndex × pageSize)`` of one order, whatever
    ``pageSize``; the order is deterministic and an unchanged row keeps its place relative to
    other unchanged rows (creation order, ``pubts``, ``id`` all do); an edit changes the
    row's content (YonBIP stamps ``pubts``). A list that breaks the first two makes windows
    miss their anchor, so the read fails rather than skip rows. Rows whose ``key`` is None
    are yielded but never serve as the anchor. Costs: ``overlap`` rows a window, so a few
    per cent more calls at ``size`` 500 (none on a list of one or two pages); a restart
    costs a pass."""
    size = max(size, 2)  # a window of one row cannot re-read the one before and move on
    overlap = max(1, min(overlap, size // 4))
    for attempt in range(1, passes + 1):
        window = list(fetch(1, size))
        yield window
        if len(window) < size:
            return
        covered = size  # positions read: every window ends further on than the one before
        while True:
            index, page_size = _next_window(covered, size, overlap)
            fresh = list(fetch(index, page_size))
            earlier = {k: row for row in window if (k := key(row)) is not None}
            repeats = [(k := key(row)) is not None and k in earlier and earlier[k] == row for row in fresh]
            if not any(repeats):
                break  # no unchanged row of the window before: the unread rows may be behind us
            new = [row for row, repeat in zip(fresh, repeats, strict=True) if not repeat]
            if new:
                yield new
            if len(fresh) < page_size:
                return
            covered, window = index * page_size, fresh
        log.warning("%s %s: rows moved on pages already read (pass %d of %d)%s", call.system, call.operation,
                    attempt, passes, "; reading again from page 1" if attempt < passes else "")
    raise RetryableError(f"the list changed under each of {passes} passes (rows deleted or moved on pages "
                         "already read): stopped rather than skip a row", **call.context("unstable_list"))


def _next_window(covered: int, size: int, overlap: int) -> tuple[int, int]:
    """``(pageIndex, pageSize)`` of the window that re-reads at least the last ``overlap`` of
    the ``covered`` positions read and reaches furthest past them, ``pageSize`` ≤ ``size``
    when any such size makes progress (else the smallest larger one that does: at worst
    ``covered + 1``, page 1 again, which always does). Page windows are aligned to their size,
    so the start is the last multiple of ``pageSize`` at or before ``covered − overlap``."""
    latest_start = covered - overlap
    best: tuple[int, int, int] | None = None  # (progress, pageIndex, pageSize)
    for page_size in range(size, overlap, -1):
        before = latest_start // page_size
        progress = (before + 1) * page_size - covered
        if best is None or progress > best[0]:
            best = (progress, before + 1, page_size)
    page_size = max(size, overlap) + 1
    while best is None or best[0] < 1:
        before = latest_start // page_size
        best = ((before + 1) * page_size - covered, before + 1, page_size)
        page_size += 1
    return best[1], best[2]
