"""What a rule's actions do: a registry from action name to (describe, run), each run
calling the domain rule that already does the work (``hub.rules.*``).

``describe`` says what the action would do for a subject (the dry run's plan, no reads
beyond the subject); ``run`` does it inside the firing's transaction and returns one line
saying what it did. An action that finds nothing to do (the lead was assigned at capture,
the order went to the ERP already, nobody is the owner's supervisor) says so: the line is
kept on the firing row, so nothing is skipped silently.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hub.rules import approvals, orders, webhooks
from hub.rules.automation.calendar import BusinessCalendar
from hub.rules.automation.model import (
    AssignOwner,
    CreateReceivablePlan,
    CreateTask,
    PushOrderToErp,
    Remind,
    RequestApproval,
    ReturnToPool,
    Rule,
    SendCrmWebhook,
)
from hub.rules.automation.triggers import Subject
from hub.rules.collections import finance_assignees
from hub.rules.lead_assignment import assign_lead, return_to_pool
from hub.rules.reminders import ReminderPolicy, remind_user
from hub.settings import LeadSettings, OrderSettings


@dataclass(frozen=True)
class RuleEnv:
    """What actions need from the settings: the lead table, order routing, reminders' policy,
    the finance recipients, the business calendar."""

    calendar: BusinessCalendar
    leads: LeadSettings
    orders: OrderSettings
    reminders: ReminderPolicy
    finance_recipients: tuple[str, ...] = ()


@dataclass
class Firing:
    """One firing being applied: its transaction, rule, subject and time, and the task its
    ``create_task`` action made (for a ``remind`` after it)."""

    conn: Connection
    rule: Rule
    subject: Subject
    now: dt.datetime
    env: RuleEnv
    task_id: int | None = None

    @property
    def actor(self) -> str:
        """Who the audit names: the rule."""
        return f"rule:{self.rule.name}"


def _fill(template: str, subject: Subject) -> str:
    # plain replacement, not str.format: a brace in a rules file is text, never an attribute lookup
    values = {"name": subject.name, "reason": subject.reason or "（未填写原因）",
              "amount": f"{subject.currency or ''} {subject.amount:,.2f}".strip() if subject.amount is not None else ""}
    for key, value in values.items():
        template = template.replace("{" + key + "}", value)
    return template


# ---------------------------------------------------------------------- people


def supervisor_of(conn: Connection, user_id: int | None) -> int | None:
    """The active manager of ``user_id`` (``internal_user.manager_id``, from the directories)."""
    if user_id is None:
        return None
    found = conn.execute(sa.text(
        "SELECT m.id FROM internal_user u JOIN internal_user m ON m.id = u.manager_id WHERE u.id = :u AND m.active"),
        {"u": user_id}).scalar()
    return int(found) if found is not None else None


def recipients(firing: Firing, who: str) -> tuple[list[int], str | None]:
    """The users ``who`` (owner, supervisor, finance) names for this firing, or why nobody."""
    owner = firing.subject.owner_id
    if who == "owner":
        return ([owner], None) if owner is not None else ([], f"{firing.subject.ref} has no owner")
    if who == "supervisor":
        boss = supervisor_of(firing.conn, owner)
        return ([boss], None) if boss is not None else ([], "the owner has no active supervisor")
    users, problems = finance_assignees(firing.conn, firing.env.finance_recipients)
    why = "; ".join(problems) or "HUB_COLLECTIONS__FINANCE_RECIPIENTS is not set"
    return (users, None) if users else ([], f"no finance recipient ({why})")


# ---------------------------------------------------------------------- tasks


def own_task(conn: Connection, subject: Subject) -> int | None:
    """The open task a subject has of its own: itself, a lead's first follow-up, a
    customer's newest follow-up, a receivable's customer's 催收 task."""
    if subject.type == "task":
        return subject.id
    query = {
        "lead": "SELECT id FROM task WHERE lead_id = :id AND kind = 'lead_followup' AND status = 'open'",
        "customer": "SELECT id FROM task WHERE customer_id = :id AND status = 'open' "
                    "AND kind IN ('first_followup', 'follow_up')",
        "receivable": "SELECT t.id FROM task t JOIN receivable r ON r.customer_id = t.customer_id WHERE r.id = :id "
                      "AND t.kind = 'collection' AND t.status = 'open'",
    }.get(subject.type)
    if query is None:
        return None
    found = conn.execute(sa.text(query + " ORDER BY id DESC LIMIT 1"), {"id": subject.id}).scalar()
    return int(found) if found is not None else None


def _create_task(firing: Firing, action: CreateTask) -> str:
    people, problem = recipients(firing, action.assignee)
    if not people:
        return f"no task: {problem}"
    s = firing.subject
    assignee = people[s.id % len(people)]  # finance: spread by subject, as collections do
    on_lead = s.type == "lead"
    existing = firing.conn.execute(sa.text(
        "SELECT id FROM task WHERE status = 'open' AND kind = :k AND "
        + ("lead_id = :l" if on_lead else "customer_id = :c AND lead_id IS NULL") + " ORDER BY id LIMIT 1"),
        {"k": action.kind, "l": s.id, "c": s.customer_id}).scalar()
    if existing is not None:
        firing.task_id = int(existing)
        adopted = f"open {action.kind} task {existing} adopted"
    else:
        due = firing.env.calendar.shift(firing.now, action.due_in)
        firing.task_id = int(firing.conn.execute(sa.text(
            "INSERT INTO task (title, description, kind, customer_id, lead_id, assignee_id, due_at) "
            "VALUES (:t, :d, :k, :c, :l, :a, :due) RETURNING id"),
            {"t": _fill(action.title, s)[:300], "d": _fill(action.description or "", s) or None, "k": action.kind,
             "c": s.customer_id, "l": s.id if on_lead else None, "a": assignee, "due": due}).scalar_one())
        adopted = f"task {firing.task_id} ({action.kind}) for user {assignee}, due {due:%Y-%m-%d %H:%M} UTC"
    if action.tag and s.customer_id is not None:
        firing.conn.execute(sa.text(
            "UPDATE customer SET tags = array_append(tags, :tag) WHERE id = :c AND NOT (:tag = ANY(tags))"),
            {"tag": action.tag, "c": s.customer_id})
    return adopted


def _remind(firing: Firing, action: Remind) -> str:
    task_id = firing.task_id or own_task(firing.conn, firing.subject)
    if task_id is None:
        return f"no reminder: {firing.subject.ref} has no open task to remind about"
    status = firing.conn.execute(sa.text("SELECT status FROM task WHERE id = :id"), {"id": task_id}).scalar()
    if status != "open":
        return f"no reminder: task {task_id} is {status}"
    base = action.kind or firing.rule.name.replace("-", "_")[:40]
    said = []
    for who in action.to:
        people, problem = recipients(firing, who)
        if not people:
            said.append(f"{who}: {problem}")
            continue
        kind = base if who == "owner" else f"{base}_{'manager' if who == 'supervisor' else who}"
        for user in people:
            counts = remind_user(firing.conn, task_id, user, kind, firing.env.reminders, firing.now)
            state = ("queued" if counts.queued else "queued already" if counts.already_queued
                     else "no chat account")
            said.append(f"{who} user {user}: {kind} {state}")
    return f"task {task_id}: " + "; ".join(said)


# ---------------------------------------------------------------------- leads, contracts, orders


def _assign_owner(firing: Firing, action: AssignOwner) -> str:
    lead = firing.conn.execute(sa.text("SELECT status, owner_id, assigned_rule FROM lead WHERE id = :id FOR UPDATE"),
                               {"id": firing.subject.id}).one()
    if lead.status != "new" or lead.owner_id is not None:
        return f"left alone: lead is {lead.status} already (rule {lead.assigned_rule or '-'})"
    done = assign_lead(firing.conn, firing.subject.id, firing.env.leads, actor=firing.actor, now=firing.now)
    firing.subject = replace(firing.subject, owner_id=done.owner_id)  # the actions after this one see the owner
    where = f"user {done.owner_id}" if done.owner_id is not None else "the public pool"
    return f"assigned to {where} by {done.rule}" + (f" ({done.problem})" if done.problem else "")


def _return_to_pool(firing: Firing, action: ReturnToPool) -> str:
    lead = firing.conn.execute(sa.text("SELECT status, owner_id FROM lead WHERE id = :id FOR UPDATE"),
                               {"id": firing.subject.id}).one()
    if lead.status != "assigned":
        return f"left alone: lead is {lead.status} now"
    cancelled = return_to_pool(firing.conn, firing.subject.id, lead.owner_id, now=firing.now, actor=firing.actor,
                               detail={"rule": firing.rule.name})
    return f"returned to the public pool; {cancelled} follow-up task(s) cancelled"


def plan_instalments(amount: Decimal, action: CreateReceivablePlan, signed: dt.date,
                     calendar: BusinessCalendar) -> list[tuple[int, dt.date, Decimal]]:
    """(instalment no, due date, amount) of a contract's plan; the last instalment takes the
    rounding remainder so the plan adds up to ``amount`` to the cent."""
    rows = []
    left = amount
    for no, part in enumerate(action.instalments, 1):
        share = left if no == len(action.instalments) else (amount * part.percent / 100).quantize(
            Decimal("0.01"), rounding=ROUND_HALF_UP)
        left -= share
        days = int(part.due_after.amount)
        due = calendar.add_business_days(signed, days) if part.due_after.business else signed + dt.timedelta(days=days)
        rows.append((no, due, share))
    return rows


def _create_receivable_plan(firing: Firing, action: CreateReceivablePlan) -> str:
    contract = firing.conn.execute(sa.text(
        "SELECT id, customer_id, amount, currency, signed_at FROM contract WHERE id = :id"),
        {"id": firing.subject.id}).one()
    signed = firing.env.calendar.today(contract.signed_at)
    created = 0
    for no, due, share in plan_instalments(contract.amount, action, signed, firing.env.calendar):
        created += int(firing.conn.execute(sa.text(
            "INSERT INTO receivable_plan (contract_id, customer_id, instalment_no, due_date, amount, currency, rule) "
            "VALUES (:k, :c, :n, :d, :a, :cur, :r) ON CONFLICT (contract_id, instalment_no) DO NOTHING"),
            {"k": contract.id, "c": contract.customer_id, "n": no, "d": due, "a": share, "cur": contract.currency,
             "r": firing.rule.name}).rowcount or 0)
    return f"receivable plan: {created} of {len(action.instalments)} instalment(s) created"


def _request_approval(firing: Firing, action: RequestApproval) -> str:
    found = approvals.request_order_approval(firing.conn, firing.subject.id, at=firing.now,
                                             preference=firing.env.reminders.channels, routing=firing.env.orders)
    return f"approval {found} requested" if found is not None else "left alone: an approval is open already"


_SENT = ("in_erp", "in_erp_unaudited", "in_erp_stalled", "erp_unknown", "erp_failed", "erp_unrouted")


def _push_order(firing: Firing, action: PushOrderToErp) -> str:
    order = firing.conn.execute(sa.text(
        "SELECT status, erp_system FROM sales_order WHERE id = :id FOR UPDATE"), {"id": firing.subject.id}).one()
    if order.erp_system is not None or order.status in _SENT:
        return f"left alone: the order is {order.status} ({order.erp_system or 'no ERP'}) already"
    outbox_id = orders.approve_order(firing.conn, firing.subject.id, routing=firing.env.orders, at=firing.now)
    status = firing.conn.execute(sa.text("SELECT status, erp_error FROM sales_order WHERE id = :id"),
                                 {"id": firing.subject.id}).one()
    if outbox_id is None:
        return f"not queued: {status.status}" + (f" ({status.erp_error})" if status.erp_error else "")
    return f"queued for the ERP (outbox {outbox_id})"


def _webhook(firing: Firing, action: SendCrmWebhook) -> str:
    event = webhooks.emit(firing.conn, "rule.fired", customer_id=firing.subject.customer_id,
                          subject=firing.subject.ref, occurred_at=firing.now,
                          data={"rule": firing.rule.name, "trigger": str(firing.rule.trigger),
                                "window": firing.subject.window})
    return f"webhook event {event} recorded"


# ---------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Handler:
    """How one kind of action is shown in a plan and done."""

    describe: Callable[[Any, Subject], str]
    run: Callable[[Firing, Any], str]


def _who(to: Sequence[str]) -> str:
    return ", ".join(to)


HANDLERS: dict[str, Handler] = {
    "assign_owner": Handler(lambda a, s: "assign an owner by the lead table (if still unassigned)", _assign_owner),
    "create_task": Handler(lambda a, s: f"task '{_fill(a.title, s)}' ({a.kind}, or the open one) for the "
                                        f"{a.assignee}, due in {a.due_in}" + (f", tag {a.tag}" if a.tag else ""),
                           _create_task),
    "remind": Handler(lambda a, s: f"remind {_who(a.to)} in chat", _remind),
    "return_to_pool": Handler(lambda a, s: "return the lead to the public pool", _return_to_pool),
    "create_receivable_plan": Handler(
        lambda a, s: "receivable plan " + " + ".join(f"{i.percent.normalize():f}%@{i.due_after}"
                                                     for i in a.instalments), _create_receivable_plan),
    "request_approval": Handler(lambda a, s: "request OA approval of the order", _request_approval),
    "push_order_to_erp": Handler(lambda a, s: "push the order to its ERP (unless it went already)", _push_order),
    "send_crm_webhook": Handler(lambda a, s: "send the CRM a rule.fired webhook", _webhook),
}


__all__ = ["HANDLERS", "Firing", "Handler", "RuleEnv", "own_task", "plan_instalments", "recipients", "supervisor_of"]
