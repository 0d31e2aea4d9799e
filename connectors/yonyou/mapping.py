"""Pure mapping between YonBIP list rows and canonical records, and back (no I/O).

Inbound: one list row (customers, receivables) or one grouped order (header plus
``orderDetails``) → one canonical record, or a :class:`MappingError` naming the field.
Outbound: the CRM order payload → ``voucherorder/singleSave`` data; a CRM customer →
``merchant/idempotent/newinsert`` data.

Field names follow erp-apis.md §2.5 where it names them (``code``, ``name.simplifiedName``,
``creditCode``, ``pubts``, ``vouchdate``, ``agentId``, ``payMoney``, ``"orderPrices!currency"``,
``orderDetails``, ``qty``, ``oriTaxUnitPrice``, ``oriSum``, AR ``oriAmount``,
``bodyItem_oriBalance``, ``bodyItem_grandsonItem_expireDate``). Where it does not, the names
are GUESSES in YonBIP's style (a reference field's code as ``<field>_code``), the same in the
sandbox and here, to verify on a real tenant:

- customer: ``contactTel``, ``address``, ``customerClass_name``, ``transCurrency_code``, and
  the salesperson in charge (专管业务员) as ``professSalesman_code`` (a staff code);
- order header: ``agentId_code`` (customer code), ``corpContact_code`` (the salesperson's
  staff code), ``verifystate`` (0 open, 1 submitted, 2 audited); a line's product as
  ``productId_code`` / ``productId_name`` and its ``taxRate`` in percent. In the order *list*
  each row is one line, its line fields prefixed ``orderDetails_`` (§2.5 says one row per
  line, not how the line's fields are named);
- receivable: ``customer_code``, ``currency_code``, ``accDate`` (bill date). The list has
  one row per installment (``bodyItem_grandsonItem``); the sandbox gives every bill one
  installment, so a bill is one receivable keyed by its ``code`` [UNC for bills with several].

Times (``pubts``, dates) are ``yyyy-MM-dd HH:mm:ss`` in the tenant's local time, read as
Asia/Shanghai (UTC+8); currencies are ISO codes (YonBIP's currency archive codes them so:
``CNY``, ``USD``) [UNC]. Amounts are checked like Kingdee's: the order total (``payMoney``)
must equal the sum of its lines, so the profile looks the same whichever ERP a customer
lives in.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from canonical_model.pages import PagedMapping
from canonical_model.records import (
    RECEIVABLE_PAGE,
    SALES_ORDER_PAGE,
    CanonicalRecord,
    CustomerRecord,
    MappingError,
    RawRecord,
    ReceivableRecord,
    SalesOrderLineRecord,
    SalesOrderRecord,
    build,
)
from canonical_model.storable import shown
from connectors.kit.fields import money, quantity, required_text, text
from connectors.kit.orders import CrmCustomer, CrmOrder, check_lines_total

SOURCE_SYSTEM = "yonyou"
YONYOU_TZ = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
LINE_PREFIX = "orderDetails_"
ORDER_LINES = "orderDetails"
# verifystate of vouchers (0 开立 open, 1 审批中 submitted, 2 审批通过 audited) as the hub shows it
ORDER_STATES = {0: "open", 1: "submitted", 2: "audited"}
MAX_RESUBMIT_KEY = 32  # §2.4: ≤ 32 characters, unique per API and tenant


# ---------------------------------------------------------------------------------------------
# Field readers beyond the kit's

def parse_yonyou_time(value: Any, key: str) -> dt.datetime:
    """A YonBIP time (``2024-05-01 10:20:30``, a date, or epoch milliseconds) → aware datetime."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return dt.datetime.fromtimestamp(value / 1000, dt.UTC).astimezone(YONYOU_TZ)
        except (OverflowError, OSError, ValueError):
            raise MappingError(f"{key}: {shown(value)} is not a time in epoch milliseconds") from None
    if not isinstance(value, str) or not value.strip():
        raise MappingError(f"{key}: missing date/time" if value in (None, "") else
                           f"{key}: expected a date/time, got {shown(value)}")
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise MappingError(f"{key}: {shown(value)} is not a date/time the hub can read "
                           "(YonBIP sends 2024-05-01 10:20:30)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=YONYOU_TZ)


def format_yonyou_time(value: dt.datetime) -> str:
    """An aware time as YonBIP writes it (local, ``yyyy-MM-dd HH:mm:ss``)."""
    return value.astimezone(YONYOU_TZ).strftime(TIME_FORMAT)


def _date(raw: Mapping[str, Any], key: str) -> dt.date:
    return parse_yonyou_time(raw.get(key), key).date()


def _name(raw: Mapping[str, Any]) -> str:
    """A multilingual name: ``{"simplifiedName": …}`` (newlist), ``{"zh_CN": …}`` (older
    saves, §2.5) or plain text."""
    value = raw.get("name")
    if isinstance(value, Mapping):
        for language in ("simplifiedName", "zh_CN", "traditionalName", "englishName", "en_US"):
            found = text(value, language)
            if found:
                return found
        raise MappingError(f"name: no simplifiedName or zh_CN in {shown(value)}")
    return required_text(raw, "name", "customer name")


def _state(raw: Mapping[str, Any]) -> str | None:
    value = raw.get("verifystate")
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and value in ORDER_STATES:
        return ORDER_STATES[value]
    raise MappingError(f"verifystate: {shown(value)} is not a voucher state (0 open, 1 submitted, 2 audited)")


def _build(model: type[Any], source_object: str, **values: Any) -> Any:
    if issubclass(model, CanonicalRecord):
        return build(model, source_system=SOURCE_SYSTEM, source_object=source_object, **values)
    return build(model, **values)


def _object(raw: Any) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise MappingError(f"record: expected an object of fields, got {shown(raw)}")
    return raw


# ---------------------------------------------------------------------------------------------
# Inbound

def map_customer(raw: RawRecord) -> CustomerRecord:
    """A ``merchant/newlist`` row → CustomerRecord (external id = customer code)."""
    row = _object(raw)
    credit_code = text(row, "creditCode")
    record: CustomerRecord = _build(
        CustomerRecord, "merchant", external_id=required_text(row, "code", "customer code"),
        modified_at=parse_yonyou_time(row.get("pubts"), "pubts"), name=_name(row),
        credit_code=credit_code.upper() if credit_code else None,
        phone=text(row, "contactTel"), address=text(row, "address"), industry=text(row, "customerClass_name"),
        owner_ref=text(row, "professSalesman_code"), currency=text(row, "transCurrency_code") or "CNY",
    )
    return record


def group_order_rows(rows: Sequence[RawRecord]) -> list[RawRecord]:
    """``voucherorder/list`` rows (one per line) → one record per order: the header fields of
    its first row plus ``orderDetails`` (the ``orderDetails_`` fields, prefix removed), in the
    order the orders first appear. A row without an ``id`` stays a record of its own (its
    mapping names the missing id)."""
    orders: dict[str, RawRecord] = {}
    loose: list[RawRecord] = []
    for row in rows:
        key = _order_key(row)
        if key is None:
            loose.append(row)
            continue
        header = orders.get(key)
        if header is None:
            header = {k: v for k, v in row.items() if not k.startswith(LINE_PREFIX)}
            header[ORDER_LINES] = []
            orders[key] = header
        line = {k[len(LINE_PREFIX):]: v for k, v in row.items() if k.startswith(LINE_PREFIX)}
        if line:
            header[ORDER_LINES].append(line)
    return [*orders.values(), *loose]


def _order_key(row: Any) -> str | None:
    """The order id a line row groups by, or None for a row that cannot be grouped: not an
    object, no id, or an id that has no text form (a whole number of thousands of digits
    cannot be printed; such a row stays loose and its mapping refuses it with a reason)."""
    order_id = row.get("id") if isinstance(row, Mapping) else None
    if order_id in (None, ""):
        return None
    try:
        return str(order_id)
    except ValueError:
        return None


def _order_header(raw: RawRecord) -> tuple[Mapping[str, Any], str, Decimal, list[Any]]:
    """(row, code, total, details in line order) of a grouped order, checked in the order
    :func:`map_sales_order` has always checked them (so the first problem named is the same)."""
    row = _object(raw)
    code = required_text(row, "code", "order code")
    required_text(row, "id", "order id")
    total = money(row, "payMoney")
    details = row.get(ORDER_LINES)
    if not isinstance(details, list) or not details:
        raise MappingError(f"{ORDER_LINES}: order {code} has no lines")
    return row, code, total, sorted(details, key=_line_order)


def _order_fields(row: Mapping[str, Any], code: str, total: Decimal, lines: Any) -> dict[str, Any]:
    return {
        "source_system": SOURCE_SYSTEM, "source_object": "voucherorder", "external_id": code,
        "modified_at": parse_yonyou_time(row.get("pubts"), "pubts"), "bill_number": code,
        "customer_ref": required_text(row, "agentId_code", "customer code"), "order_date": _date(row, "vouchdate"),
        "currency": required_text(row, "orderPrices!currency", "currency"), "total_amount": total,
        "erp_status": _state(row), "lines": lines,
    }


def sales_order_fields(raw: RawRecord) -> dict[str, Any]:
    """The SalesOrderRecord field values of a grouped order (``lines``: each line's
    SalesOrderLineRecord field values), read as :func:`map_sales_order` reads them;
    MappingError when a field cannot be read (the line totals included)."""
    row, code, total, details = _order_header(raw)
    lines = [_line_fields(detail, line_no) for line_no, detail in enumerate(details, 1)]
    check_lines_total([line["amount"] for line in lines], total, "payMoney")
    return _order_fields(row, code, total, lines)


def map_sales_order(raw: RawRecord) -> SalesOrderRecord:
    """A grouped order (header plus ``orderDetails``) → SalesOrderRecord (external id = code)."""
    row, code, total, details = _order_header(raw)
    lines = [_order_line(detail, line_no) for line_no, detail in enumerate(details, 1)]
    check_lines_total([line.amount for line in lines], total, "payMoney")
    record: SalesOrderRecord = build(SalesOrderRecord, **_order_fields(row, code, total, tuple(lines)))
    return record


def _line_fields(detail: Any, line_no: int) -> dict[str, Any]:
    """The SalesOrderLineRecord field values of one ``orderDetails`` entry; a problem is
    named with the line's position."""
    where = f"line {line_no}: "
    if not isinstance(detail, Mapping):
        raise MappingError(f"{where}expected an object, got {shown(detail)}")
    values: dict[str, Any] = {"line_no": line_no}
    readers = (("product_code", lambda: required_text(detail, "productId_code", "product code")),
               ("product_name", lambda: text(detail, "productId_name")),
               ("quantity", lambda: quantity(detail, "qty")),
               ("unit_price", lambda: quantity(detail, "oriTaxUnitPrice")),
               ("tax_rate", lambda: Decimal(0) if detail.get("taxRate") in (None, "") else quantity(detail, "taxRate")),
               ("amount", lambda: money(detail, "oriSum")))
    for name, read in readers:
        try:
            values[name] = read()
        except MappingError as exc:
            raise MappingError(where + str(exc)) from exc
    return values


def _order_line(detail: Any, line_no: int) -> SalesOrderLineRecord:
    """One ``orderDetails`` entry as a record; a problem is named with the line's position."""
    values = _line_fields(detail, line_no)
    try:
        line: SalesOrderLineRecord = build(SalesOrderLineRecord, **values)
        return line
    except MappingError as exc:
        raise MappingError(f"line {line_no}: {exc}") from exc


# The sales orders stream's mapping: a page at a time when every order of it (lines included)
# maps and validates (canonical_model.pages), else order by order with the reasons above.
SALES_ORDER_MAPPING = PagedMapping(map_sales_order, sales_order_fields, SALES_ORDER_PAGE)


def _line_order(detail: Any) -> tuple[int, str]:
    """Lines by their line number (``lineno``), then as they came."""
    number = detail.get("lineno") if isinstance(detail, Mapping) else None
    return (int(number), "") if isinstance(number, int) and not isinstance(number, bool) else (1 << 30, "")


def receivable_fields(raw: RawRecord) -> dict[str, Any]:
    """The ReceivableRecord field values of an ``EFI/arPublicEvent/list`` row (open amount =
    ``bodyItem_oriBalance``); MappingError naming the field when one cannot be read."""
    row = _object(raw)
    code = required_text(row, "code", "bill code")
    amount = money(row, "oriAmount")
    open_amount = money(row, "bodyItem_oriBalance")
    if open_amount > amount > 0:
        raise MappingError(f"bodyItem_oriBalance: open amount {open_amount} exceeds the bill total {amount} (oriAmount)")
    return {
        "source_system": SOURCE_SYSTEM, "source_object": "arPublicEvent", "external_id": code,
        "modified_at": parse_yonyou_time(row.get("pubts"), "pubts"), "bill_number": code,
        "customer_ref": required_text(row, "customer_code", "customer code"),
        "bill_date": _date(row, "accDate"), "due_date": _date(row, "bodyItem_grandsonItem_expireDate"),
        "currency": required_text(row, "currency_code", "currency"), "amount": amount, "open_amount": open_amount,
        "status": _state(row),
    }


def map_receivable(raw: RawRecord) -> ReceivableRecord:
    """An ``EFI/arPublicEvent/list`` row → ReceivableRecord (the fields of :func:`receivable_fields`)."""
    return build(ReceivableRecord, **receivable_fields(raw))


# The receivables stream's mapping: a page at a time when every bill of it maps and validates
# (canonical_model.pages), else bill by bill with the reasons above.
RECEIVABLE_MAPPING = PagedMapping(map_receivable, receivable_fields, RECEIVABLE_PAGE)


# ---------------------------------------------------------------------------------------------
# Outbound

def resubmit_check_key(idempotency_key: str) -> str:
    """``resubmitCheckKey`` for an outbox key: the key itself when it fits 32 characters, else
    32 hex characters of its SHA-256 (deterministic: every attempt sends the same key)."""
    if len(idempotency_key) <= MAX_RESUBMIT_KEY:
        return idempotency_key
    return hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:MAX_RESUBMIT_KEY]


def crm_customer_to_merchant(customer: CrmCustomer, *, org_code: str, check_key: str) -> dict[str, Any]:
    """CRM customer → ``merchant/idempotent/newinsert`` data (§2.5; credit code as licenseType 0)."""
    if not customer.name:
        raise MappingError("customer.name: missing customer name")
    data: dict[str, Any] = {
        "resubmitCheckKey": check_key, "code": customer.number, "name": {"simplifiedName": customer.name},
        "createOrgCode": org_code, "enterpriseNature": 0, "enterpriseName": customer.name, "taxPayingCategories": 0,
    }
    if customer.credit_code:
        data.update(licenseType=0, creditCode=customer.credit_code)
    return data


def crm_order_to_voucher(
    order: CrmOrder, *, code: str, customer_code: str, org_code: str, transaction_type: str, check_key: str,
    salesperson: str | None = None,
) -> dict[str, Any]:
    """A parsed CRM order → ``voucherorder/singleSave`` data (§2.5): ``_status`` on the header
    and on every line, ``payMoney`` = the sum of the lines (tax included), flat ``!`` keys."""
    details = [
        {
            "_status": "Insert", "lineno": index, "productId": line.product_code, "stockOrgId": org_code,
            "orderProductType": "SALE", "qty": line.quantity, "subQty": line.quantity, "priceQty": line.quantity,
            "taxRate": line.tax_rate, "oriTaxUnitPrice": line.unit_price, "oriSum": line.amount,
            "orderDetailPrices!oriTaxUnitPrice": line.unit_price, "orderDetailPrices!oriSum": line.amount,
            "memo": f"CRM行号 {line.line_no}",
        }
        for index, line in enumerate(order.lines, start=1)
    ]
    data: dict[str, Any] = {
        "resubmitCheckKey": check_key, "_status": "Insert", "code": code, "salesOrgId": org_code,
        "transactionTypeId": transaction_type, "vouchdate": f"{order.order_date.isoformat()} 00:00:00",
        "agentId": customer_code, "settlementOrgId": org_code, "invoiceAgentId": customer_code,
        "payMoney": order.total, "orderPrices!currency": order.currency, "orderPrices!exchRate": 1,
        "orderPrices!taxInclusive": True, "memo": f"CRM订单 {order.order_number}", "orderDetails": details,
    }
    if salesperson:
        data["corpContact"] = salesperson
    return data


__all__ = [
    "ORDER_LINES",
    "ORDER_STATES",
    "RECEIVABLE_MAPPING",
    "SALES_ORDER_MAPPING",
    "SOURCE_SYSTEM",
    "YONYOU_TZ",
    "crm_customer_to_merchant",
    "crm_order_to_voucher",
    "format_yonyou_time",
    "group_order_rows",
    "map_customer",
    "map_receivable",
    "map_sales_order",
    "parse_yonyou_time",
    "receivable_fields",
    "resubmit_check_key",
    "sales_order_fields",
]
