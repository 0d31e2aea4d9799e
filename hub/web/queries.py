"""Read queries of the web face that the 360° profile query does not cover.

(The search box uses :func:`canonical_model.search.search_customers`, shared with the CLI,
through :func:`hub.vault.display.find_customers`, which finds a contact's full mobile too.)

- :func:`task_detail`: one task with its assignee and customer;
- :func:`row_provenance`: external id and fetch time of the orders, receipts and
  receivables the profile lists by source system only, so the page can show where
  every value came from.

All SQL is parameterised; user text only ever reaches Postgres as a bound value.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from canonical_model.search import MAX_ID, clean_query, parse_id
from hub.vault.display import find_customers as search_customers

__all__ = ["MAX_ID", "clean_query", "parse_id", "row_provenance", "search_customers", "task_detail"]

def task_detail(conn: Connection, task_id: int) -> dict[str, Any] | None:
    """One task with assignee, manager and customer names, or None."""
    row = conn.execute(sa.text(
        """
        SELECT t.id, t.title, t.description, t.kind, t.status, t.due_at, t.created_at, t.completed_at,
               t.push_state, t.problems, t.customer_id, c.name AS customer_name,
               a.name AS assignee, a.department AS assignee_department, m.name AS manager
          FROM task t
          JOIN internal_user a ON a.id = t.assignee_id
          LEFT JOIN internal_user m ON m.id = a.manager_id
          LEFT JOIN customer c ON c.id = t.customer_id
         WHERE t.id = :id
        """), {"id": task_id}).first()
    return None if row is None else dict(row._mapping)


@dataclass(frozen=True)
class RowSource:
    """Provenance of one row: system, its id there, when the hub last fetched it."""

    system: str
    external_id: str | None
    fetched_at: dt.datetime | None


@dataclass
class RowProvenance:
    """Provenance of the profile's row lists, keyed the way the profile lists them."""

    orders: dict[tuple[str, str], RowSource] = field(default_factory=dict)  # (source_system, order_number)
    receipts: dict[tuple[str, str], RowSource] = field(default_factory=dict)  # (source_system, bill_number)
    # per currency: the systems its open receivables came from, bill count, last fetch
    receivables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def row_provenance(conn: Connection, customer_id: int) -> RowProvenance:
    """External ids and fetch times for the customer's orders, receipts and open receivables."""
    out = RowProvenance()
    for r in conn.execute(sa.text(
            "SELECT source_system, order_number, external_id, fetched_at FROM sales_order WHERE customer_id = :c"),
            {"c": customer_id}):
        out.orders[(r.source_system, r.order_number)] = RowSource(r.source_system, r.external_id, r.fetched_at)
    for r in conn.execute(sa.text(
            "SELECT source_system, bill_number, external_id, fetched_at FROM receipt WHERE customer_id = :c"),
            {"c": customer_id}):
        out.receipts[(r.source_system, r.bill_number)] = RowSource(r.source_system, r.external_id, r.fetched_at)
    for r in conn.execute(sa.text(
            "SELECT currency, source_system, count(*) AS bills, max(fetched_at) AS fetched_at, "
            "min(bill_number) AS first_bill, max(bill_number) AS last_bill "
            "FROM receivable WHERE customer_id = :c AND open_amount > 0 "
            "GROUP BY currency, source_system ORDER BY currency, source_system"), {"c": customer_id}):
        out.receivables.setdefault(r.currency, []).append(dict(r._mapping))
    return out


def open_receivable_bills(conn: Connection, customer_id: int, as_of: dt.date, *, limit: int = 20) -> list[dict[str, Any]]:
    """The customer's open receivable bills, most overdue first, with days past due."""
    rows = conn.execute(sa.text(
        """
        SELECT bill_number, bill_date, due_date, currency, amount, open_amount, status,
               GREATEST(:d - due_date, 0) AS days_overdue, source_system, external_id, fetched_at
          FROM receivable
         WHERE customer_id = :c AND open_amount > 0
         ORDER BY due_date, bill_number
         LIMIT :limit
        """), {"c": customer_id, "d": as_of, "limit": limit})
    return [dict(r._mapping) for r in rows]
