"""Canonical records: what a connector's mapping produces from one source record.

These pydantic models are the contract between connectors and the sync engine. A
mapping turns one raw vendor record into one of them (or raises, and the engine
quarantines the raw record with the reason). Validation here is strict on purpose:
money is ``Decimal`` with an ISO 4217 currency, dates are real dates, times are
timezone-aware. Whatever passes is safe to upsert.

A large stream may also validate a page of receivables or sales orders at once
(:data:`RECEIVABLE_PAGE`, :data:`SALES_ORDER_PAGE`, ``canonical_model.pages``): the same
rules, checked column by column, giving ``ReceivableRow`` / ``SalesOrderRow`` Structs read
like the model; a page it cannot take is mapped record by record through the model, whose
refusals are the readable ones.

``*_ref`` fields are external ids in the *same* source system (for example the
Kingdee customer number of a receivable); the engine resolves them to canonical ids
through ``external_identity`` and quarantines the record when the referent is unknown.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from canonical_model.models import (
    EMAIL_CHARS,
    MOBILE_CHARS,
    MONEY,
    Contact,
    Customer,
    ExternalIdentity,
    InternalUser,
    Receipt,
    Receivable,
    SalesOrder,
    SalesOrderLine,
)
from canonical_model.pages import PageSchema
from canonical_model.storable import Digits, Fits, explain

RawRecord = dict[str, Any]  # one source record as a connector read it (JSON-like)

# Key of a raw record the connector could not read into fields (for example a query row with
# fewer values than fields asked for); its value says why, in words. The engine quarantines
# such a record with that reason instead of mapping it, so one bad row never costs a page.
UNREADABLE = "_hub_unreadable"


class MappingError(ValueError):
    """A source record cannot become a canonical record; the message is the reason.

    Raised by pure mappings (``connectors/<system>/mapping.py``); the engine quarantines
    the raw record with this message as the reason, so it must name the field and say
    what is wrong in words a person can act on.
    """


# Currencies the hub accepts; an ERP amount in anything else is quarantined rather
# than summed into a CNY total by mistake.
KNOWN_CURRENCIES = frozenset({
    "CNY", "HKD", "TWD", "MOP", "USD", "EUR", "GBP", "JPY", "KRW", "SGD", "AUD", "CAD", "CHF",
})


def _currency(value: str) -> str:
    code = value.strip().upper()
    if code not in KNOWN_CURRENCIES:
        raise ValueError(f"unknown currency {value!r}: expected an ISO 4217 code the hub accepts "
                         f"({', '.join(sorted(KNOWN_CURRENCIES))})")
    return code


def _aware(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        raise ValueError("timestamp must carry a timezone")
    return value


Currency = Annotated[str, Fits(Customer.currency), AfterValidator(_currency)]
Money = Annotated[Decimal, Digits(MONEY.precision, MONEY.scale)]  # numeric(18, 2)
AwareDatetime = Annotated[dt.datetime, AfterValidator(_aware)]
# A reference to a record of the same system, matched against the external ids the hub keeps.
ExternalRef = Annotated[str, Fits(ExternalIdentity.external_id)]
# An internal user reference (directory user id or ERP salesperson number); matched, never stored.
UserRef = Annotated[str, Fits(InternalUser.external_id)]


class CanonicalRecord(BaseModel):
    """Fields every canonical record carries: where it came from (provenance)."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    source_system: Annotated[str, Fits(ExternalIdentity.system)]
    source_object: Annotated[str, Fits(ExternalIdentity.object)]
    external_id: Annotated[str, Fits(ExternalIdentity.external_id, Contact.external_id, InternalUser.external_id,
                                     SalesOrder.external_id, Receivable.external_id,
                                     Receipt.external_id)] = Field(min_length=1)
    modified_at: AwareDatetime | None = None


class ContactRecord(CanonicalRecord):
    """A person at a customer (ERP contact, WeCom external contact, CRM contact)."""

    name: Annotated[str, Fits(Contact.name)] = Field(min_length=1)
    title: Annotated[str, Fits(Contact.title)] | None = None
    decision_role: Annotated[str, Fits(Contact.decision_role)] | None = None
    # stored sealed (hub.vault: longer than the value), so the limit is the plaintext's
    mobile: Annotated[str, Fits(Contact.mobile, max_chars=MOBILE_CHARS)] | None = None
    email: Annotated[str, Fits(Contact.email, max_chars=EMAIL_CHARS)] | None = None
    customer_ref: ExternalRef | None = None  # customer external id in the same system
    # used to find the customer when there is no ref (matched against customer names)
    corp_name: Annotated[str, Fits(Customer.name)] | None = None
    owner_ref: UserRef | None = None  # internal user external id (WeCom follow user)
    wecom_external_userid: Annotated[str, Fits(Contact.wecom_external_userid)] | None = None


class CustomerRecord(CanonicalRecord):
    """A company as one source system knows it; identity resolution finds its golden record."""

    name: Annotated[str, Fits(Customer.name, Customer.normalized_name)] = Field(min_length=1)
    # 统一社会信用代码, validated by the identity resolver: only a valid (18-character) code
    # is stored, a bad one is still a customer, so no length limit here
    credit_code: Annotated[str, Fits()] | None = None
    region: Annotated[str, Fits(Customer.region)] | None = None
    industry: Annotated[str, Fits(Customer.industry)] | None = None
    size: Annotated[str, Fits(Customer.size)] | None = None
    phone: Annotated[str, Fits(Customer.phone)] | None = None
    address: Annotated[str, Fits(Customer.address)] | None = None
    owner_ref: UserRef | None = None
    credit_limit: Money | None = None
    currency: Currency = "CNY"


class InternalUserRecord(CanonicalRecord):
    """An employee (salesperson, manager) from a chat directory or the CRM."""

    name: Annotated[str, Fits(InternalUser.name)] = Field(min_length=1)
    mobile: Annotated[str, Fits(InternalUser.mobile, max_chars=MOBILE_CHARS)] | None = None
    email: Annotated[str, Fits(InternalUser.email, max_chars=EMAIL_CHARS)] | None = None
    department: Annotated[str, Fits(InternalUser.department)] | None = None
    title: Annotated[str, Fits(InternalUser.title)] | None = None
    manager_ref: Annotated[str, Fits(InternalUser.manager_ref)] | None = None
    wecom_userid: Annotated[str, Fits(InternalUser.wecom_userid)] | None = None
    dingtalk_userid: Annotated[str, Fits(InternalUser.dingtalk_userid)] | None = None
    dingtalk_unionid: Annotated[str, Fits(InternalUser.dingtalk_unionid)] | None = None
    employee_number: Annotated[str, Fits(InternalUser.employee_number)] | None = None  # 工号
    active: bool = True


class TaskCompletionRecord(CanonicalRecord):
    """A CRM task's to-do completed on a chat platform (DingTalk 待办 ticked off).

    ``external_id`` is the platform's to-do id, which the hub linked to its task when it
    created the to-do (``external_identity``, object ``todo``); ``completed_by_ref`` the
    platform's user id of who completed it (matched against the platform's directory
    column of ``internal_user``); ``source_ref`` the business id the hub gave the to-do.
    """

    done: bool = True
    completed_at: AwareDatetime | None = None
    completed_by_ref: UserRef | None = None
    source_ref: ExternalRef | None = None


class SalesOrderLineRecord(BaseModel):
    """One line of a sales order."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    line_no: int = Field(ge=1)
    product_code: Annotated[str, Fits(SalesOrderLine.product_code)]
    product_name: Annotated[str, Fits(SalesOrderLine.product_name)] | None = None
    quantity: Annotated[Decimal, Fits(SalesOrderLine.quantity)] = Field(gt=0)
    unit_price: Annotated[Decimal, Fits(SalesOrderLine.unit_price)] = Field(ge=0)
    tax_rate: Decimal = Field(default=Decimal("0"), ge=0, le=100)
    amount: Money


class SalesOrderRecord(CanonicalRecord):
    """A sales order as the ERP holds it; ``bill_number`` is the ERP's FBillNo."""

    bill_number: Annotated[str, Fits(SalesOrder.order_number, SalesOrder.erp_bill_number,
                                     SalesOrder.external_id)] = Field(min_length=1)
    customer_ref: ExternalRef
    order_date: dt.date
    currency: Currency
    total_amount: Money
    erp_status: Annotated[str, Fits(SalesOrder.erp_status)] | None = None
    lines: tuple[SalesOrderLineRecord, ...] = ()


class ReceivableRecord(CanonicalRecord):
    """An accounts-receivable bill (应收单)."""

    bill_number: Annotated[str, Fits(Receivable.bill_number, Receivable.external_id)] = Field(min_length=1)
    customer_ref: ExternalRef
    bill_date: dt.date
    due_date: dt.date
    currency: Currency
    amount: Money
    open_amount: Money
    status: Annotated[str, Fits(Receivable.status)] | None = None

    @field_validator("open_amount")
    @classmethod
    def _open_not_negative(cls, value: Decimal) -> Decimal:
        if value < 0:
            raise ValueError(f"open amount {value} is negative: the hub keeps what a customer still owes, "
                             "0 or more (a red-letter or credit bill is not netted here; settle it in the ERP)")
        return value


class ReceiptRecord(CanonicalRecord):
    """A receipt (收款单): money received from a customer."""

    bill_number: Annotated[str, Fits(Receipt.bill_number, Receipt.external_id)] = Field(min_length=1)
    customer_ref: ExternalRef
    receipt_date: dt.date
    currency: Currency
    amount: Money


RECORD_TYPES: dict[str, type[BaseModel]] = {
    model.__name__: model
    for model in (ContactRecord, CustomerRecord, InternalUserRecord, SalesOrderLineRecord, SalesOrderRecord,
                  ReceivableRecord, ReceiptRecord, TaskCompletionRecord)
}
R = TypeVar("R", bound=BaseModel)

# Receivables are the largest stream (a first load is mostly receivables): their mappings may
# also validate a page at a time (canonical_model.pages; the engine falls back to the model).
RECEIVABLE_PAGE = PageSchema(ReceivableRecord)
ReceivableRow = RECEIVABLE_PAGE.row
# Sales orders likewise (with their lines, nested Structs): about 3 pydantic models an order
# otherwise, a third of mapping one (benchmarks/RESULTS.md, inbound round 4).
SALES_ORDER_PAGE = PageSchema(SalesOrderRecord)
SalesOrderRow = SALES_ORDER_PAGE.row


def build(model: type[R], **values: Any) -> R:
    """Construct a canonical record (or a part of one); a value the store could not hold
    or that is invalid becomes one :class:`MappingError` with readable reasons."""
    try:
        return model(**values)
    except ValidationError as exc:
        raise MappingError(explain(exc, model)) from exc


def describe_validation(exc: ValidationError) -> str:
    """Readable reasons of a ValidationError raised by constructing a canonical record."""
    return explain(exc, RECORD_TYPES.get(exc.title))


__all__ = [
    "KNOWN_CURRENCIES",
    "RECEIVABLE_PAGE",
    "RECORD_TYPES",
    "SALES_ORDER_PAGE",
    "UNREADABLE",
    "CanonicalRecord",
    "ContactRecord",
    "CustomerRecord",
    "InternalUserRecord",
    "MappingError",
    "RawRecord",
    "ReceiptRecord",
    "ReceivableRecord",
    "ReceivableRow",
    "SalesOrderLineRecord",
    "SalesOrderRecord",
    "SalesOrderRow",
    "TaskCompletionRecord",
    "build",
    "describe_validation",
]
