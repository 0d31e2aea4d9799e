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


def test_the_dependents_read_their_first_pages_while_customers_are_read_and_write_after_them(hub, db):
    import threading

    # given a Kingdee client whose customer query is answered only once orders, receivables and
    # receipts have each sent their first query (so they must read before customers are done)
    client = hub.client("kingdee")
    query = client.execute_bill_query
    first_reads = {form: threading.Event() for form in ("SAL_SaleOrder", "AR_receivable", "AR_RECEIVEBILL")}

    def execute_bill_query(form_id, *args, **kwargs):
        if form_id in first_reads:
            first_reads[form_id].set()
        if form_id == "BD_Customer":
            missing = [form for form, sent in first_reads.items() if not sent.wait(timeout=30)]
            assert not missing, f"customers were read before {missing} began reading"
        return query(form_id, *args, **kwargs)

    client.execute_bill_query = execute_bill_query

    # when the whole system is synced
    reports = {r.stream: r for r in hub.sync("kingdee")}

    # then each dependent began its run (and wrote) only after customers had finished
    runs = {r.stream: r for r in rows(db, "SELECT stream, started_at, finished_at, status FROM sync_run")}
    assert {r.status for r in runs.values()} == {"succeeded"}
    assert all(runs[name].started_at >= runs["customers"].finished_at
               for name in ("sales_orders", "receivables", "receipts"))
    # and every order found its customer: none quarantined for an unknown one
    assert all(r.counts.quarantined == 0 for r in reports.values())
    assert scalar(db, "SELECT count(*) FROM sales_order") == reports["sales_orders"].counts.inserted > 0
    assert scalar(db, "SELECT count(*) FROM quarantine") == 0
    sandbox = hub.sandbox("kingdee").app.state.kingdee
    assert sandbox.gate.peak_in_flight <= sandbox.gate.limit and sandbox.gate.overloaded == 0


def test_customers_are_read_while_salespeople_are_linked_and_read_again_when_a_link_resets_their_cursor(hub, db):
    import threading

    import sqlalchemy as sa

    # given customers synced once while no salesperson could be linked (no internal users): no owners
    hub.sync("kingdee", "customers")
    total = scalar(db, "SELECT count(*) FROM customer")
    assert total > 0 and scalar(db, "SELECT count(*) FROM customer WHERE owner_id IS NOT NULL") == 0
    # and now an internal user who is one of the ERP's salespeople (by name)
    erp = hub.sandbox("kingdee").app.state.kingdee.data
    customers = list(erp.table("BD_Customer").docs.values())
    seller = max(erp.table("BD_Saler").docs.values(), key=lambda s: sum(c.get("FSELLER") == s["FID"] for c in customers))
    with db.begin() as conn:
        conn.execute(sa.text("INSERT INTO internal_user (name, source_system, external_id) VALUES "
                             "(:n, 'wecom', 'seller-1')"), {"n": seller["FName"]})
    # and a client whose salespeople query is answered only once the customers' read has begun
    client = hub.client("kingdee")
    query = client.execute_bill_query
    customers_read = threading.Event()
    cursors: list[str] = []

    def execute_bill_query(form_id, field_keys, filter_string="", *args, **kwargs):
        if form_id == "BD_Customer":
            cursors.append(filter_string)
            customers_read.set()
        if form_id == "BD_Saler":
            assert customers_read.wait(timeout=30), "the customers' read waited for the salespeople"
        return query(form_id, field_keys, filter_string, *args, **kwargs)

    client.execute_bill_query = execute_bill_query

    # when customers are synced again: the salesperson is linked, which resets the customers' cursor
    report = hub.sync("kingdee", "customers")[0]

    # then the read begun from the old cursor was dropped and every customer read again from the start
    assert "FModifyDate >=" in cursors[0] and all("FModifyDate >=" not in c for c in cursors[1:]) and len(cursors) > 1
    assert report.cursor_before is None and report.counts.read == total
    # and the salesperson's customers now have their owner; nothing doubled
    owned = scalar(db, "SELECT count(*) FROM customer WHERE owner_id IS NOT NULL")
    assert owned == sum(c.get("FSELLER") == seller["FID"] for c in customers) > 0
    assert scalar(db, "SELECT count(*) FROM customer") == total
