"""What an outbound effect's outcome changes in the canonical store, by writer name.

A connector's writer only talks to its system; the domain rules (``hub.rules``) decide
what a result means for the hub's own rows (an ERP bill number on the CRM order, a
"sent" mark on the task). They register an :class:`EffectHandler` per *writer name*
(``sales_order``, ``reminder``: the part of the outbox kind after the system), so that
one handler serves every connector with that writer and no connector imports the rules.

The dispatcher calls the handler inside the transaction that records the attempt's
outcome on the outbox row, so the outbox row and the canonical rows agree:

- ``on_done(conn, kind, payload, result)``: the effect is complete (or was found
  complete: ``result.adopted``);
- ``on_progress(conn, kind, payload, progress)``: an attempt of a *multi-step* write
  ended before the last step (it will be retried, or it is about to be dead-lettered):
  ``progress`` is the last step the writer reported the external system to have
  reached. Called before ``on_failed`` when both apply;
- ``on_failed(conn, kind, payload, failure)``: the row ends ``failed`` (the system
  refused it) or ``dead`` (retry budget or ``max_attempts`` used up); see
  :class:`Failure`.

**How a writer reports partial progress.** Each attempt gets an
:class:`~hub.contracts.Attempt` whose ``progress(result)`` the writer calls as soon as it
knows a step the external system holds (a Kingdee order saved, then submitted; or found
at some status by the attempt's one lookup), *before* it tries the next step. The
dispatcher keeps the last report of the attempt in memory; if the attempt fails, it
stores the report in ``outbox.result`` (``"complete": false``) and calls ``on_progress``
in the same transaction as the reschedule or the dead letter. A report costs no database
round trip of its own, and an attempt that is killed mid-way loses only reports the next
attempt's lookup finds again. So the CRM order says "in the ERP, not yet audited" from the
end of the attempt that saved it, and a dead letter after the Save shows as such, not as
"the ERP does not have it".

A kind whose writer name has no handler is refused by the dispatcher before anything is
sent: a forgotten registration must not silently drop results.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from hub.contracts import WriteResult
from hub.errors import ConfigError


@dataclass(frozen=True)
class Failure:
    """Why an outbox row ended without its effect.

    ``status``: ``failed`` (the system refused it; writers look up first when an earlier
    outcome is unknown, so a refusal means the system does not hold it) or ``dead``
    (retry budget or ``max_attempts`` used up). ``outcome_unknown``: the last attempt may
    have reached the system without the hub learning of it (a dead letter after a lost
    reply); a replay looks the effect up first. ``error`` is the last exception,
    ``reason`` why a row is dead beyond it (e.g. the retry budget is used up).
    """

    status: str
    error: BaseException
    outcome_unknown: bool = False
    reason: str = ""

    @property
    def message(self) -> str:
        """One line for people (a CRM order, a task's problems)."""
        error = str(self.error) or type(self.error).__name__
        return f"{self.reason}; last error: {error}" if self.reason else error


DoneHandler = Callable[[Connection, str, dict[str, Any], WriteResult], None]
ProgressHandler = Callable[[Connection, str, dict[str, Any], WriteResult], None]
FailedHandler = Callable[[Connection, str, dict[str, Any], Failure], None]


def _no_progress(conn: Connection, kind: str, payload: dict[str, Any], progress: WriteResult) -> None:
    """Default for single-step writers: nothing partial to record."""


@dataclass(frozen=True)
class EffectHandler:
    """What an outcome of one writer's effects changes (see the module docstring)."""

    on_done: DoneHandler
    on_failed: FailedHandler
    on_progress: ProgressHandler = _no_progress


_HANDLERS: dict[str, EffectHandler] = {}


def register(writer_name: str, handler: EffectHandler) -> None:
    """Register (or replace) the handler of every ``<system>.<writer_name>`` kind."""
    _HANDLERS[writer_name] = handler


def handler_for(kind: str) -> EffectHandler:
    """The handler of an outbox kind; a ConfigError when none is registered."""
    writer_name = kind.partition(".")[2]
    try:
        return _HANDLERS[writer_name]
    except KeyError:
        raise ConfigError(
            f"no effect handler registered for outbox kind {kind!r} (writer {writer_name!r}); "
            "the domain rules register them when `hub.rules` is imported") from None


def registered() -> list[str]:
    """Writer names with a handler."""
    return sorted(_HANDLERS)


__all__ = ["DoneHandler", "EffectHandler", "FailedHandler", "Failure", "ProgressHandler", "handler_for",
           "register", "registered"]
