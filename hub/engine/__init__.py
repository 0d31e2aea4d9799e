"""The inbound sync engine: pages from a stream into the canonical store, crash-safe.

:mod:`.sync` drives a stream page by page (one transaction each, cursor included),
:mod:`.intake` checks a page's records (key, stamp, one per key) and maps them,
:mod:`.targets` writes each canonical target (identity and reference resolution, bulk
merge), :mod:`.isolation` sets aside the records the database still refuses,
:mod:`.bulk` is the staging + COPY merge, :mod:`.quarantine` keeps what could not be
accepted, whole, with the reason.
"""

from hub.engine.sync import SyncCounts, SyncReport, retry_quarantined, sync_stream

__all__ = ["SyncCounts", "SyncReport", "retry_quarantined", "sync_stream"]
