"""The connector kit's declared paginators, each walked over a small honest fake API."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.kit.http import CallContext
from connectors.kit.paging import (
    CursorPaginator,
    KeysetPaginator,
    OffsetPaginator,
    PageNumberPaginator,
    Params,
    dig,
    overlapping_pages,
    walk,
)
from hub.errors import PermanentError, RetryableError

CALL = CallContext("demo", "rows/list")
ROWS = [{"id": i, "modified": f"2024-05-0{1 + i // 8}", "name": f"客户{i:02d}"} for i in range(20)]


class OffsetApi:
    """StartRow/Limit over ROWS (Kingdee ExecuteBillQuery shape: the reply is the row list)."""

    def __init__(self) -> None:
        self.sent: list[Params] = []

    def __call__(self, params: Params) -> list[dict[str, Any]]:
        self.sent.append(params)
        return ROWS[params["start_row"]:params["start_row"] + params["limit"]]


@pytest.mark.parametrize(("limit", "sizes"), [(7, [7, 7, 6]), (10, [10, 10, 0]), (50, [20])])
def test_offset_pages_until_a_short_page(limit: int, sizes: list[int]) -> None:
    api = OffsetApi()
    paginator = OffsetPaginator(limit, offset_param="start_row", limit_param="limit")
    pages = list(walk(api, paginator, call=CALL))
    assert [len(p) for p in pages] == sizes  # no total is reported: an exact multiple costs one empty page
    assert [row for page in pages for row in page] == ROWS
    assert [p["start_row"] for p in api.sent] == [limit * i for i in range(len(sizes))]


def keyset_api(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> Any:
    """Rows ordered by ``keys``, those after ``params["after"]``, at most ``params["limit"]``."""
    ordered = sorted(rows, key=lambda r: tuple(r[k] for k in keys))

    def fetch(params: Params) -> list[dict[str, Any]]:
        after = params["after"]
        later = [r for r in ordered if after is None or tuple(r[k] for k in keys) > after]
        return later[:params["limit"]]

    return fetch


def test_keyset_pages_through_ties_on_the_first_key() -> None:
    keys = ("modified", "id")  # eight rows share each date
    pages = list(walk(keyset_api(ROWS, keys), KeysetPaginator(keys, 5), call=CALL))
    assert [len(p) for p in pages] == [5, 5, 5, 5, 0]
    assert sorted(r["id"] for p in pages for r in p) == list(range(20))


def test_keyset_that_cannot_move_is_a_paging_error_not_a_loop() -> None:
    # given an API that ignores the lower bound and returns the same full page forever
    with pytest.raises(PermanentError) as caught:
        for _ in walk(lambda params: ROWS[:5], KeysetPaginator(("id",), 5), call=CALL):
            pass
    assert caught.value.code == "paging" and caught.value.operation == "rows/list"


class CursorApi:
    """Opaque cursors over ROWS (WeCom next_cursor; DingTalk nested result.next_cursor + has_more)."""

    def __init__(self, size: int, *, nested: bool = False) -> None:
        self.size = size
        self.nested = nested
        self.sent: list[Params] = []

    def __call__(self, params: Params) -> dict[str, Any]:
        self.sent.append(params)
        start = int(params.get("cursor") or 0)
        end = start + self.size
        next_cursor = str(end) if end < len(ROWS) else ""
        if self.nested:
            return {"result": {"list": ROWS[start:end], "next_cursor": next_cursor or None, "has_more": end < len(ROWS)}}
        return {"errcode": 0, "rows": ROWS[start:end], "next_cursor": next_cursor}


def test_cursor_pages_until_the_cursor_is_empty_sending_an_empty_first_cursor() -> None:
    api = CursorApi(8)
    pages = list(walk(api, CursorPaginator(), call=CALL))
    assert [len(p["rows"]) for p in pages] == [8, 8, 4]
    assert api.sent == [{"cursor": ""}, {"cursor": "8"}, {"cursor": "16"}]


def test_cursor_without_a_first_cursor_parameter() -> None:
    api = CursorApi(15)
    list(walk(api, CursorPaginator(send_empty=False), call=CALL))
    assert api.sent == [{}, {"cursor": "15"}]


def test_cursor_in_a_nested_field_with_a_has_more_flag() -> None:
    api = CursorApi(6, nested=True)
    paginator = CursorPaginator(next_field=("result", "next_cursor"), more_field=("result", "has_more"))
    pages = list(walk(api, paginator, call=CALL))
    assert [r["id"] for p in pages for r in dig(p, ("result", "list"))] == list(range(20))


def test_cursor_that_comes_back_unchanged_is_a_paging_error() -> None:
    with pytest.raises(PermanentError, match="paging made no progress"):
        list(walk(lambda params: {"next_cursor": "same"}, CursorPaginator(), call=CALL))


def test_page_number_stops_on_a_short_page_or_the_total() -> None:
    def api(params: Params) -> dict[str, Any]:
        start = (params["pageIndex"] - 1) * params["pageSize"]
        return {"data": {"recordList": ROWS[start:start + params["pageSize"]], "pageCount": 2}}

    count = lambda reply: len(reply["data"]["recordList"])  # noqa: E731 - a table entry
    short = PageNumberPaginator(8, count, page_param="pageIndex", size_param="pageSize")
    assert [count(p) for p in walk(api, short, call=CALL)] == [8, 8, 4]
    by_total = PageNumberPaginator(10, count, page_param="pageIndex", size_param="pageSize",
                                   total_pages_field=("data", "pageCount"))
    assert [count(p) for p in walk(api, by_total, call=CALL)] == [10, 10]  # no third, empty request


def test_walk_stops_requesting_when_the_consumer_stops() -> None:
    api = OffsetApi()
    first = next(iter(walk(api, OffsetPaginator(5, offset_param="start_row", limit_param="limit"), call=CALL)))
    assert len(first) == 5 and len(api.sent) == 1


def test_complete_ahead_completes_a_page_while_the_next_is_read_and_keeps_the_order():
    import threading

    from connectors.kit.paging import complete_ahead

    # given pages whose reading of page 2 waits until page 1's completion has started
    completing_1 = threading.Event()

    def pages():
        yield 1
        assert completing_1.wait(timeout=30), "page 1 was not completed while page 2 was read"
        yield 2
        yield 3

    def complete(page: int) -> str:
        if page == 1:
            completing_1.set()
        return f"page {page} completed"

    # when they are read and completed ahead, then the two overlapped and the order holds
    assert list(complete_ahead(pages(), complete)) == ["page 1 completed", "page 2 completed", "page 3 completed"]


def test_complete_ahead_yields_the_completed_page_before_a_read_failure_and_raises_completion_errors():
    from connectors.kit.paging import complete_ahead

    def failing_read():
        yield 1
        raise RuntimeError("page 2: HTTP 500")

    # given a failure reading page 2, page 1 still comes out first, then the failure
    out = complete_ahead(failing_read(), lambda page: page * 10)
    assert next(out) == 10
    with pytest.raises(RuntimeError, match="page 2: HTTP 500"):
        next(out)

    # and a failing completion is raised where its page would have been
    def complete(page: int) -> int:
        if page == 2:
            raise ValueError("lines of page 2 unreadable")
        return page

    out = complete_ahead(iter([1, 2, 3]), complete)
    assert next(out) == 1
    with pytest.raises(ValueError, match="lines of page 2"):
        next(out)


def test_complete_ahead_with_workers_completes_pages_together_and_yields_them_in_read_order():
    import threading

    from connectors.kit.paging import complete_ahead

    # given completions that can only finish when three run at once, page 3 finishing first
    together = threading.Barrier(3, timeout=30)
    third_done = threading.Event()
    finished: list[int] = []

    def complete(page: int) -> int:
        if page <= 3:
            together.wait()  # BrokenBarrierError unless pages 1-3 are completed at the same time
        if page == 1:
            assert third_done.wait(timeout=30)
        finished.append(page)
        if page == 3:
            third_done.set()
        return page

    # when seven pages are completed by three workers
    out = list(complete_ahead(iter(range(1, 8)), complete, workers=3))

    # then they come out in the order read, though page 3 finished before page 1
    assert out == [1, 2, 3, 4, 5, 6, 7]
    assert finished.index(3) < finished.index(1)


def test_complete_ahead_with_workers_raises_a_failure_at_its_page_after_the_pages_before_it():
    from connectors.kit.paging import complete_ahead

    def complete(page: int) -> int:
        if page == 3:
            raise ValueError("lines of page 3 unreadable")
        return page

    out = complete_ahead(iter(range(1, 9)), complete, workers=4)
    assert [next(out), next(out)] == [1, 2]
    with pytest.raises(ValueError, match="page 3"):
        next(out)
    with pytest.raises(ValueError, match="at least 1"):
        list(complete_ahead(iter([1]), complete, workers=0))


def test_complete_ahead_reads_further_pages_while_every_worker_is_busy_when_told_to_read_ahead():
    import threading

    from connectors.kit.paging import complete_ahead

    # given completions of pages 1-3 that can finish only once page 5 has been read
    fifth_read = threading.Event()

    def pages():
        yield from (1, 2, 3, 4)
        fifth_read.set()
        yield from (5, 6)

    def complete(page: int) -> int:
        if page <= 3:
            assert fifth_read.wait(timeout=30), "page 5 was not read while pages 1-3 were being completed"
        return page

    # when three workers complete them with two pages read ahead, then page 5 was read meanwhile
    assert list(complete_ahead(pages(), complete, workers=3, ahead=2)) == [1, 2, 3, 4, 5, 6]


# -- overlapping_pages: page numbers over a list that changes while it is read ----------------

Change = tuple[str, float]  # (what, where: a fraction of the list's length)
CHANGES = st.tuples(st.sampled_from(["delete", "move", "edit", "insert"]), st.floats(0, 1, exclude_max=True))


class ChangingList:
    """A list API read by ``pageIndex``/``pageSize`` whose rows change between calls: after
    each reply the next batch of ``changes`` lands (a delete, an edit that moves the row to the
    end as a ``pubts`` order would, an edit in place, an insert)."""

    def __init__(self, rows: int, changes: list[list[Change]]) -> None:
        self.rows = [{"id": i, "v": 0} for i in range(rows)]
        self.changes = list(changes)
        self.changed: set[int] = set()  # ids deleted, edited or inserted during the read
        self.calls: list[tuple[int, int]] = []
        self._next_id = rows

    def __call__(self, index: int, size: int) -> list[dict[str, int]]:
        self.calls.append((index, size))
        reply = [dict(row) for row in self.rows[(index - 1) * size:index * size]]
        for what, where in self.changes.pop(0) if self.changes else []:
            self._apply(what, where)
        return reply

    def _apply(self, what: str, where: float) -> None:
        if not self.rows and what != "insert":
            return
        at = int(where * len(self.rows))
        if what == "insert":
            self.rows.insert(at, {"id": self._next_id, "v": 0})
            self.changed.add(self._next_id)
            self._next_id += 1
            return
        row = self.rows[at]
        self.changed.add(row["id"])
        if what == "delete":
            del self.rows[at]
        elif what == "move":
            self.rows.append({"id": row["id"], "v": row["v"] + 1})
            del self.rows[at]
        else:
            self.rows[at] = {"id": row["id"], "v": row["v"] + 1}


def _read_ids(api: ChangingList, size: int) -> list[int]:
    return [row["id"] for page in overlapping_pages(api, size, key=lambda row: row["id"], call=CALL) for row in page]


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 130), st.sampled_from([3, 8, 10, 40]), st.lists(st.lists(CHANGES, max_size=12), max_size=40))
def test_overlapping_pages_read_every_row_that_did_not_change_or_fail_loudly(rows, size, changes):
    # given a list of ``rows`` rows read ``size`` a page, changed in any way between any two calls
    api = ChangingList(rows, changes)
    # when it is read whole
    try:
        read = _read_ids(api, size)
    except RetryableError as failed:
        # then either the read fails, naming the list and why
        assert (failed.system, failed.operation, failed.code) == ("demo", "rows/list", "unstable_list")
        return
    # or every row that existed and never changed during the read was read
    assert set(range(rows)) - api.changed <= set(read)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 130), st.sampled_from([8, 10, 40]), st.lists(st.lists(CHANGES, max_size=1), max_size=40))
def test_overlapping_pages_absorb_one_change_between_calls_without_rereading(rows, size, changes):
    # given a list changed at most once between two calls (deletes, edits, moves, inserts anywhere)
    api = ChangingList(rows, changes)
    # when it is read whole: it never gives up
    read = _read_ids(api, size)
    # then every row that did not change is read, and read once
    unchanged = set(range(rows)) - api.changed
    assert unchanged <= set(read)
    assert all(read.count(row) == 1 for row in unchanged)


def test_page_numbers_lose_the_row_that_overlapping_windows_keep() -> None:
    # given 100 rows read 40 a page, the first row deleted right after page 1 was read
    by_number = ChangingList(100, [[("delete", 0.0)]])
    overlapping = ChangingList(100, [[("delete", 0.0)]])
    # when read by page number, the row that was first on page 2 (id 40) is never read
    count = len
    paged = [row["id"] for page in walk(lambda p: by_number(p["page"], p["size"]),
                                        PageNumberPaginator(40, count), call=CALL) for row in page]
    assert 40 not in paged
    # but overlapping windows read every row but the deleted one, each once
    assert sorted(_read_ids(overlapping, 40)) == list(range(100))  # row 0 was read before it went
    # and cost the calls page numbers cost here: the list holds 2½ pages, the last window is short
    assert len(overlapping.calls) == len(by_number.calls) + 1 == 4


def test_an_unchanged_list_of_one_or_two_full_pages_costs_no_extra_call() -> None:
    for rows, calls in ((30, 1), (40, 2), (80, 3)):
        api = ChangingList(rows, [])
        assert sorted(_read_ids(api, 40)) == list(range(rows))
        assert len(api.calls) == calls, (rows, api.calls)


def test_complete_ahead_hands_on_a_completed_page_while_the_next_page_is_still_being_read():
    import threading

    from connectors.kit.paging import complete_ahead

    # given a source whose second page arrives only once the first page has been handed on, and
    # a first page whose completion ends only once that read has begun
    reading_2, handed_on = threading.Event(), threading.Event()

    def pages():
        yield 1
        reading_2.set()
        assert handed_on.wait(timeout=10), "page 1 waited for the read of page 2"
        yield 2

    def complete(page: int) -> int:
        assert reading_2.wait(timeout=10)
        return page * 10

    # when they are read and completed ahead
    out = complete_ahead(pages(), complete)

    # then page 1 comes out while page 2's read is under way, and page 2 follows
    assert next(out) == 10
    handed_on.set()
    assert list(out) == [20]


def test_complete_ahead_stops_reading_and_completing_when_the_consumer_stops():
    from connectors.kit.paging import complete_ahead

    # given an endless source, read and completed ahead
    read: list[int] = []

    def pages():
        n = 0
        while True:
            n += 1
            read.append(n)
            yield n

    out = complete_ahead(pages(), lambda page: page, workers=2, ahead=1)
    assert [next(out), next(out)] == [1, 2]

    # when the consumer stops, then nothing more is read than the bound allows (workers + ahead + 1, one reading)
    out.close()
    assert len(read) <= 2 + 2 + 1 + 1


def test_read_slots_give_a_freed_slot_to_the_next_page_before_a_waiting_completion_and_never_exceed_the_limit():
    import threading
    import time

    from connectors.kit.paging import ReadSlots, complete_ahead

    slots = ReadSlots(1)
    order: list[str] = []

    def call(name: str) -> None:
        with slots:
            order.append(name)

    def until_waiting(n: int) -> None:
        deadline = time.monotonic() + 30
        while slots.waiting < n:
            assert time.monotonic() < deadline, "the call never queued"
            time.sleep(0.001)

    # given the only slot taken, then a page's completion (Kingdee's lines) queued first,
    # then a stream's next page (a chain read) queued after it
    slots.__enter__()
    completion = threading.Thread(target=lambda: list(complete_ahead(iter([1]), lambda page: call("lines"))))
    completion.start()
    until_waiting(1)
    chain = threading.Thread(target=call, args=("next page",))
    chain.start()
    until_waiting(2)

    # when the slot is freed, then the next page goes first, the completion after it
    slots.__exit__(None, None, None)
    completion.join(30)
    chain.join(30)
    assert order == ["next page", "lines"]

    # and however many calls of either kind compete, no more than the limit are ever in flight
    slots = ReadSlots(3)
    in_flight, peak, calls, lock = 0, 0, 0, threading.Lock()

    def counted(_page: object = None) -> None:
        nonlocal in_flight, peak, calls
        with slots:
            with lock:
                in_flight += 1
                calls += 1
                peak = max(peak, in_flight)
            time.sleep(0.002)
            with lock:
                in_flight -= 1

    threads = [threading.Thread(target=counted) for _ in range(8)]
    threads.append(threading.Thread(target=lambda: list(complete_ahead(iter(range(12)), counted, workers=4))))
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert calls == 20 and peak <= 3 and slots.waiting == 0
    with pytest.raises(ValueError, match="at least 1"):
        ReadSlots(0)
