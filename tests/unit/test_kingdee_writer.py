"""SalesOrderWriter against the sandbox: exactly one ERP order per CRM order, whatever is lost."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pytest

from connectors.kingdee.client import KingdeeBusinessError
from connectors.kingdee.sandbox.seed import unified_social_credit_code
from connectors.kingdee.sandbox.testing import RunningSandbox
from connectors.kingdee.writers import SalesOrderWriter
from hub.contracts import Attempt
from hub.errors import PermanentError, RetryableError

STARTED = dt.datetime(2025, 6, 30, 9, 0, tzinfo=dt.UTC)
FIRST = Attempt(number=1, first_attempt_at=STARTED)
RETRY_UNKNOWN = Attempt(number=2, first_attempt_at=STARTED, outcome_unknown=True)


# `server` / `sandbox` fixtures: tests/unit/conftest.py (shared by the Kingdee modules)


def order_payload(number: str = "SO-0001", **customer: Any) -> dict[str, Any]:
    return {
        "order_id": 1, "order_number": number, "order_date": "2025-06-28", "currency": "CNY",
        "customer": {"id": 42, "name": "杭州云栖数据科技有限公司", "credit_code": None, "erp_number": None, **customer},
        "salesperson": "SP003",
        "lines": [
            {"line_no": 1, "product_code": "WL0001", "product_name": "伺服电机", "quantity": "2",
             "unit_price": "565.00", "tax_rate": "13", "amount": "1130.00"},
            {"line_no": 2, "product_code": "WL0002", "product_name": "变频器", "quantity": "1",
             "unit_price": "2260.50", "tax_rate": "13", "amount": "2260.50"},
        ],
    }


def orders_with_number(sandbox: RunningSandbox, bill_number: str) -> int:
    return sandbox.state.count("SAL_SaleOrder", lambda doc: doc["FBillNo"] == bill_number)


def test_given_new_order_when_applied_then_one_erp_order_with_lines_and_totals(sandbox: RunningSandbox) -> None:
    writer = SalesOrderWriter(sandbox.client())
    result = writer.apply("outbox-1", order_payload(), FIRST)
    assert (result.external_id, result.status, result.adopted) == ("CRM-SO-0001", "A", False)
    order = sandbox.state.snapshot("SAL_SaleOrder", "CRM-SO-0001")
    assert order is not None
    assert result.detail["fid"] == order["FID"]
    assert order["FCustId"] == "CRM000042"
    assert order["FSalerId"] == "SP003"
    assert order["FSettleCurrId"] == "PRE001"
    assert order["FBillAllAmount"] == 3390.5
    assert [line["FMaterialId"] for line in order["FSaleOrderEntry"]] == ["WL0001", "WL0002"]


def test_given_save_reply_dropped_when_retried_then_the_retry_adopts_and_one_order_exists(sandbox: RunningSandbox) -> None:
    writer = SalesOrderWriter(sandbox.client())
    payload = order_payload("SO-DROP", erp_number="CUST00005")  # existing customer: the order is the only Save
    sandbox.faults.arm("drop_response", times=1, operations=["save"])
    with pytest.raises(RetryableError) as info:
        writer.apply("outbox-2", payload, FIRST)
    assert info.value.code == "HTTP 504"
    result = writer.apply("outbox-2", payload, RETRY_UNKNOWN)
    assert result.adopted and result.external_id == "CRM-SO-DROP"
    assert result.detail["customer_number"] == "CUST00005"
    assert result.detail["fid"] == sandbox.state.snapshot("SAL_SaleOrder", "CRM-SO-DROP")["FID"]  # type: ignore[index]
    assert orders_with_number(sandbox, "CRM-SO-DROP") == 1
    assert writer.find_existing("outbox-2", payload) == result


def test_given_customer_save_reply_dropped_when_retried_then_customer_and_order_exist_once(
    sandbox: RunningSandbox,
) -> None:
    writer = SalesOrderWriter(sandbox.client())
    payload = order_payload("SO-DROPCUST")
    sandbox.faults.arm("drop_response", times=1, operations=["save"])  # hits the customer Save
    with pytest.raises(RetryableError):
        writer.apply("outbox-2b", payload, FIRST)
    assert sandbox.state.snapshot("BD_Customer", "CRM000042") is not None
    result = writer.apply("outbox-2b", payload, RETRY_UNKNOWN)
    assert not result.adopted  # the order itself was never saved before
    assert sandbox.state.count("BD_Customer", lambda d: d["FNumber"] == "CRM000042") == 1
    assert orders_with_number(sandbox, "CRM-SO-DROPCUST") == 1


def test_given_retry_that_skips_the_lookup_when_saving_again_then_duplicate_number_is_adopted(
    sandbox: RunningSandbox,
) -> None:
    writer = SalesOrderWriter(sandbox.client())
    payload = order_payload("SO-RACE")
    writer.apply("outbox-3", payload, FIRST)
    again = writer.apply("outbox-3", payload, FIRST)  # e.g. a second dispatcher that saw no failure
    assert again.adopted
    assert orders_with_number(sandbox, "CRM-SO-RACE") == 1


def test_given_submit_and_audit_when_applied_then_order_reaches_audited(sandbox: RunningSandbox) -> None:
    writer = SalesOrderWriter(sandbox.client(), submit_and_audit=True)
    result = writer.apply("outbox-4", order_payload("SO-AUDIT"), FIRST)
    assert result.status == "C"
    assert sandbox.state.snapshot("SAL_SaleOrder", "CRM-SO-AUDIT")["FDocumentStatus"] == "C"  # type: ignore[index]


def test_given_audit_reply_lost_when_retried_then_workflow_finishes_without_a_twin(sandbox: RunningSandbox) -> None:
    writer = SalesOrderWriter(sandbox.client(), submit_and_audit=True)
    payload = order_payload("SO-HALF")
    sandbox.faults.arm("http_500", times=1, operations=["audit"])
    with pytest.raises(RetryableError):
        writer.apply("outbox-5", payload, FIRST)
    assert sandbox.state.snapshot("SAL_SaleOrder", "CRM-SO-HALF")["FDocumentStatus"] == "B"  # type: ignore[index]
    # Not complete yet: the dispatcher's lookup must not mark the row done; apply finishes it.
    assert writer.find_existing("outbox-5", payload) is None
    result = writer.apply("outbox-5", payload, RETRY_UNKNOWN)
    assert (result.status, result.adopted) == ("C", True)
    assert orders_with_number(sandbox, "CRM-SO-HALF") == 1


def test_given_customer_unknown_to_erp_when_applied_then_customer_is_created_and_audited(sandbox: RunningSandbox) -> None:
    code = unified_social_credit_code(random.Random(7), "330106")
    writer = SalesOrderWriter(sandbox.client())
    before = sandbox.state.count("BD_Customer")
    writer.apply("outbox-6", order_payload("SO-NEWCUST", credit_code=code), FIRST)
    customer = sandbox.state.snapshot("BD_Customer", "CRM000042")
    assert customer is not None
    assert (customer["FName"], customer["FSOCIALCRECODE"]) == ("杭州云栖数据科技有限公司", code)
    assert (customer["FDocumentStatus"], customer["FSELLER"]) == ("C", "SP003")
    assert sandbox.state.count("BD_Customer") == before + 1
    # A second order of the same customer finds it by credit code and creates nothing.
    writer.apply("outbox-7", order_payload("SO-NEWCUST-2", credit_code=code), FIRST)
    assert sandbox.state.count("BD_Customer") == before + 1


def test_given_customer_known_by_credit_code_when_applied_then_the_erp_customer_is_used(sandbox: RunningSandbox) -> None:
    seeded = sandbox.state.snapshot("BD_Customer", "CUST00003")
    assert seeded is not None and seeded["FSOCIALCRECODE"]
    writer = SalesOrderWriter(sandbox.client())
    result = writer.apply("outbox-8", order_payload("SO-KNOWN", credit_code=seeded["FSOCIALCRECODE"].lower()), FIRST)
    assert sandbox.state.snapshot("SAL_SaleOrder", result.external_id)["FCustId"] == "CUST00003"  # type: ignore[index]
    assert sandbox.state.snapshot("BD_Customer", "CRM000042") is None


def test_given_customer_with_erp_number_when_applied_then_no_lookup_by_code_needed(sandbox: RunningSandbox) -> None:
    writer = SalesOrderWriter(sandbox.client())
    result = writer.apply("outbox-9", order_payload("SO-ERPNO", erp_number="CUST00005"), FIRST)
    assert sandbox.state.snapshot("SAL_SaleOrder", result.external_id)["FCustId"] == "CUST00005"  # type: ignore[index]


def test_given_unknown_material_when_applied_then_permanent_error_names_the_field(sandbox: RunningSandbox) -> None:
    payload = order_payload("SO-BADMAT")
    payload["lines"][0]["product_code"] = "NO-SUCH-MATERIAL"
    with pytest.raises(KingdeeBusinessError, match="FMaterialId") as info:
        SalesOrderWriter(sandbox.client()).apply("outbox-10", payload, FIRST)
    assert not info.value.retryable
    assert orders_with_number(sandbox, "CRM-SO-BADMAT") == 0


def test_given_inconsistent_payload_when_applied_then_permanent_mapping_error(sandbox: RunningSandbox) -> None:
    payload = order_payload("SO-BADAMT")
    payload["lines"][1]["amount"] = "1.00"
    with pytest.raises(PermanentError, match=r"lines\[2\]\.amount") as info:
        SalesOrderWriter(sandbox.client()).apply("outbox-11", payload, FIRST)
    assert info.value.code == "mapping"
    assert info.value.external_id == "CRM-SO-BADAMT"


def test_given_no_earlier_write_when_looking_up_then_none(sandbox: RunningSandbox) -> None:
    assert SalesOrderWriter(sandbox.client()).find_existing("k", order_payload("SO-NEVER")) is None


def test_given_salesperson_by_name_when_applied_then_resolved_to_the_erp_number(sandbox: RunningSandbox) -> None:
    saler = sandbox.state.tables["bd_saler"].find_number("SP007")
    assert saler is not None
    payload = {**order_payload("SO-BYNAME"), "salesperson": saler["FName"]}
    result = SalesOrderWriter(sandbox.client()).apply("outbox-12", payload, FIRST)
    assert result.detail["salesperson_number"] == "SP007"
    assert sandbox.state.snapshot("SAL_SaleOrder", "CRM-SO-BYNAME")["FSalerId"] == "SP007"  # type: ignore[index]


def test_given_salesperson_unknown_to_the_erp_when_applied_then_the_order_still_goes_in(sandbox: RunningSandbox) -> None:
    payload = {**order_payload("SO-NOSALER"), "salesperson": "不存在的销售"}
    result = SalesOrderWriter(sandbox.client()).apply("outbox-13", payload, FIRST)
    assert result.detail["salesperson_dropped"] == "不存在的销售"
    assert sandbox.state.snapshot("SAL_SaleOrder", "CRM-SO-NOSALER")["FSalerId"] is None  # type: ignore[index]


def test_given_the_crm_demo_catalogue_when_applied_then_the_erp_knows_those_materials(sandbox: RunningSandbox) -> None:
    payload = order_payload("SO-DEMO")
    payload["lines"] = [{"line_no": 1, "product_code": "P-1001", "product_name": "工业网关 G200", "quantity": "5",
                         "unit_price": "2600", "tax_rate": "13", "amount": "13000.00"}]
    SalesOrderWriter(sandbox.client(), submit_and_audit=True).apply("outbox-14", payload, FIRST)
    order = sandbox.state.snapshot("SAL_SaleOrder", "CRM-SO-DEMO")
    assert order is not None and order["FBillAllAmount"] == 13000.0 and order["FDocumentStatus"] == "C"
