"""Lease renewal: a live dispatcher keeps its rows; a dead one loses them within seconds.

Leases are short (``OutboxSettings.lease_s``, seconds). While a write runs, a
:class:`Heartbeat` thread renews the leases of the rows this dispatcher is working on
every ``lease_s / 3``, in one statement for all of them. A dispatcher that is SIGKILLed
stops renewing, so its rows are ready to be retaken ``lease_s`` later; one that stalls
(a call running longer than ``max_call_s``) stops renewing that row, which is then
retaken as well (and counted, ``hub.outbox.claims``). Renewal only ever extends a lease
this dispatcher holds on this attempt, so it cannot take a row back from the dispatcher
that retook it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from hub.database import Database

log = logging.getLogger(__name__)

_RENEW = sa.text(
    "UPDATE outbox o SET locked_until = clock_timestamp() + make_interval(secs => :lease) "
    "FROM unnest(CAST(:ids AS bigint[]), CAST(:attempts AS int[])) AS held(id, attempt) "
    "WHERE o.id = held.id AND o.attempts = held.attempt AND o.locked_by = :me AND o.status = 'in_progress'")


class Heartbeat:
    """Renews the leases of the rows ``held()`` returns (``{id: (attempt, started_monotonic)}``)."""

    def __init__(self, db: Database, worker_id: str, *, lease_s: float, max_call_s: float,
                 held: Callable[[], dict[int, tuple[int, float]]]) -> None:
        self._db = db
        self._worker_id = worker_id
        self._lease_s = lease_s
        self._max_call_s = max_call_s
        self._held = held
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"outbox-heartbeat-{worker_id}", daemon=True)
        self.renewals = 0

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        interval = self._lease_s / 3
        while not self._stop.wait(interval):
            try:
                self.renew()
            except SQLAlchemyError:
                # The database is unreachable: leases may lapse and rows be retaken; the
                # outcome of a retaken row is then refused here (outcomes.still_mine).
                log.exception("outbox: lease renewal failed")

    def renew(self) -> int:
        """Extend the leases of the rows still worth holding; returns how many."""
        now = time.monotonic()
        rows = [(row_id, attempt) for row_id, (attempt, started) in self._held().items()
                if now - started < self._max_call_s]
        if not rows:
            return 0
        with self._db.begin() as conn:
            renewed = conn.execute(_RENEW, {"ids": [r[0] for r in rows], "attempts": [r[1] for r in rows],
                                            "lease": self._lease_s, "me": self._worker_id}).rowcount
        self.renewals += 1
        return int(renewed)


__all__ = ["Heartbeat"]
