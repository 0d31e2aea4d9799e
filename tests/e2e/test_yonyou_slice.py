"""End to end: Yonyou YonBIP ⇄ hub. Receivables in, approved CRM orders out exactly once.

Real Postgres, the YonBIP sandbox over real HTTP (gateway discovery, signed token, the
reference's codes and envelopes), the real engine and outbox dispatcher.
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
    # a tenant with purchased quota (no 60 order calls a minute, on either side): 500 pushes
    fast = settings.with_connector("yonyou", timeout_s=1.0, order_calls_per_minute=0).model_copy(update={
        "outbox": OutboxSettings(max_attempts=10, backoff_initial_s=0.01, backoff_max_s=0.05, lease_s=60)})
    runtime = HubRuntime(fast, db, actor="test")
    # a small seeded tenant (100 customers, ~1,000 order lines) instead of 2,000 / 20,000
    runtime.sandbox("yonyou", scale=0.05, order_calls_per_minute=None)
    yield runtime
    runtime.close()


def tenant(hub):
    return hub.sandbox("yonyou").app.state.yonyou


def test_receivables_in_profile_equal_yonyous_ledger_and_a_resync_writes_nothing(hub, db):
    # when the tenant is synced into an empty hub
    reports = {r.stream: r.counts for r in hub.sync("yonyou")}
    assert reports["customers"].inserted == reports["customers"].read == 100
    assert reports["sales_orders"].read == len(tenant(hub).data.orders)
    assert reports["receivables"].read == len(tenant(hub).data.receivables) > 0
    assert scalar(db, "SELECT count(*) FROM quarantine") == 0

    # then per customer, the profile's open receivables equal the sandbox's own ledger
    ledger: dict[str, Decimal] = defaultdict(Decimal)
    for row in tenant(hub).data.receivables.values():
        ledger[row["customer_code"]] += row["bodyItem_oriBalance"]
    with db.begin() as conn:
        links = dict(conn.execute(sa.text(
            "SELECT external_id, canonical_id FROM external_identity WHERE system = 'yonyou'")).all())
        for code, expected in ledger.items():
            profile = customer_profile(conn, links[code])
            assert profile is not None
            assert sum((s.open_amount for s in profile.receivables), Decimal(0)) == expected, code
    assert len(ledger) > 30

    # and a second sync with nothing changed writes nothing
    again = hub.sync("yonyou")
    assert all(r.counts.inserted == r.counts.updated == 0 for r in again), [r.counts for r in again]


def test_orders_cut_by_small_pages_arrive_whole_with_every_line(settings, db):
    # given a tenant read 7 order lines a page, so most pages end inside an order
    # (a tenant with purchased quota: dozens of small list pages, not paced at 60 a minute)
    small = settings.with_connector("yonyou", page_size=7, order_calls_per_minute=0)
    runtime = HubRuntime(small, db, actor="test")
    try:
        runtime.sandbox("yonyou", scale=0.01, order_calls_per_minute=None)
        sandbox = tenant(runtime)
        runtime.sync("yonyou", "customers")
        # when its orders are synced
        (report,) = runtime.sync("yonyou", "sales_orders")
    finally:
        runtime.close()

    # then the cut orders were read whole (with detail calls, overlapped with the next list call)
    assert sandbox.requests["sd/voucherorder/detail"] > 10
    assert report.counts.read == len(sandbox.data.orders) and report.counts.quarantined == 0
    # and every order holds exactly the tenant's lines, none lost at a page edge, none doubled
    expected = {o["code"]: sorted((line["lineno"], line["oriSum"]) for line in o["orderDetails"])
                for o in sandbox.data.orders.values()}
    held: dict[str, list[tuple[int, Decimal]]] = defaultdict(list)
    for r in rows(db, "SELECT o.order_number, l.line_no, l.amount FROM sales_order o "
                      "JOIN sales_order_line l ON l.order_id = o.id WHERE o.source_system = 'yonyou'"):
        held[r.order_number].append((r.line_no, r.amount))
    assert {code: sorted(lines) for code, lines in held.items()} == expected


def test_500_approved_orders_reach_yonyou_exactly_once_while_every_fault_kind_strikes(hub, db):
    now = dt.datetime.now(dt.UTC)
    hub.sync("yonyou", "customers")
    seed = load_sandbox(connector("yonyou")).demo_seed()  # type: ignore[misc]
    with db.begin() as conn:
        erp_customers = conn.execute(sa.text("SELECT canonical_id FROM external_identity WHERE system = 'yonyou' "
                                             "ORDER BY id LIMIT 20")).scalars().all()
        load_crm_demo(conn, seed["people"], seed["companies"], now=now, erp_customer_ids=list(erp_customers),
                      orders=500)
        order_ids = conn.execute(sa.text("SELECT id FROM sales_order WHERE source_system = 'crm' ORDER BY id")
                                 ).scalars().all()
        for order_id in order_ids:
            approve_order(conn, order_id, erp_system="yonyou")
    assert len(order_ids) == 500
    state = tenant(hub).data
    orders_before = len(state.orders)

    # when the orders are pushed while the sandbox injects each fault kind in turn
    plan = hub.sandbox("yonyou").app.state.faults
    plan.timeout_s = 1.2  # longer than the client's 1 s timeout
    dispatcher = hub.dispatcher(kinds=["yonyou.sales_order"])
    done = 0
    for i, kind in enumerate(FAULT_KINDS_IN_TURN):
        plan.clear()
        plan.arm(kind, rate=0.3, seed=i, times=4 if kind == "timeout" else 40)
        done += dispatcher.run_once(batch=60).done
    plan.clear()
    rest = dispatcher.drain(wait_for_scheduled=True, timeout_s=300)
    fired = Counter(kind for _, kind in plan.history)
    assert set(fired) >= {"drop_response", "http_500", "timeout", "auth_expired", "rate_limit", "busy"}, fired

    # then the tenant holds exactly one audited sales order per CRM order
    crm_codes = Counter(o["code"] for o in state.orders.values() if o["code"].startswith("CRM-"))
    assert len(crm_codes) == 500 and set(crm_codes.values()) == {1}
    assert len(state.orders) == orders_before + 500
    assert {o["verifystate"] for o in state.orders.values() if o["code"].startswith("CRM-")} == {2}
    # every CRM order carries its ERP bill number and state, and no row is left behind
    assert scalar(db, "SELECT count(*) FROM sales_order WHERE source_system = 'crm' AND erp_system = 'yonyou' "
                      "AND erp_bill_number = 'CRM-' || order_number AND erp_status = 'audited' "
                      "AND status = 'in_erp'") == 500
    assert scalar(db, "SELECT count(*) FROM outbox WHERE status <> 'done'") == 0
    assert done + rest.done == 500
    assert rest.adopted + len(rows(db, "SELECT 1 FROM audit_log WHERE outcome = 'adopted'")) > 0
    # the tenant's concurrency limit held: the dispatcher never had more calls in flight
    assert tenant(hub).gate.overloaded == 0
    saves = scalar(db, "SELECT count(*) FROM audit_log WHERE system = 'yonyou' "
                       "AND operation = 'sd/voucherorder/singleSave'")
    assert saves >= 500

    # and reading the orders back does not echo them out again as new orders
    readback = hub.sync("yonyou", "sales_orders")[0].counts
    assert (readback.inserted, readback.updated) == (orders_before, 500)
    assert scalar(db, "SELECT count(*) FROM sales_order WHERE erp_bill_number LIKE 'CRM-%' "
                      "AND source_system = 'crm'") == 500


def test_a_customer_known_in_both_erps_has_one_profile_with_both_ledgers_and_owners_from_erp_salespeople(
        hub, db):
    # given the group's CRM users, then both ERPs synced (Kingdee for one legal entity, YonBIP for another)
    seed = load_sandbox(connector("yonyou")).demo_seed()  # type: ignore[misc]
    with db.begin() as conn:
        load_crm_demo(conn, seed["people"], [], now=dt.datetime.now(dt.UTC), orders=0)
    hub.sandbox("kingdee", scale=0.05)
    kingdee = {r.stream: r.counts for r in hub.sync("kingdee")}
    yonyou = {r.stream: r.counts for r in hub.sync("yonyou")}
    assert kingdee["receivables"].quarantined == yonyou["receivables"].quarantined == 0

    # then the firms both ERPs sell to are one golden customer each, with both identities
    shared = rows(db, "SELECT k.canonical_id AS id FROM external_identity k JOIN external_identity y "
                      "ON y.canonical_id = k.canonical_id AND y.system = 'yonyou' AND y.object = 'customer' "
                      "WHERE k.system = 'kingdee' AND k.object = 'customer'")
    assert len(shared) == 12  # every other one of the universe's 24 customer companies
    assert scalar(db, "SELECT count(*) FROM identity_conflict") == 0
    with db.begin() as conn:
        owing = [r.id for r in shared if conn.execute(sa.text(
            "SELECT count(DISTINCT source_system) FROM receivable WHERE customer_id = :c AND open_amount > 0"),
            {"c": r.id}).scalar_one() == 2]
        assert owing, "some shared customer owes in both ledgers"
        profile = customer_profile(conn, owing[0])
        assert profile is not None
        assert {i["system"] for i in profile.identities} == {"kingdee", "yonyou"}
        # aging per currency sums both ledgers, and each open bill names its ledger
        ledgers = conn.execute(sa.text(
            "SELECT currency, source_system, sum(open_amount) FROM receivable WHERE customer_id = :c "
            "AND open_amount > 0 GROUP BY 1, 2"), {"c": owing[0]}).all()
        by_currency: dict[str, Decimal] = defaultdict(Decimal)
        for currency, _system, amount in ledgers:
            by_currency[currency] += amount
        assert {s.currency: s.open_amount for s in profile.receivables} == by_currency
        assert all(sum(s.aging.values(), Decimal(0)) == s.open_amount for s in profile.receivables)
        from hub.web.queries import open_receivable_bills
        bills = open_receivable_bills(conn, owing[0], profile.as_of, limit=500)
        assert {b["source_system"] for b in bills} == {"kingdee", "yonyou"}
        assert sum((b["open_amount"] for b in bills), Decimal(0)) == sum(by_currency.values(), Decimal(0))

    # and customers that exist only in an ERP have an owner: the internal user who is the ERP's salesperson
    for system in ("kingdee", "yonyou"):
        ownerless = scalar(db, "SELECT count(*) FROM external_identity e JOIN customer c ON c.id = e.canonical_id "
                               "WHERE e.system = :s AND e.object = 'customer' AND c.owner_id IS NULL", s=system)
        assert ownerless == 0, system
    # YonBIP's staff were found by mobile, Kingdee's salespeople by their (unique) names
    linked = dict(rows(db, "SELECT system, count(*) FROM external_identity WHERE object = 'salesperson' "
                           "GROUP BY system"))
    assert linked == {"yonyou": 30, "kingdee": 30}
    state = tenant(hub).data
    merchant = next(m for m in state.merchants.values() if m["code"] == "YYC00050")
    staff = state.staff[merchant["professSalesman_code"]]
    owner_mobile = scalar(db, "SELECT u.mobile FROM customer c JOIN internal_user u ON u.id = c.owner_id "
                              "JOIN external_identity e ON e.canonical_id = c.id AND e.system = 'yonyou' "
                              "AND e.object = 'customer' WHERE e.external_id = 'YYC00050'")
    assert db.vault.open("internal_user", "mobile", owner_mobile) == staff["mobile"]  # stored sealed (hub.vault)
