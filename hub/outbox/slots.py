"""Call slots: a system's writes in flight, counted only while the writer talks to the system.

A system's :class:`~hub.contracts.CallLimits` ``concurrency`` caps its writes in flight,
whoever runs them (a write may make several calls, one after the other). A slot is held
from just before a writer's ``apply`` to just after it returns: the hub's own Postgres work
on the row (claim, lease, outcome, its audit, the rules' handler) is done outside it, so it
does not eat into what the vendor allows. With ``CallLimits.per_call`` (the connectors
whose every call goes through ``connectors.kit.http.send``) the cap counts HTTP exchanges,
as the vendor counts requests: the dispatcher makes :meth:`CallSlots.held` the call gate of
the worker's thread (``hub.calls.gated``) and ``send`` holds a slot around each exchange
only, so the audit row of each call (committed before the write's next call, or with its
outcome: ``hub.audit.deferred_calls``) and the writer's work between calls are outside it too.
The rows held back before a call are committed on the worker's slot connection, in one
autocommit statement, just before its slot is waited for (:meth:`CallSlots.held`'s
``audit_first``): no transaction, no pool check-out of their own. An exchange made while the thread already holds one of the system's
slots passes through instead of waiting for a second (``hub.calls.call_slot`` is re-entrant
per thread, for any gate).

**Across every dispatcher.** Slot *i* of a system is the Postgres session advisory lock
(hash of schema and system, *i*). A worker takes the first free one of ``0 … concurrency-1``
with ``pg_try_advisory_lock`` on a connection of its own (autocommit: nothing is written, no
WAL, one round trip) and unlocks it when the call is over. A dispatcher that dies loses its
connections and with them its slots, at once (no lease to wait for; a call it had under way
may still be finishing at the vendor for as long as the vendor takes to answer it, which a
dispatcher restarting within that time could overlap). If that connection
breaks during a call (Postgres restarted), the slot is freed while the call may still run:
the cap can then be exceeded by those calls until they end; the vendor answers an excess
with its overload code, a retry like any other.

The slot connections are not the hub's pooled ones: a worker holds its connection for
the whole run (so a slot costs two statements, no connect and no pool check-out), and a
process running many dispatchers (tests) must not starve the pool its outcomes are
recorded through. They are opened on first use and closed at the end of each run.

**Inside one process.** Workers of a dispatcher first take a local semaphore of the same
size, so they queue in the process without polling the database; only when other
dispatchers hold slots does a worker poll (every few milliseconds, backing off to 50 ms).

Per system, the time workers waited for a slot and held one, and whether a worker is
waiting now, are counted (:meth:`CallSlots.figures`) for the benchmarks' "share of time
held back by the limit".
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from hub import prepared
from hub.audit import write_audit_rows
from hub.database import Database, create_db_engine
from hub.errors import RetryableError

log = logging.getLogger(__name__)

# Sent prepared on the driver's connection (hub.prepared): a slot is taken and given back around
# every call, and SQLAlchemy's per-statement work cost more CPU than the round trip (py-spy, 2,000
# webhooks: 16 % of the workers' GIL time went to these two statements through SQLAlchemy).
_TAKE = ("SELECT s FROM generate_series(0, %(n)s - 1) AS s "
         "WHERE pg_try_advisory_lock(hashtext(current_schema() || '|outbox-call|' || %(system)s), s) LIMIT 1")
_GIVE_BACK = "SELECT pg_advisory_unlock(hashtext(current_schema() || '|outbox-call|' || %(system)s), %(s)s)"

FIRST_POLL_S = 0.002
LAST_POLL_S = 0.05


@dataclass(frozen=True)
class SlotFigures:
    """One system's slots in this process: writes holding one now, workers waiting for one
    now, seconds waited and held in all, writes that held one."""

    in_flight: int
    waiting: int
    waited_s: float
    held_s: float
    writes: int


@dataclass
class _SystemSlots:
    """One system's slots as this process sees them."""

    limit: int
    local: threading.BoundedSemaphore
    in_flight: int = 0  # this process's calls holding a slot
    waiting: int = 0  # this process's workers waiting for one
    waited_s: float = 0.0
    held_s: float = 0.0
    calls: int = 0


@dataclass
class CallSlots:
    """Slots per system for the workers of one dispatcher (thread-safe).

    Each worker thread keeps one autocommit connection for its slot locks (opened on first
    use, closed by :meth:`close`); a connection found broken is dropped and opened anew.
    """

    db: Database
    _engine: Engine | None = None
    _systems: dict[str, _SystemSlots] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _local: threading.local = field(default_factory=threading.local)
    _connections: list[Connection] = field(default_factory=list)

    def _slots(self, system: str, limit: int) -> _SystemSlots:
        with self._lock:
            slots = self._systems.get(system)
            if slots is None or slots.limit != limit:
                slots = self._systems[system] = _SystemSlots(limit, threading.BoundedSemaphore(limit))
            return slots

    def _connection(self) -> Connection:
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.invalidated:
            with self._lock:
                if self._engine is None:
                    self._engine = create_db_engine(self.db.url, self.db.schema, poolclass=NullPool)
                engine = self._engine
            conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def held(self, system: str, limit: int, audit_first: list[dict[str, Any]] | None = None) -> Iterator[None]:
        """Hold one of ``system``'s ``limit`` slots for the duration of the block.

        ``audit_first``: audit rows (``hub.audit.audit_row``) committed before the slot is
        waited for (the list is cleared once they are): the rows of a write's earlier calls,
        held back until its next call (``hub.audit.deferred_calls``). On this autocommit
        connection they cost one statement, no transaction of their own; and being committed
        before, not with, the slot's statement, no commit's flush keeps a slot from the other
        workers. If the database does not answer, they stay in the list and a RetryableError
        is raised (the next call is not made).
        """
        if audit_first:
            self._write_audit(system, audit_first)
        slots = self._slots(system, limit)
        started = time.perf_counter()
        with self._lock:
            slots.waiting += 1
        try:
            slots.local.acquire()
            try:
                slot = self._take(system, limit)
            except BaseException:
                slots.local.release()
                raise
        finally:
            with self._lock:
                slots.waiting -= 1
                slots.waited_s += time.perf_counter() - started
        with self._lock:
            slots.in_flight += 1
            slots.calls += 1
        taken = time.perf_counter()
        try:
            yield
        finally:
            with self._lock:
                slots.in_flight -= 1
                slots.held_s += time.perf_counter() - taken
            try:
                self._give_back(system, slot)
            finally:
                slots.local.release()

    def _write_audit(self, system: str, rows: list[dict[str, Any]]) -> None:
        """Commit ``rows`` on this thread's connection (autocommit: one statement) and clear them."""
        conn: Connection | None = None
        try:
            conn = self._connection()
            write_audit_rows(conn, rows)
        except SQLAlchemyError as exc:
            if conn is not None:
                conn.invalidate()
            # the next call is not made; the rows stay held back, for the outcome's transaction
            raise RetryableError(f"audit not written: the database did not answer ({type(exc).__name__})",
                                 system=system, operation="audit") from None
        rows.clear()

    def _take(self, system: str, limit: int) -> int:
        """The number of a slot now locked by this thread's connection (waits for one)."""
        pause = FIRST_POLL_S
        while True:
            conn: Connection | None = None
            try:
                conn = self._connection()
                slot = _scalar(conn, _TAKE, {"n": limit, "system": system})
            except SQLAlchemyError as exc:
                # nothing was sent; but earlier calls of the same write may have been: a retry
                # (outcome unknown, the writer looks up first) is the safe answer
                if conn is not None:
                    conn.invalidate()
                raise RetryableError(f"no call slot: the database did not answer ({type(exc).__name__})",
                                     system=system, operation="call-slot") from None
            if slot is not None:
                return int(slot)
            time.sleep(pause)  # other dispatchers hold every slot
            pause = min(pause * 2, LAST_POLL_S)

    def _give_back(self, system: str, slot: int) -> None:
        conn: Connection | None = None
        try:
            conn = self._connection()
            if _scalar(conn, _GIVE_BACK, {"system": system, "s": slot}):
                return
            log.warning("outbox: call slot %s of %s was no longer held (its session ended mid-call)", slot, system)
        except SQLAlchemyError:
            # the connection broke during the call: its session, and the lock with it, are gone;
            # the attempt's outcome is still recorded (or its lease lapses) as usual
            log.warning("outbox: call slot %s of %s: connection lost during the call", slot, system, exc_info=True)
        if conn is not None:
            conn.invalidate()  # a fresh session for the next slot

    def figures(self, system: str) -> SlotFigures:
        """What this process's workers did with ``system``'s slots so far."""
        with self._lock:
            slots = self._systems.get(system)
            if slots is None:
                return SlotFigures(0, 0, 0.0, 0.0, 0)
            return SlotFigures(slots.in_flight, slots.waiting, slots.waited_s, slots.held_s, slots.calls)

    def close(self) -> None:
        """Close every worker's connection (their locks, if any, go with them)."""
        with self._lock:
            connections, self._connections = self._connections, []
            engine, self._engine = self._engine, None
        for conn in connections:
            conn.close()
        if engine is not None:
            engine.dispose()
        self._local = threading.local()


def _scalar(conn: Connection, query: str, params: dict[str, object]) -> Any:
    """The first column of the first row of ``query`` on ``conn`` (autocommit; not counted)."""
    rows = prepared.execute(conn, query, params, count=False)
    return rows[0][0] if rows else None


__all__ = ["CallSlots", "SlotFigures"]
