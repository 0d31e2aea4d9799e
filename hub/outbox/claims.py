"""Claiming outbox rows: ``FOR UPDATE SKIP LOCKED``, short leases, per-system concurrency.

:func:`claim` leases ready rows of one system to one dispatcher, in the caller's
transaction. Ready means pending and due, or ``in_progress`` with an expired lease (its
dispatcher died or stalled: a *reclaim*). Rows are taken oldest-due first with
``FOR UPDATE SKIP LOCKED``, so any number of dispatchers share the table.

**Rows held across dispatchers.** A system's :class:`~hub.contracts.CallLimits` caps its
calls in flight, whoever makes them; that cap is kept where the calls are made, by call
slots (``hub.outbox.slots``), which a writer holds only while it talks to the system. A
row is held longer: from its claim through its recorded outcome (the hub's own Postgres
work). So that the system's slots stay busy while rows are being claimed and recorded, the
rows held of one system, across every dispatcher, are bounded by :func:`rows_held`
(twice the cap), not by the cap: claims for one system are serialised by a
transaction-level advisory lock; inside it, the rows of that system that are
``in_progress`` under a live lease are counted, and only the difference to the bound is
claimed. A dispatcher that dies keeps its rows until its leases expire (seconds).

**Handing over.** A worker that finishes a row may take the next ready row of the same
system in the very transaction that records the outcome (:func:`take`, no lock, no
count): one row leaves ``in_progress`` as another enters, so the rows held do not change
and the bound holds without serialising on the lock; and the outcome and the next claim
share one commit.

**Ordering keys.** A row with an ``ordering_key`` is not ready while an earlier row of the
same key (lower id) is pending or in progress, whatever its due time: a key's rows are
attempted one at a time, in enqueue order, each after the previous one is done, failed or
dead. Rows of other keys are not held up (the blocked rows are filtered out before the
``LIMIT``, so they take no claim slot). A claim reads due rows in claim order from an index
and probes each one's key for an earlier row (``_CLAIM``), so it costs a handful of index
reads however many rows are pending, unless many blocked rows come first. The check reads committed state: a row another
dispatcher is just claiming is still ``pending`` to it, so its successor stays blocked.

**Reclaims count.** Retaking a row whose lease expired marks its outcome unknown (the lost
attempt may have reached the system) and adds one to ``unexpected_failures``: a row that
keeps killing or stalling its dispatcher is dead-lettered at ``max_attempts`` instead of
being retried forever (the dispatcher does that with the returned item).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hub import prepared
from hub.contracts import Attempt

_SERIALISE = sa.text("SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || '|outbox-claim|' "
                     "|| :system, 0))")
_IN_FLIGHT = sa.text("SELECT count(*) FROM outbox WHERE status = 'in_progress' AND locked_until >= clock_timestamp() "
                     "AND split_part(kind, '.', 1) = :system")
_READY = ("((status = 'pending' AND next_attempt_at <= now()) "
          "OR (status = 'in_progress' AND locked_until < clock_timestamp()))")
# A row with an ordering key is ready only as its key's head: the oldest (lowest id) row of that
# key still pending or in progress. Written as "id IN (heads)" rather than "NOT EXISTS (an
# earlier row)": the heads are one hashed aggregate per claim, where NOT EXISTS probed the
# index once per candidate row (measured, 3,000 pending rows over 60 keys: 1.4 ms a claim
# against 6.4 ms; 0.8 ms without ordering).
NOT_BLOCKED = ("(outbox.ordering_key IS NULL OR outbox.id IN (SELECT min(head.id) FROM outbox head "
               "WHERE head.ordering_key IS NOT NULL AND head.status IN ('pending', 'in_progress') "
               "GROUP BY head.ordering_key))")
# A candidate row ``c`` is blocked by an earlier row (lower id) of its ordering key still pending or
# in progress: one probe of ix_outbox_ordering per candidate looked at.
_HEAD = ("(c.ordering_key IS NULL OR NOT EXISTS (SELECT 1 FROM outbox earlier WHERE earlier.ordering_key = "
         "c.ordering_key AND earlier.id < c.id AND earlier.status IN ('pending', 'in_progress')))")
_CANDIDATES = ("SELECT c.id, c.next_attempt_at, c.status AS was_status, c.locked_by AS was_holder FROM outbox c "
               "WHERE {ready} AND c.kind = ANY(CAST(%(kinds)s AS text[])) AND " + _HEAD +
               " ORDER BY c.next_attempt_at, c.id LIMIT %(n)s FOR UPDATE SKIP LOCKED")
# Due rows are read in claim order from ix_outbox_due (pending rows by next_attempt_at, id), so a
# claim stops after the first few it can take; rows whose lease lapsed (few: at most the rows held)
# are looked for apart, and the first ``n`` of both are claimed. Grouping every pending row by its
# key on each claim (NOT_BLOCKED) cost 33 ms a claim with 10,000 pending webhooks over 500 keys,
# 0.8 ms with 1,000 (EXPLAIN ANALYZE); this reads a handful of index entries either way. Sent
# prepared on the driver's connection (hub.prepared): it runs once per effect.
_CLAIM = (
    "WITH due AS (" + _CANDIDATES.format(ready="c.status = 'pending' AND c.next_attempt_at <= now()") + "), "
    "lapsed AS (" + _CANDIDATES.format(ready="c.status = 'in_progress' AND c.locked_until < clock_timestamp()") + "), "
    "picked AS (SELECT * FROM due UNION ALL SELECT * FROM lapsed ORDER BY next_attempt_at, id LIMIT %(n)s) "
    "UPDATE outbox o SET status = 'in_progress', locked_by = %(me)s, "
    "locked_until = clock_timestamp() + make_interval(secs => %(lease)s), attempts = o.attempts + 1, "
    "first_attempt_at = COALESCE(o.first_attempt_at, now()), "
    # a row retaken after its lease expired: its holder may have sent it, and lost it
    "outcome_unknown = o.outcome_unknown OR picked.was_status = 'in_progress', "
    "unexpected_failures = o.unexpected_failures + CASE WHEN picked.was_status = 'in_progress' THEN 1 ELSE 0 END, "
    "updated_at = now() FROM picked WHERE o.id = picked.id "
    "RETURNING o.id, o.kind, o.idempotency_key, o.payload, o.attempts, o.first_attempt_at, o.outcome_unknown, "
    "o.max_attempts, o.unexpected_failures, picked.was_status, picked.was_holder")
# The due rows must be read from ix_outbox_due in claim order, stopping after the first few.
# Statistics taken while the outbox was small (before a burst of enqueues, until autovacuum's next
# ANALYZE) make the planner estimate a handful of pending rows and prefer a bitmap scan of every
# pending row and a sort: measured on a benchmark's outbox at 6,461 pending webhooks, 65 ms a
# claim (EXPLAIN ANALYZE: bitmap scan estimated 7 rows, found 10,000), against well under 1 ms
# for the index scan. So the claim's transaction turns both off for itself (``is_local``: the
# settings end with the transaction) before the claim is planned, and JIT with them: the sort of
# the few rows picked cannot be avoided, and its cost with sorts "off" passes JIT's threshold
# (measured: 2.3 s of JIT compilation for a 0.5 ms claim).
_IN_CLAIM_ORDER = ("SELECT set_config('enable_bitmapscan', 'off', true), "
                   "set_config('enable_sort', 'off', true), set_config('jit', 'off', true)")
_READY_KINDS = sa.text(f"SELECT DISTINCT kind FROM outbox WHERE {_READY}")


@dataclass(frozen=True)
class ClaimedItem:
    """An outbox row this dispatcher holds a lease on.

    ``unexpected_failures`` includes a reclaim made by this claim; ``reclaimed_from`` is
    the dispatcher whose lease expired, when this claim retook the row; ``spend_id`` the
    send-budget row spent for this attempt (``hub.outbox.budget``), if any.
    """

    id: int
    kind: str
    key: str
    payload: dict[str, Any]
    attempt: Attempt
    max_attempts: int
    unexpected_failures: int = 0
    reclaimed_from: str | None = None
    spend_id: int | None = None

    @property
    def system(self) -> str:
        """The external system the row's effect goes to (``kingdee`` of ``kingdee.sales_order``)."""
        return self.kind.partition(".")[0]

    def with_spend(self, spend_id: int | None) -> ClaimedItem:
        """This item with the send-budget row spent for the attempt."""
        return replace(self, spend_id=spend_id)


@dataclass(frozen=True)
class Claim:
    """What one claim leased; ``full``: the system's rows held were at their bound."""

    items: list[ClaimedItem]
    full: bool = False


ROWS_PER_SLOT = 2


def rows_held(concurrency: int) -> int:
    """Rows of a system held at once, across dispatchers, for a cap of ``concurrency`` calls:
    one calling per slot, and as many again being claimed or recorded meanwhile."""
    return ROWS_PER_SLOT * concurrency


def claim(
    conn: Connection, *, system: str, kinds: Sequence[str], limit: int, held: int, worker_id: str,
    lease_s: float,
) -> Claim:
    """Lease up to ``limit`` ready rows of ``kinds`` (all of ``system``), keeping the system's
    rows in progress, across every dispatcher, at most ``held``."""
    if limit <= 0 or not kinds:
        return Claim([])
    conn.execute(_SERIALISE, {"system": system})
    in_flight = int(conn.execute(_IN_FLIGHT, {"system": system}).scalar_one())
    room = min(limit, held - in_flight)
    if room <= 0:
        return Claim([], full=True)
    return Claim(take(conn, kinds=kinds, limit=room, worker_id=worker_id, lease_s=lease_s))


def take(conn: Connection, *, kinds: Sequence[str], limit: int, worker_id: str, lease_s: float) -> list[ClaimedItem]:
    """Lease up to ``limit`` ready rows of ``kinds`` without looking at the system's bound:
    for :func:`claim`, and for a worker handing its slot over to the next row."""
    if limit <= 0 or not kinds:
        return []
    prepared.execute(conn, _IN_CLAIM_ORDER, {})
    rows = prepared.execute(conn, _CLAIM, {"kinds": list(kinds), "n": limit, "me": worker_id,
                                           "lease": float(lease_s)})
    return [
        ClaimedItem(row_id, kind, key, payload, Attempt(attempts, first_attempt_at, outcome_unknown), max_attempts,
                    unexpected_failures, was_holder if was_status == "in_progress" else None)
        for (row_id, kind, key, payload, attempts, first_attempt_at, outcome_unknown, max_attempts,
             unexpected_failures, was_status, was_holder) in sorted(rows, key=lambda r: r[0])
    ]


def ready_kinds(conn: Connection) -> list[str]:
    """Outbox kinds with rows ready to be claimed now."""
    return sorted(conn.execute(_READY_KINDS).scalars())


__all__ = ["NOT_BLOCKED", "ROWS_PER_SLOT", "Claim", "ClaimedItem", "claim", "ready_kinds", "rows_held", "take"]
