"""The shipped automation rules on real data, with a clock the test controls.

Each default rule fires once, at its time, for the right people (the supervisor too); a
rule never fires for what happened before it became active; a holiday moves a
business-day deadline; two evaluators at once fire once; a dry run writes nothing.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import sqlalchemy as sa

from hub.rules.automation import BusinessCalendar, RuleEnv, apply, load_rules, plan
from hub.rules.automation.model import parse_rules
from hub.rules.reminders import ReminderPolicy
from hub.settings import LeadRule, LeadSettings, OrderSettings
from tests.conftest import rows, scalar
from tests.support.threads import run_together

T0 = dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.UTC)  # Tuesday 10:00 in Shanghai
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
BOOK = load_rules()


def env(book=BOOK) -> RuleEnv:
    return RuleEnv(calendar=BusinessCalendar(book.calendar, "Asia/Shanghai"),
                   leads=LeadSettings(rules=[LeadRule(name="华东制造", regions=["华东"], owner="wecom:rep01")]),
                   orders=OrderSettings(), reminders=ReminderPolicy(), finance_recipients=("wecom:fin01",))


def given_people(conn) -> dict[str, int]:
    ids = {}
    for key, name, userid, manager in [("manager", "王经理", "mgr01", None), ("rep", "李销售", "rep01", "manager"),
                                       ("finance", "钱会计", "fin01", None)]:
        ids[key] = conn.execute(sa.text(
            "INSERT INTO internal_user (name, wecom_userid, manager_id, source_system, external_id) "
            "VALUES (:n, :u, :m, 'crm', :u) RETURNING id"),
            {"n": name, "u": userid, "m": ids.get(manager) if manager else None}).scalar_one()
    return ids


def given_customer(conn, name: str, owner: int | None, assigned_at: dt.datetime | None = None) -> int:
    return conn.execute(sa.text(
        "INSERT INTO customer (name, normalized_name, owner_id, assigned_at, region) VALUES (:n, :n, :o, :a, '华东') "
        "RETURNING id"), {"n": name, "o": owner, "a": assigned_at}).scalar_one()


def reminders(db) -> list[tuple[str, str]]:
    """(recipient, kind) of every queued reminder."""
    return sorted((r.payload["recipient"], r.payload["kind"]) for r in rows(
        db, "SELECT payload FROM outbox WHERE kind LIKE '%.reminder'"))


def firings(db, rule: str) -> list[sa.Row]:
    return rows(db, "SELECT subject_type, subject_id, window_key, state, outcomes, error FROM rule_firing WHERE rule = :r "
                    "ORDER BY id", r=rule)


def test_a_new_install_does_not_fire_on_history_and_the_24h_rule_fires_once_for_owner_and_supervisor(db):
    with db.begin() as conn:
        people = given_people(conn)
        given_customer(conn, "杭州旧账有限公司", people["rep"], T0 - dt.timedelta(days=900))
    # when the rules are applied for the first time, they become active: nothing from before fires
    first = apply(db.engine, BOOK, T0, env())
    assert first.fired == 0
    assert scalar(db, "SELECT count(*) FROM rule_activation") == len(BOOK.rules)
    with db.begin() as conn:
        fresh = given_customer(conn, "杭州云启软件有限公司", people["rep"], T0 + HOUR)
    # one minute before the deadline nothing fires
    assert apply(db.engine, BOOK, T0 + HOUR + 24 * HOUR - dt.timedelta(minutes=1), env()).fired == 0
    at_deadline = apply(db.engine, BOOK, T0 + 25 * HOUR, env())
    assert at_deadline.by_rule == {"customer-uncontacted-24h": 1}
    task = rows(db, "SELECT id, customer_id, kind, assignee_id, title FROM task")
    assert [(t.customer_id, t.kind, t.assignee_id) for t in task] == [(fresh, "first_followup", people["rep"])]
    assert "超时未跟进" in scalar(db, "SELECT tags FROM customer WHERE id = :c", c=fresh)
    assert reminders(db) == [("mgr01", "uncontacted_24h_manager"), ("rep01", "uncontacted_24h")]
    # re-running, later, changes nothing
    again = apply(db.engine, BOOK, T0 + 26 * HOUR, env())
    assert again.by_rule.get("customer-uncontacted-24h") is None
    assert len(firings(db, "customer-uncontacted-24h")) == 1
    assert scalar(db, "SELECT count(*) FROM task WHERE kind = 'first_followup'") == 1


def test_new_lead_is_assigned_by_the_table_reminded_escalated_after_24h_and_pooled_after_7_days(db):
    with db.begin() as conn:
        people = given_people(conn)
    apply(db.engine, BOOK, T0, env())  # the rules become active
    with db.begin() as conn:
        lead = conn.execute(sa.text(
            "INSERT INTO lead (company_name, normalized_name, region, industry, estimated_amount, channel, "
            "source_system, external_id, created_at) VALUES ('宁波海星模具有限公司', '宁波海星模具', '华东', '制造', "
            "200000, 'web_form', 'crm', 'L-1', :at) RETURNING id"), {"at": T0 + HOUR}).scalar_one()
    # when the evaluator runs, the new lead gets its owner by the table and a first follow-up task
    report = apply(db.engine, BOOK, T0 + 2 * HOUR, env())
    assert report.by_rule == {"new-lead": 1}
    got = rows(db, "SELECT owner_id, status, assigned_rule, assigned_at FROM lead WHERE id = :l", l=lead)[0]
    assert (got.owner_id, got.status, got.assigned_rule) == (people["rep"], "assigned", "华东制造")
    assert reminders(db) == [("rep01", "lead_assigned")]
    assert scalar(db, "SELECT kind FROM task WHERE lead_id = :l", l=lead) == "lead_followup"
    # 24 hours after the assignment without a follow-up: owner and supervisor
    assigned = got.assigned_at
    assert apply(db.engine, BOOK, assigned + 23 * HOUR, env()).fired == 0
    assert apply(db.engine, BOOK, assigned + 24 * HOUR, env()).by_rule == {"lead-uncontacted-24h": 1}
    assert reminders(db) == [("mgr01", "uncontacted_24h_manager"), ("rep01", "lead_assigned"),
                             ("rep01", "uncontacted_24h")]
    # 7 days: back to the public pool, its follow-up cancelled
    assert apply(db.engine, BOOK, assigned + 7 * DAY, env()).by_rule == {"lead-back-to-pool": 1}
    got = rows(db, "SELECT owner_id, status FROM lead WHERE id = :l", l=lead)[0]
    assert (got.owner_id, got.status) == (None, "pool")
    assert scalar(db, "SELECT status FROM task WHERE lead_id = :l", l=lead) == "cancelled"
    assert apply(db.engine, BOOK, assigned + 8 * DAY, env()).fired == 0


def test_a_lead_followed_up_in_time_is_neither_escalated_nor_pooled(db):
    with db.begin() as conn:
        people = given_people(conn)
    apply(db.engine, BOOK, T0, env())
    with db.begin() as conn:
        lead = conn.execute(sa.text(
            "INSERT INTO lead (company_name, normalized_name, region, channel, source_system, external_id, status, "
            "owner_id, assigned_at, last_contacted_at, created_at) VALUES ('绍兴织造', '绍兴织造', '华东', 'crm', "
            "'crm', 'L-2', 'assigned', :o, :a, :c, :a) RETURNING id"),
            {"o": people["rep"], "a": T0 + HOUR, "c": T0 + 5 * HOUR}).scalar_one()
    apply(db.engine, BOOK, T0 + 10 * DAY, env())
    assert scalar(db, "SELECT status FROM lead WHERE id = :l", l=lead) == "assigned"
    assert firings(db, "lead-uncontacted-24h") == [] and firings(db, "lead-back-to-pool") == []


def test_a_signed_contract_gets_its_receivable_plan_and_finance_is_told(db):
    with db.begin() as conn:
        people = given_people(conn)
        customer = given_customer(conn, "苏州恒瑞精密机械有限公司", people["rep"], T0 - 30 * DAY)
    apply(db.engine, BOOK, T0, env())
    with db.begin() as conn:
        contract = conn.execute(sa.text(
            "INSERT INTO contract (customer_id, owner_id, contract_number, title, currency, amount, status, signed_at, "
            "source_system, external_id) VALUES (:c, :o, 'HT-2026-001', '设备采购合同', 'CNY', 100000.01, 'signed', :s, "
            "'crm', 'K-1') RETURNING id"), {"c": customer, "o": people["rep"], "s": T0 + HOUR}).scalar_one()
    assert apply(db.engine, BOOK, T0 + 2 * HOUR, env()).by_rule == {"contract-signed": 1}
    plan_rows = rows(db, "SELECT instalment_no, due_date, amount, currency, state FROM receivable_plan "
                         "WHERE contract_id = :k ORDER BY instalment_no", k=contract)
    signed = dt.date(2026, 11, 24)
    assert [(p.instalment_no, p.due_date, p.amount) for p in plan_rows] == [
        (1, signed, Decimal("30000.00")), (2, signed + dt.timedelta(days=60), Decimal("60000.01")),
        (3, signed + dt.timedelta(days=365), Decimal("10000.00"))]
    assert sum(p.amount for p in plan_rows) == Decimal("100000.01")
    invoice = rows(db, "SELECT assignee_id, kind, description FROM task WHERE kind = 'invoice'")
    assert [(t.assignee_id, t.kind) for t in invoice] == [(people["finance"], "invoice")]
    assert "CNY 100,000.01" in invoice[0].description
    assert reminders(db) == [("fin01", "contract_signed_finance")]
    apply(db.engine, BOOK, T0 + 3 * HOUR, env())
    assert scalar(db, "SELECT count(*) FROM receivable_plan") == 3


def given_order(conn, customer: int, owner: int, number: str, amount: str, state: str) -> int:
    return conn.execute(sa.text(
        "INSERT INTO sales_order (order_number, customer_id, owner_id, order_date, currency, total_amount, status, "
        "approval_state, source_system, external_id, fetched_at) VALUES (:n, :c, :o, '2026-11-24', 'CNY', :a, "
        "'submitted', :s, 'crm', :n, :at) RETURNING id"),
        {"n": number, "c": customer, "o": owner, "a": Decimal(amount), "s": state, "at": T0 + HOUR}).scalar_one()


def test_orders_above_the_threshold_get_an_approval_approved_ones_go_to_the_erp_rejected_ones_tell_the_owner(db):
    with db.begin() as conn:
        people = given_people(conn)
        customer = given_customer(conn, "无锡新程科技有限公司", people["rep"], T0 - 30 * DAY)
    apply(db.engine, BOOK, T0, env())
    with db.begin() as conn:
        big = given_order(conn, customer, people["rep"], "SO-1", "150000", "pending")
        small = given_order(conn, customer, people["rep"], "SO-2", "9000", "pending")
    assert apply(db.engine, BOOK, T0 + 2 * HOUR, env()).by_rule == {"order-needs-approval": 1}
    approvals = rows(db, "SELECT id, subject_id, state, system, customer_id FROM approval")
    assert [(a.subject_id, a.state, a.system, a.customer_id) for a in approvals] == [(big, "pending", "wecom",
                                                                                      customer)]
    # the approver rejects it with a comment: the owner gets a task saying why, and a reminder
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE approval SET state = 'rejected', decided_at = :at, comment = '折扣超出权限' "
                             "WHERE id = :id"), {"at": T0 + 3 * HOUR, "id": approvals[0].id})
        conn.execute(sa.text("UPDATE sales_order SET approval_state = 'rejected' WHERE id = :id"), {"id": big})
    assert apply(db.engine, BOOK, T0 + 4 * HOUR, env()).by_rule == {"order-rejected": 1}
    told = rows(db, "SELECT assignee_id, description FROM task WHERE kind = 'order_rejected'")
    assert [(t.assignee_id, t.description) for t in told] == [(people["rep"], "驳回原因：折扣超出权限")]
    assert ("rep01", "order_rejected") in reminders(db)
    # resubmitted: a second approval is requested (a new window), then approved → the ERP
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE sales_order SET approval_state = 'pending' WHERE id = :id"), {"id": big})
    assert apply(db.engine, BOOK, T0 + 5 * HOUR, env()).by_rule == {"order-needs-approval": 1}
    assert scalar(db, "SELECT count(*) FROM approval WHERE state = 'pending'") == 1
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE sales_order SET approval_state = 'approved', approved_at = :at WHERE id = :id"),
                     {"at": T0 + 6 * HOUR, "id": big})
    assert apply(db.engine, BOOK, T0 + 7 * HOUR, env()).by_rule == {"order-approved-to-erp": 1}
    pushed = rows(db, "SELECT kind, idempotency_key FROM outbox WHERE kind LIKE '%.sales_order'")
    assert [(p.kind, p.idempotency_key) for p in pushed] == [("kingdee.sales_order",
                                                              f"kingdee.sales_order:crm-order-{big}")]
    assert scalar(db, "SELECT status FROM sales_order WHERE id = :id", id=big) == "approved"
    assert scalar(db, "SELECT count(*) FROM approval WHERE subject_id = :s", s=small) == 0


def test_an_order_approved_through_the_api_is_not_pushed_twice(db):
    from hub.rules.orders import approve_order

    with db.begin() as conn:
        people = given_people(conn)
        customer = given_customer(conn, "常州远航机电有限公司", people["rep"], T0 - 30 * DAY)
    apply(db.engine, BOOK, T0, env())
    with db.begin() as conn:
        order = given_order(conn, customer, people["rep"], "SO-9", "500", "none")
        approve_order(conn, order, at=T0 + HOUR)
        conn.execute(sa.text("UPDATE sales_order SET status = 'in_erp' WHERE id = :id"), {"id": order})
    apply(db.engine, BOOK, T0 + 2 * HOUR, env())
    outcome = firings(db, "order-approved-to-erp")[0].outcomes
    assert outcome[0]["did"].startswith("left alone: the order is in_erp")
    assert scalar(db, "SELECT status FROM sales_order WHERE id = :id", id=order) == "in_erp"
    assert scalar(db, "SELECT count(*) FROM outbox WHERE kind LIKE '%.sales_order'") == 1


def test_a_receivable_overdue_30_days_reminds_owner_and_finance_once(db):
    with db.begin() as conn:
        people = given_people(conn)
        customer = given_customer(conn, "南通瑞丰纺织有限公司", people["rep"], T0 - 300 * DAY)
    apply(db.engine, BOOK, T0, env())
    due = dt.date(2026, 11, 25)
    with db.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO receivable (customer_id, bill_number, bill_date, due_date, currency, amount, open_amount, "
            "source_system, external_id) VALUES (:c, 'AR-7', '2026-10-25', :d, 'CNY', 8000, 5000, 'kingdee', 'AR-7')"),
            {"c": customer, "d": due})
    # overdue 30 days from the start of 2026-12-25 in Shanghai (16:00 UTC the day before)
    day_30 = dt.datetime(2026, 12, 24, 16, 0, tzinfo=dt.UTC)
    assert apply(db.engine, BOOK, day_30 - dt.timedelta(minutes=1), env()).by_rule.get("receivable-overdue-30d") is None
    assert apply(db.engine, BOOK, day_30, env()).by_rule.get("receivable-overdue-30d") == 1
    assert ("rep01", "overdue_30d") in reminders(db) and ("fin01", "overdue_30d_finance") in reminders(db)
    assert scalar(db, "SELECT count(*) FROM task WHERE kind = 'collection'") == 1
    apply(db.engine, BOOK, day_30 + DAY, env())
    assert len(firings(db, "receivable-overdue-30d")) == 1


def test_a_task_due_and_then_overdue_reminds_assignee_then_assignee_and_supervisor(db):
    with db.begin() as conn:
        people = given_people(conn)
        customer = given_customer(conn, "嘉兴明达", people["rep"], T0 - 300 * DAY)
    apply(db.engine, BOOK, T0, env())
    with db.begin() as conn:
        conn.execute(sa.text("INSERT INTO task (title, kind, customer_id, assignee_id, due_at) "
                             "VALUES ('回访', 'follow_up', :c, :a, :d)"),
                     {"c": customer, "a": people["rep"], "d": T0 + 5 * HOUR})
    apply(db.engine, BOOK, T0 + 3 * HOUR, env())
    assert reminders(db) == []
    apply(db.engine, BOOK, T0 + 4 * HOUR, env())
    assert reminders(db) == [("rep01", "due")]
    apply(db.engine, BOOK, T0 + 5 * HOUR, env())
    assert reminders(db) == [("mgr01", "overdue_manager"), ("rep01", "due"), ("rep01", "overdue")]


ONE_BUSINESS_DAY = """
[calendar]
holidays = ["2026-11-30"]
workdays = ["2026-12-05"]

[[rules]]
name = "silent-1bd"
trigger = { time = "no_followup", subject = "customer", after = "1bd" }
actions = [{ do = "create_task", title = "跟进：{name}", kind = "follow_up" }]
"""


def test_a_holiday_moves_a_business_day_deadline_and_a_make_up_day_counts(db):
    import tomllib

    book = parse_rules(tomllib.loads(ONE_BUSINESS_DAY), "test")
    with db.begin() as conn:
        people = given_people(conn)
    apply(db.engine, book, T0, env(book))
    friday_10 = dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC)  # Friday 10:00 Shanghai; Monday 30th a holiday
    friday_dec_4 = dt.datetime(2026, 12, 4, 2, 0, tzinfo=dt.UTC)  # Saturday 5 December is a make-up working day
    with db.begin() as conn:
        before_holiday = given_customer(conn, "湖州一号", people["rep"], friday_10)
        before_make_up = given_customer(conn, "湖州二号", people["rep"], friday_dec_4)
    monday = dt.datetime(2026, 11, 30, 2, 0, tzinfo=dt.UTC)
    apply(db.engine, book, monday + DAY - dt.timedelta(minutes=1), env(book))
    assert scalar(db, "SELECT count(*) FROM task WHERE customer_id = :c", c=before_holiday) == 0
    apply(db.engine, book, monday + DAY, env(book))  # Tuesday 10:00: the next business day
    assert scalar(db, "SELECT count(*) FROM task WHERE customer_id = :c", c=before_holiday) == 1
    apply(db.engine, book, friday_dec_4 + DAY, env(book))  # Saturday 10:00, worked
    assert scalar(db, "SELECT count(*) FROM task WHERE customer_id = :c", c=before_make_up) == 1


def test_two_evaluators_at_once_fire_once(db):
    with db.begin() as conn:
        people = given_people(conn)
    apply(db.engine, BOOK, T0, env())
    with db.begin() as conn:
        for n in range(5):
            given_customer(conn, f"并发客户{n}", people["rep"], T0 + HOUR)
    failures = run_together(2, lambda: apply(db.engine, BOOK, T0 + 30 * HOUR, env()))
    assert failures == []
    assert len(firings(db, "customer-uncontacted-24h")) == 5
    assert scalar(db, "SELECT count(*) FROM task WHERE kind = 'first_followup'") == 5
    assert len(reminders(db)) == 10  # owner and supervisor per customer, once


def table_counts(db) -> dict[str, int]:
    with db.engine.connect() as conn:
        tables = sa.inspect(conn).get_table_names()
        return {t: conn.execute(sa.text(f'SELECT count(*) FROM "{t}"')).scalar_one() for t in tables}


def test_a_dry_run_shows_the_plan_and_writes_nothing(db):
    with db.begin() as conn:
        people = given_people(conn)
    apply(db.engine, BOOK, T0, env())
    with db.begin() as conn:
        customer = given_customer(conn, "温州宏达", people["rep"], T0 + HOUR)
    before = table_counts(db)
    with db.engine.connect() as conn:
        plans = plan(conn, BOOK, T0 + 30 * HOUR, env())
    assert table_counts(db) == before
    planned = {p.rule: p for p in plans}
    firing = planned["customer-uncontacted-24h"].firings
    assert [(f.subject.ref, f.actions[1]) for f in firing] == [(f"customer:{customer}",
                                                               "remind owner, supervisor in chat")]
    # and applying does what the plan said
    assert apply(db.engine, BOOK, T0 + 30 * HOUR, env()).by_rule == {"customer-uncontacted-24h": 1}


def test_conditions_on_owner_team_and_currency_narrow_the_subjects(db):
    import tomllib

    book = parse_rules(tomllib.loads("""
[[rules]]
name = "usd-team"
trigger = { event = "contract_signed" }
conditions = { currencies = ["USD"], owner_team = "wecom:mgr01" }
actions = [{ do = "create_task", title = "外币合同：{name}", kind = "fx_contract" }]
"""), "test")
    with db.begin() as conn:
        people = given_people(conn)
        customer = given_customer(conn, "宁波外贸", people["rep"], T0)
    apply(db.engine, book, T0, env(book))
    with db.begin() as conn:
        for n, (currency, owner) in enumerate([("USD", people["rep"]), ("CNY", people["rep"]),
                                               ("USD", people["finance"])]):
            conn.execute(sa.text(
                "INSERT INTO contract (customer_id, owner_id, contract_number, title, currency, amount, status, "
                "signed_at, source_system, external_id) VALUES (:c, :o, :n, 't', :cur, 100, 'signed', :s, 'crm', :n)"),
                {"c": customer, "o": owner, "n": f"K-{n}", "cur": currency, "s": T0 + HOUR})
    with db.engine.connect() as conn:
        assert plan(conn, book, T0 + 2 * HOUR, env(book))[0].not_matching == 2
    assert apply(db.engine, book, T0 + 2 * HOUR, env(book)).fired == 1


def test_a_firing_whose_action_fails_is_kept_as_failed_with_the_error_and_not_retried(db, monkeypatch):
    from hub.errors import NotFoundError
    from hub.rules.automation import actions

    def refuse(firing, action):
        raise NotFoundError(f"no CRM endpoint for {firing.subject.ref}")

    book = parse_rules({"rules": [{"name": "tell-crm", "trigger": {"event": "task_done"},
                                   "actions": [{"do": "create_task", "title": "复盘：{name}", "kind": "review"},
                                               {"do": "send_crm_webhook"}]}]}, "test")
    monkeypatch.setitem(actions.HANDLERS, "send_crm_webhook", actions.Handler(lambda a, s: "send", refuse))
    with db.begin() as conn:
        people = given_people(conn)
        customer = given_customer(conn, "丽水青山", people["rep"], T0)
    apply(db.engine, book, T0, env(book))
    with db.begin() as conn:
        conn.execute(sa.text("INSERT INTO task (title, kind, customer_id, assignee_id, due_at, status, completed_at) "
                             "VALUES ('回访', 'follow_up', :c, :a, :d, 'done', :d)"),
                     {"c": customer, "a": people["rep"], "d": T0 + HOUR})
    report = apply(db.engine, book, T0 + 2 * HOUR, env(book))
    # then the firing is rolled back as a whole (no review task) and recorded as failed, once
    assert (report.fired, report.failed) == (0, 1)
    failed = firings(db, "tell-crm")
    assert [(f.state, f.error) for f in failed] == [("failed", "NotFoundError: no CRM endpoint for task:1")]
    assert scalar(db, "SELECT count(*) FROM task WHERE kind = 'review'") == 0
    assert apply(db.engine, book, T0 + 3 * HOUR, env(book)).failed == 0
