"""What a connector client reports about each external call it makes.

Clients know nothing of the database. They take an optional ``observer`` callable and
hand it one :class:`ExternalCall` per HTTP exchange; the engine and the outbox pass an
observer that appends the call to the audit log. Keeping this a plain callback keeps
clients testable with ``httpx.MockTransport`` and no database at all.

An ``ExternalCall`` must never carry a secret or a raw payload: only what the audit
needs (system, operation, idempotency key, external id, outcome, timing, error text).

**Call gates.** Whoever drives a client may cap its calls in flight per system: the outbox
dispatcher holds one of a system's call slots (``hub.outbox.slots``) only while an HTTP
exchange is under way. It sets a gate for the thread running a writer (:func:`gated`); the
connectors' HTTP layer wraps each exchange in :func:`call_slot`, which is free when no gate
is set (syncs, the web app, tests).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ExternalCall:
    """One request/response exchange with an external system, as the audit sees it."""

    system: str
    operation: str
    outcome: str  # "ok" | "error"
    duration_ms: float
    key: str | None = None
    external_id: str | None = None
    attempt: int = 1
    error: str | None = None
    http_status: int | None = None


CallObserver = Callable[[ExternalCall], None]


def ignore_call(call: ExternalCall) -> None:
    """Default observer: drop the record (unit tests, ad-hoc scripts)."""


@dataclass
class CallTimer:
    """Mutable holder filled in by :func:`timed_call` so the caller can add details.

    ``started`` (a ``time.perf_counter`` value) may be moved forward by the block when only
    the last of several exchanges belongs to this report: an auth flow that resent a
    rejected request reports the rejected exchange itself, and the resend is timed alone.
    """

    key: str | None = None
    external_id: str | None = None
    attempt: int = 1
    http_status: int | None = None
    extra_error: str | None = field(default=None)
    started: float = field(default_factory=time.perf_counter)


@contextmanager
def timed_call(
    observer: CallObserver, system: str, operation: str, *, key: str | None = None,
    external_id: str | None = None, attempt: int = 1,
) -> Iterator[CallTimer]:
    """Time a block that performs one external call and report it to ``observer``.

    An exception leaving the block is reported as outcome "error" with its text and
    re-raised unchanged.
    """
    timer = CallTimer(key=key, external_id=external_id, attempt=attempt)
    try:
        yield timer
    except Exception as exc:
        observer(ExternalCall(
            system=system, operation=operation, outcome="error",
            duration_ms=(time.perf_counter() - timer.started) * 1000, key=timer.key,
            external_id=timer.external_id, attempt=timer.attempt, error=str(exc)[:500],
            http_status=timer.http_status,
        ))
        raise
    observer(ExternalCall(
        system=system, operation=operation, outcome="ok",
        duration_ms=(time.perf_counter() - timer.started) * 1000, key=timer.key,
        external_id=timer.external_id, attempt=timer.attempt, error=timer.extra_error,
        http_status=timer.http_status,
    ))


CallGate = Callable[[str], AbstractContextManager[None]]
_GATE: ContextVar[CallGate | None] = ContextVar("hub_call_gate", default=None)


@contextmanager
def gated(gate: CallGate) -> Iterator[None]:
    """Within the block, every :func:`call_slot` of this thread goes through ``gate``."""
    token = _GATE.set(gate)
    try:
        yield
    finally:
        _GATE.reset(token)


@contextmanager
def ungated() -> Iterator[None]:
    """Within the block, :func:`call_slot` takes no slot: for a credential fetched under the
    credential's lock (``connectors.kit.auth``). Waiting for a slot while holding that lock
    deadlocked: the threads holding every slot were inside their exchanges, waiting for the
    same lock to read the credential (seen: DingTalk approvals under token expiry, 8 workers,
    4 slots). A token call is not a business call (DingTalk's pacer does not count it either),
    so it may go out beside the cap."""
    token = _GATE.set(None)
    try:
        yield
    finally:
        _GATE.reset(token)


_HOLDING: ContextVar[frozenset[str]] = ContextVar("hub_call_slots_held", default=frozenset())


@contextmanager
def call_slot(system: str) -> Iterator[None]:
    """Hold one of ``system``'s call slots for one exchange, if a gate is set (else nothing).

    Re-entrant per thread: an exchange made *inside* another of the same system (a token
    fetched by the auth flow of the call that found it expired) runs under the slot already
    held. Taking a second slot there deadlocked: with every slot held by a worker waiting
    for a second one, none was ever given back (seen with DingTalk to-dos under token expiry).
    """
    gate = _GATE.get()
    held = _HOLDING.get()
    if gate is None or system in held:
        yield
        return
    with gate(system):
        token = _HOLDING.set(held | {system})
        try:
            yield
        finally:
            _HOLDING.reset(token)
