"""A stream may read before it may write: nothing is written, lost or doubled by reading early.

``sync_stream(..., ready=...)`` reads its first pages while ``ready()`` waits (for the streams
it depends on, for its before-stream hooks), writes only after it returns, and leaves nothing
behind when it raises; a cursor moved meanwhile restarts the read. Real Postgres, the
synthetic source and the Kingdee sandbox; events, never timings, decide what happened first.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa

from connectors.kingdee.sandbox.testing import running_sandbox
from connectors.kingdee.streams import MODIFY_KEY, kingdee_streams
from hub.contracts import Page
from hub.engine import sync_stream
from hub.engine.schedule import NotStarted
from hub.errors import RetryableError
from tests.conftest import rows, scalar
from tests.support.synthetic import CUSTOMERS, RECEIVABLES, SyntheticSource


@dataclass
class WatchedSource(SyntheticSource):
    """The synthetic source, telling which receivable pages were read, from which cursor, and
    whether the read was closed; ``fail_at`` (a page index, from 0) raises instead of that page."""

    fail_at: int | None = None
    read: list[int] = field(default_factory=list)
    cursors: list[str | None] = field(default_factory=list)
    two_read: threading.Event = field(default_factory=threading.Event)
    failed: threading.Event = field(default_factory=threading.Event)
    closed: threading.Event = field(default_factory=threading.Event)

    def receivable_pages(self, cursor: str | None) -> Iterator[Page]:
        self.cursors.append(cursor)
        try:
            for index, page in enumerate(self.pages(self.receivable_rows, self.receivables, cursor)):
                if index == self.fail_at:
                    self.failed.set()
                    raise RetryableError("page read failed: HTTP 502", system="synthetic", operation="list")
                self.read.append(index)
                if len(self.read) >= 2:
                    self.two_read.set()
                yield page
        finally:
            self.closed.set()


WATCHED = dataclasses.replace(RECEIVABLES, read_pages=lambda src, cursor: src.receivable_pages(cursor))


def stored(db) -> tuple[int, int]:
    """(receivable rows, distinct bill numbers)."""
    found = rows(db, "SELECT count(*) AS n, count(DISTINCT bill_number) AS d FROM receivable")[0]
    return found.n, found.d


def cursor(db) -> str | None:
    return scalar(db, "SELECT value FROM sync_cursor WHERE connector = 'synthetic' AND stream = 'receivables'")


@pytest.fixture
def customers(db) -> SyntheticSource:
    source = SyntheticSource(customers=5, receivables=30, page_size=10)
    sync_stream(db, "synthetic", CUSTOMERS, source)
    return source


def test_pages_are_read_while_waiting_to_write_and_written_only_after(db, customers):
    source = WatchedSource(customers=5, receivables=30, page_size=10)
    seen_while_waiting: dict[str, Any] = {}

    def ready() -> None:
        # given a stream that may not write yet: it reads its first pages meanwhile
        assert source.two_read.wait(timeout=30), "no page was read while the stream waited to write"
        seen_while_waiting.update(receivables=stored(db)[0], runs=scalar(db, "SELECT count(*) FROM sync_run "
                                                                             "WHERE stream = 'receivables'"))

    # when it is synced
    report = sync_stream(db, "synthetic", WATCHED, source, ready=ready)

    # then nothing of it was written (not even its run) until ready() returned
    assert seen_while_waiting == {"receivables": 0, "runs": 0}
    # and afterwards every receivable is stored once, the cursor at the last page, the run recorded
    assert (report.counts.read, report.counts.inserted) == (30, 30)
    assert stored(db) == (30, 30)
    assert cursor(db) == source.receivable_row(29)["modified"]
    assert source.read == [0, 1, 2] and source.cursors == [None]
    assert rows(db, "SELECT status FROM sync_run WHERE id = :i", i=report.run_id)[0].status == "succeeded"


def test_a_stream_told_not_to_write_leaves_nothing_and_stops_reading(db, customers):
    source = WatchedSource(customers=5, receivables=30, page_size=10)

    def ready() -> None:
        assert source.two_read.wait(timeout=30)
        raise NotStarted("receivables: not started, a stream before it failed")

    # when the stream it waited for failed
    with pytest.raises(NotStarted):
        sync_stream(db, "synthetic", WATCHED, source, ready=ready)

    # then no run, no row, no cursor of it exists, and its read was closed
    assert scalar(db, "SELECT count(*) FROM sync_run WHERE stream = 'receivables'") == 0
    assert stored(db) == (0, 0) and cursor(db) is None
    assert source.closed.wait(timeout=30), "the early read was not stopped"
    # and the next sync reads everything
    assert sync_stream(db, "synthetic", WATCHED, WatchedSource(customers=5, receivables=30, page_size=10)) \
        .counts.inserted == 30


def test_a_cursor_moved_while_waiting_restarts_the_read_from_the_new_cursor(db, customers):
    # given receivables synced up to the last one, then 3 changed (they are re-read only from the start)
    sync_stream(db, "synthetic", WATCHED, WatchedSource(customers=5, receivables=30, page_size=10))
    source = WatchedSource(customers=5, receivables=30, page_size=10, changed_ids={3, 14, 25})
    moved = threading.Event()

    def ready() -> None:
        # when a before-stream hook resets the cursor while the early read ran from the old one
        assert source.closed.wait(timeout=30)  # the read from the old cursor found nothing and ended
        with db.begin() as conn:
            conn.execute(sa.text("DELETE FROM sync_cursor WHERE connector = 'synthetic' AND stream = 'receivables'"))
        moved.set()

    report = sync_stream(db, "synthetic", WATCHED, source, ready=ready)

    # then the read started again from the new cursor (none): all 30 read, the 3 changes stored, nothing doubled
    assert moved.is_set() and source.cursors[0] is not None and source.cursors[1:] == [None]
    assert (report.counts.read, report.counts.updated, report.counts.unchanged) == (30, 3, 27)
    assert report.cursor_before is None and cursor(db) == source.receivable_row(29)["modified"]
    assert stored(db) == (30, 30)


def test_a_page_that_fails_while_waiting_to_write_fails_the_run_after_the_pages_before_it(db, customers):
    # given a source whose second page cannot be read, failing while the stream still waits to write
    source = WatchedSource(customers=5, receivables=30, page_size=10, fail_at=1)

    def ready() -> None:
        assert source.failed.wait(timeout=30)

    # when it is synced, the run fails with the read's error
    with pytest.raises(RetryableError, match="HTTP 502"):
        sync_stream(db, "synthetic", WATCHED, source, ready=ready)

    # then the page read before it is stored once, the cursor at that page (not past it)
    assert stored(db) == (10, 10)
    assert cursor(db) == source.receivable_row(9)["modified"]
    assert rows(db, "SELECT status FROM sync_run WHERE stream = 'receivables'")[0].status == "failed"
    # and the next run reads on from there: every receivable once
    again = sync_stream(db, "synthetic", WATCHED, WatchedSource(customers=5, receivables=30, page_size=10),
                        ready=lambda: None)
    assert (again.counts.read, again.counts.inserted) == (20, 20)
    assert stored(db) == (30, 30)


# -- Kingdee orders: header pages read in their own thread beside the line batches -------------

@dataclass
class FailingHeaders:
    """A Kingdee client whose ``fail_at``-th order header query (from 1) fails like a lost gateway."""

    client: Any
    fail_at: int
    read_page_size: int = 40
    headers: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def read_concurrency(self) -> int:
        return 4

    def execute_bill_query(self, form_id: str, field_keys: Any, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        if form_id == "SAL_SaleOrder" and not any("FEntryID" in key for key in field_keys):
            with self.lock:
                self.headers += 1
                if self.headers == self.fail_at:
                    raise RetryableError("HTTP 502 from the gateway", system="kingdee", operation="ExecuteBillQuery")
        return list(self.client.execute_bill_query(form_id, field_keys, *args, **kwargs))

    def query_pages(self, *args: Any, **kwargs: Any) -> Any:
        return self.client.query_pages(*args, **kwargs)


def test_kingdee_orders_failing_mid_read_keep_the_cursor_at_the_last_whole_page_and_lose_nothing(db):
    with running_sandbox(scale=0.01) as sandbox:
        client = sandbox.client(max_concurrent_reads=4)
        sync_stream(db, "kingdee", kingdee_streams()[0], client)
        orders = sorted(sandbox.state.table("SAL_SaleOrder").docs.values(), key=lambda d: (d[MODIFY_KEY], d["FID"]))
        lines = sum(len(d["__entries__"]["FSaleOrderEntry"]) for d in orders)
        # given order headers read 40 at a time in batches of 15, the third header query failing
        stream = kingdee_streams(order_page_size=15)[1]
        failing = FailingHeaders(client, fail_at=3)

        # when the orders are synced, the run fails
        with pytest.raises(RetryableError, match="HTTP 502"):
            sync_stream(db, "kingdee", stream, failing, ready=lambda: None)

        # then the 80 orders of the first two header pages are stored whole, and the cursor is theirs
        assert scalar(db, "SELECT count(*) FROM sales_order") == 80
        stored_cursor = scalar(db, "SELECT value FROM sync_cursor WHERE stream = 'sales_orders'")
        assert dt.datetime.fromisoformat(stored_cursor).replace(tzinfo=None) == orders[79][MODIFY_KEY]
        # and the next run reads the rest: every order once, with all its lines
        again = sync_stream(db, "kingdee", stream, FailingHeaders(client, fail_at=0))
        assert again.counts.quarantined == 0
        found = rows(db, "SELECT count(*) AS n, count(DISTINCT (source_system, external_id)) AS d FROM sales_order")[0]
        assert found.n == found.d == len(orders)
        assert scalar(db, "SELECT count(*) FROM sales_order_line") == lines
