"""DingTalk client: both token flavours, both envelopes, the error table (§2.3), no secrets out.

Each test gives the client an ``httpx.MockTransport`` handler: a plain function from
request to response playing DingTalk, so the tests say exactly what the platform answers.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import httpx
import pytest
from pydantic import SecretStr

from connectors.dingtalk.client import DingTalkClient, oapi_error
from hub.calls import ExternalCall
from hub.errors import AuthExpiredError, PermanentError, RateLimitedError, RecipientError, RetryableError

SECRET = "s3cr3t-app-secret-never-shown"
OPERATOR = "opUnion0000000000000000iE"
Handler = Callable[[httpx.Request], httpx.Response]


def client(handler: Handler, calls: list[ExternalCall] | None = None, **options: object) -> DingTalkClient:
    return DingTalkClient(app_key="dingkey", app_secret=SecretStr(SECRET), agent_id=77, operator_union_id=OPERATOR,
                          base_url="https://oapi.test", api_base_url="https://api.test",
                          observer=(calls.append if calls is not None else lambda c: None),
                          transport=httpx.MockTransport(handler), max_qps=1000, **options)  # type: ignore[arg-type]


def ok(**data: object) -> httpx.Response:
    return httpx.Response(200, json={"errcode": 0, "errmsg": "ok", **data})


class Platform:
    """A tiny DingTalk: tokens by generation, scripted replies for business calls."""

    def __init__(self) -> None:
        self.oapi_tokens = 0
        self.api_tokens = 0
        self.business: list[httpx.Request] = []
        self.tokens: list[str | None] = []  # the token each business call carried when it arrived
        self.replies: list[httpx.Response] = []
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        with self.lock:
            if path == "/gettoken":
                self.oapi_tokens += 1
                return ok(access_token=f"oapi-{self.oapi_tokens}", expires_in=7200)
            if path == "/v1.0/oauth2/accessToken":
                self.api_tokens += 1
                return httpx.Response(200, json={"accessToken": f"api-{self.api_tokens}", "expireIn": 7200})
            self.business.append(request)
            self.tokens.append(request.url.params.get("access_token")
                               or request.headers.get("x-acs-dingtalk-access-token"))
            return self.replies.pop(0) if self.replies else ok(result={})


def test_oapi_token_is_fetched_once_for_many_threads_and_carried_in_the_query():
    platform = Platform()
    ding = client(platform)
    threads = [threading.Thread(target=ding.get_user, args=("u1",)) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert platform.oapi_tokens == 1 and len(platform.business) == 12
    assert set(platform.tokens) == {"oapi-1"}


def test_v1_token_is_its_own_flavour_in_the_header():
    platform = Platform()
    platform.replies = [httpx.Response(200, json={"id": "t1", "sourceId": "crm-task-1"})]
    found = client(platform).find_todo_by_source("crm-task-1")
    assert found == {"id": "t1", "sourceId": "crm-task-1"}
    (request,) = platform.business
    assert request.headers["x-acs-dingtalk-access-token"] == "api-1" and "access_token" not in request.url.params
    assert request.url.path == f"/v1.0/todo/users/{OPERATOR}/tasks/sources/crm-task-1"
    assert platform.oapi_tokens == 0


@pytest.mark.parametrize("rejection", [
    {"errcode": 40014, "errmsg": "不合法的access_token"},
    {"errcode": 42001, "errmsg": "access_token超时"},
    {"errcode": 88, "sub_code": "40014", "sub_msg": "不合法的access_token",
     "errmsg": "ding talk error[subcode=40014,submsg=不合法的access_token]"},
], ids=["40014", "42001", "88-wrapped"])
def test_a_rejected_oapi_token_is_refreshed_once_bare_or_wrapped_in_88(rejection):
    platform = Platform()
    platform.replies = [httpx.Response(200, json=rejection), ok(result={"userid": "u1", "unionid": "un1"})]
    calls: list[ExternalCall] = []
    user = client(platform, calls).get_user("u1")
    assert user["unionid"] == "un1" and platform.oapi_tokens == 2
    assert platform.tokens == ["oapi-1", "oapi-2"]
    # the refused exchange and the resend are audited separately
    assert [(c.operation, c.outcome, c.attempt) for c in calls if c.operation == "topapi/v2/user/get"] == [
        ("topapi/v2/user/get", "error", 1), ("topapi/v2/user/get", "ok", 2)]


def test_a_token_refused_twice_raises_auth_expired_after_exactly_one_refresh():
    platform = Platform()
    refused = {"errcode": 88, "sub_code": "40014", "sub_msg": "x", "errmsg": "y"}
    platform.replies = [httpx.Response(200, json=refused), httpx.Response(200, json=refused)]
    with pytest.raises(AuthExpiredError, match="after one refresh"):
        client(platform).get_user("u1")
    assert platform.oapi_tokens == 2 and len(platform.business) == 2


def test_v1_invalid_authentication_is_refreshed_once():
    platform = Platform()
    platform.replies = [httpx.Response(400, json={"code": "InvalidAuthentication", "message": "不合法的access_token"}),
                        httpx.Response(200, json={"id": "t9"})]
    assert client(platform).get_todo("t9") == {"id": "t9"}
    assert platform.api_tokens == 2
    assert platform.tokens == ["api-1", "api-2"]


@pytest.mark.parametrize(("reply", "error", "code", "retry_after"), [
    ({"errcode": -1, "errmsg": "系统繁忙"}, RetryableError, "-1", None),
    ({"errcode": 90002, "errmsg": "ip limit", "wait": 400}, RateLimitedError, "90002", 400.0),
    ({"errcode": 90002, "errmsg": "ip limit"}, RateLimitedError, "90002", 300.0),
    ({"status": 1111, "wait": 5}, RateLimitedError, "90002", 5.0),
    ({"errcode": 90018, "errmsg": "qps"}, RateLimitedError, "90018", 1.0),
    ({"errcode": 90019, "errmsg": "isv qps"}, RateLimitedError, "90019", 1.0),
    ({"errcode": 143103, "errmsg": "person-times"}, RateLimitedError, "143103", 60.0),
    ({"errcode": 143104, "errmsg": "corp person-times"}, RateLimitedError, "143104", 60.0),
    ({"errcode": 90020, "errmsg": "quota"}, PermanentError, "90020", None),
    ({"errcode": 22, "errmsg": "Invalid method"}, PermanentError, "22", None),
    ({"errcode": 88, "sub_code": "60011", "sub_msg": "无权限", "errmsg": "x"}, PermanentError, "60011", None),
], ids=lambda v: str(v) if not isinstance(v, dict) else None)
def test_oapi_codes_map_to_the_hub_error_tree(reply, error, code, retry_after):
    platform = Platform()
    platform.replies = [httpx.Response(200, json=reply)]
    with pytest.raises(error) as raised:
        client(platform).list_subdepartments(1)
    assert raised.value.code == code and raised.value.system == "dingtalk"
    assert not isinstance(raised.value, RecipientError)
    if retry_after is not None:
        assert raised.value.retry_after == retry_after  # type: ignore[attr-defined]


@pytest.mark.parametrize("errcode", [33012, 60121])
def test_an_unknown_user_is_a_recipient_error_naming_them(errcode):
    platform = Platform()
    platform.replies = [httpx.Response(200, json={"errcode": errcode, "errmsg": "找不到该用户"})]
    with pytest.raises(RecipientError) as raised:
        client(platform).union_id("ghost01")
    assert raised.value.recipients == ["ghost01"] and raised.value.code == str(errcode)


@pytest.mark.parametrize(("errcode", "says"), [(60011, "developer console"), (60020, "trusted IPs")])
def test_configuration_errors_say_what_to_configure(errcode, says):
    platform = Platform()
    platform.replies = [httpx.Response(200, json={"errcode": errcode, "errmsg": "x"})]
    with pytest.raises(PermanentError, match=says):
        client(platform).get_department(1)


def test_wrong_app_secret_on_gettoken_is_permanent_and_names_the_setting_not_the_secret():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"errcode": 40089, "errmsg": f"invalid appsecret={SECRET}"})

    with pytest.raises(PermanentError) as raised:
        client(handler).check()
    assert "HUB_DINGTALK__APP_SECRET" in str(raised.value) and SECRET not in str(raised.value)


@pytest.mark.parametrize(("status", "body", "error", "code"), [
    (403, {"code": "Forbidden.AccessDenied.QpsLimitForApi", "message": "qps"}, RateLimitedError,
     "Forbidden.AccessDenied.QpsLimitForApi"),
    (400, {"code": "todo.taskCreate.flowControlError", "message": "flowControl"}, RateLimitedError,
     "todo.taskCreate.flowControlError"),
    (403, {"code": "Forbidden.AccessDenied.IpNotInWhiteList", "message": "ip"}, PermanentError,
     "Forbidden.AccessDenied.IpNotInWhiteList"),
    (400, {"code": "todo.taskCreate.paramError", "message": "subject is oversize"}, PermanentError, "HTTP 400"),
    (503, {"code": "ServiceUnavailable", "message": "busy"}, RetryableError, "HTTP 503"),
    (504, None, RetryableError, "HTTP 504"),
])
def test_v1_failures_map_by_code_then_by_status(status, body, error, code):
    platform = Platform()
    platform.replies = [httpx.Response(status, json=body) if body is not None else httpx.Response(status)]
    with pytest.raises(error) as raised:
        client(platform).create_todo({"sourceId": "crm-task-1", "subject": "s"})
    assert raised.value.code == code


def test_a_lookup_of_an_unknown_to_do_finds_nothing():
    platform = Platform()
    platform.replies = [httpx.Response(400, json={"code": "todo.taskQuery.paramError", "message": "task not exist"}),
                        httpx.Response(404, json={"code": "x", "message": "y"})]
    ding = client(platform)
    assert ding.find_todo_by_source("crm-task-404") is None
    assert ding.get_todo("task404") is None


def test_work_notice_goes_to_oapi_with_the_agent_and_its_result_names_who_was_not_reached():
    platform = Platform()
    platform.replies = [ok(task_id=456, request_id="r1"), ok(send_result={
        "invalid_user_id_list": ["ghost"], "forbidden_user_id_list": ["busy"], "failed_user_id_list": [],
        "forbidden_list": [{"code": "143106", "count": 500, "userid": "busy"}], "unread_user_id_list": ["u1"]})]
    ding = client(platform)
    task_id = ding.send_work_notice(["u1", "ghost", "busy"], {"msgtype": "markdown",
                                                              "markdown": {"title": "t", "text": "x"}})
    result = ding.get_send_result(task_id)
    sent = json.loads(platform.business[0].content)
    assert platform.business[0].url.path == "/topapi/message/corpconversation/asyncsend_v2"
    assert sent["agent_id"] == 77 and sent["userid_list"] == "u1,ghost,busy" and sent["to_all_user"] is False
    assert (result.refusal("u1"), result.refusal("ghost"), result.refusal("busy")) == (None, "invalid", "forbidden")
    assert result.forbidden_codes == {"busy": "143106"}


def test_directory_pages_walk_the_integer_cursor_until_has_more_is_false():
    platform = Platform()
    platform.replies = [ok(result={"has_more": True, "next_cursor": 2, "list": [{"userid": "a"}, {"userid": "b"}]}),
                        ok(result={"has_more": False, "list": [{"userid": "c"}]})]
    pages = list(client(platform).iter_user_pages(7, size=2))
    assert [[u["userid"] for u in page] for page in pages] == [["a", "b"], ["c"]]
    assert [json.loads(r.content)["cursor"] for r in platform.business] == [0, 2]


def test_union_ids_are_asked_once_per_client():
    platform = Platform()
    platform.replies = [ok(result={"userid": "u1", "unionid": "un1"})]
    ding = client(platform)
    assert (ding.union_id("u1"), ding.union_id("u1")) == ("un1", "un1")
    assert len(platform.business) == 1


def test_the_errcode_88_envelope_is_unwrapped():
    assert oapi_error({"errcode": 88, "sub_code": "60121", "sub_msg": "找不到该用户", "errmsg": "x"}) == (60121,
                                                                                                       "找不到该用户")
    assert oapi_error({"errcode": 88, "sub_code": "isv.x", "errmsg": "wrapped"}) == (88, "wrapped")
    assert oapi_error({"errcode": 0}) == (0, "no errmsg")


def test_no_secret_or_token_reaches_an_error_or_the_audit():
    calls: list[ExternalCall] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/gettoken":
            return ok(access_token="tok-very-secret-123", expires_in=7200)
        return httpx.Response(500, text=f"upstream failed for {request.url}")

    with pytest.raises(RetryableError) as raised:
        client(handler, calls).get_user("u1")
    text = str(raised.value) + " ".join(str(c) for c in calls)
    assert SECRET not in text and "tok-very-secret-123" not in text
    assert repr(client(handler)) == "DingTalkClient(app_key='dingkey', agent_id=77)"


def test_the_client_keeps_to_its_calls_per_second():
    platform = Platform()
    ding = DingTalkClient(app_key="paced", app_secret=SecretStr(SECRET), agent_id=1, operator_union_id=OPERATOR,
                          base_url="https://oapi.paced", transport=httpx.MockTransport(platform), max_qps=5)
    started = time.monotonic()
    for _ in range(6):
        ding.get_department(1)
    # the sixth call waited for the first to leave the one-second window
    assert time.monotonic() - started >= 1.0 and ding.pacer.waited_s > 0.5
