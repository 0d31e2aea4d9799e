"""The CRM side of the demo: a sales organisation with customers, orders and to-dos.

Deterministic (same seed, same data) and realistic: Chinese names, mainland mobiles,
regional sales teams with managers, companies with valid unified social credit codes.
The people come from the chat sandbox's directory (``ConnectorSpec.demo_people``), so
directory sync finds every CRM user by mobile, as it would in a real company.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hub.identity import credit_code_check_char, normalize_company_name
from hub.stages import FUNNEL_STAGES, LOST, record_stage_change
from hub.vault import vault_for

INDUSTRIES = ("智能制造", "医疗器械", "新能源", "电子元器件", "工业自动化", "食品饮料", "物流仓储", "软件服务")
PRODUCTS = (("P-1001", "工业网关 G200"), ("P-1002", "边缘计算盒 E10"), ("P-2001", "MES 软件许可（年）"),
            ("P-2002", "实施服务（人天）"), ("P-3001", "传感器套件 S5"))


def demo_credit_code(serial: int) -> str:
    """A valid unified social credit code for demo company number ``serial``."""
    division = ("310115", "440305", "110108", "510107", "320505", "330106")[serial % 6]
    body = f"91{division}MA{serial:07d}"[:17]
    return body + credit_code_check_char(body)


@dataclass(frozen=True)
class DemoCustomer:
    """A CRM customer of the demo."""

    crm_id: str
    name: str
    credit_code: str
    region: str
    industry: str
    owner_crm_id: str


def demo_customers(people: list[dict[str, Any]], companies: list[dict[str, Any]], seed: int = 11) -> list[DemoCustomer]:
    """CRM-only customers (not in the ERP yet: pushing their first order creates them there),
    one per company, each owned by one of the sales reps in ``people``."""
    rng = random.Random(seed)
    reps = [p for p in people if p.get("is_sales_rep")]
    return [
        DemoCustomer(f"crm-c{i + 1:04d}", company["name"], demo_credit_code(1000 + i), company.get("city", ""),
                     rng.choice(INDUSTRIES), reps[i % len(reps)]["crm_id"])
        for i, company in enumerate(companies)
    ]


def load_crm_demo(conn: Connection, people: list[dict[str, Any]], companies: list[dict[str, Any]], *,
                  now: dt.datetime, erp_customer_ids: list[int] | None = None, orders: int = 40,
                  seed: int = 3) -> dict[str, int]:
    """Insert the CRM demo data set; returns counts. ``people`` are the CRM users (dicts with
    crm_id, name, mobile, email, department, title, manager_crm_id, is_sales_rep);
    ``companies`` the CRM's own customers (name, city);
    ``erp_customer_ids`` (customers that already came from the ERP) get CRM owners,
    orders and tasks too, so the demo shows one customer seen from every side."""
    rng = random.Random(seed)
    vault = vault_for(conn)
    user_ids: dict[str, int] = {}
    for p in people:
        user_ids[p["crm_id"]] = conn.execute(sa.text(
            "INSERT INTO internal_user (name, mobile, mobile_hash, email, email_hash, department, title, "
            "source_system, external_id) VALUES (:n, :mobile, :mobile_hash, :email, :email_hash, :d, :t, 'crm', :x) "
            "RETURNING id"),
            {"n": p["name"], **vault.protect("internal_user", mobile=p["mobile"], email=p["email"]),
             "d": p["department"], "t": p["title"], "x": p["crm_id"]}).scalar_one()
    for p in people:
        if p.get("manager_crm_id") in user_ids:
            conn.execute(sa.text("UPDATE internal_user SET manager_id = :m WHERE id = :id"),
                         {"m": user_ids[p["manager_crm_id"]], "id": user_ids[p["crm_id"]]})
    reps = [user_ids[p["crm_id"]] for p in people if p.get("is_sales_rep")]
    customer_ids: list[int] = []
    for c in demo_customers(people, companies):
        stage = rng.choice(("意向客户", "方案/报价"))
        cid = conn.execute(sa.text(
            "INSERT INTO customer (name, normalized_name, credit_code, region, industry, owner_id, credit_limit, "
            "field_sources, assigned_at, stage) VALUES (:n, :nn, :cc, :r, :i, :o, :cl, CAST(:fs AS jsonb), :a, :st) "
            "RETURNING id"),
            {"n": c.name, "nn": normalize_company_name(c.name), "cc": c.credit_code, "r": c.region, "i": c.industry,
             "o": user_ids[c.owner_crm_id], "cl": Decimal(rng.choice((200_000, 500_000, 1_000_000))),
             "fs": '{"name": {"system": "crm"}, "credit_code": {"system": "crm"}}',
             "a": now - dt.timedelta(hours=rng.choice((2, 30, 72))), "st": stage},
        ).scalar_one()
        record_stage_change(conn, "customer", cid, None, stage, at=now, source="demo", actor="demo")
        conn.execute(sa.text(
            "INSERT INTO external_identity (system, object, external_id, canonical_table, canonical_id) "
            "VALUES ('crm', 'customer', :x, 'customer', :c)"), {"x": c.crm_id, "c": cid})
        customer_ids.append(cid)
    for cid in erp_customer_ids or []:
        conn.execute(sa.text("UPDATE customer SET owner_id = COALESCE(owner_id, :o), credit_limit = "
                             "COALESCE(credit_limit, :cl), assigned_at = COALESCE(assigned_at, :a) WHERE id = :id"),
                     {"o": rng.choice(reps), "cl": Decimal(500_000), "a": now - dt.timedelta(days=3), "id": cid})
    targets = customer_ids + list(erp_customer_ids or [])
    for n in range(orders):
        cid = targets[n % len(targets)]
        _insert_order(conn, rng, cid, n, now)
    tasks = 0
    for i, cid in enumerate(targets[:30]):
        owner = conn.execute(sa.text("SELECT owner_id FROM customer WHERE id = :c"), {"c": cid}).scalar_one()
        due = now + dt.timedelta(hours=rng.choice((-30, -2, 1, 3, 20)))
        conn.execute(sa.text(
            "INSERT INTO task (title, description, kind, customer_id, assignee_id, due_at) VALUES "
            "(:t, :d, 'follow_up', :c, :a, :due)"),
            {"t": rng.choice(("电话回访采购负责人", "发送报价单", "确认合同条款", "预约现场演示")),
             "d": "CRM 自动生成的跟进任务", "c": cid, "a": owner, "due": due})
        conn.execute(sa.text(
            "INSERT INTO interaction (customer_id, user_id, kind, occurred_at, summary) VALUES "
            "(:c, :u, :k, :at, :s)"),
            {"c": cid, "u": owner, "k": rng.choice(("call", "visit", "meeting")),
             "at": now - dt.timedelta(days=rng.randint(1, 20)), "s": f"第{i + 1}次沟通：客户关注交期与售后服务"})
        tasks += 1
    leads = demo_funnel_leads(conn, reps, now=now, rng=random.Random(seed + 1)) if reps else 0
    return {"users": len(user_ids), "customers": len(customer_ids), "orders": orders, "tasks": tasks, "leads": leads}


def demo_funnel_leads(conn: Connection, owners: list[int], *, now: dt.datetime, rng: random.Random,
                      count: int = 60) -> int:
    """Leads created over the last 120 days, each walked through the funnel's stages with its
    history (some stop, some are lost, some won), so the funnel page has something to show."""
    for n in range(count):
        at = now - dt.timedelta(days=rng.randint(30, 120), hours=rng.randint(0, 23))
        owner = owners[n % len(owners)]
        lead_id = conn.execute(sa.text(
            "INSERT INTO lead (company_name, normalized_name, region, channel, status, stage, owner_id, "
            "estimated_amount, source_system, external_id, created_at, assigned_at) VALUES (:n, :nn, :r, 'event', "
            "'assigned', :st, :o, :amt, 'demo', :x, :at, :at) RETURNING id"),
            {"n": f"演示线索{n + 1:03d}有限公司", "nn": f"演示线索{n + 1:03d}", "r": rng.choice(("上海", "深圳", "成都")),
             "st": FUNNEL_STAGES[0], "o": owner, "amt": Decimal(rng.choice((50_000, 120_000, 300_000))),
             "x": f"demo-lead-{n + 1:03d}", "at": at}).scalar_one()
        record_stage_change(conn, "lead", lead_id, None, FUNNEL_STAGES[0], at=at, source="demo", actor="demo")
        stage = FUNNEL_STAGES[0]
        for nxt in FUNNEL_STAGES[1:]:
            if rng.random() < 0.35:  # stops here (still in this stage) ...
                break
            at += dt.timedelta(days=rng.randint(2, 25))
            if at >= now:
                break
            target = LOST if rng.random() < 0.12 else nxt
            conn.execute(sa.text("UPDATE lead SET stage = :s WHERE id = :id"), {"s": target, "id": lead_id})
            record_stage_change(conn, "lead", lead_id, stage, target, at=at, source="demo", actor="demo")
            stage = target
            if target in (LOST, FUNNEL_STAGES[-1]):
                break
    return count


def _insert_order(conn: Connection, rng: random.Random, customer_id: int, n: int, now: dt.datetime) -> int:
    lines = []
    for line_no in range(1, rng.randint(1, 3) + 1):
        code, name = rng.choice(PRODUCTS)
        qty = Decimal(rng.choice((1, 2, 5, 10, 20)))
        price = Decimal(rng.choice((980, 2600, 15000, 1200, 450)))
        lines.append((line_no, code, name, qty, price, (qty * price).quantize(Decimal("0.01"))))
    total = sum((amount for *_, amount in lines), Decimal("0"))
    order_id = conn.execute(sa.text(
        "INSERT INTO sales_order (order_number, customer_id, owner_id, order_date, currency, total_amount, status, "
        "approval_state, source_system, external_id) SELECT :num, c.id, c.owner_id, :d, 'CNY', :t, 'submitted', "
        "'pending', 'crm', :num FROM customer c WHERE c.id = :c RETURNING id"),
        {"num": f"SO{now:%Y%m}{n + 1:05d}", "c": customer_id, "d": (now - dt.timedelta(days=n % 20)).date(),
         "t": total}).scalar_one()
    for line_no, code, name, qty, price, amount in lines:
        conn.execute(sa.text(
            "INSERT INTO sales_order_line (order_id, line_no, product_code, product_name, quantity, unit_price, "
            "tax_rate, amount) VALUES (:o, :l, :c, :n, :q, :p, 13, :a)"),
            {"o": order_id, "l": line_no, "c": code, "n": name, "q": qty, "p": price, "a": amount})
    return int(order_id)
