"""Sales orders from the CRM: ``POST /api/orders``, ``PATCH /api/orders/{id}``, ``GET /api/orders/{id}``.

An order's lines must add up to its total (to the cent) and its currency be ISO 4217.
Its approval state moves only along :data:`TRANSITIONS`; while it is not approved its
content (date, currency, total, legal entity, lines) may change, afterwards it is the
ERP's to keep (409).

Approval is the existing domain change, :func:`hub.rules.orders.approve_order`, in the
request's transaction: the order is marked approved and its ``<erp>.sales_order`` push
is enqueued in the outbox together, routed by legal entity (``HUB_ORDERS__*``). The
dispatcher (Dagster's ``orders_to_erp``, or ``hub dispatch``) creates it in the ERP
exactly as it does every CRM order, and writes the bill number and status back onto the
order, where ``GET /api/orders/{id}`` shows them.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import HTTPException, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StrictInt, model_validator
from sqlalchemy.engine import Connection

from canonical_model.models import SalesOrder, SalesOrderLine
from canonical_model.search import MAX_ID
from hub.access import Principal
from hub.rules.orders import approve_order
from hub.settings import Settings
from hub.web.crm_api.common import (
    CRM,
    READ_ERRORS,
    WRITE_ERRORS,
    CustomerRef,
    IdempotencyKey,
    Viewer,
    Writer,
    api_router,
    check_assignable,
    default_owner,
    field_error,
    not_found,
    principal_scope,
    reading,
    settings_of,
    visible_customer,
)
from hub.web.crm_api.fields import Body, Currency, Fits, Id, IsoDate, Money, NonNegativeMoney, Text
from hub.web.idempotency import Answer
from hub.web.writes import audit_write, write_once

router = api_router("orders")

ApprovalState = Literal["none", "pending", "approved", "rejected"]
# approval_state → the states a request may move it to ("approved" is final: the ERP has it)
TRANSITIONS: dict[str, frozenset[str]] = {
    "none": frozenset({"pending", "approved"}),
    "pending": frozenset({"approved", "rejected", "none"}),
    "rejected": frozenset({"pending", "none"}),
    "approved": frozenset(),
}
# what sales_order.status says before approval (afterwards hub.rules.orders keeps it)
_STATUS_OF = {"none": "draft", "pending": "submitted", "rejected": "rejected"}
MAX_LINES = 500

Quantity = Annotated[Decimal, Fits(SalesOrderLine.quantity), Field(gt=0, allow_inf_nan=False)]
UnitPrice = Annotated[Decimal, Fits(SalesOrderLine.unit_price), Field(ge=0, allow_inf_nan=False)]
TaxRate = Annotated[Decimal, Fits(SalesOrderLine.tax_rate), Field(ge=0, le=100, allow_inf_nan=False)]


class OrderLineIn(Body):
    """One order line; ``amount`` is the line's total in the order's currency."""

    line_no: StrictInt = Field(ge=1, le=MAX_LINES * 10)
    product_code: Annotated[Text, Fits(SalesOrderLine.product_code), Field(min_length=1)]
    product_name: Annotated[Text, Fits(SalesOrderLine.product_name)] | None = None
    quantity: Quantity
    unit_price: UnitPrice
    tax_rate: TaxRate = Decimal("0")
    amount: NonNegativeMoney


def _lines_problem(lines: list[OrderLineIn], total: Decimal) -> str | None:
    numbers = [line.line_no for line in lines]
    if len(set(numbers)) != len(numbers):
        return "line_no must be unique within the order"
    summed = sum((line.amount for line in lines), Decimal("0"))
    if summed != total:
        return f"the lines add up to {summed}, not the total_amount {total}"
    return None


class OrderIn(CustomerRef):
    """A new CRM order."""

    external_id: Annotated[Text, Fits(SalesOrder.external_id), Field(min_length=1)] = Field(
        description="The CRM's id of the order (one order per id)")
    order_number: Annotated[Text, Fits(SalesOrder.order_number), Field(min_length=1, pattern=r"^[!-~]+$")] = Field(
        description="The CRM's order number; the ERP bill is CRM-<order_number>")
    order_date: IsoDate
    currency: Currency
    total_amount: NonNegativeMoney
    legal_entity: Annotated[Text, Fits(SalesOrder.legal_entity), Field(min_length=1)] | None = Field(
        None, description="Selling legal entity: which ERP the order goes to (HUB_ORDERS__ERP_BY_ENTITY)")
    owner_id: Id | None = Field(None, description="Salesperson (default: the caller)")
    approval_state: Literal["none", "pending", "approved"] = "none"
    lines: list[OrderLineIn] = Field(min_length=1, max_length=MAX_LINES)

    @model_validator(mode="after")
    def _lines_add_up(self) -> OrderIn:
        if (problem := _lines_problem(self.lines, self.total_amount)) is not None:
            raise ValueError(problem)
        return self


class OrderPatch(Body):
    """Changes to an order: content while it is not approved, and its approval state."""

    order_date: IsoDate | None = None
    currency: Currency | None = None
    total_amount: NonNegativeMoney | None = None
    legal_entity: Annotated[Text, Fits(SalesOrder.legal_entity), Field(min_length=1)] | None = None
    lines: list[OrderLineIn] | None = Field(None, min_length=1, max_length=MAX_LINES)
    approval_state: ApprovalState | None = Field(None, description="Moves along: none → pending → approved | "
                                                                   "rejected; rejected → pending; approved is final")


class OrderLineOut(BaseModel):
    """An order line as stored."""

    line_no: int
    product_code: str
    product_name: str | None
    quantity: Decimal
    unit_price: Decimal
    tax_rate: Decimal
    amount: Money


class OrderOut(BaseModel):
    """A CRM order with what the ERP made of it."""

    id: int
    external_id: str
    order_number: str
    customer_id: int
    owner_id: int | None
    order_date: Any = Field(description="YYYY-MM-DD")
    currency: str
    total_amount: Decimal
    legal_entity: str | None
    approval_state: str
    status: str = Field(description="draft, submitted, rejected, approved (queued for the ERP), in_erp, "
                                    "in_erp_unaudited, in_erp_stalled, erp_unknown, erp_failed, erp_unrouted")
    erp_system: str | None
    erp_bill_number: str | None
    erp_status: str | None
    erp_error: str | None
    erp_synced_at: Any = Field(description="ISO 8601 time, or null")
    approved_at: Any = Field(description="ISO 8601 time, or null")
    erp_push: str | None = Field(description="State of the ERP push in the outbox (pending, in_progress, done, "
                                             "failed, dead), null when none was queued")
    lines: list[OrderLineOut]


def order_out(conn: Connection, order_id: int) -> dict[str, Any] | None:
    """``GET /api/orders/{id}``'s body, or None."""
    row = conn.execute(sa.text(
        "SELECT o.id, o.external_id, o.order_number, o.customer_id, o.owner_id, o.order_date, o.currency, "
        "o.total_amount, o.legal_entity, o.approval_state, o.status, o.erp_system, o.erp_bill_number, o.erp_status, "
        "o.erp_error, o.erp_synced_at, o.approved_at, "
        "(SELECT b.status FROM outbox b WHERE b.idempotency_key = o.erp_system || '.sales_order:crm-order-' || o.id) "
        "AS erp_push FROM sales_order o WHERE o.id = :id AND o.source_system = :s"), {"id": order_id, "s": CRM}).first()
    if row is None:
        return None
    lines = conn.execute(sa.text(
        "SELECT line_no, product_code, product_name, quantity, unit_price, tax_rate, amount FROM sales_order_line "
        "WHERE order_id = :id ORDER BY line_no"), {"id": order_id}).all()
    out = OrderOut(**row._mapping, lines=[OrderLineOut(**line._mapping) for line in lines])
    return out.model_dump(mode="json")


def _write_lines(conn: Connection, order_id: int, lines: list[OrderLineIn]) -> None:
    conn.execute(sa.text("DELETE FROM sales_order_line WHERE order_id = :id"), {"id": order_id})
    conn.execute(sa.text(
        "INSERT INTO sales_order_line (order_id, line_no, product_code, product_name, quantity, unit_price, "
        "tax_rate, amount) VALUES (:o, :l, :c, :n, :q, :p, :t, :a)"),
        [{"o": order_id, "l": x.line_no, "c": x.product_code, "n": x.product_name, "q": x.quantity,
          "p": x.unit_price, "t": x.tax_rate, "a": x.amount} for x in lines])


def _approve(conn: Connection, settings: Settings, order_id: int) -> None:
    approve_order(conn, order_id, routing=settings.orders, max_attempts=settings.outbox.max_attempts)


def create_order(conn: Connection, principal: Principal, settings: Settings, body: OrderIn) -> Answer:
    """The write of ``POST /api/orders``."""
    scope = principal_scope(conn, principal)
    customer_id = visible_customer(conn, scope, body)
    if body.owner_id is not None:
        check_assignable(conn, principal, scope, body.owner_id, field="owner_id")
    order_id = conn.execute(sa.text(
        "INSERT INTO sales_order (order_number, customer_id, owner_id, order_date, currency, total_amount, status, "
        "approval_state, legal_entity, source_system, external_id) VALUES (:num, :c, :o, :d, :cur, :t, :st, :ap, "
        ":le, :s, :x) ON CONFLICT (source_system, external_id) DO NOTHING RETURNING id"),
        {"num": body.order_number, "c": customer_id, "o": default_owner(principal, body.owner_id),
         "d": body.order_date, "cur": body.currency, "t": body.total_amount,
         "st": _STATUS_OF.get(body.approval_state, "draft"),
         "ap": "none" if body.approval_state == "approved" else body.approval_state, "le": body.legal_entity,
         "s": CRM, "x": body.external_id}).scalar()
    if order_id is None:
        raise HTTPException(409, f"order {body.external_id!r} exists already: change it with PATCH /api/orders/<id>")
    _write_lines(conn, order_id, body.lines)
    if body.approval_state == "approved":
        _approve(conn, settings, order_id)
    audit_write(conn, principal, operation="sales_order:create", table="sales_order", record_id=order_id,
                detail={"external_id": body.external_id, "approval_state": body.approval_state,
                        "total_amount": str(body.total_amount), "currency": body.currency})
    return Answer(201, order_out(conn, order_id))


def update_order(conn: Connection, principal: Principal, settings: Settings, order_id: int,
                 body: OrderPatch) -> Answer:
    """The write of ``PATCH /api/orders/{id}``."""
    scope = principal_scope(conn, principal)
    order = conn.execute(sa.text(
        "SELECT o.id, o.approval_state, o.total_amount, c.owner_id FROM sales_order o "
        "JOIN customer c ON c.id = o.customer_id WHERE o.id = :id AND o.source_system = :s FOR UPDATE OF o"),
        {"id": order_id, "s": CRM}).first()
    if order is None or not scope.sees_owner(order.owner_id):
        raise not_found("order", order_id)
    changes = body.model_dump(exclude_unset=True, exclude={"approval_state", "lines"})
    changes = {k: v for k, v in changes.items() if v is not None}
    if (changes or body.lines is not None) and order.approval_state == "approved":
        raise HTTPException(409, f"order {order_id} is approved: its content is the ERP's now")
    total = changes.get("total_amount", order.total_amount)
    if body.lines is not None:
        if (problem := _lines_problem(body.lines, total)) is not None:
            raise field_error(["lines"], problem)
    elif "total_amount" in changes:
        summed = conn.execute(sa.text("SELECT COALESCE(sum(amount), 0) FROM sales_order_line WHERE order_id = :id"),
                              {"id": order_id}).scalar_one()
        if summed != total:
            raise field_error(["total_amount"], f"the order's lines add up to {summed}, not {total}")
    if changes:
        sets = ", ".join(f"{name} = :{name}" for name in changes)
        conn.execute(sa.text(f"UPDATE sales_order SET {sets} WHERE id = :id"), {**changes, "id": order_id})
    if body.lines is not None:
        _write_lines(conn, order_id, body.lines)
    state = body.approval_state
    if state is not None and state != order.approval_state:
        if state not in TRANSITIONS[order.approval_state]:
            raise HTTPException(409, f"order {order_id} cannot go from approval state {order.approval_state!r} "
                                     f"to {state!r}")
        if state == "approved":
            _approve(conn, settings, order_id)
        else:
            conn.execute(sa.text("UPDATE sales_order SET approval_state = :a, status = :s WHERE id = :id"),
                         {"a": state, "s": _STATUS_OF[state], "id": order_id})
    audit_write(conn, principal, operation="sales_order:update", table="sales_order", record_id=order_id,
                detail={"changed": sorted(changes) + (["lines"] if body.lines is not None else []),
                        "approval_state": state})
    return Answer(200, order_out(conn, order_id))


OrderId = Annotated[int, Path(ge=1, le=MAX_ID, description="The hub's order id")]


@router.post("/api/orders", response_model=OrderOut, status_code=201, responses=WRITE_ERRORS)
async def post_order(body: OrderIn, request: Request, principal: Writer,
                     idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """Create a CRM order with its lines (they must add up to the total); created approved, its
    ERP push is queued at once."""
    settings = settings_of(request)
    return await write_once(request, principal, lambda conn: create_order(conn, principal, settings, body))


@router.patch("/api/orders/{order_id}", response_model=OrderOut, responses=WRITE_ERRORS)
async def patch_order(order_id: OrderId, body: OrderPatch, request: Request, principal: Writer,
                      idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """Change an order's content (not once approved) or move its approval state; approving it
    queues its push to the ERP."""
    settings = settings_of(request)
    return await write_once(request, principal, lambda conn: update_order(conn, principal, settings, order_id, body))


@router.get("/api/orders/{order_id}", response_model=OrderOut,
            responses={**READ_ERRORS, 404: WRITE_ERRORS[404]})
def get_order(order_id: OrderId, request: Request, principal: Viewer) -> dict[str, Any]:
    """One CRM order with its lines, approval state, ERP bill number and status."""
    with reading(request) as conn:
        scope = principal_scope(conn, principal)
        owner = conn.execute(sa.text("SELECT c.owner_id FROM sales_order o JOIN customer c ON c.id = o.customer_id "
                                     "WHERE o.id = :id AND o.source_system = :s"), {"id": order_id, "s": CRM}).first()
        found = order_out(conn, order_id) if owner is not None and scope.sees_owner(owner.owner_id) else None
    if found is None:
        raise not_found("order", order_id)
    return found
