"""Kingdee rows ⇄ canonical records: tables of real-looking records, good and bad."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from canonical_model.records import MappingError
from connectors.kingdee import mapping

SHANGHAI = dt.timezone(dt.timedelta(hours=8))

CUSTOMER: dict[str, Any] = {
    "FCUSTID": 100231, "FNumber": "CUST00017", "FName": "深圳市华创电子科技有限公司",
    "FSOCIALCRECODE": "91440300708461136t", "FTEL": "0755-86123456",
    "FADDRESS": "广东省深圳市南山区科技路88号", "FSELLER.FNumber": "SP003", "FGroup.FName": "信息技术",
    "FTRADINGCURRID.FNumber": "PRE001", "FForbidStatus": "A", "FDocumentStatus": "C",
    "FModifyDate": "2024-05-01T10:20:30.123",
}

ORDER: dict[str, Any] = {
    "FID": 100501, "FBillNo": "XSDD000123", "FDate": "2024-04-28T00:00:00", "FCustId.FNumber": "CUST00017",
    "FSalerId.FNumber": "SP003", "FDocumentStatus": "C", "FCloseStatus": "A", "FSettleCurrId.FNumber": "PRE001",
    "FBillAllAmount": 1356.0, "FModifyDate": "2024-05-02T09:00:00",
    "lines": [
        {"FID": 100501, "FSaleOrderEntry_FEntryID": 7, "FMaterialId.FNumber": "WL0001",
         "FMaterialId.FName": "伺服电机 A型", "FQty": 2.0, "FTaxPrice": 565.0, "FEntryTaxRate": 13.0,
         "FAllAmount": 1130.0},
        {"FID": 100501, "FSaleOrderEntry_FEntryID": 8, "FMaterialId.FNumber": "WL0012",
         "FMaterialId.FName": "实施服务 标准型", "FQty": Decimal("1.0000000000"), "FTaxPrice": Decimal("226.0000000000"),
         "FEntryTaxRate": 6, "FAllAmount": Decimal("226.0000000000")},
    ],
}

RECEIVABLE: dict[str, Any] = {
    "FID": 9001, "FBillNo": "AR00000042", "FDATE": "2024-03-01T00:00:00", "FENDDATE_H": "2024-03-31T00:00:00",
    "FCUSTOMERID.FNumber": "CUST00017", "FCURRENCYID.FNumber": "PRE002", "FALLAMOUNTFOR": 10000.0,
    "FWRITTENOFFAMOUNTFOR": 2500.0, "FNOTWRITTENOFFAMOUNTFOR": 7500.0, "FDocumentStatus": "C",
    "FCancelStatus": "A", "FModifyDate": "2024-04-02T11:00:00",
}

RECEIPT: dict[str, Any] = {
    "FID": 7001, "FBillNo": "SKD00000009", "FDATE": "2024-04-02T00:00:00", "FCONTACTUNITTYPE": "BD_Customer",
    "FCONTACTUNIT.FNumber": "CUST00017", "FCURRENCYID.FNumber": "PRE007", "FREALRECAMOUNTFOR": 2500.5,
    "FDocumentStatus": "C", "FModifyDate": "2024-04-02T11:00:00",
}


def with_(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**base, **changes}


def without(base: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in base.items() if k not in keys}


# -- customers --------------------------------------------------------------------------------

def test_given_customer_row_when_mapped_then_canonical_customer_with_provenance() -> None:
    record = mapping.map_customer(CUSTOMER)
    assert record.source_system == "kingdee"
    assert record.source_object == "BD_Customer"
    assert record.external_id == "CUST00017"
    assert record.name == "深圳市华创电子科技有限公司"
    assert record.credit_code == "91440300708461136T"  # upper-cased, checksum left to the resolver
    assert record.owner_ref == "SP003"
    assert record.industry == "信息技术"
    assert record.phone == "0755-86123456"
    assert record.currency == "CNY"
    assert record.modified_at == dt.datetime(2024, 5, 1, 10, 20, 30, 123000, tzinfo=SHANGHAI)


@pytest.mark.parametrize(("row", "expected"), [
    (with_(CUSTOMER, FSOCIALCRECODE="  "), None),
    (with_(CUSTOMER, FSOCIALCRECODE=None), None),
    (without(CUSTOMER, "FTRADINGCURRID.FNumber"), "CNY"),
    (with_(CUSTOMER, **{"FTRADINGCURRID.FNumber": "pre002"}), "HKD"),
])
def test_given_optional_customer_fields_when_mapped_then_defaults_are_explicit(row: dict[str, Any], expected: Any) -> None:
    record = mapping.map_customer(row)
    assert expected in (record.credit_code, record.currency)


@pytest.mark.parametrize(("row", "reason"), [
    (without(CUSTOMER, "FNumber"), "FNumber: missing customer number"),
    (with_(CUSTOMER, FName="   "), "FName: missing customer name"),
    (with_(CUSTOMER, FModifyDate=None), "FModifyDate: missing"),
    (with_(CUSTOMER, FModifyDate="上周五"), "FModifyDate: '上周五' is not a date"),
    (with_(CUSTOMER, **{"FTRADINGCURRID.FNumber": "PRE999"}), "unknown Kingdee currency number"),
    (with_(CUSTOMER, FName="公司" * 200), "name"),
    (with_(CUSTOMER, FNumber={"Key": 2052}), "FNumber: expected text"),
])
def test_given_bad_customer_when_mapped_then_mapping_error_names_the_field(row: dict[str, Any], reason: str) -> None:
    with pytest.raises(MappingError, match=reason):
        mapping.map_customer(row)


# -- sales orders -----------------------------------------------------------------------------

def test_given_grouped_order_when_mapped_then_lines_are_numbered_and_exact() -> None:
    record = mapping.map_sales_order(ORDER)
    assert (record.bill_number, record.customer_ref, record.currency) == ("XSDD000123", "CUST00017", "CNY")
    assert record.order_date == dt.date(2024, 4, 28)
    assert record.total_amount == Decimal("1356.00")
    assert record.erp_status == "C"
    assert [line.line_no for line in record.lines] == [1, 2]
    first, second = record.lines
    assert (first.product_code, first.product_name) == ("WL0001", "伺服电机 A型")
    assert (first.quantity, first.unit_price, first.tax_rate, first.amount) == (
        Decimal(2), Decimal(565), Decimal(13), Decimal("1130.00"))
    # Kingdee's 10-decimal storage noise is dropped, not rejected.
    assert (second.quantity, second.unit_price, second.amount) == (Decimal(1), Decimal(226), Decimal("226.00"))


@pytest.mark.parametrize(("row", "reason"), [
    (without(ORDER, "FCustId.FNumber"), "FCustId.FNumber: missing customer number"),
    (with_(ORDER, FDate=""), "FDate: missing"),
    (with_(ORDER, **{"FSettleCurrId.FNumber": "PRE042"}), "unknown Kingdee currency number 'PRE042'"),
    (with_(ORDER, **{"FSettleCurrId.FNumber": None}), "FSettleCurrId.FNumber: missing currency"),
    (with_(ORDER, FBillAllAmount="一千"), "FBillAllAmount: '一千' is not a number"),
    (with_(ORDER, FBillAllAmount=9999.0), "differs from the sum of lines"),
    (with_(ORDER, lines=[]), "has no entry lines"),
    (with_(ORDER, lines=[with_(ORDER["lines"][0], FQty=0)]), "line 1: .*quantity"),
    (with_(ORDER, lines=[with_(ORDER["lines"][0], FAllAmount=float("nan"))]), "line 1: FAllAmount: nan is not a finite number"),
    (with_(ORDER, lines=[without(ORDER["lines"][0], "FMaterialId.FNumber")]), "line 1: FMaterialId.FNumber"),
])
def test_given_bad_order_when_mapped_then_mapping_error(row: dict[str, Any], reason: str) -> None:
    with pytest.raises(MappingError, match=reason):
        mapping.map_sales_order(row)


def test_given_header_and_line_rows_when_grouped_then_each_order_gets_its_lines_in_entry_order() -> None:
    headers = [{"FID": 2, "FBillNo": "B"}, {"FID": 1, "FBillNo": "A"}]
    lines = [{"FID": 1, "FSaleOrderEntry_FEntryID": 11}, {"FID": 2, "FSaleOrderEntry_FEntryID": 5},
             {"FID": 1, "FSaleOrderEntry_FEntryID": 10}]
    grouped = mapping.group_order_rows(headers, lines)
    assert [g["FBillNo"] for g in grouped] == ["B", "A"]
    assert [line["FSaleOrderEntry_FEntryID"] for line in grouped[1]["lines"]] == [10, 11]


# -- receivables and receipts ----------------------------------------------------------------

@pytest.mark.parametrize(("row", "amount", "open_amount", "status"), [
    (RECEIVABLE, "10000.00", "7500.00", "C"),
    (without(RECEIVABLE, "FNOTWRITTENOFFAMOUNTFOR"), "10000.00", "7500.00", "C"),  # derived from written-off
    (with_(RECEIVABLE, FNOTWRITTENOFFAMOUNTFOR=0.004), "10000.00", "0.00", "C"),
    (with_(RECEIVABLE, FCancelStatus="B"), "10000.00", "0", "cancelled"),
])
def test_given_receivable_rows_when_mapped_then_open_amount_and_status(
    row: dict[str, Any], amount: str, open_amount: str, status: str,
) -> None:
    record = mapping.map_receivable(row)
    assert (record.bill_number, record.customer_ref, record.currency) == ("AR00000042", "CUST00017", "HKD")
    assert (record.bill_date, record.due_date) == (dt.date(2024, 3, 1), dt.date(2024, 3, 31))
    assert record.amount == Decimal(amount)
    assert record.open_amount == Decimal(open_amount)
    assert record.status == status


@pytest.mark.parametrize(("row", "reason"), [
    (without(RECEIVABLE, "FNOTWRITTENOFFAMOUNTFOR", "FWRITTENOFFAMOUNTFOR"), "missing open amount"),
    (with_(RECEIVABLE, FENDDATE_H=None), "FENDDATE_H: missing"),
    (with_(RECEIVABLE, **{"FCUSTOMERID.FNumber": ""}), "FCUSTOMERID.FNumber: missing customer number"),
    (with_(RECEIVABLE, FNOTWRITTENOFFAMOUNTFOR=12000.0), "exceeds the bill total"),
    (with_(RECEIVABLE, FALLAMOUNTFOR=-500.0, FNOTWRITTENOFFAMOUNTFOR=-500.0), "open amount -500.00 is negative"),
    (with_(RECEIVABLE, **{"FCURRENCYID.FNumber": "RMB"}), "unknown Kingdee currency number 'RMB'"),
    (with_(RECEIVABLE, FALLAMOUNTFOR=True), "FALLAMOUNTFOR: expected a number, got true"),
])
def test_given_bad_receivable_when_mapped_then_mapping_error(row: dict[str, Any], reason: str) -> None:
    with pytest.raises(MappingError, match=reason):
        mapping.map_receivable(row)


def test_given_customer_receipt_when_mapped_then_amount_is_money_received() -> None:
    record = mapping.map_receipt(RECEIPT)
    assert (record.bill_number, record.customer_ref, record.currency) == ("SKD00000009", "CUST00017", "USD")
    assert record.receipt_date == dt.date(2024, 4, 2)
    assert record.amount == Decimal("2500.50")


@pytest.mark.parametrize(("row", "reason"), [
    (with_(RECEIPT, FCONTACTUNITTYPE="BD_Supplier"), "from a BD_Supplier, not a customer"),
    (without(RECEIPT, "FCONTACTUNIT.FNumber"), "FCONTACTUNIT.FNumber: missing customer number"),
    (with_(RECEIPT, FDATE="2024-13-45T00:00:00"), "FDATE: '2024-13-45T00:00:00' is not a date"),
])
def test_given_bad_receipt_when_mapped_then_mapping_error(row: dict[str, Any], reason: str) -> None:
    with pytest.raises(MappingError, match=reason):
        mapping.map_receipt(row)


@pytest.mark.parametrize(("raw", "expected"), [
    ("2024-05-01T10:20:30", dt.datetime(2024, 5, 1, 10, 20, 30, tzinfo=SHANGHAI)),
    ("2024-05-01 10:20:30.5", dt.datetime(2024, 5, 1, 10, 20, 30, 500000, tzinfo=SHANGHAI)),
    ("2024-05-01T02:20:30+00:00", dt.datetime(2024, 5, 1, 10, 20, 30, tzinfo=SHANGHAI)),
    ("/Date(1714530030000+0800)/", dt.datetime(2024, 5, 1, 10, 20, 30, tzinfo=SHANGHAI)),
])
def test_given_kingdee_time_formats_when_parsed_then_aware_shanghai_times(raw: str, expected: dt.datetime) -> None:
    assert mapping.parse_kingdee_datetime(raw, "FModifyDate") == expected


# -- outbound ---------------------------------------------------------------------------------

PAYLOAD: dict[str, Any] = {
    "order_id": 7, "order_number": "SO-2024-0007", "order_date": "2024-05-06", "currency": "CNY",
    "customer": {"id": 42, "name": "杭州云栖数据科技有限公司", "credit_code": "91330106MA2B0E1234", "erp_number": None},
    "salesperson": "SP003",
    "lines": [
        {"line_no": 1, "product_code": "WL0001", "product_name": "伺服电机", "quantity": "2",
         "unit_price": "565.00", "tax_rate": "13", "amount": "1130.00"},
        {"line_no": 2, "product_code": "WL0012", "product_name": "实施服务", "quantity": "1.5",
         "unit_price": "100.333", "tax_rate": "6", "amount": "150.50"},
    ],
}


def test_given_crm_order_when_converted_then_kingdee_save_model_with_references_by_number() -> None:
    model = mapping.crm_order_to_sales_order_model(
        PAYLOAD, bill_number="CRM-SO-2024-0007", customer_number="CUST00017", org_number="100")
    assert model["FBillNo"] == "CRM-SO-2024-0007"
    assert model["FDate"] == "2024-05-06"
    assert model["FCustId"] == {"FNumber": "CUST00017"}
    assert model["FSaleOrgId"] == {"FNumber": "100"}
    assert model["FSalerId"] == {"FNumber": "SP003"}
    assert model["FBillTypeID"] == {"FNUMBER": "XSDD01_SYS"}
    assert model["FSaleOrderFinance"]["FSettleCurrId"] == {"FNumber": "PRE001"}
    assert model["FSaleOrderFinance"]["FIsIncludedTax"] is True
    entries = model["FSaleOrderEntry"]
    assert [e["FMaterialId"] for e in entries] == [{"FNumber": "WL0001"}, {"FNumber": "WL0012"}]
    assert entries[1]["FQty"] == Decimal("1.5")
    assert entries[1]["FTaxPrice"] == Decimal("100.333")
    assert entries[0]["FEntryTaxRate"] == Decimal(13)
    assert "SO-2024-0007" in model["FNote"]


def with_line(**changes: Any) -> dict[str, Any]:
    return with_(PAYLOAD, lines=[with_(PAYLOAD["lines"][0], **changes)])


@pytest.mark.parametrize(("payload", "reason"), [
    (with_(PAYLOAD, order_number=" "), "order_number: missing"),
    (with_(PAYLOAD, order_date="06/05/2024"), "order_date: not a YYYY-MM-DD date"),
    (with_(PAYLOAD, currency="XAU"), "no Kingdee currency number known for 'XAU'"),
    (with_(PAYLOAD, lines=[]), "at least one line"),
    (with_line(product_code=""), r"lines\[1\].product_code: missing"),
    (with_line(quantity="0", amount="0"), r"lines\[1\].quantity: must be positive"),
    (with_line(quantity="两个"), r"lines\[1\].quantity: not a number"),
    (with_line(unit_price="-1", amount="-2"), "unit_price: must not be negative"),
    (with_line(tax_rate="113"), "tax_rate: must be a percentage"),
    (with_line(amount="1000.00"), "≠ quantity × tax-inclusive unit_price = 1130.00"),
])
def test_given_bad_crm_order_when_converted_then_mapping_error(payload: dict[str, Any], reason: str) -> None:
    with pytest.raises(MappingError, match=reason):
        mapping.crm_order_to_sales_order_model(payload, bill_number="B", customer_number="C", org_number="100")


def test_given_crm_customer_when_converted_then_bd_customer_model() -> None:
    model = mapping.crm_customer_to_model(PAYLOAD["customer"], number="CRM000042", org_number="100",
                                          currency="HKD", salesperson="SP003")
    assert model == {
        "FNumber": "CRM000042", "FName": "杭州云栖数据科技有限公司",
        "FCreateOrgId": {"FNumber": "100"}, "FUseOrgId": {"FNumber": "100"},
        "FTRADINGCURRID": {"FNumber": "PRE002"},
        "FSOCIALCRECODE": "91330106MA2B0E1234", "FTAXREGISTERCODE": "91330106MA2B0E1234",
        "FSELLER": {"FNumber": "SP003"},
    }


@pytest.mark.parametrize(("customer", "expected"), [
    ({"id": 42, "erp_number": None}, "CRM000042"),
    ({"id": 42, "erp_number": " CUST00017 "}, "CUST00017"),
    ({"id": 1234567, "erp_number": ""}, "CRM1234567"),
])
def test_given_crm_customer_when_numbered_then_deterministic(customer: dict[str, Any], expected: str) -> None:
    assert mapping.crm_customer_number(customer) == expected


@pytest.mark.parametrize("customer", [{"id": None}, {"id": "42"}, {"id": True}, {}])
def test_given_customer_without_usable_id_when_numbered_then_mapping_error(customer: dict[str, Any]) -> None:
    with pytest.raises(MappingError, match=r"customer\.id"):
        mapping.crm_customer_number(customer)


def test_given_crm_customer_without_name_when_converted_then_mapping_error() -> None:
    with pytest.raises(MappingError, match=r"customer\.name"):
        mapping.crm_customer_to_model({"id": 1, "name": ""}, number="N", org_number="100")


def test_given_order_number_when_bill_number_derived_then_stable_prefix() -> None:
    assert mapping.crm_bill_number(" SO-1 ") == "CRM-SO-1"
    with pytest.raises(MappingError):
        mapping.crm_bill_number("")
