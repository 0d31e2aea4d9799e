"""Owners for every customer: ERP salespeople linked to users (employee number, then mobile, then a
unique name; ambiguities become identity conflicts), the public pool, finance chasing what
nobody owns, and the counts that say so (hub.rules.salespeople, pool, collections)."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from hub.cli import app
from hub.contracts import Salesperson
from hub.rules.collections import evaluate_collection_tasks
from hub.rules.pool import PoolRefusal, refresh_pool, take_from_pool
from hub.rules.salespeople import link_erp_salespeople
from tests.conftest import rows, scalar

NOW = dt.datetime(2026, 11, 25, 2, 0, tzinfo=dt.UTC)
_SEQ = itertools.count(1)
TODAY = dt.date(2026, 11, 25)


def user(conn: sa.Connection, name: str, *, mobile: str | None = None, employee: str | None = None,
         wecom: str | None = None, active: bool = True, department: str | None = None,
         manager: int | None = None) -> int:
    return int(conn.execute(sa.text(
        "INSERT INTO internal_user (name, mobile, employee_number, wecom_userid, active, department, manager_id, "
        "source_system, external_id) VALUES (:n, :m, :e, :w, :a, :d, :mg, 'crm', :x) RETURNING id"),
        {"n": name, "m": mobile, "e": employee, "w": wecom, "a": active, "d": department, "mg": manager,
         "x": f"crm-u{next(_SEQ)}"}).scalar_one())


def customer(conn: sa.Connection, name: str, owner: int | None = None) -> int:
    return int(conn.execute(sa.text(
        "INSERT INTO customer (name, normalized_name, owner_id) VALUES (:n, :n, :o) RETURNING id"),
        {"n": name, "o": owner}).scalar_one())


def overdue(conn: sa.Connection, customer_id: int, amount: str = "14966413.69") -> None:
    conn.execute(sa.text(
        "INSERT INTO receivable (customer_id, bill_number, bill_date, due_date, currency, amount, open_amount, "
        "source_system, external_id) VALUES (:c, :b, '2026-08-01', '2026-09-01', 'CNY', :a, :a, 'kingdee', :b)"),
        {"c": customer_id, "b": f"AR-{customer_id}", "a": amount})


def linked(db) -> dict[str, int]:
    return dict(rows(db, "SELECT external_id, canonical_id FROM external_identity WHERE object = 'salesperson'"))


def test_an_employee_number_links_first_even_when_the_name_is_shared_and_the_mobile_is_someone_elses(db):
    with db.begin() as conn:
        first = user(conn, "张伟", employee="E001")
        user(conn, "张伟", employee="E002")
        other = user(conn, "李娜", mobile="13800000009")
        counts = link_erp_salespeople(conn, "yonyou", [
            Salesperson("S1", "张伟", mobile="13800000009", employee_number="E001")])
    # then the employee number decided, and the mobile pointing elsewhere is recorded for a person
    assert linked(db) == {"S1": first}
    assert (counts.linked, counts.linked_by) == (1, {"employee_number": 1})
    conflict = rows(db, "SELECT object, external_id, reason, status, detail FROM identity_conflict")
    assert [(c.object, c.external_id, c.reason, c.status) for c in conflict] == [
        ("salesperson", "S1", "salesperson_employee_number_and_mobile_disagree", "open")]
    assert conflict[0].detail["candidate_user_ids"] == sorted([first, other])
    assert conflict[0].detail["chosen_user_id"] == first


def test_then_mobile_then_a_unique_name_and_an_ambiguous_match_is_a_conflict_row_never_a_guess(db):
    with db.begin() as conn:
        by_mobile = user(conn, "王芳", mobile="13900000001")
        by_name = user(conn, "赵敏")
        twin_a, twin_b = user(conn, "李娜"), user(conn, "李娜")
        user(conn, "陈杰", active=False)
        counts = link_erp_salespeople(conn, "kingdee", [
            Salesperson("SP1", "王芳（华东）", mobile="+86 139-0000-0001"), Salesperson("SP2", "赵敏"),
            Salesperson("SP3", "李娜"), Salesperson("SP4", "陈杰"), Salesperson("SP5", "无此人")])
    assert linked(db) == {"SP1": by_mobile, "SP2": by_name}
    assert (counts.linked, counts.ambiguous, counts.unmatched) == (2, 1, 2)
    assert counts.linked_by == {"mobile": 1, "name": 1}
    (conflict,) = rows(db, "SELECT system, object, external_id, reason, detail FROM identity_conflict")
    assert (conflict.system, conflict.object, conflict.external_id, conflict.reason) == (
        "kingdee", "salesperson", "SP3", "ambiguous_salesperson_name")
    assert conflict.detail["candidate_user_ids"] == [twin_a, twin_b]
    assert f"#{twin_a}" in conflict.detail["message"] and "link one by hand" in conflict.detail["message"]

    # when a person resolves it (the twin gets the ERP's employee number) the next pass links and closes it
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE internal_user SET employee_number = 'K-77' WHERE id = :id"), {"id": twin_b})
        link_erp_salespeople(conn, "kingdee", [Salesperson("SP3", "李娜", employee_number="K-77")])
    assert linked(db)["SP3"] == twin_b
    assert scalar(db, "SELECT status FROM identity_conflict WHERE external_id = 'SP3'") == "resolved"


def test_two_users_with_one_employee_number_are_ambiguous_even_if_the_name_is_unique(db):
    with db.begin() as conn:
        user(conn, "周强", employee="E9")
        user(conn, "吴刚", employee="E9")
        counts = link_erp_salespeople(conn, "yonyou", [Salesperson("S9", "周强", employee_number="E9")])
    assert (counts.linked, counts.ambiguous) == (0, 1)
    assert linked(db) == {}
    assert scalar(db, "SELECT reason FROM identity_conflict") == "ambiguous_salesperson_employee_number"


def test_directories_fill_the_employee_number_dingtalk_job_number_and_a_wecom_custom_attribute():
    from connectors.dingtalk.mapping import map_directory_user as dingtalk_user
    from connectors.wecom.mapping import map_directory_user as wecom_user

    assert dingtalk_user({"userid": "u1", "name": "张伟", "job_number": " XH0007 "}).employee_number == "XH0007"
    member = {"userid": "zhangwei", "name": "张伟", "extattr": {"attrs": [
        {"type": 1, "name": "主页", "web": {"url": "https://x"}},
        {"type": 0, "name": "工号", "text": {"value": "E-1024"}}]}}
    assert wecom_user(member).employee_number == "E-1024"
    assert wecom_user({"userid": "lisi", "name": "李四", "extattr": {"attrs": []}}).employee_number is None


def test_a_customer_without_an_owner_enters_the_pool_and_leaves_it_when_claimed_with_provenance(db):
    with db.begin() as conn:
        rep = user(conn, "王芳", wecom="wangfang")
        finance = user(conn, "钱会计", wecom="qian")
        owned = customer(conn, "有主客户有限公司", owner=rep)
        orphan = customer(conn, "无主客户有限公司")
        overdue(conn, orphan)
        entered = refresh_pool(conn, NOW)
    assert (entered.entered, entered.in_pool) == (1, 1)
    assert scalar(db, "SELECT pool_since FROM customer WHERE id = :id", id=orphan) == NOW
    assert scalar(db, "SELECT pool_since FROM customer WHERE id = :id", id=owned) is None
    with db.begin() as conn:  # the orphan's 催收 task goes to finance meanwhile
        evaluate_collection_tasks(conn, TODAY, now=NOW, finance_recipients=["wecom:qian"])
    assert scalar(db, "SELECT assignee_id FROM task WHERE customer_id = :c", c=orphan) == finance

    # when the salesperson claims it
    with db.begin() as conn:
        taken = take_from_pool(conn, orphan, rep, by="session:7", now=NOW)
    # then it left the pool, the owner's provenance names the hub and who, and the task followed the owner
    assert taken["collection_tasks_moved"] == 1
    row = rows(db, "SELECT owner_id, pool_since, field_sources FROM customer WHERE id = :id", id=orphan)[0]
    assert (row.owner_id, row.pool_since) == (rep, None)
    assert row.field_sources["owner_id"]["system"] == "hub"
    assert row.field_sources["owner_id"]["external_id"] == "session:7"
    assert scalar(db, "SELECT assignee_id FROM task WHERE customer_id = :c", c=orphan) == rep
    # and a second claim is refused: it is no longer in the pool
    with db.begin() as conn, pytest.raises(PoolRefusal) as refused:
        take_from_pool(conn, orphan, finance, by="session:8")
    assert refused.value.status == 409


def test_finance_recipients_get_the_collection_task_of_an_ownerless_overdue_customer_and_the_rest_is_counted(db):
    with db.begin() as conn:
        rep = user(conn, "王芳", wecom="wangfang")
        finance_a = user(conn, "钱会计", employee="F01")
        finance_b = user(conn, "孙出纳", wecom="sun")
        user(conn, "离职会计", wecom="gone", active=False)
        owned = customer(conn, "有主客户有限公司", owner=rep)
        orphans = [customer(conn, f"无主客户{i}有限公司") for i in range(4)]
        for cid in (owned, *orphans):
            overdue(conn, cid)
        counts = evaluate_collection_tasks(conn, TODAY, now=NOW,
                                           finance_recipients=["employee:F01", "wecom:gone", "wecom:sun"])
    # then every overdue customer has a 催收 task: the owner's, or a finance recipient's (spread by customer)
    assert (counts.overdue_customers, counts.to_owner, counts.to_finance, counts.unrouted) == (5, 1, 4, 0)
    tasks = dict(rows(db, "SELECT customer_id, assignee_id FROM task WHERE kind = 'collection' AND status = 'open'"))
    assert tasks[owned] == rep
    assert {tasks[c] for c in orphans} == {finance_a, finance_b}
    assert all(tasks[c] == [finance_a, finance_b][c % 2] for c in orphans)
    assert scalar(db, "SELECT title FROM task WHERE customer_id = :c", c=orphans[0]).endswith("CNY 14,966,413.69")


def test_without_finance_recipients_ownerless_overdue_customers_are_counted_logged_and_audited(db, caplog):
    with db.begin() as conn, caplog.at_level(logging.WARNING):
        orphan = customer(conn, "深圳逾期无主有限公司")
        overdue(conn, orphan)
        counts = evaluate_collection_tasks(conn, TODAY, now=NOW)
    assert (counts.overdue_customers, counts.created, counts.unrouted) == (1, 0, 1)
    assert counts.unrouted_customer_ids == [orphan]
    assert "have no owner and no finance recipient" in caplog.text
    (audit,) = rows(db, "SELECT actor, operation, outcome, error, detail FROM audit_log "
                        "WHERE operation = 'collections:unrouted'")
    assert (audit.actor, audit.outcome) == ("rule:collections", "skipped")
    assert audit.detail == {"unrouted": 1, "customer_ids": [orphan]}
    assert "HUB_COLLECTIONS__FINANCE_RECIPIENTS" in audit.error


def test_doctor_shows_the_customers_without_an_owner_and_who_chases_them(db, monkeypatch):
    monkeypatch.setenv("HUB_DATABASE_URL", db.url)
    monkeypatch.setenv("HUB_DATABASE_SCHEMA", db.schema)
    with db.begin() as conn:
        customer(conn, "有主客户有限公司", owner=user(conn, "王芳"))
        overdue(conn, customer(conn, "无主客户甲有限公司"))
        customer(conn, "无主客户乙有限公司")
    runner = CliRunner(env={"COLUMNS": "250"})
    result = runner.invoke(app, ["doctor", "--json"], catch_exceptions=False)
    owners = next(c for c in json.loads(result.output)["checks"] if c["check"] == "owners")
    assert owners["status"] == "warning"
    assert owners["detail"].startswith("2 customer(s) without an owner (public pool), 1 of them overdue")
    assert "HUB_COLLECTIONS__FINANCE_RECIPIENTS is not set" in owners["detail"]


def test_hub_leads_return_to_pool_and_hub_pool_status(db, monkeypatch):
    monkeypatch.setenv("HUB_DATABASE_URL", db.url)
    monkeypatch.setenv("HUB_DATABASE_SCHEMA", db.schema)
    monkeypatch.setenv("HUB_LEADS__RETURN_TO_POOL_DAYS", "2")
    with db.begin() as conn:
        rep = user(conn, "王芳")
        customer(conn, "无主客户有限公司")
        conn.execute(sa.text(
            "INSERT INTO lead (company_name, status, owner_id, assigned_at, source_system, external_id) VALUES "
            "('三天没跟进', 'assigned', :o, now() - interval '3 days', 'crm', 'L1'), "
            "('昨天才分配', 'assigned', :o, now() - interval '1 day', 'crm', 'L2')"), {"o": rep})
    runner = CliRunner(env={"COLUMNS": "200"})
    result = runner.invoke(app, ["leads", "return-to-pool"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "1 lead(s) returned to the public pool (2 days without follow-up)" in result.output
    status = runner.invoke(app, ["pool", "status", "--json"], catch_exceptions=False)
    assert json.loads(status.output)["customers"] == 1 and json.loads(status.output)["leads"] == 1
