"""Webhooks back to the CRM: what happened in the hub, told to the CRM, signed and in order.

**Emit.** :func:`emit` records one event in ``webhook_event`` inside the caller's transaction,
so the event exists exactly when the change it reports commits. The body is built once, here,
and never again: every delivery attempt sends the same bytes::

    {"id": "<event id = X-Hub-Delivery>", "type": "order.in_erp", "occurred_at": "<ISO 8601, UTC>",
     "customer": {"id": <hub customer id>, "external_ids": [{"system": "kingdee", "id": "C001"}, …]} | null,
     "subject": "sales_order:42", "data": {…}}

No secrets, and no personal contact data (no names of people, mobiles or e-mails): people
are referred to by hub id. The events and their sources:

- ``receivable.changed``: an ERP sync changed a bill's open amount or status (the engine's
  ``receivable`` change, ``hub.engine.changes``); an unchanged re-sync, or a bill new to the
  hub, emits nothing (the CRM lists receivables through the API);
- ``order.in_erp``: a CRM order's ERP bill number or status changed as its push went on
  (``hub.rules.orders``): saved, then audited;
- ``task.done_in_chat``: a task ticked off in WeCom or DingTalk (the engine's
  ``task_completed`` change, whatever path brought it: callback, completion stream, push);
- ``lead.assigned``: emitted by the lead rules when a lead gets an owner or goes to the pool;
- ``order.approval``: a CRM order's OA approval (DingTalk / WeCom) was opened or changed state
  (``hub.rules.approvals``): approved, rejected with the approver's reason, withdrawn, revoked
  after approval.

**Publish.** Which events the CRM receives, where, and with which secret is configuration
(``HUB_CRM__*``), known where outbox work is dispatched, not where changes happen. Before
each claim, the runtime's dispatchers call :func:`publish`: in event order, each unpublished
event the endpoint subscribes to becomes one ``crm.webhook`` outbox row whose ordering key is
its customer (``hub.outbox.claims``: a customer's events are delivered one after another, each
after the previous one is delivered or given up), and every event is marked published. With
webhooks unconfigured nothing is published: the events stay as a log, and are delivered from
the first once an endpoint is configured. Events of types the endpoint does not subscribe to
are marked published and never delivered.

Retries, dead letters and ``hub dlq replay`` are the outbox's; a redelivery carries the same
``X-Hub-Delivery``, so receivers de-duplicate by it.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from connectors.crm.events import (
    EVENT_TYPES,
    LEAD_ASSIGNED,
    ORDER_APPROVAL,
    ORDER_IN_ERP,
    RECEIVABLE_CHANGED,
    TASK_DONE_IN_CHAT,
)
from connectors.crm.settings import CrmSettings
from hub.contracts import WriteResult
from hub.engine import changes
from hub.engine.changes import ReceivableChange, TaskCompleted
from hub.errors import ConfigError
from hub.outbox import effects, enqueue
from hub.outbox.effects import Failure
from hub.runtime import HubRuntime, before_dispatch

KIND = "crm.webhook"
PUBLISH_BATCH = 500
_PUBLISHER = sa.text("SELECT pg_try_advisory_xact_lock(hashtextextended(current_schema() || '|webhook-publish', 0))")


def emit(conn: Connection, event: str, *, customer_id: int | None, subject: str, data: Mapping[str, Any],
         occurred_at: dt.datetime | None = None) -> str:
    """Record ``event`` about ``subject`` (e.g. ``"lead:7"``) of customer ``customer_id`` (None:
    no customer yet, such as a new lead) in the caller's transaction; returns the event id.

    ``data`` must be JSON-serialisable (decimals and dates become strings) and hold no
    secrets or personal contact data.
    """
    return emit_about(conn, event, customer_id=customer_id, customer=customer_reference(conn, customer_id),
                      subject=subject, data=data, occurred_at=occurred_at)


def emit_about(conn: Connection, event: str, *, customer_id: int | None, customer: dict[str, Any] | None,
               subject: str, data: Mapping[str, Any], occurred_at: dt.datetime | None = None) -> str:
    """:func:`emit` with the customer's reference (:func:`customer_reference`) already read, by
    a statement that read it with other things (``hub.rules.orders``)."""
    if event not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event {event!r} (known: {', '.join(EVENT_TYPES)})")
    event_id = f"evt_{uuid.uuid4().hex}"
    at = (occurred_at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    body = {"id": event_id, "type": event, "occurred_at": at.isoformat().replace("+00:00", "Z"),
            "customer": customer, "subject": subject, "data": dict(data)}
    conn.execute(sa.text(
        "INSERT INTO webhook_event (event_id, type, customer_id, subject, occurred_at, body) "
        "VALUES (:id, :type, :cid, :subject, :at, :body)"),
        {"id": event_id, "type": event, "cid": customer_id, "subject": subject[:200], "at": at,
         "body": json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=_plain)})
    return event_id


def _plain(value: Any) -> str:
    if isinstance(value, Decimal | dt.date | dt.datetime):
        return value.isoformat() if isinstance(value, dt.date) else str(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def customer_reference(conn: Connection, customer_id: int | None) -> dict[str, Any] | None:
    """How the CRM recognises a customer: the hub id and every system's id for it."""
    if customer_id is None:
        return None
    rows = conn.execute(sa.text(
        "SELECT system, external_id FROM external_identity WHERE canonical_table = 'customer' AND canonical_id = :id "
        "AND object = 'customer' ORDER BY system, external_id"), {"id": customer_id}).all()
    return {"id": customer_id, "external_ids": [{"system": r.system, "id": r.external_id} for r in rows]}


def external_ids(conn: Connection, table: str, row_id: int) -> list[dict[str, str]]:
    """Every system's id for one canonical row other than a customer (a task, an order)."""
    rows = conn.execute(sa.text(
        "SELECT system, external_id FROM external_identity WHERE canonical_table = :t AND canonical_id = :id "
        "ORDER BY system, external_id"), {"t": table, "id": row_id}).all()
    return [{"system": r.system, "id": r.external_id} for r in rows]


# ---------------------------------------------------------------------- publishing


def publish(conn: Connection, settings: CrmSettings, *, max_attempts: int = 6) -> int:
    """Hand unpublished events to the outbox for the configured endpoint, in event order;
    returns how many rows were enqueued (0 with webhooks unconfigured)."""
    if not settings.is_configured():
        return 0
    missing = settings.missing()
    if missing:
        raise ConfigError("crm webhooks are half configured: set "
                          + ", ".join(f"HUB_CRM__{name.upper()}" for name in missing))
    wanted = set(settings.event_types())
    if not conn.execute(_PUBLISHER).scalar():
        return 0  # another dispatcher is publishing; one at a time keeps outbox ids in event order
    enqueued = 0
    while True:
        rows = conn.execute(sa.text(
            "SELECT id, event_id, type, customer_id, subject, body FROM webhook_event WHERE published_at IS NULL "
            "ORDER BY id LIMIT :n"), {"n": PUBLISH_BATCH}).all()
        if not rows:
            return enqueued
        for row in rows:
            if row.type not in wanted:
                continue
            ordering = f"{KIND}:customer:{row.customer_id}" if row.customer_id is not None \
                else f"{KIND}:{row.subject}"
            if enqueue(conn, KIND, f"{KIND}:{row.event_id}",
                       {"event_id": row.event_id, "type": row.type, "body": row.body},
                       max_attempts=max_attempts, ordering_key=ordering) is not None:
                enqueued += 1
        conn.execute(sa.text("UPDATE webhook_event SET published_at = now() WHERE id = ANY(CAST(:ids AS bigint[]))"),
                     {"ids": [row.id for row in rows]})


def publish_before_dispatch(runtime: HubRuntime) -> None:
    """The runtime's before-dispatch hook: :func:`publish` with its CRM settings."""
    section = runtime.settings.connector("crm", CrmSettings)
    if not section.is_configured():
        return
    with runtime.db.begin() as conn:
        publish(conn, section, max_attempts=runtime.settings.outbox.max_attempts)


def unpublished(conn: Connection) -> int:
    """Events not yet handed to the outbox (a Dagster sensor starts a delivery run for them)."""
    return int(conn.execute(sa.text("SELECT count(*) FROM webhook_event WHERE published_at IS NULL")).scalar_one())


# ---------------------------------------------------------------------- event sources


def receivables_changed(conn: Connection, found: Sequence[ReceivableChange]) -> None:
    """``receivable.changed`` for each bill whose open amount or status changed in a sync."""
    for change in found:
        emit(conn, RECEIVABLE_CHANGED, customer_id=change.customer_id, subject=f"receivable:{change.receivable_id}",
             data={"receivable_id": change.receivable_id, "system": change.system, "external_id": change.external_id,
                   "bill_number": change.bill_number, "currency": change.currency, "due_date": change.due_date,
                   "open_amount": change.open_amount, "open_amount_before": change.open_amount_before,
                   "status": change.status, "status_before": change.status_before})


def tasks_completed(conn: Connection, found: Sequence[TaskCompleted]) -> None:
    """``task.done_in_chat`` for each task closed from a chat platform (not from the CRM itself)."""
    for done in found:
        if done.via == "crm":
            continue
        task = conn.execute(sa.text("SELECT id, kind, customer_id FROM task WHERE id = :id"),
                            {"id": done.task_id}).first()
        if task is None:
            continue
        emit(conn, TASK_DONE_IN_CHAT, customer_id=task.customer_id, subject=f"task:{task.id}",
             data={"task_id": task.id, "external_ids": external_ids(conn, "task", task.id), "kind": task.kind,
                   "status": "done", "completed_via": done.via, "completed_at": done.at,
                   "completed_by_user_id": done.by_user_id})


def order_reached_erp(conn: Connection, change: Any) -> None:
    """``order.in_erp`` when a CRM order's ERP bill number, ERP status or push state changed.

    ``change`` is the order as an outcome's statement left it and as it was before, with the
    ids the event carries (``hub.rules.orders.record_erp_result``): ``id``, ``order_number``,
    ``customer_id``, ``erp_system``, ``erp_bill_number``, ``erp_status``, ``status``, the
    ``before_`` bill number, ERP status and status, ``customer_ids`` (:func:`customer_reference`'s
    list) and ``order_ids`` (:func:`external_ids` of the order).
    """
    if change.erp_bill_number is None:
        return
    if (change.before_bill_number, change.before_erp_status, change.before_status) == (
            change.erp_bill_number, change.erp_status, change.status):
        return
    customer = None if change.customer_id is None else {"id": change.customer_id,
                                                         "external_ids": list(change.customer_ids)}
    emit_about(conn, ORDER_IN_ERP, customer_id=change.customer_id, customer=customer,
               subject=f"sales_order:{change.id}",
               data={"order_id": change.id, "order_number": change.order_number,
                     "external_ids": list(change.order_ids), "erp_system": change.erp_system,
                     "bill_number": change.erp_bill_number, "erp_status": change.erp_status,
                     "status": change.status})


def order_approval_changed(conn: Connection, order_id: int, *, approval_id: int) -> None:
    """``order.approval``: the order's approval state as it now stands (the reason of a refusal;
    the approver only as the platform names them, no personal contact data)."""
    row = conn.execute(sa.text(
        "SELECT o.id, o.order_number, o.customer_id, o.approval_state, o.status, a.system, a.external_id, a.state, "
        "a.comment, a.revision, a.decided_at FROM sales_order o JOIN approval a ON a.id = :aid WHERE o.id = :id"),
        {"id": order_id, "aid": approval_id}).first()
    if row is None:
        return
    emit(conn, ORDER_APPROVAL, customer_id=row.customer_id, subject=f"sales_order:{row.id}",
         data={"order_id": row.id, "order_number": row.order_number, "approval_state": row.approval_state,
               "status": row.status, "approval": {"id": approval_id, "system": row.system,
                                                  "instance_id": row.external_id, "state": row.state,
                                                  "revision": row.revision, "reason": row.comment,
                                                  "decided_at": row.decided_at}})


# ---------------------------------------------------------------------- outcomes


def _delivered(conn: Connection, kind: str, payload: dict[str, Any], result: WriteResult) -> None:
    """Outbox effect handler: nothing to change; the outbox row and its audit are the record."""


def _not_delivered(conn: Connection, kind: str, payload: dict[str, Any], failure: Failure) -> None:
    """Outbox effect handler: a dead or refused delivery stays visible in ``hub dlq`` (replayable)."""


effects.register("webhook", effects.EffectHandler(on_done=_delivered, on_failed=_not_delivered))
changes.listen("receivable", receivables_changed)
changes.listen("task_completed", tasks_completed)
before_dispatch(publish_before_dispatch)

__all__ = ["KIND", "LEAD_ASSIGNED", "customer_reference", "emit", "emit_about", "external_ids",
           "order_approval_changed", "order_reached_erp",
           "publish", "publish_before_dispatch", "unpublished"]
