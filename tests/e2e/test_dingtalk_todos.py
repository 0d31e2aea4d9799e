"""End to end: CRM tasks reach DingTalk salespeople as notices and to-dos exactly once whatever
the platform does, and to-dos ticked off in DingTalk close the CRM tasks without echoing back.

Real Postgres, the DingTalk sandbox over real HTTP, the real outbox dispatcher, the real
directory and completion streams, the web app's callback receiver.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections import Counter
from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

import connectors.dingtalk.client as dingtalk_client
from connectors.dingtalk.sandbox import SANDBOX_APP_SECRET, TODO_EVENT, CallbackDriver
from connectors.kit import CodeRule
from connectors.kit.sandbox import serve_in_thread
from hub.demo.data import load_crm_demo
from hub.errors import RateLimitedError
from hub.registry import connector
from hub.rules.reminders import ReminderPolicy, evaluate_reminders
from hub.rules.todos import TodoPolicy, evaluate_todos
from hub.runtime import HubRuntime, load_sandbox
from hub.settings import OutboxSettings
from hub.web import create_web_app
from tests.conftest import rows, scalar

pytestmark = pytest.mark.e2e

TASKS = 300
COMPLETED = 50
FAST_QPS = 400  # the sandbox and the client agree on it; the default (20/s) would make this test a minute


@pytest.fixture
def hub(settings, db, monkeypatch) -> Iterator[HubRuntime]:
    # the platform's throttle waits (1-60 s) shortened so the test waits milliseconds
    fast = {code: CodeRule(RateLimitedError, "throttled", retry_after=0.05) for code in (90018, 143103)}
    monkeypatch.setattr(dingtalk_client, "ERRCODES", dingtalk_client.ERRCODES.override(fast))
    monkeypatch.setattr(dingtalk_client, "API_CODES", dingtalk_client.API_CODES.override(
        {"Forbidden.AccessDenied.QpsLimitForApi": CodeRule(RateLimitedError, "throttled", retry_after=0.05)}))
    quick = settings.model_copy(update={"outbox": OutboxSettings(max_attempts=8, backoff_initial_s=0.01,
                                                                 backoff_max_s=0.05, lease_s=30)})
    quick = quick.with_connector("dingtalk", max_qps=FAST_QPS)
    runtime = HubRuntime(quick, db, actor="test")
    runtime.sandbox("dingtalk", api_qps=FAST_QPS)
    yield runtime
    runtime.close()


def crm_with_directory(hub: HubRuntime, db) -> list[int]:
    """The demo CRM, the DingTalk directory synced onto it; returns the active reps' ids."""
    seed = load_sandbox(connector("dingtalk")).demo_seed()  # type: ignore[misc]
    with db.begin() as conn:
        load_crm_demo(conn, seed["people"], seed["companies"], now=dt.datetime.now(dt.UTC), orders=0)
        conn.execute(sa.text("DELETE FROM task"))
        conn.execute(sa.text("UPDATE customer SET assigned_at = NULL"))  # no first-follow-up rule here
    hub.sync("dingtalk", "directory")
    return list(db.engine.connect().execute(sa.text(
        "SELECT id FROM internal_user WHERE active AND title LIKE '%销售代表%' ORDER BY id")).scalars())


def not_near_shanghai_midnight() -> None:
    """DingTalk suppresses an identical notice per day; near midnight the writer rightly
    refuses resends (a person decides), which this test does not model."""
    local = dt.datetime.now(ZoneInfo("Asia/Shanghai"))
    if (local.hour, local.minute) >= (23, 50):
        pytest.skip("within 10 minutes of Shanghai midnight: same-day suppression does not cover resends")


def test_300_tasks_under_faults_give_one_to_do_each_and_each_notice_once_then_50_ticked_off_close_quietly(hub, db):
    not_near_shanghai_midnight()
    started = time.perf_counter()
    reps = crm_with_directory(hub, db)
    assert scalar(db, "SELECT count(*) FROM internal_user WHERE dingtalk_userid IS NOT NULL") == 40
    # given 300 tasks due within the hour
    now = dt.datetime.now(dt.UTC)
    with db.begin() as conn:
        for i in range(TASKS):
            conn.execute(sa.text("INSERT INTO task (title, description, assignee_id, due_at, customer_id) VALUES "
                                 "(:t, '报价跟进', :a, :d, (SELECT min(id) FROM customer))"),
                         {"t": f"跟进任务 {i}", "a": reps[i % len(reps)], "d": now + dt.timedelta(minutes=30)})
        reminders = evaluate_reminders(conn, now, ReminderPolicy())
        todos = evaluate_todos(conn, now, TodoPolicy())
    assert (reminders.queued, reminders.queued_by_channel, todos.queued) == (TASKS, {"dingtalk": TASKS}, TASKS)

    # when DingTalk misbehaves while they go out: tokens expire, it throttles, is busy, loses replies
    state = hub.sandbox("dingtalk").app.state.dingtalk
    plan = hub.sandbox("dingtalk").app.state.faults
    send, create = "topapi/message/corpconversation/asyncsend_v2", "todo/tasks/create"
    plan.arm("auth_expired", times=2, operations=[send])
    plan.arm("auth_expired", times=2, operations=[create])
    plan.arm("rate_limit", times=4, operations=[send, create])
    plan.arm("busy", rate=0.04, seed=1, times=None, operations=[send, create, "todo/tasks/sources"])
    plan.arm("drop_response", rate=0.06, seed=2, times=None, operations=[send, create])
    plan.arm("http_500", times=3, operations=["todo/tasks/sources"])
    counts = hub.dispatcher().drain(wait_for_scheduled=True, timeout_s=180)
    plan.clear()
    fired = Counter(kind for _, kind in plan.history)
    assert fired["drop_response"] > 10 and fired["auth_expired"] == 4 and fired["busy"] > 5

    # then every task has exactly one to-do, for its assignee
    by_source = Counter(t["sourceId"] for t in state.todo_list())
    assert len(by_source) == TASKS and set(by_source.values()) == {1}
    # and every notice reached its recipient exactly once (the sandbox's delivery log)
    delivered = Counter()
    for notice in state.notice_log():
        task = re.search(r"#(\d+)", notice["msg"]["action_card"]["markdown"])
        for user in notice["delivered_to"]:
            delivered[(user, task.group(1) if task else "?")] += 1
    assert len(delivered) == TASKS and set(delivered.values()) == {1}
    assert (counts.done, counts.dead, counts.failed) == (2 * TASKS, 0, 0)
    assert state.peak_in_flight <= hub.call_limits("dingtalk").concurrency
    # and the CRM knows each to-do (linked to its task) and each person's unionId
    assert scalar(db, "SELECT count(*) FROM external_identity WHERE system = 'dingtalk' AND object = 'todo'") == TASKS
    assert scalar(db, "SELECT count(*) FROM task WHERE push_state -> 'dingtalk' -> 'todo' ? 'synced'") == TASKS

    # when 50 of them are ticked off in DingTalk by the salespeople
    updates_before = len(state.todo_updates)
    ticked = [t for t in state.todo_list()][:COMPLETED]
    for todo in ticked:
        state.complete_todo(todo["id"])
    report = hub.sync("dingtalk", "todo_completions")[0]

    # then those 50 CRM tasks are done, by their assignee, when they were ticked off
    assert (report.counts.read, report.counts.updated, report.counts.quarantined) == (COMPLETED, COMPLETED, 0)
    done = rows(db, "SELECT t.id, t.completed_by_id = t.assignee_id AS by_assignee, t.completed_at, t.completed_via "
                    "FROM task t WHERE t.status = 'done' ORDER BY t.id")
    expected_ids = sorted(int(t["sourceId"].removeprefix("crm-task-")) for t in ticked)
    assert [r.id for r in done] == expected_ids
    assert all(r.by_assignee and r.completed_via == "dingtalk" for r in done)
    finish = {int(t["sourceId"].removeprefix("crm-task-")): t["finishTime"] for t in state.todo_list()}
    assert all(abs(r.completed_at.timestamp() * 1000 - finish[r.id]) < 1 for r in done)
    # and nothing echoes back: the rules push nothing, DingTalk receives no update
    with db.begin() as conn:
        again = evaluate_todos(conn, dt.datetime.now(dt.UTC), TodoPolicy())
    assert (again.queued, again.in_step) == (0, TASKS - COMPLETED)
    assert hub.dispatcher().drain(timeout_s=10).claimed == 0
    assert len(state.todo_updates) == updates_before
    # a second poll reads the same completions and changes nothing
    assert hub.sync("dingtalk", "todo_completions")[0].counts.updated == 0

    # no token or secret anywhere in the audit
    audit_text = " ".join(str(tuple(r)) for r in rows(db, "SELECT * FROM audit_log"))
    assert SANDBOX_APP_SECRET not in audit_text and not [t for t in state._tokens if t in audit_text]
    print(f"\n300-task fault run: {dict(fired)} fired; outbox {counts}; notices sent "
          f"{len(state.notice_log())} (deliveries {sum(delivered.values())}, suppressed "
          f"{sum(len(n['suppressed_for']) for n in state.notice_log())}); to-dos {len(state.todos)}; "
          f"token fetches {state.tokens_issued}; {time.perf_counter() - started:.1f} s")


def test_a_crm_change_updates_the_to_do_and_closing_the_task_closes_it(hub, db):
    reps = crm_with_directory(hub, db)
    now = dt.datetime.now(dt.UTC)
    with db.begin() as conn:
        task = conn.execute(sa.text("INSERT INTO task (title, assignee_id, due_at) VALUES ('确认合同条款', :a, :d) "
                                    "RETURNING id"), {"a": reps[0], "d": now + dt.timedelta(days=2)}).scalar_one()
        assert evaluate_todos(conn, now, TodoPolicy()).queued == 1
    hub.dispatcher().drain(timeout_s=30)
    state = hub.sandbox("dingtalk").app.state.dingtalk
    # when the CRM moves the due date, the next evaluation updates the to-do
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE task SET due_at = due_at + interval '1 day' WHERE id = :t"), {"t": task})
        assert evaluate_todos(conn, now, TodoPolicy()).queued == 1
    hub.dispatcher().drain(timeout_s=30)
    assert state.todo_updates[-1]["fields"] == ["dueTime"]
    # when the task is done in the CRM, the to-do is marked done
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE task SET status = 'done', completed_at = now(), completed_via = 'crm' "
                             "WHERE id = :t"), {"t": task})
        assert evaluate_todos(conn, now, TodoPolicy()).queued == 1
    hub.dispatcher().drain(timeout_s=30)
    assert state.todo_list(f"crm-task-{task}")[0]["done"] is True
    with db.begin() as conn:
        assert evaluate_todos(conn, now, TodoPolicy()).queued == 0


def test_a_to_do_ticked_off_is_closed_through_the_signed_callback_too(hub, db, settings):
    reps = crm_with_directory(hub, db)
    now = dt.datetime.now(dt.UTC)
    with db.begin() as conn:
        task = conn.execute(sa.text("INSERT INTO task (title, assignee_id, due_at) VALUES ('预约现场演示', :a, :d) "
                                    "RETURNING id"), {"a": reps[1], "d": now + dt.timedelta(hours=3)}).scalar_one()
        evaluate_todos(conn, now, TodoPolicy())
    hub.dispatcher().drain(timeout_s=30)
    state = hub.sandbox("dingtalk").app.state.dingtalk
    (todo,) = state.todo_list(f"crm-task-{task}")
    event = state.complete_todo(todo["id"])
    # when a forger pushes the event first (wrong token), then DingTalk pushes it, and the
    # very same request is replayed
    with serve_in_thread(create_web_app(db, settings.model_copy(update={"sandbox": True}))) as web, \
            CallbackDriver(web.url + "/callbacks/dingtalk") as ding, \
            CallbackDriver(web.url + "/callbacks/dingtalk", token="not-the-token") as forger:
        forged = forger.push(event)
        assert scalar(db, "SELECT status FROM task WHERE id = :t", t=task) == "open"
        assert ding.register().acknowledged
        params, body = ding.seal(event)
        pushed = ding.post(params, body)
        replayed = ding.post(params, body)
        unknown = ding.push({**event, "taskId": "task-of-someone-else"})
    # then the forgery and the replay are refused and audited, not processed
    assert (forged.status, replayed.status) == (403, 403)
    refusals = rows(db, "SELECT error FROM audit_log WHERE system = 'dingtalk' AND outcome = 'rejected' ORDER BY id")
    assert [r.error for r in refusals] == ["bad_signature", "replayed"]
    # and the task is closed by its assignee, audited with the task it closed
    assert pushed.acknowledged and unknown.acknowledged
    closed = rows(db, "SELECT status, completed_by_id, completed_via FROM task WHERE id = :t", t=task)[0]
    assert (closed.status, closed.completed_by_id, closed.completed_via) == ("done", reps[1], "dingtalk")
    audited = rows(db, "SELECT operation, external_id, detail FROM audit_log WHERE system = 'dingtalk' AND "
                       "operation LIKE 'callback:%' ORDER BY id")
    assert [a.operation for a in audited] == ["callback:check_url", f"callback:{TODO_EVENT}", f"callback:{TODO_EVENT}"]
    assert audited[1].external_id == todo["id"] and audited[1].detail["closed_task_ids"] == [task]
    assert "closed_task_ids" not in audited[2].detail
    # and nothing is pushed back
    with db.begin() as conn:
        assert evaluate_todos(conn, now, TodoPolicy()).queued == 0
    assert hub.dispatcher().drain(timeout_s=10).claimed == 0 and state.todo_updates == []


def test_an_assignee_dingtalk_does_not_know_is_recorded_on_the_task(hub, db):
    crm_with_directory(hub, db)
    now = dt.datetime.now(dt.UTC)
    with db.begin() as conn:
        ghost = conn.execute(sa.text("INSERT INTO internal_user (name, dingtalk_userid, source_system, external_id) "
                                     "VALUES ('离职员工', '0000000000000001', 'crm', 'crm-ghost') RETURNING id")).scalar_one()
        task = conn.execute(sa.text("INSERT INTO task (title, assignee_id, due_at) VALUES ('交接客户', :a, :d) "
                                    "RETURNING id"), {"a": ghost, "d": now + dt.timedelta(minutes=10)}).scalar_one()
        evaluate_reminders(conn, now, ReminderPolicy())
        evaluate_todos(conn, now, TodoPolicy())
    counts = hub.dispatcher().drain(timeout_s=30)
    assert (counts.failed, counts.dead) == (2, 0)
    problems = scalar(db, "SELECT problems FROM task WHERE id = :t", t=task)
    assert any("DingTalk does not know 离职员工" in p for p in problems)
    assert any("DingTalk does not know the assignee" in p for p in problems)
    with db.begin() as conn:
        assert evaluate_todos(conn, now, TodoPolicy()).queued == 0  # the failed version is not retried blindly
