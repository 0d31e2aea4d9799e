"""Which subjects a trigger finds in the data at ``now``: SQL per trigger, no event bus.

An **event** is a state the data shows, found since the rule became active (``since``):

=================== =========================================== ============================
event               subject and when                            window (one firing each)
=================== =========================================== ============================
lead_created        a lead, ``created_at``                      ``created``
lead_assigned       an assigned lead, ``assigned_at``           ``assigned:<assigned_at>``
order_submitted     a CRM order pending approval                ``submitted#<n>``: n earlier
                                                                rejections/withdrawals
order_approved      a CRM order approved, ``approved_at``       ``approved``
order_rejected      a rejected order, its approval's decision   ``rejected:<approval id>``
contract_signed     a signed contract, ``signed_at``            ``signed:<signed_at>``
receivable_changed  a receivable, ``fetched_at`` (a change)     ``v:<fetched_at>:<hash>``
task_done           a done task, ``completed_at``               ``done:<completed_at>``
=================== =========================================== ============================

A **time** trigger is a deadline crossed; its window is the deadline, so a subject fires
once per deadline (a task whose due time moves fires again for the new one). The deadline
is computed in Python with the business calendar (:mod:`.calendar`); the SQL keeps only
rows that can have crossed it (business days are never fewer calendar days).

Subjects a rule fired for already (``rule_firing``) are left out here, so a dry run shows
what would fire now; the firing row's unique key is what makes it exactly once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hub.rules.automation.calendar import BusinessCalendar
from hub.rules.automation.model import EventTrigger, Rule, TimeTrigger


@dataclass(frozen=True)
class Subject:
    """One row a rule may fire for, with what conditions and actions need to know."""

    type: str  # lead/customer/sales_order/contract/receivable/task
    id: int
    window: str
    at: dt.datetime  # when the event happened, or the deadline crossed
    name: str
    customer_id: int | None = None
    owner_id: int | None = None
    region: str | None = None
    industry: str | None = None
    amount: Decimal | None = None
    currency: str | None = None
    stage: str | None = None
    reason: str | None = None  # a rejection's comment

    @property
    def ref(self) -> str:
        """``lead:42``: how logs, webhooks and the plan name it."""
        return f"{self.type}:{self.id}"


def _stamp(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat()


_CUSTOMER = "c.region, c.industry, c.stage"
_EVENTS: dict[str, str] = {
    "lead_created": """
        SELECT l.id, 'created' AS tag, l.created_at AS at, l.company_name AS name, l.customer_id, l.owner_id,
               l.region, l.industry, l.estimated_amount AS amount, NULL AS currency, l.stage, NULL AS reason
        FROM lead l WHERE l.created_at >= :since AND l.status <> 'invalid'""",
    "lead_assigned": """
        SELECT l.id, 'assigned' AS tag, l.assigned_at AS at, l.company_name AS name, l.customer_id, l.owner_id,
               l.region, l.industry, l.estimated_amount AS amount, NULL AS currency, l.stage, NULL AS reason
        FROM lead l WHERE l.status = 'assigned' AND l.owner_id IS NOT NULL AND l.assigned_at >= :since""",
    "order_submitted": f"""
        SELECT * FROM (
          SELECT o.id, 'submitted#' || (SELECT count(*) FROM approval a WHERE a.subject_type = 'sales_order'
                 AND a.subject_id = o.id AND a.state IN ('rejected', 'withdrawn')) AS tag,
                 GREATEST(o.fetched_at, (SELECT max(a.decided_at) FROM approval a WHERE a.subject_type =
                 'sales_order' AND a.subject_id = o.id)) AS at,
                 c.name || ' ' || o.order_number AS name, o.customer_id, COALESCE(o.owner_id, c.owner_id) AS owner_id,
                 {_CUSTOMER}, o.total_amount AS amount, o.currency, NULL AS reason
          FROM sales_order o JOIN customer c ON c.id = o.customer_id
          WHERE o.source_system = 'crm' AND o.approval_state = 'pending') s
        WHERE s.at >= :since""",
    "order_approved": f"""
        SELECT o.id, 'approved' AS tag, COALESCE(o.approved_at, o.fetched_at) AS at,
               c.name || ' ' || o.order_number AS name, o.customer_id, COALESCE(o.owner_id, c.owner_id) AS owner_id,
               {_CUSTOMER}, o.total_amount AS amount, o.currency, NULL AS reason
        FROM sales_order o JOIN customer c ON c.id = o.customer_id
        WHERE o.source_system = 'crm' AND o.approval_state = 'approved'
          AND COALESCE(o.approved_at, o.fetched_at) >= :since""",
    "order_rejected": f"""
        SELECT * FROM (
          SELECT o.id, 'rejected:' || COALESCE('approval-' || a.id, 'order') AS tag,
                 COALESCE(a.decided_at, a.submitted_at, o.fetched_at) AS at,
                 c.name || ' ' || o.order_number AS name, o.customer_id, COALESCE(o.owner_id, c.owner_id) AS owner_id,
                 {_CUSTOMER}, o.total_amount AS amount, o.currency, a.comment AS reason
          FROM sales_order o JOIN customer c ON c.id = o.customer_id
          LEFT JOIN LATERAL (SELECT * FROM approval a WHERE a.subject_type = 'sales_order' AND a.subject_id = o.id
                             AND a.state = 'rejected' ORDER BY a.decided_at DESC NULLS LAST, a.id DESC LIMIT 1) a
                 ON true
          WHERE o.approval_state = 'rejected') s
        WHERE s.at >= :since""",
    "contract_signed": f"""
        SELECT k.id, 'signed' AS tag, k.signed_at AS at, c.name || ' ' || k.contract_number AS name, k.customer_id,
               COALESCE(k.owner_id, c.owner_id) AS owner_id, {_CUSTOMER}, k.amount, k.currency, NULL AS reason
        FROM contract k JOIN customer c ON c.id = k.customer_id
        WHERE k.status = 'signed' AND k.signed_at IS NOT NULL AND k.signed_at >= :since""",
    "receivable_changed": f"""
        SELECT r.id, 'v' AS tag, r.fetched_at AS at, c.name || ' ' || r.bill_number AS name, r.customer_id,
               c.owner_id, {_CUSTOMER}, r.open_amount AS amount, r.currency, COALESCE(r.content_hash, '') AS reason
        FROM receivable r JOIN customer c ON c.id = r.customer_id WHERE r.fetched_at >= :since""",
    "task_done": f"""
        SELECT t.id, 'done' AS tag, t.completed_at AS at, t.title AS name, t.customer_id, t.assignee_id AS owner_id,
               {_CUSTOMER}, NULL AS amount, NULL AS currency, NULL AS reason
        FROM task t LEFT JOIN customer c ON c.id = t.customer_id
        WHERE t.status = 'done' AND t.completed_at IS NOT NULL AND t.completed_at >= :since""",
}
_STAMPED = ("lead_assigned", "contract_signed", "task_done")

_TIMES: dict[tuple[str, str, str], str] = {
    ("no_followup", "lead", "assignment"): """
        SELECT l.id, l.assigned_at AS base, l.company_name AS name, l.customer_id, l.owner_id, l.region,
               l.industry, l.estimated_amount AS amount, NULL AS currency, l.stage
        FROM lead l WHERE l.status = 'assigned' AND l.owner_id IS NOT NULL AND l.assigned_at <= :cutoff
          AND (l.last_contacted_at IS NULL OR l.last_contacted_at < l.assigned_at)""",
    ("no_followup", "lead", "last_followup"): """
        SELECT * FROM (
          SELECT l.id, GREATEST(l.assigned_at, l.last_contacted_at) AS base, l.company_name AS name, l.customer_id,
                 l.owner_id, l.region, l.industry, l.estimated_amount AS amount, NULL AS currency, l.stage
          FROM lead l WHERE l.status = 'assigned' AND l.owner_id IS NOT NULL AND l.assigned_at IS NOT NULL) s
        WHERE s.base <= :cutoff""",
    ("no_followup", "customer", "assignment"): """
        SELECT c.id, c.assigned_at AS base, c.name, c.id AS customer_id, c.owner_id, c.region, c.industry,
               NULL AS amount, c.currency, c.stage
        FROM customer c WHERE c.owner_id IS NOT NULL AND c.assigned_at IS NOT NULL AND c.assigned_at <= :cutoff
          AND NOT EXISTS (SELECT 1 FROM interaction i WHERE i.customer_id = c.id AND i.occurred_at >= c.assigned_at)""",
    ("no_followup", "customer", "last_followup"): """
        SELECT * FROM (
          SELECT c.id, GREATEST(c.assigned_at, c.last_followup_at, (SELECT max(i.occurred_at) FROM interaction i
                 WHERE i.customer_id = c.id)) AS base, c.name, c.id AS customer_id, c.owner_id, c.region,
                 c.industry, NULL AS amount, c.currency, c.stage
          FROM customer c WHERE c.owner_id IS NOT NULL AND c.assigned_at IS NOT NULL) s
        WHERE s.base <= :cutoff""",
    ("receivable_overdue", "receivable", "assignment"): f"""
        SELECT r.id, r.due_date AS base, c.name || ' ' || r.bill_number AS name, r.customer_id, c.owner_id,
               {_CUSTOMER}, r.open_amount AS amount, r.currency
        FROM receivable r JOIN customer c ON c.id = r.customer_id
        WHERE r.open_amount > 0 AND r.due_date <= :cutoff_date""",
    ("task_due", "task", "assignment"): f"""
        SELECT t.id, t.due_at AS base, t.title AS name, t.customer_id, t.assignee_id AS owner_id, {_CUSTOMER},
               NULL AS amount, NULL AS currency
        FROM task t LEFT JOIN customer c ON c.id = t.customer_id WHERE t.status = 'open' AND t.due_at <= :horizon""",
    ("task_overdue", "task", "assignment"): f"""
        SELECT t.id, t.due_at AS base, t.title AS name, t.customer_id, t.assignee_id AS owner_id, {_CUSTOMER},
               NULL AS amount, NULL AS currency
        FROM task t LEFT JOIN customer c ON c.id = t.customer_id WHERE t.status = 'open' AND t.due_at <= :cutoff""",
}


def _fired(conn: Connection, rule: Rule) -> set[tuple[int, str]]:
    return {(r.subject_id, r.window_key) for r in conn.execute(sa.text(
        "SELECT subject_id, window_key FROM rule_firing WHERE rule = :r AND subject_type = :t"),
        {"r": rule.name, "t": rule.subject})}


def _common(row: Any) -> dict[str, Any]:
    return {"name": row.name or "", "customer_id": row.customer_id, "owner_id": row.owner_id, "region": row.region,
            "industry": row.industry, "amount": row.amount, "currency": row.currency, "stage": row.stage}


def _events(conn: Connection, trigger: EventTrigger, since: dt.datetime) -> list[Subject]:
    found = []
    for row in conn.execute(sa.text(_EVENTS[trigger.event]), {"since": since}):
        if trigger.event in _STAMPED:
            window = f"{row.tag}:{_stamp(row.at)}"
        elif trigger.event == "receivable_changed":
            window = f"v:{_stamp(row.at)}:{row.reason[:16]}"
        else:
            window = row.tag
        reason = None if trigger.event == "receivable_changed" else row.reason
        found.append(Subject(trigger.subject, row.id, window, row.at, **_common(row), reason=reason))
    return found


def _deadline(trigger: TimeTrigger, base: Any, calendar: BusinessCalendar) -> dt.datetime:
    offset = trigger.offset
    if trigger.time == "receivable_overdue":  # overdue N days: from the start of the N-th day after the due date
        days = int(offset.amount)
        day = calendar.add_business_days(base, days) if offset.business else base + dt.timedelta(days=days)
        return calendar.start_of(day)
    return calendar.shift(base, offset, backwards=trigger.time == "task_due")


def _times(conn: Connection, trigger: TimeTrigger, now: dt.datetime, since: dt.datetime,
           calendar: BusinessCalendar) -> list[Subject]:
    offset = trigger.offset
    reach = offset.clock() * 3 + dt.timedelta(days=30) if offset.business else offset.clock()
    params = {"cutoff": now - offset.clock(), "cutoff_date": calendar.today(now) - dt.timedelta(days=offset.clock().days),
              "horizon": now + reach}
    since_key = trigger.since if trigger.time == "no_followup" else "assignment"
    assert trigger.subject is not None  # the model fills it
    found = []
    for row in conn.execute(sa.text(_TIMES[(trigger.time, trigger.subject, since_key)]), params):
        if row.base is None:
            continue
        deadline = _deadline(trigger, row.base, calendar)
        if deadline <= now and deadline >= since:
            found.append(Subject(trigger.subject, row.id, f"{trigger.time}:{_stamp(deadline)}", deadline,
                                 **_common(row)))
    return found


def find_subjects(conn: Connection, rule: Rule, now: dt.datetime, since: dt.datetime,
                  calendar: BusinessCalendar) -> list[Subject]:
    """The subjects ``rule``'s trigger finds at ``now`` (events and deadlines not before
    ``since``), less those it fired for already, oldest first."""
    if isinstance(rule.trigger, EventTrigger):
        found = [s for s in _events(conn, rule.trigger, since) if s.at <= now]
    else:
        found = _times(conn, rule.trigger, now, since, calendar)
    fired = _fired(conn, rule)
    return sorted((s for s in found if (s.id, s.window) not in fired), key=lambda s: (s.at, s.id))


__all__ = ["Subject", "find_subjects"]
