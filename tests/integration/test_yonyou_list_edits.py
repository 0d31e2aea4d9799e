"""Yonyou's incremental lists while the tenant edits them: a row edited or deleted on a page
already read must not make the reader miss a row that did not change (streams.py's module doc).

The sandbox over real HTTP; the edit lands between the reply to the first list call and the
request of the next one (the client's observer runs before the call returns). Customers
(``merchant/newlist``, no documented order) go through the real engine into Postgres: every
customer must be stored and the cursor must not pass an unread one; a list that keeps moving
must fail the run and leave the cursor where it was.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from connectors.kit.sandbox import serve_in_thread
from connectors.kit.sandbox.server import RunningServer
from connectors.yonyou.client import CUSTOMER_LIST, ORDER_LIST, RECEIVABLE_LIST, YonyouClient
from connectors.yonyou.mapping import format_yonyou_time, parse_yonyou_time
from connectors.yonyou.sandbox import SANDBOX_CREDENTIALS, YonyouState, create_app
from connectors.yonyou.streams import STREAMS, read_orders, read_receivables
from hub.calls import CallObserver, ExternalCall, ignore_call
from hub.engine import sync_stream
from hub.engine.sync import get_cursor
from hub.errors import RetryableError
from tests.conftest import rows as db_rows

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


# -- customers: merchant/newlist, read by page number (no documented order) --------------------

CUSTOMERS = next(spec for spec in STREAMS if spec.name == "customers")
OVERLAP_S = 300.0  # the client's read_overlap_s (default): the next run starts this far before the cursor


@pytest.fixture(params=["created", "changed"])
def merchants(request) -> Iterator[RunningServer]:
    """A tenant of 100 customers whose newlist answers in creation order, or in ``pubts`` order
    (an edit moves the customer to the end): the real order is undocumented."""
    with serve_in_thread(create_app(scale=0.05, order_calls_per_minute=None, merchant_order=request.param)) as server:
        yield server


def _listed(state: YonyouState, since: str | None = None) -> list[str]:
    """The tenant's customer ids in the order newlist answers them (changed at or after ``since``)."""
    return [row["id"] for row in state.merchant_list({"pageIndex": 1, "pageSize": 5000, "pubts": since})]


def _sync_customers(db, server: RunningServer, touch: Callable[[int], None]):
    """One sync of the customers stream through the engine, ``touch(n)`` run after the n-th
    newlist reply (before the next request)."""
    replies: list[int] = []

    def observe(call: ExternalCall) -> None:
        if call.operation == CUSTOMER_LIST:
            replies.append(1)
            touch(len(replies))

    client = _client(server.url, observe)
    try:
        return sync_stream(db, "yonyou", CUSTOMERS, client)
    finally:
        client.close()


def _stored(db) -> dict[str, str]:
    """The hub's Yonyou customers: code → name."""
    return {r.code: r.name for r in db_rows(
        db, "SELECT e.external_id AS code, c.name FROM external_identity e JOIN customer c ON c.id = e.canonical_id "
            "WHERE e.system = 'yonyou' AND e.object = 'customer'")}


@pytest.mark.parametrize("change", ["edit", "delete"])
def test_a_customer_edited_or_deleted_on_a_page_already_read_hides_no_other_customer(db, merchants, change):
    # given a tenant of 100 customers read 40 a page, and the first customer on page 1
    state: YonyouState = merchants.app.state.yonyou.data
    assert len(state.merchants) > 2 * PAGE
    victim = _listed(state)[0]
    victim_code = state.merchants[victim]["code"]

    # when that customer is renamed (or deleted) right after page 1 was read
    def touch(reply: int) -> None:
        if reply != 1:
            return
        with state.lock:
            if change == "edit":
                state.merchants[victim]["name"] = {"simplifiedName": "改名后的客户有限公司"}
                state.merchants[victim]["pubts"] = state.stamp()
            else:
                del state.merchants[victim]

    report = _sync_customers(db, merchants, touch)

    # then every customer the tenant holds that did not change is stored as it is
    tenant = {m["code"]: m for m in state.merchants.values()}
    stored = _stored(db)
    late = {code for code, m in tenant.items() if stored.get(code) != m["name"]["simplifiedName"]}
    assert late <= {victim_code}, sorted(late)[:5]
    assert report.counts.quarantined == 0
    # and the cursor is safe: no later than the newest change in the tenant, and a change this
    # run did not read (a customer renamed where it was, on page 1) is not behind where the
    # next run starts reading
    with db.engine.connect() as conn:
        cursor = dt.datetime.fromisoformat(get_cursor(conn, "yonyou", "customers"))
    assert cursor <= max(parse_yonyou_time(m["pubts"], "pubts") for m in tenant.values())
    next_start = cursor - dt.timedelta(seconds=OVERLAP_S)
    assert all(parse_yonyou_time(tenant[code]["pubts"], "pubts") >= next_start for code in late)

    # and after the next run, nothing changing, the hub holds every customer as it is now
    _sync_customers(db, merchants, lambda _reply: None)
    now = {code: m["name"]["simplifiedName"] for code, m in tenant.items()}
    assert {code: name for code, name in _stored(db).items() if code != victim_code or change == "edit"} == now


def test_a_customer_list_that_keeps_moving_fails_the_run_and_keeps_the_cursor(db):
    # given a tenant whose newlist answers in pubts order, synced once (the cursor stands at its latest change)
    with serve_in_thread(create_app(scale=0.05, order_calls_per_minute=None, merchant_order="changed")) as server:
        state: YonyouState = server.app.state.yonyou.data
        _sync_customers(db, server, lambda _reply: None)
        with db.engine.connect() as conn:
            before = get_cursor(conn, "yonyou", "customers")
        assert before is not None
        # and 60 customers changed since, so the next read spans two pages
        with state.lock:
            for merchant_id in _listed(state)[:60]:
                state.merchants[merchant_id]["pubts"] = state.stamp()

        # when, on every list call, 20 customers at the head of the list the run reads are edited
        # (each moves to the end: more than a window re-reads, so no page can find its footing)
        since = format_yonyou_time(dt.datetime.fromisoformat(before) - dt.timedelta(seconds=OVERLAP_S))

        seconds = itertools.count(1)  # each edit a second after the last (the tenant clock's resolution)

        def churn(_reply: int) -> None:
            with state.lock:
                for merchant_id in _listed(state, since)[:20]:
                    state.merchants[merchant_id]["contactTel"] = f"1380000{_reply:04d}"
                    later = parse_yonyou_time(state.stamp(), "pubts") + dt.timedelta(seconds=next(seconds))
                    state.merchants[merchant_id]["pubts"] = format_yonyou_time(later)

        with pytest.raises(RetryableError) as failed:
            _sync_customers(db, server, churn)

    # then the run fails loudly, naming the system, the list and the reason
    assert (failed.value.system, failed.value.operation, failed.value.code) == ("yonyou", CUSTOMER_LIST,
                                                                                "unstable_list")
    assert "stopped rather than skip a row" in failed.value.message
    run = db_rows(db, "SELECT status, error FROM sync_run WHERE stream = 'customers' ORDER BY id DESC LIMIT 1")[0]
    assert run.status == "failed" and "unstable_list" in run.error
    # and the cursor is where it was: the next run reads every change again
    with db.engine.connect() as conn:
        assert get_cursor(conn, "yonyou", "customers") == before
