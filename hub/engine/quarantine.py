"""Quarantine: source records the hub could not accept, kept whole with the reason.

Nothing is ever dropped: a record that fails mapping, validation or reference
resolution lands here with the raw payload and its source reference (system, stream,
external key), is counted in the run, and can be retried after the cause is fixed
(``hub quarantine retry``), which runs it through the same mapping and upsert again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.engine import Connection

from hub.engine.bulk import content_hash


@dataclass(frozen=True)
class Rejected:
    """One record that could not be accepted, and why."""

    source_ref: str | None
    reason: str
    payload: dict[str, Any]


def describe_error(exc: Exception) -> str:
    """A one-line, human-readable reason for a mapping/validation failure."""
    if isinstance(exc, ValidationError):
        parts = []
        for err in exc.errors(include_url=False, include_input=False):
            where = ".".join(str(p) for p in err["loc"]) or "record"
            parts.append(f"{where}: {err['msg']}")
        return "; ".join(parts)
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}"
    return str(exc) or type(exc).__name__


def store_rejected(conn: Connection, system: str, stream: str, run_id: int | None, rejected: list[Rejected]) -> None:
    """Insert quarantine rows for ``rejected`` in the caller's transaction."""
    if not rejected:
        return
    # A record that is still bad on the next sync is the same quarantine row, not a new
    # one: (system, stream, payload hash) is unique among open rows.
    conn.execute(
        sa.text(
            "INSERT INTO quarantine (system, stream, source_ref, reason, payload, payload_hash, run_id) "
            "VALUES (:system, :stream, :source_ref, :reason, CAST(:payload AS jsonb), :hash, :run_id) "
            "ON CONFLICT (system, stream, payload_hash) WHERE status = 'open' DO UPDATE SET "
            "reason = EXCLUDED.reason, run_id = EXCLUDED.run_id, attempts = quarantine.attempts + 1"
        ),
        [
            {
                "system": system, "stream": stream, "source_ref": r.source_ref, "reason": r.reason,
                "payload": json.dumps(r.payload, ensure_ascii=False, default=str), "run_id": run_id,
                "hash": content_hash(r.payload, "quarantine"),
            }
            for r in rejected
        ],
    )


def open_rows(conn: Connection, system: str | None = None, stream: str | None = None, limit: int = 100) -> list[Any]:
    """Open quarantine rows, newest first, optionally for one system/stream."""
    return list(conn.execute(
        sa.text(
            "SELECT id, system, stream, source_ref, reason, payload, attempts, created_at FROM quarantine "
            "WHERE status = 'open' AND (CAST(:system AS text) IS NULL OR system = :system) "
            "AND (CAST(:stream AS text) IS NULL OR stream = :stream) ORDER BY id DESC LIMIT :limit"
        ),
        {"system": system, "stream": stream, "limit": limit},
    ))
