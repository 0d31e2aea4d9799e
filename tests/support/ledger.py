"""An in-memory external system for the outbox tests: it keeps effects by key and misbehaves on cue.

``Ledger.script`` says what each ``apply`` call does, in order: ``ok``, ``lose_response``
(apply, then raise as if the reply was lost), ``fail`` (HTTP 500 before applying),
``throttle`` (rate limited), ``refuse`` (permanent), ``bug`` (a KeyError, as a writer with a
bug raises). :class:`LedgerWriter` follows the writer contract: when an earlier attempt's
outcome is unknown it looks the effect up first (once) and adopts it. The connector tests
repeat these scenarios over HTTP against the sandboxes.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from hub.contracts import Attempt, CallLimits, WriteResult
from hub.database import Database
from hub.errors import PermanentError, RateLimitedError, RetryableError
from hub.outbox import Dispatcher, effects
from hub.settings import OutboxSettings


@dataclass
class Ledger:
    """The external system: effects by key, plus a script of misbehaviour."""

    effects: dict[str, int] = field(default_factory=dict)
    script: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    applies: int = 0
    lookups: int = 0
    retry_after: float = 0.01
    call_s: float = 0.0  # how long each apply takes
    in_flight: int = 0
    peak_in_flight: int = 0

    def next_behaviour(self) -> str:
        with self.lock:
            self.applies += 1
            return self.script.pop(0) if self.script else "ok"


class LedgerWriter:
    """A writer for ``ledger.*`` kinds; registers the effect handlers the rules would."""

    system = "ledger"
    operation = "apply"

    def __init__(self, ledger: Ledger, writer_names: tuple[str, ...] = ("thing", "other")) -> None:
        self.ledger = ledger
        self.recorded: list[str] = []
        self.progress: list[tuple[str, Any]] = []
        for writer_name in writer_names:
            effects.register(writer_name, effects.EffectHandler(
                on_done=self.record_result, on_failed=self.record_failure, on_progress=self.record_progress))

    def find_existing(self, key: str) -> WriteResult | None:
        with self.ledger.lock:
            self.ledger.lookups += 1
            count = self.ledger.effects.get(key)
        return WriteResult(external_id=key, status="found", adopted=True) if count else None

    def apply(self, key: str, payload: dict[str, Any], attempt: Attempt) -> WriteResult:
        if attempt.outcome_unknown and (existing := self.find_existing(key)) is not None:
            return existing
        behaviour = self.ledger.next_behaviour()
        with self.ledger.lock:
            self.ledger.in_flight += 1
            self.ledger.peak_in_flight = max(self.ledger.peak_in_flight, self.ledger.in_flight)
        try:
            time.sleep(self.ledger.call_s)
            return self._behave(key, payload, behaviour)
        finally:
            with self.ledger.lock:
                self.ledger.in_flight -= 1

    def _behave(self, key: str, payload: dict[str, Any], behaviour: str) -> WriteResult:
        if behaviour == "throttle":
            raise RateLimitedError("slow down", retry_after=self.ledger.retry_after, system="ledger",
                                   operation="apply")
        if behaviour == "fail":
            raise RetryableError("HTTP 500", system="ledger", operation="apply")
        if behaviour == "refuse":
            raise PermanentError("customer missing", system="ledger", operation="apply", external_id=key)
        if behaviour == "bug":
            return WriteResult(external_id=payload["no such field"])
        with self.ledger.lock:
            self.ledger.effects[key] = self.ledger.effects.get(key, 0) + 1
        if behaviour == "lose_response":
            raise RetryableError("read timeout", system="ledger", operation="apply")
        return WriteResult(external_id=key, status="created")

    def record_result(self, conn: Any, kind: str, payload: dict[str, Any], result: WriteResult) -> None:
        self.recorded.append(result.external_id)

    def record_failure(self, conn: Any, kind: str, payload: dict[str, Any], failure: effects.Failure) -> None:
        self.recorded.append(f"{failure.status}:{failure.error}")

    def record_progress(self, conn: Any, kind: str, payload: dict[str, Any], progress: WriteResult) -> None:
        self.progress.append((progress.external_id, progress.status))


def drain_together(db: Database, writer: LedgerWriter, settings: OutboxSettings, *, dispatchers: int,
                   concurrency: int) -> None:
    """Drain with ``dispatchers`` dispatchers at once, each on its own thread, the ledger
    system allowing ``concurrency`` writes in flight."""
    limits = CallLimits(concurrency=concurrency)
    racing = [Dispatcher(db, lambda kind: writer, settings, worker_id=f"w{i}", limits_for=lambda s: limits)
              for i in range(dispatchers)]
    threads = [threading.Thread(target=d.drain) for d in racing]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
