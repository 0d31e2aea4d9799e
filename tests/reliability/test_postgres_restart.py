"""Postgres restarted under a running sync and a running dispatch.

The test's own server (``tests.support.private_postgres``) is restarted (``pg_ctl restart -m
fast``: sessions terminated, open transactions rolled back) while a sync writes pages and while
the dispatcher pushes orders to Kingdee. Either the run recovers (a page written after the
restart) or it fails with the database's error; in both cases nothing is half-written (the
cursor covers exactly the committed rows; every outbox attempt has one audited outcome) and
the next run completes: every row once, every order in the ERP exactly once.

``SOAK_RESTARTS`` (default 1; ``make soak`` sets 5) runs each test that many times, the
restart meeting the sync at a different page and the dispatch after a different number of
finished orders each time.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from hub.engine import sync_stream
from hub.runtime import HubRuntime
from hub.settings import OutboxSettings
from tests.conftest import rows, scalar
from tests.support.orders import approve_crm_orders, erp_bill_counts
from tests.support.private_postgres import PrivatePostgres, private_postgres
from tests.support.synthetic import CUSTOMERS, RECEIVABLES, SyntheticSource

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

RECEIVABLE_ROWS = 4000  # 40 pages of 100
ORDERS = 30
RESTARTS = range(int(os.environ.get("SOAK_RESTARTS", "1")))


def restart_page(point: int) -> int:
    """The page after which the sync starts the restart: 3, then 4, 5, 6, 2, … (early: the
    restart takes longer than the rest of a 40-page sync, which must meet it)."""
    return 2 + (point + 1) % 5


def restart_after_done(point: int) -> int:
    """How many orders are done when the dispatch meets the restart: 5, then spread over the 30."""
    return 5 + (point * 6) % 22


@pytest.fixture
def server():
    # not under pytest's tmp_path: every pytest run on the machine makes /tmp/pytest-of-<user>
    # private again, and as root the server (and pg_ctl) run as pgserver's own user
    with tempfile.TemporaryDirectory(prefix="hub-private-pg-") as tmp, private_postgres(Path(tmp)) as running:
        yield running


def restart_in_background(server: PrivatePostgres) -> tuple[threading.Thread, list[BaseException]]:
    failures: list[BaseException] = []

    def restart() -> None:
        try:
            server.restart()
        except BaseException as exc:  # reported by the test
            failures.append(exc)

    thread = threading.Thread(target=restart, name="pg-restart")
    thread.start()
    return thread, failures


@pytest.mark.parametrize("point", RESTARTS)
def test_a_sync_interrupted_by_a_postgres_restart_leaves_whole_pages_and_the_next_run_completes(server, point):
    db = server.db
    source = SyntheticSource(customers=50, receivables=RECEIVABLE_ROWS, page_size=100)
    sync_stream(db, "synthetic", CUSTOMERS, source)
    pid_before = server.postmaster_pid()
    restarter: list[tuple[threading.Thread, list[BaseException]]] = []
    pages_after_restart: list[int] = []

    def on_page(counts) -> None:
        if counts.pages == restart_page(point):
            restarter.append(restart_in_background(server))  # the next pages meet the restart
        elif restarter and not restarter[0][0].is_alive():
            pages_after_restart.append(counts.pages)

    # when Postgres restarts while the receivables are being written
    try:
        sync_stream(db, "synthetic", RECEIVABLES, source, on_page=on_page)
        outcome = "recovered"
    except sa.exc.DBAPIError:
        outcome = "failed"
    thread, failures = restarter[0]
    thread.join(timeout=180)
    assert failures == [] and server.postmaster_pid() != pid_before  # the server really restarted
    # (a run that went on must have written pages after the server came back)
    assert outcome == "failed" or pages_after_restart, outcome

    # then nothing is half-written: the cursor covers exactly the rows committed
    committed = int(scalar(db, "SELECT count(*) FROM receivable"))  # type: ignore[arg-type]
    assert scalar(db, "SELECT count(DISTINCT external_id) FROM receivable") == committed
    if committed:
        assert scalar(db, "SELECT value FROM sync_cursor WHERE stream = 'receivables'") == \
            source.receivable_row(committed - 1)["modified"]

    # and the next run completes: every source row once, the cursor at the end
    report = sync_stream(db, "synthetic", RECEIVABLES, source)
    assert report.counts.inserted == RECEIVABLE_ROWS - committed
    assert scalar(db, "SELECT count(DISTINCT external_id) FROM receivable") == RECEIVABLE_ROWS
    assert scalar(db, "SELECT count(*) FROM receivable") == RECEIVABLE_ROWS
    # the interrupted run recorded its failure, or could not (its database went away under it): then the
    # next run found its row running with nobody holding its lock and closed it as abandoned
    runs = [r.status for r in rows(db, "SELECT status FROM sync_run WHERE stream = 'receivables' ORDER BY id")]
    assert runs[-1] == "succeeded" and runs[0] in ({"succeeded"} if outcome == "recovered" else {"failed", "abandoned"})
    print(f"\nsync under a Postgres restart: {outcome}, {committed} of {RECEIVABLE_ROWS} rows committed before, "
          f"runs {runs}")


@pytest.mark.parametrize("point", RESTARTS)
def test_a_dispatch_interrupted_by_a_postgres_restart_records_nothing_half_and_the_next_run_finishes_once(server, point):
    settings = server.settings.with_connector("kingdee", timeout_s=2.0).model_copy(update={
        "outbox": OutboxSettings(max_attempts=8, backoff_initial_s=0.05, backoff_max_s=0.5, lease_s=2)})
    hub = HubRuntime(settings, server.db, actor="test")
    try:
        erp = hub.sandbox("kingdee", scale=0.05)
        hub.sync("kingdee", "customers")
        approve_crm_orders(server.db, ORDERS)
        erp.app.state.faults.latency_ms = 150  # calls overlap: the restart meets writes in flight
        erp.app.state.faults.arm("latency", times=None)
        pid_before = server.postmaster_pid()

        # when Postgres restarts while the dispatcher works through the orders
        result: list[object] = []

        def dispatch() -> None:
            try:
                result.append(hub.dispatcher().drain(wait_for_scheduled=True, timeout_s=120))
            except sa.exc.DBAPIError as exc:
                result.append(exc)

        worker = threading.Thread(target=dispatch, name="dispatch")
        worker.start()
        deadline = time.monotonic() + 120
        while scalar(server.db, "SELECT count(*) FROM outbox WHERE status = 'done'") < restart_after_done(point):  # type: ignore[operator]
            assert time.monotonic() < deadline and worker.is_alive(), result
            time.sleep(0.05)
        server.restart()
        worker.join(timeout=300)
        assert not worker.is_alive() and server.postmaster_pid() != pid_before
        outcome = "failed" if isinstance(result[0], Exception) else "recovered"

        # then the next run finishes the rest (retaking what the interrupted one held)
        erp.app.state.faults.clear()
        hub.dispatcher().drain(wait_for_scheduled=True, timeout_s=120)

        # and every order is in the ERP exactly once, and nothing is left undone
        bills = erp_bill_counts(erp.app.state.kingdee.data)
        assert len(bills) == ORDERS and set(bills.values()) == {1}
        assert scalar(server.db, "SELECT count(*) FROM outbox WHERE status <> 'done'") == 0
        assert scalar(server.db, "SELECT count(*) FROM sales_order WHERE source_system = 'crm' "
                                 "AND status = 'in_erp'") == ORDERS
        # and every attempt of every row has exactly one audited outcome (an interrupted one:
        # lease_lost, recorded by the dispatcher that retook the row)
        audited = rows(server.db, "SELECT o.attempts, array_agg(a.attempt ORDER BY a.attempt) AS outcomes "
                                  "FROM outbox o JOIN audit_log a ON a.key = o.idempotency_key "
                                  "AND a.actor LIKE 'dispatcher:%' GROUP BY o.id, o.attempts")
        assert len(audited) == ORDERS
        assert [r for r in audited if r.outcomes != list(range(1, r.attempts + 1))] == []
        lost = scalar(server.db, "SELECT count(*) FROM audit_log WHERE outcome = 'lease_lost'")
        print(f"\ndispatch under a Postgres restart: {outcome} ({result[0]!s:.120}); {lost} attempts retaken")
    finally:
        hub.close()
