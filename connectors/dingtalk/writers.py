"""What the hub writes to DingTalk: work notices (reminders), to-dos and OA approval instances.

Both implement ``hub.contracts.Writer``; what a result changes in the hub's rows is the
domain rules' business (``hub.outbox.effects``: ``reminder`` and ``todo``).

**A notice reaches a person once.** ``asyncsend_v2`` cannot be looked up after a lost
reply (no list of sent notices), but DingTalk itself delivers an identical notice from
one app to a user only once a day (reference/messaging-apis.md §2.2 [doc]). The notice's
``msg`` is built once, when the reminder is queued, and resent byte for byte, so a resend
after a lost reply on the *same day* delivers nothing new. Whether "a day" is a calendar
day or 24 hours is not documented: the writer resends only on the calendar day
(Asia/Shanghai) of the first attempt and not within :data:`MIDNIGHT_MARGIN_S` of its end,
which is safe under both readings; otherwise it refuses and a person decides (the row is
dead-lettered, visible and replayable). After the send, ``getsendresult`` says whether the
recipient was invalid, forbidden or failed; that is recorded on the task.

**A task has one to-do.** Every attempt first looks the to-do up by its ``sourceId`` (the
CRM task's key, ``crm-task-<id>``) and adopts what it finds — whether DingTalk refuses a
second to-do with the same sourceId is undocumented (§5 [U]) — then creates it, or
updates subject, description, due time, executor and ``done`` where they differ. A to-do
someone ticked off in DingTalk is never reopened: the result says so, and the rules
close the CRM task instead.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from connectors.dingtalk import approvals
from connectors.dingtalk.client import SYSTEM, DingTalkClient
from connectors.dingtalk.mapping import SHANGHAI, build_todo, todo_changes
from connectors.dingtalk.streams import HUB_SOURCE_PREFIX
from connectors.kit.approvals import ApprovalOutcome, KeyMemo, apply_approval
from hub.contracts import Attempt, WriteResult
from hub.errors import PermanentError, RecipientError, RetryableError

MIDNIGHT_MARGIN_S = 300.0
_MSGTYPES = frozenset({"text", "markdown", "link", "action_card", "oa"})


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def notice_recipient(payload: Mapping[str, Any]) -> str:
    """Whose daily notice budget a reminder spends: its recipient's userid ("" for none)."""
    recipient = payload.get("recipient")
    return recipient.strip() if isinstance(recipient, str) else ""


def _refuse(operation: str, message: str, *, external_id: str | None = None, code: str = "bad_payload") -> PermanentError:
    return PermanentError(message, system=SYSTEM, operation=operation, external_id=external_id, code=code)


class NoticeWriter:
    """One work notice to one DingTalk member (outbox kind ``dingtalk.reminder``).

    Payload (``hub.rules.reminders``; ``msg`` from ``connector.prepare_reminder``)::

        {"task_id": 42, "recipient": "<userid>", "kind": "due", "msg": {"msgtype": "action_card", ...}}
    """

    system = SYSTEM
    operation = "topapi/message/corpconversation/asyncsend_v2"

    def __init__(self, client: DingTalkClient, *, clock: Callable[[], dt.datetime] = _now) -> None:
        self._client = client
        self._clock = clock

    def apply(self, key: str, payload: dict[str, Any], attempt: Attempt) -> WriteResult:
        """Send (refusing a blind resend outside the platform's same-day suppression), then
        ask ``getsendresult`` whether the recipient was reached."""
        recipient = notice_recipient(payload)
        if not recipient or "," in recipient:
            raise _refuse(self.operation, "payload.recipient must be one DingTalk userid")
        msg = payload.get("msg")
        if not isinstance(msg, Mapping) or msg.get("msgtype") not in _MSGTYPES \
                or not isinstance(msg.get(str(msg.get("msgtype"))), Mapping):
            raise _refuse(self.operation, "payload.msg must be a work notice body with msgtype and content",
                          external_id=recipient)
        if attempt.outcome_unknown:
            self._check_resend_is_suppressed(attempt, recipient)
        task_id = self._client.send_work_notice([recipient], msg, key=key)
        delivery = self._delivery(task_id, recipient)
        return WriteResult(external_id=str(task_id), status="sent", detail={
            "recipient": recipient, "kind": payload.get("kind"), "task_id": payload.get("task_id"),
            "delivery": delivery, "resent_after_unknown_outcome": attempt.outcome_unknown,
        })

    def _check_resend_is_suppressed(self, attempt: Attempt, recipient: str) -> None:
        first = attempt.first_attempt_at
        first_day = (first if first.tzinfo else first.replace(tzinfo=dt.UTC)).astimezone(SHANGHAI).date()
        now = self._clock().astimezone(SHANGHAI)
        midnight = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), SHANGHAI)
        if now.date() != first_day or (midnight - now).total_seconds() < MIDNIGHT_MARGIN_S:
            raise _refuse(self.operation, (
                "an earlier attempt may already have delivered this notice, and DingTalk's same-day suppression of "
                "identical notices no longer covers a resend (first attempt "
                f"{first_day.isoformat()}, now {now:%Y-%m-%d %H:%M}); not resending — a person must check the "
                "recipient's DingTalk and replay or discard this reminder"),
                external_id=recipient, code="duplicate_window_passed")

    def _delivery(self, task_id: int, recipient: str) -> str:
        """"reached", or "unknown" when the send result could not be read; raises when
        DingTalk says the recipient was not reached."""
        try:
            result = self._client.get_send_result(task_id)
        except RetryableError:  # the notice is out; its result is only information
            return "unknown"
        refusal = result.refusal(recipient)
        if refusal == "invalid":
            raise RecipientError(f"DingTalk does not know recipient {recipient}", recipients=[recipient],
                                 system=SYSTEM, operation=self.operation, external_id=recipient, code="invalid")
        if refusal is not None:
            detail = (result.forbidden_codes or {}).get(recipient)
            raise _refuse(self.operation, f"DingTalk did not deliver to {recipient} ({refusal}"
                                          f"{', code ' + detail if detail else ''})",
                          external_id=recipient, code=refusal)
        return "reached"


class TodoWriter:
    """Keeps one CRM task's DingTalk to-do in line with the task (outbox kind ``dingtalk.todo``).

    Payload (``hub.rules.todos``)::

        {"task_id": 42, "source_id": "crm-task-42", "recipient": "<userid>",
         "recipient_alias": "<unionId>" | None, "title": "...", "customer_name": "...",
         "description": "...", "due_at": "2026-11-28T07:00:00+00:00", "done": false,
         "detail_url": "https://hub/customers/7", "version": "<digest>"}
    """

    operation = "todo/tasks"
    system = SYSTEM

    def __init__(self, client: DingTalkClient) -> None:
        self._client = client

    def apply(self, key: str, payload: dict[str, Any], attempt: Attempt) -> WriteResult:
        """Look the to-do up by sourceId; adopt and update it, or create it."""
        source_id = payload.get("source_id")
        recipient = payload.get("recipient")
        if not isinstance(source_id, str) or not source_id.startswith(HUB_SOURCE_PREFIX):
            raise _refuse(self.operation, f"payload.source_id must start with {HUB_SOURCE_PREFIX!r}")
        if not isinstance(recipient, str) or not recipient:
            raise _refuse(self.operation, "payload.recipient must be a DingTalk userid", external_id=source_id)
        alias = payload.get("recipient_alias")
        union_id = alias if isinstance(alias, str) and alias else self._client.union_id(recipient)
        detail: dict[str, Any] = {"recipient_alias": union_id, "version": payload.get("version"),
                                  "source_id": source_id}
        existing = self._client.find_todo_by_source(source_id)
        if existing is None and payload.get("done"):
            return WriteResult(external_id="", status="not_created", detail=detail)  # nothing to close
        if existing is None:
            existing = self._create(key, payload, union_id, source_id)
            if existing.get("_created"):
                return WriteResult(external_id=str(existing["id"]), status="open", detail=detail)
        changes = todo_changes(existing, payload)
        if list(existing.get("executorIds") or []) != [union_id]:
            changes.update(executorIds=[union_id], participantIds=[union_id])
        if changes:
            self._client.update_todo(str(existing["id"]), changes, key=key)
        if existing.get("done") and not payload.get("done"):
            detail["completed_on_platform"] = {"finish_time": existing.get("finishTime"),
                                               "by": existing.get("modifierId")}
        detail["updated"] = sorted(changes)
        done = bool(existing.get("done") or changes.get("done"))
        return WriteResult(external_id=str(existing["id"]), status="done" if done else "open", adopted=True,
                           detail=detail)

    def _create(self, key: str, payload: dict[str, Any], union_id: str, source_id: str) -> dict[str, Any]:
        """Create the to-do; if DingTalk answers that one with this sourceId exists (a twin
        created meanwhile, on platforms that refuse them), look it up and adopt it."""
        try:
            return {**self._client.create_todo(build_todo(payload, union_id), key=key), "_created": True}
        except PermanentError as exc:
            if "task exist" not in exc.message:
                raise
        found = self._client.find_todo_by_source(source_id)
        if found is None:
            raise RetryableError(f"DingTalk says a to-do with sourceId {source_id} exists but does not find it",
                                 system=SYSTEM, operation=self.operation, external_id=source_id)
        return found




class ApprovalWriter:
    """One CRM order's OA approval instance (outbox kind ``dingtalk.approval``), the flow of
    :func:`connectors.kit.approvals.apply_approval` on DingTalk's v1.0 workflow API.

    Payload (``hub.rules.approvals``)::

        {"approval_id": 7, "business_key": "crm-order-42-r1", "originator": "<userid>",
         "submitted_at": "<ISO 8601>", "order": {"order_number", "customer_name", "total_amount", "currency"},
         "instance_id": "<id>" | absent}

    The lookup lists the template's instances of the originator created since the approval
    was asked for (``instanceIds/query``), reads each not read before (:class:`KeyMemo`) and
    matches the key control; a twin is
    terminated as the system (``isSystem``, oa-approvals.md §4.3). An outcome reads the
    attached instances too (a REVOKE after approval, §1.7).
    """

    system = SYSTEM
    operation = "workflow/processInstances"

    def __init__(self, client: DingTalkClient, *, process_code: str | None, key_control: str,
                 clock: Callable[[], dt.datetime] = _now) -> None:
        self._memo = KeyMemo()  # instances the lookups read (their key never changes)
        self._client = client
        self._process_code = process_code
        self._key_control = key_control
        self._clock = clock

    @property
    def template(self) -> str | None:
        """The configured template (process_code)."""
        return self._process_code

    def apply(self, key: str, payload: dict[str, Any], attempt: Attempt) -> WriteResult:
        """Re-read, or look up and adopt, or create."""
        return apply_approval(self, key, payload, attempt, margin=approvals.LOOKUP_MARGIN, clock=self._clock)

    def build(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """The processInstances body (refused without a configured template)."""
        if not self._process_code:
            raise ValueError("no approval template: set HUB_DINGTALK__APPROVAL_PROCESS_CODE")
        return approvals.start_request(payload, process_code=self._process_code, key_control=self._key_control)

    def find(self, request: Mapping[str, Any], business_key: str, since: dt.datetime) -> list[str]:
        """The originator's instances of the template since ``since`` holding the key, oldest first."""
        end_ms = int(self._clock().timestamp() * 1000) + 60_000
        pages = self._client.iter_approval_ids(str(request["processCode"]), start_ms=int(since.timestamp() * 1000),
                                               end_ms=end_ms, originators=[str(request["originatorUserId"])],
                                               page_size=approvals.LIST_PAGE_SIZE)
        return self._memo.holding(pages, business_key, self._key_and_created)

    def _key_and_created(self, instance_id: str) -> tuple[str | None, str]:
        instance = self._client.get_approval(instance_id)
        return approvals.form_value(instance, self._key_control), str(instance.get("createTime") or "")

    def create(self, request: Mapping[str, Any], key: str) -> str:
        """``processInstances`` create."""
        return self._client.start_approval(request, key=key)

    def read(self, instance_id: str) -> ApprovalOutcome:
        """The instance and its attached ones (REVOKE) → the outcome."""
        instance = self._client.get_approval(instance_id)
        attached = [self._client.get_approval(str(a)) for a in instance.get("attachedProcessInstanceIds") or []
                    if isinstance(a, str) and a]
        return approvals.outcome(instance_id, instance, attached, key_control=self._key_control)

    def withdraw_twin(self, instance_id: str, keep: str, business_key: str, key: str) -> bool:
        """Terminate the twin as the system."""
        self._client.terminate_approval(instance_id, remark=f"duplicate of {keep} for {business_key}", key=key)
        return True

__all__ = ["MIDNIGHT_MARGIN_S", "ApprovalWriter", "NoticeWriter", "TodoWriter", "notice_recipient"]
