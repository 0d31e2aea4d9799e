"""DingTalk writers and streams against the sandbox over real HTTP: a notice once, a to-do once,
never reopened; the directory as the app sees it; completions since the cursor."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from connectors.dingtalk.connector import make_client, prepare_reminder
from connectors.dingtalk.sandbox import client_settings, dingtalk_directory, make_sandbox
from connectors.dingtalk.settings import DingTalkSettings
from connectors.dingtalk.streams import OVERLAP_MS, read_directory, read_todo_completions
from connectors.dingtalk.writers import NoticeWriter, TodoWriter
from connectors.kit.sandbox import serve_in_thread
from hub.calls import ignore_call
from hub.contracts import Attempt
from hub.errors import PermanentError, RecipientError, RetryableError

MEMBERS = dingtalk_directory()
REP = next(m for m in MEMBERS if m.active and m.title == "销售代表")
OTHER = [m for m in MEMBERS if m.active and m.title == "销售代表"][1]
INACTIVE = next(m for m in MEMBERS if not m.active)
SHANGHAI_NOON = dt.datetime(2026, 11, 28, 4, 0, tzinfo=dt.UTC)  # 12:00 in Shanghai


def reminder(task_id: int = 42, recipient: str = REP.userid) -> dict[str, Any]:
    return prepare_reminder({
        "task_id": task_id, "kind": "due", "recipient": recipient, "title": "发送报价单",
        "customer_name": "苏州恒瑞精密机械有限公司", "due_at": "2026-11-28T07:00:00+00:00",
        "assignee_name": REP.name, "profile_url": "https://hub.example/customers/7"})


def todo(task_id: int = 42, **changes: Any) -> dict[str, Any]:
    return {"task_id": task_id, "source_id": f"crm-task-{task_id}", "recipient": REP.userid, "recipient_alias": None,
            "title": "发送报价单", "customer_name": "苏州恒瑞精密", "description": "跟进", "done": False,
            "due_at": "2026-11-28T07:00:00+00:00", "detail_url": "https://hub.example/customers/7", "version": "v1",
            **changes}


def attempt(number: int = 1, *, unknown: bool = False, first: dt.datetime = SHANGHAI_NOON) -> Attempt:
    return Attempt(number=number, first_attempt_at=first, outcome_unknown=unknown)


@pytest.fixture
def sandbox() -> Iterator[tuple[Any, Any]]:
    app = make_sandbox(api_qps=1000, max_in_flight=100, clock=lambda: SHANGHAI_NOON.timestamp())
    with serve_in_thread(app) as server:
        client = make_client(client_settings(server.url, DingTalkSettings(max_qps=1000)), ignore_call)
        yield app, client
        client.close()


def test_a_notice_resent_after_a_lost_reply_on_the_same_day_reaches_the_person_once(sandbox):
    app, client = sandbox
    writer = NoticeWriter(client, clock=lambda: SHANGHAI_NOON + dt.timedelta(minutes=5))
    app.state.faults.arm("drop_response", times=1, operations=["topapi/message/corpconversation/asyncsend_v2"])
    with pytest.raises(RetryableError):
        writer.apply("k1", reminder(), attempt())
    result = writer.apply("k1", reminder(), attempt(2, unknown=True))
    assert result.status == "sent" and result.detail["delivery"] == "reached"
    deliveries = [n["delivered_to"] for n in app.state.dingtalk.notice_log(REP.userid)]
    assert deliveries == [[REP.userid], []]  # the resend was suppressed by DingTalk itself


@pytest.mark.parametrize("later", [dt.timedelta(days=1), dt.timedelta(hours=11, minutes=57)],
                         ids=["next-day", "three-minutes-before-midnight"])
def test_a_resend_the_platform_might_not_suppress_is_refused_for_a_person_to_decide(sandbox, later):
    _, client = sandbox
    writer = NoticeWriter(client, clock=lambda: SHANGHAI_NOON + later)
    with pytest.raises(PermanentError) as refused:
        writer.apply("k1", reminder(), attempt(2, unknown=True))
    assert refused.value.code == "duplicate_window_passed"


def test_unknown_and_not_activated_recipients_are_recorded_not_retried(sandbox):
    _, client = sandbox
    writer = NoticeWriter(client, clock=lambda: SHANGHAI_NOON)
    with pytest.raises(RecipientError) as unknown:
        writer.apply("k1", reminder(recipient="9999999999999999"), attempt())
    assert unknown.value.recipients == ["9999999999999999"] and unknown.value.code == "invalid"
    with pytest.raises(PermanentError) as failed:
        writer.apply("k2", reminder(recipient=INACTIVE.userid), attempt())
    assert failed.value.code == "failed" and not isinstance(failed.value, RecipientError)


def test_a_to_do_whose_create_reply_was_lost_is_adopted_not_created_twice(sandbox):
    app, client = sandbox
    writer = TodoWriter(client)
    app.state.faults.arm("drop_response", times=1, operations=["todo/tasks/create"])
    with pytest.raises(RetryableError):
        writer.apply("todo:task-42:1", todo(), attempt())
    adopted = writer.apply("todo:task-42:1", todo(), attempt(2, unknown=True))
    assert adopted.adopted and adopted.detail["recipient_alias"] == REP.unionid
    assert [t["id"] for t in app.state.dingtalk.todo_list("crm-task-42")] == [adopted.external_id]
    assert app.state.dingtalk.todo_updates == []  # found exactly as wanted: nothing to change


def test_a_to_do_follows_its_task_and_is_never_reopened(sandbox):
    app, client = sandbox
    writer = TodoWriter(client)
    created = writer.apply("a", todo(), attempt())
    assert (created.status, created.adopted) == ("open", False)
    # the CRM moves the due date and gives the task to someone else
    moved = writer.apply("b", todo(due_at="2026-11-29T07:00:00+00:00", recipient=OTHER.userid), attempt())
    stored = app.state.dingtalk.todo_list("crm-task-42")[0]
    assert moved.detail["updated"] == ["dueTime", "executorIds", "participantIds"]
    assert stored["executorIds"] == [OTHER.unionid] and stored["dueTime"] == int(dt.datetime(2026, 11, 29, 7, tzinfo=dt.UTC).timestamp() * 1000)
    # the person ticks it off in DingTalk; a later change in the CRM does not reopen it, and says so
    app.state.dingtalk.complete_todo(stored["id"])
    later = writer.apply("c", todo(title="发送修订报价单", recipient=OTHER.userid, due_at="2026-11-29T07:00:00+00:00"),
                         attempt())
    assert later.status == "done" and "completed_on_platform" in later.detail
    assert app.state.dingtalk.todo_list("crm-task-42")[0]["done"] is True
    assert "done" not in later.detail["updated"]


def test_a_task_closed_in_the_crm_closes_its_to_do_and_one_closed_before_creation_creates_nothing(sandbox):
    app, client = sandbox
    writer = TodoWriter(client)
    writer.apply("a", todo(), attempt())
    closed = writer.apply("b", todo(done=True), attempt())
    assert closed.status == "done" and app.state.dingtalk.todo_list("crm-task-42")[0]["done"] is True
    never = writer.apply("c", todo(task_id=43, done=True), attempt())
    assert never.status == "not_created" and app.state.dingtalk.todo_list("crm-task-43") == []


def test_a_platform_that_refuses_twins_is_met_by_adoption():
    app = make_sandbox(api_qps=1000, max_in_flight=100, reject_duplicate_source_ids=True)
    with serve_in_thread(app) as server:
        client = make_client(client_settings(server.url, DingTalkSettings(max_qps=1000)), ignore_call)
        # given a to-do made meanwhile by another attempt whose lookup came too early
        twin = TodoWriter(client).apply("a", todo(), attempt())
        calls = {"n": 0}
        real = client.find_todo_by_source

        def stale_lookup(source_id: str) -> Any:
            calls["n"] += 1
            return None if calls["n"] == 1 else real(source_id)

        client.find_todo_by_source = stale_lookup  # type: ignore[method-assign]
        adopted = TodoWriter(client).apply("a", todo(), attempt(2, unknown=True))
        assert adopted.external_id == twin.external_id and len(app.state.dingtalk.todo_list("crm-task-42")) == 1


def test_an_unknown_assignee_is_a_recipient_error():
    app = make_sandbox(api_qps=1000, max_in_flight=100)
    with serve_in_thread(app) as server:
        client = make_client(client_settings(server.url, DingTalkSettings(max_qps=1000)), ignore_call)
        with pytest.raises(RecipientError):
            TodoWriter(client).apply("a", todo(recipient="0000000000000000"), attempt())


def test_the_directory_stream_reads_the_scope_with_managers_from_leaders_and_direct_managers():
    app = make_sandbox(api_qps=1000, max_in_flight=100, visible_department_ids=(3, 4), todo_page_size=3)
    with serve_in_thread(app) as server:
        client = make_client(client_settings(server.url, DingTalkSettings(max_qps=1000)), ignore_call)
        records = [r for page in read_directory(client, None) for r in page.records]
    expected = {m.userid for m in MEMBERS if {3, 4} & set(m.dept_id_list)}
    assert {r["userid"] for r in records} == expected and len(records) == len(expected)
    by_id = {m.userid: m for m in MEMBERS}
    rep_in_south = next(r for r in records if r["dept_id_list"] == [4] and not by_id[r["userid"]].leader_in)
    chain = rep_in_south["_hub_departments"]
    manager = next(m for m in MEMBERS if 4 in m.leader_in)
    assert chain["4"]["leaders"] == [manager.userid] and chain["4"]["name"] == "华南销售部"


def test_completions_are_read_since_the_cursor_with_who_finished_them(sandbox):
    app, client = sandbox
    state = app.state.dingtalk
    writer = TodoWriter(client)
    ids = [writer.apply(str(i), todo(task_id=i), attempt()).external_id for i in range(1, 4)]
    state.todos[ids[0]]["sourceId"] = "someone-elses-todo"  # not the hub's: never read
    for todo_id in ids:
        state.complete_todo(todo_id)
    pages = list(read_todo_completions(client, None))
    records = [r for p in pages for r in p.records]
    assert [r["taskId"] for r in records] == sorted(ids[1:], key=lambda i: (state.todos[i]["modifiedTime"], i))
    assert all(r["_hub_completed_by"] == REP.userid for r in records)
    cursor = pages[-1].cursor_after
    assert cursor == str(max(state.todos[i]["modifiedTime"] for i in ids[1:]))
    # read again from that cursor: only what changed within the overlap window is looked at again
    assert [r["taskId"] for p in read_todo_completions(client, str(int(cursor) + OVERLAP_MS)) for r in p.records] == []


def test_no_poll_when_callbacks_carry_completions():
    settings = client_settings("http://127.0.0.1:1", DingTalkSettings(poll_todo_completions=False))
    quiet = make_client(settings, ignore_call)
    assert list(read_todo_completions(quiet, None)) == []
    assert DingTalkSettings(callback_token="t", callback_aes_key="k" * 43, app_key="a").polls_todo_completions() \
        is False
    assert DingTalkSettings().polls_todo_completions() is True


def test_configuration_refusals_say_what_to_configure():
    # given an app whose trusted IPs do not include this server, then one lacking the to-do permission
    outside = make_sandbox(trusted_ips=("10.8.0.1",))
    with serve_in_thread(outside) as server:
        client = make_client(client_settings(server.url, DingTalkSettings()), ignore_call)
        with pytest.raises(PermanentError, match="trusted IPs") as refused:
            client.check()
        assert refused.value.code == "60020"
    no_todos = make_sandbox(blocked_apis=("todo/tasks/sources", "topapi/v2/user/get"))
    with serve_in_thread(no_todos) as server:
        client = make_client(client_settings(server.url, DingTalkSettings()), ignore_call)
        with pytest.raises(PermanentError, match="developer console") as oapi:
            client.get_user(REP.userid)
        with pytest.raises(PermanentError, match="permission") as v1:
            client.find_todo_by_source("crm-task-1")
        assert (oapi.value.code, v1.value.code) == ("60011", "Forbidden.AccessDenied.AccessTokenPermissionDenied")
