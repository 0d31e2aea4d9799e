"""The outbox table's own operations: enqueue an effect, list and replay dead letters, count.

Enqueue (:func:`enqueue`) runs inside the caller's transaction, so "order approved"
and "send it to the ERP" commit together or not at all; the idempotency key is
unique, so enqueueing twice is harmless. Rows given the same ``ordering_key`` are
delivered one after another in the order they were enqueued (``hub.outbox.claims``).
``replay`` requeues dead letters with the
outcome marked unknown, so the writer looks the effect up before applying it: a replay
never creates a twin.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hub.audit import write_audit
from hub.errors import NotFoundError


def enqueue(conn: Connection, kind: str, key: str, payload: dict[str, Any], *, max_attempts: int = 6,
            ordering_key: str | None = None) -> int | None:
    """Add an effect to the outbox in the caller's transaction; None if the key exists.

    With an ``ordering_key`` the row is not attempted while an earlier row of that key
    (a lower id) is still pending or in progress: one key's effects land in order, each
    after the previous one is done or given up (failed, dead)."""
    return conn.execute(
        sa.text(
            "INSERT INTO outbox (kind, idempotency_key, payload, max_attempts, ordering_key) "
            "VALUES (:kind, :key, CAST(:payload AS jsonb), :max, :ordering) ON CONFLICT (idempotency_key) DO NOTHING "
            "RETURNING id"
        ),
        {"kind": kind, "key": key, "payload": json.dumps(payload, ensure_ascii=False, default=str),
         "max": max_attempts, "ordering": ordering_key},
    ).scalar()


def dead_letters(conn: Connection, *, include_failed: bool = True, limit: int = 200, offset: int = 0) -> list[Any]:
    """Dead (and, by default, permanently failed) outbox rows, oldest first (``offset`` of them skipped)."""
    statuses = ["dead", "failed"] if include_failed else ["dead"]
    return list(conn.execute(
        sa.text("SELECT id, kind, idempotency_key, status, attempts, last_error, updated_at FROM outbox "
                "WHERE status = ANY(:st) ORDER BY id LIMIT :limit OFFSET :offset"),
        {"st": statuses, "limit": limit, "offset": offset},
    ))


def replay(conn: Connection, ids: list[int] | None = None, *, actor: str = "cli") -> int:
    """Requeue dead/failed rows (all of them when ``ids`` is None); returns how many.

    The outcome is marked unknown so the writer looks the effect up before applying it:
    a replay adopts an earlier write instead of creating a twin (and resumes a multi-step
    write from where it stopped). The retry budget and ``max_attempts`` start afresh.
    """
    rows = conn.execute(
        sa.text("UPDATE outbox SET status = 'pending', attempts = 0, unexpected_failures = 0, next_attempt_at = now(), "
                "first_attempt_at = NULL, outcome_unknown = true, completed_at = NULL, updated_at = now() "
                "WHERE status IN ('dead', 'failed') AND (CAST(:ids AS bigint[]) IS NULL OR id = ANY(CAST(:ids AS bigint[]))) "
                "RETURNING id, kind, idempotency_key"),
        {"ids": ids},
    ).all()
    if ids is not None:
        missing = set(ids) - {r.id for r in rows}
        if missing:
            raise NotFoundError(f"no dead or failed outbox row with id {', '.join(map(str, sorted(missing)))}")
    for row in rows:
        write_audit(conn, actor=actor, system="hub", operation="dlq:replay", key=row.idempotency_key,
                    outcome="requeued", detail={"outbox_id": row.id, "kind": row.kind})
    return len(rows)


def outbox_summary(conn: Connection, kind: str | None = None) -> dict[str, int]:
    """Row counts per status, optionally for one kind (for `hub doctor`, Dagster checks)."""
    return {status: count for status, count in conn.execute(
        sa.text("SELECT status, count(*) FROM outbox WHERE CAST(:kind AS text) IS NULL OR kind = :kind "
                "GROUP BY status"), {"kind": kind})}


__all__ = ["dead_letters", "enqueue", "outbox_summary", "replay"]
