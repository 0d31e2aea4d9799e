"""Event pushes from a sandbox to a configured receiver, with knobs to lose, repeat or delay them.

A vendor sandbox that plays the platform's side of an event subscription (OA approval
changes: DingTalk ``bpms_instance_change``, WeCom ``sys_approval_change``) seals each event
its vendor's way and hands a ``send`` function to :class:`PushPlan`, which decides what
becomes of it:

- ``url`` unset: nothing is pushed (the event is still recorded);
- ``drop`` (count) / ``drop_rate`` (share, seeded): the push is lost, as when the platform
  gives up or the network eats it — only a poll can then see the change;
- ``duplicate`` (count) / ``duplicate_rate``: the same sealed request is delivered twice;
- ``delay_s``: delivered that long after the change (on a thread), so later changes may
  overtake it (reordering).

Configured in-process or through ``POST /__sandbox__/approvals/callbacks`` with the same JSON
(:meth:`PushPlan.configure`). Every decision is in :attr:`PushPlan.log`.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class PushPlan:
    """Where events go and what happens to them on the way (module docstring)."""

    url: str | None = None
    drop: int = 0
    drop_rate: float = 0.0
    duplicate: int = 0
    duplicate_rate: float = 0.0
    delay_s: float = 0.0
    seed: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)
    _rng: random.Random = field(default_factory=random.Random)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def configure(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Apply ``{"url", "drop", "drop_rate", "duplicate", "duplicate_rate", "delay_s", "seed"}``
        (each optional); ValueError for a value out of range. Returns :meth:`describe`."""
        with self._lock:
            if "url" in spec:
                url = spec["url"]
                if url is not None and not (isinstance(url, str) and url.startswith(("http://", "https://"))):
                    raise ValueError("url must be an http(s) URL or null")
                self.url = url
            for name in ("drop", "duplicate"):
                if name in spec:
                    value = int(spec[name])
                    if value < 0:
                        raise ValueError(f"{name} must be ≥ 0")
                    setattr(self, name, value)
            for name in ("drop_rate", "duplicate_rate"):
                if name in spec:
                    rate = float(spec[name])
                    if not 0.0 <= rate <= 1.0:
                        raise ValueError(f"{name} must be between 0 and 1")
                    setattr(self, name, rate)
            if "delay_s" in spec:
                delay = float(spec["delay_s"])
                if not 0.0 <= delay <= 600.0:
                    raise ValueError("delay_s must be within 0..600")
                self.delay_s = delay
            if "seed" in spec:
                self.seed = int(spec["seed"])
                self._rng = random.Random(self.seed)
        return self.describe()

    def describe(self) -> dict[str, Any]:
        """The knobs and what became of the pushes so far."""
        with self._lock:
            fates: dict[str, int] = {}
            for entry in self.log:
                fates[entry["fate"]] = fates.get(entry["fate"], 0) + 1
            return {"url": self.url, "drop": self.drop, "drop_rate": self.drop_rate, "duplicate": self.duplicate,
                    "duplicate_rate": self.duplicate_rate, "delay_s": self.delay_s, "pushes": fates}

    def _fate(self) -> str:
        with self._lock:
            if self.url is None:
                return "no_url"
            if self.drop > 0:
                self.drop -= 1
                return "dropped"
            if self.drop_rate and self._rng.random() < self.drop_rate:
                return "dropped"
            if self.duplicate > 0:
                self.duplicate -= 1
                return "duplicated"
            if self.duplicate_rate and self._rng.random() < self.duplicate_rate:
                return "duplicated"
            return "sent"

    def push(self, event_id: str, send: Callable[[str], Any]) -> str:
        """Decide the fate of one event and deliver it (``send(url)`` posts the sealed
        request and returns the receiver's verdict); returns the fate."""
        fate = self._fate()
        url = self.url
        if fate in ("no_url", "dropped") or url is None:
            with self._lock:
                self.log.append({"event": event_id, "fate": fate, "verdicts": []})
            return fate
        entry: dict[str, Any] = {"event": event_id, "fate": fate, "verdicts": []}
        with self._lock:
            self.log.append(entry)
            delay = self.delay_s

        def deliver() -> None:
            if delay:
                time.sleep(delay)
            for _ in range(2 if fate == "duplicated" else 1):
                entry["verdicts"].append(send(url))

        worker = threading.Thread(target=deliver, name=f"push-{event_id}", daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(worker)
        worker.start()
        return fate

    def settle(self, timeout_s: float = 30.0) -> None:
        """Wait for pushes in flight (tests: before looking at what the receiver did)."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))


__all__ = ["PushPlan"]
