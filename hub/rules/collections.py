"""Receivables back into the CRM: overdue amounts become collection tasks (催收) for the owner.

After receivables are synced from the ERP, every customer with an overdue open amount
gets one open "催收" task naming the amount in each currency and the oldest due date, for
its owner; the regular reminder rules then push it to the owner (and, once overdue, the
manager). When the overdue amount changes, the open task's text is updated instead of
adding another; when nothing is overdue any more, the task is closed. Finance sees the same
numbers in the profile.

A customer without an owner is in the public pool (``hub.rules.pool``): its task goes to
one of the configured finance recipients (``HUB_COLLECTIONS__FINANCE_RECIPIENTS``, spread
by customer), and moves to the owner once someone owns it. A customer no one can be given
(no recipient configured, or none of them an active user) is never skipped silently: it is
counted (``unrouted``), logged, and written to the audit with a sample of the customers.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hub.audit import write_audit
from hub.rules.people import describe_ref_problem, resolve_active_user_ref
from hub.rules.pool import refresh_pool

log = logging.getLogger(__name__)


@dataclass
class CollectionCounts:
    """What one evaluation changed."""

    created: int = 0
    updated: int = 0
    closed: int = 0
    overdue_customers: int = 0
    to_owner: int = 0  # overdue customers whose task is their owner's
    to_finance: int = 0  # ownerless (pool) customers whose task went to a finance recipient
    unrouted: int = 0  # ownerless customers nobody could be given: reported, not skipped silently
    reassigned: int = 0  # open tasks moved (the customer got an owner, or left one)
    unrouted_customer_ids: list[int] = field(default_factory=list)


def finance_assignees(conn: Connection, refs: Sequence[str]) -> tuple[list[int], list[str]]:
    """The active users ``refs`` name (order kept, no repeats), and why the others do not count."""
    users: list[int] = []
    problems: list[str] = []
    for ref in refs:
        user_id = resolve_active_user_ref(conn, ref)
        if user_id is None:
            problems.append(describe_ref_problem(conn, ref))
        elif user_id not in users:
            users.append(user_id)
    return users, problems


def evaluate_collection_tasks(conn: Connection, today: dt.date, *, due_in: dt.timedelta = dt.timedelta(days=1),
                              now: dt.datetime | None = None,
                              finance_recipients: Sequence[str] = ()) -> CollectionCounts:
    """Create, update or close collection tasks from the current receivables.

    One open task per customer, naming every currency it is overdue in (a customer may owe
    CNY and USD; amounts in different currencies are never added up), largest first so
    the title is stable from run to run. Ownerless customers' tasks go to the finance
    recipients (user refs, ``hub.rules.people``); see the module doc.
    """
    now = now or dt.datetime.now(dt.UTC)
    counts = CollectionCounts()
    refresh_pool(conn, now)
    finance, problems = finance_assignees(conn, finance_recipients)
    overdue = conn.execute(sa.text(
        """
        SELECT c.id, c.name, c.owner_id, r.currency, sum(r.open_amount) AS overdue, min(r.due_date) AS oldest
        FROM receivable r JOIN customer c ON c.id = r.customer_id
        WHERE r.open_amount > 0 AND r.due_date < :today
        GROUP BY c.id, c.name, c.owner_id, r.currency
        ORDER BY c.id, sum(r.open_amount) DESC, r.currency
        """), {"today": today}).all()
    by_customer: dict[int, list[Any]] = {}
    for row in overdue:
        by_customer.setdefault(row.id, []).append(row)
    counts.overdue_customers = len(by_customer)
    routed: list[int] = []
    for customer_id, rows in by_customer.items():
        assignee = rows[0].owner_id
        if assignee is not None:
            counts.to_owner += 1
        elif finance:
            assignee = finance[customer_id % len(finance)]
            counts.to_finance += 1
        else:
            counts.unrouted += 1
            counts.unrouted_customer_ids.append(customer_id)
            continue
        routed.append(customer_id)
        amounts = "，".join(f"{r.currency} {r.overdue:,.2f}" for r in rows)
        oldest = min(r.oldest for r in rows)
        title = f"催收：{rows[0].name} 逾期 {amounts}"
        description = f"最早到期日 {oldest:%Y-%m-%d}，已逾期 {(today - oldest).days} 天（来自 ERP 应收）"
        existing = conn.execute(sa.text(
            "SELECT id, title, description, assignee_id FROM task WHERE customer_id = :c AND kind = 'collection' "
            "AND status = 'open' ORDER BY id"), {"c": customer_id}).all()
        if not existing:
            conn.execute(sa.text(
                "INSERT INTO task (title, description, kind, customer_id, assignee_id, due_at) "
                "VALUES (:t, :d, 'collection', :c, :a, :due)"),
                {"t": title[:300], "d": description, "c": customer_id, "a": assignee, "due": now + due_in})
            counts.created += 1
            continue
        keep, *extra = existing
        if keep.assignee_id != assignee:
            conn.execute(sa.text("UPDATE task SET assignee_id = :a WHERE id = :id"), {"a": assignee, "id": keep.id})
            counts.reassigned += 1
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
        "AND NOT (customer_id = ANY(:seen)) RETURNING id"), {"seen": routed + counts.unrouted_customer_ids}).all()
    counts.closed += len(closed)
    if counts.unrouted:
        _report_unrouted(conn, counts, problems)
    return counts


def _report_unrouted(conn: Connection, counts: CollectionCounts, problems: list[str]) -> None:
    """Say, in the log and the audit, which overdue customers got no 催收 task and why."""
    why = "; ".join(problems) if problems else "HUB_COLLECTIONS__FINANCE_RECIPIENTS is not set"
    sample = counts.unrouted_customer_ids[:20]
    log.warning("collections: %d overdue customer(s) have no owner and no finance recipient to chase them (%s); "
                "customers %s", counts.unrouted, why, sample)
    write_audit(conn, actor="rule:collections", system="hub", operation="collections:unrouted", outcome="skipped",
                key="collections", error=f"{counts.unrouted} overdue customer(s) without owner or finance recipient: "
                                        f"{why}"[:1000],
                detail={"unrouted": counts.unrouted, "customer_ids": sample})
