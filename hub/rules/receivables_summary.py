"""After each sync of a receivable or receipt stream, the receivables report's summary is
rebuilt (:func:`hub.ar_summary.refresh_receivables_summary`), aged as of today in the hub's
timezone, in one transaction."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from hub.ar_summary import refresh_receivables_summary
from hub.runtime import HubRuntime, after_stream


def refresh_after_ledger_sync(runtime: HubRuntime, spec: Any, stream: Any) -> None:
    """Rebuild the summary from the bills and receipts as they are now."""
    with runtime.db.begin() as conn:
        refresh_receivables_summary(conn, dt.datetime.now(ZoneInfo(runtime.settings.timezone)).date())


after_stream("receivable", refresh_after_ledger_sync)
after_stream("receipt", refresh_after_ledger_sync)
