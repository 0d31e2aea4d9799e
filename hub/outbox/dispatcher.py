"""The outbox dispatcher: claims ready rows and drives them through the connectors' writers.

A :class:`Dispatcher` runs writes concurrently on a bounded pool of worker threads
(``OutboxSettings.workers``). It claims rows with ``FOR UPDATE SKIP LOCKED`` only as
fast as workers allow and within a bound on each system's rows held (``hub.outbox.claims``);
a worker that finishes a row takes the next ready row of the same system in the
transaction that records the outcome, so a busy pool needs no separate claims. Each
system's :class:`~hub.contracts.CallLimits` ``concurrency`` caps its calls in flight across
*every* dispatcher: a worker holds one of the system's call slots only while its writer
runs, or, for connectors that declare ``per_call``, only while each HTTP exchange of the
write is under way (``hub.outbox.slots``, through the thread's call gate, ``hub.calls``);
never while the hub claims the row and records its outcome.
It spends per-recipient send budgets in Postgres before a send
(``hub.outbox.budget``), keeps its short leases alive while the work runs
(``hub.outbox.leases``), and records each attempt's outcome (``hub.outbox.outcomes``).

The audit row of each call a per-call writer makes is held back on the worker's thread
and committed before the write's next call (one autocommit statement on the worker's slot
connection, ``CallSlots.held``), or with the attempt's outcome (``hub.audit.deferred_calls``):
a single-call write (a webhook, a chat message) costs one commit, not two, and a three-call
order one transaction. At most one exchange per worker thread is unaudited at any moment, in
flight or answered and about to be committed; a SIGKILL loses at most those.

A worker records outcomes on a pooled connection it keeps from one row of its chain to the
next (``Dispatcher._transaction``), not checked out (and pinged) per row.

Per attempt, the writer's ``apply`` is called once; when an earlier attempt's outcome is
unknown (timeout, dropped reply, 5xx after sending, a dispatcher that died holding the
row) the writer looks the effect up first (once) and adopts an earlier write instead of
repeating it, resuming a multi-step write from the step the system has reached and
reporting progress on the way (``hub.outbox.effects``).

``feed`` (optional) is called before each claim, at most every ``POLL_S``: work that turns
into outbox rows only where the configuration is known (webhook events become deliveries
to the configured endpoints, ``hub.rules.webhooks``) is handed over there. What happens after a failure is
decided by ``hub.outbox.retry``: permanent errors fail the row, transient ones are retried
within a time budget, unexpected exceptions (bugs) are logged with their traceback (also
kept, secret-free, in the audit) and retried up to ``max_attempts``. Whatever a writer
raises, the row's outcome is recorded: it is never left ``in_progress`` by a live
dispatcher, and a dead dispatcher's rows are retaken when their lease expires.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import logging
import os
import secrets
import select
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import QueuePool

from hub import audit, calls
from hub.contracts import CallLimits, Writer, WriteResult
from hub.database import Database
from hub.errors import ConnectorError, PermanentError, RateLimitedError
from hub.outbox import budget, claims, effects, tracebacks
from hub.outbox.claims import ClaimedItem
from hub.outbox.effects import Failure
from hub.outbox.leases import Heartbeat
from hub.outbox.outcomes import (
    DispatcherLost,
    EffectHandlerError,
    record_deferred,
    record_done,
    record_failed,
    record_lease_lost,
    record_progress,
    record_retry,
    still_mine,
)
from hub.outbox.retry import AttemptState, RetryPolicy
from hub.outbox.slots import CallSlots
from hub.settings import OutboxSettings

log = logging.getLogger(__name__)

POLL_S = 0.2  # while writes are in flight, look for newly ready rows at least this often


@dataclass
class DispatchCounts:
    """What a dispatch run did; also Dagster metadata.

    ``claimed`` attempts started, ``done`` rows completed (``adopted`` of them found
    already written), ``retried`` attempts rescheduled, ``failed``/``dead`` rows given
    up, ``deferred`` rows put back untouched because their recipient's send budget was
    spent, ``reclaimed`` rows retaken from a dispatcher whose lease expired.
    """

    claimed: int = 0
    done: int = 0
    adopted: int = 0
    retried: int = 0
    failed: int = 0
    dead: int = 0
    deferred: int = 0
    reclaimed: int = 0


class _Progress:
    """The last progress a writer reported during one attempt (``Attempt.progress``)."""

    def __init__(self) -> None:
        self.last: WriteResult | None = None

    def report(self, progress: WriteResult) -> None:
        self.last = progress


WriterFactory = Callable[[str], Writer]
LimitsFactory = Callable[[str], CallLimits]


def default_limits(system: str) -> CallLimits:
    """Limits of a system whose connector declares none."""
    return CallLimits()


class Dispatcher:
    """Claims outbox rows and drives them through their writers, several at a time.

    ``writer_for(kind)`` returns the writer for an outbox kind (built once per kind);
    ``limits_for(system)`` the system's call limits (built once per system).
    """

    def __init__(
        self, db: Database, writer_for: WriterFactory, settings: OutboxSettings | None = None, *,
        kinds: list[str] | None = None, worker_id: str | None = None, limits_for: LimitsFactory | None = None,
        feed: Callable[[], object] | None = None,
    ) -> None:
        self.db = db
        self.settings = settings or OutboxSettings()
        self.kinds = kinds
        # unique per instance: two dispatchers in one process must not pass for one another
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"
        self.actor = f"dispatcher:{self.worker_id}"
        self.policy = RetryPolicy(self.settings)
        self._writer_for = writer_for
        self._limits_for = limits_for or default_limits
        self._feed = feed
        self._fed_at = -POLL_S
        self._writers: dict[str, Writer] = {}
        self._limits: dict[str, CallLimits] = {}
        self._held: dict[int, tuple[int, float]] = {}  # rows being worked on: id → (attempt, started)
        self._lock = threading.Lock()
        self.saturated = False  # the last claim found a system at its bound on rows held
        self._claims_left: int | None = None  # a run's cap on claims (run_once); None: no cap
        self._handing_over = False  # workers take the next row themselves while a run wants more
        self.slots = CallSlots(db)  # each system's calls in flight, across dispatchers
        self._own = threading.local()  # a worker thread's own connection (_transaction)

    # -- what the dispatcher works with ----------------------------------------------------

    def writer(self, kind: str) -> Writer:
        """The (cached) writer for ``kind``; refused when no effect handler is registered."""
        with self._lock:
            if kind not in self._writers:
                effects.handler_for(kind)
                self._writers[kind] = self._writer_for(kind)
            return self._writers[kind]

    def limits(self, system: str) -> CallLimits:
        """The (cached) call limits of ``system``."""
        with self._lock:
            if system not in self._limits:
                self._limits[system] = self._limits_for(system)
            return self._limits[system]

    def _bump(self, counts: DispatchCounts, name: str, by: int = 1) -> None:
        with self._lock:
            setattr(counts, name, getattr(counts, name) + by)

    # -- claiming --------------------------------------------------------------------------

    def claim(self, limit: int = 10, counts: DispatchCounts | None = None) -> list[ClaimedItem]:
        """Lease up to ``limit`` ready rows, system by system within each system's limits
        (``saturated`` tells whether a system was at its bound on rows held).

        In the same transaction, a retaken row is audited (``lease_lost``) and dead-lettered
        when it has been lost ``max_attempts`` times, and a row whose recipient's send
        budget is spent is put back untouched until the budget has room. Writers (and so
        configuration errors) are resolved before anything is claimed.
        """
        counts = counts if counts is not None else DispatchCounts()
        taken: list[ClaimedItem] = []
        self.saturated = False
        self.feed()
        limit = self._allowed_claims(limit)
        for system, kinds in self._ready_systems().items():
            if len(taken) >= limit:
                break
            limits = self.limits(system)
            for kind in kinds:
                self.writer(kind)
            with self.db.begin() as conn:
                leased = claims.claim(conn, system=system, kinds=kinds, limit=limit - len(taken),
                                      held=claims.rows_held(limits.concurrency), worker_id=self.worker_id,
                                      lease_s=self.settings.lease_s)
                self.saturated |= leased.full
                for item in leased.items:
                    admitted = self._admit(conn, item, limits, counts)
                    if admitted is not None:
                        taken.append(admitted)
        return taken

    def feed(self) -> None:
        """Run ``feed`` (at most every ``POLL_S``), turning fed work into outbox rows."""
        if self._feed is None or time.monotonic() - self._fed_at < POLL_S:
            return
        self._fed_at = time.monotonic()
        self._feed()

    def _allowed_claims(self, wanted: int) -> int:
        """How many of ``wanted`` claims the run's cap leaves (and take them from it)."""
        with self._lock:
            if self._claims_left is None:
                return wanted
            allowed = max(min(wanted, self._claims_left), 0)
            self._claims_left -= allowed
            return allowed

    def _hand_over(self, conn: Connection, finished: ClaimedItem, counts: DispatchCounts) -> ClaimedItem | None:
        """The next ready row of ``finished``'s system, leased in the transaction that recorded
        ``finished``'s outcome (``claims.take``: the system's writes in flight stay the same)."""
        if not self._handing_over or not self._allowed_claims(1):
            return None
        system = finished.system
        with self._lock:
            kinds = [k for k in self._writers if k.partition(".")[0] == system]
        limits = self.limits(system)
        for item in claims.take(conn, kinds=kinds, limit=1, worker_id=self.worker_id,
                                lease_s=self.settings.lease_s):
            return self._admit(conn, item, limits, counts)
        with self._lock:  # nothing to take: the claim was not used
            if self._claims_left is not None:
                self._claims_left += 1
        return None

    def _ready_systems(self) -> dict[str, list[str]]:
        if self.kinds is not None:
            kinds = list(self.kinds)
        else:
            with self.db.begin() as conn:
                kinds = claims.ready_kinds(conn)
        by_system: dict[str, list[str]] = defaultdict(list)
        for kind in kinds:
            by_system[kind.partition(".")[0]].append(kind)
        return dict(by_system)

    def _admit(self, conn: Connection, item: ClaimedItem, limits: CallLimits,
               counts: DispatchCounts) -> ClaimedItem | None:
        if item.reclaimed_from is not None:
            self._bump(counts, "reclaimed")
            record_lease_lost(conn, item, actor=self.actor)
            if item.unexpected_failures >= item.max_attempts:
                error = DispatcherLost(f"retaken {item.unexpected_failures} times from dispatchers that died or "
                                       f"stalled while holding it (max_attempts {item.max_attempts})")
                failure = Failure("dead", error, outcome_unknown=True)
                try:
                    with conn.begin_nested():  # a failing handler must not undo the whole claim
                        record_failed(conn, item, failure, str(error), actor=self.actor)
                except EffectHandlerError as exc:
                    log.error("outbox %s (%s): %s", item.id, item.kind, exc, exc_info=exc.__cause__)
                    record_failed(conn, item, failure, f"{error}; {exc}", actor=self.actor, handler=False)
                self._bump(counts, "dead")
                return None
        send_budget = limits.budgets.get(item.kind.partition(".")[2])
        recipient = send_budget.recipient(item.payload) if send_budget is not None else ""
        if send_budget is None or not recipient:
            self._bump(counts, "claimed")
            return item
        reservation = budget.reserve(conn, send_budget, recipient, item.id)
        if not reservation.granted:
            record_deferred(conn, item, reservation.wait_s)
            self._bump(counts, "deferred")
            return None
        self._bump(counts, "claimed")
        return item.with_spend(reservation.spend_id)

    # -- one attempt -----------------------------------------------------------------------

    def process(self, item: ClaimedItem, counts: DispatchCounts) -> None:
        """Run one claimed row through its writer and record the outcome, whatever the
        writer raises (a failure of the row is never raised from here)."""
        try:
            self._attempt(item, counts)
        finally:
            self._give_back_connection()

    def _attempt(self, item: ClaimedItem, counts: DispatchCounts) -> ClaimedItem | None:
        """One attempt; returns the row handed over to this worker next, if any."""
        progress = _Progress()
        attempt = replace(item.attempt, progress=progress.report)
        writer = self.writer(item.kind)
        limits = self.limits(item.system)
        # a slot of the system is held only while the writer runs, or only while each of its
        # HTTP exchanges is under way (CallLimits.per_call; hub.outbox.slots)
        hold = calls.gated(self._call_slot) if limits.per_call else self.slots.held(item.system, limits.concurrency)
        # the audit rows of a per-call writer's calls are held back and written before its next
        # call, or with the outcome (the last call's row shares the outcome's commit): at most
        # one exchange per worker is unaudited at any moment, as before (hub.audit.deferred_calls)
        held_back: list[dict[str, Any]] = []
        defer = audit.deferred_calls(held_back) if limits.per_call else contextlib.nullcontext(held_back)
        try:
            with defer, hold:
                result = writer.apply(item.key, item.payload, attempt)
        except Exception as exc:  # every exception is a failed attempt; the policy sorts them
            return self._after_failure(item, exc, progress.last, counts, held_back)
        return self._after_success(item, result, counts, held_back)

    @contextlib.contextmanager
    def _call_slot(self, system: str) -> Iterator[None]:
        """One of ``system``'s call slots (the call gate of a worker running a per-call writer),
        taken once the audit rows of the write's earlier calls are committed
        (``hub.audit.deferred_calls``; ``CallSlots.held``): if they cannot be, the next call is
        not made, and the rows stay held back for the outcome's transaction."""
        with self.slots.held(system, self.limits(system).concurrency, audit.deferred()):
            yield

    def _after_success(self, item: ClaimedItem, result: WriteResult, counts: DispatchCounts,
                       held_back: list[dict[str, Any]]) -> ClaimedItem | None:
        def record(conn: Connection) -> ClaimedItem | None:
            self._settle_spend(conn, item, reached=True)
            if not record_done(conn, item, result, actor=self.actor, worker_id=self.worker_id, calls=held_back):
                return None
            self._bump(counts, "done")
            self._bump(counts, "adopted", int(result.adopted))
            return self._hand_over(conn, item, counts)

        return self._recorded(item, record, counts, reached=True, held_back=held_back)

    def _after_failure(self, item: ClaimedItem, error: Exception, progress: WriteResult | None,
                       counts: DispatchCounts, held_back: list[dict[str, Any]]) -> ClaimedItem | None:
        unexpected = not isinstance(error, ConnectorError)
        if unexpected:
            log.error("outbox %s (%s): unexpected %s from the writer", item.id, item.kind, type(error).__name__,
                      exc_info=error)
        text = tracebacks.summary(error) if unexpected else str(error)
        detail = {"traceback": tracebacks.formatted(error)} if unexpected else None
        state = AttemptState(item.attempt.number, item.attempt.first_attempt_at, item.attempt.outcome_unknown,
                             item.unexpected_failures, item.max_attempts)
        decision = self.policy.decide(error, state, dt.datetime.now(dt.UTC))
        # a refusal (permanent, rate limited) reached nobody: the send budget is given back
        reached = not isinstance(error, PermanentError | RateLimitedError)

        def record(conn: Connection) -> ClaimedItem | None:
            self._settle_spend(conn, item, reached=reached)
            audit.write_audit_rows(conn, held_back)
            if not still_mine(conn, item, self.worker_id):
                return None
            record_progress(conn, item, progress)
            if decision.outcome == "retry":
                record_retry(conn, item, decision, text, actor=self.actor, detail=detail)
            else:
                failure = Failure(decision.outcome, error, decision.outcome_unknown, decision.reason)
                reason = f"{decision.reason}; last error: {text}" if decision.reason else text
                record_failed(conn, item, failure, reason, actor=self.actor, unexpected=decision.unexpected,
                              detail=detail)
            self._bump(counts, {"retry": "retried", "failed": "failed", "dead": "dead"}[decision.outcome])
            return self._hand_over(conn, item, counts)

        return self._recorded(item, record, counts, reached=reached, held_back=held_back)

    def _recorded(self, item: ClaimedItem, record: Callable[[Connection], ClaimedItem | None],
                  counts: DispatchCounts, *, reached: bool, held_back: list[dict[str, Any]]) -> ClaimedItem | None:
        """Run ``record`` in one transaction (it writes the ``held_back`` audit rows of the
        write's calls too, whether or not the row is still this dispatcher's); when the rules'
        handler raises, dead-letter the row without it instead (outcome unknown: a replay looks
        the effect up and retries the handler)."""
        try:
            with self._transaction() as conn:
                return record(conn)
        except EffectHandlerError as exc:
            cause = exc.__cause__ or exc
            log.error("outbox %s (%s): %s", item.id, item.kind, exc, exc_info=cause)
            with self._transaction() as conn:
                self._settle_spend(conn, item, reached=reached)
                audit.write_audit_rows(conn, held_back)
                if still_mine(conn, item, self.worker_id):
                    record_failed(conn, item, Failure("dead", exc, outcome_unknown=True), tracebacks.summary(exc),
                                  actor=self.actor, unexpected=True, handler=False,
                                  detail={"traceback": tracebacks.formatted(cause)})
                    self._bump(counts, "dead")
            return None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """A transaction on this worker thread's own connection, committed on success.

        A worker keeps the pooled connection it records outcomes on from one row to the next
        of its chain (``_work`` gives it back when the chain ends): a check-out per row cost
        the pool's bookkeeping and its pre-ping, a round trip (py-spy and cProfile on 2,000
        webhooks: about a tenth of the dispatcher's CPU). The ping is replaced by a look at
        the socket (:func:`_still_open`); a connection that fails a statement is given back
        (the pool replaces it if it broke) and the next transaction checks out another one.
        It keeps it only while the pool has room for the rest of the process
        (:func:`_room_to_keep`): other dispatchers in the process (tests race several), the
        claims and the heartbeat check out theirs as before.
        """
        conn: Connection | None = getattr(self._own, "conn", None)
        if conn is None or not _still_open(conn):
            self._give_back_connection()
            conn = self.db.engine.connect()
            self._own.conn = conn
        try:
            with conn.begin():
                yield conn
        except SQLAlchemyError:
            self._give_back_connection()
            raise
        if not _room_to_keep(self.db.engine.pool):
            self._give_back_connection()

    def _give_back_connection(self) -> None:
        """Return this worker thread's own connection to the pool (if it holds one)."""
        conn: Connection | None = getattr(self._own, "conn", None)
        self._own.conn = None
        if conn is not None:
            conn.close()

    @staticmethod
    def _settle_spend(conn: Connection, item: ClaimedItem, *, reached: bool) -> None:
        if item.spend_id is None:
            return
        if reached:
            budget.settle(conn, item.spend_id)
        else:
            budget.release(conn, item.spend_id)

    def _work(self, item: ClaimedItem, counts: DispatchCounts) -> None:
        """A worker thread's chain of attempts: ``item``, then each row handed over to it.
        A row's lease is renewed from its claim until its outcome is recorded."""
        current: ClaimedItem | None = item
        try:
            while current is not None:
                following = None
                try:
                    following = self._attempt(current, counts)
                except Exception:  # recording the outcome failed (database gone): the lease will lapse
                    log.exception("outbox %s: outcome not recorded; the row is retaken when its lease expires",
                                  current.id)
                with self._lock:
                    self._held.pop(current.id, None)
                    if following is not None:
                        self._held[following.id] = (following.attempt.number, time.monotonic())
                current = following
        finally:
            self._give_back_connection()  # the chain is over: the worker's connection goes back to the pool

    def _held_rows(self) -> dict[int, tuple[int, float]]:
        with self._lock:
            return dict(self._held)

    # -- runs ------------------------------------------------------------------------------

    def run_once(self, batch: int = 10) -> DispatchCounts:
        """Claim up to ``batch`` rows in all and process them (concurrently); wait for all."""
        return self._run(max_claims=batch)

    def drain(self, *, batch: int | None = None, wait_for_scheduled: bool = False, timeout_s: float = 600.0,
              on_batch: Callable[[DispatchCounts], None] | None = None) -> DispatchCounts:
        """Process until nothing is ready, keeping up to ``workers`` writes in flight (at most
        ``batch`` claimed at a time). With ``wait_for_scheduled`` also wait for rows whose retry
        is scheduled in the future (tests, the demo), up to ``timeout_s``; writes in flight
        are always finished. ``on_batch(totals)`` is called at least every 0.2 s while writes
        are in flight (progress displays)."""
        return self._run(batch=batch, wait_for_scheduled=wait_for_scheduled, timeout_s=timeout_s,
                         on_batch=on_batch)

    def _run(self, *, max_claims: int | None = None, batch: int | None = None, wait_for_scheduled: bool = False,
             timeout_s: float = 0.0, on_batch: Callable[[DispatchCounts], None] | None = None) -> DispatchCounts:
        counts = DispatchCounts()
        deadline = time.monotonic() + timeout_s
        self._claims_left = max_claims
        self._handing_over = True
        try:
            with _Pool(self, counts) as pool:
                while True:
                    room = min(pool.free, batch or pool.free)
                    # past a waiting run's deadline nothing new is claimed: rows that fail and come
                    # due again faster than the loop turns would otherwise keep it running for ever
                    if room > 0 and not (wait_for_scheduled and time.monotonic() > deadline):
                        for item in self.claim(room, counts):
                            pool.submit(item)
                    if pool.busy:
                        pool.wait(POLL_S)
                        if on_batch is not None:
                            on_batch(counts)
                        if time.monotonic() > deadline and wait_for_scheduled:
                            self._handing_over = False  # finish what is in flight, take nothing new
                        continue
                    if self._claims_left is not None and self._claims_left <= 0:
                        return counts
                    if self.saturated and time.monotonic() <= deadline:
                        time.sleep(POLL_S)  # other dispatchers hold every slot of a system: wait for one
                        continue
                    if not wait_for_scheduled or time.monotonic() > deadline:
                        return counts
                    wait = self._seconds_until_next()
                    if wait is None:
                        return counts
                    time.sleep(min(max(wait, 0.01), 1.0))
        finally:
            self._claims_left = None
            self._handing_over = False

    def _seconds_until_next(self) -> float | None:
        with self.db.begin() as conn:
            value = conn.execute(sa.text(
                "SELECT EXTRACT(EPOCH FROM MIN(CASE WHEN status = 'pending' THEN next_attempt_at "
                "ELSE locked_until END) - clock_timestamp()) FROM outbox WHERE status IN ('pending', 'in_progress') "
                f"AND {claims.NOT_BLOCKED} "
                "AND (CAST(:kinds AS text[]) IS NULL OR kind = ANY(CAST(:kinds AS text[])))"),
                {"kinds": self.kinds}).scalar()
        return None if value is None else float(value)


SPARE_CONNECTIONS = 4  # of the pool's capacity, left free by workers keeping theirs (claims, heartbeat, others)


def _room_to_keep(pool: object) -> bool:
    """Whether a worker may keep its connection checked out: the pool's capacity less those
    checked out leaves ``SPARE_CONNECTIONS`` for others (any other pool: connections unbounded)."""
    if not isinstance(pool, QueuePool) or pool._max_overflow < 0:
        return True
    return pool.checkedout() + SPARE_CONNECTIONS <= pool.size() + pool._max_overflow


def _still_open(conn: Connection) -> bool:
    """Whether a connection kept idle between transactions is still a live session, without a
    round trip: an idle session is sent nothing, so anything to read on its socket (the
    FATAL of a server shutting down, or the end of the stream) means the server ended it."""
    if conn.closed or conn.invalidated:
        return False
    driver = conn.connection.driver_connection
    if driver is None or driver.closed:
        return False
    poller = select.poll()
    poller.register(driver.fileno(), select.POLLIN)
    return not poller.poll(0)


class _Pool:
    """The dispatcher's worker threads, the attempts in flight on them, and their heartbeat."""

    def __init__(self, dispatcher: Dispatcher, counts: DispatchCounts) -> None:
        self._dispatcher = dispatcher
        self._counts = counts
        self._size = dispatcher.settings.workers
        self._executor = concurrent.futures.ThreadPoolExecutor(self._size, thread_name_prefix="outbox-worker")
        self._futures: set[concurrent.futures.Future[None]] = set()
        settings = dispatcher.settings
        self._heartbeat = Heartbeat(dispatcher.db, dispatcher.worker_id, lease_s=settings.lease_s,
                                    max_call_s=settings.max_call_s, held=dispatcher._held_rows)

    @property
    def free(self) -> int:
        """Workers without an attempt."""
        return self._size - len(self._futures)

    @property
    def busy(self) -> bool:
        """True while any attempt is in flight."""
        return bool(self._futures)

    def submit(self, item: ClaimedItem) -> None:
        """Start ``item``'s attempt on a free worker (its lease is renewed from now on)."""
        with self._dispatcher._lock:
            self._dispatcher._held[item.id] = (item.attempt.number, time.monotonic())
        self._futures.add(self._executor.submit(self._dispatcher._work, item, self._counts))

    def wait(self, timeout: float) -> int:
        """Wait until an attempt finishes (or ``timeout``); returns how many finished."""
        finished, _ = concurrent.futures.wait(self._futures, timeout, concurrent.futures.FIRST_COMPLETED)
        self._futures -= finished
        return len(finished)

    def __enter__(self) -> _Pool:
        self._heartbeat.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            concurrent.futures.wait(self._futures)
            self._executor.shutdown(wait=True)
        finally:
            self._heartbeat.__exit__()
            self._dispatcher.slots.close()  # the workers' slot connections (their threads are gone)


__all__ = ["ClaimedItem", "DispatchCounts", "Dispatcher", "default_limits"]
