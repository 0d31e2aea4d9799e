"""Automation rules as data changes: uncontacted customers, collection tasks, reminder keys."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import sqlalchemy as sa

from hub.rules.collections import evaluate_collection_tasks
from hub.rules.reminders import ReminderPolicy, evaluate_reminders
from tests.conftest import rows, scalar

NOW = dt.datetime(2026, 11, 25, 2, 0, tzinfo=dt.UTC)


def given_team(conn) -> tuple[int, int]:
    manager = conn.execute(sa.text(
        "INSERT INTO internal_user (name, wecom_userid, source_system, external_id) VALUES "
        "('王经理', 'mgr01', 'crm', 'u-m') RETURNING id")).scalar_one()
    rep = conn.execute(sa.text(
        "INSERT INTO internal_user (name, wecom_userid, manager_id, source_system, external_id) VALUES "
        "('李销售', 'rep01', :m, 'crm', 'u-r') RETURNING id"), {"m": manager}).scalar_one()
    return manager, rep


def given_customer(conn, name: str, owner: int, assigned_hours_ago: int) -> int:
    return conn.execute(sa.text(
        "INSERT INTO customer (name, normalized_name, owner_id, assigned_at) VALUES (:n, :n, :o, :a) RETURNING id"),
        {"n": name, "o": owner, "a": NOW - dt.timedelta(hours=assigned_hours_ago)}).scalar_one()


def test_customer_not_contacted_within_24h_gets_a_task_and_owner_and_manager_are_reminded(db):
    with db.begin() as conn:
        _manager, rep = given_team(conn)
        late = given_customer(conn, "杭州云启软件有限公司", rep, assigned_hours_ago=30)
        contacted = given_customer(conn, "杭州海纳物流有限公司", rep, assigned_hours_ago=30)
        given_customer(conn, "杭州星辰电子有限公司", rep, assigned_hours_ago=3)  # still within 24 h
        conn.execute(sa.text("INSERT INTO interaction (customer_id, user_id, kind, occurred_at, summary) VALUES "
                             "(:c, :u, 'call', :at, '首次电话沟通')"),
                     {"c": contacted, "u": rep, "at": NOW - dt.timedelta(hours=10)})
        counts = evaluate_reminders(conn, NOW, ReminderPolicy())
    assert counts.tasks_created == 1
    task = rows(db, "SELECT customer_id, kind, assignee_id FROM task")[0]
    assert (task.customer_id, task.kind, task.assignee_id) == (late, "first_followup", rep)
    assert "超时未跟进" in scalar(db, "SELECT tags FROM customer WHERE id = :c", c=late)
    keys = sorted(r.idempotency_key.split(":")[-1] for r in rows(db, "SELECT idempotency_key FROM outbox"))
    assert keys == ["uncontacted_24h", "uncontacted_24h_manager"]
    card = scalar(db, "SELECT payload->'card' FROM outbox LIMIT 1")
    assert card["msgtype"] == "template_card"
    # the rule fires once, however often it is evaluated
    with db.begin() as conn:
        again = evaluate_reminders(conn, NOW + dt.timedelta(minutes=5), ReminderPolicy())
    assert (again.tasks_created, again.queued) == (0, 0)


def test_overdue_receivables_become_one_collection_task_updated_then_closed(db):
    with db.begin() as conn:
        _manager, rep = given_team(conn)
        customer = given_customer(conn, "苏州恒瑞精密机械有限公司", rep, assigned_hours_ago=1)
        conn.execute(sa.text(
            "INSERT INTO receivable (customer_id, bill_number, bill_date, due_date, currency, amount, open_amount, "
            "source_system, external_id) VALUES (:c, 'AR1', '2026-09-01', '2026-10-01', 'CNY', 5000, 3000, "
            "'kingdee', 'AR1'), (:c, 'AR2', '2026-11-01', '2026-12-31', 'CNY', 800, 800, 'kingdee', 'AR2')"),
            {"c": customer})
        first = evaluate_collection_tasks(conn, dt.date(2026, 11, 25), now=NOW)
    assert (first.created, first.overdue_customers) == (1, 1)
    assert scalar(db, "SELECT title FROM task WHERE kind = 'collection'") == "催收：苏州恒瑞精密机械有限公司 逾期 CNY 3,000.00"

    with db.begin() as conn:  # a partial payment arrives
        conn.execute(sa.text("UPDATE receivable SET open_amount = :a WHERE bill_number = 'AR1'"), {"a": Decimal(1200)})
        second = evaluate_collection_tasks(conn, dt.date(2026, 11, 25), now=NOW)
    assert (second.created, second.updated) == (0, 1)
    assert scalar(db, "SELECT count(*) FROM task WHERE kind = 'collection'") == 1
    assert "1,200.00" in scalar(db, "SELECT title FROM task WHERE kind = 'collection'")

    with db.begin() as conn:  # paid in full
        conn.execute(sa.text("UPDATE receivable SET open_amount = 0 WHERE bill_number = 'AR1'"))
        third = evaluate_collection_tasks(conn, dt.date(2026, 11, 25), now=NOW)
    assert third.closed == 1
    assert scalar(db, "SELECT status FROM task WHERE kind = 'collection'") == "done"


def test_a_customer_owing_in_two_currencies_has_one_stable_collection_task(db):
    # given a customer overdue in CNY and in USD
    with db.begin() as conn:
        _manager, rep = given_team(conn)
        customer = given_customer(conn, "深圳腾飞国际贸易有限公司", rep, assigned_hours_ago=1)
        conn.execute(sa.text(
            "INSERT INTO receivable (customer_id, bill_number, bill_date, due_date, currency, amount, open_amount, "
            "source_system, external_id) VALUES (:c, 'AR1', '2026-09-01', '2026-10-01', 'CNY', 9000, 9000, "
            "'kingdee', 'AR1'), (:c, 'AR2', '2026-08-01', '2026-09-01', 'USD', 500, 500, 'kingdee', 'AR2')"),
            {"c": customer})
        first = evaluate_collection_tasks(conn, dt.date(2026, 11, 25), now=NOW)

    # then one task names both amounts, never summed, and the oldest due date
    assert first.created == 1
    (title, description), = [(r.title, r.description) for r in rows(db, "SELECT title, description FROM task "
                                                                        "WHERE kind = 'collection'")]
    assert title == "催收：深圳腾飞国际贸易有限公司 逾期 CNY 9,000.00，USD 500.00"
    assert "2026-09-01" in description

    # and evaluating again changes nothing (it used to flip between the currencies)
    for _ in range(3):
        with db.begin() as conn:
            again = evaluate_collection_tasks(conn, dt.date(2026, 11, 25), now=NOW)
        assert (again.created, again.updated, again.closed) == (0, 0, 0)
    assert scalar(db, "SELECT title FROM task WHERE kind = 'collection'") == title
