"""What the hub writes to WeCom: CRM reminders (and, optionally, calendar schedules).

Both writers implement ``hub.contracts.Writer`` (``apply``); what a result changes in the
hub's rows is the domain rules' business (``hub.outbox.effects``).

**Why a reminder is never sent twice.** WeCom cannot list or look up messages an app has
sent, so there is nothing to look up after a lost reply. Instead every send sets
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

**Why a member never gets more than WeCom delivers.** Past 30 messages a minute or 1,000 an
hour per app per member WeCom drops messages *silently* (§1.4). The connector declares
that budget (``connector.call_limits``, :func:`reminder_recipient`), and the outbox spends it
in Postgres before each send, so every dispatcher process shares one budget per member;
a reminder over budget waits in the outbox until the member has room.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from connectors.kit.approvals import ApprovalOutcome, KeyMemo, apply_approval
from connectors.wecom import approvals
from connectors.wecom.client import MAX_DUPLICATE_CHECK_INTERVAL, SYSTEM, WeComClient
from hub.contracts import Attempt, WriteResult
from hub.errors import PermanentError, RecipientError

DEFAULT_INTERVAL = 1800
DEFAULT_SAFETY_MARGIN_S = 120.0
_MSGTYPES = frozenset({"text", "textcard", "markdown", "template_card"})


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(value: dt.datetime) -> dt.datetime:
    # The dispatcher stores timestamptz; a naive value can only be UTC from our own code.
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


def reminder_recipient(payload: Mapping[str, Any]) -> str:
    """Whose per-member budget a reminder spends: its recipient's userid, lower-cased
    (userids are case-insensitive); "" for a payload naming none (the writer refuses it)."""
    recipient = payload.get("recipient")
    return recipient.strip().lower() if isinstance(recipient, str) else ""


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
    ) -> None:
        self._client = client
        self._clock = clock
        self._margin = safety_margin_s

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


class ApprovalWriter:
    """One CRM order's OA approval (outbox kind ``wecom.approval``), the flow of
    :func:`connectors.kit.approvals.apply_approval` on WeCom's ``oa/*`` API.

    Payload as DingTalk's (``hub.rules.approvals``). The template's control ids are read once
    per writer (``gettemplatedetail``, oa-approvals.md §2.4) and the key control found by its
    title. The lookup asks ``getapprovalinfo`` with the ``template_id`` and ``creator`` filters
    over the window since the approval was asked for (≤31 days), reads each ``sp_no`` not read
    before (:class:`~connectors.kit.approvals.KeyMemo`) and matches the key control. WeCom has no API to cancel an approval (§4.3 [guess]): a twin is
    reported in the result, never withdrawn.
    """

    system = SYSTEM
    operation = "oa/applyevent"

    def __init__(self, client: WeComClient, *, template_id: str | None, key_control: str,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        self._client = client
        self._template_id = template_id
        self._key_control = key_control
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._controls: dict[str, tuple[str, str]] | None = None
        self._memo = KeyMemo()  # approvals the lookups read (their key never changes)

    @property
    def template(self) -> str | None:
        """The configured template (template_id)."""
        return self._template_id

    def apply(self, key: str, payload: dict[str, Any], attempt: Attempt) -> WriteResult:
        """Re-read, or look up and adopt, or create."""
        return apply_approval(self, key, payload, attempt, margin=approvals.LOOKUP_MARGIN, clock=self._clock)

    def _key_id(self) -> str | None:
        return self._controls["business_key"][0] if self._controls else None

    def build(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """The applyevent body (the template's controls read once)."""
        if not self._template_id:
            raise ValueError("no approval template: set HUB_WECOM__APPROVAL_TEMPLATE_ID")
        if self._controls is None:
            self._controls = approvals.control_ids(self._client.get_approval_template(self._template_id),
                                                   self._key_control)
        return approvals.apply_request(payload, template_id=self._template_id, controls=self._controls)

    def find(self, request: Mapping[str, Any], business_key: str, since: dt.datetime) -> list[str]:
        """The creator's approvals of the template since ``since`` holding the key, oldest first."""
        now = self._clock()
        start = max(since, now - approvals.MAX_WINDOW + dt.timedelta(minutes=1))
        filters = [{"key": "template_id", "value": str(request["template_id"])},
                   {"key": "creator", "value": str(request["creator_userid"])}]
        key_id = self._key_id()
        if not key_id:
            return []  # the template's key control is read by build(), before any lookup
        pages = self._client.iter_approval_sp_nos(start=int(start.timestamp()), end=int(now.timestamp()) + 60,
                                                  filters=filters, size=approvals.PAGE_SIZE)
        return self._memo.holding(pages, business_key,
                                  lambda sp_no: self._key_and_applied(sp_no, key_id))

    def _key_and_applied(self, sp_no: str, key_id: str) -> tuple[str | None, int]:
        info = self._client.get_approval(sp_no)
        return approvals.key_value(info, key_id), int(info.get("apply_time") or 0)

    def create(self, request: Mapping[str, Any], key: str) -> str:
        """``oa/applyevent``."""
        return self._client.apply_approval(request, key=key)

    def read(self, instance_id: str) -> ApprovalOutcome:
        """``getapprovaldetail`` → the outcome."""
        return approvals.outcome(self._client.get_approval(instance_id), key_control_id=self._key_id())

    def withdraw_twin(self, instance_id: str, keep: str, business_key: str, key: str) -> bool:
        """WeCom cannot cancel an approval by API: the twin stays, reported."""
        return False


__all__ = [
    "DEFAULT_INTERVAL",
    "DEFAULT_SAFETY_MARGIN_S",
    "WRITER_KINDS",
    "ApprovalWriter",
    "ReminderWriter",
    "ScheduleWriter",
    "make_writer",
    "reminder_recipient",
]
