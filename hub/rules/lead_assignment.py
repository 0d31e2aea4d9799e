"""Leads out: the assignment rule table, round-robin inside a team, the public pool.

:func:`match_rule` (pure) picks the first rule of ``HUB_LEADS__RULES`` whose conditions a lead
meets: region and industry (the lead's text contains one of the rule's values), estimated
amount in ``[min_amount, max_amount)``. :func:`assign_lead` then gives the lead to the rule's
owner, or to the next active member of its team (the people reporting to a manager) or
department: the rotation's position is one ``lead_rotation`` row per team, incremented with
``INSERT … ON CONFLICT DO UPDATE … RETURNING``, which holds that row's lock until the
assigning transaction commits, so concurrent assigners each get their own turn and nobody
is skipped or given two in a row. No matching rule, or a rule whose people are all gone:
the lead goes to the public pool (``pool_since``), and the answer says why.

Every assignment records the rule (``lead.assigned_rule``: a rule's name, ``customer_owner``,
``chat_follow_user``, ``claimed`` or ``pool``), is audited, creates a "first follow-up" task
for the owner due ``first_followup_days`` later (kind ``lead_followup``, which the reminder
rules push to the owner's chat platform at once), and announces the event to the CRM
(:func:`_lead_assigned`). :func:`return_stale_leads` gives leads nobody followed up within
``return_to_pool_days`` back to the pool; a follow-up (``lead.last_contacted_at`` after the
assignment) stops that clock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hub.audit import write_audit
from hub.rules import webhooks
from hub.rules.people import describe_ref_problem, resolve_active_user_ref
from hub.settings import LeadRule, LeadSettings

POOL = "pool"


@dataclass(frozen=True)
class Assignment:
    """Where a lead went: an owner (by ``rule``), or the pool (``owner_id`` None, ``problem`` why)."""

    owner_id: int | None
    rule: str
    task_id: int | None = None
    problem: str | None = None


def _contains(text: str | None, wanted: Sequence[str]) -> bool:
    if not wanted:
        return True
    return bool(text) and any(w.strip() and w.strip() in str(text) for w in wanted)


def match_rule(rules: Sequence[LeadRule], region: str | None, industry: str | None,
               amount: Decimal | None) -> LeadRule | None:
    """The first rule whose conditions the lead meets (module doc), or None."""
    for rule in rules:
        if not (_contains(region, rule.regions) and _contains(industry, rule.industries)):
            continue
        if rule.min_amount is not None and (amount is None or amount < rule.min_amount):
            continue
        if rule.max_amount is not None and (amount is None or amount >= rule.max_amount):
            continue
        return rule
    return None


def team_members(conn: Connection, rule: LeadRule) -> tuple[str, list[int], str | None]:
    """The rotation key and active members (by id) of a team or department rule, or why none."""
    if rule.department:
        members = conn.execute(sa.text(
            "SELECT id FROM internal_user WHERE department = :d AND active ORDER BY id"),
            {"d": rule.department}).scalars().all()
        return f"department:{rule.department}", list(members), None if members else (
            f"department {rule.department!r} has no active member")
    assert rule.team is not None
    manager = resolve_active_user_ref(conn, rule.team)
    if manager is None:
        return f"team:{rule.team}", [], describe_ref_problem(conn, rule.team)
    members = conn.execute(sa.text(
        """
        WITH RECURSIVE team(id) AS (
            SELECT id FROM internal_user WHERE manager_id = :m
            UNION SELECT u.id FROM internal_user u JOIN team t ON u.manager_id = t.id
        )
        SELECT u.id FROM internal_user u JOIN team t ON t.id = u.id WHERE u.active AND u.id <> :m ORDER BY u.id
        """), {"m": manager}).scalars().all()
    return f"team:{rule.team}", list(members) or [manager], None


def next_member(conn: Connection, team: str, members: Sequence[int]) -> int:
    """The member whose turn it is; the rotation row stays locked until the caller commits."""
    position = conn.execute(sa.text(
        "INSERT INTO lead_rotation (team, position) VALUES (:t, 1) ON CONFLICT (team) DO UPDATE "
        "SET position = lead_rotation.position + 1, updated_at = now() RETURNING position"), {"t": team}).scalar_one()
    return members[(int(position) - 1) % len(members)]


def assign_lead(conn: Connection, lead_id: int, settings: LeadSettings, *, actor: str,
                now: dt.datetime | None = None) -> Assignment:
    """Assign lead ``lead_id`` by the rule table (module doc)."""
    lead = conn.execute(sa.text("SELECT region, industry, estimated_amount FROM lead WHERE id = :id FOR UPDATE"),
                        {"id": lead_id}).one()
    rule = match_rule(settings.rules, lead.region, lead.industry, lead.estimated_amount)
    if rule is None:
        return assign_to(conn, lead_id, None, POOL, settings, actor=actor, now=now,
                         problem="no assignment rule matches")
    if rule.owner:
        owner = resolve_active_user_ref(conn, rule.owner)
        problem = None if owner is not None else describe_ref_problem(conn, rule.owner)
        return assign_to(conn, lead_id, owner, rule.name, settings, actor=actor, now=now, problem=problem)
    team, members, problem = team_members(conn, rule)
    owner = next_member(conn, team, members) if members else None
    return assign_to(conn, lead_id, owner, rule.name, settings, actor=actor, now=now, problem=problem, team=team)


def assign_to(conn: Connection, lead_id: int, owner_id: int | None, rule: str, settings: LeadSettings, *,
              actor: str, now: dt.datetime | None = None, problem: str | None = None,
              team: str | None = None) -> Assignment:
    """Give the lead to ``owner_id`` (None: the pool), recording ``rule``; task, audit, event."""
    now = now or dt.datetime.now(dt.UTC)
    if owner_id is None:
        conn.execute(sa.text(
            "UPDATE lead SET owner_id = NULL, status = 'pool', assigned_rule = :r, pool_since = COALESCE(pool_since, "
            ":now) WHERE id = :id"), {"r": rule[:100], "now": now, "id": lead_id})
        write_audit(conn, actor=actor, system="hub", operation="lead:to_pool", outcome="ok", key=f"lead:{lead_id}",
                    detail={"rule": rule, "problem": problem})
        _lead_assigned(conn, lead_id, None, rule)
        return Assignment(None, rule, None, problem)
    conn.execute(sa.text(
        "UPDATE lead SET owner_id = :o, status = 'assigned', assigned_rule = :r, assigned_at = :now, pool_since = NULL "
        "WHERE id = :id"), {"o": owner_id, "r": rule[:100], "now": now, "id": lead_id})
    company = conn.execute(sa.text("SELECT company_name FROM lead WHERE id = :id"), {"id": lead_id}).scalar_one()
    task_id = int(conn.execute(sa.text(
        "INSERT INTO task (title, description, kind, lead_id, assignee_id, due_at) VALUES (:t, :d, 'lead_followup', "
        ":l, :a, :due) RETURNING id"),
        {"t": f"首次跟进线索：{company}"[:300], "d": f"新线索（分配规则：{rule}），请在 "
                                                   f"{settings.first_followup_days:g} 天内首次跟进",
         "l": lead_id, "a": owner_id, "due": now + dt.timedelta(days=settings.first_followup_days)}).scalar_one())
    write_audit(conn, actor=actor, system="hub", operation="lead:assigned", outcome="ok", key=f"lead:{lead_id}",
                detail={"rule": rule, "owner_id": owner_id, "team": team, "task_id": task_id})
    _lead_assigned(conn, lead_id, owner_id, rule)
    return Assignment(owner_id, rule, task_id, problem)


def _lead_assigned(conn: Connection, lead_id: int, owner_id: int | None, rule: str) -> None:
    """The ``lead.assigned`` webhook event (to an owner, or to the pool), committed with the assignment."""
    customer_id = conn.execute(sa.text("SELECT customer_id FROM lead WHERE id = :id"), {"id": lead_id}).scalar()
    webhooks.emit(conn, "lead.assigned", customer_id=customer_id, subject=f"lead:{lead_id}",
                  data={"lead_id": lead_id, "owner_user_id": owner_id,
                        "status": "assigned" if owner_id is not None else "pool", "rule": rule})


def close_followups(conn: Connection, lead_id: int, status: str) -> int:
    """Close the lead's open first follow-up tasks (``done`` after a follow-up, ``cancelled``
    when the lead leaves its owner); returns how many."""
    return int(conn.execute(sa.text(
        "UPDATE task SET status = :s, completed_at = now(), completed_via = 'crm' WHERE lead_id = :l "
        "AND kind = 'lead_followup' AND status = 'open'"), {"s": status, "l": lead_id}).rowcount or 0)


class LeadRefusal(Exception):
    """A lead cannot be claimed or changed as asked (the message says why; ``status`` is HTTP's)."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


def claim_lead(conn: Connection, lead_id: int, user_id: int, settings: LeadSettings, *, actor: str,
               now: dt.datetime | None = None) -> Assignment:
    """A salesperson takes a pool lead (row-locked: of two claims, one wins, the other is 409)."""
    row = conn.execute(sa.text("SELECT owner_id, status FROM lead WHERE id = :id FOR UPDATE"), {"id": lead_id}).first()
    if row is None:
        raise LeadRefusal(f"no lead {lead_id}", status=404)
    if row.owner_id is not None or row.status not in ("new", "pool"):
        raise LeadRefusal(f"lead {lead_id} is not in the public pool (status {row.status})", status=409)
    return assign_to(conn, lead_id, user_id, "claimed", settings, actor=actor, now=now)


def mark_invalid(conn: Connection, lead_id: int, reason: str, *, actor: str) -> None:
    """Mark a lead invalid (spam, duplicate, no need) with the reason; its follow-up is cancelled."""
    changed = conn.execute(sa.text(
        "UPDATE lead SET status = 'invalid', invalid_reason = :r, pool_since = NULL WHERE id = :id RETURNING id"),
        {"r": reason, "id": lead_id}).first()
    if changed is None:
        raise LeadRefusal(f"no lead {lead_id}", status=404)
    close_followups(conn, lead_id, "cancelled")
    write_audit(conn, actor=actor, system="hub", operation="lead:invalid", outcome="ok", key=f"lead:{lead_id}",
                detail={"reason": reason[:500]})


@dataclass
class ReturnCounts:
    """What one pass of :func:`return_stale_leads` did."""

    returned: int = 0
    tasks_cancelled: int = 0


def return_stale_leads(conn: Connection, settings: LeadSettings, *, now: dt.datetime | None = None,
                       actor: str = "rule:leads") -> ReturnCounts:
    """Leads assigned over ``return_to_pool_days`` ago with no follow-up since go back to the pool."""
    now = now or dt.datetime.now(dt.UTC)
    cutoff = now - dt.timedelta(days=settings.return_to_pool_days)
    stale = conn.execute(sa.text(
        "SELECT id, owner_id FROM lead WHERE status = 'assigned' AND assigned_at < :cutoff "
        "AND (last_contacted_at IS NULL OR last_contacted_at < assigned_at) ORDER BY id FOR UPDATE SKIP LOCKED"),
        {"cutoff": cutoff}).all()
    counts = ReturnCounts()
    for lead in stale:
        counts.tasks_cancelled += return_to_pool(conn, lead.id, lead.owner_id, now=now, actor=actor,
                                                 detail={"days": settings.return_to_pool_days})
        counts.returned += 1
    return counts


def return_to_pool(conn: Connection, lead_id: int, previous_owner_id: int | None, *, now: dt.datetime, actor: str,
                   detail: dict[str, object]) -> int:
    """Give one lead back to the public pool (audited with ``detail``; the caller holds its row
    lock); returns how many open first follow-up tasks were cancelled."""
    conn.execute(sa.text("UPDATE lead SET owner_id = NULL, status = 'pool', pool_since = :now WHERE id = :id"),
                 {"now": now, "id": lead_id})
    cancelled = close_followups(conn, lead_id, "cancelled")
    write_audit(conn, actor=actor, system="hub", operation="lead:returned_to_pool", outcome="ok",
                key=f"lead:{lead_id}", detail={"previous_owner_id": previous_owner_id, **detail})
    return cancelled


__all__ = ["POOL", "Assignment", "LeadRefusal", "ReturnCounts", "assign_lead", "assign_to", "claim_lead",
           "close_followups", "mark_invalid", "match_rule", "next_member", "return_stale_leads", "return_to_pool",
           "team_members"]
