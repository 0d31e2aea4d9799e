"""The append-only audit log: one row per external call and per batch.

Rows are written in their own short transactions so that a call is on record even
when the work around it rolls back. Personal data is masked on the way in (mobile
numbers, e-mail addresses inside error texts and details): the audit needs to know
*that* a call concerned someone, not their phone number. Secrets never get here:
clients report error codes and vendor messages, never requests or URLs.
"""

from __future__ import annotations

import json
import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from hub.calls import ExternalCall

_MOBILE = re.compile(r"(?<!\d)(1[3-9]\d)(\d{4})(\d{4})(?!\d)")
_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*(@[A-Za-z0-9.-]+\.[A-Za-z]{2,})")


def mask_personal_data(text: str) -> str:
    """Mask mainland mobile numbers (138****5678) and e-mail local parts (z***@corp.cn)."""
    text = _MOBILE.sub(r"\1****\3", text)
    return _EMAIL.sub(r"\1***\2", text)


def _mask_tree(value: Any) -> Any:
    if isinstance(value, str):
        return mask_personal_data(value)
    if isinstance(value, dict):
        return {k: _mask_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_tree(v) for v in value]
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
        "error": mask_personal_data(error) if error else None,
        "detail": json.dumps(_mask_tree(detail or {}), ensure_ascii=False, default=str),
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
