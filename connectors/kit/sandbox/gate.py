"""How many requests a sandbox serves at once: the vendor's concurrency limit, enforced.

A :class:`ServingGate` is taken by each business request and given back when it is answered;
past ``limit`` requests in flight the sandbox refuses with its vendor's own overload answer
(Yonyou 310046, Kingdee HTTP 503). Handlers share one event loop, so no lock is needed. The
figures (peak in flight, refusals, slot-seconds in use) are what tests and benchmarks read.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass
class ServingGate:
    """Serving slots of one sandbox; ``limit`` None means unlimited."""

    limit: int | None
    in_flight: int = 0
    peak_in_flight: int = 0
    overloaded: int = 0  # requests refused because every slot was taken
    busy_seconds: float = 0.0  # summed serving time of every request

    def admit(self) -> float | None:
        """Take a slot and return when (None, and counted, when all are taken)."""
        if self.limit is not None and self.in_flight >= self.limit:
            self.overloaded += 1
            return None
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        return time.perf_counter()

    def done(self, admitted_at: float) -> None:
        """Give back the slot taken at ``admitted_at``."""
        self.in_flight -= 1
        self.busy_seconds += time.perf_counter() - admitted_at

    def describe(self) -> dict[str, float | int | None]:
        """The figures for an admin endpoint."""
        return {"max_concurrent_requests": self.limit, "peak_in_flight": self.peak_in_flight,
                "overloaded": self.overloaded, "busy_seconds": round(self.busy_seconds, 6)}


__all__ = ["ServingGate"]
