"""The outbox dispatcher: claims ready rows and drives them through the connectors' writers.

A :class:`Dispatcher` claims ready rows with ``FOR UPDATE SKIP LOCKED`` (any number of
dispatchers, in threads, processes or machines, can share the table), calls the
connector's writer, and records the outcome. The error class decides what happens:

======================  ======================================================
``RateLimitedError``    wait the platform's interval, try again
``RetryableError``      back off exponentially with jitter (tenacity), try again;
                        the outcome of the failed call is *unknown* from now on
``AuthExpiredError``    the client already refreshed once; treated as retryable
``PermanentError``      no retry: status ``failed``, reason recorded
attempts used up        status ``dead`` (a dead letter), replayable
======================  ======================================================

When the outcome of an earlier attempt is unknown (timeout, dropped response, a
dispatcher that died holding the row), the writer's ``find_existing`` runs first and
an earlier write is *adopted* instead of repeated. What an outcome changes in the
canonical store is decided by the handler registered for the kind's writer name
(:mod:`hub.outbox.effects`), in the transaction that completes the row.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from tenacity import RetryCallState, wait_exponential_jitter

from hub.audit import write_audit
from hub.contracts import Attempt, Writer, WriteResult
from hub.database import Database
from hub.errors import ConnectorError, PermanentError, RateLimitedError, RetryableError
from hub.outbox import effects
from hub.settings import OutboxSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClaimedItem:
    """An outbox row this dispatcher holds a lease on."""

    id: int
    kind: str
    key: str
    payload: dict[str, Any]
    attempt: Attempt
    max_attempts: int


@dataclass
class DispatchCounts:
    """What a dispatch run did; also Dagster metadata."""

    claimed: int = 0
    done: int = 0
    adopted: int = 0
    retried: int = 0
    failed: int = 0
    dead: int = 0


WriterFactory = Callable[[str], Writer]


class Dispatcher:
    """Claims outbox rows and drives them through their writers.

    ``writer_for(kind)`` returns the writer for an outbox kind (built once per kind).
    """

    def __init__(
        self, db: Database, writer_for: WriterFactory, settings: OutboxSettings | None = None, *,
        kinds: list[str] | None = None, worker_id: str | None = None,
    ) -> None:
        self.db = db
        self.settings = settings or OutboxSettings()
        self.kinds = kinds
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}"
        self._writer_for = writer_for
        self._writers: dict[str, Writer] = {}
        self._wait = wait_exponential_jitter(
            initial=self.settings.backoff_initial_s, max=self.settings.backoff_max_s,
            jitter=self.settings.backoff_initial_s,
        )

    def writer(self, kind: str) -> Writer:
        """The (cached) writer for ``kind``; refused when no effect handler is registered."""
        if kind not in self._writers:
            effects.handler_for(kind)
            self._writers[kind] = self._writer_for(kind)
        return self._writers[kind]

    def claim(self, limit: int = 10) -> list[ClaimedItem]:
        """Lease up to ``limit`` ready rows (pending and due, or with an expired lease)."""
        with self.db.begin() as conn:
            rows = conn.execute(
                sa.text(
                    "UPDATE outbox o SET status = 'in_progress', locked_by = :me, "
                    "locked_until = now() + make_interval(secs => :lease), attempts = o.attempts + 1, "
                    "first_attempt_at = COALESCE(o.first_attempt_at, now()), "
                    # a row retaken after its lease expired: its holder may have sent it
                    "outcome_unknown = o.outcome_unknown OR o.status = 'in_progress', updated_at = now() "
                    "WHERE o.id IN (SELECT id FROM outbox WHERE "
                    "((status = 'pending' AND next_attempt_at <= now()) "
                    " OR (status = 'in_progress' AND locked_until < now())) "
                    "AND (CAST(:kinds AS text[]) IS NULL OR kind = ANY(CAST(:kinds AS text[]))) "
                    "ORDER BY next_attempt_at, id LIMIT :limit FOR UPDATE SKIP LOCKED) "
                    "RETURNING o.id, o.kind, o.idempotency_key, o.payload, o.attempts, o.first_attempt_at, "
                    "o.outcome_unknown, o.max_attempts"
                ),
                {"me": self.worker_id, "lease": self.settings.lease_s, "limit": limit, "kinds": self.kinds},
            ).all()
        return [
            ClaimedItem(r.id, r.kind, r.idempotency_key, r.payload,
                        Attempt(r.attempts, r.first_attempt_at, r.outcome_unknown), r.max_attempts)
            for r in sorted(rows, key=lambda r: r.id)
        ]

    def process(self, item: ClaimedItem, counts: DispatchCounts) -> None:
        """Run one claimed row through its writer and record the outcome."""
        writer = self.writer(item.kind)
        try:
            result = self._call_writer(writer, item)
        except PermanentError as exc:
            self._finish_failed(item, writer, exc, "failed")
            counts.failed += 1
        except (RetryableError, ConnectorError) as exc:
            if item.attempt.number >= item.max_attempts:
                self._finish_failed(item, writer, exc, "dead")
                counts.dead += 1
            else:
                self._reschedule(item, exc)
                counts.retried += 1
        else:
            self._finish_done(item, writer, result)
            counts.done += 1
            counts.adopted += int(result.adopted)

    def _call_writer(self, writer: Writer, item: ClaimedItem) -> WriteResult:
        if item.attempt.outcome_unknown:
            existing = writer.find_existing(item.key, item.payload)
            if existing is not None:
                return WriteResult(existing.external_id, existing.status, True, existing.detail)
        return writer.apply(item.key, item.payload, item.attempt)

    def _finish_done(self, item: ClaimedItem, writer: Writer, result: WriteResult) -> None:
        with self.db.begin() as conn:
            if not self._still_mine(conn, item):
                return
            effects.handler_for(item.kind).on_done(conn, item.kind, item.payload, result)
            conn.execute(
                sa.text("UPDATE outbox SET status = 'done', result = CAST(:result AS jsonb), completed_at = now(), "
                        "locked_by = NULL, locked_until = NULL, last_error = NULL, updated_at = now() "
                        "WHERE id = :id"),
                {"id": item.id, "result": json.dumps({"external_id": result.external_id, "status": result.status,
                                                      "adopted": result.adopted, **result.detail},
                                                     ensure_ascii=False, default=str)},
            )
            write_audit(conn, actor=f"dispatcher:{self.worker_id}", system=writer.system,
                        operation=item.kind, key=item.key, external_id=result.external_id,
                        outcome="adopted" if result.adopted else "ok", attempt=item.attempt.number)

    def _finish_failed(self, item: ClaimedItem, writer: Writer, exc: Exception, status: str) -> None:
        with self.db.begin() as conn:
            if not self._still_mine(conn, item):
                return
            effects.handler_for(item.kind).on_failed(conn, item.kind, item.payload, exc, status)
            conn.execute(
                sa.text("UPDATE outbox SET status = :status, last_error = :err, completed_at = now(), "
                        "locked_by = NULL, locked_until = NULL, updated_at = now() WHERE id = :id"),
                {"id": item.id, "status": status, "err": str(exc)[:2000]},
            )
            write_audit(conn, actor=f"dispatcher:{self.worker_id}", system=writer.system, operation=item.kind,
                        key=item.key, outcome=status, attempt=item.attempt.number, error=str(exc)[:2000])
        log.warning("outbox %s %s: %s", item.id, status, exc)

    def _reschedule(self, item: ClaimedItem, exc: Exception) -> None:
        if isinstance(exc, RateLimitedError):
            delay = exc.retry_after
            unknown = item.attempt.outcome_unknown  # the platform refused it: nothing was applied
        else:
            state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
            state.attempt_number = item.attempt.number
            delay = self._wait(state)
            unknown = True
        with self.db.begin() as conn:
            if not self._still_mine(conn, item):
                return
            conn.execute(
                sa.text("UPDATE outbox SET status = 'pending', last_error = :err, outcome_unknown = :unknown, "
                        "next_attempt_at = now() + make_interval(secs => :delay), locked_by = NULL, "
                        "locked_until = NULL, updated_at = now() WHERE id = :id"),
                {"id": item.id, "err": str(exc)[:2000], "unknown": unknown, "delay": delay},
            )
            write_audit(conn, actor=f"dispatcher:{self.worker_id}", system=getattr(exc, "system", "hub"),
                        operation=item.kind, key=item.key, outcome="retry", attempt=item.attempt.number,
                        error=str(exc)[:2000], detail={"retry_in_s": round(delay, 3)})

    def _still_mine(self, conn: Connection, item: ClaimedItem) -> bool:
        # Lock the row and check the lease: a dispatcher that stalled past its lease
        # must not overwrite the outcome recorded by the one that retook the row.
        holder = conn.execute(
            sa.text("SELECT locked_by FROM outbox WHERE id = :id AND status = 'in_progress' AND attempts = :n "
                    "FOR UPDATE"),
            {"id": item.id, "n": item.attempt.number},
        ).scalar()
        if holder != self.worker_id:
            log.warning("outbox %s: lease lost to %s; outcome not recorded here", item.id, holder)
            return False
        return True

    def run_once(self, batch: int = 10) -> DispatchCounts:
        """Claim one batch and process it."""
        counts = DispatchCounts()
        items = self.claim(batch)
        counts.claimed = len(items)
        for item in items:
            self.process(item, counts)
        return counts

    def drain(self, *, batch: int = 10, wait_for_scheduled: bool = False, timeout_s: float = 600.0,
              on_batch: Callable[[DispatchCounts], None] | None = None) -> DispatchCounts:
        """Process until nothing is ready. With ``wait_for_scheduled`` also wait for rows
        whose retry is scheduled in the future (tests, the demo), up to ``timeout_s``."""
        import time

        total = DispatchCounts()
        deadline = time.monotonic() + timeout_s
        while True:
            counts = self.run_once(batch)
            for name in vars(total):
                setattr(total, name, getattr(total, name) + getattr(counts, name))
            if on_batch is not None and counts.claimed:
                on_batch(total)
            if counts.claimed:
                continue
            if not wait_for_scheduled or time.monotonic() > deadline:
                return total
            wait = self._seconds_until_next()
            if wait is None:
                return total
            time.sleep(min(max(wait, 0.01), 1.0))

    def _seconds_until_next(self) -> float | None:
        with self.db.begin() as conn:
            value = conn.execute(sa.text(
                "SELECT EXTRACT(EPOCH FROM MIN(CASE WHEN status = 'pending' THEN next_attempt_at "
                "ELSE locked_until END) - now()) FROM outbox WHERE status IN ('pending', 'in_progress') "
                "AND (CAST(:kinds AS text[]) IS NULL OR kind = ANY(CAST(:kinds AS text[])))"),
                {"kinds": self.kinds}).scalar()
        return None if value is None else float(value)


__all__ = ["ClaimedItem", "DispatchCounts", "Dispatcher"]
