"""Canonical records: what a connector's mapping produces from one source record.

These pydantic models are the contract between connectors and the sync engine. A
mapping turns one raw vendor record into one of them (or raises, and the engine
quarantines the raw record with the reason). Validation here is strict on purpose:
money is ``Decimal`` with an ISO 4217 currency, dates are real dates, times are
timezone-aware. Whatever passes is safe to upsert.

``*_ref`` fields are external ids in the *same* source system (for example the
Kingdee customer number of a receivable); the engine resolves them to canonical ids
through ``external_identity`` and quarantines the record when the referent is unknown.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

RawRecord = dict[str, Any]  # one source record as a connector read it (JSON-like)


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
        raise ValueError(f"unknown currency {value!r}")
    return code


def _aware(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None:
        raise ValueError("timestamp must carry a timezone")
    return value


Currency = Annotated[str, AfterValidator(_currency)]
Money = Annotated[Decimal, Field(max_digits=18, decimal_places=2)]
AwareDatetime = Annotated[dt.datetime, AfterValidator(_aware)]


class CanonicalRecord(BaseModel):
    """Fields every canonical record carries: where it came from (provenance)."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    source_system: str
    source_object: str
    external_id: str = Field(min_length=1, max_length=200)
    modified_at: AwareDatetime | None = None


class ContactRecord(CanonicalRecord):
    """A person at a customer (ERP contact, WeCom external contact, CRM contact)."""

    name: str = Field(min_length=1, max_length=200)
    title: str | None = None
    decision_role: str | None = None
    mobile: str | None = None
    email: str | None = None
    customer_ref: str | None = None  # customer external id in the same system
    corp_name: str | None = None  # used to find the customer when there is no ref
    owner_ref: str | None = None  # internal user external id (WeCom follow user)
    wecom_external_userid: str | None = None


class CustomerRecord(CanonicalRecord):
    """A company as one source system knows it; identity resolution finds its golden record."""

    name: str = Field(min_length=1, max_length=300)
    credit_code: str | None = None  # 统一社会信用代码, validated by the identity resolver
    region: str | None = None
    industry: str | None = None
    size: str | None = None
    phone: str | None = None
    address: str | None = None
    owner_ref: str | None = None
    credit_limit: Money | None = None
    currency: Currency = "CNY"


class InternalUserRecord(CanonicalRecord):
    """An employee (salesperson, manager) from a chat directory or the CRM."""

    name: str = Field(min_length=1, max_length=200)
    mobile: str | None = None
    email: str | None = None
    department: str | None = None
    title: str | None = None
    manager_ref: str | None = None
    wecom_userid: str | None = None
    dingtalk_userid: str | None = None
    dingtalk_unionid: str | None = None
    active: bool = True


class SalesOrderLineRecord(BaseModel):
    """One line of a sales order."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    line_no: int = Field(ge=1)
    product_code: str
    product_name: str | None = None
    quantity: Decimal = Field(gt=0, max_digits=18, decimal_places=6)
    unit_price: Decimal = Field(ge=0, max_digits=18, decimal_places=6)
    tax_rate: Decimal = Field(default=Decimal("0"), ge=0, le=100)
    amount: Money


class SalesOrderRecord(CanonicalRecord):
    """A sales order as the ERP holds it; ``bill_number`` is the ERP's FBillNo."""

    bill_number: str = Field(min_length=1)
    customer_ref: str
    order_date: dt.date
    currency: Currency
    total_amount: Money
    erp_status: str | None = None
    lines: tuple[SalesOrderLineRecord, ...] = ()


class ReceivableRecord(CanonicalRecord):
    """An accounts-receivable bill (应收单)."""

    bill_number: str = Field(min_length=1)
    customer_ref: str
    bill_date: dt.date
    due_date: dt.date
    currency: Currency
    amount: Money
    open_amount: Money
    status: str | None = None

    @field_validator("open_amount")
    @classmethod
    def _open_not_negative(cls, value: Decimal) -> Decimal:
        if value < 0:
            raise ValueError("open amount is negative")
        return value


class ReceiptRecord(CanonicalRecord):
    """A receipt (收款单): money received from a customer."""

    bill_number: str = Field(min_length=1)
    customer_ref: str
    receipt_date: dt.date
    currency: Currency
    amount: Money


__all__ = [
    "KNOWN_CURRENCIES",
    "CanonicalRecord",
    "ContactRecord",
    "CustomerRecord",
    "InternalUserRecord",
    "MappingError",
    "RawRecord",
    "ReceiptRecord",
    "ReceivableRecord",
    "SalesOrderLineRecord",
    "SalesOrderRecord",
]
