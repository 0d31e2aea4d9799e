"""Refused callback requests on the audit, in aggregate past a threshold per source.

Forged, replayed and malformed requests must be on record, but a flood of them must not
become a flood of audit rows (442 forged requests a second were 442 rows a second).
Refusals are counted in Postgres per (system, source, window) — the source is the
client address, an IPv6 address counted by its /64 since one host holds a whole /64 —
so every web process shares the count:

- the first ``individual`` refusals of a source in a window get one audit row each
  (operation ``callback``, outcome ``rejected``, the reason and request details);
- when the window has closed, a source that went past ``individual`` gets one more row,
  operation ``callback:rejections``, with the window's total and the count per reason.

Closed windows are collected by :meth:`RejectionAudit.close_windows`: on a refusal at
most every few seconds, and by ``hub serve``'s maintenance task, so the aggregate row
comes even when the flood stops. The collection deletes the window rows it reports
(``DELETE ... RETURNING``), so two processes never both report one window. At most
``individual + 1`` rows per source per window, whatever the rate.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa

from hub.audit import write_audit
from hub.database import Database

INDIVIDUAL_PER_WINDOW = 20
WINDOW_S = 60.0

_COUNT = sa.text(
    "INSERT INTO callback_rejection_window AS w (system, source, window_start, rejections, reasons, last_at) "
    "VALUES (:system, :source, to_timestamp(:window_start), 1, jsonb_build_object(CAST(:reason AS text), 1), "
    "to_timestamp(:at)) "
    "ON CONFLICT (system, source, window_start) DO UPDATE SET rejections = w.rejections + 1, "
    "reasons = w.reasons || jsonb_build_object(CAST(:reason AS text), "
    "COALESCE((w.reasons ->> CAST(:reason AS text))::int, 0) + 1), "
    "last_at = greatest(w.last_at, EXCLUDED.last_at) "
    "RETURNING rejections"
)
_CLOSE = sa.text(
    "DELETE FROM callback_rejection_window WHERE system = :system AND window_start <= to_timestamp(:cutoff) "
    "RETURNING source, window_start, rejections, reasons, last_at"
)


def source_of(client: str) -> str:
    """Who a refusal is counted against: the client address, an IPv6 one as its /64."""
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return (client or "unknown")[:64]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        if not address.is_loopback:
            return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class RejectionAudit:
    """``on_rejected`` for one system's callbacks (see the module docstring)."""

    def __init__(self, db: Database, system: str, *, individual: int = INDIVIDUAL_PER_WINDOW,
                 window_s: float = WINDOW_S, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.system = system
        self.actor = f"web:{system}-callback"
        self.individual = individual
        self.window_s = window_s
        self.clock = clock
        self._next_close = 0.0

    def __call__(self, reason: str, details: Mapping[str, str]) -> None:
        """Count one refusal; audit it on its own while its source is under the threshold."""
        at = self.clock()
        source = source_of(details.get("client", ""))
        window_start = math.floor(at / self.window_s) * self.window_s
        with self.db.begin() as conn:
            nth = conn.execute(_COUNT, {"system": self.system, "source": source, "window_start": window_start,
                                        "reason": reason[:100], "at": at}).scalar_one()
            if nth <= self.individual:
                write_audit(conn, actor=self.actor, system=self.system, operation="callback", outcome="rejected",
                            error=reason, detail={"reason": reason, **dict(details), "source": source})
        if at >= self._next_close:
            self.close_windows(at)

    def close_windows(self, at: float | None = None) -> int:
        """Report the windows closed by ``at`` (default now): one aggregate row for each
        source past the threshold. Returns the number of aggregate rows written."""
        at = self.clock() if at is None else at
        self._next_close = at + self.window_s / 4
        written = 0
        with self.db.begin() as conn:
            for window in conn.execute(_CLOSE, {"system": self.system, "cutoff": at - self.window_s}).all():
                if window.rejections > self.individual:
                    write_audit(conn, actor=self.actor, system=self.system, operation="callback:rejections",
                                outcome="rejected", error=self._summary(window),
                                detail=self._aggregate_detail(window))
                    written += 1
        return written

    def _summary(self, window: Any) -> str:
        return (f"{window.rejections} requests from {window.source} refused in {self.window_s:g} s "
                f"(the first {self.individual} audited one by one)")

    def _aggregate_detail(self, window: Any) -> dict[str, Any]:
        start: dt.datetime = window.window_start
        return {
            "source": window.source, "window_start": start.isoformat(), "window_s": self.window_s,
            "rejections": window.rejections, "audited_individually": self.individual,
            "reasons": dict(window.reasons), "last_at": window.last_at.isoformat(),
        }
