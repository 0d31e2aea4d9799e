"""Chat platforms' event callbacks, wired to the hub: audit every event, apply the rules.

Each registered connector with a :class:`~hub.contracts.CallbackSpec` gets a receiver at
``/callbacks/<system>`` (signature, decryption and replay refusal are the connector's
receiver's job). This module gives it its settings and hooks:

- ``on_event``: one audit row per accepted event (operation
  ``callback:<Event>/<ChangeType>``), plus whatever the domain rules do with it
  (``hub.rules.EVENT_HANDLERS``: e.g. a lost WeChat contact on the customer's timeline), in
  one transaction. An exception makes the receiver answer 500, so the platform retries;
  nothing is half-recorded.
- ``on_rejected``: an audit row with outcome ``rejected`` and the reason, so forged or
  replayed calls are on record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from hub.audit import write_audit
from hub.contracts import CallbackHooks, ReplayGuard
from hub.database import Database
from hub.registry import connector, specs
from hub.rules import EVENT_HANDLERS
from hub.runtime import load_sandbox
from hub.settings import Settings

log = logging.getLogger(__name__)

# Event fields that are not worth keeping in the audit: a WeCom welcome code lets whoever
# holds it send the welcome message for 20 s; the audit only needs to know there was one.
_NOT_AUDITED = frozenset({"WelcomeCode", "Encrypt"})


def callback_path(system: str) -> str:
    """Where ``system``'s callbacks are served."""
    return f"/callbacks/{system}"


def operation_name(event: Mapping[str, Any]) -> str:
    """``callback:<Event>/<ChangeType>`` (``callback:<MsgType>`` for plain messages)."""
    kind = str(event.get("Event") or event.get("MsgType") or "unknown")
    change = event.get("ChangeType")
    name = f"callback:{kind}/{change}" if change else f"callback:{kind}"
    return name[:100]  # audit_log.operation is varchar(100)


def event_handler(db: Database, system: str) -> Callable[[dict[str, Any]], None]:
    """``on_event`` for ``system``: audit the event and apply the rules, in one transaction."""
    rule = EVENT_HANDLERS.get(system)
    actor = f"web:{system}-callback"

    def on_event(event: dict[str, Any]) -> None:
        with db.begin() as conn:
            noted = rule(conn, event) if rule is not None else []
            detail: dict[str, Any] = {k: v for k, v in event.items() if k not in _NOT_AUDITED}
            if noted:
                detail["interaction_customer_ids"] = noted
            write_audit(conn, actor=actor, system=system, operation=operation_name(event), outcome="ok",
                        external_id=(str(event.get("ExternalUserID") or "") or None), detail=detail)

    return on_event


def rejection_handler(db: Database, system: str) -> Callable[[str, Mapping[str, str]], None]:
    """``on_rejected``: one audit row with outcome ``rejected`` and the reason."""

    def on_rejected(reason: str, details: Mapping[str, str]) -> None:
        with db.begin() as conn:
            write_audit(conn, actor=f"web:{system}-callback", system=system, operation="callback",
                        outcome="rejected", error=reason, detail={"reason": reason, **dict(details)})

    return on_rejected


class MemoryReplayGuard:
    """Accepted fingerprints in this process's memory (bounded)."""

    def __init__(self, limit: int = 100_000) -> None:
        self._seen: dict[str, float] = {}
        self._limit = limit

    def first_time(self, fingerprint: str, at: float) -> bool:
        if fingerprint in self._seen:
            return False
        if len(self._seen) >= self._limit:
            self._seen.pop(next(iter(self._seen)))
        self._seen[fingerprint] = at
        return True

    def forget(self, fingerprint: str) -> None:
        self._seen.pop(fingerprint, None)


def create_receivers(db: Database, settings: Settings,
                     replay_guard: Callable[[str], ReplayGuard] | None = None) -> dict[str, Any]:
    """Path → receiver ASGI app for each connector whose callbacks are configured.

    In sandbox mode a connector without its own endpoint takes the sandbox's callback
    credentials (the sandbox signs what it sends with them).
    """
    receivers: dict[str, Any] = {}
    for spec in specs():
        if spec.callbacks is None:
            continue
        section = settings.connector(spec.system)
        if settings.sandbox and section.base_url is None and spec.sandbox is not None:
            section = load_sandbox(connector(spec.system)).client_settings("http://sandbox.invalid", section)
        path = callback_path(spec.system)
        guard = replay_guard(spec.system) if replay_guard is not None else MemoryReplayGuard()
        hooks = CallbackHooks(on_event=event_handler(db, spec.system),
                              on_rejected=rejection_handler(db, spec.system), replay_guard=guard)
        receiver = spec.callbacks.make_receiver(section, hooks, path)
        if receiver is None:
            log.warning("%s callbacks are off: their credentials are not configured", spec.system)
            continue
        receivers[path] = receiver
    return receivers
