"""What changed in the canonical store, told to whoever listens, in the writing transaction.

The engine writes receivables and closes tasks; what such a change means beyond the store
(a webhook to the CRM) is the domain rules' business. They register a listener per kind of
change here (``hub.rules`` does, on import), and the writer calls :func:`notify` inside the
transaction of the change, so the consequence commits with the change or not at all. Only
*real* changes are told: a receivable whose open amount and status are what the hub held
already (an unchanged re-sync, another field changed) is not a change here.

Kinds: ``receivable`` (:class:`ReceivableChange`, a bill the hub held before whose open
amount or status changed) and ``task_completed`` (:class:`TaskCompleted`, a CRM task closed
by a to-do ticked off on a chat platform, or in the CRM).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import Connection


@dataclass(frozen=True)
class ReceivableChange:
    """A receivable bill whose open amount or status changed in a sync."""

    receivable_id: int
    customer_id: int
    system: str
    external_id: str
    bill_number: str | None
    currency: str | None
    due_date: dt.date | None
    open_amount_before: Decimal | None
    open_amount: Decimal | None
    status_before: str | None
    status: str | None


@dataclass(frozen=True)
class TaskCompleted:
    """A CRM task closed; ``via`` is where (a chat platform, or ``crm``)."""

    task_id: int
    via: str
    at: dt.datetime | None
    by_user_id: int | None


Listener = Callable[[Connection, Sequence[Any]], None]
_LISTENERS: dict[str, list[Listener]] = {}
KINDS = ("receivable", "task_completed")


def listen(kind: str, listener: Listener) -> None:
    """Call ``listener(conn, changes)`` for each batch of changes of ``kind``."""
    if kind not in KINDS:
        raise ValueError(f"unknown change kind {kind!r} (known: {', '.join(KINDS)})")
    listeners = _LISTENERS.setdefault(kind, [])
    if listener not in listeners:
        listeners.append(listener)


def listened(kind: str) -> bool:
    """True when someone listens to ``kind`` (writers skip the work of finding changes otherwise)."""
    return bool(_LISTENERS.get(kind))


def notify(conn: Connection, kind: str, changes: Sequence[Any]) -> None:
    """Tell every listener of ``kind`` about ``changes``, in the caller's transaction."""
    if not changes:
        return
    for listener in _LISTENERS.get(kind, []):
        listener(conn, changes)


__all__ = ["KINDS", "ReceivableChange", "TaskCompleted", "listen", "listened", "notify"]
