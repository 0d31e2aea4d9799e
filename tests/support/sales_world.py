"""A sales organisation with a history, for the report pages' tests (``hub.web.reports``).

Manager 米娅 (department 华东销售部) leads alice and bob; carol is in 华南销售部 with no
manager in the hub. ``customers`` customers are spread over the three salespeople and the
pool, each with ERP orders (Kingdee and Yonyou, CNY and some USD), CRM orders (one a draft),
receipts, a signed and a draft contract, interactions, tasks (some done in WeCom, some
reminded), and ``customers`` leads with stage histories through the funnel. Deterministic
for a seed; every date is relative to ``today`` in Asia/Shanghai.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from dataclasses import dataclass
from decimal import Decimal
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from hub.database import Database
from hub.stages import FUNNEL_STAGES, LOST

SHANGHAI = ZoneInfo("Asia/Shanghai")
REGIONS = ("上海", "杭州", "深圳")


@dataclass(frozen=True)
class SalesWorld:
    """The ids the tests need again."""

    mia: int
    alice: int
    bob: int
    carol: int
    today: dt.date


def build_sales_world(db: Database, customers: int = 50, *, seed: int = 7) -> SalesWorld:
    """Insert the world (module doc); returns its people and today."""
    today = dt.datetime.now(SHANGHAI).date()
    with db.begin() as conn:
        def one(sql: str, **params: object) -> int:
            return int(conn.execute(sa.text(sql + " RETURNING id"), params).scalar_one())

        mia = one("INSERT INTO internal_user (name, department, source_system, external_id) "
                  "VALUES ('米娅', '华东销售部', 'crm', 'u-mia')")
        alice = one("INSERT INTO internal_user (name, department, manager_id, wecom_userid, source_system, "
                    "external_id) VALUES ('艾丽丝', '华东销售部', :m, 'alice.sbx', 'crm', 'u-alice')", m=mia)
        bob = one("INSERT INTO internal_user (name, department, manager_id, source_system, external_id) "
                  "VALUES ('鲍勃', '华东销售部', :m, 'crm', 'u-bob')", m=mia)
        carol = one("INSERT INTO internal_user (name, department, source_system, external_id) "
                    "VALUES ('卡萝', '华南销售部', 'crm', 'u-carol')")
    world = SalesWorld(mia, alice, bob, carol, today)
    add_customers(db, world, customers, seed=seed)
    return world


def add_customers(db: Database, world: SalesWorld, customers: int, *, seed: int = 7, first: int = 0) -> None:
    """Add ``customers`` customers (numbered from ``first``) with their orders, receipts,
    contracts, activity, and as many leads with their stage history."""
    rng = random.Random(seed + first)
    today = world.today
    now = dt.datetime.now(dt.UTC)
    with db.begin() as conn:
        def one(sql: str, **params: object) -> int:
            return int(conn.execute(sa.text(sql + " RETURNING id"), params).scalar_one())

        owners: list[int | None] = [world.alice, world.bob, world.carol, None]
        for n in range(first, first + customers):
            owner = owners[n % 4]
            region = REGIONS[n % 3]
            cid = one("INSERT INTO customer (name, normalized_name, region, owner_id) VALUES (:n, :n, :r, :o)",
                      n=f"测试客户{n:04d}有限公司", r=region, o=owner)
            for k in range(rng.randint(0, 4)):
                system = ("kingdee", "yonyou")[k % 2]
                currency = "USD" if rng.random() < 0.2 else "CNY"
                one("INSERT INTO sales_order (order_number, customer_id, owner_id, order_date, currency, "
                    "total_amount, status, source_system, external_id, erp_system, erp_bill_number) VALUES "
                    "(:x, :c, :o, :d, :cur, :a, 'erp', :s, :x, :s, :x)",
                    x=f"SO-{n}-{k}", c=cid, o=owner, d=today - dt.timedelta(days=rng.randint(0, 500)),
                    cur=currency, a=Decimal(rng.randint(1_000, 90_000)), s=system)
            for k, status in enumerate(("submitted", "draft", "cancelled")):
                if rng.random() < 0.5:
                    one("INSERT INTO sales_order (order_number, customer_id, owner_id, order_date, currency, "
                        "total_amount, status, source_system, external_id) VALUES (:x, :c, :o, :d, 'CNY', :a, :st, "
                        "'crm', :x)", x=f"CRM-{n}-{k}", c=cid, o=owner, st=status,
                        d=today - dt.timedelta(days=rng.randint(0, 40)), a=Decimal(rng.randint(500, 20_000)))
            for k in range(rng.randint(0, 3)):
                one("INSERT INTO receipt (customer_id, bill_number, receipt_date, currency, amount, source_system, "
                    "external_id) VALUES (:c, :x, :d, :cur, :a, 'kingdee', :x)", c=cid, x=f"SKD-{n}-{k}",
                    d=today - dt.timedelta(days=rng.randint(0, 450)), cur="USD" if k == 2 else "CNY",
                    a=Decimal(rng.randint(100, 50_000)) + Decimal("0.25"))
            for k, status in enumerate(("signed", "draft")):
                one("INSERT INTO contract (customer_id, owner_id, contract_number, title, currency, amount, status, "
                    "signed_at, source_system, external_id) VALUES (:c, :o, :x, '年度框架合同', 'CNY', :a, :st, :at, "
                    "'crm', :x)", c=cid, o=owner, x=f"HT-{n}-{k}", st=status, a=Decimal(rng.randint(10_000, 99_000)),
                    at=now - dt.timedelta(days=rng.randint(0, 60)) if status == "signed" else None)
            if owner is None:
                continue
            for k in range(rng.randint(0, 3)):
                one("INSERT INTO interaction (customer_id, user_id, kind, occurred_at, summary) VALUES "
                    "(:c, :u, :k, :at, '电话沟通')", c=cid, u=owner, k=("call", "visit", "marketing")[k],
                    at=now - dt.timedelta(days=rng.randint(0, 50)))
            for _ in range(rng.randint(1, 3)):
                due = now - dt.timedelta(days=rng.randint(0, 40))
                done = rng.random() < 0.6
                via = rng.choice(("wecom", "crm", "dingtalk")) if done else None
                sent = rng.random() < 0.5
                push = {"wecom": {f"due:u{owner}": {"state": "sent" if sent else "failed", "at": due.isoformat()}}}
                one("INSERT INTO task (title, customer_id, assignee_id, due_at, status, completed_at, completed_via, "
                    "push_state) VALUES ('跟进', :c, :a, :due, :st, :ca, :via, CAST(:ps AS jsonb))", c=cid, a=owner,
                    due=due, st="done" if done else "open", ca=due + dt.timedelta(hours=3) if done else None,
                    via=via, ps=json.dumps(push))
        build_leads(conn, customers, owners, rng, now, first=first)


def build_leads(conn: sa.Connection, count: int, owners: list[int | None], rng: random.Random,
                now: dt.datetime, *, first: int = 0) -> None:
    """``count`` leads created over the last 80 days, walked through the funnel with their history."""
    for n in range(first, first + count):
        at = now - dt.timedelta(days=rng.randint(0, 80), hours=rng.randint(0, 23))
        owner = owners[n % 4]
        lead_id = int(conn.execute(sa.text(
            "INSERT INTO lead (company_name, normalized_name, region, owner_id, stage, source_system, external_id, "
            "created_at) VALUES (:n, :n, :r, :o, :st, 'crm', :x, :at) RETURNING id"),
            {"n": f"线索{n:04d}", "r": REGIONS[n % 3], "o": owner, "st": FUNNEL_STAGES[0], "x": f"L{n}",
             "at": at}).scalar_one())
        stage: str | None = None
        path = [FUNNEL_STAGES[0]]
        for nxt in FUNNEL_STAGES[1:]:
            if rng.random() < 0.3:
                break
            path.append(LOST if rng.random() < 0.1 else nxt)
            if path[-1] == LOST:
                break
        if n % 11 == 5 and len(path) > 2:  # a lead that skipped a stage
            del path[1]
        for target in path:
            if at > now:  # the rest of its way is still to come
                break
            conn.execute(sa.text(
                "INSERT INTO stage_change (subject_type, subject_id, from_stage, to_stage, changed_at, source, actor) "
                "VALUES ('lead', :id, :b, :a, :at, 'crm', 'test')"), {"id": lead_id, "b": stage, "a": target, "at": at})
            stage = target
            at += dt.timedelta(days=rng.randint(1, 30), hours=rng.randint(0, 23))
        conn.execute(sa.text("UPDATE lead SET stage = :s WHERE id = :id"), {"s": stage, "id": lead_id})
