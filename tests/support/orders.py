"""Approved CRM orders waiting in the outbox for Kingdee: the fixture of the outbound tests.

The CRM side is the demo data set (``hub.demo.data``: people from the WeCom sandbox's
directory, CRM companies, orders with lines); the ERP side is a seeded Kingdee sandbox
whose customers were synced in first, so that orders go to ERP customers (found by credit
code) as well as to CRM-only ones (created in the ERP on the way).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from hub.database import Database
from hub.demo.data import load_crm_demo
from hub.registry import connector
from hub.rules.orders import approve_order
from hub.runtime import load_sandbox


def load_crm_orders(db: Database, orders: int, *, erp_customers: int = 20, erp_system: str = "kingdee") -> list[int]:
    """Load the CRM demo with ``orders`` orders, some to the ERP's customers (they must be synced
    already); returns the CRM orders' ids, none approved yet."""
    seed: dict[str, Any] = load_sandbox(connector("wecom")).demo_seed()  # type: ignore[misc]
    with db.begin() as conn:
        erp_ids = conn.execute(sa.text(
            "SELECT canonical_id FROM external_identity WHERE system = :erp AND object = 'customer' "
            "ORDER BY id LIMIT :n"), {"n": erp_customers, "erp": erp_system}).scalars().all()
        load_crm_demo(conn, seed["people"], seed["companies"], now=dt.datetime.now(dt.UTC),
                      erp_customer_ids=list(erp_ids), orders=orders)
        return list(conn.execute(sa.text(
            "SELECT id FROM sales_order WHERE source_system = 'crm' ORDER BY id")).scalars())


def approve_orders(db: Database, order_ids: list[int], *, max_attempts: int = 6, erp_system: str = "kingdee") -> None:
    """Approve CRM orders, each approval enqueueing its ``<erp_system>.sales_order`` push."""
    with db.begin() as conn:
        for order_id in order_ids:
            approve_order(conn, order_id, max_attempts=max_attempts, erp_system=erp_system)


def approve_crm_orders(db: Database, orders: int, *, erp_customers: int = 20, max_attempts: int = 6,
                       erp_system: str = "kingdee") -> list[int]:
    """Load ``orders`` CRM orders (the ERP's customers must be synced already) and approve
    them all, each approval enqueueing its ``<erp_system>.sales_order`` push; returns the order ids."""
    order_ids = load_crm_orders(db, orders, erp_customers=erp_customers, erp_system=erp_system)
    approve_orders(db, order_ids, max_attempts=max_attempts, erp_system=erp_system)
    return order_ids


def erp_bill_counts(state: Any) -> dict[str, int]:
    """How many ``SAL_SaleOrder`` documents the sandbox holds per CRM bill number."""
    counts: dict[str, int] = {}
    for doc in state.table("SAL_SaleOrder").docs.values():
        number = str(doc["FBillNo"])
        if number.startswith("CRM-"):
            counts[number] = counts.get(number, 0) + 1
    return counts
