"""Contract: the official Kingdee SDK (k3cloud_webapi_sdk) works against our sandbox unchanged.

The SDK is configured only with the sandbox URL and credentials (``InitConfig``), exactly as a
customer would configure it for a real data centre (reference ``erp-apis.md`` §1.6, §3).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from k3cloud_webapi_sdk.main import K3CloudApiSdk

from connectors.kingdee.sandbox.auth import SANDBOX_CREDENTIALS as CREDS
from connectors.kingdee.sandbox.testing import RunningSandbox, running_sandbox

pytestmark = pytest.mark.contract

PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


@pytest.fixture(autouse=True)
def no_proxy_for_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK uses requests, which applies environment proxies (sdk-quirks.md)."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


@pytest.fixture(scope="module")
def server() -> Iterator[RunningSandbox]:
    with running_sandbox(scale=0.01, strict_signatures=True) as running:
        yield running


@pytest.fixture
def sandbox(server: RunningSandbox) -> RunningSandbox:
    """The module's server with freshly seeded data, no sessions and no faults."""
    server.reset()
    return server


def sdk_for(sandbox: RunningSandbox, *, app_secret: str = CREDS.app_secret) -> K3CloudApiSdk:
    sdk = K3CloudApiSdk(sandbox.url, timeout=10)
    sdk.InitConfig(CREDS.acct_id, CREDS.username, CREDS.app_id, app_secret, sandbox.url, lcid=2052)
    return sdk


def parsed(text: Any) -> Any:
    assert isinstance(text, str), f"the SDK returned {text!r} instead of the reply text"
    return json.loads(text)


ORDER_MODEL = {
    "FBillNo": "SDK-0001", "FBillTypeID": {"FNUMBER": "XSDD01_SYS"}, "FDate": "2025-06-29",
    "FSaleOrgId": {"FNumber": "100"}, "FCustId": {"FNumber": "CUST00001"}, "FSalerId": {"FNumber": "SP001"},
    "FSaleOrderFinance": {"FSettleCurrId": {"FNumber": "PRE001"}, "FIsIncludedTax": True},
    "FSaleOrderEntry": [{"FMaterialId": {"FNumber": "WL0001"}, "FQty": 3, "FTaxPrice": 113, "FEntryTaxRate": 13}],
}


def test_given_sdk_with_signed_headers_when_querying_then_rows_in_field_key_order(sandbox: RunningSandbox) -> None:
    sdk = sdk_for(sandbox)
    rows = parsed(sdk.ExecuteBillQuery({
        "FormId": "BD_Customer", "FieldKeys": "FNumber,FName,FSOCIALCRECODE,FModifyDate",
        "FilterString": "FNumber like 'CUST%'", "OrderString": "FNumber ASC", "TopRowCount": 0,
        "StartRow": 0, "Limit": 5,
    }))
    assert len(rows) == 5 and all(len(row) == 4 for row in rows)
    assert rows[0][0] == "CUST00001"
    assert len(rows[0][2]) == 18
    assert sdk.cookiesStore.SID  # the server issued a session and the SDK keeps it
    parsed(sdk.ExecuteBillQuery({"FormId": "BD_Customer", "FieldKeys": "FNumber", "Limit": 1}))
    assert sandbox.sandbox.sessions.issued == 1  # the second call reused the session


def test_given_sdk_when_bill_query_then_objects_keyed_by_the_keys_as_sent(sandbox: RunningSandbox) -> None:
    rows = parsed(sdk_for(sandbox).BillQuery({
        "FormId": "SAL_SaleOrder", "FieldKeys": "FBillNo,FCustId.FNumber,FSaleOrderEntry_FEntryID,FMaterialId.FNumber",
        "FilterString": "FBillNo = 'XSDD000001'", "OrderString": "FSaleOrderEntry_FEntryID ASC", "Limit": 10,
    }))
    assert rows and set(rows[0]) == {"FBillNo", "FCustId.FNumber", "FSaleOrderEntry_FEntryID", "FMaterialId.FNumber"}
    assert {row["FBillNo"] for row in rows} == {"XSDD000001"}  # one row per entry line
    assert [row["FSaleOrderEntry_FEntryID"] for row in rows] == sorted(row["FSaleOrderEntry_FEntryID"] for row in rows)


def test_given_sdk_when_saving_viewing_submitting_auditing_then_documented_envelopes(sandbox: RunningSandbox) -> None:
    sdk = sdk_for(sandbox)
    saved = parsed(sdk.Save("SAL_SaleOrder", {"NeedUpDateFields": [], "IsDeleteEntry": "true", "Model": ORDER_MODEL}))
    status = saved["Result"]["ResponseStatus"]
    assert status["IsSuccess"] is True and status["Errors"] == []
    assert status["SuccessEntitys"] == [{"Id": saved["Result"]["Id"], "Number": "SDK-0001", "DIndex": 0}]
    assert saved["Result"]["Number"] == "SDK-0001"

    viewed = parsed(sdk.View("SAL_SaleOrder", {"CreateOrgId": 0, "Number": "SDK-0001", "Id": ""}))
    document = viewed["Result"]["Result"]
    assert (document["Id"], document["BillNo"], document["DocumentStatus"]) == (saved["Result"]["Id"], "SDK-0001", "A")
    assert document["CustId"]["Number"] == "CUST00001"
    assert document["SaleOrderFinance"][0]["BillAllAmount"] == 339.0
    assert document["SaleOrderEntry"][0]["MaterialId"]["Number"] == "WL0001"

    for operation in (sdk.Submit, sdk.Audit):
        reply = parsed(operation("SAL_SaleOrder", {"CreateOrgId": 0, "Numbers": ["SDK-0001"], "Ids": ""}))
        assert reply["Result"]["ResponseStatus"]["IsSuccess"] is True
        assert reply["Result"]["ResponseStatus"]["SuccessEntitys"][0]["Number"] == "SDK-0001"
    assert sandbox.state.snapshot("SAL_SaleOrder", "SDK-0001")["FDocumentStatus"] == "C"  # type: ignore[index]

    refused = parsed(sdk.Delete("SAL_SaleOrder", {"Numbers": ["SDK-0001"]}))
    assert refused["Result"]["ResponseStatus"]["IsSuccess"] is False  # audited bills cannot be deleted


def test_given_sdk_when_saving_with_a_data_string_then_accepted_like_an_object(sandbox: RunningSandbox) -> None:
    model = {**ORDER_MODEL, "FBillNo": "SDK-STR"}
    saved = parsed(sdk_for(sandbox).Save("SAL_SaleOrder", json.dumps({"Model": model}, ensure_ascii=False)))
    assert saved["Result"]["ResponseStatus"]["IsSuccess"] is True


def test_given_sdk_when_business_rules_fail_then_errors_carry_field_and_index(sandbox: RunningSandbox) -> None:
    sdk = sdk_for(sandbox)
    bad = {**ORDER_MODEL, "FBillNo": "SDK-BAD", "FCustId": {"FNumber": "NO-SUCH-CUSTOMER"}}
    status = parsed(sdk.Save("SAL_SaleOrder", {"Model": bad}))["Result"]["ResponseStatus"]
    assert status["IsSuccess"] is False and status["ErrorCode"] == 500
    assert {"FieldName": "FCustId", "DIndex": 0} .items() <= status["Errors"][0].items()
    assert "NO-SUCH-CUSTOMER" in status["Errors"][0]["Message"]

    batch = parsed(sdk.BatchSave("BD_Customer", {"Model": [
        {"FNumber": "SDK-C1", "FName": "厦门契约测试有限公司"}, {"FNumber": "SDK-C2"}]}))
    status = batch["Result"]["ResponseStatus"]
    assert status["IsSuccess"] is False
    assert [s["DIndex"] for s in status["SuccessEntitys"]] == [0]
    assert [(e["FieldName"], e["DIndex"]) for e in status["Errors"]] == [("FName", 1)]


def test_given_sdk_query_mode_when_batch_saving_then_completed_result(sandbox: RunningSandbox) -> None:
    reply = parsed(sdk_for(sandbox).BatchSaveQuery("BD_Customer", {"Model": [{"FNumber": "SDK-Q1", "FName": "青岛异步有限公司"}]}))
    assert reply["Result"]["ResponseStatus"]["SuccessEntitys"][0]["Number"] == "SDK-Q1"


def test_given_unknown_field_key_when_querying_then_error_wrapped_in_the_list(sandbox: RunningSandbox) -> None:
    reply = parsed(sdk_for(sandbox).ExecuteBillQuery({"FormId": "BD_Customer", "FieldKeys": "FNumber,FNoSuchKey"}))
    status = reply[0][0]["Result"]["ResponseStatus"]
    assert status["IsSuccess"] is False
    assert status["Errors"][0]["Message"] == "元数据中标识为FNoSuchKey的字段不存在"


def test_given_wrong_app_secret_when_calling_then_refused(sandbox: RunningSandbox) -> None:
    reply = parsed(sdk_for(sandbox, app_secret="0123456789abcdef0123456789abcdef").ExecuteBillQuery(
        {"FormId": "BD_Customer", "FieldKeys": "FNumber", "Limit": 1}))
    status = reply[0][0]["Result"]["ResponseStatus"]
    assert (status["IsSuccess"], status["MsgCode"]) == (False, 1)
    assert sandbox.sandbox.sessions.issued == 0


def test_given_stale_session_and_strict_server_when_calling_then_msgcode_1_reaches_the_sdk() -> None:
    with running_sandbox(scale=0.01, stale_signed_session="fail") as running:
        sdk = sdk_for(running)
        parsed(sdk.View("BD_Customer", {"Number": "CUST00001"}))
        running.sandbox.expire_sessions()
        status = parsed(sdk.View("BD_Customer", {"Number": "CUST00001"}))["Result"]["ResponseStatus"]
        assert (status["IsSuccess"], status["MsgCode"]) == (False, 1)
        assert status["Errors"][0]["Message"] == "会话信息已丢失，请重新登录"


@pytest.mark.parametrize("fault", ["http_500", "busy", "rate_limit"])
def test_given_server_faults_when_calling_then_the_sdk_raises(sandbox: RunningSandbox, fault: str) -> None:
    sandbox.faults.arm(fault, times=1)
    with pytest.raises(RuntimeError):
        sdk_for(sandbox).View("BD_Customer", {"Number": "CUST00001"})


def test_given_sdk_when_listing_data_centres_then_the_sandbox_centre(sandbox: RunningSandbox) -> None:
    centres = parsed(sdk_for(sandbox).GetDataCenters())
    assert centres[0]["Id"] == CREDS.acct_id
