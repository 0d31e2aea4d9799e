"""Domain rules: what the hub does with the data, above the connectors.

- :mod:`.orders`: an approved CRM order goes to the ERP through the outbox; the ERP's
  answer comes back onto the order;
- :mod:`.reminders`: due, overdue and uncontacted to-dos become reminders in chat;
- :mod:`.collections`: overdue receivables become 催收 tasks for the owner;
- :mod:`.directory`: CRM users are linked to chat-directory accounts before a directory sync;
- :mod:`.salespeople`: ERP salespeople are linked to internal users before an ERP's customers
  are synced, so ERP-only customers get an owner;
- :mod:`.contacts`: chat events about customer contacts go onto the customer's timeline.

Importing this package registers what the core calls back: outbox effect handlers per
writer name (``hub.outbox.effects``), work before a stream (``hub.runtime.before_stream``)
and chat event handlers (:data:`EVENT_HANDLERS`). Entry points (CLI, web, demo, Dagster)
import it; connectors and the core never do.
"""

from hub.rules import collections, contacts, directory, orders, reminders, salespeople
from hub.rules.contacts import EVENT_HANDLERS

__all__ = ["EVENT_HANDLERS", "collections", "contacts", "directory", "orders", "reminders", "salespeople"]
