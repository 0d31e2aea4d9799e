"""Receivables back into the CRM: overdue amounts become collection tasks (催收) for the owner.

After receivables are synced from the ERP, every customer with an overdue open amount
and an owner gets one open "催收" task naming the amount and the oldest due date; the
regular reminder rules then push it to the owner (and, once overdue, the manager). When
the overdue amount changes, the open task's text is updated instead of adding another;
when nothing is overdue any more, the task is closed. Finance sees the same numbers in
the profile.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

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
    """Create, update or close collection tasks from the current receivables."""
    now = now or dt.datetime.now(dt.UTC)
    counts = CollectionCounts()
    overdue = conn.execute(sa.text(
        """
        SELECT c.id, c.name, c.owner_id, r.currency, sum(r.open_amount) AS overdue, min(r.due_date) AS oldest
        FROM receivable r JOIN customer c ON c.id = r.customer_id
        WHERE r.open_amount > 0 AND r.due_date < :today AND c.owner_id IS NOT NULL
        GROUP BY c.id, c.name, c.owner_id, r.currency
        """), {"today": today}).all()
    counts.overdue_customers = len({row.id for row in overdue})
    seen: set[int] = set()
    for row in overdue:
        seen.add(row.id)
        title = f"催收：{row.name} 逾期 {row.currency} {row.overdue:,.2f}"
        description = f"最早到期日 {row.oldest:%Y-%m-%d}，已逾期 {(today - row.oldest).days} 天（来自 ERP 应收）"
        existing = conn.execute(sa.text(
            "SELECT id, title FROM task WHERE customer_id = :c AND kind = 'collection' AND status = 'open'"),
            {"c": row.id}).first()
        if existing is None:
            conn.execute(sa.text(
                "INSERT INTO task (title, description, kind, customer_id, assignee_id, due_at) "
                "VALUES (:t, :d, 'collection', :c, :a, :due)"),
                {"t": title, "d": description, "c": row.id, "a": row.owner_id, "due": now + due_in})
            counts.created += 1
        elif existing.title != title:
            conn.execute(sa.text("UPDATE task SET title = :t, description = :d WHERE id = :id"),
                         {"t": title, "d": description, "id": existing.id})
            counts.updated += 1
    closed = conn.execute(sa.text(
        "UPDATE task SET status = 'done', completed_at = now() WHERE kind = 'collection' AND status = 'open' "
        "AND NOT (customer_id = ANY(:seen)) RETURNING id"), {"seen": list(seen)}).all()
    counts.closed = len(closed)
    return counts
