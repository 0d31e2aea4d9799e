"""What the hub writes to WeCom: CRM reminders (and, optionally, calendar schedules).

Both writers implement the effect half of ``hub.contracts.Writer`` (``find_existing`` and
``apply``); the hub core adds ``record_result``/``record_failure``, which touch the
database.

**Why a reminder is never sent twice.** WeCom cannot list or look up messages an app has
sent, so ``find_existing`` has nothing to ask and returns None. Instead every send sets
``enable_duplicate_check=1`` with the payload's ``duplicate_check_interval`` (default
1800 s, at most 4 h — send doc 90236 as quoted in binarywang/WxJava ``WxCpMessage.java``):
WeCom then suppresses a request with identical JSON inside that window. So when an
attempt's reply was lost (timeout, 5xx/504 after the send), a retry *inside* the window
is safe: WeCom delivers nothing new. Once the window may have passed, a resend could
produce a visible twin, and whether the first one arrived is unknowable from the API — the
writer refuses with a :class:`PermanentError` and a person decides (the outbox row is
dead-lettered, visible and replayable). The window is measured from the first attempt
minus a safety margin, which covers the dispatcher's delay between deciding and sending
and the request's own travel time.

This relies on the payload's ``card`` being byte-for-byte the same dict on every attempt:
the hub stores it in the outbox row when the reminder is created and never rebuilds it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from connectors.wecom.client import MAX_DUPLICATE_CHECK_INTERVAL, SYSTEM, WeComClient
from hub.contracts import Attempt, WriteResult
from hub.errors import PermanentError, RateLimitedError, RecipientError

DEFAULT_INTERVAL = 1800
DEFAULT_SAFETY_MARGIN_S = 120.0
_MSGTYPES = frozenset({"text", "textcard", "markdown", "template_card"})


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(value: dt.datetime) -> dt.datetime:
    # The dispatcher stores timestamptz; a naive value can only be UTC from our own code.
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


class RecipientBudget:
    """Sliding-window count of messages per member, so the hub never exceeds WeCom's
    per-app-per-member limits (30/min, 1000/h — messaging-apis.md §1.4), past which WeCom
    drops messages *silently*. Over budget, the writer raises ``RateLimitedError`` and the
    outbox reschedules the reminder instead of losing it.

    The budget is per process: run one dispatcher per WeCom app at a time (the Dagster
    ``hub/system`` tag concurrency limit does that) or split the limits between them.
    """

    def __init__(self, per_minute: int = 30, per_hour: int = 1000, clock: Callable[[], float] | None = None) -> None:
        import threading
        import time

        self.per_minute = per_minute
        self.per_hour = per_hour
        self._clock = clock or time.monotonic
        self._sent: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def wait_needed(self, recipient: str) -> float:
        """Seconds until one more message to ``recipient`` fits both windows (0: now)."""
        now = self._clock()
        with self._lock:
            history = [t for t in self._sent.get(recipient, []) if now - t < 3600]
            self._sent[recipient] = history
            waits = [0.0]
            minute = [t for t in history if now - t < 60]
            if len(minute) >= self.per_minute:
                waits.append(60 - (now - minute[-self.per_minute]))
            if len(history) >= self.per_hour:
                waits.append(3600 - (now - history[-self.per_hour]))
            return max(waits)

    def spend(self, recipient: str) -> None:
        """Count one message sent (or possibly sent) to ``recipient``."""
        with self._lock:
            self._sent.setdefault(recipient, []).append(self._clock())


class ReminderWriter:
    """Sends one reminder card to one WeCom member (outbox kind ``wecom.reminder``).

    Payload (built by the hub core)::

        {"task_id": 42, "recipient": "<wecom userid>", "kind": "due" | "overdue_manager" | ...,
         "card": {"msgtype": "template_card", "template_card": {...}},   # mapping.build_reminder_card
         "duplicate_check_interval": 1800}
    """

    system = SYSTEM
    operation = "message/send"

    def __init__(
        self,
        client: WeComClient,
        *,
        clock: Callable[[], dt.datetime] = _utc_now,
        safety_margin_s: float = DEFAULT_SAFETY_MARGIN_S,
        budget: RecipientBudget | None = None,
    ) -> None:
        self._client = client
        self._clock = clock
        self._margin = safety_margin_s
        self._budget = budget or RecipientBudget()

    def _error(self, message: str, *, external_id: str | None = None, code: str = "bad_payload") -> PermanentError:
        return PermanentError(message, system=self.system, operation=self.operation, external_id=external_id, code=code)

    def _parse(self, payload: Mapping[str, Any]) -> tuple[str, dict[str, Any], int]:
        recipient = payload.get("recipient")
        if not isinstance(recipient, str) or not recipient.strip() or "|" in recipient:
            raise self._error("payload.recipient must be one WeCom userid")
        card = payload.get("card")
        if not isinstance(card, Mapping) or card.get("msgtype") not in _MSGTYPES \
                or not isinstance(card.get(str(card.get("msgtype"))), Mapping):
            raise self._error("payload.card must be a message/send body with msgtype and content",
                              external_id=recipient)
        interval = payload.get("duplicate_check_interval", DEFAULT_INTERVAL)
        if not isinstance(interval, int) or isinstance(interval, bool) \
                or not 0 < interval <= MAX_DUPLICATE_CHECK_INTERVAL:
            raise self._error("payload.duplicate_check_interval must be 1..14400 seconds", external_id=recipient)
        return recipient.strip(), dict(card), interval

    def find_existing(self, key: str, payload: dict[str, Any]) -> WriteResult | None:
        """Always None: WeCom has no API to list or look up messages an app sent; duplicate
        protection comes from WeCom's own duplicate check (module docstring)."""
        return None

    def apply(self, key: str, payload: dict[str, Any], attempt: Attempt) -> WriteResult:
        """Send the card with WeCom's duplicate check on; refuse a blind resend outside it."""
        recipient, card, interval = self._parse(payload)
        if attempt.outcome_unknown:
            elapsed = (self._clock() - _aware(attempt.first_attempt_at)).total_seconds()
            if elapsed >= interval - self._margin:
                raise self._error(
                    f"an earlier attempt may already have delivered this reminder, and WeCom's duplicate "
                    f"check ({interval} s) no longer covers a resend ({elapsed:.0f} s since the first "
                    f"attempt); not resending — a person must check the recipient's WeCom and replay "
                    f"or discard this reminder",
                    external_id=recipient, code="duplicate_window_passed",
                )
        wait = self._budget.wait_needed(recipient.lower())
        if wait > 0:
            raise RateLimitedError(
                f"per-member message budget for {recipient} used up; WeCom would drop the message silently",
                retry_after=wait, system=self.system, operation=self.operation, external_id=recipient,
                code="member_budget",
            )
        self._budget.spend(recipient.lower())  # counted before sending: a lost reply still used the budget
        try:
            outcome = self._client.send_message(
                [recipient], card, enable_duplicate_check=True, duplicate_check_interval=interval, key=key,
            )
        except RecipientError as exc:
            raise RecipientError(exc.message, recipients=exc.recipients or [recipient], system=self.system,
                                 operation=self.operation, external_id=recipient, code=exc.code) from None
        if recipient.lower() not in {u.lower() for u in outcome.delivered_users}:
            reason = "unlicensed" if outcome.unlicensed_users else "invalid"
            raise RecipientError(
                f"WeCom did not accept recipient {recipient} ({reason})", recipients=[recipient],
                system=self.system, operation=self.operation, external_id=recipient, code=reason,
            )
        return WriteResult(
            external_id=outcome.msgid, status="sent",
            detail={
                "recipient": recipient, "kind": payload.get("kind"), "task_id": payload.get("task_id"),
                "duplicate_check_interval": interval, "resent_after_unknown_outcome": attempt.outcome_unknown,
            },
        )


class ScheduleWriter:
    """Puts a time-bound CRM to-do into members' WeCom calendars (``oa/schedule/add``).

    Payload::

        {"task_id": 42, "organizer": "<userid>" | None, "attendees": ["<userid>", ...],
         "start": "2024-05-08T15:00:00+08:00", "end": "2024-05-08T15:30:00+08:00",
         "summary": "...", "description": "...", "remind_before_s": 900}

    WeCom offers no lookup of a schedule by a business key and no duplicate check on
    ``oa/schedule/add``, so a retry after a lost reply could create a twin. The writer
    therefore only sends when no earlier attempt may have reached WeCom; otherwise it
    raises :class:`PermanentError` for a person to decide.
    """

    system = SYSTEM
    operation = "oa/schedule/add"

    def __init__(self, client: WeComClient) -> None:
        self._client = client

    def find_existing(self, key: str, payload: dict[str, Any]) -> WriteResult | None:
        """Always None: schedules cannot be looked up by a business key."""
        return None

    def apply(self, key: str, payload: dict[str, Any], attempt: Attempt) -> WriteResult:
        """Create the schedule, unless an earlier attempt's outcome is unknown."""
        def bad(message: str, code: str = "bad_payload") -> PermanentError:
            return PermanentError(message, system=self.system, operation=self.operation, code=code)

        if attempt.outcome_unknown:
            raise bad("an earlier attempt may already have created this schedule and WeCom cannot be "
                      "asked; not resending — a person must check the calendar and replay or discard",
                      code="outcome_unknown")
        attendees = payload.get("attendees")
        if not isinstance(attendees, list) or not attendees or not all(isinstance(a, str) and a for a in attendees):
            raise bad("payload.attendees must be a non-empty list of userids")
        try:
            start = dt.datetime.fromisoformat(str(payload["start"]))
            end = dt.datetime.fromisoformat(str(payload["end"]))
        except (KeyError, ValueError):
            raise bad("payload.start/end must be ISO-8601 timestamps") from None
        if start.tzinfo is None or end.tzinfo is None or end <= start:
            raise bad("payload.start/end must carry a timezone and end after start")
        summary = payload.get("summary")
        if not isinstance(summary, str) or not summary.strip():
            raise bad("payload.summary is empty")
        remind = payload.get("remind_before_s", 900)
        schedule_id = self._client.add_schedule(
            organizer=payload.get("organizer"), attendees=attendees, start=start, end=end,
            summary=summary, description=str(payload.get("description") or ""),
            remind_before_s=int(remind) if remind is not None else None, key=key,
        )
        return WriteResult(external_id=schedule_id, status="scheduled", detail={"task_id": payload.get("task_id")})


WRITER_KINDS = ("reminder", "schedule")


def make_writer(kind: str, client: WeComClient) -> ReminderWriter | ScheduleWriter:
    """Registry hook: the writer for an outbox kind (``"reminder"`` or ``"schedule"``)."""
    if kind == "reminder":
        return ReminderWriter(client)
    if kind == "schedule":
        return ScheduleWriter(client)
    raise KeyError(f"wecom has no writer kind {kind!r} (known: {', '.join(WRITER_KINDS)})")


__all__ = [
    "DEFAULT_INTERVAL",
    "DEFAULT_SAFETY_MARGIN_S",
    "WRITER_KINDS",
    "ReminderWriter",
    "ScheduleWriter",
    "make_writer",
]
