"""A deterministic receivables ledger for the report tests: customers with credit limits, bills
in two currencies spread over every aging bucket and the last year, receipts against them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import sqlalchemy as sa

from hub.ar_summary import refresh_receivables_summary
from hub.database import Database
from hub.identity import normalize_company_name


def build_ledger(db: Database, customers: int, today: dt.date) -> list[int]:
    """``customers`` customers (every 7th named like a spreadsheet formula, every 5th also
    billed in USD, every 3rd with a small credit limit); returns their ids. The receivables
    report's summary is rebuilt for ``today`` afterwards, as a ledger sync does."""
    ids: list[int] = []
    with db.engine.begin() as conn:
        for n in range(customers):
            name = f"=HYPERLINK(\"x\")测试{n}" if n % 7 == 0 else f"杭州测试{n:04d}贸易有限公司"
            limit = Decimal(500 + n) if n % 3 == 0 else (None if n % 3 == 1 else Decimal(10**7))
            cid = conn.execute(sa.text(
                "INSERT INTO customer (name, normalized_name, credit_limit, currency) VALUES (:n, :nn, :l, 'CNY') "
                "RETURNING id"), {"n": name, "nn": normalize_company_name(name) + str(n), "l": limit}).scalar_one()
            ids.append(int(cid))
            bills = []
            for k in range(6):
                bill_date = today - dt.timedelta(days=(n * 13 + k * 57) % 360)
                due = bill_date + dt.timedelta(days=30)
                amount = Decimal(100 + (n * 37 + k * 11) % 900) + Decimal("0.45")
                open_amount = amount if (n + k) % 4 else Decimal("0.00")
                bills.append({"c": cid, "b": f"AR-{n}-{k}", "bd": bill_date, "dd": due, "cur": "CNY", "a": amount,
                              "o": open_amount, "e": f"ar-{n}-{k}"})
            if n % 5 == 0:
                bills.append({"c": cid, "b": f"AR-{n}-U", "bd": today - dt.timedelta(days=70), "cur": "USD",
                              "dd": today - dt.timedelta(days=40), "a": Decimal("250.00"), "o": Decimal("250.00"),
                              "e": f"ar-{n}-u"})
            conn.execute(sa.text(
                "INSERT INTO receivable (customer_id, bill_number, bill_date, due_date, currency, amount, open_amount, "
                "source_system, external_id) VALUES (:c, :b, :bd, :dd, :cur, :a, :o, 'kingdee', :e)"), bills)
            conn.execute(sa.text(
                "INSERT INTO receipt (customer_id, bill_number, receipt_date, currency, amount, source_system, "
                "external_id) VALUES (:c, :b, :d, 'CNY', :a, 'kingdee', :e)"),
                {"c": cid, "b": f"RC-{n}", "d": today - dt.timedelta(days=(n * 29) % 300), "a": Decimal(50 + n % 40),
                 "e": f"rc-{n}"})
        refresh_receivables_summary(conn, today)
    return ids
