"""The outbox: outbound effects committed with the domain change, dispatched exactly once.

:mod:`.queue` holds the table's operations (enqueue, dead letters, replay),
:mod:`.dispatcher` drives rows through the connectors' writers, and :mod:`.effects` is
where the domain rules register what an effect's outcome changes in the canonical store.
"""

from hub.outbox.dispatcher import ClaimedItem, DispatchCounts, Dispatcher
from hub.outbox.queue import dead_letters, enqueue, outbox_summary, replay

__all__ = ["ClaimedItem", "DispatchCounts", "Dispatcher", "dead_letters", "enqueue", "outbox_summary", "replay"]
