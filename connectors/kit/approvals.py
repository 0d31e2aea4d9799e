"""What an OA approval instance says, in the hub's words, whatever platform holds it.

Each chat connector reads its own approval detail (DingTalk ``status``/``result`` plus
attached REVOKE instances, WeCom ``sp_status``) into one :class:`ApprovalOutcome`; the
domain rules (``hub.rules.approvals``) act on it. The states (reference/oa-approvals.md §4.4):

============ =====================================================================
``pending``  still with the approvers
``approved`` approved (the order may go to the ERP)
``rejected`` refused; ``remark`` is the approver's reason
``withdrawn`` revoked, terminated or deleted before any decision
``revoked``  revoked *after* approval (DingTalk: an attached REVOKE instance; WeCom 6)
============ =====================================================================

The business key (the CRM's order key) travels in a dedicated text control of the form
(``CRM单号``); :func:`key_matches` is how a lookup recognises the instance an earlier
attempt created, since neither platform has a client token or dedupe field (§1.2, §2.1).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from hub.contracts import Attempt, WriteResult
from hub.errors import PermanentError

STATES = ("pending", "approved", "rejected", "withdrawn", "revoked")
OPEN_STATES = ("pending",)


@dataclass(frozen=True)
class ApprovalOutcome:
    """One read of an approval instance."""

    instance_id: str
    state: str  # one of STATES
    vendor_status: str  # the platform's own words, for people ("COMPLETED/agree", "sp_status 6")
    business_key: str | None = None
    approver: str | None = None  # who decided (platform userid)
    remark: str | None = None  # the deciding approver's remark (speech)
    decided_at: dt.datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise ValueError(f"unknown approval state {self.state!r} (known: {', '.join(STATES)})")

    def as_detail(self) -> dict[str, Any]:
        """JSON form (an outbox result's ``detail``)."""
        return {"instance_id": self.instance_id, "state": self.state, "vendor_status": self.vendor_status,
                "business_key": self.business_key, "approver": self.approver, "remark": self.remark,
                "decided_at": self.decided_at.isoformat() if self.decided_at else None, **self.extra}


def outcome_from_detail(detail: dict[str, Any]) -> ApprovalOutcome:
    """The inverse of :meth:`ApprovalOutcome.as_detail` (the rules read an outbox result)."""
    decided = detail.get("decided_at")
    known = {"instance_id", "state", "vendor_status", "business_key", "approver", "remark", "decided_at"}
    return ApprovalOutcome(
        instance_id=str(detail["instance_id"]), state=str(detail["state"]),
        vendor_status=str(detail.get("vendor_status") or ""), business_key=detail.get("business_key"),
        approver=detail.get("approver"), remark=detail.get("remark"),
        decided_at=dt.datetime.fromisoformat(decided) if isinstance(decided, str) and decided else None,
        extra={k: v for k, v in detail.items() if k not in known})


def key_matches(value: Any, business_key: str) -> bool:
    """True when a control's value is the business key (surrounding blanks ignored)."""
    return isinstance(value, str) and value.strip() == business_key


class ApprovalPlatform(Protocol):
    """What one platform offers the approval writer (each connector's writer implements it)."""

    system: str
    operation: str
    @property
    def template(self) -> str | None:
        """The template instances are created from (processCode / template_id)."""
        ...

    def build(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """The create request of ``payload`` (ValueError/KeyError: the payload is unusable)."""
        ...

    def find(self, request: Mapping[str, Any], business_key: str, since: dt.datetime) -> list[str]:
        """Ids of the instances holding ``business_key`` created since ``since``, oldest first."""
        ...

    def create(self, request: Mapping[str, Any], key: str) -> str:
        """Create the instance; its id."""
        ...

    def read(self, instance_id: str) -> ApprovalOutcome:
        """The instance's outcome now."""
        ...

    def withdraw_twin(self, instance_id: str, keep: str, business_key: str, key: str) -> bool:
        """Withdraw a twin created despite the lookup; False when the platform cannot."""
        ...


def submitted_since(payload: Mapping[str, Any], margin: dt.timedelta, now: dt.datetime) -> dt.datetime:
    """Where a lookup starts: the approval's ``submitted_at`` minus ``margin`` (§4.3), a day
    back when the payload has none."""
    try:
        since = dt.datetime.fromisoformat(str(payload.get("submitted_at")))
    except ValueError:
        return now - dt.timedelta(days=1)
    return (since if since.tzinfo else since.replace(tzinfo=dt.UTC)) - margin


def apply_approval(platform: ApprovalPlatform, key: str, payload: dict[str, Any], attempt: Attempt, *,
                   margin: dt.timedelta, clock: Callable[[], dt.datetime]) -> WriteResult:
    """One attempt of an approval outbox row, the same on every platform.

    With ``payload["instance_id"]`` (a check: a callback or the reconcile poll) the instance is
    re-read. Otherwise *every* attempt first looks the business key up among the instances
    created since the approval was asked for (minus ``margin``) and adopts what it finds —
    neither platform dedupes creates (oa-approvals.md §1.2, §2.1) — and creates only when none
    holds it. Twins found anyway (list lag) are withdrawn where the platform can, the oldest
    kept. The result's ``status`` is the outcome's state, its ``detail`` the outcome.
    """
    business_key = payload.get("business_key")
    if not isinstance(business_key, str) or not business_key:
        raise PermanentError("payload.business_key must be the CRM order's approval key", system=platform.system,
                             operation=platform.operation, code="bad_payload")
    instance_id = payload.get("instance_id")
    if isinstance(instance_id, str) and instance_id:
        return _result(platform.read(instance_id), adopted=True, template=platform.template)
    try:
        request = platform.build(payload)
    except (ValueError, KeyError) as exc:
        raise PermanentError(str(exc), system=platform.system, operation=platform.operation,
                             external_id=business_key, code="bad_payload") from exc
    found = platform.find(request, business_key, submitted_since(payload, margin, clock()))
    if found:
        keep, *twins = found
        withdrawn = [t for t in twins if platform.withdraw_twin(t, keep, business_key, key)]
        extra = {"twins": twins, "twins_withdrawn": withdrawn} if twins else {}
        return _result(platform.read(keep), adopted=True, template=platform.template, **extra)
    created = platform.create(request, key)
    attempt.progress(WriteResult(external_id=created, status="pending"))
    return _result(ApprovalOutcome(created, "pending", "created", business_key), adopted=False,
                   template=platform.template)


class KeyMemo:
    """What the lookups of one writer learnt of each instance they read: the value of its key
    control and its creation time, so that a lookup reads only instances it has not read yet.

    Without it every attempt of every create read every instance of the originator since the
    approval was asked for (one detail call each): an attempt needed all of them to succeed,
    and under the fault matrix's soak (a third of the calls failing, a rep with hundreds of
    approvals) the DingTalk create cell never finished (rows at 90 attempts). An instance's
    form does not change once submitted: DingTalk makes a modification of an approved
    instance a new instance (oa-approvals.md §1.7 [src]); WeCom has no API to edit a
    submitted approval's form (a guess, as its §4.3 on cancelling). Bounded (least recently
    used first out); shared by the dispatcher's threads.
    """

    def __init__(self, limit: int = 20_000) -> None:
        self._limit = limit
        self._facts: OrderedDict[str, tuple[str | None, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def facts(self, instance_id: str, read: Callable[[str], tuple[str | None, Any]]) -> tuple[str | None, Any]:
        """(key control value, creation time) of ``instance_id``: remembered, or ``read`` once."""
        with self._lock:
            known = self._facts.get(instance_id)
            if known is not None:
                self._facts.move_to_end(instance_id)
                return known
        learnt = read(instance_id)  # outside the lock: a platform call
        with self._lock:
            self._facts[instance_id] = learnt
            while len(self._facts) > self._limit:
                self._facts.popitem(last=False)
        return learnt

    def holding(self, pages: Iterable[Iterable[str]], business_key: str,
                read: Callable[[str], tuple[str | None, Any]]) -> list[str]:
        """The listed instances (``pages`` of ids) whose key control holds ``business_key``,
        oldest first (by the creation time ``read`` gives)."""
        matches = []
        for page in pages:
            for candidate in page:
                value, created = self.facts(candidate, read)
                if key_matches(value, business_key):
                    matches.append((created, candidate))
        return [i for _, i in sorted(matches)]


def _result(found: ApprovalOutcome, *, adopted: bool, **extra: Any) -> WriteResult:
    return WriteResult(external_id=found.instance_id, status=found.state, adopted=adopted,
                       detail={**found.as_detail(), **extra})


__all__ = ["OPEN_STATES", "STATES", "ApprovalOutcome", "ApprovalPlatform", "KeyMemo", "apply_approval", "key_matches",
           "outcome_from_detail", "submitted_since"]
