"""The outbox: outbound effects committed with the domain change, dispatched exactly once.

:mod:`.queue` holds the table's operations (enqueue, dead letters, replay),
:mod:`.dispatcher` drives rows through the connectors' writers, concurrently, with
:mod:`.claims` (leasing rows within each system's limits), :mod:`.leases` (renewal),
:mod:`.budget` (per-recipient send budgets in Postgres), :mod:`.retry` (what follows a
failure), :mod:`.outcomes` (recording it) and :mod:`.tracebacks` (bugs, secret-free);
:mod:`.effects` is where the domain rules register what an effect's outcome changes in
the canonical store.
"""

from hub.outbox.claims import ClaimedItem
from hub.outbox.dispatcher import DispatchCounts, Dispatcher
from hub.outbox.queue import dead_letters, enqueue, outbox_summary, replay

__all__ = ["ClaimedItem", "DispatchCounts", "Dispatcher", "dead_letters", "enqueue", "outbox_summary", "replay"]
