"""Chat platforms' event callbacks, wired to the hub: audit every event, apply the rules.

Each registered connector with a :class:`~hub.contracts.CallbackSpec` gets a receiver at
``/callbacks/<system>`` (limits, signature, decryption and replay refusal are the
connector's receiver's job). This module gives it its settings and hooks:

- ``on_event``: one audit row per accepted event (operation
  ``callback:<Event>/<ChangeType>``), plus whatever the domain rules do with it
  (``hub.rules.EVENT_HANDLERS``: e.g. a lost WeChat contact on the customer's timeline, a
  DingTalk to-do ticked off closing its CRM task), in
  one transaction. An exception makes the receiver answer 500, so the platform retries;
  nothing is half-recorded. The event's fields reach the audit cut to a few KB each
  (``hub.audit``): an authentic event may still carry a huge field.
- ``on_rejected``: :class:`~hub.web.rejections.RejectionAudit`, so forged, replayed and
  malformed calls are on record, one row each up to a threshold per source and window,
  then in aggregate.
- ``replay_guard``: :class:`~hub.web.replay_guard.PostgresReplayGuard`, so a replay is
  refused by every web process and after a restart.

:func:`maintain` closes rejection windows and prunes expired replay fingerprints;
``hub serve`` runs it every few seconds.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hub.audit import storable, write_audit
from hub.contracts import CallbackHooks
from hub.database import Database
from hub.registry import connector, specs
from hub.rules import EVENT_HANDLERS
from hub.runtime import load_sandbox
from hub.settings import Settings
from hub.web.rejections import RejectionAudit
from hub.web.replay_guard import PostgresReplayGuard

log = logging.getLogger(__name__)

# Event fields that are not worth keeping in the audit: a WeCom welcome code lets whoever
# holds it send the welcome message for 20 s; the audit only needs to know there was one.
_NOT_AUDITED = frozenset({"WelcomeCode", "Encrypt"})


def callback_path(system: str) -> str:
    """Where ``system``'s callbacks are served."""
    return f"/callbacks/{system}"


def operation_name(event: Mapping[str, Any]) -> str:
    """``callback:<Event>/<ChangeType>`` (WeCom; ``callback:<MsgType>`` for plain messages),
    ``callback:<EventType>`` (DingTalk)."""
    kind = str(event.get("Event") or event.get("EventType") or event.get("MsgType") or "unknown")
    change = event.get("ChangeType")
    name = f"callback:{kind}/{change}" if change else f"callback:{kind}"
    return name[:100]  # audit_log.operation is varchar(100)


def storable_event(value: Any) -> Any:
    """An event with what Postgres cannot hold replaced: NUL and lone surrogates in text by
    U+FFFD, NaN and ±Infinity (Python's json reads them from DingTalk's JSON) by their names.
    An authentic event is signed, but its fields still reach SQL parameters and jsonb; one
    that cannot be stored would fail with a 500 on every retry of the platform's."""
    if isinstance(value, str):
        return storable(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {storable(str(k)): storable_event(v) for k, v in value.items()}
    if isinstance(value, list):
        return [storable_event(v) for v in value]
    return value


def event_handler(db: Database, system: str) -> Callable[[dict[str, Any]], None]:
    """``on_event`` for ``system``: audit the event and apply the rules, in one transaction."""
    rules = EVENT_HANDLERS.get(system, ())
    actor = f"web:{system}-callback"

    def on_event(received: dict[str, Any]) -> None:
        event = storable_event(received)
        with db.begin() as conn:
            detail: dict[str, Any] = {k: v for k, v in event.items() if k not in _NOT_AUDITED}
            subject = ""
            for rule in rules:
                noted = rule.apply(conn, event)
                if noted:
                    detail[rule.noted_as] = noted
                named = event.get(rule.subject)
                if isinstance(named, dict):  # WeCom's ApprovalInfo: its SpNo names the subject
                    named = named.get("SpNo")
                subject = subject or str(named or "")[:200]
            write_audit(conn, actor=actor, system=system, operation=operation_name(event), outcome="ok",
                        external_id=subject or None, detail=detail)

    return on_event


@dataclass(frozen=True)
class Receiver:
    """One system's callback receiver (an ASGI app) and the hub's state behind it."""

    system: str
    app: Any
    rejections: RejectionAudit
    replay_guard: PostgresReplayGuard


def maintain(receivers: Mapping[str, Receiver], at: float | None = None) -> None:
    """Report closed rejection windows and prune expired replay fingerprints."""
    at = time.time() if at is None else at
    for receiver in receivers.values():
        receiver.rejections.close_windows(at)
        receiver.replay_guard.prune(at)


def create_receivers(db: Database, settings: Settings) -> dict[str, Receiver]:
    """Path → receiver for each connector whose callbacks are configured.

    In sandbox mode a connector without its own endpoint takes the sandbox's callback
    credentials (the sandbox signs what it sends with them).
    """
    receivers: dict[str, Receiver] = {}
    for spec in specs():
        if spec.callbacks is None:
            continue
        section = settings.connector(spec.system)
        if settings.sandbox and section.base_url is None and spec.sandbox is not None:
            section = load_sandbox(connector(spec.system)).client_settings("http://sandbox.invalid", section)
        path = callback_path(spec.system)
        rejections, guard = RejectionAudit(db, spec.system), PostgresReplayGuard(db, spec.system)
        hooks = CallbackHooks(on_event=event_handler(db, spec.system), on_rejected=rejections, replay_guard=guard)
        app = spec.callbacks.make_receiver(section, hooks, path)
        if app is None:
            log.warning("%s callbacks are off: their credentials are not configured", spec.system)
            continue
        receivers[path] = Receiver(spec.system, app, rejections, guard)
    return receivers
