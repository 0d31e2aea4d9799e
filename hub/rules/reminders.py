"""Which reminders are due, and their delivery state on the task.

:func:`evaluate_reminders` looks at open tasks and freshly assigned customers and puts
one outbox row per (task, recipient, channel, reminder kind) into the outbox. The
idempotency key is exactly that tuple, so evaluating every five minutes never sends a
reminder twice. The rules (from the product brief):

- a task due within ``lead`` (or already due) → remind the assignee (``due``);
- a task overdue by more than ``grace`` → remind the assignee again (``overdue``) and
  the assignee's manager (``overdue_manager``);
- a lead's first follow-up task (kind ``lead_followup``, made when a lead is assigned) →
  remind the assignee at once (``lead_assigned``), then as any task when due;
- a customer assigned more than ``uncontacted_hours`` ago with no follow-up since →
  a "首次跟进" task is created for the owner, and owner and manager are reminded
  (``uncontacted_24h``, ``uncontacted_24h_manager``).

Each recipient is reminded on one chat platform (:mod:`hub.rules.channels`: the first in
the configured preference whose directory knows them as active), and the idempotency key
names no platform, so a person whose platform changes between evaluations is never
reminded on both. A recipient no platform knows as active is reported on the task
(``problems``) instead of being queued, and a platform that rejects a recipient marks it
likewise.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hub.access.links import card_link
from hub.contracts import ChatChannel, WriteResult
from hub.errors import ConfigError, RecipientError
from hub.outbox import effects, enqueue
from hub.outbox.effects import Failure
from hub.registry import connector
from hub.rules.channels import channels, choice_sql, labels


def chat_channel(channel: str) -> ChatChannel[Any]:
    """The chat platform ``channel`` as its connector describes it."""
    chat = connector(channel).chat
    if chat is None:
        raise ConfigError(f"{channel} is not a chat platform; reminders cannot go there")
    return chat


@dataclass(frozen=True)
class ReminderPolicy:
    """Thresholds of the reminder rules (configurable, not code)."""

    lead: dt.timedelta = dt.timedelta(hours=1)
    grace: dt.timedelta = dt.timedelta(hours=0)
    uncontacted_hours: int = 24
    duplicate_check_interval_s: int = 1800
    profile_base_url: str = "http://127.0.0.1:8000"
    channels: tuple[str, ...] = ()  # chat platforms in order of preference (empty: all, by name)


@dataclass
class ReminderCounts:
    """What one evaluation did."""

    queued: int = 0
    already_queued: int = 0
    no_account: int = 0
    tasks_created: int = 0
    queued_by_channel: dict[str, int] = field(default_factory=dict)


def evaluate_reminders(conn: Connection, now: dt.datetime, policy: ReminderPolicy) -> ReminderCounts:
    """Queue every reminder that is due at ``now`` (see the module docstring)."""
    counts = ReminderCounts()
    counts.tasks_created = _create_first_followup_tasks(conn, now, policy)
    ordered = channels(policy.channels)
    a_channel, a_account, _ = choice_sql("a", ordered)
    m_channel, m_account, _ = choice_sql("m", ordered)
    tasks = conn.execute(sa.text(
        f"""
        SELECT t.id, t.title, t.kind, t.due_at, t.customer_id, c.name AS customer_name,
               a.id AS assignee_id, a.name AS assignee_name,
               {a_channel} AS assignee_channel, {a_account} AS assignee_account,
               m.id AS manager_id, m.name AS manager_name,
               {m_channel} AS manager_channel, {m_account} AS manager_account
        FROM task t
        JOIN internal_user a ON a.id = t.assignee_id
        LEFT JOIN internal_user m ON m.id = a.manager_id
        LEFT JOIN customer c ON c.id = t.customer_id
        WHERE t.status = 'open' AND (t.due_at <= :horizon OR t.kind = 'lead_followup')
        ORDER BY t.id
        """), {"horizon": now + policy.lead}).all()
    for task in tasks:
        overdue = task.due_at < now - policy.grace
        kinds = [("due", "assignee")] if task.due_at <= now + policy.lead else []
        if task.kind == "lead_followup":
            kinds.insert(0, ("lead_assigned", "assignee"))
        if overdue:
            kinds += [("overdue", "assignee"), ("overdue_manager", "manager")]
        if task.kind == "first_followup":
            kinds = [("uncontacted_24h", "assignee"), ("uncontacted_24h_manager", "manager")]
        for kind, who in kinds:
            _queue(conn, counts, task, kind, who, policy, now, labels(ordered))
    return counts


def reminder_key(task_id: int, user_id: int, kind: str) -> str:
    """The outbox key of one reminder: the same whichever platform carries it."""
    return f"reminder:task-{task_id}:user-{user_id}:{kind}"


def _queue(conn: Connection, counts: ReminderCounts, task: Any, kind: str, who: str, policy: ReminderPolicy,
           now: dt.datetime, platforms: str) -> None:
    prefix = "assignee" if who == "assignee" else "manager"
    recipient = Recipient(*(getattr(task, f"{prefix}_{part}") for part in ("id", "channel", "account", "name")))
    _send(conn, counts, task, kind, recipient, policy, now, platforms)


@dataclass(frozen=True)
class Recipient:
    """Who a reminder goes to, and on which platform (None: no platform knows them as active)."""

    user_id: int | None
    channel: str | None
    account: str | None
    name: str | None


def _send(conn: Connection, counts: ReminderCounts, task: Any, kind: str, recipient: Recipient,
          policy: ReminderPolicy, now: dt.datetime, platforms: str) -> None:
    user_id, channel, account, name = recipient.user_id, recipient.channel, recipient.account, recipient.name
    if user_id is None:
        return  # nobody above the assignee: nothing to escalate to
    if channel is None or account is None:
        problem = f"{name} has no active account on {platforms}: '{kind}' reminder not sent"
        changed = conn.execute(sa.text(
            "UPDATE task SET problems = array_append(problems, :p) WHERE id = :id AND NOT (:p = ANY(problems)) "
            "RETURNING id"), {"p": problem, "id": task.id}).scalar()
        counts.no_account += int(changed is not None)
        return
    payload = {
        "task_id": task.id, "kind": kind, "recipient": account, "recipient_user_id": user_id,
        "recipient_name": name, "title": task.title, "customer_id": task.customer_id,
        "customer_name": task.customer_name, "due_at": task.due_at.isoformat(),
        "assignee_name": task.assignee_name, "channel": channel,
        # through the platform's sign-in entry: the card signs the salesperson in (hub.access.links)
        "profile_url": card_link(policy.profile_base_url, channel,
                                 f"/customers/{task.customer_id}" if task.customer_id else f"/tasks/{task.id}"),
        "duplicate_check_interval": policy.duplicate_check_interval_s,
        "queued_at": now.isoformat(),
    }
    payload = chat_channel(channel).prepare_reminder(payload)
    if enqueue(conn, f"{channel}.reminder", reminder_key(task.id, user_id, kind), payload) is None:
        counts.already_queued += 1
    else:
        counts.queued += 1
        counts.queued_by_channel[channel] = counts.queued_by_channel.get(channel, 0) + 1


def remind_user(conn: Connection, task_id: int, user_id: int, kind: str, policy: ReminderPolicy,
                now: dt.datetime) -> ReminderCounts:
    """Queue one reminder of kind ``kind`` about task ``task_id`` to user ``user_id`` (anyone:
    the assignee, their supervisor, finance) on their one chat platform, keyed like every
    reminder (:func:`reminder_key`), so a reminder the evaluator above queued is not sent twice.
    The automation rules' ``remind`` action (``hub.rules.automation``) calls it."""
    counts = ReminderCounts()
    ordered = channels(policy.channels)
    u_channel, u_account, _ = choice_sql("u", ordered)
    row = conn.execute(sa.text(
        f"""
        SELECT t.id, t.title, t.due_at, t.customer_id, c.name AS customer_name, a.name AS assignee_name,
               u.id AS user_id, {u_channel} AS channel, {u_account} AS account, u.name AS user_name
        FROM task t JOIN internal_user a ON a.id = t.assignee_id JOIN internal_user u ON u.id = :u
        LEFT JOIN customer c ON c.id = t.customer_id
        WHERE t.id = :t
        """), {"t": task_id, "u": user_id}).one()
    _send(conn, counts, row, kind, Recipient(row.user_id, row.channel, row.account, row.user_name), policy, now,
          labels(ordered))
    return counts


def _create_first_followup_tasks(conn: Connection, now: dt.datetime, policy: ReminderPolicy) -> int:
    """A customer nobody contacted within the threshold gets a first follow-up task."""
    created = conn.execute(sa.text(
        """
        INSERT INTO task (title, description, kind, customer_id, assignee_id, due_at)
        SELECT '首次跟进：' || c.name, '分配后超过 ' || :h || ' 小时未跟进（超时未跟进）', 'first_followup',
               c.id, c.owner_id, c.assigned_at + make_interval(hours => :h)
        FROM customer c
        WHERE c.owner_id IS NOT NULL AND c.assigned_at IS NOT NULL
          AND c.assigned_at <= :cutoff
          AND NOT EXISTS (SELECT 1 FROM interaction i WHERE i.customer_id = c.id AND i.occurred_at >= c.assigned_at)
          AND NOT EXISTS (SELECT 1 FROM task t WHERE t.customer_id = c.id AND t.kind = 'first_followup'
                          AND t.created_at >= c.assigned_at)
        RETURNING id
        """), {"h": policy.uncontacted_hours, "cutoff": now - dt.timedelta(hours=policy.uncontacted_hours)}).all()
    if created:
        conn.execute(sa.text("UPDATE customer SET tags = array_append(tags, '超时未跟进') WHERE id IN "
                             "(SELECT customer_id FROM task WHERE id = ANY(:ids)) AND NOT ('超时未跟进' = ANY(tags))"),
                     {"ids": [r.id for r in created]})
    return len(created)


def record_push_result(conn: Connection, channel: str, payload: dict[str, Any], state: str,
                       detail: dict[str, Any]) -> None:
    """Record a delivery outcome on the task's ``push_state[channel]["kind:recipient"]``."""
    entry = {"state": state, "at": dt.datetime.now(dt.UTC).isoformat(), **detail}
    conn.execute(sa.text(
        "UPDATE task SET push_state = jsonb_set(CASE WHEN push_state ? :ch THEN push_state "
        "ELSE push_state || jsonb_build_object(:ch, '{}'::jsonb) END, ARRAY[:ch, :slot], CAST(:entry AS jsonb)) "
        "WHERE id = :id"),
        {"ch": channel, "slot": f"{payload['kind']}:{payload['recipient']}", "id": payload["task_id"],
         "entry": json.dumps(entry, ensure_ascii=False, default=str)})


def record_push_problem(conn: Connection, payload: dict[str, Any], problem: str) -> None:
    """Add a human-readable delivery problem to the task (shown in the profile)."""
    conn.execute(sa.text(
        "UPDATE task SET problems = array_append(problems, :p) WHERE id = :id AND NOT (:p = ANY(problems))"),
        {"p": problem[:500], "id": payload["task_id"]})


def _reminder_sent(conn: Connection, kind: str, payload: dict[str, Any], result: WriteResult) -> None:
    """Outbox effect handler: mark the reminder sent on ``task.push_state``."""
    record_push_result(conn, kind.partition(".")[0], payload, "sent", {"msgid": result.external_id})


def _reminder_failed(conn: Connection, kind: str, payload: dict[str, Any], failure: Failure) -> None:
    """Outbox effect handler: the failure on the task; an unknown recipient is named as such,
    and a reminder given up after a lost reply says it may have arrived."""
    channel = kind.partition(".")[0]
    title = chat_channel(channel).label
    unknown_recipient = isinstance(failure.error, RecipientError)
    state = "invalid_recipient" if unknown_recipient else ("unknown" if failure.outcome_unknown else "failed")
    record_push_result(conn, channel, payload, state, {"error": failure.message[:300]})
    who = payload.get("recipient_name") or payload.get("recipient")
    if unknown_recipient:
        record_push_problem(conn, payload, f"{title} does not know {who}: '{payload.get('kind')}' reminder not "
                                           f"delivered")
    elif failure.outcome_unknown:
        record_push_problem(conn, payload, f"'{payload.get('kind')}' reminder to {who} may not have arrived "
                                           f"(given up after a lost reply): {failure.message}")
    else:
        record_push_problem(conn, payload, f"'{payload.get('kind')}' reminder to {who} failed: {failure.message}")


effects.register("reminder", effects.EffectHandler(on_done=_reminder_sent, on_failed=_reminder_failed))
