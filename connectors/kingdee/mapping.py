"""Pure mapping between K/3 Cloud query rows and canonical records, and back (no I/O).

Inbound: one raw row (a dict keyed by the field keys the stream asked for) → one canonical
record, or :class:`hub.contracts.MappingError` naming the offending field. Outbound: the hub's
CRM order payload → a ``SAL_SaleOrder`` Save model, a CRM customer → a ``BD_Customer`` model.

Conventions the mapping relies on:

- **Times.** Kingdee reports ``FModifyDate`` and dates as server local time without a zone
  (``2024-05-01T10:20:30``, reference ``erp-apis.md`` §1.4 [UNC on fractions]). They are read
  as Asia/Shanghai (UTC+8, no DST since 1991), the time zone of the Chinese deployments the
  hub serves — a deployment whose server runs on another zone would need this changed.
- **Currencies.** Kingdee references currencies by preset number; ``PRE001``…``PRE007`` map as in
  :data:`CURRENCY_BY_NUMBER` (two independent public code bases agree, found with the search
  tool; PRE008 and later differ between them and are left out). Unknown numbers are a
  MappingError, never a silent CNY.
- **Prices.** A line's ``unit_price`` is the tax-inclusive price (``FTaxPrice``) and ``amount`` the
  line total including tax (``FAllAmount``, §1.5), so ``amount = quantity × unit_price``
  rounded to cents. The outbound mapping checks that equation on CRM payloads.
- **Receivable open amount.** Read from ``FNOTWRITTENOFFAMOUNTFOR`` (未核销金额), else derived as
  ``FALLAMOUNTFOR − FWRITTENOFFAMOUNTFOR``. Both keys are a guess at the WebAPI field keys: a
  public SqlSugar entity of table ``T_AR_RECEIVABLE`` has columns with these names, and the
  reference lists only ``FALLAMOUNTFOR``/``FWRITTENOFFSTATUS``. Verify on a real tenant.
- **Cancelled receivables** (``FCancelStatus`` B) map with status ``cancelled`` and no open amount.
- **Red-letter bills** (negative receivables) have a negative open amount, which the canonical
  model refuses; they are quarantined with that reason rather than netted silently.
- **Malformed input.** Every field reader turns whatever a row holds (numbers where text is
  expected, objects, lists, booleans, NaN, 1E+400, dates that do not exist, odd Unicode) into
  a :class:`MappingError` that names the field and the shape of the value; values the store
  cannot hold (too long for their column, NUL) are refused by the canonical records
  (``canonical_model.storable``). A mapping never raises anything else for bad data: the
  engine treats any other exception as a bug and stops the run.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
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
    ReceiptRecord,
    ReceivableRecord,
    SalesOrderLineRecord,
    SalesOrderRecord,
    build,
)
from canonical_model.storable import shown
from connectors.kit.fields import money as _money
from connectors.kit.fields import quantity as _quantity
from connectors.kit.fields import required_text as _required_text
from connectors.kit.fields import text as _text
from connectors.kit.orders import check_lines_total, crm_bill_number, parse_crm_customer, parse_crm_order

SOURCE_SYSTEM = "kingdee"

KINGDEE_TZ = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")
CURRENCY_BY_NUMBER: dict[str, str] = {
    "PRE001": "CNY", "PRE002": "HKD", "PRE003": "EUR", "PRE004": "JPY",
    "PRE005": "TWD", "PRE006": "GBP", "PRE007": "USD",
}
NUMBER_BY_CURRENCY: dict[str, str] = {iso: number for number, iso in CURRENCY_BY_NUMBER.items()}

# Field keys each stream asks for; the mapping reads exactly these (dotted keys as sent).
CUSTOMER_FIELDS = (
    "FCUSTID", "FNumber", "FName", "FSOCIALCRECODE", "FTEL", "FADDRESS", "FSELLER.FNumber", "FGroup.FName",
    "FTRADINGCURRID.FNumber", "FForbidStatus", "FDocumentStatus", "FModifyDate",
)
SALES_ORDER_FIELDS = (
    "FID", "FBillNo", "FDate", "FCustId.FNumber", "FSalerId.FNumber", "FDocumentStatus", "FCloseStatus",
    "FSettleCurrId.FNumber", "FBillAllAmount", "FModifyDate",
)
SALES_ORDER_LINE_FIELDS = (
    "FID", "FSaleOrderEntry_FEntryID", "FMaterialId.FNumber", "FMaterialId.FName", "FQty", "FTaxPrice",
    "FEntryTaxRate", "FAllAmount",
)
SALES_ORDER_LINES = "lines"  # key under which a grouped order carries its line rows
RECEIVABLE_FIELDS = (
    "FID", "FBillNo", "FDATE", "FENDDATE_H", "FCUSTOMERID.FNumber", "FCURRENCYID.FNumber", "FALLAMOUNTFOR",
    "FWRITTENOFFAMOUNTFOR", "FNOTWRITTENOFFAMOUNTFOR", "FDocumentStatus", "FCancelStatus", "FModifyDate",
)
RECEIPT_FIELDS = (
    "FID", "FBillNo", "FDATE", "FCONTACTUNITTYPE", "FCONTACTUNIT.FNumber", "FCURRENCYID.FNumber",
    "FREALRECAMOUNTFOR", "FDocumentStatus", "FModifyDate",
)

_NET_DATE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")


# ---------------------------------------------------------------------------------------------
# Field readers (each raises MappingError naming the field)

def parse_kingdee_datetime(value: Any, key: str) -> dt.datetime:
    """A Kingdee time (``2024-05-01T10:20:30[.fff]``, or .NET ``/Date(ms+0800)/``) → aware datetime."""
    if isinstance(value, dt.datetime):
        parsed = value
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        match = _NET_DATE.match(text)
        try:
            if match:
                return dt.datetime.fromtimestamp(int(match.group(1)) / 1000, dt.UTC).astimezone(KINGDEE_TZ)
            parsed = dt.datetime.fromisoformat(text)
        except (ValueError, OverflowError, OSError):
            raise MappingError(f"{key}: {shown(text)} is not a date/time the hub can read "
                               "(Kingdee sends 2024-05-01T10:20:30)") from None
    elif value is None or value == "" or isinstance(value, str):
        raise MappingError(f"{key}: missing date/time")
    else:
        raise MappingError(f"{key}: expected a date/time, got {shown(value)}")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=KINGDEE_TZ)


def _date(raw: Mapping[str, Any], key: str) -> dt.date:
    return parse_kingdee_datetime(raw.get(key), key).date()


def _modified_at(raw: Mapping[str, Any]) -> dt.datetime:
    return parse_kingdee_datetime(raw.get("FModifyDate"), "FModifyDate")


def currency_from_number(number: str | None, key: str) -> str:
    """Kingdee currency number (``PRE001``) → ISO code; MappingError when unknown or missing."""
    if not number:
        raise MappingError(f"{key}: missing currency number")
    iso = CURRENCY_BY_NUMBER.get(number.strip().upper())
    if iso is None:
        raise MappingError(f"{key}: unknown Kingdee currency number {shown(number)}: the hub reads "
                           f"{', '.join(f'{n} ({iso})' for n, iso in CURRENCY_BY_NUMBER.items())}; "
                           "add the number to CURRENCY_BY_NUMBER or correct the bill")
    return iso


def _build(model: type[Any], source_object: str, **values: Any) -> Any:
    """Construct a canonical record; pydantic's complaints become one readable MappingError."""
    if issubclass(model, CanonicalRecord):
        return build(model, source_system=SOURCE_SYSTEM, source_object=source_object, **values)
    return build(model, **values)  # a part of a record (order line): no provenance of its own


def _require_object(raw: Any) -> None:
    if not isinstance(raw, Mapping):
        raise MappingError(f"record: expected an object of field keys, got {shown(raw)}")


def _bill_id(raw: Mapping[str, Any]) -> int:
    """The header id (``FID``) an order's lines are fetched by: a whole number."""
    value = raw.get("FID")
    if isinstance(value, str) and value.strip().isdecimal() and len(value.strip()) <= 19:
        return int(value.strip())
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63:
        return value
    raise MappingError(f"FID: {shown(value)} is not a bill id (a whole number), so the order's lines cannot be "
                       "read")


# ---------------------------------------------------------------------------------------------
# Inbound

def map_customer(raw: RawRecord) -> CustomerRecord:
    """``BD_Customer`` row → CustomerRecord (external id = FNumber, owner = salesperson number)."""
    _require_object(raw)
    number = _required_text(raw, "FNumber", "customer number")
    name = _required_text(raw, "FName", "customer name")
    credit_code = _text(raw, "FSOCIALCRECODE")
    currency_number = _text(raw, "FTRADINGCURRID.FNumber")
    record: CustomerRecord = _build(
        CustomerRecord, "BD_Customer", external_id=number, modified_at=_modified_at(raw), name=name,
        # Validated (checksum) by the identity resolver, not here: a bad code is still a customer.
        credit_code=credit_code.upper() if credit_code else None,
        phone=_text(raw, "FTEL"), address=_text(raw, "FADDRESS"), owner_ref=_text(raw, "FSELLER.FNumber"),
        industry=_text(raw, "FGroup.FName"),
        # A customer without a trading currency trades in the book currency, CNY.
        currency=currency_from_number(currency_number, "FTRADINGCURRID.FNumber") if currency_number else "CNY",
    )
    return record


def _order_header(raw: RawRecord) -> tuple[str, str, Decimal, list[Any]]:
    """(bill number, currency, total, entry rows) of a grouped order, checked in the order
    :func:`map_sales_order` has always checked them (so the first problem named is the same)."""
    _require_object(raw)
    bill_number = _required_text(raw, "FBillNo", "bill number")
    _bill_id(raw)
    _required_text(raw, "FCustId.FNumber", "customer number")
    currency = currency_from_number(_text(raw, "FSettleCurrId.FNumber"), "FSettleCurrId.FNumber")
    total = _money(raw, "FBillAllAmount")
    raw_lines = raw.get(SALES_ORDER_LINES)
    if not isinstance(raw_lines, list) or not raw_lines:
        raise MappingError(f"{SALES_ORDER_LINES}: order {bill_number} has no entry lines (FSaleOrderEntry)")
    return bill_number, currency, total, raw_lines


def _line_fields(line: Any, line_no: int) -> dict[str, Any]:
    """The SalesOrderLineRecord field values of one entry row; MappingError naming the line."""
    if not isinstance(line, Mapping):
        raise MappingError(f"{SALES_ORDER_LINES}[{line_no}]: not an object")
    try:
        rate = line.get("FEntryTaxRate")
        return {
            "line_no": line_no, "product_code": _required_text(line, "FMaterialId.FNumber", "material number"),
            "product_name": _text(line, "FMaterialId.FName"), "quantity": _quantity(line, "FQty"),
            "unit_price": _quantity(line, "FTaxPrice"),
            "tax_rate": _quantity(line, "FEntryTaxRate") if rate is not None else Decimal(0),
            "amount": _money(line, "FAllAmount"),
        }
    except MappingError as exc:
        raise MappingError(f"line {line_no}: {exc}") from exc


def _order_fields(raw: RawRecord, bill_number: str, currency: str, total: Decimal, lines: Any) -> dict[str, Any]:
    return {
        "source_system": SOURCE_SYSTEM, "source_object": "SAL_SaleOrder", "external_id": bill_number,
        "modified_at": _modified_at(raw), "bill_number": bill_number,
        "customer_ref": _required_text(raw, "FCustId.FNumber", "customer number"),
        "order_date": _date(raw, "FDate"), "currency": currency, "total_amount": total,
        "erp_status": _text(raw, "FDocumentStatus"), "lines": lines,
    }


def sales_order_fields(raw: RawRecord) -> dict[str, Any]:
    """The SalesOrderRecord field values of a grouped ``SAL_SaleOrder`` (``lines``: each
    line's SalesOrderLineRecord field values), read as :func:`map_sales_order` reads them;
    MappingError when a field cannot be read (the line totals included)."""
    bill_number, currency, total, raw_lines = _order_header(raw)
    lines = [_line_fields(line, line_no) for line_no, line in enumerate(raw_lines, start=1)]
    check_lines_total([line["amount"] for line in lines], total, "FBillAllAmount")
    return _order_fields(raw, bill_number, currency, total, lines)


def map_sales_order(raw: RawRecord) -> SalesOrderRecord:
    """A grouped ``SAL_SaleOrder`` (header keys plus ``lines``: entry rows) → SalesOrderRecord."""
    bill_number, currency, total, raw_lines = _order_header(raw)
    lines = []
    for line_no, line in enumerate(raw_lines, start=1):
        values = _line_fields(line, line_no)
        try:
            lines.append(build(SalesOrderLineRecord, **values))
        except MappingError as exc:
            raise MappingError(f"line {line_no}: {exc}") from exc
    check_lines_total([line.amount for line in lines], total, "FBillAllAmount")
    record: SalesOrderRecord = build(SalesOrderRecord, **_order_fields(raw, bill_number, currency, total,
                                                                       tuple(lines)))
    return record


# The sales orders stream's mapping: a page at a time when every order of it (lines included)
# maps and validates (canonical_model.pages), else order by order with the reasons above.
SALES_ORDER_MAPPING = PagedMapping(map_sales_order, sales_order_fields, SALES_ORDER_PAGE)


def receivable_fields(raw: RawRecord) -> dict[str, Any]:
    """The ReceivableRecord field values of an ``AR_receivable`` row (open amount: see the
    module docstring); MappingError naming the field when one cannot be read."""
    _require_object(raw)
    bill_number = _required_text(raw, "FBillNo", "bill number")
    amount = _money(raw, "FALLAMOUNTFOR")
    if raw.get("FNOTWRITTENOFFAMOUNTFOR") is not None:
        open_amount = _money(raw, "FNOTWRITTENOFFAMOUNTFOR")
    elif raw.get("FWRITTENOFFAMOUNTFOR") is not None:
        open_amount = amount - _money(raw, "FWRITTENOFFAMOUNTFOR")
    else:
        raise MappingError("FNOTWRITTENOFFAMOUNTFOR: missing open amount (and no FWRITTENOFFAMOUNTFOR)")
    if open_amount > amount > 0:
        raise MappingError(f"FNOTWRITTENOFFAMOUNTFOR: open amount {open_amount} exceeds the bill total {amount} "
                           "(FALLAMOUNTFOR)")
    status = _text(raw, "FDocumentStatus")
    if _text(raw, "FCancelStatus") == "B":
        # A cancelled (作废) bill is owed by nobody; keep it, so the hub drops it from aging.
        status, open_amount = "cancelled", Decimal(0)
    return {
        "source_system": SOURCE_SYSTEM, "source_object": "AR_receivable", "external_id": bill_number,
        "modified_at": _modified_at(raw), "bill_number": bill_number,
        "customer_ref": _required_text(raw, "FCUSTOMERID.FNumber", "customer number"),
        "bill_date": _date(raw, "FDATE"), "due_date": _date(raw, "FENDDATE_H"),
        "currency": currency_from_number(_text(raw, "FCURRENCYID.FNumber"), "FCURRENCYID.FNumber"),
        "amount": amount, "open_amount": open_amount, "status": status,
    }


def map_receivable(raw: RawRecord) -> ReceivableRecord:
    """``AR_receivable`` row → ReceivableRecord (the fields of :func:`receivable_fields`)."""
    return build(ReceivableRecord, **receivable_fields(raw))


# The receivables stream's mapping: a page at a time when every bill of it maps and validates
# (canonical_model.pages), else bill by bill with the reasons above.
RECEIVABLE_MAPPING = PagedMapping(map_receivable, receivable_fields, RECEIVABLE_PAGE)


def map_receipt(raw: RawRecord) -> ReceiptRecord:
    """``AR_RECEIVEBILL`` row → ReceiptRecord (amount = FREALRECAMOUNTFOR, money received)."""
    _require_object(raw)
    bill_number = _required_text(raw, "FBillNo", "bill number")
    unit_type = _text(raw, "FCONTACTUNITTYPE")
    if unit_type is not None and unit_type.lower() != "bd_customer":
        raise MappingError(f"FCONTACTUNITTYPE: receipt {bill_number} is from a {unit_type}, not a customer")
    record: ReceiptRecord = _build(
        ReceiptRecord, "AR_RECEIVEBILL", external_id=bill_number, modified_at=_modified_at(raw),
        bill_number=bill_number,
        customer_ref=_required_text(raw, "FCONTACTUNIT.FNumber", "customer number"),
        receipt_date=_date(raw, "FDATE"),
        currency=currency_from_number(_text(raw, "FCURRENCYID.FNumber"), "FCURRENCYID.FNumber"),
        amount=_money(raw, "FREALRECAMOUNTFOR"),
    )
    return record


def group_order_rows(headers: list[RawRecord], lines: list[RawRecord]) -> list[RawRecord]:
    """Attach line rows to their header rows by FID (lines sorted by entry id), header order kept.

    Rows whose FID is not a bill id (see :func:`_bill_id`) match nothing: their order maps to
    a MappingError naming the FID, and a line without a usable FID belongs to no order.
    """
    by_fid: dict[int, list[RawRecord]] = {}
    for line in lines:
        if isinstance(line, Mapping) and (fid := header_id(line)) is not None:
            by_fid.setdefault(fid, []).append(line)
    grouped = []
    for header in headers:
        if not isinstance(header, Mapping):
            grouped.append(header)  # not a row: the engine rejects it as it is
            continue
        fid = header_id(header)
        own = sorted(by_fid.get(fid, []) if fid is not None else [], key=_entry_order)
        grouped.append({**header, SALES_ORDER_LINES: own})
    return grouped


def header_id(row: Mapping[str, Any]) -> int | None:
    """A row's ``FID`` when it is a bill id (a whole number), else None."""
    try:
        return _bill_id(row)
    except MappingError:
        return None


def _entry_order(line: Mapping[str, Any]) -> tuple[int, int]:
    """Lines by entry id; lines whose id is not a whole number after those, as they came."""
    entry_id = line.get("FSaleOrderEntry_FEntryID")
    if isinstance(entry_id, int) and not isinstance(entry_id, bool):
        return (0, entry_id)
    return (1, 0)


# ---------------------------------------------------------------------------------------------
# Outbound

def crm_customer_number(customer: Mapping[str, Any]) -> str:
    """ERP customer number for a CRM customer: its known ERP number, else ``CRM<id:06d>``."""
    return parse_crm_customer({"customer": customer}).number


def crm_customer_to_model(
    customer: Mapping[str, Any], *, number: str, org_number: str, currency: str = "CNY",
    salesperson: str | None = None,
) -> dict[str, Any]:
    """CRM customer (``{"id", "name", "credit_code", "erp_number"}``) → ``BD_Customer`` Save model."""
    name = str(customer.get("name") or "").strip()
    if not name:
        raise MappingError("customer.name: missing customer name")
    currency_number = NUMBER_BY_CURRENCY.get(currency.upper())
    if currency_number is None:
        raise MappingError(f"currency: no Kingdee currency number known for {currency!r}")
    model: dict[str, Any] = {
        "FNumber": number,
        "FName": name,
        "FCreateOrgId": {"FNumber": org_number},
        "FUseOrgId": {"FNumber": org_number},
        "FTRADINGCURRID": {"FNumber": currency_number},
    }
    credit_code = str(customer.get("credit_code") or "").strip().upper()
    if credit_code:
        model["FSOCIALCRECODE"] = credit_code
        model["FTAXREGISTERCODE"] = credit_code  # one code since the 2015 registration reform
    if salesperson:
        model["FSELLER"] = {"FNumber": salesperson}
    return model


def crm_order_to_sales_order_model(
    payload: Mapping[str, Any], *, bill_number: str, customer_number: str, org_number: str,
    bill_type: str = "XSDD01_SYS", rate_type: str = "HLTX01_SYS",
) -> dict[str, Any]:
    """The hub's CRM order payload → ``SAL_SaleOrder`` Save model (tax-inclusive prices).

    Payload: ``{"order_number", "order_date": "YYYY-MM-DD", "currency", "salesperson",
    "lines": [{"line_no", "product_code", "product_name", "quantity", "unit_price",
    "tax_rate", "amount"}]}`` with numbers as strings; ``salesperson`` is the ERP salesperson
    number (``BD_Saler``). Raises MappingError for anything the ERP would refuse or misread.
    """
    order = parse_crm_order(payload)
    currency_number = NUMBER_BY_CURRENCY.get(order.currency)
    if currency_number is None:
        raise MappingError(f"currency: no Kingdee currency number known for {order.currency or 'empty'!r}")
    entries = [
        {"FMaterialId": {"FNumber": line.product_code}, "FQty": line.quantity, "FTaxPrice": line.unit_price,
         "FEntryTaxRate": line.tax_rate, "FEntryNote": f"CRM行号 {line.line_no}"}
        for line in order.lines
    ]
    model: dict[str, Any] = {
        "FBillNo": bill_number,
        "FBillTypeID": {"FNUMBER": bill_type},
        "FDate": order.order_date.isoformat(),
        "FSaleOrgId": {"FNumber": org_number},
        "FCustId": {"FNumber": customer_number},
        "FNote": f"CRM订单 {order.order_number}",
        "FSaleOrderFinance": {
            "FSettleCurrId": {"FNumber": currency_number},
            "FIsIncludedTax": True,
            "FExchangeTypeId": {"FNumber": rate_type},
        },
        "FSaleOrderEntry": entries,
    }
    salesperson = str(payload.get("salesperson") or "").strip()
    if salesperson:
        model["FSalerId"] = {"FNumber": salesperson}
    return model


__all__ = [
    "CURRENCY_BY_NUMBER",
    "CUSTOMER_FIELDS",
    "KINGDEE_TZ",
    "NUMBER_BY_CURRENCY",
    "RECEIPT_FIELDS",
    "RECEIVABLE_FIELDS",
    "RECEIVABLE_MAPPING",
    "SALES_ORDER_FIELDS",
    "SALES_ORDER_LINES",
    "SALES_ORDER_LINE_FIELDS",
    "SALES_ORDER_MAPPING",
    "SOURCE_SYSTEM",
    "crm_bill_number",
    "crm_customer_number",
    "crm_customer_to_model",
    "crm_order_to_sales_order_model",
    "currency_from_number",
    "group_order_rows",
    "header_id",
    "map_customer",
    "map_receipt",
    "map_receivable",
    "map_sales_order",
    "parse_kingdee_datetime",
    "receivable_fields",
    "sales_order_fields",
]
