"""Fixtures of the web tests: one read-only data set per session, served by the web app.

The data set is what a real deployment holds after a first run: a Kingdee sync through
the in-process sandbox (customers, orders, receivables, receipts), the CRM demo on top,
plus one hand-made customer ("the focus customer") whose every figure the tests know in
advance: receivables in two currencies spread over all aging buckets, credit over its
limit, contacts, orders with ERP bill numbers, a task with push state and problems,
approvals. Tests that write (callbacks) use the root conftest's per-test ``db``.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from fastapi import FastAPI

with warnings.catch_warnings():
    # Starlette nags about httpx on import; the project pins httpx, not httpx2.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from connectors.kit.sandbox import serve_in_thread
from hub.access import Role
from hub.database import Database, create_db_engine
from hub.demo.data import demo_credit_code, load_crm_demo
from hub.identity import normalize_company_name
from hub.registry import connector
from hub.runtime import HubRuntime, load_sandbox
from hub.settings import Settings
from hub.web import create_web_app
from tests.conftest import rows
from tests.support.access import bearer, issue_token

# Rendering it anywhere would be a leak; the tests look for it in every answer.
CALLBACK_TOKEN = "tok-" + secrets.token_hex(8)
SHANGHAI = ZoneInfo("Asia/Shanghai")
FOCUS_FETCHED_AT = "2026-11-25T14:07:00+00:00"  # 22:07 in Shanghai


@dataclass
class WebData:
    """What the session's data set holds that tests need to find again."""

    db: Database
    settings: Settings
    today: dt.date  # in the hub's timezone, as the pages count aging
    focus_id: int
    focus_task_id: int
    xss_id: int
    erp_customer_id: int  # the synced Kingdee customer with the most open receivables
    owner_id: int  # the focus customer's salesperson


def _insert(conn: sa.Connection, sql: str, **params: Any) -> int:
    return int(conn.execute(sa.text(sql + " RETURNING id"), params).scalar_one())


def build_focus_customer(conn: sa.Connection, today: dt.date, owner_id: int) -> tuple[int, int]:
    """The focus customer (see the module docstring); returns (customer id, open task id)."""
    source = {"system": "kingdee", "external_id": "CUST09001", "fetched_at": FOCUS_FETCHED_AT}
    cid = _insert(
        conn,
        "INSERT INTO customer (name, normalized_name, credit_code, region, industry, phone, address, owner_id, "
        "credit_limit, currency, tags, stage, field_sources) VALUES (:n, :nn, :cc, '杭州', '智能制造', "
        "'0571-88886666', '浙江省杭州市滨江区网商路 1 号', :o, 2000, 'CNY', ARRAY['超时未跟进'], '商务谈判', "
        "CAST(:fs AS jsonb))",
        n="杭州示例智能科技有限公司", nn=normalize_company_name("杭州示例智能科技有限公司"),
        cc=demo_credit_code(9001), o=owner_id,
        fs=json.dumps({f: source for f in ("name", "credit_code", "phone", "address", "credit_limit", "industry")}),
    )
    for system, ext in (("kingdee", "CUST09001"), ("crm", "crm-c9001")):
        conn.execute(sa.text("INSERT INTO external_identity (system, object, external_id, canonical_table, "
                             "canonical_id) VALUES (:s, 'customer', :x, 'customer', :c)"),
                     {"s": system, "x": ext, "c": cid})
    contacts = (("王建国", "总经理", "决策者", "wmFOCUS01"), ("李敏", "采购经理", "影响者", None),
                ("<img src=x onerror=alert(1)>", "<b>bold</b>", None, None))
    for i, (name, title, role, wecom_id) in enumerate(contacts):
        conn.execute(sa.text(
            "INSERT INTO contact (customer_id, name, title, decision_role, mobile, source_system, external_id, "
            "wecom_external_userid, fetched_at) VALUES (:c, :n, :t, :r, :m, 'wecom', :x, :w, :f)"),
            {"c": cid, "n": name, "t": title, "r": role, "m": f"1380013{i:04d}", "x": f"wm-focus-{i}",
             "w": wecom_id, "f": FOCUS_FETCHED_AT})
    # Receivables: (bill, currency, days past due (negative: due later), amount, open)
    receivables = (
        ("AR09000001", "CNY", -10, "1000.00", "1000.00"),  # not due
        ("AR09000002", "CNY", 0, "80.00", "80.00"),  # due today: not yet overdue
        ("AR09000003", "CNY", 1, "500.00", "200.50"),  # 1–30
        ("AR09000004", "CNY", 30, "99.50", "99.50"),  # 1–30
        ("AR09000005", "CNY", 31, "300.00", "300.00"),  # 31–60
        ("AR09000006", "CNY", 75, "400.00", "400.00"),  # 61–90
        ("AR09000007", "CNY", 91, "500.00", "500.00"),  # >90
        ("AR09000008", "CNY", 400, "50.00", "50.00"),  # >90
        ("AR09000009", "CNY", 45, "777.00", "0.00"),  # paid: not open
        ("AR09000010", "USD", 5, "1234.56", "1234.56"),  # 1–30
        ("AR09000011", "USD", -3, "10.00", "10.00"),  # not due
    )
    for bill, currency, days, amount, open_amount in receivables:
        due = today - dt.timedelta(days=days)
        conn.execute(sa.text(
            "INSERT INTO receivable (customer_id, bill_number, bill_date, due_date, currency, amount, open_amount, "
            "status, source_system, external_id, fetched_at) VALUES (:c, :b, :bd, :d, :cur, :a, :o, 'C', "
            "'kingdee', :b, :f)"),
            {"c": cid, "b": bill, "bd": due - dt.timedelta(days=30), "d": due, "cur": currency,
             "a": Decimal(amount), "o": Decimal(open_amount), "f": FOCUS_FETCHED_AT})
    conn.execute(sa.text(
        "INSERT INTO receipt (customer_id, bill_number, receipt_date, currency, amount, source_system, external_id, "
        "fetched_at) VALUES (:c, 'SKD09000001', :d, 'CNY', 299.50, 'kingdee', 'SKD09000001', :f)"),
        {"c": cid, "d": today - dt.timedelta(days=3), "f": FOCUS_FETCHED_AT})
    conn.execute(sa.text(
        "INSERT INTO sales_order (order_number, customer_id, owner_id, order_date, currency, total_amount, status, "
        "approval_state, erp_system, erp_bill_number, erp_status, source_system, external_id, fetched_at) VALUES "
        "('XSDD09000001', :c, :o, :d, 'CNY', 12800.00, 'erp', 'none', 'kingdee', 'XSDD09000001', 'C', 'kingdee', "
        "'100901', :f)"), {"c": cid, "o": owner_id, "d": today - dt.timedelta(days=20), "f": FOCUS_FETCHED_AT})
    conn.execute(sa.text(
        "INSERT INTO sales_order (order_number, customer_id, owner_id, order_date, currency, total_amount, status, "
        "approval_state, erp_system, erp_bill_number, erp_status, source_system, external_id) VALUES "
        "('SO-FOCUS-2', :c, :o, :d, 'CNY', 5600.00, 'in_erp', 'approved', 'kingdee', 'XSDD09000002', 'B', 'crm', "
        "'SO-FOCUS-2')"), {"c": cid, "o": owner_id, "d": today - dt.timedelta(days=2)})
    now = dt.datetime.now(dt.UTC)
    push_state = {"wecom": {
        "due:focus-owner": {"state": "sent", "at": now.isoformat(), "msgid": "msg-focus-1"},
        "overdue_manager:ghost-mgr": {"state": "invalid_recipient", "at": now.isoformat(),
                                      "error": "WeCom rejected recipient ghost-mgr"},
    }}
    task_id = _insert(
        conn,
        "INSERT INTO task (title, description, kind, customer_id, assignee_id, due_at, push_state, problems) "
        "VALUES ('催收逾期货款', '>90 天账龄 550 元', 'collection', :c, :a, :d, CAST(:ps AS jsonb), :pr)",
        c=cid, a=owner_id, d=now - dt.timedelta(hours=5), ps=json.dumps(push_state),
        pr=["WeCom does not know 幽灵主管: 'overdue_manager' reminder not delivered"],
    )
    conn.execute(sa.text("INSERT INTO task (title, customer_id, assignee_id, due_at, status) VALUES "
                         "('已完成的旧任务', :c, :a, :d, 'done')"), {"c": cid, "a": owner_id, "d": now})
    conn.execute(sa.text("INSERT INTO interaction (customer_id, user_id, kind, occurred_at, summary) VALUES "
                         "(:c, :u, 'visit', :at, '现场拜访：确认二期需求')"),
                 {"c": cid, "u": owner_id, "at": now - dt.timedelta(days=2)})
    for kind, state in (("quote", "pending"), ("discount", "rejected")):
        conn.execute(sa.text("INSERT INTO approval (kind, subject_type, subject_id, customer_id, state, system) "
                             "VALUES (:k, 'sales_order', 1, :c, :s, 'oa')"), {"k": kind, "c": cid, "s": state})
    return cid, task_id


@pytest.fixture(scope="session")
def web_data(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebData]:
    """The session's read-only data set (see the module docstring)."""
    schema = f"t_web_{secrets.token_hex(4)}"
    settings = Settings(database_url=database_url, database_schema=schema,  # type: ignore[arg-type]
                        home=tmp_path_factory.mktemp("web-home"), sandbox=True,
                        connectors={"wecom": {"callback_token": CALLBACK_TOKEN}})
    db = Database(create_db_engine(database_url, schema), schema, database_url)
    db.upgrade()
    runtime = HubRuntime(settings, db, actor="test")
    try:
        runtime.sandbox("kingdee", scale=0.01)  # 20 customers, ~100 receivables: enough, and fast
        runtime.sync("kingdee")
        today = dt.datetime.now(SHANGHAI).date()
        seed = load_sandbox(connector("wecom")).demo_seed()  # type: ignore[misc]
        with db.begin() as conn:
            erp_ids = conn.execute(sa.text("SELECT id FROM customer ORDER BY id")).scalars().all()
            load_crm_demo(conn, seed["people"], seed["companies"], now=dt.datetime.now(dt.UTC),
                          erp_customer_ids=list(erp_ids))
            owner_id = conn.execute(sa.text("SELECT min(id) FROM internal_user")).scalar_one()
            conn.execute(sa.text("UPDATE internal_user SET wecom_userid = 'focus-owner' WHERE id = :id"),
                         {"id": owner_id})
            focus_id, task_id = build_focus_customer(conn, today, owner_id)
            xss_id = _insert(conn, "INSERT INTO customer (name, normalized_name) VALUES (:n, :n)",
                             n="<script>alert('x')</script>恶意名称有限公司")
            erp_customer_id = conn.execute(sa.text(
                "SELECT customer_id FROM receivable WHERE source_system = 'kingdee' AND open_amount > 0 "
                "GROUP BY customer_id ORDER BY count(*) DESC, customer_id LIMIT 1")).scalar_one()
    finally:
        runtime.close()  # stops the sandbox and disposes the engine; the engine reconnects on use
    yield WebData(db, settings, today, focus_id, task_id, xss_id, int(erp_customer_id), int(owner_id))
    db.dispose()
    admin = sa.create_engine(database_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(scope="session")
def web_app(web_data: WebData) -> FastAPI:
    """The web app over the session's data set."""
    return create_web_app(web_data.db, web_data.settings)


@pytest.fixture(scope="session")
def admin_token(web_data: WebData) -> str:
    """A bearer token of the admin role (sees every customer, personal data unmasked)."""
    return issue_token(web_data.db, Role.ADMIN, label="web tests", expires_in_s=86400)


@pytest.fixture(scope="session")
def client(web_app: FastAPI, admin_token: str) -> Iterator[TestClient]:
    """An in-process HTTP client of the web app, signed in as an administrator (the role
    tests in test_roles.py check who else may read what)."""
    with TestClient(web_app, headers=bearer(admin_token)) as http:
        yield http


@pytest.fixture(scope="session")
def anonymous(web_app: FastAPI) -> Iterator[TestClient]:
    """An in-process HTTP client with no credential."""
    with TestClient(web_app) as http:
        yield http


@pytest.fixture
def served(db: Database, settings: Settings) -> Iterator[str]:
    """The web app over the test's own schema on a free port (sandbox WeCom: the sandbox's
    callback credentials); yields its URL."""
    with serve_in_thread(create_web_app(db, settings)) as server:
        yield server.url


def audit(db: Database, **where: str) -> list[sa.Row]:
    """WeCom's audit rows matching ``where`` (column = value), oldest first."""
    clause = " AND ".join(f"{k} = :{k}" for k in where)
    return rows(db, f"SELECT * FROM audit_log WHERE system = 'wecom' AND {clause} ORDER BY id", **where)
