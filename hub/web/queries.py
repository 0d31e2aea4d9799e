"""Read queries of the web face that the 360° profile query does not cover.

- :func:`search_customers`: every customer matching a search box entry (the profile's
  ``find_customer_id`` answers with one id; a salesperson typing "金隆" wants a list);
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

# Postgres bigint: a larger id cannot exist, and binding it would raise instead of "not found".
MAX_ID = 2**63 - 1


def parse_id(raw: str) -> int | None:
    """A positive bigint from a path segment or search text, else None."""
    raw = raw.strip()
    # a bigint has at most 19 digits; int() of a longer string is a waste, past 4300 digits an error
    if not raw.isascii() or not raw.isdigit() or len(raw) > len(str(MAX_ID)):
        return None
    value = int(raw)
    return value if 0 < value <= MAX_ID else None


def clean_query(raw: str | None) -> str:
    """Search text as Postgres can take it: NUL removed (text values cannot hold it), trimmed."""
    return (raw or "").replace("\x00", "").strip()


def _like_pattern(text: str) -> str:
    # The user's % and _ are literal characters, not wildcards (backslash is LIKE's default escape).
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search_customers(conn: Connection, query: str, *, limit: int = 50) -> list[dict[str, Any]]:
    """Customers matching ``query`` by id, unified social credit code, external id (any
    system) or name fragment; exact matches first, then names, shortest first."""
    query = clean_query(query)
    if not query:
        return []
    as_id = parse_id(query)
    rows = conn.execute(sa.text(
        """
        WITH hits AS (
            SELECT id AS customer_id, 0 AS rank, 'id' AS matched_by, NULL AS matched_value
              FROM customer WHERE id = :id
            UNION ALL
            SELECT id, 1, 'credit_code', credit_code FROM customer WHERE credit_code = upper(:q)
            UNION ALL
            SELECT canonical_id, 2, 'external_id', system || ' ' || external_id
              FROM external_identity
             WHERE canonical_table = 'customer' AND object = 'customer' AND external_id = :q
            UNION ALL
            SELECT id, 3, 'name', NULL FROM customer
             WHERE name ILIKE :pat OR normalized_name ILIKE :pat
        ), best AS (
            SELECT DISTINCT ON (customer_id) customer_id, rank, matched_by, matched_value
              FROM hits ORDER BY customer_id, rank
        )
        SELECT c.id, c.name, c.credit_code, c.region, c.industry, u.name AS owner,
               b.matched_by, b.matched_value
          FROM best b
          JOIN customer c ON c.id = b.customer_id
          LEFT JOIN internal_user u ON u.id = c.owner_id
         ORDER BY b.rank, length(c.name), c.id
         LIMIT :limit
        """), {"id": as_id or 0, "q": query, "pat": _like_pattern(query), "limit": limit})
    return [dict(r._mapping) for r in rows]


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
