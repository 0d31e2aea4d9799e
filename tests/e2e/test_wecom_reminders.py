"""End to end: CRM to-dos reach salespeople in WeCom exactly once, whatever the platform does.

Real Postgres, the WeCom sandbox over real HTTP, the real outbox dispatcher.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
import sqlalchemy as sa

import connectors.wecom.client as wecom_client
from connectors.kit import CodeRule
from hub.demo.data import load_crm_demo
from hub.errors import RateLimitedError
from hub.registry import connector
from hub.rules.reminders import ReminderPolicy, evaluate_reminders
from hub.runtime import HubRuntime, load_sandbox
from hub.settings import OutboxSettings
from tests.conftest import rows, scalar

pytestmark = pytest.mark.e2e


@pytest.fixture
def hub(settings, db, monkeypatch):
    # The platform's rate-limit windows (60 s) shortened so the test waits milliseconds.
    fast_limits = {code: CodeRule(RateLimitedError, "rate limited", retry_after=0.05) for code in (45009, 45033)}
    monkeypatch.setattr(wecom_client, "ERRCODES", wecom_client.ERRCODES.override(fast_limits))
    fast = settings.model_copy(update={"outbox": OutboxSettings(max_attempts=8, backoff_initial_s=0.01,
                                                                backoff_max_s=0.05, lease_s=30)})
    runtime = HubRuntime(fast, db, actor="test")
    yield runtime
    runtime.close()


def test_directory_sync_attaches_wecom_ids_to_crm_users_without_duplicates(hub, db):
    seed = load_sandbox(connector("wecom")).demo_seed()  # type: ignore[misc]
    people = seed["people"]
    with db.begin() as conn:
        load_crm_demo(conn, people, seed["companies"], now=dt.datetime.now(dt.UTC), orders=0)
    report = hub.sync("wecom", "directory")[0]
    assert report.counts.read == len(people)
    assert scalar(db, "SELECT count(*) FROM internal_user") == len(people)
    assert scalar(db, "SELECT count(*) FROM internal_user WHERE wecom_userid IS NULL") == 0
    # managers come from the directory's leader fields
    assert scalar(db, "SELECT count(*) FROM internal_user WHERE manager_id IS NOT NULL") == len(people) - 1
    again = hub.sync("wecom", "directory")[0]
    assert (again.counts.inserted, again.counts.updated, again.counts.unchanged) == (0, 0, len(people))


def test_300_due_tasks_are_each_delivered_exactly_once_per_recipient_despite_faults(hub, db):
    now = dt.datetime.now(dt.UTC)
    seed = load_sandbox(connector("wecom")).demo_seed()  # type: ignore[misc]
    with db.begin() as conn:
        load_crm_demo(conn, seed["people"], seed["companies"], now=now, orders=0)
    hub.sync("wecom", "directory")
    with db.begin() as conn:
        conn.execute(sa.text("DELETE FROM task"))  # only the tasks below
        conn.execute(sa.text("UPDATE customer SET assigned_at = NULL"))  # no first-follow-up rule here
        reps = conn.execute(sa.text(
            "SELECT u.id FROM internal_user u WHERE u.wecom_userid IS NOT NULL AND u.title LIKE '%销售代表%' "
            "ORDER BY u.id")).scalars().all()
        inactive = conn.execute(sa.text("SELECT count(*) FROM internal_user WHERE NOT active")).scalar_one()
        assert inactive == 1  # the directory has one disabled rep
        # 300 tasks due within the hour, and 20 overdue ones (the manager hears of those too)
        for i in range(320):
            due = now + dt.timedelta(minutes=30) if i < 300 else now - dt.timedelta(hours=2)
            conn.execute(sa.text("INSERT INTO task (title, assignee_id, due_at, customer_id) VALUES "
                                 "(:t, :a, :d, (SELECT min(id) FROM customer))"),
                         {"t": f"跟进任务 {i}", "a": reps[i % len(reps)], "d": due})
        # a salesperson who left: the CRM still has their WeCom id, WeCom does not
        ghost = conn.execute(sa.text("INSERT INTO internal_user (name, mobile, wecom_userid, source_system, "
                                     "external_id) VALUES ('离职员工', '13000000000', 'ghost01', 'crm', 'crm-ghost') "
                                     "RETURNING id")).scalar_one()
        conn.execute(sa.text("INSERT INTO task (title, assignee_id, due_at) VALUES ('交接客户', :a, :d)"),
                     {"a": ghost, "d": now + dt.timedelta(minutes=10)})
        queued = evaluate_reminders(conn, now, ReminderPolicy())
    # reps not active in WeCom get a problem on the task instead of a message
    blocked_tasks = scalar(db, "SELECT count(*) FROM task t JOIN internal_user u ON u.id = t.assignee_id "
                               "WHERE NOT u.active")
    blocked_overdue = scalar(db, "SELECT count(*) FROM task t JOIN internal_user u ON u.id = t.assignee_id "
                                 "WHERE NOT u.active AND t.due_at < now()")
    assert queued.no_account == blocked_tasks + blocked_overdue  # one problem per task and kind
    expected = (321 - blocked_tasks) + 2 * 20 - blocked_overdue
    # due for every task, plus overdue + overdue_manager for the 20 overdue ones
    assert queued.queued == expected

    # when WeCom misbehaves while the reminders go out
    plan = hub.sandbox("wecom").app.state.faults
    plan.arm("auth_expired", times=3, operations=["message/send"])
    plan.arm("busy", rate=0.05, seed=1, times=None, operations=["message/send"])
    plan.arm("rate_limit", times=4, operations=["message/send"])
    plan.arm("drop_response", rate=0.05, seed=2, times=None, operations=["message/send"])
    counts = hub.dispatcher().drain(wait_for_scheduled=True, timeout_s=120)
    plan.clear()
    fired = Counter(kind for _, kind in plan.history)
    assert fired["drop_response"] > 3 and fired["auth_expired"] == 3

    # then every reminder reached its recipient exactly once (the sandbox's own log)
    state = hub.sandbox("wecom").app.state.wecom
    delivered = Counter()
    for message in state.messages:
        for user in message.delivered_to:
            delivered[(user, message.content["task_id"])] += 1
    assert len(delivered) == expected - 1  # all but the ghost's
    assert set(delivered.values()) == {1}
    assert counts.done == expected - 1 and counts.dead == 0

    # the ghost's reminder is reported on the task, not retried forever
    assert counts.failed == 1
    problems = scalar(db, "SELECT problems FROM task WHERE title = '交接客户'")
    assert problems and "WeCom does not know 离职员工" in problems[0]
    assert scalar(db, "SELECT count(*) FROM outbox WHERE status = 'pending'") == 0

    # every send attempt is in the audit, with no token or secret in it
    sends = rows(db, "SELECT outcome, error FROM audit_log WHERE system = 'wecom' AND operation = 'message/send'")
    assert len(sends) >= expected + fired["drop_response"]
    from connectors.wecom.sandbox import SANDBOX_SECRET

    secrets = [*state._tokens, SANDBOX_SECRET]
    # the token really was refreshed (concurrent sends that meet one expiry share one refresh)
    assert len(state._tokens) >= 2
    audit_text = " ".join(str(tuple(r)) for r in rows(db, "SELECT * FROM audit_log"))
    assert not [s for s in secrets if s in audit_text]

    # evaluating again queues nothing new
    with db.begin() as conn:
        again = evaluate_reminders(conn, now, ReminderPolicy())
    assert (again.queued, again.already_queued) == (0, expected)


def test_a_new_wecom_app_without_mobiles_still_links_every_crm_user_by_getuserid(settings, db):
    # given a WeCom app created after 2022-06-20: user/get returns no mobile or e-mail
    runtime = HubRuntime(settings, db, actor="test")
    try:
        runtime.sandbox("wecom", legacy_app=False)
        seed = load_sandbox(connector("wecom")).demo_seed()  # type: ignore[misc]
        with db.begin() as conn:
            load_crm_demo(conn, seed["people"], seed["companies"], now=dt.datetime.now(dt.UTC), orders=0)
            conn.execute(sa.text("INSERT INTO internal_user (name, mobile, source_system, external_id) VALUES "
                                 "('外包顾问', '13700000000', 'crm', 'crm-outsider')"))

        # when the directory is synced
        report = runtime.sync("wecom", "directory")[0]

        # then every CRM user found their account through getuserid, nobody was duplicated
        assert report.counts.inserted == 0
        assert scalar(db, "SELECT count(*) FROM internal_user") == len(seed["people"]) + 1
        assert scalar(db, "SELECT count(*) FROM internal_user WHERE wecom_userid IS NULL") == 1
        # the one mobile WeCom does not know is remembered, so the rationed lookup is not repeated
        assert scalar(db, "SELECT directory_lookup_misses ? 'wecom' FROM internal_user "
                          "WHERE external_id = 'crm-outsider'") is True
        asked = sum(1 for r in rows(db, "SELECT 1 FROM audit_log WHERE operation = 'user/getuserid'"))
        assert asked == len(seed["people"]) + 1
        runtime.sync("wecom", "directory")
        assert sum(1 for r in rows(db, "SELECT 1 FROM audit_log WHERE operation = 'user/getuserid'")) == asked
    finally:
        runtime.close()
