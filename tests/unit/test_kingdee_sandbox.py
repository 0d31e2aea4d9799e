"""The K/3 Cloud sandbox as a vendor model: wire protocol, auth, rules, seed data, admin endpoints."""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from typing import Any

import httpx
import pytest

from connectors.kingdee import signing
from connectors.kingdee.sandbox import create_app
from connectors.kingdee.sandbox.auth import SANDBOX_CREDENTIALS as CREDS
from connectors.kingdee.sandbox.seed import seed_state
from connectors.kingdee.sandbox.state import KingdeeState
from connectors.kingdee.sandbox.testing import TEST_TODAY, RunningSandbox, running_sandbox

SERVICE = "Kingdee.BOS.WebApi.ServicesStub.DynamicFormService."


# `server` / `sandbox` fixtures: tests/unit/conftest.py (shared by the Kingdee modules)


def signed_post(sandbox: RunningSandbox, path: str, body: Any, *, strict_time: str | None = None,
                **extra_headers: str) -> httpx.Response:
    """POST with the SDK's signed headers (a fresh session each call)."""
    headers = signing.signed_headers(
        path=path, acct_id=CREDS.acct_id, username=CREDS.username, app_id=CREDS.app_id,
        app_secret=CREDS.app_secret, lcid=2052, org_num=0, timestamp=strict_time or str(int(time.time())))
    headers.update(extra_headers)
    return httpx.post(sandbox.server.url + path, content=json.dumps(body, ensure_ascii=False).encode(),
                      headers=headers)


def business(sandbox: RunningSandbox, method: str, body: Any) -> Any:
    response = signed_post(sandbox, f"/k3cloud/{SERVICE}{method}.common.kdsvc", body)
    assert response.status_code == 200
    return response.json()


def status_of(reply: Any) -> dict[str, Any]:
    result: dict[str, Any] = reply["Result"]["ResponseStatus"]
    return result


ORDER = {
    "FBillNo": "T-0001", "FDate": "2025-06-29", "FSaleOrgId": {"FNumber": "100"},
    "FCustId": {"FNumber": "CUST00001"},
    "FSaleOrderFinance": {"FSettleCurrId": {"FNumber": "PRE001"}},
    "FSaleOrderEntry": [
        {"FMaterialId": {"FNumber": "WL0001"}, "FQty": 2, "FTaxPrice": 113, "FEntryTaxRate": 13},
        {"FMaterialId": {"FNumber": "WL0002"}, "FQty": 1, "FPrice": 100, "FEntryTaxRate": 6},
    ],
}


# -- routing and bodies -------------------------------------------------------------------------

@pytest.mark.parametrize("path", [
    f"/k3cloud/{SERVICE}ExecuteBillQuery.common.kdsvc",
    f"/K3Cloud/{SERVICE.lower()}executebillquery.COMMON.KDSVC",
    f"/{SERVICE}ExecuteBillQuery.common.kdsvc",
])
def test_given_any_case_and_virtual_directory_when_posting_then_routed(sandbox: RunningSandbox, path: str) -> None:
    response = signed_post(sandbox, path, {"data": {"FormId": "BD_Currency", "FieldKeys": "FNumber,FCODE"}})
    assert response.status_code == 200
    assert ["PRE001", "CNY"] in response.json()


@pytest.mark.parametrize("body", [
    {"formid": "BD_Customer", "data": {"Model": {"FNumber": "BODY1", "FName": "上海报文一号有限公司"}}},
    {"formId": "BD_Customer", "data": json.dumps({"Model": {"FNumber": "BODY1", "FName": "上海报文一号有限公司"}})},
    {"parameters": ["BD_Customer", json.dumps({"Model": {"FNumber": "BODY1", "FName": "上海报文一号有限公司"}})]},
])
def test_given_named_string_or_positional_bodies_when_saving_then_all_accepted(sandbox: RunningSandbox, body: Any) -> None:
    reply = business(sandbox, "Save", body)
    assert status_of(reply)["IsSuccess"] is True
    assert reply["Result"]["Number"] == "BODY1"


def test_given_positional_query_body_when_querying_then_rows(sandbox: RunningSandbox) -> None:
    rows = business(sandbox, "ExecuteBillQuery", {"parameters": [json.dumps({"FormId": "BD_Currency", "FieldKeys": "FNumber", "Limit": 2})]})
    assert rows == [["PRE001"], ["PRE002"]]


def test_given_unknown_service_method_when_posting_then_404(sandbox: RunningSandbox) -> None:
    assert signed_post(sandbox, f"/k3cloud/{SERVICE}Teleport.common.kdsvc", {}).status_code == 404


# -- auth ---------------------------------------------------------------------------------------

def login(sandbox: RunningSandbox, method: str, body: Any) -> httpx.Response:
    return httpx.post(f"{sandbox.url}Kingdee.BOS.WebApi.ServicesStub.AuthService.{method}.common.kdsvc", json=body)


@pytest.mark.parametrize(("method", "body"), [
    ("ValidateUser", {"acctID": CREDS.acct_id, "username": CREDS.username, "password": CREDS.password, "lcid": 2052}),
    ("ValidateUser", {"parameters": [CREDS.acct_id, CREDS.username, CREDS.password, 2052]}),
    ("LoginByAppSecret", {"acctid": CREDS.acct_id, "username": CREDS.username, "appid": CREDS.app_id,
                          "appsecret": CREDS.app_secret, "lcid": 2052}),
    ("LoginBySign", {"parameters": [CREDS.acct_id, CREDS.username, CREDS.app_id, "1719700000",
                                    signing.login_sign(CREDS.acct_id, CREDS.username, CREDS.app_id,
                                                       CREDS.app_secret, "1719700000"), 2052]}),
])
def test_given_valid_login_when_logging_in_then_session_cookies_work_for_business_calls(
    sandbox: RunningSandbox, method: str, body: Any,
) -> None:
    response = login(sandbox, method, body)
    reply = response.json()
    assert (reply["LoginResultType"], reply["IsSuccessByAPI"]) == (1, True)
    sid = reply["KDSVCSessionId"]
    assert response.headers["kdservice-sessionid"] == sid
    cookies = response.headers.get_list("set-cookie")
    assert f"kdservice-sessionid={sid}; path=/" in cookies
    assert any(c.startswith("ASP.NET_SessionId=") for c in cookies)
    assert not any("expires" in c.lower() for c in cookies)  # the SDK splits Set-Cookie on commas
    query = httpx.post(f"{sandbox.url}{SERVICE}ExecuteBillQuery.common.kdsvc",
                       json={"data": {"FormId": "BD_Currency", "FieldKeys": "FNumber", "Limit": 1}},
                       headers={"Cookie": f"kdservice-sessionid={sid}"})
    assert query.json() == [["PRE001"]]


@pytest.mark.parametrize(("method", "body"), [
    ("ValidateUser", {"acctID": CREDS.acct_id, "username": CREDS.username, "password": "guess", "lcid": 2052}),
    ("LoginByAppSecret", {"acctid": "other-centre", "username": CREDS.username, "appid": CREDS.app_id,
                          "appsecret": CREDS.app_secret}),
    ("LoginBySign", {"parameters": [CREDS.acct_id, CREDS.username, CREDS.app_id, "1", "0" * 64, 2052]}),
])
def test_given_bad_credentials_when_logging_in_then_login_result_type_0(sandbox: RunningSandbox, method: str, body: Any) -> None:
    reply = login(sandbox, method, body).json()
    assert (reply["LoginResultType"], reply["IsSuccessByAPI"], reply["KDSVCSessionId"]) == (0, False, None)


@pytest.mark.parametrize(("method", "shape"), [("ExecuteBillQuery", "wrapped"), ("Save", "object")])
def test_given_no_session_when_calling_then_msgcode_1_in_the_operation_shape(
    sandbox: RunningSandbox, method: str, shape: str,
) -> None:
    response = httpx.post(f"{sandbox.url}{SERVICE}{method}.common.kdsvc", json={"data": {}},
                          headers={"kdservice-sessionid": "made-up"})
    assert response.status_code == 200
    reply = response.json()
    status = reply[0][0]["Result"]["ResponseStatus"] if shape == "wrapped" else status_of(reply)
    assert (status["IsSuccess"], status["MsgCode"]) == (False, 1)
    assert status["Errors"][0]["Message"] == "会话信息已丢失，请重新登录"


def test_given_strict_mode_when_gateway_signature_is_wrong_then_refused() -> None:
    with running_sandbox(scale=0.01, strict_signatures=True) as running:
        path = f"/k3cloud/{SERVICE}ExecuteBillQuery.common.kdsvc"
        body = {"data": {"FormId": "BD_Currency", "FieldKeys": "FNumber", "Limit": 1}}
        assert signed_post(running, path, body).json() == [["PRE001"]]
        stale = signed_post(running, path, body, strict_time=str(int(time.time()) - 3600)).json()
        assert stale[0][0]["Result"]["ResponseStatus"]["MsgCode"] == 1
        forged = signed_post(running, path, body, **{"X-Api-Signature": "Zm9yZ2Vk"}).json()
        assert "X-Api-Signature" in forged[0][0]["Result"]["ResponseStatus"]["Errors"][0]["Message"]
        ms = signed_post(running, path, body, strict_time=str(int(time.time() * 1000)))  # the C# SDK's unit
        assert ms.json() == [["PRE001"]]


# -- queries ------------------------------------------------------------------------------------

def query(sandbox: RunningSandbox, **data: Any) -> Any:
    return business(sandbox, "ExecuteBillQuery", {"data": data})


def test_given_dotted_and_entry_keys_when_querying_then_one_row_per_line_with_references(sandbox: RunningSandbox) -> None:
    order = sandbox.state.tables["sal_saleorder"].find_number("XSDD000001")
    assert order is not None
    rows = query(sandbox, FormId="SAL_SaleOrder",
                 FieldKeys="FBillNo,FCustId.FNumber,FCustId.FName,FSaleOrderEntry_FEntryID,FMaterialId.FNumber,FQty",
                 FilterString="FBillNo = 'XSDD000001'", OrderString="FSaleOrderEntry_FEntryID DESC")
    assert len(rows) == len(order["__entries__"]["FSaleOrderEntry"])
    assert [r[3] for r in rows] == sorted((r[3] for r in rows), reverse=True)
    customer = sandbox.state.tables["bd_customer"].docs[order["FCustId"]]
    assert rows[0][1:3] == [customer["FNumber"], customer["FName"]]


def test_given_paging_parameters_when_querying_then_start_limit_and_top_apply(sandbox: RunningSandbox) -> None:
    keys = {"FormId": "BD_Customer", "FieldKeys": "FNumber", "OrderString": "FNumber ASC"}
    every = [r[0] for r in query(sandbox, **keys)]
    assert [r[0] for r in query(sandbox, **keys, StartRow=5, Limit=3)] == every[5:8]
    assert [r[0] for r in query(sandbox, **keys, TopRowCount=4, StartRow=2, Limit=10)] == every[2:4]
    assert len(query(sandbox, **keys, Limit=5000)) == len(every)


def test_given_big_limit_when_querying_then_capped_at_2000() -> None:
    state = KingdeeState(today=TEST_TODAY)
    seed_state(state, scale=0.15)
    rows = state.query({"FormId": "SAL_SaleOrder", "FieldKeys": "FID", "Limit": 5000}, as_dicts=False)
    assert len(rows) == 2000 < state.count("SAL_SaleOrder")


@pytest.mark.parametrize(("data", "message"), [
    ({"FormId": "BD_Customer", "FieldKeys": "FNumber,FNope"}, "元数据中标识为FNope的字段不存在"),
    ({"FormId": "BD_Customer", "FieldKeys": "FSELLER.FNope"}, "元数据中标识为FSELLER.FNope的字段不存在"),
    ({"FormId": "BD_Customer", "FieldKeys": "FNumber", "FilterString": "FNumber = 'x"}, "过滤条件语法错误"),
    ({"FormId": "BD_Customer", "FieldKeys": "FNumber", "FilterString": "FModifyDate > 'soon'"}, "转换失败"),
    ({"FormId": "NO_SuchForm", "FieldKeys": "FNumber"}, "业务对象“NO_SuchForm”不存在"),
    ({"FormId": "BD_Customer", "FieldKeys": ""}, "FieldKeys不能为空"),
])
def test_given_bad_queries_when_querying_then_errors_wrapped_in_the_list(
    sandbox: RunningSandbox, data: dict[str, Any], message: str,
) -> None:
    reply = query(sandbox, **data)
    status = reply[0][0]["Result"]["ResponseStatus"]
    assert status["IsSuccess"] is False
    assert message in status["Errors"][0]["Message"]


def test_given_bill_query_when_called_then_dicts_keyed_by_literal_keys(sandbox: RunningSandbox) -> None:
    rows = business(sandbox, "BillQuery", {"data": {"FormId": "BD_Customer", "FieldKeys": "fnumber,FSELLER.FNumber",
                                                    "Limit": 2}})
    assert list(rows[0]) == ["fnumber", "FSELLER.FNumber"]


# -- saves and the status machine ------------------------------------------------------------------

def test_given_order_without_totals_when_saved_then_server_computes_prices_and_amounts(sandbox: RunningSandbox) -> None:
    assert status_of(business(sandbox, "Save", {"formid": "SAL_SaleOrder", "data": {"Model": ORDER}}))["IsSuccess"]
    order = sandbox.state.snapshot("SAL_SaleOrder", "T-0001")
    assert order is not None
    first, second = order["FSaleOrderEntry"]
    assert (first["FPrice"], first["FAllAmount"], first["FAmount"]) == (100.0, 226.0, 200.0)
    assert (second["FTaxPrice"], second["FAllAmount"]) == (106.0, 106.0)
    assert (order["FBillAllAmount"], order["FBillTaxAmount"]) == (332.0, 32.0)
    assert (order["FDocumentStatus"], order["FBillTypeID"]) == ("A", "XSDD01_SYS")
    assert first["FUnitID"] == "TAI"  # defaulted from the material's base unit


def test_given_need_update_fields_when_updating_then_only_those_fields_change(sandbox: RunningSandbox) -> None:
    business(sandbox, "Save", {"formid": "SAL_SaleOrder", "data": {"Model": ORDER}})
    before = sandbox.state.snapshot("SAL_SaleOrder", "T-0001")
    assert before is not None
    time.sleep(0.002)
    reply = business(sandbox, "Save", {"formid": "SAL_SaleOrder", "data": {
        "NeedUpDateFields": ["FNote"], "Model": {"FID": before["FID"], "FNote": "加急", "FDate": "2020-01-01"}}})
    assert status_of(reply)["IsSuccess"] is True
    after = sandbox.state.snapshot("SAL_SaleOrder", "T-0001")
    assert after is not None
    assert (after["FNote"], after["FDate"], len(after["FSaleOrderEntry"])) == ("加急", before["FDate"], 2)
    assert after["FModifyDate"] > before["FModifyDate"]


def test_given_full_model_update_when_fields_are_absent_then_they_are_cleared(sandbox: RunningSandbox) -> None:
    business(sandbox, "Save", {"formid": "SAL_SaleOrder", "data": {"Model": {**ORDER, "FNote": "原备注"}}})
    fid = sandbox.state.snapshot("SAL_SaleOrder", "T-0001")["FID"]  # type: ignore[index]
    model = {**ORDER, "FID": fid, "FSaleOrderEntry": [ORDER["FSaleOrderEntry"][0]]}  # type: ignore[index]
    assert status_of(business(sandbox, "Save", {"formid": "SAL_SaleOrder", "data": {"Model": model}}))["IsSuccess"]
    after = sandbox.state.snapshot("SAL_SaleOrder", "T-0001")
    assert after is not None
    assert after["FNote"] is None
    assert len(after["FSaleOrderEntry"]) == 1  # IsDeleteEntry defaults to true


def test_given_is_delete_entry_false_when_adding_a_line_then_existing_lines_stay(sandbox: RunningSandbox) -> None:
    business(sandbox, "Save", {"formid": "SAL_SaleOrder", "data": {"Model": ORDER}})
    fid = sandbox.state.snapshot("SAL_SaleOrder", "T-0001")["FID"]  # type: ignore[index]
    reply = business(sandbox, "Save", {"formid": "SAL_SaleOrder", "data": {
        "IsDeleteEntry": "false", "NeedUpDateFields": ["FSaleOrderEntry"],
        "Model": {"FID": fid, "FSaleOrderEntry": [{"FMaterialId": {"FNumber": "WL0003"}, "FQty": 1, "FTaxPrice": 10}]}}})
    assert status_of(reply)["IsSuccess"] is True
    lines = sandbox.state.snapshot("SAL_SaleOrder", "T-0001")["FSaleOrderEntry"]  # type: ignore[index]
    assert [line["FMaterialId"] for line in lines] == ["WL0001", "WL0002", "WL0003"]


@pytest.mark.parametrize(("model", "field", "msg_code"), [
    ({**ORDER, "FCustId": {"FNumber": "CUST99999"}}, "FCustId", 9),
    ({**ORDER, "FDate": "下周一"}, "FDate", 0),
    ({k: v for k, v in ORDER.items() if k != "FSaleOrgId"}, "FSaleOrgId", 0),
    ({**ORDER, "FSaleOrderEntry": []}, "FSaleOrderEntry", 0),
    ({**ORDER, "FSaleOrderEntry": [{"FMaterialId": {"FNumber": "WL0001"}, "FQty": -1}]}, "FQty", 0),
    ({**ORDER, "FBillNo": "XSDD000001"}, "FBillNo", 0),
])
def test_given_invalid_orders_when_saving_then_errors_name_the_field(
    sandbox: RunningSandbox, model: dict[str, Any], field: str, msg_code: int,
) -> None:
    status = status_of(business(sandbox, "Save", {"formid": "SAL_SaleOrder", "data": {"Model": model}}))
    assert status["IsSuccess"] is False
    assert field in [e["FieldName"] for e in status["Errors"]]
    assert status["MsgCode"] == msg_code
    assert all(e["DIndex"] == 0 for e in status["Errors"])


def test_given_auto_submit_and_audit_when_saving_then_audited_and_locked(sandbox: RunningSandbox) -> None:
    business(sandbox, "Save", {"formid": "SAL_SaleOrder", "data": {"IsAutoSubmitAndAudit": True, "Model": ORDER}})
    fid = sandbox.state.snapshot("SAL_SaleOrder", "T-0001")["FID"]  # type: ignore[index]
    assert sandbox.state.snapshot("SAL_SaleOrder", "T-0001")["FDocumentStatus"] == "C"  # type: ignore[index]
    status = status_of(business(sandbox, "Save", {"formid": "SAL_SaleOrder", "data": {
        "NeedUpDateFields": ["FNote"], "Model": {"FID": fid, "FNote": "x"}}}))
    assert status["IsSuccess"] is False and "不允许修改" in status["Errors"][0]["Message"]


def test_given_draft_when_submitting_then_refused_until_saved(sandbox: RunningSandbox) -> None:
    draft = business(sandbox, "Draft", {"formid": "SAL_SaleOrder", "data": {"Model": {"FBillNo": "DRAFT-1"}}})
    assert status_of(draft)["IsSuccess"] is True
    assert sandbox.state.snapshot("SAL_SaleOrder", "DRAFT-1")["FDocumentStatus"] == "Z"  # type: ignore[index]
    refused = status_of(business(sandbox, "Submit", {"formid": "SAL_SaleOrder", "data": {"Numbers": ["DRAFT-1"]}}))
    assert refused["IsSuccess"] is False and "暂存" in refused["Errors"][0]["Message"]
    deleted = status_of(business(sandbox, "Delete", {"formid": "SAL_SaleOrder", "data": {"Numbers": ["DRAFT-1"]}}))
    assert deleted["IsSuccess"] is True


def test_given_customer_used_by_orders_when_deleting_then_refused(sandbox: RunningSandbox) -> None:
    number = "CUST00001"
    business(sandbox, "UnAudit", {"formid": "BD_Customer", "data": {"Numbers": [number]}})
    status = status_of(business(sandbox, "Delete", {"formid": "BD_Customer", "data": {"Numbers": [number]}}))
    assert status["IsSuccess"] is False and "引用" in status["Errors"][0]["Message"]


def test_given_several_numbers_when_submitting_then_results_per_document(sandbox: RunningSandbox) -> None:
    for number in ("M-1", "M-2"):
        business(sandbox, "Save", {"formid": "SAL_SaleOrder", "data": {"Model": {**ORDER, "FBillNo": number}}})
    status = status_of(business(sandbox, "Submit", {"formid": "SAL_SaleOrder",
                                                    "data": {"Numbers": ["M-1", "NOPE", "M-2"]}}))
    assert status["IsSuccess"] is False
    assert [s["Number"] for s in status["SuccessEntitys"]] == ["M-1", "M-2"]
    assert [e["DIndex"] for e in status["Errors"]] == [1]


def test_given_verify_base_data_when_referencing_forbidden_customer_then_refused(sandbox: RunningSandbox) -> None:
    customers = sandbox.state.tables["bd_customer"]
    customers.find_number("CUST00002")["FForbidStatus"] = "B"  # type: ignore[index]
    model = {**ORDER, "FCustId": {"FNumber": "CUST00002"}}
    lenient = business(sandbox, "Save", {"formid": "SAL_SaleOrder", "data": {"Model": model}})
    strict = business(sandbox, "Save", {"formid": "SAL_SaleOrder", "data": {
        "IsVerifyBaseDataField": True, "Model": {**model, "FBillNo": "T-0002"}}})
    assert status_of(lenient)["IsSuccess"] is True
    assert "未审核或已禁用" in status_of(strict)["Errors"][0]["Message"]


# -- faults and admin endpoints -------------------------------------------------------------------

def test_given_admin_endpoints_when_used_then_faults_state_and_bills_are_reachable(sandbox: RunningSandbox) -> None:
    assert sandbox.app.state.faults is sandbox.faults  # where the hub runtime looks for every sandbox's plan
    base = sandbox.server.url + "/__sandbox__"
    configured = httpx.post(f"{base}/faults", json={"faults": [{"kind": "drop_response", "operations": ["save"]}]})
    assert configured.json()["armed"][0]["kind"] == "drop_response"
    dropped = signed_post(sandbox, f"/k3cloud/{SERVICE}Save.common.kdsvc",
                          {"formid": "SAL_SaleOrder", "data": {"Model": ORDER}})
    assert (dropped.status_code, dropped.content) == (504, b"")
    bill = httpx.get(f"{base}/bills/SAL_SaleOrder/T-0001").json()
    assert bill["FCustId"] == "CUST00001"  # the dropped Save happened
    state = httpx.get(f"{base}/state").json()
    assert state["counts"]["SAL_SaleOrder"] == 201 and state["today"] == "2025-06-30"
    assert "app_secret" not in json.dumps(state) and CREDS.app_secret not in json.dumps(state)
    assert httpx.post(f"{base}/sessions/expire").json()["dropped"] >= 1
    assert httpx.get(f"{base}/bills/SAL_SaleOrder/NOPE").status_code == 404
    assert httpx.post(f"{base}/faults", json={"faults": [{"kind": "meteor"}]}).status_code == 400


def test_given_latency_fault_when_calling_then_reply_is_delayed(sandbox: RunningSandbox) -> None:
    sandbox.faults.latency_ms = 200
    sandbox.faults.arm("latency", times=1)
    started = time.perf_counter()
    query(sandbox, FormId="BD_Currency", FieldKeys="FNumber", Limit=1)
    assert time.perf_counter() - started >= 0.2


# -- seed data --------------------------------------------------------------------------------

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def uscc_valid(code: str) -> bool:
    """An independent GB 32100-2015 check, written from the standard, not copied from the seed."""
    if len(code) != 18 or any(ch not in USCC_ALPHABET for ch in code):
        return False
    weights = [pow(3, i, 31) for i in range(17)]
    total = sum(USCC_ALPHABET.index(ch) * w for ch, w in zip(code[:17], weights, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31] == code[17]


def test_given_default_scale_when_seeding_then_quick_big_and_realistic() -> None:
    # CPU time of this process, not the wall clock: seeding is CPU work, and on a loaded machine
    # the wall clock measures the other processes too
    started = time.process_time()
    app = create_app(today=TEST_TODAY)
    cpu_s = time.process_time() - started
    state: KingdeeState = app.state.kingdee.data
    assert cpu_s < 5  # typically ≈1 s; the demo starts this
    assert state.count("BD_Customer") >= 2000 and state.count("SAL_SaleOrder") >= 20000
    customers = list(state.tables["bd_customer"].docs.values())
    codes = [c["FSOCIALCRECODE"] for c in customers if c["FSOCIALCRECODE"]]
    assert len(codes) > 0.9 * len(customers) and all(uscc_valid(c) for c in codes)
    assert len(set(codes)) == len(codes)
    names = [c["FName"] for c in customers]
    assert len(set(names)) == len(names)
    assert all(re.search(r"(有限公司|有限责任公司)$", n) for n in names)
    assert any("（" in n for n in names) and any("股份有限公司" in n for n in names)
    midnight = dt.datetime(TEST_TODAY.year, TEST_TODAY.month, TEST_TODAY.day)
    for table in ("bd_customer", "sal_saleorder", "ar_receivable", "ar_receivebill"):
        assert all(d["FModifyDate"] < midnight for d in state.tables[table].docs.values())
    receivables = list(state.tables["ar_receivable"].docs.values())
    overdue = [r for r in receivables if r["FENDDATE_H"] < midnight and r["FNOTWRITTENOFFAMOUNTFOR"] > 0]
    partly = [r for r in receivables if 0 < r["FWRITTENOFFAMOUNTFOR"] < r["FALLAMOUNTFOR"]]
    not_due = [r for r in receivables if r["FENDDATE_H"] >= midnight]
    assert min(len(overdue), len(partly), len(not_due)) > 100
    paid = sum(r["FWRITTENOFFAMOUNTFOR"] for r in receivables)
    received = sum(r["FREALRECAMOUNTFOR"] for r in state.tables["ar_receivebill"].docs.values())
    assert paid == received  # every written-off yuan came in through a receipt


def test_given_same_inputs_when_seeding_twice_then_identical_data() -> None:
    first, second = KingdeeState(today=TEST_TODAY), KingdeeState(today=TEST_TODAY)
    seed_state(first, scale=0.05)
    seed_state(second, scale=0.05)
    for form_id in ("BD_Customer", "SAL_SaleOrder", "AR_receivable", "AR_RECEIVEBILL"):
        numbers = sorted(first.tables[form_id.lower()].by_number)
        assert numbers == sorted(second.tables[form_id.lower()].by_number)
        assert [first.snapshot(form_id, n) for n in numbers[:50]] == [second.snapshot(form_id, n) for n in numbers[:50]]


def test_the_admin_index_lists_every_admin_endpoint(sandbox: RunningSandbox) -> None:
    import httpx

    for path in ("/__sandbox__/", "/__sandbox__"):
        index = httpx.get(sandbox.server.url + path, trust_env=False).json()
        listed = {e["path"] for e in index["endpoints"]}
        assert {"/__sandbox__/state", "/__sandbox__/faults", "/__sandbox__/sessions/expire"} <= listed
        assert all(e["does"] for e in index["endpoints"])
