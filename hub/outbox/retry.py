"""What the dispatcher does after a failed attempt: pure decisions, no I/O.

The error class decides (``hub.errors``)::

    PermanentError                  failed: no retry, reason recorded (the system refused)
    RateLimitedError                retry after the platform's retry_after (+ up to 10 % jitter);
                                    the outcome stays as it was (the platform refused the call)
    other ConnectorError            retry with capped exponential backoff and jitter; the
      (RetryableError, AuthExpired  outcome of the failed call is unknown from now on
       after the client's refresh)
    any other exception (a bug)     retry with backoff, outcome unknown; counted against
                                    max_attempts (``unexpected_failures``)

Transient failures are retried for ``retry_budget_s`` from the row's first attempt; when
it is used up the row is dead-lettered (``dead``), as it is when its unexpected failures
(bugs, and attempts lost with their dispatcher's lease) reach ``max_attempts``. A retry
never lands after the budget's end: the last one is scheduled at the deadline.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from tenacity import RetryCallState, wait_exponential_jitter

from hub.errors import ConnectorError, PermanentError, RateLimitedError
from hub.settings import OutboxSettings

MIN_DELAY_S = 0.01


@dataclass(frozen=True)
class AttemptState:
    """The row as the failed attempt left it."""

    number: int
    first_attempt_at: dt.datetime
    outcome_unknown: bool
    unexpected_failures: int  # before this attempt
    max_attempts: int


@dataclass(frozen=True)
class Decision:
    """``outcome`` is ``retry``, ``failed`` or ``dead``; ``delay_s`` until the retry."""

    outcome: str
    outcome_unknown: bool
    unexpected: bool  # the attempt ended in an exception that is not a ConnectorError
    delay_s: float = 0.0
    reason: str = ""  # why a row is dead, beyond its last error


class RetryPolicy:
    """Turns a failed attempt into a :class:`Decision` (see the module docstring)."""

    def __init__(self, settings: OutboxSettings, rng: random.Random | None = None) -> None:
        self.settings = settings
        self._rng = rng or random.Random()
        self._backoff = wait_exponential_jitter(
            initial=settings.backoff_initial_s, max=settings.backoff_max_s, jitter=settings.backoff_initial_s)

    def decide(self, error: BaseException, state: AttemptState, now: dt.datetime) -> Decision:
        """The decision for ``error`` ending the attempt described by ``state`` at ``now``."""
        if isinstance(error, PermanentError):
            return Decision("failed", outcome_unknown=False, unexpected=False)
        unexpected = not isinstance(error, ConnectorError)
        if isinstance(error, RateLimitedError):
            unknown = state.outcome_unknown
            delay = max(error.retry_after, MIN_DELAY_S) * (1 + 0.1 * self._rng.random())
        else:
            unknown = True
            delay = self.backoff_s(state.number)
        if unexpected and state.unexpected_failures + 1 >= state.max_attempts:
            return Decision("dead", unknown, unexpected,
                            reason=f"{state.unexpected_failures + 1} unexpected failures (max_attempts "
                                   f"{state.max_attempts})")
        left = self.settings.retry_budget_s - (now - state.first_attempt_at).total_seconds()
        if left <= 0:
            return Decision("dead", unknown, unexpected,
                            reason=f"retry budget of {_duration(self.settings.retry_budget_s)} used up")
        return Decision("retry", unknown, unexpected, delay_s=max(min(delay, left), MIN_DELAY_S))

    def backoff_s(self, attempt_number: int) -> float:
        """Capped exponential backoff with jitter for the ``attempt_number``-th failure."""
        state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
        state.attempt_number = max(attempt_number, 1)
        return float(self._backoff(state))


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:g} h"
    if seconds >= 60:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


__all__ = ["AttemptState", "Decision", "RetryPolicy"]
