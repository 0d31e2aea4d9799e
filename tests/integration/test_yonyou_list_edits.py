"""Yonyou's incremental lists while the tenant edits them: a row edited or deleted on a page
already read must not make the reader miss a row that did not change (streams.py's module doc).

The sandbox over real HTTP; the edit lands between the reply to the first list call and the
request of the next one (the client's observer runs before the call returns).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from connectors.kit.sandbox import serve_in_thread
from connectors.kit.sandbox.server import RunningServer
from connectors.yonyou.client import ORDER_LIST, RECEIVABLE_LIST, YonyouClient
from connectors.yonyou.sandbox import SANDBOX_CREDENTIALS, YonyouState, create_app
from connectors.yonyou.streams import read_orders, read_receivables
from hub.calls import CallObserver, ExternalCall, ignore_call

PAGE = 40


@pytest.fixture
def tenant() -> Iterator[RunningServer]:
    """A small tenant (about 1,000 order lines, 250 AR rows) without the per-minute quota."""
    with serve_in_thread(create_app(scale=0.05, order_calls_per_minute=None)) as server:
        yield server


def _rows(state: YonyouState, stream: str) -> dict[str, dict[str, Any]]:
    """The tenant's rows of ``stream`` by id (an order stands for all its lines)."""
    return state.orders if stream == "sales_orders" else state.receivables


def _first_row_id(state: YonyouState, stream: str) -> str:
    """The id of the row the reader reads first (``pubts, id`` ascending): on page 1."""
    rows = _rows(state, stream)
    return min(rows, key=lambda i: (rows[i]["pubts"], len(i), i))


def _read(server: RunningServer, stream: str, touch: Callable[[], None]) -> set[str]:
    """Every id the stream's reader reads in one full read, ``touch`` run after its first list reply."""
    path = ORDER_LIST if stream == "sales_orders" else RECEIVABLE_LIST
    touched: list[bool] = []

    def observe(call: ExternalCall) -> None:
        if call.operation == path and not touched:
            touched.append(True)
            touch()

    client = _client(server.url, observe)
    read = read_orders if stream == "sales_orders" else read_receivables
    try:
        ids = {str(record["id"]) for page in read(client, {}) for record in page}
    finally:
        client.close()
    assert touched, "the edit never happened"
    return ids


def _client(url: str, observer: CallObserver = ignore_call) -> YonyouClient:
    """A client of the sandbox tenant with small pages, unpaced (a purchased quota)."""
    creds = SANDBOX_CREDENTIALS
    return YonyouClient(base_url=url, tenant_id=creds.tenant_id, app_key=creds.app_key,
                        app_secret=SecretStr(creds.app_secret), order_calls_per_minute=0, observer=observer,
                        read_page_size=PAGE)


@pytest.mark.parametrize("stream", ["sales_orders", "receivables"])
@pytest.mark.parametrize("change", ["edit", "delete"])
def test_a_row_changed_on_a_page_already_read_does_not_hide_an_unchanged_row(tenant, stream, change):
    state: YonyouState = tenant.app.state.yonyou.data
    rows = _rows(state, stream)
    lines = sum(len(o["orderDetails"]) for o in rows.values()) if stream == "sales_orders" else len(rows)
    assert lines > 3 * PAGE  # several pages
    victim = _first_row_id(state, stream)
    unchanged = set(rows) - {victim}

    def touch() -> None:
        with state.lock:
            if change == "edit":
                rows[victim]["pubts"] = state.stamp()
            else:
                del rows[victim]

    read = _read(tenant, stream, touch)

    # every row that existed unchanged throughout the read was read
    assert unchanged <= read, sorted(unchanged - read)[:5]
    # and the edited row is read too (at its new place); a deleted one may or may not be
    if change == "edit":
        assert victim in read


@pytest.mark.parametrize("stream", ["sales_orders", "receivables"])
def test_a_pubts_shared_by_more_rows_than_a_page_is_read_whole_and_each_row_once(tenant, stream):
    # given a tie group of about three pages: rows (order lines) that all carry one pubts
    state: YonyouState = tenant.app.state.yonyou.data
    rows = _rows(state, stream)
    ordered = sorted(rows, key=lambda i: (rows[i]["pubts"], len(i), i))
    tied, lines = ordered[10:10], 0
    for row_id in ordered[10:]:
        tied.append(row_id)
        lines += len(rows[row_id]["orderDetails"]) if stream == "sales_orders" else 1
        if lines > 3 * PAGE:
            break
    with state.lock:
        for row_id in tied:
            rows[row_id]["pubts"] = "2026-01-01 00:00:00"

    # when the stream is read whole, nothing changing
    client = _client(tenant.url)
    read = read_orders if stream == "sales_orders" else read_receivables
    try:
        records = [record for page in read(client, {}) for record in page]
    finally:
        client.close()

    # then every row (every order) comes exactly once, the tied ones included
    assert sorted(record["id"] for record in records) == sorted(rows)
    # and an order cut by a page edge comes whole, with every line
    if stream == "sales_orders":
        assert {r["id"]: len(r["orderDetails"]) for r in records} == {
            i: len(o["orderDetails"]) for i, o in rows.items()
        }
