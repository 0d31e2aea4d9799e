"""Canonical records refuse what the store cannot hold, with limits read off the table definitions."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from pydantic import ValidationError

from canonical_model.models import Customer, Receivable, SalesOrderLine
from canonical_model.records import (
    RECORD_TYPES,
    CustomerRecord,
    MappingError,
    ReceivableRecord,
    SalesOrderRecord,
    build,
    describe_validation,
)
from canonical_model.storable import shown, string_fields


def test_every_text_field_of_every_record_names_where_it_lands() -> None:
    # given every canonical record type, when its text fields are listed, then none is unmarked:
    # a new field must say which column(s) bound it (or, with Fits(), that none does)
    unmarked = {f"{name}.{field}" for name, model in RECORD_TYPES.items()
                for field, marker in string_fields(model).items() if marker is None}
    assert unmarked == set()


def test_limits_come_from_the_table_definitions() -> None:
    fields = string_fields(CustomerRecord)
    assert fields["phone"] is not None and fields["phone"].limit == Customer.phone.type.length
    assert fields["phone"].label == "customer.phone"
    # a field that lands in several columns is bounded by the shortest one
    bill = string_fields(SalesOrderRecord)["bill_number"]
    assert bill is not None and bill.limit == 100 and bill.label == "sales_order.order_number"
    # a field stored nowhere (validated elsewhere) is checked for characters only
    code = string_fields(CustomerRecord)["credit_code"]
    assert code is not None and code.limit is None


def receivable(**changes: object) -> dict[str, object]:
    return {"source_system": "kingdee", "source_object": "AR_receivable", "external_id": "AR1", "bill_number": "AR1",
            "customer_ref": "C1", "bill_date": dt.date(2024, 3, 1), "due_date": dt.date(2024, 3, 31),
            "currency": "CNY", "amount": Decimal("10.00"), "open_amount": Decimal("10.00"), **changes}


@pytest.mark.parametrize(("changes", "reason"), [
    ({"status": "状" * 31}, f"status: 31 characters, more than the {Receivable.status.type.length} the hub stores "
                            "(receivable.status); shorten it at the source"),
    ({"customer_ref": "C\x001"}, "customer_ref: contains a NUL character (U+0000) at position 2, which Postgres "
                                 "text cannot hold"),
    ({"bill_number": "AR\udfff"}, "bill_number: contains a lone surrogate (U+DFFF) at position 3"),
    ({"amount": Decimal("1E+400")}, "amount: 1E+400 has more digits than the 18 this amount holds"),
    ({"amount": Decimal("NaN")}, "amount: NaN is not a finite number; expected an amount"),
    ({"currency": "XYZ"}, "currency: unknown currency 'XYZ': expected an ISO 4217 code the hub accepts (AUD, "),
    ({"open_amount": Decimal("-5")}, "open_amount: open amount -5 is negative"),
    ({"bill_number": 42}, "bill_number: expected text, got 42"),
    ({"due_date": "2024-02-30"}, "due_date: '2024-02-30' is not accepted: input should be a valid date"),
])
def test_refusals_read_as_sentences_naming_field_shape_and_expectation(changes: dict[str, object],
                                                                      reason: str) -> None:
    with pytest.raises(ValidationError) as refused:
        ReceivableRecord(**receivable(**changes))  # type: ignore[arg-type]
    assert reason in describe_validation(refused.value)


def test_a_nested_line_names_its_column_too() -> None:
    with pytest.raises(MappingError, match=r"lines\.0\.product_code: 101 characters, more than the 100 the hub "
                                           r"stores \(sales_order_line\.product_code\)"):
        build(SalesOrderRecord, source_system="kingdee", source_object="SAL_SaleOrder", external_id="X1",
              bill_number="X1", customer_ref="C1", order_date=dt.date(2024, 1, 1), currency="CNY",
              total_amount=Decimal(1), lines=[{"line_no": 1, "product_code": "P" * 101, "quantity": 1,
                                               "unit_price": 1, "amount": 1}])
    assert SalesOrderLine.product_code.type.length == 100


@pytest.mark.parametrize(("value", "text"), [
    ("0755-86123456", "'0755-86123456'"), ("长" * 41, "a 41-character text"), (None, "empty (null)"),
    (True, "true"), ({"a": 1}, "an object"), ([1], "a list"), (10**5000, "a whole number of about 5001 digits"),
    (float("nan"), "nan"), (Decimal("1E+400"), "1E+400"),
], ids=lambda v: type(v).__name__)
def test_values_are_shown_by_their_shape_when_long_or_odd(value: object, text: str) -> None:
    assert shown(value) == text


@pytest.mark.parametrize("value", [
    "1234.56", "1.500", "0", "-0.00", "0E-30", "1e5", "9999999999999999.99", "-9999999999999999.99",
    "10000000000000000", "-10000000000000000", "12345678901234567.5", "0.001", "-0.005", "1E+400", "1E-400",
    "123456789012345678901", "NaN", "Infinity", "abc", 3, 2.5, 1e300, Decimal("12.340000"),
], ids=str)
def test_money_digits_are_checked_exactly_as_pydantic_max_digits_does(value: object) -> None:
    # given the same value for a Money field (Digits) and a field with pydantic's own digit limits
    from pydantic import BaseModel, Field

    from canonical_model.records import Money

    class Reference(BaseModel):
        amount: Decimal = Field(max_digits=18, decimal_places=2)

    class Checked(BaseModel):
        amount: Money

    def outcome(model: type[BaseModel]) -> object:
        try:
            return model(amount=value).amount  # type: ignore[attr-defined]
        except ValidationError as exc:
            return [(e["type"], e["msg"], e["input"], e.get("ctx")) for e in exc.errors(include_url=False)]

    # then both accept the same value, or refuse it with the same error (type, message, input)
    assert outcome(Checked) == outcome(Reference)
