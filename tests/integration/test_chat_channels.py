"""One chat platform per person: chosen by the directories they appear in and the configured
preference; never both, even when the preference or a directory changes later."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from hub.errors import ConfigError
from hub.rules.channels import channels
from hub.rules.reminders import ReminderPolicy, evaluate_reminders
from hub.rules.todos import TodoPolicy, evaluate_todos
from hub.settings import ReminderSettings
from tests.conftest import rows, scalar

NOW = dt.datetime(2026, 11, 25, 2, 0, tzinfo=dt.UTC)


def person(conn, name: str, *, wecom: str | None = None, dingtalk: str | None = None, active: bool = True) -> int:
    return conn.execute(sa.text(
        "INSERT INTO internal_user (name, wecom_userid, dingtalk_userid, active, source_system, external_id) "
        "VALUES (:n, :w, :d, :a, 'crm', :n) RETURNING id"),
        {"n": name, "w": wecom, "d": dingtalk, "a": active}).scalar_one()


def due_task(conn, assignee: int) -> int:
    return conn.execute(sa.text("INSERT INTO task (title, assignee_id, due_at) VALUES ('回访', :a, :d) RETURNING id"),
                        {"a": assignee, "d": NOW + dt.timedelta(minutes=20)}).scalar_one()


@pytest.fixture
def team(db) -> dict[str, int]:
    with db.begin() as conn:
        return {
            "both": person(conn, "两边都有", wecom="both-w", dingtalk="both-d"),
            "wecom_only": person(conn, "只在企业微信", wecom="only-w"),
            "dingtalk_only": person(conn, "只在钉钉", dingtalk="only-d"),
            "nowhere": person(conn, "都不在"),
            "inactive": person(conn, "已停用", wecom="gone-w", dingtalk="gone-d", active=False),
        }


def reminded(db) -> dict[int, str]:
    return {int(r.user): r.kind.partition(".")[0]
            for r in rows(db, "SELECT kind, payload->>'recipient_user_id' AS user FROM outbox WHERE kind LIKE "
                              "'%.reminder'")}


@pytest.mark.parametrize(("preference", "both_on"), [(("dingtalk", "wecom"), "dingtalk"),
                                                     (("wecom", "dingtalk"), "wecom"), ((), "dingtalk")],
                         ids=["dingtalk-first", "wecom-first", "default-by-name"])
def test_each_person_is_reminded_on_one_platform_by_directory_and_preference(db, team, preference, both_on):
    with db.begin() as conn:
        for user in team.values():
            due_task(conn, user)
        counts = evaluate_reminders(conn, NOW, ReminderPolicy(channels=preference))
    assert reminded(db) == {team["both"]: both_on, team["wecom_only"]: "wecom", team["dingtalk_only"]: "dingtalk"}
    assert counts.queued == 3 and counts.no_account == 2
    problems = sorted(p for r in rows(db, "SELECT problems FROM task") for p in r.problems)
    platforms = " or ".join(c.label for c in channels(preference))
    assert problems == [f"{who} has no active account on {platforms}: 'due' reminder not sent"
                        for who in ("已停用", "都不在")]
    # the recipient's platform-specific message was built once, at enqueue time
    payloads = {r.kind: r.payload for r in rows(db, "SELECT kind, payload FROM outbox")}
    assert "msg" in payloads["dingtalk.reminder"] and "card" in payloads["wecom.reminder"]


def test_a_changed_preference_or_directory_does_not_remind_anyone_twice(db, team):
    with db.begin() as conn:
        due_task(conn, team["both"])
        first = evaluate_reminders(conn, NOW, ReminderPolicy(channels=("dingtalk", "wecom")))
        # the company flips its preference, and a WeCom-only person joins DingTalk too
        conn.execute(sa.text("UPDATE internal_user SET dingtalk_userid = 'late-d' WHERE id = :u"),
                     {"u": team["wecom_only"]})
        again = evaluate_reminders(conn, NOW + dt.timedelta(minutes=5), ReminderPolicy(channels=("wecom", "dingtalk")))
    assert (first.queued, again.queued, again.already_queued) == (1, 0, 1)
    assert scalar(db, "SELECT count(*) FROM outbox") == 1 and reminded(db) == {team["both"]: "dingtalk"}


def test_to_dos_go_only_to_platforms_that_hold_them(db, team):
    with db.begin() as conn:
        tasks = {who: due_task(conn, user) for who, user in team.items()}
        counts = evaluate_todos(conn, NOW, TodoPolicy(channels=("wecom", "dingtalk")))
        again = evaluate_todos(conn, NOW, TodoPolicy(channels=("wecom", "dingtalk")))
    # WeCom-preferred people get no to-do (WeCom has no to-do API); DingTalk people get one, once
    todos = rows(db, "SELECT kind, idempotency_key, payload FROM outbox")
    assert [(t.kind, t.payload["task_id"]) for t in todos] == [("dingtalk.todo", tasks["dingtalk_only"])]
    assert todos[0].idempotency_key == f"todo:task-{tasks['dingtalk_only']}:1"
    assert todos[0].payload["source_id"] == f"crm-task-{tasks['dingtalk_only']}"
    assert (counts.queued, again.queued, again.waiting) == (1, 0, 1)


def test_the_preference_names_chat_platforms_only():
    with pytest.raises(ConfigError, match="kingdee"):
        channels(("kingdee",))
    assert [c.system for c in channels(("wecom",))] == ["wecom", "dingtalk"]
    assert ReminderSettings(channel_preference=" dingtalk, wecom ").channels() == ("dingtalk", "wecom")
    with pytest.raises(ValueError):
        ReminderSettings(channel_preference="dingtalk;wecom")
