"""KingdeeClient: envelopes, error classification, re-login; against MockTransport and the sandbox."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from connectors.kingdee.client import KingdeeBusinessError, KingdeeClient, RecordOutcome, SaveResult
from connectors.kingdee.sandbox.auth import SANDBOX_CREDENTIALS as CREDS
from connectors.kingdee.sandbox.auth import verify_signed_headers
from connectors.kingdee.sandbox.testing import RunningSandbox, running_sandbox
from hub.calls import ExternalCall
from hub.errors import AuthExpiredError, PermanentError, RateLimitedError, RetryableError

BASE = "https://erp.example.com/k3cloud/"
SESSION_LOST = {"Result": {"ResponseStatus": {
    "ErrorCode": 500, "IsSuccess": False, "MsgCode": 1,
    "Errors": [{"FieldName": None, "Message": "会话信息已丢失，请重新登录", "DIndex": 0}],
    "SuccessEntitys": [], "SuccessMessages": []}}}
Handler = Callable[[httpx.Request], httpx.Response]


def mock_client(handler: Handler, *, auth_mode: str = "signed", calls: list[ExternalCall] | None = None,
                secret: str = CREDS.app_secret) -> KingdeeClient:
    return KingdeeClient(
        base_url=BASE, acct_id=CREDS.acct_id, username=CREDS.username, app_id=CREDS.app_id,
        app_secret=SecretStr(secret), auth_mode=auth_mode,  # type: ignore[arg-type]
        observer=(calls.append if calls is not None else lambda call: None),
        transport=httpx.MockTransport(handler),
    )


def method_of(request: httpx.Request) -> str:
    return request.url.path.rsplit("/", 1)[-1].removesuffix(".common.kdsvc").rsplit(".", 1)[-1]


def reply(payload: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(200, content=json.dumps(payload, ensure_ascii=False).encode(), headers=headers)


# -- envelopes and signing (MockTransport) ---------------------------------------------------

def test_given_signed_mode_when_querying_then_headers_verify_and_rows_come_back_keyed() -> None:
    seen: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        check = verify_signed_headers(headers, request.url.path, CREDS, strict=True)
        assert check.ok, check.reason
        seen.append(json.loads(request.content))
        return reply([["CUST00001", "华东客户有限公司", "2024-05-01T10:00:00"]])

    client = mock_client(handler)
    rows = client.execute_bill_query("BD_Customer", ["FNumber", "FName", "FModifyDate"], "FNumber = 'x'",
                                     "FNumber ASC", limit=5000)
    assert rows == [{"FNumber": "CUST00001", "FName": "华东客户有限公司", "FModifyDate": "2024-05-01T10:00:00"}]
    data = seen[0]["data"]
    assert data["FormId"] == "BD_Customer"
    assert data["FieldKeys"] == "FNumber,FName,FModifyDate"
    assert data["Limit"] == 2000  # never more than the documented maximum
    assert data["TopRowCount"] == 0


def test_given_wrapped_query_error_when_querying_then_business_error_with_message() -> None:
    wrapped = [[{"Result": {"ResponseStatus": {"ErrorCode": 500, "IsSuccess": False, "MsgCode": 0, "Errors": [
        {"FieldName": None, "Message": "元数据中标识为FXX的字段不存在", "DIndex": 0}]}}}]]
    client = mock_client(lambda request: reply(wrapped))
    with pytest.raises(KingdeeBusinessError, match="元数据中标识为FXX的字段不存在") as info:
        client.execute_bill_query("BD_Customer", ["FXX"])
    assert isinstance(info.value, PermanentError) and not info.value.retryable


def test_given_save_success_when_saving_then_id_and_number() -> None:
    payload = {"Result": {"ResponseStatus": {"IsSuccess": True, "Errors": [], "MsgCode": 0,
                                             "SuccessEntitys": [{"Id": 100231, "Number": "C001", "DIndex": 0}]},
                          "Id": 100231, "Number": "C001", "NeedReturnData": [{}]}}
    client = mock_client(lambda request: reply(payload))
    assert client.save("BD_Customer", {"FName": "客户"}) == SaveResult(100231, "C001")


def test_given_business_errors_when_saving_then_permanent_error_names_field_message_and_index() -> None:
    payload = {"Result": {"ResponseStatus": {"ErrorCode": 500, "IsSuccess": False, "MsgCode": 9, "Errors": [
        {"FieldName": "FCustId", "Message": "“客户”字段的值“C999”在客户中不存在", "DIndex": 0},
        {"FieldName": "FBillNo", "Message": "编号重复", "DIndex": 0}]}}}
    client = mock_client(lambda request: reply(payload))
    with pytest.raises(KingdeeBusinessError) as info:
        client.save("SAL_SaleOrder", {"FBillNo": "CRM-1"})
    error = info.value
    assert error.code == "MsgCode 9"
    assert error.external_id == "CRM-1"
    assert "FCustId: “客户”字段的值“C999”在客户中不存在 [DIndex 0]" in str(error)
    assert [(e.field, e.index) for e in error.field_errors] == [("FCustId", 0), ("FBillNo", 0)]


def test_given_partly_failed_batch_when_batch_saving_then_outcome_per_record() -> None:
    payload = {"Result": {"ResponseStatus": {"ErrorCode": 500, "IsSuccess": False, "MsgCode": 0,
               "Errors": [{"FieldName": "FName", "Message": "“客户名称”是必填项", "DIndex": 1}],
               "SuccessEntitys": [{"Id": 1, "Number": "A", "DIndex": 0}, {"Id": 3, "Number": "C", "DIndex": 2}]}}}
    client = mock_client(lambda request: reply(payload))
    outcomes = client.batch_save("BD_Customer", [{}, {}, {}])
    assert outcomes[0] == RecordOutcome(0, 1, "A")
    assert not outcomes[1].ok and outcomes[1].errors[0].field == "FName"
    assert outcomes[2].ok and outcomes[2].number == "C"


def test_given_status_operation_when_called_with_ids_then_ids_travel_as_comma_string() -> None:
    bodies: list[Any] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return reply({"Result": {"ResponseStatus": {"IsSuccess": True, "Errors": [], "MsgCode": 0,
                                                    "SuccessEntitys": [{"Id": 5, "Number": "X", "DIndex": 0}]}}})

    client = mock_client(handler)
    assert client.audit("SAL_SaleOrder", ids=[5, 6])[0].number == "X"
    assert bodies[0] == {"formid": "SAL_SaleOrder", "data": {"CreateOrgId": 0, "Numbers": [], "Ids": "5,6"}}


@pytest.mark.parametrize(("status", "body", "error", "code"), [
    (500, "服务器内部错误", RetryableError, "HTTP 500"),
    (502, "", RetryableError, "HTTP 502"),
    (503, "response_error:服务器繁忙", RetryableError, "HTTP 503"),
    (504, "", RetryableError, "HTTP 504"),
    (408, "", RetryableError, "HTTP 408"),
    (429, "", RateLimitedError, "HTTP 429"),
    (200, "response_error:执行超时已过期。", RetryableError, "response_error"),
    (200, "", RetryableError, "empty_body"),
    (200, "<html>gateway</html>", RetryableError, "bad_json"),
    (404, "Not Found", PermanentError, "HTTP 404"),
    (403, "", PermanentError, "HTTP 403"),
])
def test_given_transport_level_failures_when_calling_then_classified(
    status: int, body: str, error: type[Exception], code: str,
) -> None:
    client = mock_client(lambda request: httpx.Response(status, text=body))
    with pytest.raises(error) as info:
        client.submit("SAL_SaleOrder", ["XSDD000001"])
    assert info.value.code == code  # type: ignore[attr-defined]
    assert type(info.value) is not KingdeeBusinessError


@pytest.mark.parametrize(("exc", "code"), [
    (httpx.ReadTimeout("slow"), "timeout"),
    (httpx.ConnectTimeout("slow"), "timeout"),
    (httpx.ConnectError("refused"), "transport"),
    (httpx.RemoteProtocolError("peer closed"), "transport"),
])
def test_given_network_errors_when_calling_then_retryable(exc: Exception, code: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    with pytest.raises(RetryableError) as info:
        mock_client(handler).execute_bill_query("BD_Customer", ["FNumber"])
    assert info.value.code == code


# -- re-login (MockTransport) ------------------------------------------------------------------

def test_given_signed_mode_and_lost_session_twice_when_calling_then_one_retry_then_auth_expired() -> None:
    requests: list[dict[str, str]] = []  # headers as sent (the auth re-sends the same Request object)
    calls: list[ExternalCall] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(dict(request.headers))
        return reply(SESSION_LOST, {"Set-Cookie": "kdservice-sessionid=stale-sid; path=/"})

    client = mock_client(handler, calls=calls)
    client.auth.adopt({"kdservice-sessionid": "stale-sid"})  # as if an earlier reply had issued it
    with pytest.raises(AuthExpiredError, match="会话信息已丢失") as info:
        client.submit("SAL_SaleOrder", ["XSDD000001"])
    assert len(requests) == 2
    assert requests[0].get("kdservice-sessionid") == "stale-sid"
    assert "kdservice-sessionid" not in requests[1]  # the retry re-authenticates by signature
    assert info.value.code == "MsgCode 1"
    assert [(c.operation, c.outcome) for c in calls] == [("Submit", "error"), ("Submit", "error")]
    texts = [str(info.value), *(c.error or "" for c in calls)]
    assert not any(CREDS.app_secret in t or "stale-sid" in t for t in texts)


class SessionServer:
    """A MockTransport handler modelling login + session expiry, counting logins."""

    def __init__(self, threads: int = 1) -> None:
        self.valid_sid = ""
        self.logins = 0
        self.lock = threading.Lock()
        self.barrier = threading.Barrier(threads, timeout=5)
        self.hold_stale = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        method = method_of(request)
        if method == "LoginByAppSecret":
            body = json.loads(request.content)
            if body["appsecret"] != CREDS.app_secret:
                return reply({"LoginResultType": 0, "Message": "用户名或密码错误", "IsSuccessByAPI": False})
            with self.lock:
                self.logins += 1
                self.valid_sid = f"sid-{self.logins}"
                sid = self.valid_sid
            return reply({"LoginResultType": 1, "KDSVCSessionId": sid, "IsSuccessByAPI": True},
                         {"Set-Cookie": f"kdservice-sessionid={sid}; path=/"})
        cookie = request.headers.get("Cookie", "")
        if f"kdservice-sessionid={self.valid_sid}" not in cookie or not self.valid_sid:
            if self.hold_stale:
                self.barrier.wait()  # every thread sees the expiry before anyone logs in again
            return reply(SESSION_LOST)
        return reply([["PRE001"]])


def test_given_session_mode_when_first_call_then_logs_in_once_and_reuses_the_session() -> None:
    server = SessionServer()
    client = mock_client(server, auth_mode="session")
    for _ in range(3):
        assert client.execute_bill_query("BD_Currency", ["FNumber"]) == [{"FNumber": "PRE001"}]
    assert server.logins == 1


def test_given_n_threads_on_an_expired_session_when_calling_then_exactly_one_relogin() -> None:
    threads = 8
    server = SessionServer(threads)
    client = mock_client(server, auth_mode="session")
    client.execute_bill_query("BD_Currency", ["FNumber"])  # login #1
    server.valid_sid = "expired-on-the-server"
    server.hold_stale = True
    results: list[Any] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(client.execute_bill_query("BD_Currency", ["FNumber"]))
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(10)
    assert not errors
    assert results == [[{"FNumber": "PRE001"}]] * threads
    assert server.logins == 2  # the first login plus exactly one re-login for all threads
    assert client.auth.logins == 2


def test_given_wrong_secret_in_session_mode_when_calling_then_auth_expired_without_the_secret() -> None:
    server = SessionServer()
    client = mock_client(server, auth_mode="session", secret="0" * 32)
    with pytest.raises(AuthExpiredError, match="login refused") as info:
        client.execute_bill_query("BD_Currency", ["FNumber"])
    assert "0" * 32 not in str(info.value)


# -- against the sandbox over real HTTP ----------------------------------------------------------

# `server` / `sandbox` fixtures: tests/unit/conftest.py (shared by the Kingdee modules)


def test_given_sandbox_when_paging_customers_then_every_customer_once_in_order(sandbox: RunningSandbox) -> None:
    client = sandbox.client()
    pages = list(client.query_pages("BD_Customer", ["FCUSTID", "FNumber"], order_string="FCUSTID ASC", page_size=7))
    numbers = [row["FNumber"] for page in pages for row in page]
    # the seed holds the demo universe's 24 customer companies even at the smallest scale
    assert [len(p) for p in pages] == [7, 7, 7, 3]
    assert numbers == sorted(numbers) and len(set(numbers)) == sandbox.state.count("BD_Customer") == 24


def test_given_session_mode_when_sessions_expire_then_client_relogs_in_once(sandbox: RunningSandbox) -> None:
    calls: list[ExternalCall] = []
    client = sandbox.client(auth_mode="session", observer=calls.append)
    client.check()
    sandbox.sandbox.expire_sessions()
    client.check()
    assert client.auth.logins == 2
    assert [(c.operation, c.outcome) for c in calls] == [
        ("LoginByAppSecret", "ok"), ("ExecuteBillQuery", "ok"),
        ("ExecuteBillQuery", "error"), ("LoginByAppSecret", "ok"), ("ExecuteBillQuery", "ok"),
    ]


def test_given_signed_mode_and_strict_server_when_session_lost_then_recovers_by_resigning() -> None:
    with running_sandbox(scale=0.01, stale_signed_session="fail", strict_signatures=True) as running:
        calls: list[ExternalCall] = []
        client = running.client(observer=calls.append)
        client.check()
        assert client.auth.has_session
        running.sandbox.expire_sessions()
        client.check()
        assert [c.outcome for c in calls] == ["ok", "error", "ok"]
        assert calls[1].error == "session lost (MsgCode 1); re-authenticating once"


def test_given_wrong_app_secret_when_calling_sandbox_then_auth_expired(sandbox: RunningSandbox) -> None:
    client = sandbox.client(app_secret="f" * 32)
    with pytest.raises(AuthExpiredError, match="签名验证失败") as info:
        client.check()
    assert "f" * 32 not in str(info.value)


@pytest.mark.parametrize(("fault", "code"), [
    ("http_500", "HTTP 500"),
    ("timeout", "timeout"),
    ("rate_limit", "HTTP 503"),
    ("busy", "response_error"),
    ("drop_response", "HTTP 504"),
])
def test_given_injected_fault_when_calling_then_retryable_error(sandbox: RunningSandbox, fault: str, code: str) -> None:
    sandbox.faults.timeout_s = 0.6
    client = sandbox.client(timeout=0.3)
    sandbox.faults.arm(fault, times=1, operations=["executebillquery"])
    with pytest.raises(RetryableError) as info:
        client.execute_bill_query("BD_Customer", ["FNumber"], limit=1)
    assert info.value.code == code
    assert client.execute_bill_query("BD_Customer", ["FNumber"], limit=1)  # the next call is served


@pytest.mark.parametrize("auth_mode", ["signed", "session"])
def test_given_auth_expired_fault_when_calling_then_recovered_transparently(
    sandbox: RunningSandbox, auth_mode: str,
) -> None:
    client = sandbox.client(auth_mode=auth_mode)  # type: ignore[arg-type]
    client.check()
    sandbox.faults.arm("auth_expired", times=1)
    assert client.execute_bill_query("BD_Customer", ["FNumber"], limit=1)
    assert client.auth.logins == (2 if auth_mode == "session" else 0)


def test_given_drop_response_on_save_when_saving_then_retryable_but_the_save_happened(sandbox: RunningSandbox) -> None:
    client = sandbox.client()
    sandbox.faults.arm("drop_response", times=1, operations=["save"])
    with pytest.raises(RetryableError, match="HTTP 504"):
        client.save("BD_Customer", {"FNumber": "DROP001", "FName": "宁波丢包测试有限公司"})
    assert sandbox.state.snapshot("BD_Customer", "DROP001") is not None


def test_given_sandbox_when_batch_saving_then_partial_success_by_index(sandbox: RunningSandbox) -> None:
    client = sandbox.client()
    outcomes = client.batch_save("BD_Customer", [
        {"FNumber": "B001", "FName": "成都批量一号有限公司"},
        {"FNumber": "B002"},
        {"FNumber": "B001", "FName": "重复编号有限公司"},
    ])
    assert [o.ok for o in outcomes] == [True, False, False]
    assert outcomes[1].errors[0].field == "FName"
    assert outcomes[2].errors[0].field == "FNumber"
    assert sandbox.state.snapshot("BD_Customer", "B001")["FName"] == "成都批量一号有限公司"  # type: ignore[index]


def test_given_sandbox_when_running_status_machine_then_rules_hold(sandbox: RunningSandbox) -> None:
    client = sandbox.client()
    saved = client.save("BD_Customer", {"FNumber": "S001", "FName": "武汉状态机有限公司"})
    assert client.view("BD_Customer", number="S001")["DocumentStatus"] == "A"
    with pytest.raises(KingdeeBusinessError, match="不允许审核"):
        client.audit("BD_Customer", ["S001"])
    client.submit("BD_Customer", ids=[saved.id])
    client.audit("BD_Customer", ["S001"])
    with pytest.raises(KingdeeBusinessError, match="不允许删除"):
        client.delete("BD_Customer", ["S001"])
    client.unaudit("BD_Customer", ["S001"])
    assert client.view("BD_Customer", id=saved.id)["DocumentStatus"] == "D"
    client.delete("BD_Customer", ["S001"])
    with pytest.raises(KingdeeBusinessError, match="不存在"):
        client.view("BD_Customer", number="S001")
