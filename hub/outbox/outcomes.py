"""Recording an attempt's outcome on its outbox row, in the caller's transaction.

Every function here writes the row's new state, the audit row of the attempt, and what
the domain rules registered for the kind (``hub.outbox.effects``), all in the one
transaction the dispatcher opens, so the outbox, the audit and the canonical rows agree.

Only the dispatcher that still holds the row may record: :func:`still_mine` locks the
row and checks the holder *and* the attempt number, so a dispatcher that stalled past its
lease never overwrites the outcome recorded by the one that retook the row. On the hot
path, :func:`record_done`, the check is the UPDATE's own condition (one statement fewer).

:func:`record_done` also writes the audit rows of the write's calls that the dispatcher
held back (``hub.audit.deferred_calls``) with the outcome's own, in the UPDATE's statement:
they are written whether or not the row is still this dispatcher's (the calls were made),
the outcome's only if it is.

A handler that raises (a bug in the rules) aborts the transaction with
:class:`EffectHandlerError`; the dispatcher then dead-letters the row without the handler
(``handler=False``), outcome unknown, so that a replay looks the effect up and runs the
handler again once the bug is fixed.
"""

from __future__ import annotations

import functools
import json
import logging
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hub import prepared
from hub.audit import audit_columns, audit_row, rows_parameters, typed_values, write_audit
from hub.contracts import WriteResult
from hub.outbox import effects
from hub.outbox.claims import ClaimedItem
from hub.outbox.effects import Failure
from hub.outbox.retry import Decision

log = logging.getLogger(__name__)

MAX_ERROR_CHARS = 2000


class DispatcherLost(Exception):
    """The dispatcher holding an outbox row stopped renewing its lease (it died or stalled)."""


class EffectHandlerError(Exception):
    """The handler the rules registered for a kind raised: what the effect changes in the hub
    could not be recorded (``__cause__`` is the handler's exception)."""


def _handle(item: ClaimedItem, event: str, *args: Any) -> None:
    handler = getattr(effects.handler_for(item.kind), event)
    try:
        handler(*args)
    except Exception as exc:
        raise EffectHandlerError(f"the {event} handler of {item.kind} raised {type(exc).__name__}: {exc}") from exc


# The row as the attempt ``n`` left it while it is still under way: whoever holds it now
# (``locked_by``) holds that attempt. Both checks below read it, with the row locked.
_THIS_ATTEMPT = "id = %(id)s AND status = 'in_progress' AND attempts = %(n)s"
_HOLDER = f"SELECT locked_by FROM outbox WHERE {_THIS_ATTEMPT} FOR UPDATE"


def still_mine(conn: Connection, item: ClaimedItem, worker_id: str) -> bool:
    """Lock the row; True when ``worker_id`` still holds this attempt of it."""
    found = prepared.execute(conn, _HOLDER, {"id": item.id, "n": item.attempt.number})
    holder = found[0][0] if found else None
    if holder != worker_id:
        log.warning("outbox %s: lease lost to %s; outcome not recorded here", item.id, holder)
        return False
    return True


def _json(value: dict[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def result_document(result: WriteResult, *, complete: bool) -> dict[str, Any]:
    """What ``outbox.result`` keeps of a result (or of a failed attempt's last progress)."""
    return {"external_id": result.external_id, "status": result.status, "adopted": result.adopted,
            "complete": complete, **result.detail}


# sent prepared on the driver's connection (hub.prepared), as the audit rows with it: once per effect
_DONE_IF_MINE = (
    "UPDATE outbox SET status = 'done', result = CAST(%(result)s AS jsonb), completed_at = now(), "
    "locked_by = NULL, locked_until = NULL, last_error = NULL, updated_at = now() "
    f"WHERE {_THIS_ATTEMPT} AND locked_by = %(me)s RETURNING id")


@functools.lru_cache(maxsize=16)
def _done_and_audited(calls: int) -> str:
    """The row ``done`` if it is still this attempt's, and its audit rows, in one statement: the
    ``calls`` rows of the write's calls always, then the outcome's row only if the UPDATE took
    the row. Returns the row's id when it did. The rows are inserted in their order (the
    calls', then the outcome's), as the two statements this replaces inserted them."""
    columns = audit_columns()
    return (f"WITH done AS ({_DONE_IF_MINE}), "
            f"audited AS (INSERT INTO audit_log ({columns}) SELECT {columns} "
            f"FROM (VALUES {typed_values(calls + 1)}) AS v({columns}, n) "
            f"WHERE v.n < {calls} OR EXISTS (SELECT FROM done) ORDER BY v.n) "
            "SELECT id FROM done")


def record_done(conn: Connection, item: ClaimedItem, result: WriteResult, *, actor: str, worker_id: str,
                calls: list[dict[str, Any]] | None = None) -> bool:
    """The effect is complete: row ``done``, result kept, the rules told; audited with the
    write's ``calls`` held back (``hub.audit.deferred_calls``), in one statement.

    Only if ``worker_id`` still holds this attempt of the row: the check is the UPDATE's own
    condition (it locks the row, as :func:`still_mine` does, one statement fewer). Returns
    False, recording only the ``calls``, when another dispatcher retook the row.
    """
    rows = [*(calls or ()),
            audit_row(actor=actor, system=item.system, operation=item.kind, key=item.key,
                      external_id=result.external_id, outcome="adopted" if result.adopted else "ok",
                      attempt=item.attempt.number)]
    mine = prepared.execute(conn, _done_and_audited(len(rows) - 1),
                            {"id": item.id, "n": item.attempt.number, "me": worker_id,
                             "result": _json(result_document(result, complete=True)), **rows_parameters(rows)})
    if not mine:
        log.warning("outbox %s: lease lost; outcome not recorded here", item.id)
        return False
    # in the same transaction as the row and its audit: a handler that raises undoes them all
    _handle(item, "on_done", conn, item.kind, item.payload, result)
    return True


def record_progress(conn: Connection, item: ClaimedItem, progress: WriteResult | None) -> None:
    """A failed attempt of a multi-step write got this far: keep it on the row, tell the rules."""
    if progress is None:
        return
    _handle(item, "on_progress", conn, item.kind, item.payload, progress)
    conn.execute(sa.text("UPDATE outbox SET result = CAST(:result AS jsonb) WHERE id = :id"),
                 {"id": item.id, "result": _json(result_document(progress, complete=False))})


def record_retry(conn: Connection, item: ClaimedItem, decision: Decision, error: str, *, actor: str,
                 detail: dict[str, Any] | None = None) -> None:
    """The attempt failed and will be retried after ``decision.delay_s``."""
    conn.execute(
        sa.text("UPDATE outbox SET status = 'pending', last_error = :err, outcome_unknown = :unknown, "
                "unexpected_failures = unexpected_failures + :bug, "
                "next_attempt_at = now() + make_interval(secs => :delay), locked_by = NULL, "
                "locked_until = NULL, updated_at = now() WHERE id = :id"),
        {"id": item.id, "err": error[:MAX_ERROR_CHARS], "unknown": decision.outcome_unknown,
         "bug": int(decision.unexpected), "delay": decision.delay_s},
    )
    write_audit(conn, actor=actor, system=item.system, operation=item.kind, key=item.key, outcome="retry",
                attempt=item.attempt.number, error=error[:MAX_ERROR_CHARS],
                detail={"retry_in_s": round(decision.delay_s, 3), **(detail or {})})


def record_failed(conn: Connection, item: ClaimedItem, failure: Failure, error: str, *, actor: str,
                  unexpected: bool = False, detail: dict[str, Any] | None = None, handler: bool = True) -> None:
    """The row ends ``failed`` or ``dead`` (``failure.status``); the rules show it (unless
    ``handler`` is False: the handler itself failed)."""
    if handler:
        _handle(item, "on_failed", conn, item.kind, item.payload, failure)
    conn.execute(
        sa.text("UPDATE outbox SET status = :status, last_error = :err, outcome_unknown = :unknown, "
                "unexpected_failures = unexpected_failures + :bug, completed_at = now(), "
                "locked_by = NULL, locked_until = NULL, updated_at = now() WHERE id = :id"),
        {"id": item.id, "status": failure.status, "err": error[:MAX_ERROR_CHARS], "unknown": failure.outcome_unknown,
         "bug": int(unexpected)},
    )
    write_audit(conn, actor=actor, system=item.system, operation=item.kind, key=item.key, outcome=failure.status,
                attempt=item.attempt.number, error=error[:MAX_ERROR_CHARS], detail=detail)
    log.warning("outbox %s %s: %s", item.id, failure.status, error[:300])


def record_lease_lost(conn: Connection, item: ClaimedItem, *, actor: str) -> None:
    """Audit the attempt the previous holder lost (this claim retook the row)."""
    write_audit(conn, actor=actor, system=item.system, operation=item.kind, key=item.key, outcome="lease_lost",
                attempt=item.attempt.number - 1,
                error=f"lease of {item.reclaimed_from} expired mid-attempt (the dispatcher died or stalled); "
                      "outcome unknown, retaken",
                detail={"unexpected_failures": item.unexpected_failures, "max_attempts": item.max_attempts})


def record_deferred(conn: Connection, item: ClaimedItem, wait_s: float) -> None:
    """Not an attempt: the recipient's send budget is spent, so the row waits ``wait_s``
    untouched (its attempt count and first-attempt time are restored)."""
    conn.execute(
        sa.text("UPDATE outbox SET status = 'pending', attempts = attempts - 1, "
                "first_attempt_at = CASE WHEN attempts = 1 THEN NULL ELSE first_attempt_at END, "
                "next_attempt_at = clock_timestamp() + make_interval(secs => :wait), locked_by = NULL, "
                "locked_until = NULL, updated_at = now() WHERE id = :id"),
        {"id": item.id, "wait": wait_s},
    )


__all__ = ["DispatcherLost", "EffectHandlerError", "record_deferred", "record_done", "record_failed", "record_lease_lost",
           "record_progress", "record_retry", "result_document", "still_mine"]
