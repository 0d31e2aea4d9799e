"""The hub's CRM order payload as every ERP writer reads it: parsed and checked once.

``hub.rules.orders.order_payload`` snapshots an approved CRM order into the outbox
(numbers as strings, so a retry sends identical values). Each ERP's mapping turns the
parsed :class:`CrmOrder` into its own document (a Kingdee ``SAL_SaleOrder`` model, a Yonyou
``voucherorder``); what any ERP would refuse or misread — no lines, a non-positive quantity,
a line amount that is not quantity × tax-inclusive unit price — is refused here, the same
way for both, as a :class:`~canonical_model.records.MappingError` naming the field.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from canonical_model.records import MappingError
from connectors.kit.fields import CENT


@dataclass(frozen=True)
class CrmOrderLine:
    """One order line: tax-inclusive ``unit_price``; ``amount`` = quantity × unit price."""

    line_no: Any
    product_code: str
    product_name: str | None
    quantity: Decimal
    unit_price: Decimal
    tax_rate: Decimal  # percent, 0–100
    amount: Decimal


@dataclass(frozen=True)
class CrmOrder:
    """An approved CRM order as the outbox payload holds it."""

    order_number: str
    order_date: dt.date
    currency: str  # ISO 4217, upper case (each ERP checks it knows it)
    lines: tuple[CrmOrderLine, ...]

    @property
    def total(self) -> Decimal:
        """The sum of the line amounts (tax included)."""
        return sum((line.amount for line in self.lines), Decimal(0))


def payload_decimal(value: Any, where: str) -> Decimal:
    """A payload number (sent as a string): MappingError naming ``where`` when it is none."""
    if value is None or isinstance(value, bool) or value == "":
        raise MappingError(f"{where}: missing number")
    try:
        found = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise MappingError(f"{where}: not a number: {value!r}") from exc
    if not found.is_finite():
        raise MappingError(f"{where}: not a finite number: {value!r}")
    return found


def _line(line: Any, position: int) -> CrmOrderLine:
    if not isinstance(line, Mapping):
        raise MappingError(f"lines[{position}]: not an object")
    where = f"lines[{line.get('line_no', position)}]"
    code = str(line.get("product_code") or "").strip()
    if not code:
        raise MappingError(f"{where}.product_code: missing product code (ERP material number)")
    quantity = payload_decimal(line.get("quantity"), f"{where}.quantity")
    unit_price = payload_decimal(line.get("unit_price"), f"{where}.unit_price")
    tax_rate = payload_decimal(line.get("tax_rate", "0"), f"{where}.tax_rate")
    amount = payload_decimal(line.get("amount"), f"{where}.amount")
    if quantity <= 0:
        raise MappingError(f"{where}.quantity: must be positive, got {quantity}")
    if unit_price < 0:
        raise MappingError(f"{where}.unit_price: must not be negative, got {unit_price}")
    if not Decimal(0) <= tax_rate <= Decimal(100):
        raise MappingError(f"{where}.tax_rate: must be a percentage 0–100, got {tax_rate}")
    expected = (quantity * unit_price).quantize(CENT, rounding=ROUND_HALF_UP)
    if abs(expected - amount) > CENT:
        raise MappingError(f"{where}.amount: {amount} ≠ quantity × tax-inclusive unit_price = {expected}")
    name = str(line.get("product_name") or "").strip() or None
    return CrmOrderLine(line.get("line_no", position), code, name, quantity, unit_price, tax_rate, amount)


def parse_crm_order(payload: Mapping[str, Any]) -> CrmOrder:
    """The payload's order number, date, currency and checked lines; MappingError otherwise."""
    order_number = str(payload.get("order_number") or "").strip()
    if not order_number:
        raise MappingError("order_number: missing CRM order number")
    raw_date = payload.get("order_date")
    try:
        order_date = dt.date.fromisoformat(str(raw_date))
    except ValueError as exc:
        raise MappingError(f"order_date: not a YYYY-MM-DD date: {raw_date!r}") from exc
    raw_lines = payload.get("lines")
    if not isinstance(raw_lines, list) or not raw_lines:
        raise MappingError("lines: an ERP sales order needs at least one line")
    lines = tuple(_line(line, position) for position, line in enumerate(raw_lines, start=1))
    return CrmOrder(order_number, order_date, str(payload.get("currency") or "").strip().upper(), lines)


@dataclass(frozen=True)
class CrmCustomer:
    """The order's customer as the payload names it; ``number`` is the ERP number the hub
    knows for it (``erp_number``), else the one a new ERP customer gets: ``CRM<id:06d>``."""

    id: int | None
    name: str
    credit_code: str
    number: str


def parse_crm_customer(payload: Mapping[str, Any]) -> CrmCustomer:
    """The payload's ``customer`` (``{"id", "name", "credit_code", "erp_number"}``)."""
    customer = payload.get("customer")
    if not isinstance(customer, Mapping):
        raise MappingError("customer: missing customer object")
    customer_id = customer.get("id")
    known = customer.get("erp_number")
    if isinstance(known, str) and known.strip():
        number = known.strip()
    elif isinstance(customer_id, int) and not isinstance(customer_id, bool):
        number = f"CRM{customer_id:06d}"
    else:
        raise MappingError("customer.id: missing CRM customer id (needed for a new ERP customer number)")
    return CrmCustomer(customer_id if isinstance(customer_id, int) else None, str(customer.get("name") or "").strip(),
                       str(customer.get("credit_code") or "").strip().upper(), number)


def check_lines_total(line_amounts: list[Decimal], total: Decimal, key: str) -> None:
    """An ERP order's header total must be the sum of its lines (a cent of rounding per line)."""
    line_total = sum(line_amounts, Decimal(0))
    if abs(line_total - total) > CENT * len(line_amounts):
        raise MappingError(f"{key}: header total {total} differs from the sum of lines {line_total}")


def salesperson_outcome(crm_salesperson: str, used: str | None, used_key: str) -> dict[str, str]:
    """What a push says about the CRM's salesperson: the ERP person used (under ``used_key``),
    or the name that was dropped because the ERP does not know it, or nothing."""
    if used:
        return {used_key: used}
    return {"salesperson_dropped": crm_salesperson} if crm_salesperson else {}


def crm_bill_number(order_number: str) -> str:
    """Deterministic ERP bill number of a CRM order: ``CRM-<order_number>``.

    Deterministic on purpose: a retry after a lost reply finds the earlier save by this
    number (Kingdee has no idempotency key; Yonyou's ``resubmitCheckKey`` replays only
    within an hour, erp-apis.md §1.4, §2.4).
    """
    cleaned = str(order_number).strip()
    if not cleaned:
        raise MappingError("order_number: missing CRM order number")
    return f"CRM-{cleaned}"


__all__ = ["CrmCustomer", "CrmOrder", "CrmOrderLine", "check_lines_total", "crm_bill_number", "parse_crm_customer",
           "parse_crm_order", "payload_decimal", "salesperson_outcome"]
