"""The engine reads the next page while it ingests the current one; order and errors are kept."""

from __future__ import annotations

import threading

import pytest

from hub.contracts import Page
from hub.engine.sync import read_ahead


def pages(n: int, fail_at: int | None = None):
    for i in range(n):
        if i == fail_at:
            raise ConnectionError(f"page {i} could not be read")
        yield Page([{"n": i}], str(i))


def test_pages_arrive_in_order_and_all_of_them():
    assert [p.cursor_after for p in read_ahead(pages(25))] == [str(i) for i in range(25)]


def test_a_read_error_surfaces_after_the_pages_read_before_it():
    seen = []
    with pytest.raises(ConnectionError, match="page 3"):
        for page in read_ahead(pages(10, fail_at=3)):
            seen.append(page.cursor_after)
    assert seen == ["0", "1", "2"]


def test_the_reader_stays_at_most_one_page_ahead():
    produced = []
    gate = threading.Event()

    def slow_source():
        for i in range(5):
            produced.append(i)
            yield Page([{"n": i}], str(i))

    iterator = read_ahead(slow_source())
    first = next(iterator)
    gate.wait(0.3)  # give the reader time to run ahead as far as it can
    assert first.cursor_after == "0"
    assert len(produced) <= 3  # page 0 consumed, page 1 queued, page 2 being handed over
    assert [p.cursor_after for p in iterator] == ["1", "2", "3", "4"]
