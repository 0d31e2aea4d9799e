"""Receivables back into the CRM: overdue amounts become collection tasks (催收) for the owner.

After receivables are synced from the ERP, every customer with an overdue open amount
and an owner gets one open "催收" task naming the amount in each currency and the oldest
due date; the
regular reminder rules then push it to the owner (and, once overdue, the manager). When
the overdue amount changes, the open task's text is updated instead of adding another;
when nothing is overdue any more, the task is closed. Finance sees the same numbers in
the profile.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection


@dataclass
class CollectionCounts:
    """What one evaluation changed."""

    created: int = 0
    updated: int = 0
    closed: int = 0
    overdue_customers: int = 0


def evaluate_collection_tasks(conn: Connection, today: dt.date, *, due_in: dt.timedelta = dt.timedelta(days=1),
                              now: dt.datetime | None = None) -> CollectionCounts:
    """Create, update or close collection tasks from the current receivables.

    One open task per customer, naming every currency it is overdue in (a customer may owe
    CNY and USD; amounts in different currencies are never added up), largest first so
    the title is stable from run to run.
    """
    now = now or dt.datetime.now(dt.UTC)
    counts = CollectionCounts()
    overdue = conn.execute(sa.text(
        """
        SELECT c.id, c.name, c.owner_id, r.currency, sum(r.open_amount) AS overdue, min(r.due_date) AS oldest
        FROM receivable r JOIN customer c ON c.id = r.customer_id
        WHERE r.open_amount > 0 AND r.due_date < :today AND c.owner_id IS NOT NULL
        GROUP BY c.id, c.name, c.owner_id, r.currency
        ORDER BY c.id, sum(r.open_amount) DESC, r.currency
        """), {"today": today}).all()
    by_customer: dict[int, list[Any]] = {}
    for row in overdue:
        by_customer.setdefault(row.id, []).append(row)
    counts.overdue_customers = len(by_customer)
    for customer_id, rows in by_customer.items():
        amounts = "，".join(f"{r.currency} {r.overdue:,.2f}" for r in rows)
        oldest = min(r.oldest for r in rows)
        title = f"催收：{rows[0].name} 逾期 {amounts}"
        description = f"最早到期日 {oldest:%Y-%m-%d}，已逾期 {(today - oldest).days} 天（来自 ERP 应收）"
        existing = conn.execute(sa.text(
            "SELECT id, title, description FROM task WHERE customer_id = :c AND kind = 'collection' "
            "AND status = 'open' ORDER BY id"), {"c": customer_id}).all()
        if not existing:
            conn.execute(sa.text(
                "INSERT INTO task (title, description, kind, customer_id, assignee_id, due_at) "
                "VALUES (:t, :d, 'collection', :c, :a, :due)"),
                {"t": title[:300], "d": description, "c": customer_id, "a": rows[0].owner_id, "due": now + due_in})
            counts.created += 1
            continue
        keep, *extra = existing
        if (keep.title, keep.description) != (title[:300], description):
            conn.execute(sa.text("UPDATE task SET title = :t, description = :d WHERE id = :id"),
                         {"t": title[:300], "d": description, "id": keep.id})
            counts.updated += 1
        if extra:  # left by the per-currency tasks of earlier versions: one task per customer
            conn.execute(sa.text("UPDATE task SET status = 'done', completed_at = now() WHERE id = ANY(:ids)"),
                         {"ids": [t.id for t in extra]})
            counts.closed += len(extra)
    closed = conn.execute(sa.text(
        "UPDATE task SET status = 'done', completed_at = now() WHERE kind = 'collection' AND status = 'open' "
        "AND NOT (customer_id = ANY(:seen)) RETURNING id"), {"seen": list(by_customer)}).all()
    counts.closed += len(closed)
    return counts
