"""Yonyou mapping: real-looking list rows → canonical records, bad rows → reasons naming the field."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from canonical_model.records import MappingError
from connectors.kit.orders import parse_crm_order
from connectors.yonyou.mapping import (
    crm_order_to_voucher,
    group_order_rows,
    map_customer,
    map_receivable,
    map_sales_order,
    resubmit_check_key,
)

MERCHANT = {"id": "1900000000000000001", "code": "YYC00001", "name": {"simplifiedName": "苏州恒瑞精密机械有限公司"},
            "creditCode": "91320505ma00001001", "contactTel": "0512-66668888", "address": "苏州市高新区1号",
            "customerClass_name": "制造业", "professSalesman_code": "YG0003", "transCurrency_code": "CNY",
            "pubts": "2026-11-20 10:20:30"}
LINE_ROWS = [
    {"id": "7", "code": "SO1", "vouchdate": "2026-11-01 00:00:00", "agentId_code": "YYC00001", "payMoney": 300.5,
     "orderPrices!currency": "CNY", "verifystate": 2, "pubts": "2026-11-02 09:00:00", "orderDetails_lineno": 2,
     "orderDetails_productId_code": "P-1002", "orderDetails_qty": 1, "orderDetails_oriTaxUnitPrice": 100.5,
     "orderDetails_oriSum": 100.5, "orderDetails_taxRate": 13},
    {"id": "7", "code": "SO1", "vouchdate": "2026-11-01 00:00:00", "agentId_code": "YYC00001", "payMoney": 300.5,
     "orderPrices!currency": "CNY", "verifystate": 2, "pubts": "2026-11-02 09:00:00", "orderDetails_lineno": 1,
     "orderDetails_productId_code": "P-1001", "orderDetails_productId_name": "工业网关 G200", "orderDetails_qty": 2,
     "orderDetails_oriTaxUnitPrice": 100, "orderDetails_oriSum": 200, "orderDetails_taxRate": 13},
]
AR = {"id": "9", "code": "ARE00000001", "accDate": "2026-10-01 00:00:00", "customer_code": "YYC00001",
      "currency_code": "CNY", "oriAmount": 1000, "bodyItem_oriBalance": "250.004",
      "bodyItem_grandsonItem_expireDate": "2026-10-31 00:00:00", "verifystate": 2, "pubts": "2026-11-03 08:00:00"}


def test_a_merchant_row_becomes_a_customer_with_its_salesperson_as_owner():
    customer = map_customer(MERCHANT)
    assert (customer.external_id, customer.name, customer.credit_code) == (
        "YYC00001", "苏州恒瑞精密机械有限公司", "91320505MA00001001")
    assert (customer.owner_ref, customer.industry, customer.currency) == ("YG0003", "制造业", "CNY")
    assert customer.modified_at == dt.datetime(2026, 11, 20, 10, 20, 30, tzinfo=dt.timezone(dt.timedelta(hours=8)))


def test_line_rows_group_into_one_order_with_its_lines_in_line_order():
    [grouped] = group_order_rows(LINE_ROWS)
    order = map_sales_order(grouped)
    assert (order.bill_number, order.customer_ref, order.erp_status) == ("SO1", "YYC00001", "audited")
    assert [(line.line_no, line.product_code, line.amount) for line in order.lines] == [
        (1, "P-1001", Decimal("200.00")), (2, "P-1002", Decimal("100.50"))]


def test_an_ar_row_becomes_a_receivable_with_its_open_balance_in_cents():
    receivable = map_receivable(AR)
    assert (receivable.amount, receivable.open_amount, receivable.due_date) == (
        Decimal("1000.00"), Decimal("250.00"), dt.date(2026, 10, 31))


@pytest.mark.parametrize(("mapping", "row", "reason"), [
    (map_customer, {**MERCHANT, "name": {"englishName": ""}}, "name: no simplifiedName"),
    (map_customer, {**MERCHANT, "pubts": "昨天"}, "pubts"),
    (map_customer, {**MERCHANT, "code": ["x"]}, "code: expected text"),
    (map_sales_order, {**group_order_rows(LINE_ROWS)[0], "payMoney": 999}, "payMoney: header total"),
    (map_sales_order, {**group_order_rows(LINE_ROWS)[0], "verifystate": 7}, "verifystate"),
    (map_sales_order, {**group_order_rows(LINE_ROWS)[0], "orderDetails": [{"productId_code": "P", "qty": -1,
                                                                          "oriTaxUnitPrice": 1, "oriSum": 1}]},
     "line 1: "),
    (map_receivable, {**AR, "bodyItem_oriBalance": 2000}, "exceeds the bill total"),
    (map_receivable, {**AR, "currency_code": "XYZ"}, "currency"),
])
def test_rows_that_cannot_be_read_are_refused_with_the_field_named(mapping, row, reason):
    with pytest.raises(MappingError, match=reason):
        mapping(row)


def test_an_order_voucher_has_status_on_header_and_lines_and_pay_money_equal_to_the_lines():
    order = parse_crm_order({"order_number": "SO1", "order_date": "2026-11-20", "currency": "cny", "lines": [
        {"line_no": 1, "product_code": "P-1001", "quantity": "2", "unit_price": "980", "tax_rate": "13",
         "amount": "1960.00"},
        {"line_no": 2, "product_code": "P-2002", "quantity": "1", "unit_price": "450", "amount": "450"}]})
    data = crm_order_to_voucher(order, code="CRM-SO1", customer_code="YYC00001", org_code="global00",
                                transaction_type="SO01", check_key="k")
    assert data["_status"] == "Insert" and {d["_status"] for d in data["orderDetails"]} == {"Insert"}
    assert data["payMoney"] == sum(d["oriSum"] for d in data["orderDetails"]) == Decimal("2410.00")
    assert data["orderPrices!currency"] == "CNY" and data["resubmitCheckKey"] == "k"


def test_a_resubmit_key_fits_32_characters_and_is_the_same_for_every_attempt():
    short = "yonyou.sales_order:crm-order-7"
    long = "yonyou.sales_order:crm-order-1234567890"
    assert resubmit_check_key(short) == short
    assert len(resubmit_check_key(long)) == 32 and resubmit_check_key(long) == resubmit_check_key(long)
