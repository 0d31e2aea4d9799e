"""The append-only audit log: one row per external call and per batch.

Rows are written in their own short transactions so that a call is on record even
when the work around it rolls back. Personal data is masked on the way in (mobile
numbers, e-mail addresses inside error texts and details): the audit needs to know
*that* a call concerned someone, not their phone number. Texts are cut to a few KB and
containers to a bounded size (a callback event carries whatever its sender put in it),
and masking is linear in the text's length, so no value can make writing a row slow.
Secrets never get here: clients report error codes and vendor messages, never requests
or URLs.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from canonical_model.storable import UNSTORABLE_CHARACTER
from hub import prepared
from hub.calls import ExternalCall

# A mainland mobile, with or without the country code (+86 / 86, written together too).
_MOBILE = re.compile(r"(?<!\d)((?:\+?86[- ]?)?1[3-9]\d)(\d{4})(\d{4})(?!\d)")
# The local part may only start where a run of local-part characters starts (the
# lookbehind): without it the engine retries from every position inside a long run
# that has no "@", which is quadratic (a 60 KB nonce took 16 s to mask). With it each
# run is scanned once from its start, and every other position fails at once.
_LOCAL = "A-Za-z0-9._%+-"
_EMAIL = re.compile(rf"(?<![{_LOCAL}])([{_LOCAL}])[{_LOCAL}]*(@[A-Za-z0-9.-]+\.[A-Za-z]{{2,}})")

# What the audit keeps of one value: a few KB of text, a bounded number of items,
# bounded nesting. A callback event is whatever the platform (or a forger) sent; the
# audit needs to know what it was about, not every byte of it.
MAX_TEXT = 2000
MAX_ITEMS = 100
MAX_DEPTH = 8
# An e-mail address is at most 254 characters: masking this much beyond the cut masks
# every address that straddles it before the cut is made.
_MASK_MARGIN = 256


def mask_personal_data(text: str) -> str:
    """Mask mainland mobile numbers (138****5678) and e-mail local parts (z***@corp.cn).

    Linear in the length of ``text``.
    """
    text = _MOBILE.sub(r"\1****\3", text)
    return _EMAIL.sub(r"\1***\2", text)


def truncate_text(text: str, limit: int = MAX_TEXT) -> str:
    """``text`` cut to ``limit`` characters, noting how long it was when cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…[truncated, {len(text)} chars]"


def storable(text: str) -> str:
    """``text`` with what Postgres text and jsonb cannot hold (NUL, a lone surrogate) replaced
    by U+FFFD: a refused request's nonce of NULs is audited, not lost with the row."""
    return UNSTORABLE_CHARACTER.sub("\ufffd", text)


def audit_text(text: str, limit: int = MAX_TEXT) -> str:
    """What the audit keeps of ``text``: personal data masked, at most ``limit`` characters
    (masked on a margin past the cut, so an address straddling it is masked, not halved),
    storable (:func:`storable`)."""
    text = storable(text)
    if len(text) <= limit:
        return mask_personal_data(text)
    masked = mask_personal_data(text[: limit + _MASK_MARGIN])
    return f"{masked[:limit]}…[truncated, {len(text)} chars]"


def _audit_tree(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return audit_text(value)
    if depth >= MAX_DEPTH and isinstance(value, dict | list | tuple):
        return f"…[nested deeper than {MAX_DEPTH} levels]"
    if isinstance(value, dict):
        items = list(value.items())
        kept = {storable(str(k)[:100]): _audit_tree(v, depth + 1) for k, v in items[:MAX_ITEMS]}
        if len(items) > MAX_ITEMS:
            kept["…"] = f"[{len(items) - MAX_ITEMS} more keys]"
        return kept
    if isinstance(value, list | tuple):
        kept_list = [_audit_tree(v, depth + 1) for v in value[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            kept_list.append(f"…[{len(value) - MAX_ITEMS} more items]")
        return kept_list
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # jsonb has no NaN or Infinity
    return value


_INSERT = sa.text(
    "INSERT INTO audit_log (actor, system, operation, key, external_id, outcome, attempt, "
    "duration_ms, error, detail) VALUES (:actor, :system, :operation, :key, :external_id, "
    ":outcome, :attempt, :duration_ms, :error, CAST(:detail AS jsonb))"
)


def audit_row(
    *, actor: str, system: str, operation: str, outcome: str, key: str | None = None,
    external_id: str | None = None, attempt: int = 1, duration_ms: float | None = None,
    error: str | None = None, detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The parameters of one audit row, masked, cut and storable, ready for :func:`write_audit_rows`."""
    return {
        "actor": storable(actor), "system": system, "operation": storable(operation), "outcome": outcome,
        "key": storable(key) if key else key, "external_id": storable(external_id) if external_id else external_id,
        "attempt": attempt, "duration_ms": duration_ms,
        "error": audit_text(error) if error else None,
        "detail": json.dumps(_audit_tree(detail or {}), ensure_ascii=False, default=str),
    }


_COLUMNS = ("actor", "system", "operation", "key", "external_id", "outcome", "attempt", "duration_ms", "error",
            "detail")


@functools.lru_cache(maxsize=16)
def _insert_rows(n: int) -> str:
    """An INSERT of ``n`` audit rows in one statement (psycopg placeholders ``%(column_i)s``)."""
    values = ", ".join(
        "(" + ", ".join(f"CAST(%({c}_{i})s AS jsonb)" if c == "detail" else f"%({c}_{i})s" for c in _COLUMNS) + ")"
        for i in range(n))
    return f"INSERT INTO audit_log ({', '.join(_COLUMNS)}) VALUES {values}"


def write_audit_rows(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Append the :func:`audit_row` rows on ``conn`` (the caller's transaction) in one statement,
    sent prepared (``hub.prepared``: the outbox writes one or two with every effect)."""
    if rows:
        prepared.execute(conn, *audit_rows_statement(rows))


def audit_rows_statement(rows: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """The statement of :func:`write_audit_rows` and its parameters, for a caller that sends it
    with others (``hub.prepared.execute_pipelined``); ``rows`` must not be empty."""
    return _insert_rows(len(rows)), rows_parameters(rows)


def rows_parameters(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The parameters of :func:`audit_row` rows, named as the statements of :func:`write_audit_rows`
    and :func:`typed_values` name them (``%(column_i)s``, ``i`` the row's index)."""
    return {f"{column}_{i}": row[column] for i, row in enumerate(rows) for column in _COLUMNS}


# The column types of audit_log, for rows written through a SELECT (typed_values): there Postgres
# infers the types of the VALUES list from its parameters, and a column NULL in every row would be
# text, which a float column refuses.
_TYPES = {"attempt": "integer", "duration_ms": "double precision", "detail": "jsonb"}


def audit_columns() -> str:
    """The columns :func:`typed_values` rows fill, comma-separated, in their order."""
    return ", ".join(_COLUMNS)


@functools.lru_cache(maxsize=16)
def typed_values(n: int) -> str:
    """``n`` VALUES rows of audit columns (:func:`audit_columns`), each cast to its column's type,
    then the row's index: for an INSERT that selects some of the rows (``hub.outbox.outcomes``)."""
    return ", ".join(
        "(" + ", ".join(f"CAST(%({c}_{i})s AS {_TYPES.get(c, 'text')})" for c in _COLUMNS) + f", {i})"
        for i in range(n))


def write_audit(
    conn: Connection, *, actor: str, system: str, operation: str, outcome: str,
    key: str | None = None, external_id: str | None = None, attempt: int = 1,
    duration_ms: float | None = None, error: str | None = None, detail: dict[str, Any] | None = None,
) -> None:
    """Append one audit row on ``conn`` (the caller's transaction)."""
    conn.execute(_INSERT, audit_row(actor=actor, system=system, operation=operation, outcome=outcome, key=key,
                                    external_id=external_id, attempt=attempt, duration_ms=duration_ms, error=error,
                                    detail=detail))


# The call rows an AuditObserver holds back on this thread (deferred_calls), or None: write at once.
_DEFERRED: ContextVar[list[dict[str, Any]] | None] = ContextVar("hub_audit_deferred_calls", default=None)


@contextmanager
def deferred_calls(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Within the block, this thread's :class:`AuditObserver` appends each call's row to ``rows``
    instead of committing it at once; whoever opened the block writes them (:func:`write_audit_rows`,
    or a statement of its own built on :func:`typed_values`) in a transaction of its own choosing
    and clears the list.

    The outbox dispatcher does so for a write's calls: it writes the rows held back before the
    next call of the write starts, and the last call's with the attempt's outcome, in the same
    commit (``hub.outbox.dispatcher``). So, as when each row is committed as its call returns,
    at most one exchange per worker thread is unaudited at any moment, and a SIGKILL loses at
    most that: the call in flight, or the one just answered whose row waits for the next call or
    the outcome (milliseconds).
    """
    token = _DEFERRED.set(rows)
    try:
        yield rows
    finally:
        _DEFERRED.reset(token)


def deferred() -> list[dict[str, Any]] | None:
    """The rows held back on this thread (:func:`deferred_calls`), or None outside such a block."""
    return _DEFERRED.get()


class AuditObserver:
    """A ``hub.calls.CallObserver`` that appends each external call to the audit log, in a
    transaction of its own, or to the rows held back on this thread (:func:`deferred_calls`)."""

    def __init__(self, engine: Engine, actor: str) -> None:
        self.engine = engine
        self.actor = actor

    def __call__(self, call: ExternalCall) -> None:
        detail = {"http_status": call.http_status} if call.http_status else {}
        row = audit_row(actor=self.actor, system=call.system, operation=call.operation, outcome=call.outcome,
                        key=call.key, external_id=call.external_id, attempt=call.attempt,
                        duration_ms=round(call.duration_ms, 2), error=call.error, detail=detail)
        deferred = _DEFERRED.get()
        if deferred is not None:
            deferred.append(row)
            return
        with self.engine.begin() as conn:
            write_audit_rows(conn, [row])
