"""What an outbound effect's outcome changes in the canonical store, by writer name.

A connector's writer only talks to its system; the domain rules (``hub.rules``) decide
what a result means for the hub's own rows (an ERP bill number on the CRM order, a
"sent" mark on the task). They register an :class:`EffectHandler` per *writer name*
(``sales_order``, ``reminder``: the part of the outbox kind after the system), so that
one handler serves every connector with that writer and no connector imports the rules.

The dispatcher calls the handler inside the transaction that completes the outbox row,
so the outbox row and the canonical rows agree. A kind whose writer name has no handler
is refused by the dispatcher before anything is sent: a forgotten registration must
not silently drop results.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from hub.contracts import WriteResult
from hub.errors import ConfigError

DoneHandler = Callable[[Connection, str, dict[str, Any], WriteResult], None]
FailedHandler = Callable[[Connection, str, dict[str, Any], Exception, str], None]


@dataclass(frozen=True)
class EffectHandler:
    """``on_done(conn, kind, payload, result)`` after a success (or adoption);
    ``on_failed(conn, kind, payload, error, status)`` when a row ends ``failed``
    (permanent error) or ``dead`` (retry budget used up)."""

    on_done: DoneHandler
    on_failed: FailedHandler


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
