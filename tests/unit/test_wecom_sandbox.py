"""The WeCom sandbox's own rules, over raw HTTP: tokens, envelopes, limits, cursors, admin API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from connectors.kit.sandbox import serve_in_thread
from connectors.wecom.sandbox import (
    SANDBOX_AGENT_ID,
    SANDBOX_CORP_ID,
    SANDBOX_SECRET,
    WeComApiError,
    demo_departments,
    demo_directory,
    demo_external_contacts,
    make_sandbox,
)

REPS = [u for u in demo_directory() if u.is_sales_rep and u.status == 1]


class Clock:
    def __init__(self) -> None:
        self.now = 1_715_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def env() -> Iterator[tuple[Any, Clock, httpx.Client]]:
    clock = Clock()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NO_PROXY", "127.0.0.1,localhost")
        mp.setenv("no_proxy", "127.0.0.1,localhost")
        app = make_sandbox(clock=clock, token_ttl=7200)
        with serve_in_thread(app) as server, httpx.Client(base_url=server.url) as http:
            yield app, clock, http


def token(http: httpx.Client) -> str:
    reply = http.get("/cgi-bin/gettoken", params={"corpid": SANDBOX_CORP_ID, "corpsecret": SANDBOX_SECRET}).json()
    assert reply["errcode"] == 0, reply
    return str(reply["access_token"])


def post(http: httpx.Client, path: str, body: Any, tok: str, **headers: str) -> dict[str, Any]:
    raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    # No Content-Type, like wechatpy: the sandbox must parse JSON anyway.
    return http.post(f"/cgi-bin/{path}", params={"access_token": tok}, content=raw, headers=headers).json()


def text_message(touser: str, content: str, **extra: Any) -> dict[str, Any]:
    return {"touser": touser, "agentid": SANDBOX_AGENT_ID, "msgtype": "text", "text": {"content": content}, **extra}


# ---------------------------------------------------------------- tokens and envelope

def test_token_lifecycle(env):
    _app, clock, http = env
    first = token(http)
    # re-fetching while valid returns the same token
    assert token(http) == first
    # it works, then expires after the TTL (42001), and a new one is issued
    assert http.get("/cgi-bin/user/get", params={"access_token": first, "userid": REPS[0].userid}).json()["errcode"] == 0
    clock.now += 7201
    expired = http.get("/cgi-bin/user/get", params={"access_token": first, "userid": REPS[0].userid}).json()
    assert expired["errcode"] == 42001 and expired["errmsg"].startswith("access_token expired")
    assert token(http) != first


@pytest.mark.parametrize(
    ("params", "errcode"),
    [({}, 41001), ({"access_token": "made-up"}, 40014)],
)
def test_missing_and_unknown_tokens(env, params, errcode):
    _, _, http = env
    reply = http.get("/cgi-bin/department/list", params=params)
    assert reply.status_code == 200 and reply.json()["errcode"] == errcode
    assert "from ip: 127.0.0.1" in reply.json()["errmsg"] and f"?e={errcode}" in reply.json()["errmsg"]


@pytest.mark.parametrize(
    ("params", "errcode"),
    [({"corpid": SANDBOX_CORP_ID, "corpsecret": "wrong"}, 40001),
     ({"corpid": "wwnotours", "corpsecret": SANDBOX_SECRET}, 40013),
     ({"corpsecret": SANDBOX_SECRET}, 41002)],
)
def test_gettoken_checks_credentials(env, params, errcode):
    _, _, http = env
    assert http.get("/cgi-bin/gettoken", params=params).json()["errcode"] == errcode


def test_forced_expiry_expires_every_token(env):
    _app, _, http = env
    tok = token(http)
    http.post("/__sandbox__/expire-tokens")
    assert http.get("/cgi-bin/department/list", params={"access_token": tok}).json()["errcode"] == 42001


def test_post_bodies_are_json_whatever_the_content_type(env):
    _, _, http = env
    tok = token(http)
    reply = post(http, "user/getuserid", {"mobile": REPS[0].mobile}, tok, **{"Content-Type": "text/plain"})
    assert reply == {"errcode": 0, "errmsg": "ok", "userid": REPS[0].userid}
    broken = post(http, "user/getuserid", b"{not json", tok)
    assert broken["errcode"] == 40058 and "wrong json format" in broken["errmsg"]
    wrong_method = http.get("/cgi-bin/user/getuserid", params={"access_token": tok}).json()
    assert wrong_method["errcode"] == 43002


# ---------------------------------------------------------------- messages

def test_send_splits_recipients_and_lowercases_invalid_ones(env):
    app, _, http = env
    tok = token(http)
    reply = post(http, "message/send", text_message(f"{REPS[0].userid}|Ghost.User|{REPS[1].userid.upper()}", "hi"), tok)
    assert reply["errcode"] == 0 and reply["invaliduser"] == "ghost.user" and reply["msgid"]
    entry = app.state.wecom.message_log()[-1]
    assert entry["delivered_to"] == [REPS[0].userid, REPS[1].userid]


def test_no_valid_recipient_is_81013_with_invaliduser(env):
    _, _, http = env
    reply = post(http, "message/send", text_message("Ghost|Nobody", "hi"), token(http))
    assert reply["errcode"] == 81013 and reply["invaliduser"] == "ghost|nobody"


def test_disabled_member_is_invalid(env):
    _, _, http = env
    disabled = next(u for u in demo_directory() if u.status == 2)
    reply = post(http, "message/send", text_message(disabled.userid, "hi"), token(http))
    assert reply["errcode"] == 81013 and reply["invaliduser"] == disabled.userid.lower()


def test_duplicate_check_suppresses_a_twin_inside_the_window_only(env):
    app, clock, http = env
    tok = token(http)
    rep = REPS[2]
    body = text_message(rep.userid, "dup", enable_duplicate_check=1, duplicate_check_interval=600)
    first = post(http, "message/send", body, tok)
    clock.now += 599
    second = post(http, "message/send", body, tok)
    assert second["msgid"] == first["msgid"]
    clock.now += 2
    third = post(http, "message/send", body, tok)
    assert third["msgid"] != first["msgid"]
    log = app.state.wecom.message_log(rep.userid)
    assert [e["duplicates_suppressed"] for e in log] == [1, 0]
    # the window is capped at 4 h (send doc 90236)
    too_long = post(http, "message/send", {**body, "duplicate_check_interval": 14401}, tok)
    assert too_long["errcode"] == 40058


def test_more_than_30_messages_a_minute_are_dropped_silently(env):
    app, clock, http = env
    tok = token(http)
    rep = REPS[3]
    replies = [post(http, "message/send", text_message(rep.userid, f"n{i}"), tok) for i in range(32)]
    # every request looks successful...
    assert all(r["errcode"] == 0 for r in replies)
    # ...but the 31st and 32nd never reached the member
    statuses = [e["status"] for e in app.state.wecom.message_log(rep.userid)]
    assert statuses == ["delivered"] * 30 + ["dropped"] * 2
    clock.now += 61
    post(http, "message/send", text_message(rep.userid, "after a minute"), tok)
    assert app.state.wecom.message_log(rep.userid)[-1]["status"] == "delivered"


def test_textcard_over_byte_limits_is_truncated_and_flagged(env):
    app, _, http = env
    card = {"touser": REPS[4].userid, "agentid": SANDBOX_AGENT_ID, "msgtype": "textcard",
            "textcard": {"title": "标题" * 50, "description": "描述" * 200, "url": "https://hub.example.com"}}
    assert post(http, "message/send", card, token(http))["errcode"] == 0
    entry = app.state.wecom.message_log(REPS[4].userid)[-1]
    assert entry["truncated"] == ["textcard.title", "textcard.description"]
    assert len(entry["content"]["title"].encode()) <= 128 and len(entry["content"]["description"].encode()) <= 512


def test_template_card_text_notice_requires_card_action(env):
    _, _, http = env
    body = {"touser": REPS[4].userid, "agentid": SANDBOX_AGENT_ID, "msgtype": "template_card",
            "template_card": {"card_type": "text_notice", "main_title": {"title": "x"}}}
    assert post(http, "message/send", body, token(http))["errcode"] == 40058


def test_recall_marks_the_message(env):
    app, _, http = env
    tok = token(http)
    msgid = post(http, "message/send", text_message(REPS[5].userid, "recall me"), tok)["msgid"]
    assert post(http, "message/recall", {"msgid": msgid}, tok)["errcode"] == 0
    assert app.state.wecom.message_log(REPS[5].userid)[-1]["recalled"] is True


# ---------------------------------------------------------------- directory and customers

def test_list_id_pages_with_opaque_cursors_one_row_per_membership(env):
    _, _, http = env
    tok = token(http)
    rows, cursor = [], ""
    while True:
        reply = post(http, "user/list_id", {"cursor": cursor, "limit": 9}, tok)
        rows.extend(reply["dept_user"])
        cursor = reply["next_cursor"]
        if not cursor:
            break
        assert "list_id" not in cursor and not cursor.isdigit()
    assert len(rows) == sum(len(u.departments) for u in demo_directory())  # 42 memberships, 40 people
    tampered = post(http, "user/list_id", {"cursor": "AAAA" + "B" * 20, "limit": 9}, tok)
    assert tampered["errcode"] == 40058


def test_department_list_subtree_and_leaders(env):
    _, _, http = env
    tok = token(http)
    sales = http.get("/cgi-bin/department/list", params={"access_token": tok, "id": 2}).json()["department"]
    assert [d["name"] for d in sales] == ["销售中心", "华东销售部", "华南销售部", "华北销售部", "西南销售部", "华中销售部"]
    assert all(len(d["department_leader"]) == 1 for d in sales)
    assert len(demo_departments()) == 10


def test_batch_get_by_user_accepts_userid_and_userid_list(env):
    _, _, http = env
    tok = token(http)
    rep = REPS[0]
    single = post(http, "externalcontact/batch/get_by_user", {"userid": rep.userid, "limit": 100}, tok)
    listed = post(http, "externalcontact/batch/get_by_user", {"userid_list": [rep.userid], "limit": 100}, tok)
    assert single["external_contact_list"] == listed["external_contact_list"] and single["next_cursor"] == ""
    assert all(row["follow_info"]["userid"] == rep.userid and "tag_id" in row["follow_info"]
               for row in single["external_contact_list"])


def test_unknown_ids_answer_wecom_codes(env):
    _, _, http = env
    tok = token(http)
    assert http.get("/cgi-bin/user/get", params={"access_token": tok, "userid": "nobody"}).json()["errcode"] == 60111
    assert http.get("/cgi-bin/externalcontact/get", params={"access_token": tok, "external_userid": "wmX"}).json()["errcode"] == 40096
    assert post(http, "user/getuserid", {"mobile": "19900000000"}, tok)["errcode"] == 46004


# ---------------------------------------------------------------- faults and admin

@pytest.mark.parametrize(
    ("kind", "status", "errcode"),
    [("busy", 200, -1), ("rate_limit", 200, 45009), ("http_500", 500, None)],
)
def test_faults_map_to_wecom_wire_behaviour(env, kind, status, errcode):
    _app, _, http = env
    tok = token(http)
    http.post("/__sandbox__/faults", json={"clear": True, "faults": [{"kind": kind, "operations": ["user/get"]}]})
    reply = http.get("/cgi-bin/user/get", params={"access_token": tok, "userid": REPS[0].userid})
    assert reply.status_code == status
    if errcode is not None:
        assert reply.json()["errcode"] == errcode
    assert http.get("/__sandbox__/faults").json()["fired"] >= 1


def test_drop_response_applies_then_answers_504(env):
    _app, _, http = env
    tok = token(http)
    http.post("/__sandbox__/faults", json={"clear": True, "faults": [{"kind": "drop_response", "operations": ["message/send"]}]})
    reply = http.post("/cgi-bin/message/send", params={"access_token": tok},
                      content=json.dumps(text_message(REPS[6].userid, "lost reply")).encode())
    assert reply.status_code == 504 and reply.content == b""
    log = http.get("/__sandbox__/messages", params={"touser": REPS[6].userid}).json()["messages"]
    assert [m["content"]["content"] for m in log] == ["lost reply"]


def test_state_summary_counts_the_seed(env):
    _, _, http = env
    summary = http.get("/__sandbox__/state").json()
    assert summary["users"] == 40 and summary["departments"] == 10
    assert summary["external_contacts"] == len(demo_external_contacts()) == 300


def test_per_api_minute_quota_answers_45009():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NO_PROXY", "127.0.0.1,localhost")
        app = make_sandbox(api_limit_per_minute=3)
        with serve_in_thread(app) as server, httpx.Client(base_url=server.url) as http:
            tok = token(http)
            codes = [http.get("/cgi-bin/department/list", params={"access_token": tok}).json()["errcode"] for _ in range(4)]
    assert codes == [0, 0, 0, 45009]


def test_demo_directory_is_deterministic_and_every_rep_has_a_manager():
    assert demo_directory() == demo_directory()
    assert demo_directory(seed=1) != demo_directory()
    users = demo_directory()
    assert len(users) == 40 and len({u.userid for u in users}) == 40 and len({u.mobile for u in users}) == 40
    by_id = {u.userid: u for u in users}
    reps = [u for u in users if u.is_sales_rep]
    assert len(reps) == 25
    for rep in reps:
        manager = by_id[rep.manager_userid or ""]
        assert manager.position == "区域销售经理" and manager.department_id == rep.department_id


def test_externalcontact_concurrency_answers_45033():
    # given five externalcontact calls in flight (WeCom allows about five, reference §1.3)
    state = make_sandbox(externalcontact_concurrency=5).state.wecom
    for _ in range(5):
        state.enter("externalcontact/get")
    # when a sixth starts, then it is refused with 45033 until one finishes
    with pytest.raises(WeComApiError) as caught:
        state.enter("externalcontact/get")
    assert caught.value.errcode == 45033
    state.leave("externalcontact/get")
    state.enter("externalcontact/get")


def test_calendar_and_schedule_on_it(env):
    _, _, http = env
    tok = token(http)
    rep = REPS[7]
    cal = post(http, "oa/calendar/add", {"calendar": {"organizer": rep.userid, "summary": "客户拜访", "color": "#0000FF",
                                                      "shares": [{"userid": rep.manager_userid}]}}, tok)
    assert cal["errcode"] == 0 and cal["cal_id"]
    schedule = {"cal_id": cal["cal_id"], "start_time": 1715151600, "end_time": 1715155200,
                "attendees": [{"userid": rep.userid}], "summary": "拜访 无锡华锐",
                "reminders": {"is_remind": 1, "remind_before_event_secs": 900}}
    added = post(http, "oa/schedule/add", {"schedule": schedule, "agentid": SANDBOX_AGENT_ID}, tok)
    assert added["errcode"] == 0
    bad = post(http, "oa/schedule/add", {"schedule": {**schedule, "reminders": {"remind_before_event_secs": 42}}}, tok)
    assert bad["errcode"] == 40058
    backwards = post(http, "oa/schedule/add", {"schedule": {**schedule, "end_time": 1715151600}}, tok)
    assert backwards["errcode"] == 40058


def test_simplelist_is_slim_and_new_apps_get_no_contact_fields(env):
    _, _, http = env
    tok = token(http)
    slim = http.get("/cgi-bin/user/simplelist", params={"access_token": tok, "department_id": 3}).json()["userlist"]
    assert slim and set(slim[0]) == {"userid", "name", "department", "open_userid"}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NO_PROXY", "127.0.0.1,localhost")
        app = make_sandbox(legacy_app=False)
        with serve_in_thread(app) as server, httpx.Client(base_url=server.url) as new_http:
            user = new_http.get("/cgi-bin/user/get", params={"access_token": token(new_http),
                                                             "userid": REPS[0].userid}).json()
    assert user["errcode"] == 0 and "mobile" not in user and "email" not in user and user["name"] == REPS[0].name


def test_the_admin_index_lists_every_admin_endpoint() -> None:
    from starlette.testclient import TestClient

    with TestClient(make_sandbox()) as client:
        index = client.get("/__sandbox__/").json()
    assert {e["path"] for e in index["endpoints"]} == {
        "/__sandbox__/messages", "/__sandbox__/faults", "/__sandbox__/state", "/__sandbox__/expire-tokens",
        "/__sandbox__/oauth/code", "/__sandbox__/oauth/in-app-user", "/__sandbox__/approvals",
        "/__sandbox__/approvals/callbacks", "/__sandbox__/approvals/{sp_no}/act"}
    assert all(e["does"] for e in index["endpoints"])
