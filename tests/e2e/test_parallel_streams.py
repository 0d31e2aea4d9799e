"""End to end: a full ERP sync reads the streams that do not depend on each other at once.

Kingdee sandbox over real HTTP with a service time on every call, real Postgres, the real
engine. The proof is in the database (each stream's ``sync_run`` interval) and in the
sandbox's own serving gate, never in a timing threshold.
"""

from __future__ import annotations

import pytest

from hub.runtime import HubRuntime
from tests.conftest import rows, scalar

pytestmark = pytest.mark.e2e


@pytest.fixture
def hub(settings, db):
    # small pages, so that every stream takes several calls
    runtime = HubRuntime(settings.with_connector("kingdee", page_size=50), db, actor="test")
    runtime.sandbox("kingdee", scale=0.02)
    yield runtime
    runtime.close()


def test_orders_receivables_and_receipts_read_together_after_customers_within_the_erp_limit(hub, db):
    sandbox = hub.sandbox("kingdee").app.state.kingdee
    # given an ERP that takes 100 ms to answer every call
    sandbox.faults.configure({"latency_ms": 100, "faults": [{"kind": "latency", "times": None}]})

    # when the whole system is synced
    reports = {r.stream: r for r in hub.sync("kingdee")}

    # then the three streams that need only customers started after customers had finished
    runs = {r.stream: r for r in rows(db, "SELECT stream, started_at, finished_at, status FROM sync_run")}
    assert {r.status for r in runs.values()} == {"succeeded"}
    dependents = [runs[name] for name in ("sales_orders", "receivables", "receipts")]
    assert all(r.started_at >= runs["customers"].finished_at for r in dependents)
    # and they were all running at one moment (each started before any of them finished)
    assert max(r.started_at for r in dependents) < min(r.finished_at for r in dependents)
    # and the ERP never had more calls in flight than its limit, and refused none
    assert 1 < sandbox.gate.peak_in_flight <= sandbox.gate.limit
    assert sandbox.gate.overloaded == 0
    # and everything read is in the store, as a sequential sync would leave it
    assert all(r.counts.read > 0 for r in reports.values()) and reports["receivables"].counts.pages > 1
    assert scalar(db, "SELECT count(*) FROM sales_order") == reports["sales_orders"].counts.inserted > 0
    assert scalar(db, "SELECT count(*) FROM receipt") == reports["receipts"].counts.inserted > 0
