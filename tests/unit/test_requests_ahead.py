"""A keyset walk asks for its next page as soon as the page before has come, before handing
that page on: the same requests in the same order (none added, none lost), errors where the
walk would have met them. Kingdee's ``IncrementalQuery`` and Yonyou's ``keyset_pages`` over
fake clients; events, never timings, decide what happened first.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import pytest

from connectors.kingdee.streams import IncrementalQuery
from connectors.yonyou.client import ListPage
from connectors.yonyou.streams import keyset_pages
from hub.errors import RetryableError


def kd_row(n: int) -> dict[str, Any]:
    return {"FID": 100 + n, "FBillNo": f"AR{n:04d}", "FModifyDate": f"2026-03-01T10:00:{n:02d}"}


@dataclass
class KingdeeReplies:
    """ExecuteBillQuery answering the given replies in turn; ``fail_at`` (a call, from 1) raises."""

    replies: list[list[dict[str, Any]]]
    fail_at: int | None = None
    block_at: int | None = None
    filters: list[str] = field(default_factory=list)
    asked: dict[int, threading.Event] = field(default_factory=lambda: {n: threading.Event() for n in range(1, 9)})
    release: threading.Event = field(default_factory=threading.Event)

    def execute_bill_query(self, form_id: str, field_keys: Any, filter_string: str = "", order_string: str = "",
                           start_row: int = 0, limit: int = 2000) -> list[dict[str, Any]]:
        self.filters.append(filter_string)
        call = len(self.filters)
        self.asked[call].set()
        if call == self.block_at:
            assert self.release.wait(timeout=30)
        if call == self.fail_at:
            raise RetryableError("HTTP 502", system="kingdee", operation="ExecuteBillQuery")
        return [dict(row) for row in self.replies[call - 1]]


QUERY = IncrementalQuery("AR_receivable", ("FID", "FBillNo"), "FID", page_size=3)


def test_kingdee_asks_for_the_next_page_before_handing_this_one_on_and_no_more():
    # given three pages of receivables: two full, one short
    client = KingdeeReplies([[kd_row(1), kd_row(2), kd_row(3)], [kd_row(4), kd_row(5), kd_row(6)], [kd_row(7)]])
    pages = QUERY.pages(client, None)

    # when the first page is taken, then the second was asked for already, after its last row
    first, _ = next(pages)
    assert [r["FID"] for r in first] == [101, 102, 103]
    assert client.asked[2].wait(timeout=10), "the next page was asked for only when the consumer wanted it"
    assert "FID > 103" in client.filters[1] and "10:00:03" in client.filters[1]
    # and the rest comes in order, each row once, with no request after the short page
    rest = [r["FID"] for rows, _ in pages for r in rows]
    assert rest == [104, 105, 106, 107] and len(client.filters) == 3


def test_kingdee_a_next_page_that_fails_raises_after_the_page_before_it():
    client = KingdeeReplies([[kd_row(1), kd_row(2), kd_row(3)]], fail_at=2)
    pages = QUERY.pages(client, None)
    assert [r["FID"] for r in next(pages)[0]] == [101, 102, 103]
    with pytest.raises(RetryableError, match="HTTP 502"):
        next(pages)


def test_kingdee_a_walk_stopped_early_does_not_wait_for_the_request_ahead():
    # given a walk whose request for page 2 hangs
    client = KingdeeReplies([[kd_row(1), kd_row(2), kd_row(3)], [kd_row(4)]], block_at=2)
    pages = QUERY.pages(client, None)
    next(pages)
    assert client.asked[2].wait(timeout=10)
    # when the consumer stops, then the walk ends at once (the hanging request is dropped)
    closed = threading.Thread(target=pages.close)
    closed.start()
    closed.join(timeout=10)
    stopped = not closed.is_alive()
    client.release.set()
    assert stopped, "closing the walk waited for the request ahead"


@dataclass
class YonyouList:
    """A paged list answering ``pubts egt`` filters from its rows (``pubts, id`` order)."""

    rows: list[dict[str, Any]]
    read_page_size: int = 3
    fail_at: int | None = None
    asked: list[tuple[str | None, int]] = field(default_factory=list)
    second: threading.Event = field(default_factory=threading.Event)

    def list_page(self, path: str, page_index: int, page_size: int, **filters: Any) -> ListPage:
        since = filters["simpleVOs"][0]["value1"] if "simpleVOs" in filters else None
        self.asked.append((since, page_index))
        if len(self.asked) == 2:
            self.second.set()
        if len(self.asked) == self.fail_at:
            raise RetryableError("310504 backend timeout", system="yonyou", operation=path)
        match = sorted((r for r in self.rows if since is None or r["pubts"] >= since),
                       key=lambda r: (r["pubts"], r["id"]))
        return ListPage(match[(page_index - 1) * page_size:page_index * page_size], page_index)


def yy_row(n: int, second: int) -> dict[str, Any]:
    return {"id": f"{n:03d}", "pubts": f"2026-03-01 10:00:{second:02d}"}


def test_yonyou_asks_for_the_next_page_before_handing_this_one_on_and_reads_each_row_once():
    # given seven rows, a tie of three on one pubts across the first page boundary
    rows = [yy_row(1, 1), yy_row(2, 2), yy_row(3, 3), yy_row(4, 3), yy_row(5, 3), yy_row(6, 4), yy_row(7, 5)]
    client = YonyouList(rows)
    pages = keyset_pages(client, "sd/voucherorder/list", None)  # type: ignore[arg-type]

    # when the first page is taken, then the next was asked for already, from its last pubts
    first, full = next(pages)
    assert full and [r["id"] for r in first] == ["001", "002", "003"]
    assert client.second.wait(timeout=10), "the next page was asked for only when the consumer wanted it"
    assert client.asked[1] == ("2026-03-01 10:00:03", 1)
    # and every row comes once, in order, with no request after the short page
    rest = [r["id"] for batch, _ in pages for r in batch]
    assert rest == ["004", "005", "006", "007"]
    assert client.asked == [(None, 1), ("2026-03-01 10:00:03", 1), ("2026-03-01 10:00:03", 2)]  # the tie by number


def test_yonyou_a_next_page_that_fails_raises_after_the_page_before_it():
    client = YonyouList([yy_row(n, n) for n in range(1, 8)], fail_at=2)
    pages = keyset_pages(client, "sd/voucherorder/list", None)  # type: ignore[arg-type]
    assert [r["id"] for r in next(pages)[0]] == ["001", "002", "003"]
    with pytest.raises(RetryableError, match="310504"):
        next(pages)
