"""CRM orders going to the ERP: approval enqueues the push, results come back.

``approve_order`` is the domain change: it marks the CRM order approved *and* puts
the "create this order in the ERP" effect in the outbox, in the caller's transaction,
so one never happens without the other. The payload is a self-contained snapshot
(customer, lines), so the dispatcher needs no further reads and a later edit of the
CRM order cannot change what an in-flight retry sends.

The CRM order's ``status`` says what the ERP holds, as far as the hub knows:

================== ===============================================================
``approved``       queued for the ERP, nothing known to be there yet
``in_erp``         the ERP has it, as far as the tenant's policy goes (audited)
``in_erp_unaudited`` the ERP has it (bill number recorded), the push is still taking
                   it through Submit/Audit
``in_erp_stalled`` the ERP has it, but the push stopped before the end (a dead letter
                   after the Save): ``erp_error`` says why; a replay resumes it
``erp_unknown``    the push was given up while the last attempt's outcome was unknown:
                   the ERP may have it; a replay looks it up before anything else
``erp_failed``     the ERP refused it (or the push was given up with nothing sent)
``erp_unrouted``   approved, but no ERP is configured for its legal entity: nothing was
                   queued; ``erp_error`` names the entity and the setting to fix
================== ===============================================================

**Which ERP** is configuration (``HUB_ORDERS__ERP``, ``HUB_ORDERS__ERP_BY_ENTITY``,
:class:`~hub.settings.OrderSettings`): a tenant's one ERP, or one per legal entity for a group
company that runs Kingdee for one entity and Yonyou for another (:func:`route_order`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hub.contracts import WriteResult
from hub.errors import NotFoundError
from hub.outbox import effects, enqueue
from hub.outbox.effects import Failure
from hub.rules import webhooks
from hub.settings import OrderSettings


def order_payload(conn: Connection, order_id: int, erp_system: str) -> dict[str, Any]:
    """Snapshot of a CRM order as the ERP writer needs it (amounts as strings)."""
    order = conn.execute(sa.text(
        "SELECT o.id, o.order_number, o.order_date, o.currency, o.total_amount, o.legal_entity, "
        "c.id AS customer_id, c.name, "
        "c.credit_code, u.name AS salesperson, "
        "(SELECT external_id FROM external_identity e WHERE e.system = :erp AND e.object = 'customer' "
        " AND e.canonical_id = c.id ORDER BY e.id LIMIT 1) AS erp_number "
        "FROM sales_order o JOIN customer c ON c.id = o.customer_id LEFT JOIN internal_user u ON u.id = o.owner_id "
        "WHERE o.id = :id"), {"id": order_id, "erp": erp_system}).first()
    if order is None:
        raise NotFoundError(f"no sales order {order_id}")
    lines = conn.execute(sa.text(
        "SELECT line_no, product_code, product_name, quantity, unit_price, tax_rate, amount FROM sales_order_line "
        "WHERE order_id = :id ORDER BY line_no"), {"id": order_id}).all()
    return {
        "order_id": order.id, "order_number": order.order_number, "order_date": order.order_date.isoformat(),
        "currency": order.currency, "total_amount": str(order.total_amount), "legal_entity": order.legal_entity,
        "customer": {"id": order.customer_id, "name": order.name, "credit_code": order.credit_code,
                     "erp_number": order.erp_number},
        "salesperson": order.salesperson,
        "lines": [{"line_no": r.line_no, "product_code": r.product_code, "product_name": r.product_name,
                   "quantity": str(r.quantity), "unit_price": str(r.unit_price), "tax_rate": str(r.tax_rate),
                   "amount": str(r.amount)} for r in lines],
    }


class UnroutedOrder(ValueError):
    """No ERP is configured for an order's legal entity; the message says what to set."""


def route_order(routing: OrderSettings, legal_entity: str | None) -> str:
    """The ERP an order of ``legal_entity`` goes to (see :class:`~hub.settings.OrderSettings`),
    or :class:`UnroutedOrder` naming the entity and the setting to fix."""
    entity = (legal_entity or "").strip()
    if entity and entity in routing.erp_by_entity:
        return routing.erp_by_entity[entity]
    if entity and routing.erp_by_entity:
        listed = ", ".join(sorted(routing.erp_by_entity))
        raise UnroutedOrder(f"no ERP is configured for legal entity {entity!r} (HUB_ORDERS__ERP_BY_ENTITY lists "
                            f"{listed}); add it there and approve the order again")
    if routing.erp is None:
        what = f"legal entity {entity!r}" if entity else "an order without a legal entity"
        raise UnroutedOrder(f"no ERP is configured for {what}: set HUB_ORDERS__ERP or HUB_ORDERS__ERP_BY_ENTITY "
                            "and approve the order again")
    return routing.erp


def approve_order(conn: Connection, order_id: int, *, routing: OrderSettings | None = None,
                  erp_system: str | None = None, at: dt.datetime | None = None, max_attempts: int = 6) -> int | None:
    """Approve a CRM order and enqueue its push to the ERP its legal entity is routed to
    (``routing``; default: every order to Kingdee), in the same transaction. ``erp_system``
    names the ERP directly instead.

    Returns the outbox id, or None when the push was already enqueued (approving twice is
    harmless) or when no ERP is configured for the order's legal entity: then the order is
    approved with status ``erp_unrouted`` and ``erp_error`` saying what to configure.
    """
    legal_entity = conn.execute(sa.text(
        "SELECT legal_entity FROM sales_order WHERE id = :id AND source_system = 'crm'"), {"id": order_id}).first()
    if legal_entity is None:
        raise NotFoundError(f"no CRM sales order {order_id}")
    try:
        erp = erp_system or route_order(routing or OrderSettings(), legal_entity[0])
    except UnroutedOrder as exc:
        conn.execute(sa.text(
            "UPDATE sales_order SET approval_state = 'approved', status = 'erp_unrouted', approved_at = :at, "
            "erp_system = NULL, erp_error = :err WHERE id = :id"),
            {"id": order_id, "at": at or dt.datetime.now(dt.UTC), "err": str(exc)})
        return None
    conn.execute(sa.text(
        "UPDATE sales_order SET approval_state = 'approved', status = 'approved', approved_at = :at, "
        "erp_system = :erp, erp_error = NULL WHERE id = :id"),
        {"id": order_id, "at": at or dt.datetime.now(dt.UTC), "erp": erp})
    erp_system = erp
    payload = order_payload(conn, order_id, erp_system)
    return enqueue(conn, f"{erp_system}.sales_order", f"{erp_system}.sales_order:crm-order-{order_id}", payload,
                   max_attempts=max_attempts)


# One statement for an outcome's write-back (it replaced four: the order before, the UPDATE, the
# order after, and the ids the order.in_erp event carries): every sub-statement of a WITH sees the
# same snapshot, so "before" is the row as the UPDATE found it. The ids are read as
# customer_reference and external_ids read them (hub.rules.webhooks), in the same order.
_RECORD_RESULT = sa.text(
    "WITH before AS (SELECT erp_bill_number, erp_status, status FROM sales_order WHERE id = :id), "
    "after AS (UPDATE sales_order SET erp_system = :erp, erp_bill_number = :bill, erp_status = :status, "
    "erp_synced_at = now(), erp_error = NULL, status = :state WHERE id = :id "
    "RETURNING id, order_number, customer_id, erp_system, erp_bill_number, erp_status, status) "
    "SELECT after.*, before.erp_bill_number AS before_bill_number, before.erp_status AS before_erp_status, "
    "before.status AS before_status, "
    "(SELECT COALESCE(json_agg(json_build_object('system', e.system, 'id', e.external_id) "
    "ORDER BY e.system, e.external_id), '[]') FROM external_identity e WHERE e.canonical_table = 'customer' "
    "AND e.canonical_id = after.customer_id AND e.object = 'customer') AS customer_ids, "
    "(SELECT COALESCE(json_agg(json_build_object('system', e.system, 'id', e.external_id) "
    "ORDER BY e.system, e.external_id), '[]') FROM external_identity e WHERE e.canonical_table = 'sales_order' "
    "AND e.canonical_id = after.id) AS order_ids "
    "FROM after LEFT JOIN before ON true")


def record_erp_result(conn: Connection, order_id: int, erp_system: str, bill_number: str, erp_status: str | None,
                      *, customer_number: str | None = None, customer_id: int | None = None,
                      complete: bool = True) -> Any:
    """Write the ERP's bill number and status back onto the CRM order (``complete``: the push
    is finished, else the ERP holds the order but the push goes on); link the customer to the
    ERP customer number the writer used or created.

    Returns the order's change, as ``hub.rules.webhooks.order_reached_erp`` reads it (the
    order after and before, with the ids its event carries), or None when there is no such order.
    """
    if customer_number and customer_id:  # first: the customer's ids read with the change include it
        conn.execute(sa.text(
            "INSERT INTO external_identity (system, object, external_id, canonical_table, canonical_id) "
            "VALUES (:erp, 'customer', :num, 'customer', :cid) ON CONFLICT (system, object, external_id) DO NOTHING"),
            {"erp": erp_system, "num": customer_number, "cid": customer_id})
    return conn.execute(_RECORD_RESULT, {"erp": erp_system, "bill": bill_number, "status": erp_status, "id": order_id,
                                         "state": "in_erp" if complete else "in_erp_unaudited"}).first()


def record_erp_failure(conn: Connection, order_id: int, failure: Failure) -> None:
    """Show a refused or given-up push on the CRM order so sales can see it, without ever
    calling "failed" an order the ERP is known to hold."""
    conn.execute(sa.text(
        "UPDATE sales_order SET erp_error = :err, status = CASE "
        "WHEN erp_bill_number IS NOT NULL THEN 'in_erp_stalled' "
        "WHEN :unknown THEN 'erp_unknown' ELSE 'erp_failed' END WHERE id = :id"),
        {"err": failure.message[:1000], "unknown": failure.outcome_unknown, "id": order_id})


def _record(conn: Connection, kind: str, payload: dict[str, Any], result: WriteResult, *, complete: bool) -> None:
    customer = payload.get("customer")
    customer = customer if isinstance(customer, dict) else {}
    order_id = int(payload["order_id"])
    change = record_erp_result(conn, order_id, kind.partition(".")[0], result.external_id, result.status,
                               customer_number=result.detail.get("customer_number"), customer_id=customer.get("id"),
                               complete=complete)
    if change is not None:
        webhooks.order_reached_erp(conn, change)  # order.in_erp to the CRM, when it changed


def _order_pushed(conn: Connection, kind: str, payload: dict[str, Any], result: WriteResult) -> None:
    """Outbox effect handler: the ERP bill number and status onto the CRM order; the ERP
    customer number the writer used (or created) linked to the golden customer."""
    _record(conn, kind, payload, result, complete=True)


def _order_partly_pushed(conn: Connection, kind: str, payload: dict[str, Any], progress: WriteResult) -> None:
    """Outbox effect handler: an attempt stopped after the ERP took the order (saved, not
    audited): the bill number and the status reached are recorded at once."""
    _record(conn, kind, payload, progress, complete=False)


def _order_push_failed(conn: Connection, kind: str, payload: dict[str, Any], failure: Failure) -> None:
    """Outbox effect handler: a refused or dead-lettered push shows on the CRM order."""
    record_erp_failure(conn, int(payload["order_id"]), failure)


effects.register("sales_order", effects.EffectHandler(
    on_done=_order_pushed, on_failed=_order_push_failed, on_progress=_order_partly_pushed))
