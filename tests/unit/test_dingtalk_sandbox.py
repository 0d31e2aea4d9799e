"""The DingTalk sandbox over real HTTP: DingTalk's envelopes, tokens, scope, paging, limits and rules."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from connectors.dingtalk.sandbox import (
    SANDBOX_AGENT_ID,
    SANDBOX_APP_KEY,
    SANDBOX_APP_SECRET,
    TODO_EVENT,
    dingtalk_directory,
    make_sandbox,
    operator_union_id,
)
from connectors.kit.sandbox import serve_in_thread
from connectors.kit.sandbox.universe import demo_directory

MEMBERS = dingtalk_directory()
REP = next(m for m in MEMBERS if m.active and m.title == "销售代表")
INACTIVE = next(m for m in MEMBERS if not m.active)
OPERATOR = operator_union_id()
CARD = {"msgtype": "action_card", "action_card": {"title": "t", "markdown": "**m**", "single_title": "看",
                                                  "single_url": "https://hub.example/c/1"}}


class Ding:
    """A bare HTTP caller of the sandbox: what any client would send."""

    def __init__(self, url: str, app: Any) -> None:
        self.http = httpx.Client(base_url=url, trust_env=False)
        self.app = app
        self.state = app.state.dingtalk

    def token(self) -> str:
        return str(self.http.get("/gettoken", params={"appkey": SANDBOX_APP_KEY,
                                                      "appsecret": SANDBOX_APP_SECRET}).json()["access_token"])

    def topapi(self, path: str, body: dict[str, Any], token: str | None = None) -> dict[str, Any]:
        reply = self.http.post(f"/topapi/{path}", params={"access_token": token or self.token()}, json=body)
        assert reply.status_code == 200
        return dict(reply.json())

    def v1(self, method: str, path: str, body: dict[str, Any] | None = None, token: str | None = None,
           **params: str) -> httpx.Response:
        return self.http.request(method, f"/v1.0/todo/users/{OPERATOR}/{path}", json=body, params=params,
                                 headers={"x-acs-dingtalk-access-token": token or self.token()})


def serve(**options: Any) -> Iterator[Ding]:
    app = make_sandbox(**options)
    with serve_in_thread(app) as server:
        ding = Ding(server.url, app)
        yield ding
        ding.http.close()


@pytest.fixture
def ding() -> Iterator[Ding]:
    yield from serve(api_qps=1000, max_in_flight=100)


def test_the_directory_is_the_demo_universe_with_dingtalk_ids():
    people = demo_directory()
    assert [m.name for m in MEMBERS] == [p.name for p in people] and len(MEMBERS) == 40
    assert [m.mobile for m in MEMBERS] == [p.mobile for p in people]
    assert len({m.userid for m in MEMBERS}) == 40 and all(len(m.userid) == 16 and m.userid.isdigit() for m in MEMBERS)
    assert len({m.unionid for m in MEMBERS}) == 40 and all(m.unionid.endswith("iE") for m in MEMBERS)
    # derived deterministically: another process computes the same ids
    assert dingtalk_directory() == MEMBERS


def test_an_unknown_api_answers_like_oapi(ding):
    reply = ding.topapi("v2/user/nosuch", {})
    assert reply["errcode"] == 22 and "dingtalk.oapi.v2.user.nosuch" in reply["sub_msg"]
    assert reply["errmsg"].startswith("Invalid method[submsg=")


def test_both_token_endpoints_hand_out_the_same_token_and_refuse_a_wrong_secret(ding):
    token = ding.token()
    v1 = ding.http.post("/v1.0/oauth2/accessToken", json={"appKey": SANDBOX_APP_KEY, "appSecret": SANDBOX_APP_SECRET})
    assert v1.json()["accessToken"] == token and v1.json()["expireIn"] <= 7200
    wrong = ding.http.get("/gettoken", params={"appkey": SANDBOX_APP_KEY, "appsecret": "nope"}).json()
    assert wrong["errcode"] == 40089
    wrong_v1 = ding.http.post("/v1.0/oauth2/accessToken", json={"appKey": SANDBOX_APP_KEY, "appSecret": "nope"})
    assert (wrong_v1.status_code, wrong_v1.json()["code"]) == (400, "invalidClientSecret")
    form = ding.http.post("/v1.0/oauth2/accessToken", data={"appKey": SANDBOX_APP_KEY, "appSecret": "x"})
    assert form.status_code == 400  # JSON only (§2.1)


def test_token_errors_on_topapi_come_wrapped_in_88_and_v1_answers_400(ding):
    unknown = ding.topapi("v2/user/get", {"userid": REP.userid}, token="made-up")
    assert (unknown["errcode"], unknown["sub_code"]) == (88, "40014")
    token = ding.token()
    ding.state.expire_all_tokens()
    expired = ding.topapi("v2/user/get", {"userid": REP.userid}, token=token)
    assert (expired["errcode"], expired["sub_code"]) == (88, "42001")
    v1 = ding.v1("GET", "tasks/sources/crm-task-1", token=token)
    assert (v1.status_code, v1.json()["code"]) == (400, "InvalidAuthentication")


def test_bare_token_errors_when_the_app_does_not_wrap():
    for ding in serve(wrap_token_errors=False):
        assert ding.topapi("v2/user/get", {"userid": REP.userid}, token="made-up")["errcode"] == 40014


def test_departments_list_direct_children_and_members_page_by_cursor(ding):
    children = ding.topapi("v2/department/listsub", {"dept_id": 2})["result"]
    assert [d["dept_id"] for d in children] == [3, 4, 5, 6, 7]
    first = ding.topapi("v2/user/list", {"dept_id": 3, "cursor": 0, "size": 4})["result"]
    rest = ding.topapi("v2/user/list", {"dept_id": 3, "cursor": first["next_cursor"], "size": 4})["result"]
    assert first["has_more"] and not rest["has_more"] and "next_cursor" not in rest
    members = [u["userid"] for u in first["list"] + rest["list"]]
    assert len(members) == len(set(members)) == sum(1 for m in MEMBERS if 3 in m.dept_id_list)
    leaders = [u["userid"] for u in first["list"] + rest["list"] if u["leader"]]
    assert leaders == [m.userid for m in MEMBERS if 3 in m.leader_in]
    assert ding.topapi("v2/user/list", {"dept_id": 3, "size": 101})["errcode"] == 40035


def test_the_apps_scope_hides_departments_and_people_outside_it():
    for ding in serve(visible_department_ids=(3,)):
        outside = next(m for m in MEMBERS if 9 in m.dept_id_list)
        assert [d["dept_id"] for d in ding.topapi("v2/department/listsub", {"dept_id": 1})["result"]] == [2]
        assert ding.topapi("v2/user/list", {"dept_id": 9})["errcode"] == 60011
        assert ding.topapi("v2/user/get", {"userid": outside.userid})["errcode"] == 60011
        assert ding.topapi("v2/user/getbymobile", {"mobile": outside.mobile})["errcode"] == 60121
        inside = next(m for m in MEMBERS if m.dept_id_list[0] == 3)
        assert ding.topapi("v2/user/getbymobile", {"mobile": inside.mobile})["result"]["userid"] == inside.userid


def test_over_the_apps_qps_both_hosts_throttle():
    for ding in serve(api_qps=3, max_in_flight=100, clock=lambda: 1_767_225_600.0):
        token = ding.token()
        codes = [ding.topapi("v2/department/get", {"dept_id": 1}, token=token)["errcode"] for _ in range(4)]
        assert codes == [0, 0, 0, 90018]
        v1 = ding.v1("GET", "tasks/sources/crm-task-1", token=token)
        assert (v1.status_code, v1.json()["code"]) == (403, "Forbidden.AccessDenied.QpsLimitForApi")
        assert ding.state.throttled == 2


def test_an_identical_notice_reaches_a_person_once_a_day_and_the_daily_cap_drops_silently():
    for ding in serve(api_qps=1000, notices_per_user_per_day=2):
        send = {"agent_id": SANDBOX_AGENT_ID, "userid_list": REP.userid, "msg": CARD}
        first, twin = ding.topapi("message/corpconversation/asyncsend_v2", send), \
            ding.topapi("message/corpconversation/asyncsend_v2", send)
        assert first["errcode"] == twin["errcode"] == 0 and first["task_id"] != twin["task_id"]
        other = {**send, "msg": {**CARD, "action_card": {**CARD["action_card"], "markdown": "**#2**"}}}
        third = {**send, "msg": {**CARD, "action_card": {**CARD["action_card"], "markdown": "**#3**"}}}
        ding.topapi("message/corpconversation/asyncsend_v2", other)
        ding.topapi("message/corpconversation/asyncsend_v2", third)
        log = ding.state.notice_log(REP.userid)
        assert [(len(n["delivered_to"]), len(n["suppressed_for"]), len(n["dropped_for"])) for n in log] == [
            (1, 0, 0), (0, 1, 0), (1, 0, 0), (0, 0, 1)]
        # all look fine to the sender: DingTalk's drops are silent
        result = ding.topapi("message/corpconversation/getsendresult", {"agent_id": SANDBOX_AGENT_ID,
                                                                         "task_id": log[-1]["task_id"]})
        assert result["send_result"]["invalid_user_id_list"] == [] and result["send_result"]["failed_user_id_list"] == []


def test_unknown_and_inactive_recipients_show_in_the_send_result(ding):
    sent = ding.topapi("message/corpconversation/asyncsend_v2", {
        "agent_id": SANDBOX_AGENT_ID, "userid_list": f"{REP.userid},nobody,{INACTIVE.userid}", "msg": CARD})
    result = ding.topapi("message/corpconversation/getsendresult",
                         {"agent_id": SANDBOX_AGENT_ID, "task_id": sent["task_id"]})["send_result"]
    assert result["invalid_user_id_list"] == ["nobody"] and result["failed_user_id_list"] == [INACTIVE.userid]
    assert ding.topapi("message/corpconversation/asyncsend_v2",
                       {"agent_id": 1, "userid_list": REP.userid, "msg": CARD})["errcode"] == 40035
    bad_card = {"msgtype": "action_card", "action_card": {"title": "t"}}
    assert ding.topapi("message/corpconversation/asyncsend_v2", {
        "agent_id": SANDBOX_AGENT_ID, "userid_list": REP.userid, "msg": bad_card})["errcode"] == 40035


def test_too_many_person_times_a_minute_is_143103():
    for ding in serve(api_qps=1000, notice_person_times_per_minute=2):
        send = {"agent_id": SANDBOX_AGENT_ID, "userid_list": REP.userid, "msg": CARD}
        codes = [ding.topapi("message/corpconversation/asyncsend_v2", send)["errcode"] for _ in range(3)]
        assert codes == [0, 0, 143103]


def test_to_dos_by_source_id_twins_unless_refused_and_completion_by_a_person(ding):
    body = {"sourceId": "crm-task-7", "subject": "确认合同条款", "executorIds": [REP.unionid]}
    first = ding.v1("POST", "tasks", body, operatorId=OPERATOR).json()
    twin = ding.v1("POST", "tasks", body, operatorId=OPERATOR).json()
    assert first["id"] != twin["id"]  # DingTalk's dedupe of sourceId is undocumented: not assumed
    found = ding.v1("GET", "tasks/sources/crm-task-7").json()
    assert found["id"] == first["id"]  # the oldest
    missing = ding.v1("GET", "tasks/sources/crm-task-8")
    assert (missing.status_code, missing.json()["message"]) == (400, "task not exist")

    event = ding.http.post(f"/__sandbox__/todos/{first['id']}/complete").json()["event"]
    assert (event["EventType"], event["taskId"], event["operatorUnionId"]) == (TODO_EVENT, first["id"], REP.unionid)
    done = ding.v1("GET", f"tasks/{first['id']}").json()
    assert done["done"] is True and done["finishTime"] and done["modifierId"] == REP.unionid
    assert ding.state.todo_updates == []  # a person's tick is not an API update

    ding.v1("PUT", f"tasks/{twin['id']}", {"dueTime": 1_767_225_600_000}, operatorId=OPERATOR)
    assert ding.state.todo_updates[-1]["fields"] == ["dueTime"]


def test_a_platform_that_refuses_twins_says_task_exist():
    for ding in serve(api_qps=1000, reject_duplicate_source_ids=True):
        body = {"sourceId": "crm-task-7", "subject": "确认合同条款", "executorIds": [REP.unionid]}
        assert ding.v1("POST", "tasks", body).status_code == 200
        twin = ding.v1("POST", "tasks", body)
        assert (twin.status_code, twin.json()["message"]) == (400, "task exist")


@pytest.mark.parametrize(("body", "message"), [
    ({"subject": "x" * 1025, "executorIds": []}, "subject is oversize"),
    ({"subject": "s", "executorIds": ["nobodyiE"]}, "not exist"),
    ({"subject": "s", "dueTime": "tomorrow"}, "dueTime is invalid"),
])
def test_bad_to_dos_are_400(ding, body, message):
    reply = ding.v1("POST", "tasks", body)
    assert reply.status_code == 400 and message in reply.json()["message"]


def test_the_admin_index_lists_the_sandbox_endpoints(ding):
    index = ding.http.get("/__sandbox__/").json()
    paths = {e["path"] for e in index["endpoints"]}
    assert {"/__sandbox__/notices", "/__sandbox__/todos", "/__sandbox__/todos/{task}/complete",
            "/__sandbox__/faults", "/__sandbox__/state", "/__sandbox__/expire-tokens"} <= paths
