"""In-memory hooks for a callback receiver under test (the hub's are Postgres: tests/web)."""

from __future__ import annotations

import threading
from typing import Any

from hub.contracts import CallbackHooks


class MemoryReplayGuard:
    """The replay memory of unit tests: fingerprint → expiry."""

    def __init__(self) -> None:
        self.expiry: dict[str, float] = {}

    def first_time(self, fingerprint: str, at: float, expires_at: float) -> bool:
        if self.expiry.get(fingerprint, at) > at:
            return False
        self.expiry[fingerprint] = expires_at
        return True

    def forget(self, fingerprint: str) -> None:
        self.expiry.pop(fingerprint, None)


class Receiver:
    """Collects accepted events and refusals; ``fail_next`` makes the next hand-over fail;
    ``now`` is the receiver's clock (seconds)."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.events: list[dict[str, Any]] = []
        self.rejections: list[tuple[str, dict[str, str]]] = []
        self.fail_next = False
        self.lock = threading.Lock()
        self.guard = MemoryReplayGuard()

    def on_event(self, event: dict[str, Any]) -> None:
        with self.lock:
            if self.fail_next:
                self.fail_next = False
                raise RuntimeError("database unavailable")
            self.events.append(event)

    def on_rejected(self, reason: str, details: Any) -> None:
        with self.lock:
            self.rejections.append((reason, dict(details)))

    def hooks(self) -> CallbackHooks:
        """The hooks a receiver app is built with."""
        return CallbackHooks(on_event=self.on_event, on_rejected=self.on_rejected, replay_guard=self.guard)
