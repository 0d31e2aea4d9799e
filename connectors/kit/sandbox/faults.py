"""Switchable fault injection for the sandboxes.

A :class:`FaultPlan` answers one question per incoming business request: "which fault,
if any, hits this request?". Tests and the demo arm it either directly (in-process) or
through the sandbox admin endpoint ``POST /__sandbox__/faults`` with the same JSON.

Fault kinds (each sandbox turns a kind into its vendor's own wire behaviour):

- ``latency``: sleep ``latency_ms`` before answering.
- ``http_500``: answer HTTP 500 without touching state.
- ``timeout``: sleep ``timeout_s`` (longer than the client's timeout) without touching state.
- ``auth_expired``: invalidate the caller's token/session before handling the request,
  so the vendor's own "expired" code comes back (Kingdee MsgCode 1, WeCom 42001...).
- ``rate_limit``: answer the vendor's rate-limit code without touching state.
- ``busy``: answer the vendor's "system busy" code (WeCom -1) without touching state.
- ``refused``: answer the vendor's permanent refusal of the request, an error no retry
  changes (WeCom errcode 301025 for OA calls, 48002 otherwise; DingTalk 400
  InvalidParameter on v1.0, errcode 60011 on oapi), without touching state. Only the WeCom
  and DingTalk sandboxes implement it (an OA approval the platform refuses must fail, not retry).
- ``drop_response``: apply the request, then answer HTTP 504 with an empty body, the
  way a gateway does when the backend finished but the reply was lost. The client
  cannot tell whether the write happened; that is the point.

Arming: ``plan.arm("http_500", times=3)`` hits the next three requests;
``plan.arm("drop_response", rate=0.2, seed=7)`` hits a deterministic 20 % of requests;
``plan.arm("auth_expired", every=100, times=None)`` hits every 100th request (a token that
lives 100 calls); ``operations`` limits a fault to some operation names (e.g. ``["save"]``).

Faults are consulted in the order they were armed and the first that hits wins, so a rate
is a share of the requests that earlier faults left. ``plan.arm_shares({"http_500": 0.2,
"timeout": 0.1}, seed=1)`` arms several kinds at shares of *all* requests instead (20 % and
10 % here), converting each share into the rate it needs after the ones before it.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

FAULT_KINDS = (
    "latency", "http_500", "timeout", "auth_expired", "rate_limit", "busy", "drop_response", "refused",
)


@dataclass
class _ArmedFault:
    kind: str
    times: int | None  # None: unlimited (rate-driven)
    rate: float
    operations: frozenset[str] | None
    rng: random.Random
    every: int | None = None  # hit only every n-th request it sees
    seen: int = 0
    hits: int = 0

    def applies_to(self, operation: str) -> bool:
        return self.operations is None or operation.lower() in self.operations


@dataclass
class FaultPlan:
    """Thread-safe schedule of faults; consulted once per business request."""

    latency_ms: int = 0
    timeout_s: float = 3.0
    _armed: list[_ArmedFault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    history: list[tuple[str, str]] = field(default_factory=list)  # (operation, kind) hits
    requests: Counter[str] = field(default_factory=Counter)  # business requests seen, per operation (lower case)

    def arm(
        self, kind: str, *, times: int | None = 1, rate: float = 1.0, seed: int = 0,
        operations: list[str] | None = None, every: int | None = None,
    ) -> None:
        """Arm one fault kind; see the module docstring for the meaning of the knobs."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}")
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        if every is not None and every < 1:
            raise ValueError("every must be at least 1")
        ops = frozenset(o.lower() for o in operations) if operations else None
        with self._lock:
            self._armed.append(_ArmedFault(kind, times, rate, ops, random.Random(seed), every))

    def arm_shares(self, shares: dict[str, float], *, seed: int = 0, operations: list[str] | None = None) -> None:
        """Arm each kind of ``shares`` (kind → share of all requests, in this order), unlimited.

        Kinds armed earlier take their requests first; the shares must add up to at most 1.
        """
        if sum(shares.values()) > 1.0 + 1e-9:
            raise ValueError("shares add up to more than 1")
        left = 1.0
        for n, (kind, share) in enumerate(shares.items()):
            rate = min(share / left, 1.0) if left > 0 else 0.0
            self.arm(kind, times=None, rate=rate, seed=seed + n, operations=operations)
            left -= share

    def clear(self) -> None:
        """Disarm every fault."""
        with self._lock:
            self._armed.clear()

    def configure(self, spec: dict[str, Any]) -> None:
        """Apply the admin endpoint's JSON: ``{"clear": true, "latency_ms": 0,
        "faults": [{"kind": "http_500", "times": 2, "operations": ["save"]}]}``."""
        if spec.get("clear"):
            self.clear()
        if "latency_ms" in spec:
            self.latency_ms = int(spec["latency_ms"])
        if "timeout_s" in spec:
            self.timeout_s = float(spec["timeout_s"])
        for fault in spec.get("faults", []):
            self.arm(
                fault["kind"], times=fault.get("times", 1), rate=float(fault.get("rate", 1.0)),
                seed=int(fault.get("seed", 0)), operations=fault.get("operations"),
                every=int(fault["every"]) if fault.get("every") is not None else None,
            )

    def next_fault(self, operation: str) -> str | None:
        """Return the fault kind hitting this request, or None; consumes a 'times' count."""
        with self._lock:
            self.requests[operation.lower()] += 1
            for fault in self._armed:
                if not fault.applies_to(operation):
                    continue
                if fault.times is not None and fault.hits >= fault.times:
                    continue
                if fault.every is not None:
                    fault.seen += 1
                    if fault.seen % fault.every:
                        continue
                if fault.rate < 1.0 and fault.rng.random() >= fault.rate:
                    continue
                fault.hits += 1
                self.history.append((operation, fault.kind))
                return fault.kind
            self._armed = [f for f in self._armed if f.times is None or f.hits < f.times]
        return None

    def describe(self) -> dict[str, Any]:
        """State for the admin endpoint: what is armed and what has fired."""
        with self._lock:
            return {
                "latency_ms": self.latency_ms,
                "armed": [
                    {"kind": f.kind, "times": f.times, "rate": f.rate, "every": f.every, "hits": f.hits,
                     "operations": sorted(f.operations) if f.operations else None}
                    for f in self._armed
                ],
                "fired": len(self.history),
            }
