"""Domain rules: what the hub does with the data, above the connectors.

- :mod:`.orders`: an approved CRM order goes to the ERP through the outbox; the ERP's
  answer comes back onto the order;
- :mod:`.approvals`: OA approvals of orders in DingTalk or WeCom (callbacks and a poll) gate
  that push;
- :mod:`.channels`: which chat platform reaches a person (one, by directory and preference);
- :mod:`.reminders`: due, overdue and uncontacted to-dos become reminders in chat;
- :mod:`.todos`: CRM tasks as to-dos on the assignee's platform, and back when ticked off;
- :mod:`.collections`: overdue receivables become 催收 tasks for the owner;
- :mod:`.directory`: CRM users are linked to chat-directory accounts before a directory sync;
- :mod:`.salespeople`: ERP salespeople are linked to internal users before an ERP's customers
  are synced, so ERP-only customers get an owner;
- :mod:`.contacts`: chat events about customer contacts go onto the customer's timeline;
- :mod:`.pool`: the public pool (公海池) of customers nobody owns, and claims from it;
- :mod:`.leads`, :mod:`.lead_assignment`, :mod:`.lead_sources`: leads captured from every
  source and de-duplicated, assigned by the rule table, returned to the pool when unworked.
- :mod:`.webhooks`: signed webhooks back to the CRM (receivable changed, order in the ERP, task
  done in chat, lead assigned), recorded with the change and delivered in order per customer;
- :mod:`.automation`: declarative automation rules (a TOML file of trigger → conditions →
  actions) that call the rules above, each firing once per (rule, subject, window);
- :mod:`.approvals`: OA approvals of CRM orders (opening one).
- :mod:`.receivables_summary`: the receivables report's summary, rebuilt after each ledger sync.

Importing this package registers what the core calls back: outbox effect handlers per
writer name (``hub.outbox.effects``), work before a stream (``hub.runtime.before_stream``)
and chat event handlers (:data:`EVENT_HANDLERS`: per chat system, the functions the web app
calls for each accepted callback event, inside the transaction that audits it). Entry
points (CLI, web, demo, Dagster) import it; connectors and the core never do.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from hub.rules import (
    approvals,
    channels,
    collections,
    contacts,
    directory,
    lead_assignment,
    lead_sources,
    leads,
    orders,
    pool,
    receivables_summary,
    reminders,
    salespeople,
    todos,
    webhooks,
)


@dataclass(frozen=True)
class EventRule:
    """What the hub does with one chat system's accepted callback events.

    ``apply(conn, event)`` returns the ids of rows it changed, noted in the event's audit
    row under ``noted_as``; ``subject`` is the event field naming what the event is about
    (the audit row's external id).
    """

    apply: Callable[[Connection, Mapping[str, Any]], list[int]]
    noted_as: str
    subject: str


EVENT_HANDLERS: dict[str, tuple[EventRule, ...]] = {
    "wecom": (EventRule(contacts.record_lost_contact, "interaction_customer_ids", "ExternalUserID"),
              EventRule(approvals.record_wecom_event, "approval_checks_queued", "ApprovalInfo")),
    "dingtalk": (EventRule(todos.record_todo_event, "closed_task_ids", "taskId"),
                 EventRule(approvals.record_dingtalk_event, "approval_checks_queued", "processInstanceId")),
}

__all__ = ["EVENT_HANDLERS", "EventRule", "approvals", "channels", "collections", "contacts", "directory", "lead_assignment",
           "lead_sources", "leads", "orders", "pool", "receivables_summary", "reminders", "salespeople", "todos", "webhooks"]
