"""OA approvals of CRM orders in DingTalk or WeCom, gating the push to the ERP.

**Ask.** :func:`request_order_approval` (the automation rules' ``request_approval`` action
calls it) opens one ``approval`` row of kind ``order`` for a sales order on the owner's one
chat platform (:mod:`hub.rules.channels`), with a unique business key per order revision
(``crm-order-<id>-r<n>``), and enqueues the create effect (``<platform>.approval``) in the
same transaction. The connector's writer looks the key up on the platform before *any*
create (neither platform dedupes, reference/oa-approvals.md §1.2, §2.1) and adopts what it
finds, so one order revision never has two instances.

**Learn the outcome** two ways, both ending in the writer re-reading the instance (the
event alone is never trusted):

- a platform callback (``bpms_instance_change`` / ``sys_approval_change``, verified and
  decrypted by the web app's receiver) enqueues a check of that instance
  (:func:`record_dingtalk_event`, :func:`record_wecom_event`); the same event delivered twice
  enqueues one check (the outbox key is the event's fingerprint);
- the reconcile poll (:func:`reconcile`, Dagster job ``approvals_reconcile``, ``hub approvals
  reconcile``) enqueues a check of every open approval not read for a while, and of approved
  ones for ``revoke_watch_days`` (a revocation after approval has no other sign).

**Apply it once** (:func:`apply_outcome`, under a row lock; a state already reached changes
nothing but ``last_checked_at``):

=================== =================================================================
approved            the order is approved and its push to the ERP enqueued
                    (:func:`hub.rules.orders.approve_order`, the routing fixed when asked)
rejected            ``sales_order.approval_state`` rejected, the approver's remark on
                    ``approval.comment`` (the automation rules tell the owner; not here)
withdrawn           revoked, terminated or deleted before a decision
revoked (after      the order is reopened (``status`` reopened) and an ERP compensation
approval)           task goes to its owner — the ERP order is never silently deleted
=================== =================================================================

Each change is audited (``approval:<state>``) and sent to the CRM as ``order.approval``
(:func:`hub.rules.webhooks.order_approval_changed`); the customer profile shows it on the order.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from connectors.kit.approvals import ApprovalOutcome, outcome_from_detail
from hub.audit import write_audit
from hub.contracts import WriteResult
from hub.errors import NotFoundError
from hub.outbox import effects, enqueue
from hub.outbox.effects import Failure
from hub.rules import orders, webhooks
from hub.rules.channels import channels, choice_sql
from hub.settings import OrderSettings

WRITER = "approval"
ACTOR = "rules:approvals"
OPEN = ("pending", "approved")
DINGTALK_EVENT = "bpms_instance_change"
WECOM_EVENT = "sys_approval_change"


def business_key(order_id: int, revision: int) -> str:
    """The key of one order revision's approval: written into the form's key control."""
    return f"crm-order-{order_id}-r{revision}"


def _kind(system: str) -> str:
    return f"{system}.{WRITER}"


def _ordering(approval_id: int) -> str:
    # a check never overtakes the create of the same approval
    return f"approval:{approval_id}"


def request_order_approval(conn: Connection, order_id: int, *, at: dt.datetime, preference: Sequence[str] = (),
                           routing: OrderSettings | None = None, max_attempts: int = 8) -> int | None:
    """Open an approval of sales order ``order_id`` asked for ``at``: an ``approval`` row (kind
    ``order``, subject ``sales_order``/``order_id``, the order's customer, state ``pending``,
    ``system`` the owner's one chat platform in ``preference`` order) and, when the owner has a
    platform account, the create effect in the outbox, in the caller's transaction.

    Returns the approval id, or None when the order has a pending or approved approval
    already (asking twice opens nothing; the order row is locked first, so two callers at
    once open one). An owner no chat platform knows gets a ``pending`` row with ``system``
    ``crm`` and ``error`` saying so (nothing is sent; audited). ``routing`` is where the
    order goes once approved (default: :class:`~hub.settings.OrderSettings`), fixed now.
    Raises :class:`~hub.errors.NotFoundError` for an unknown order.
    """
    chosen, account, _ = choice_sql("u", channels(preference))
    order = conn.execute(sa.text(
        f"""
        SELECT o.id, o.order_number, o.customer_id, o.total_amount, o.currency, c.name AS customer_name,
               {chosen} AS channel, {account} AS account
        FROM sales_order o JOIN customer c ON c.id = o.customer_id
        LEFT JOIN internal_user u ON u.id = COALESCE(o.owner_id, c.owner_id)
        WHERE o.id = :id FOR UPDATE OF o
        """), {"id": order_id}).first()
    if order is None:
        raise NotFoundError(f"no sales order {order_id}")
    if conn.execute(sa.text(
            "SELECT 1 FROM approval WHERE subject_type = 'sales_order' AND subject_id = :id AND state IN ('pending', "
            "'approved') LIMIT 1"), {"id": order_id}).first() is not None:
        return None
    revision = 1 + int(conn.execute(sa.text(
        "SELECT count(*) FROM approval WHERE subject_type = 'sales_order' AND subject_id = :id"),
        {"id": order_id}).scalar_one())
    key = business_key(order_id, revision)
    system = order.channel or "crm"
    error = None if order.channel else "the order's owner has no account on a chat platform: no OA approval opened"
    approval_id = int(conn.execute(sa.text(
        "INSERT INTO approval (kind, subject_type, subject_id, customer_id, state, system, submitted_at, business_key, "
        "revision, originator, error, routing) VALUES ('order', 'sales_order', :id, :c, 'pending', :s, :at, :key, "
        ":rev, :who, :err, CAST(:routing AS jsonb)) RETURNING id"),
        {"id": order_id, "c": order.customer_id, "s": system, "at": at, "key": key, "rev": revision,
         "who": order.account, "err": error,
         "routing": (routing or OrderSettings()).model_dump_json()}).scalar_one())
    conn.execute(sa.text("UPDATE sales_order SET approval_state = 'pending' WHERE id = :id"), {"id": order_id})
    write_audit(conn, actor=ACTOR, system=system, operation="approval:request", outcome="queued" if not error
                else "unrouted", key=key, external_id=str(order_id), error=error,
                detail={"approval_id": approval_id, "order_id": order_id, "revision": revision})
    if order.channel:
        enqueue(conn, _kind(system), key, {
            "approval_id": approval_id, "business_key": key, "originator": order.account,
            "submitted_at": at.isoformat(),
            "order": {"order_number": order.order_number, "customer_name": order.customer_name,
                      "total_amount": str(order.total_amount), "currency": order.currency}},
            max_attempts=max_attempts, ordering_key=_ordering(approval_id))
    webhooks.order_approval_changed(conn, order_id, approval_id=approval_id)
    return approval_id


# ---------------------------------------------------------------------- outcomes


@dataclass(frozen=True)
class Applied:
    """What :func:`apply_outcome` did: the state before and after (equal: nothing changed)."""

    approval_id: int
    before: str
    after: str

    @property
    def changed(self) -> bool:
        """True when the approval moved."""
        return self.before != self.after


def _decided_at(found: ApprovalOutcome, now: dt.datetime) -> dt.datetime:
    return found.decided_at or now


def apply_outcome(conn: Connection, approval_id: int, found: ApprovalOutcome, *, now: dt.datetime | None = None,
                  actor: str = ACTOR) -> Applied:
    """Apply one read of the instance to the approval and its order, once (module docstring)."""
    now = now or dt.datetime.now(dt.UTC)
    row = conn.execute(sa.text(
        "SELECT a.id, a.state, a.system, a.subject_id, a.external_id, a.business_key, a.routing, a.decided_at, "
        "o.owner_id, o.customer_id, o.order_number, o.erp_bill_number, o.erp_system, c.owner_id AS customer_owner "
        "FROM approval a JOIN sales_order o ON o.id = a.subject_id JOIN customer c ON c.id = o.customer_id "
        "WHERE a.id = :id AND a.subject_type = 'sales_order' FOR UPDATE OF a"), {"id": approval_id}).first()
    if row is None:
        raise NotFoundError(f"no order approval {approval_id}")
    conn.execute(sa.text(
        "UPDATE approval SET last_checked_at = :now, vendor_status = :vs, external_id = COALESCE(external_id, :iid), "
        "error = NULL WHERE id = :id"), {"now": now, "vs": found.vendor_status[:40], "iid": found.instance_id,
                                         "id": approval_id})
    before, target = row.state, _target(row.state, found.state)
    if target is None:
        return Applied(approval_id, before, before)
    order_id = int(row.subject_id)
    when = _decided_at(found, now)
    if target == "approved":
        conn.execute(sa.text(
            "UPDATE approval SET state = 'approved', decided_at = :at, approver = :who, comment = :why WHERE id = :id"),
            {"at": when, "who": found.approver, "why": found.remark, "id": approval_id})
        routing = OrderSettings.model_validate(row.routing) if row.routing else OrderSettings()
        orders.approve_order(conn, order_id, routing=routing, at=when)
    elif target == "revoked":
        revoked_at = _revoked_at(found, now)
        conn.execute(sa.text("UPDATE approval SET state = 'revoked', revoked_at = :at WHERE id = :id"),
                     {"at": revoked_at, "id": approval_id})
        conn.execute(sa.text(
            "UPDATE sales_order SET approval_state = 'revoked', status = 'reopened', erp_error = :why WHERE id = :id"),
            {"why": "OA approval revoked after it was approved: the ERP order needs compensation", "id": order_id})
        _compensation_task(conn, row, found, now)
    else:  # rejected, withdrawn (a revocation of an approval the hub never saw approved is a withdrawal)
        conn.execute(sa.text(
            "UPDATE approval SET state = :st, decided_at = :at, approver = :who, comment = :why WHERE id = :id"),
            {"st": target, "at": when, "who": found.approver, "why": found.remark, "id": approval_id})
        conn.execute(sa.text("UPDATE sales_order SET approval_state = :st WHERE id = :id"),
                     {"st": target, "id": order_id})
    write_audit(conn, actor=actor, system=row.system, operation=f"approval:{target}", outcome="applied",
                key=row.business_key, external_id=found.instance_id,
                detail={"approval_id": approval_id, "order_id": order_id, "before": before,
                        "vendor_status": found.vendor_status, "approver": found.approver, "remark": found.remark})
    webhooks.order_approval_changed(conn, order_id, approval_id=approval_id)
    return Applied(approval_id, before, target)


def _target(current: str, seen: str) -> str | None:
    """The state an approval moves to from ``current`` on reading ``seen``, or None."""
    if current == "pending":
        if seen == "revoked":
            return "withdrawn"  # revoked after an approval the hub never acted on: nothing reached the ERP
        return seen if seen in ("approved", "rejected", "withdrawn") else None
    if current == "approved" and seen == "revoked":
        return "revoked"
    return None  # terminal, or no news


def _revoked_at(found: ApprovalOutcome, now: dt.datetime) -> dt.datetime:
    text = found.extra.get("revoked_at")
    try:
        return dt.datetime.fromisoformat(text) if isinstance(text, str) else now
    except ValueError:
        return now


def _compensation_task(conn: Connection, row: Any, found: ApprovalOutcome, now: dt.datetime) -> None:
    """A task for the order's owner to compensate in the ERP (void or credit the order)."""
    owner = row.owner_id or row.customer_owner
    bill = row.erp_bill_number
    where = f"ERP {row.erp_system} bill {bill}" if bill else "the ERP (its push may still be under way)"
    if owner is None:
        write_audit(conn, actor=ACTOR, system=row.system, operation="approval:compensation", outcome="no_owner",
                    key=row.business_key, external_id=found.instance_id,
                    error="the order has no owner: nobody was given the ERP compensation task")
        return
    conn.execute(sa.text(
        "INSERT INTO task (title, description, kind, customer_id, assignee_id, due_at) "
        "VALUES (:title, :desc, 'erp_compensation', :cid, :owner, :due)"),
        {"title": f"ERP 冲销：订单 {row.order_number} 的审批通过后被撤销",
         "desc": f"The OA approval {found.instance_id} of order {row.order_number} was revoked after it was "
                 f"approved. The order is reopened in the CRM; void or credit it in {where}. "
                 f"Reason given: {found.extra.get('revoke_remark') or found.remark or '-'}",
         "cid": row.customer_id, "owner": owner, "due": now + dt.timedelta(days=1)})


def _approval_done(conn: Connection, kind: str, payload: dict[str, Any], result: WriteResult) -> None:
    """Outbox effect handler: the instance the writer created, adopted or re-read, applied."""
    approval_id = int(payload["approval_id"])
    found = outcome_from_detail(result.detail) if result.detail.get("state") else ApprovalOutcome(
        result.external_id, "pending", result.status or "created", payload.get("business_key"))
    try:
        conn.execute(sa.text("UPDATE approval SET template = COALESCE(template, :t) WHERE id = :id"),
                     {"t": str(result.detail.get("template") or "") or None, "id": approval_id})
        apply_outcome(conn, approval_id, found, actor=f"outbox:{kind}")
    except NotFoundError:
        return  # the order is gone: the outbox row's audit keeps what happened
    if result.detail.get("twins"):
        write_audit(conn, actor=ACTOR, system=kind.partition(".")[0], operation="approval:twins",
                    outcome="withdrawn" if result.detail.get("twins_withdrawn") else "left",
                    key=payload.get("business_key"), external_id=result.external_id,
                    detail={"twins": result.detail.get("twins"), "withdrawn": result.detail.get("twins_withdrawn")})


def _approval_created(conn: Connection, kind: str, payload: dict[str, Any], progress: WriteResult) -> None:
    """Outbox effect handler: an attempt created the instance, then failed: keep its id now."""
    conn.execute(sa.text("UPDATE approval SET external_id = COALESCE(external_id, :iid) WHERE id = :id"),
                 {"iid": progress.external_id, "id": int(payload["approval_id"])})


def _approval_failed(conn: Connection, kind: str, payload: dict[str, Any], failure: Failure) -> None:
    """Outbox effect handler: the platform refused the approval (or it was given up): the
    reason on the approval; a create that never reached the platform leaves the order
    ``approval_state`` failed, visible and replayable (``hub dlq replay``)."""
    approval_id = int(payload["approval_id"])
    conn.execute(sa.text("UPDATE approval SET error = :err WHERE id = :id"),
                 {"err": failure.message[:1000], "id": approval_id})
    if payload.get("instance_id"):
        return  # a check failed: the approval stands as it was; the next poll asks again
    failed = conn.execute(sa.text(
        "UPDATE sales_order o SET approval_state = 'failed' FROM approval a WHERE a.id = :id AND o.id = a.subject_id "
        "AND a.external_id IS NULL AND a.state = 'pending' AND NOT :unknown RETURNING o.id"),
        {"id": approval_id, "unknown": failure.outcome_unknown}).scalar()
    if failed is not None:
        webhooks.order_approval_changed(conn, int(failed), approval_id=approval_id)


effects.register(WRITER, effects.EffectHandler(on_done=_approval_done, on_failed=_approval_failed,
                                               on_progress=_approval_created))


# ---------------------------------------------------------------------- checks: callbacks and the poll


def _enqueue_check(conn: Connection, row: Any, reason: str) -> int | None:
    return enqueue(conn, _kind(row.system), f"approval:{row.id}:check:{reason}", {
        "approval_id": row.id, "business_key": row.business_key, "instance_id": row.external_id},
        ordering_key=_ordering(row.id))


def _open_approval(conn: Connection, system: str, instance_id: str) -> Any:
    return conn.execute(sa.text(
        "SELECT id, system, business_key, external_id, state FROM approval WHERE system = :s AND external_id = :iid "
        "AND state IN ('pending', 'approved')"), {"s": system, "iid": instance_id}).first()


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps([str(p) for p in parts], ensure_ascii=False).encode()).hexdigest()[:24]


def record_dingtalk_event(conn: Connection, event: Mapping[str, Any]) -> list[int]:
    """A ``bpms_instance_change`` of an open approval enqueues a re-read of the instance;
    returns the approvals it enqueued a check for (none: another event, an instance the hub
    did not open or one already decided, or the same event again)."""
    instance_id = str(event.get("processInstanceId") or "").strip()
    if event.get("EventType") != DINGTALK_EVENT or not instance_id:
        return []
    row = _open_approval(conn, "dingtalk", instance_id)
    if row is None:
        return []
    # the approval's state is part of the key: an event like one already handled, arriving after
    # the approval moved on (DingTalk's change of an approved instance that was then revoked), is
    # read again; the same event twice in one state is one check
    reason = f"event-{row.state}-" + _fingerprint(instance_id, event.get("type"), event.get("result"), event.get("staffId"),
                                     event.get("finishTime"))
    return [row.id] if _enqueue_check(conn, row, reason) is not None else []


def record_wecom_event(conn: Connection, event: Mapping[str, Any]) -> list[int]:
    """A ``sys_approval_change`` of an open approval enqueues a re-read (as DingTalk's)."""
    info = event.get("ApprovalInfo")
    if event.get("Event") != WECOM_EVENT or not isinstance(info, Mapping):
        return []
    sp_no = str(info.get("SpNo") or info.get("SpNoStr") or "").strip()
    row = _open_approval(conn, "wecom", sp_no) if sp_no else None
    if row is None:
        return []
    reason = f"event-{row.state}-" + _fingerprint(sp_no, info.get("SpStatus"), info.get("StatuChangeEvent"),
                                     event.get("CreateTime"))
    return [row.id] if _enqueue_check(conn, row, reason) is not None else []


@dataclass
class ReconcileCounts:
    """What one reconcile pass did."""

    checks_queued: int = 0
    open_approvals: int = 0  # pending with an instance, or approved and still watched for revocation
    waiting_for_instance: int = 0  # pending, no instance id yet (the create is still in the outbox)


def reconcile(conn: Connection, now: dt.datetime, *, recheck_after: dt.timedelta, revoke_watch: dt.timedelta,
              limit: int = 5000) -> ReconcileCounts:
    """Enqueue a re-read of every open approval not read for ``recheck_after`` (pending ones,
    and approved ones decided within ``revoke_watch``): the fallback for lost callbacks."""
    counts = ReconcileCounts()
    counts.waiting_for_instance = int(conn.execute(sa.text(
        "SELECT count(*) FROM approval WHERE state = 'pending' AND external_id IS NULL AND system <> 'crm'"))
        .scalar_one())
    rows = conn.execute(sa.text(
        "SELECT id, system, business_key, external_id, last_checked_at FROM approval "
        "WHERE external_id IS NOT NULL AND system <> 'crm' AND (state = 'pending' OR (state = 'approved' "
        "AND decided_at >= :watch)) ORDER BY last_checked_at NULLS FIRST, id LIMIT :limit"),
        {"watch": now - revoke_watch, "limit": limit}).all()
    counts.open_approvals = len(rows)
    bucket = int(now.timestamp() // max(1.0, recheck_after.total_seconds()))
    for row in rows:
        if row.last_checked_at is not None and row.last_checked_at > now - recheck_after:
            continue
        if _enqueue_check(conn, row, f"poll-{bucket}") is not None:
            counts.checks_queued += 1
    return counts


__all__ = ["ACTOR", "DINGTALK_EVENT", "WECOM_EVENT", "Applied", "ReconcileCounts", "apply_outcome", "business_key",
           "reconcile", "record_dingtalk_event", "record_wecom_event", "request_order_approval"]
