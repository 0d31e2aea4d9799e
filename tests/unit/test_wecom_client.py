"""WeCom client: error classification, token single-flight and refresh-once, sandbox faults."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from pydantic import SecretStr

from connectors.kit.sandbox import serve_in_thread
from connectors.wecom.client import SendOutcome, WeComClient, clean_errmsg
from connectors.wecom.sandbox import (
    SANDBOX_AGENT_ID,
    SANDBOX_CORP_ID,
    SANDBOX_SECRET,
    demo_directory,
    make_sandbox,
)
from hub.calls import ExternalCall
from hub.errors import (
    AuthExpiredError,
    PermanentError,
    RateLimitedError,
    RecipientError,
    RetryableError,
)
from tests.support.threads import run_together

SECRET = "s3cr3t-app-secret-value"
TOKEN_PREFIX = "tok-"
REAL_TAIL = ", hint: [1700000000123], from ip: 203.0.113.9, more info at https://open.work.weixin.qq.com/devtool/query?e="


def ok(**fields: object) -> httpx.Response:
    return httpx.Response(200, json={"errcode": 0, "errmsg": "ok", **fields})


def error(code: int, text: str) -> httpx.Response:
    return httpx.Response(200, json={"errcode": code, "errmsg": f"{text}{REAL_TAIL}{code}"})


class FakeWeCom:
    """A MockTransport handler: gettoken issues tok-1, tok-2...; business calls use ``reply``."""

    def __init__(self, reply: Callable[[httpx.Request, str], httpx.Response]) -> None:
        self.reply = reply
        self.gettoken_calls = 0
        self.business_calls = 0
        self.expired: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/cgi-bin/gettoken":
            with self.lock:
                self.gettoken_calls += 1
                n = self.gettoken_calls
            return ok(access_token=f"{TOKEN_PREFIX}{n}", expires_in=7200)
        with self.lock:
            self.business_calls += 1
        token = request.url.params.get("access_token", "")
        if token in self.expired:
            return error(42001, "access_token expired")
        return self.reply(request, token)


def make_client(handler: Callable[[httpx.Request], httpx.Response], **kwargs: object) -> WeComClient:
    return WeComClient(
        corp_id="wwtest", secret=SecretStr(SECRET), agent_id=1000002,
        transport=httpx.MockTransport(handler), **kwargs,  # type: ignore[arg-type]
    )


def raise_(exc: Exception) -> Callable[[httpx.Request, str], httpx.Response]:
    def reply(request: httpx.Request, token: str) -> httpx.Response:
        raise exc
    return reply


# ---------------------------------------------------------------- classification

@pytest.mark.parametrize(
    ("reply", "expected", "code"),
    [
        (lambda r, t: error(-1, "system busy"), RetryableError, "-1"),
        (lambda r, t: error(45009, "api freq out of limit"), RateLimitedError, "45009"),
        (lambda r, t: error(45033, "api concurrent out of limit"), RateLimitedError, "45033"),
        (lambda r, t: error(60011, "no privilege to access/modify contact/party/agent"), PermanentError, "60011"),
        (lambda r, t: error(60111, "userid not found"), PermanentError, "60111"),
        (lambda r, t: httpx.Response(500, text="oops"), RetryableError, "HTTP 500"),
        (lambda r, t: httpx.Response(504), RetryableError, "HTTP 504"),
        (lambda r, t: httpx.Response(200, text="<html>502 Bad Gateway</html>"), RetryableError, "bad_json"),
        (raise_(httpx.ReadTimeout("timed out")), RetryableError, "timeout"),
        (raise_(httpx.ConnectError("[Errno 111] Connection refused")), RetryableError, "transport"),
        (lambda r, t: httpx.Response(403, text="forbidden"), PermanentError, "HTTP 403"),
        (lambda r, t: httpx.Response(408), RetryableError, "HTTP 408"),  # the kit's one rule (RFC 9110)
        (lambda r, t: httpx.Response(429, headers={"Retry-After": "7"}), RateLimitedError, "HTTP 429"),
    ],
    ids=["busy", "45009", "45033", "60011", "60111", "http500", "http504", "html", "timeout", "connect", "http403",
         "http408", "http429"],
)
def test_errors_are_classified_into_the_hub_tree(reply, expected, code):
    # given a WeCom that answers the business call with a failure
    fake = FakeWeCom(reply)
    client = make_client(fake)
    # when the client calls it, then the failure arrives as the right hub error class
    with pytest.raises(expected) as caught:
        client.get_user("zhangsan")
    assert type(caught.value) is expected
    assert caught.value.code == code
    assert caught.value.system == "wecom" and caught.value.operation == "user/get"
    # and nothing secret is in the text: no app secret, no token, no URL
    text = str(caught.value)
    assert SECRET not in text and TOKEN_PREFIX not in text
    assert "://" not in text and "access_token=" not in text and "from ip" not in text


@pytest.mark.parametrize(("code", "low", "high"), [(45009, 59, 61), (45033, 0.5, 10)])
def test_rate_limit_waits_match_the_wecom_windows(code, low, high):
    # given 45009 (minute window) or 45033 (concurrency)
    def reply(request: httpx.Request, token: str) -> httpx.Response:
        return error(code, "limited")
    client = make_client(FakeWeCom(reply))
    with pytest.raises(RateLimitedError) as caught:
        client.get_follow_user_list()
    # then the retry_after is about a minute for 45009 and short for 45033
    assert low <= caught.value.retry_after <= high


def test_errmsg_keeps_the_hint_and_drops_the_ip_tail():
    text = clean_errmsg("user & party & tag all invalid, hint: [1639718553304012608876854], from ip: 47.97.100.79, "
                        "more info at https://open.work.weixin.qq.com/devtool/query?e=81013")
    assert text == "user & party & tag all invalid, hint: [1639718553304012608876854]"
    assert clean_errmsg("access_token expired hint: [xJzlnA0121vr63!]") == "access_token expired hint: [xJzlnA0121vr63!]"


def test_gettoken_with_a_wrong_secret_is_permanent_not_auth_expired():
    # given a WeCom refusing the app secret (40001 on gettoken)
    def handler(request: httpx.Request) -> httpx.Response:
        return error(40001, "invalid credential")
    client = make_client(handler)
    # when any call needs a token, then it is a permanent (configuration) error, without the secret
    with pytest.raises(PermanentError) as caught:
        client.get_follow_user_list()
    assert not isinstance(caught.value, AuthExpiredError)
    assert caught.value.operation == "gettoken" and caught.value.code == "40001"
    assert SECRET not in str(caught.value)


def test_every_exchange_is_reported_to_the_observer_with_attempts():
    # given a WeCom that expires the first token after it was issued
    calls: list[ExternalCall] = []
    fake = FakeWeCom(lambda r, t: ok(userid="zhangsan", name="张三"))
    client = make_client(fake, observer=calls.append)
    client.get_user("zhangsan")
    fake.expired.add(f"{TOKEN_PREFIX}1")
    # when a call hits the expired token
    client.get_user("zhangsan")
    # then the audit sees: gettoken, user/get ok, user/get rejected (attempt 1), gettoken, user/get ok (attempt 2)
    assert [(c.operation, c.outcome, c.attempt) for c in calls] == [
        ("gettoken", "ok", 1), ("user/get", "ok", 1),
        ("user/get", "error", 1), ("gettoken", "ok", 1), ("user/get", "ok", 2),
    ]
    assert all(c.system == "wecom" and c.http_status == 200 for c in calls)
    assert all(SECRET not in (c.error or "") and TOKEN_PREFIX not in (c.error or "") for c in calls)


def test_httpx_request_logs_do_not_leak_the_secret_or_token(caplog):
    # given httpx logging every request URL at INFO
    caplog.set_level("INFO", logger="httpx")
    client = make_client(FakeWeCom(lambda r, t: ok(follow_user=[])))
    # when a call fetches a token and uses it
    client.get_follow_user_list()
    # then the log lines exist but carry neither the app secret nor the token
    assert "HTTP Request" in caplog.text
    assert SECRET not in caplog.text and f"{TOKEN_PREFIX}1" not in caplog.text
    assert "corpsecret=***" in caplog.text and "access_token=***" in caplog.text


# ---------------------------------------------------------------- token: single flight, refresh once

def test_twenty_threads_on_a_cold_cache_fetch_one_token():
    # given a client without a token and a slow gettoken
    fake = FakeWeCom(lambda r, t: ok(follow_user=[]))
    original = fake.__call__

    def slow(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("gettoken"):
            time.sleep(0.05)
        return original(request)
    client = make_client(slow)
    # when 20 threads call at once, then exactly one gettoken is sent
    assert run_together(20, client.get_follow_user_list) == []
    assert fake.gettoken_calls == 1
    assert fake.business_calls == 20


def test_twenty_threads_on_an_expired_token_refresh_once():
    # given a warm client whose token the server has just expired
    def reply(request: httpx.Request, token: str) -> httpx.Response:
        time.sleep(0.02)  # keep the 20 rejected calls overlapping
        return ok(follow_user=["zhangsan"])
    fake = FakeWeCom(reply)
    client = make_client(fake)
    client.get_follow_user_list()
    fake.expired.add(f"{TOKEN_PREFIX}1")
    # when 20 threads call at once and all get 42001
    assert run_together(20, client.get_follow_user_list) == []
    # then one refresh served all of them
    assert fake.gettoken_calls == 2


def test_token_expiring_locally_is_refetched_before_use():
    # given a token that lives 100 s on a controllable clock
    now = [1000.0]
    fake = FakeWeCom(lambda r, t: ok(follow_user=[]))

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("gettoken"):
            fake.gettoken_calls += 1
            return ok(access_token=f"{TOKEN_PREFIX}{fake.gettoken_calls}", expires_in=100)
        return fake(request)
    client = make_client(handler, clock=lambda: now[0])
    client.get_follow_user_list()
    # when time passes beyond the usable part of its life, then the next call fetches a new token
    now[0] += 49
    client.get_follow_user_list()
    assert fake.gettoken_calls == 1
    now[0] += 2
    client.get_follow_user_list()
    assert fake.gettoken_calls == 2


def test_always_42001_refreshes_exactly_once_then_gives_up():
    # given a WeCom that rejects every token (wechatpy would loop ~970 times, §1.6)
    fake = FakeWeCom(lambda r, t: error(42001, "access_token expired"))
    client = make_client(fake)
    # when a call is made, then after one refresh it raises AuthExpiredError
    with pytest.raises(AuthExpiredError) as caught:
        client.get_user("zhangsan")
    assert fake.gettoken_calls == 2  # initial + one refresh
    assert fake.business_calls == 2  # first try + one retry
    assert "after one refresh" in str(caught.value)


def test_40014_is_refreshed_like_42001():
    fake = FakeWeCom(lambda r, t: error(40014, "invalid access_token") if t.endswith("-1") else ok(follow_user=["a"]))
    client = make_client(fake)
    assert client.get_follow_user_list() == ["a"]
    assert fake.gettoken_calls == 2


# ---------------------------------------------------------------- message/send shapes

def test_send_message_body_and_outcome():
    # given a WeCom that reports one unknown user (lower-cased, as WeCom does)
    seen: dict[str, object] = {}

    def reply(request: httpx.Request, token: str) -> httpx.Response:
        seen.update(json.loads(request.content))
        return ok(invaliduser="ghost", invalidparty="", invalidtag="", unlicenseduser="", msgid="m-1")
    client = make_client(FakeWeCom(reply))
    card = {"msgtype": "text", "text": {"content": "跟进 苏州恒瑞"}}
    # when sending to two users with the duplicate check on
    outcome = client.send_message(["zhangsan", "Ghost"], card, enable_duplicate_check=True, duplicate_check_interval=600)
    # then the wire body is WeCom's and the outcome separates delivered from invalid users
    assert seen == {"touser": "zhangsan|Ghost", "agentid": 1000002, "msgtype": "text",
                    "text": {"content": "跟进 苏州恒瑞"}, "enable_duplicate_check": 1, "duplicate_check_interval": 600}
    assert outcome == SendOutcome(msgid="m-1", invalid_users=("ghost",), unlicensed_users=(),
                                  delivered_users=("zhangsan",))


def test_81013_becomes_recipient_error_with_the_refused_ids():
    client = make_client(FakeWeCom(lambda r, t: httpx.Response(200, json={
        "errcode": 81013, "errmsg": f"user & party & tag all invalid{REAL_TAIL}81013",
        "invaliduser": "ghost", "unlicenseduser": "nolicense"})))
    with pytest.raises(RecipientError) as caught:
        client.send_message(["Ghost", "nolicense"], {"msgtype": "text", "text": {"content": "x"}})
    assert caught.value.recipients == ["ghost", "nolicense"]
    assert caught.value.code == "81013"


@pytest.mark.parametrize("interval", [0, 14401])
def test_duplicate_check_interval_outside_wecom_bounds_is_refused_locally(interval):
    client = make_client(FakeWeCom(lambda r, t: ok()))
    with pytest.raises(ValueError):
        client.send_message(["a"], {"msgtype": "text", "text": {"content": "x"}},
                            enable_duplicate_check=True, duplicate_check_interval=interval)


# ---------------------------------------------------------------- against the sandbox

@pytest.fixture(scope="module")
def sandbox() -> Iterator[tuple[str, object]]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NO_PROXY", "127.0.0.1,localhost")
        mp.setenv("no_proxy", "127.0.0.1,localhost")
        app = make_sandbox()
        with serve_in_thread(app) as server:
            yield server.url, app
        app.state.faults.clear()


@pytest.fixture
def client(sandbox) -> Iterator[WeComClient]:
    url, app = sandbox
    app.state.faults.clear()
    with WeComClient(corp_id=SANDBOX_CORP_ID, secret=SecretStr(SANDBOX_SECRET), agent_id=SANDBOX_AGENT_ID,
                     base_url=url, timeout=2.0) as wecom:
        yield wecom
    app.state.faults.clear()


def _arm(app, kind: str, operation: str, **extra: object) -> None:
    app.state.faults.configure({"clear": True, **extra, "faults": [{"kind": kind, "times": 1, "operations": [operation]}]})


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("busy", RetryableError), ("rate_limit", RateLimitedError), ("http_500", RetryableError)],
)
def test_sandbox_faults_arrive_as_hub_errors(sandbox, client, kind, expected):
    # given a sandbox fault armed on user/get
    _, app = sandbox
    client.get_follow_user_list()  # warm the token
    _arm(app, kind, "user/get")
    # when the client calls user/get, then the fault surfaces as the mapped error class
    with pytest.raises(expected) as caught:
        client.get_user(demo_directory()[0].userid)
    assert type(caught.value) is expected
    # and the next call succeeds (faults fire once)
    assert client.get_user(demo_directory()[0].userid)["userid"] == demo_directory()[0].userid


def test_sandbox_timeout_is_retryable(sandbox):
    _, app = sandbox
    url = sandbox[0]
    _arm(app, "timeout", "user/get", timeout_s=1.0)
    with WeComClient(corp_id=SANDBOX_CORP_ID, secret=SecretStr(SANDBOX_SECRET), agent_id=SANDBOX_AGENT_ID,
                     base_url=url, timeout=0.3) as fast, pytest.raises(RetryableError) as caught:
        fast.get_user("anyone")
    assert "no response within 0.3 s" in str(caught.value)
    app.state.faults.clear()


def test_sandbox_auth_expired_is_refreshed_transparently(sandbox, client):
    # given a warm client and a sandbox that expires all tokens on the next user/get
    _, app = sandbox
    client.get_follow_user_list()
    issued = app.state.wecom.tokens_issued
    _arm(app, "auth_expired", "user/get")
    # when the client calls user/get, then it refreshes once and succeeds
    assert client.get_user(demo_directory()[1].userid)["name"] == demo_directory()[1].name
    assert app.state.wecom.tokens_issued == issued + 1


def test_sandbox_drop_response_applies_the_send_and_raises_retryable(sandbox, client):
    # given a dropped reply on message/send
    _, app = sandbox
    rep = next(u for u in demo_directory() if u.is_sales_rep and u.status == 1)
    before = len(app.state.wecom.message_log(rep.userid))
    _arm(app, "drop_response", "message/send")
    # when a message is sent, then the client cannot know the outcome (Retryable)...
    with pytest.raises(RetryableError) as caught:
        client.send_message([rep.userid], {"msgtype": "text", "text": {"content": "drop test"}})
    assert caught.value.code == "HTTP 504"
    # ...although the sandbox did deliver it
    assert len(app.state.wecom.message_log(rep.userid)) == before + 1


def test_sandbox_directory_and_contacts_round_trip(client):
    users = demo_directory()
    # user/list_id pages with small pages: every member once, in spite of multi-membership rows
    ids = client.list_user_ids(limit=7)
    assert sorted(ids) == sorted(u.userid for u in users)
    assert len(client.department_list()) == 10
    assert {d["id"] for d in client.department_simplelist(2)} == {2, 3, 4, 5, 6, 7}
    rep = next(u for u in users if u.is_sales_rep and u.status == 1)
    assert client.get_userid_by_mobile(rep.mobile) == rep.userid
    assert client.get_userid_by_mobile("19900000000") is None
    follow = client.get_follow_user_list()
    assert rep.userid in follow
    ext_ids = client.list_external_contacts(rep.userid)
    detail = client.get_external_contact(ext_ids[0])
    assert detail["external_contact"]["external_userid"] == ext_ids[0]
    assert any(f["userid"] == rep.userid for f in detail["follow_user"])
    # batch/get_by_user cursors walk all relations of the chosen reps
    page = client.batch_get_external_contacts([rep.userid], limit=3)
    rows = list(page.items)
    while page.next_cursor:
        page = client.batch_get_external_contacts([rep.userid], cursor=page.next_cursor, limit=3)
        rows.extend(page.items)
    assert sorted(r["external_contact"]["external_userid"] for r in rows) == sorted(ext_ids)


def test_sandbox_send_partial_and_all_invalid(client):
    rep = next(u for u in demo_directory() if u.is_sales_rep and u.status == 1)
    card = {"msgtype": "markdown", "markdown": {"content": "**跟进** 客户"}}
    outcome = client.send_message([rep.userid, "NoSuchUser"], card)
    assert outcome.invalid_users == ("nosuchuser",) and outcome.delivered_users == (rep.userid,)
    with pytest.raises(RecipientError) as caught:
        client.send_message(["NoSuchUser"], card)
    assert caught.value.recipients == ["nosuchuser"]


def test_sandbox_schedule_add_get_delete(client):
    rep = next(u for u in demo_directory() if u.is_sales_rep and u.status == 1)
    start = dt.datetime(2024, 5, 8, 15, 0, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    schedule_id = client.add_schedule(organizer=None, attendees=[rep.userid], start=start,
                                      end=start + dt.timedelta(minutes=30), summary="回访 苏州恒瑞")
    [stored] = client.get_schedules([schedule_id])
    assert stored["summary"] == "回访 苏州恒瑞" and stored["start_time"] == int(start.timestamp())
    client.delete_schedule(schedule_id)
    assert client.get_schedules([schedule_id]) == []
