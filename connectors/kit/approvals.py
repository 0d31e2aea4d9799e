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
from dataclasses import dataclass, field
from typing import Any

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


__all__ = ["OPEN_STATES", "STATES", "ApprovalOutcome", "key_matches", "outcome_from_detail"]
