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

import json
import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

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


def audit_text(text: str, limit: int = MAX_TEXT) -> str:
    """What the audit keeps of ``text``: personal data masked, at most ``limit`` characters
    (masked on a margin past the cut, so an address straddling it is masked, not halved)."""
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
        kept = {str(k)[:100]: _audit_tree(v, depth + 1) for k, v in items[:MAX_ITEMS]}
        if len(items) > MAX_ITEMS:
            kept["…"] = f"[{len(items) - MAX_ITEMS} more keys]"
        return kept
    if isinstance(value, list | tuple):
        kept_list = [_audit_tree(v, depth + 1) for v in value[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            kept_list.append(f"…[{len(value) - MAX_ITEMS} more items]")
        return kept_list
    return value


_INSERT = sa.text(
    "INSERT INTO audit_log (actor, system, operation, key, external_id, outcome, attempt, "
    "duration_ms, error, detail) VALUES (:actor, :system, :operation, :key, :external_id, "
    ":outcome, :attempt, :duration_ms, :error, CAST(:detail AS jsonb))"
)


def write_audit(
    conn: Connection, *, actor: str, system: str, operation: str, outcome: str,
    key: str | None = None, external_id: str | None = None, attempt: int = 1,
    duration_ms: float | None = None, error: str | None = None, detail: dict[str, Any] | None = None,
) -> None:
    """Append one audit row on ``conn`` (the caller's transaction)."""
    conn.execute(_INSERT, {
        "actor": actor, "system": system, "operation": operation, "outcome": outcome,
        "key": key, "external_id": external_id, "attempt": attempt, "duration_ms": duration_ms,
        "error": audit_text(error) if error else None,
        "detail": json.dumps(_audit_tree(detail or {}), ensure_ascii=False, default=str),
    })


class AuditObserver:
    """A ``hub.calls.CallObserver`` that appends each external call to the audit log."""

    def __init__(self, engine: Engine, actor: str) -> None:
        self.engine = engine
        self.actor = actor

    def __call__(self, call: ExternalCall) -> None:
        detail = {"http_status": call.http_status} if call.http_status else {}
        with self.engine.begin() as conn:
            write_audit(
                conn, actor=self.actor, system=call.system, operation=call.operation,
                outcome=call.outcome, key=call.key, external_id=call.external_id,
                attempt=call.attempt, duration_ms=round(call.duration_ms, 2), error=call.error,
                detail=detail,
            )
