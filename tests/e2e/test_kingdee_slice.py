"""End to end: Kingdee ⇄ hub. Receivables in, approved CRM orders out exactly once.

Real Postgres, the Kingdee sandbox over real HTTP (signed-header auth as the official
SDK does it), the real engine and outbox dispatcher.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from decimal import Decimal

import pytest
import sqlalchemy as sa

from canonical_model.profile import customer_profile
from hub.demo.data import load_crm_demo
from hub.registry import connector
from hub.rules.orders import approve_order
from hub.runtime import HubRuntime, load_sandbox
from hub.settings import OutboxSettings
from tests.conftest import rows, scalar

pytestmark = pytest.mark.e2e

FAULT_KINDS_IN_TURN = ("drop_response", "http_500", "timeout", "auth_expired", "rate_limit", "busy", "latency")


@pytest.fixture
def hub(settings, db):
    fast = settings.model_copy(update={
        "outbox": OutboxSettings(max_attempts=10, backoff_initial_s=0.01, backoff_max_s=0.05, lease_s=60)})
    runtime = HubRuntime(fast, db, actor="test")
    # a small seeded ERP (100 customers, 1,000 orders) instead of the default 2,000 / 20,000
    runtime.sandbox("kingdee", scale=0.05)
    yield runtime
    runtime.close()


def sandbox_state(hub):
    return hub.sandbox("kingdee").app.state.kingdee.data


def test_receivables_in_profile_equal_the_erp_and_a_resync_writes_nothing(hub, db):
    # when the ERP is synced into an empty hub
    reports = {r.stream: r.counts for r in hub.sync("kingdee")}
    assert reports["customers"].inserted == reports["customers"].read > 0
    assert reports["receivables"].read > 0

    # then per customer, the profile's open receivables equal the sandbox's own ledger
    state = sandbox_state(hub)
    quarantined = {r.source_ref for r in rows(db, "SELECT source_ref FROM quarantine WHERE stream = 'receivables'")}
    erp_open: dict[str, Decimal] = defaultdict(Decimal)
    for doc in state.table("AR_receivable").docs.values():
        if doc["FBillNo"] in quarantined or doc.get("FCancelStatus") == "B":
            continue
        erp_open[state.doc_number("BD_Customer", doc["FCUSTOMERID"])] += Decimal(str(doc["FNOTWRITTENOFFAMOUNTFOR"]))
    with db.begin() as conn:
        links = dict(conn.execute(sa.text(
            "SELECT external_id, canonical_id FROM external_identity WHERE system = 'kingdee'")).all())
        compared = 0
        for number, expected in erp_open.items():
            profile = customer_profile(conn, links[number])
            assert profile is not None
            hub_open = sum((s.open_amount for s in profile.receivables), Decimal(0))
            assert hub_open == expected, number
            compared += 1
    assert compared > 50

    # and a second sync with nothing changed writes nothing
    again = hub.sync("kingdee")
    assert all(r.counts.inserted == r.counts.updated == 0 for r in again), [r.counts for r in again]
    assert all(r.counts.unchanged + r.counts.quarantined == r.counts.read for r in again)


def test_500_approved_orders_reach_kingdee_exactly_once_while_every_fault_kind_strikes(hub, db):
    now = dt.datetime.now(dt.UTC)
    hub.sync("kingdee", "customers")
    seed = load_sandbox(connector("wecom")).demo_seed()  # type: ignore[misc]
    with db.begin() as conn:
        erp_customers = conn.execute(sa.text("SELECT canonical_id FROM external_identity WHERE system = 'kingdee' "
                                             "ORDER BY id LIMIT 20")).scalars().all()
        load_crm_demo(conn, seed["people"], seed["companies"], now=now, erp_customer_ids=list(erp_customers),
                      orders=500)
        order_ids = conn.execute(sa.text("SELECT id FROM sales_order WHERE source_system = 'crm' ORDER BY id")
                                 ).scalars().all()
        for order_id in order_ids:
            approve_order(conn, order_id)
    assert len(order_ids) == 500
    state = sandbox_state(hub)
    orders_before = len(state.table("SAL_SaleOrder").docs)

    # when the orders are pushed while the sandbox injects each fault kind in turn, by a hub
    # whose Kingdee client gives up after 1 s (the syncs around it keep the usual timeout: a
    # loaded machine can take longer than 1 s over a big query page)
    plan = hub.sandbox("kingdee").app.state.faults
    plan.timeout_s = 1.2  # longer than the pushing client's 1 s timeout
    plan.latency_ms = 0
    with HubRuntime(hub.settings.with_connector("kingdee", timeout_s=1.0), db, actor="test",
                    sandbox_urls={"kingdee": hub.sandbox("kingdee").url}) as pushing:
        dispatcher = pushing.dispatcher(kinds=["kingdee.sales_order"])
        done = 0
        for i, kind in enumerate(FAULT_KINDS_IN_TURN):
            plan.clear()
            plan.arm(kind, rate=0.3, seed=i, times=4 if kind == "timeout" else 40)
            counts = dispatcher.run_once(batch=60)
            done += counts.done
        plan.clear()
        rest = dispatcher.drain(wait_for_scheduled=True, timeout_s=300)
    fired = Counter(kind for _, kind in plan.history)
    assert set(fired) >= {"drop_response", "http_500", "timeout", "auth_expired", "rate_limit", "busy"}, fired

    # then the sandbox holds exactly one sales order per CRM order
    crm_bills = Counter(doc["FBillNo"] for doc in state.table("SAL_SaleOrder").docs.values()
                        if str(doc["FBillNo"]).startswith("CRM-"))
    assert len(crm_bills) == 500 and set(crm_bills.values()) == {1}
    assert len(state.table("SAL_SaleOrder").docs) == orders_before + 500
    # every CRM order carries its ERP bill number and status, and no row is left behind
    assert scalar(db, "SELECT count(*) FROM sales_order WHERE source_system = 'crm' AND erp_bill_number "
                      "= 'CRM-' || order_number AND erp_status = 'C'") == 500
    assert scalar(db, "SELECT count(*) FROM outbox WHERE status <> 'done'") == 0
    assert done + rest.done == 500
    assert rest.adopted + sum(1 for r in rows(db, "SELECT 1 FROM audit_log WHERE outcome = 'adopted'")) > 0
    # every call is in the audit: each outbox row has its dispatch outcome, each Save its HTTP exchange
    assert scalar(db, "SELECT count(DISTINCT key) FROM audit_log WHERE operation = 'kingdee.sales_order' "
                      "AND outcome IN ('ok', 'adopted')") == 500
    saves = scalar(db, "SELECT count(*) FROM audit_log WHERE system = 'kingdee' AND operation = 'Save'")
    assert saves >= 500 + 24  # the orders and the CRM-only customers created on the way

    # and reading the orders back does not echo them out again as new orders
    readback = hub.sync("kingdee", "sales_orders")[0].counts
    assert (readback.inserted, readback.updated) == (orders_before, 500)  # the ERP's own orders are new
    assert scalar(db, "SELECT count(*) FROM sales_order WHERE erp_bill_number LIKE 'CRM-%'") == 500
    assert scalar(db, "SELECT count(*) FROM sales_order WHERE erp_bill_number LIKE 'CRM-%' "
                      "AND source_system = 'crm'") == 500
