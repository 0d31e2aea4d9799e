"""Pacing: at most N requests in any window of W seconds, from one client, across its threads.

Some platforms limit calls per second per app and answer the excess with a throttle code
(DingTalk 90018 at 20 QPS on the standard edition, messaging-apis.md §2.3); others sell
per-minute quotas per API (Yonyou: sales order list/detail/singleSave 60 calls a minute,
erp-apis.md §2.3). Waiting before a call costs less than a refused call plus a retry — and a
sync that reads a directory page after page must not fail halfway because it read too fast.
A client asks :meth:`Pacer.wait` before each business call.

The pacer keeps the send times of the last N calls (a sliding window, as platforms count)
and waits until the oldest of them leaves the window. The window is slightly longer than
the platform's (``margin_s``): the platform counts arrivals, the pacer departures, and
network jitter can bring two departures a window apart closer at the other end. A sliding
window also satisfies a platform that counts fixed windows (each fixed window is one of the
sliding ones), at the cost of some throughput.

Per process: :func:`shared_pacer` hands every client of one app in a process the same
pacer (the runtime builds a client per Dagster step; the platform counts per app).
Several processes sharing one app each pace themselves; their sum can still meet the
platform's limit, which then answers with its throttle code (a ``RateLimitedError`` the
outbox and Dagster retry).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class Pacer:
    """At most ``calls`` calls in any window of ``window_s + margin_s`` seconds (by default
    ``calls`` a second: ``Pacer(20)`` is 20 QPS)."""

    def __init__(self, calls: float, *, window_s: float = 1.0, margin_s: float = 0.1,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        if calls <= 0 or window_s <= 0 or margin_s < 0:
            raise ValueError("calls and window_s must be positive, margin_s not negative")
        self.limit = max(1, int(calls))
        self.window_s = window_s + margin_s
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque()
        self._lock = threading.Lock()
        self.waited_s = 0.0  # total time spent waiting (for metrics and tests)

    def wait(self) -> float:
        """Block until a call may go out, record it as sent now; returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                while self._sent and self._sent[0] <= now - self.window_s:
                    self._sent.popleft()
                if len(self._sent) < self.limit:
                    self._sent.append(now)
                    self.waited_s += waited
                    return waited
                pause = self._sent[0] + self.window_s - now
            self._sleep(pause)
            waited += pause


_SHARED: dict[str, Pacer] = {}
_SHARED_LOCK = threading.Lock()


def shared_pacer(key: str, calls: float, *, window_s: float = 1.0, margin_s: float = 0.1) -> Pacer:
    """The process's pacer of ``key`` (e.g. "dingtalk:<AppKey>@<host>"), made on first use;
    at most ``calls`` per ``window_s`` (a second by default). A different rate or window for
    the same key replaces it (settings changed)."""
    with _SHARED_LOCK:
        pacer = _SHARED.get(key)
        if pacer is None or pacer.limit != max(1, int(calls)) or pacer.window_s != window_s + margin_s:
            pacer = _SHARED[key] = Pacer(calls, window_s=window_s, margin_s=margin_s)
        return pacer


__all__ = ["Pacer", "shared_pacer"]
