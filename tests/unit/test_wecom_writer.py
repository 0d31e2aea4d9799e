"""ReminderWriter against the sandbox over real HTTP: lost replies never produce a twin."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from connectors.kit.sandbox import serve_in_thread
from connectors.wecom.client import WeComClient
from connectors.wecom.mapping import ReminderTask, build_reminder_card
from connectors.wecom.sandbox import (
    SANDBOX_AGENT_ID,
    SANDBOX_CORP_ID,
    SANDBOX_SECRET,
    demo_directory,
    make_sandbox,
)
from connectors.wecom.writers import ReminderWriter, ScheduleWriter, make_writer
from hub.contracts import Attempt
from hub.errors import PermanentError, RecipientError, RetryableError

REPS = [u for u in demo_directory() if u.is_sales_rep and u.status == 1]
UNLICENSED = REPS[-1]
T0 = dt.datetime(2024, 5, 8, 1, 0, tzinfo=dt.UTC)


class Clock:
    """One controllable clock for the sandbox (epoch seconds) and the writer (datetime)."""

    def __init__(self) -> None:
        self.now = T0

    def epoch(self) -> float:
        return self.now.timestamp()

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture(scope="module")
def env() -> Iterator[tuple[Any, Clock, str]]:
    clock = Clock()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NO_PROXY", "127.0.0.1,localhost")
        mp.setenv("no_proxy", "127.0.0.1,localhost")
        app = make_sandbox(clock=clock.epoch, unlicensed_userids=[UNLICENSED.userid])
        with serve_in_thread(app) as server:
            yield app, clock, server.url


@pytest.fixture
def client(env) -> Iterator[WeComClient]:
    app, _, url = env
    app.state.faults.clear()
    with WeComClient(corp_id=SANDBOX_CORP_ID, secret=SecretStr(SANDBOX_SECRET), agent_id=SANDBOX_AGENT_ID,
                     base_url=url, timeout=2.0) as wecom:
        yield wecom
    app.state.faults.clear()


def payload(recipient: str, *, kind: str = "due", task_id: int = 42, interval: int = 1800) -> dict[str, Any]:
    task = ReminderTask(task_id=task_id, title="回访采购经理，确认年度框架协议报价",
                        customer_name="苏州恒瑞精密机械有限公司", due_at=T0 + dt.timedelta(hours=6))
    return {"task_id": task_id, "recipient": recipient, "kind": kind,
            "card": build_reminder_card(task, profile_url=f"https://hub.example.com/customers/{task_id}", kind=kind),
            "duplicate_check_interval": interval}


def log_for(app: Any, userid: str) -> list[dict[str, Any]]:
    return app.state.wecom.message_log(userid)


def drop_next_send(app: Any) -> None:
    app.state.faults.configure({"clear": True, "faults": [{"kind": "drop_response", "times": 1,
                                                           "operations": ["message/send"]}]})


def test_first_attempt_sends_one_card(env, client):
    # given a reminder for a rep
    app, clock, _ = env
    rep = REPS[0]
    writer = ReminderWriter(client, clock=lambda: clock.now)
    # when applied, then WeCom got exactly one template card and the msgid is the result
    result = writer.apply("outbox-1", payload(rep.userid), Attempt(number=1, first_attempt_at=clock.now))
    [entry] = log_for(app, rep.userid)
    assert result.external_id == entry["msgid"] and entry["status"] == "delivered"
    assert entry["msgtype"] == "template_card" and entry["truncated"] == []


def test_dropped_reply_then_retry_inside_window_leaves_one_message(env, client):
    # given a send whose reply is lost after WeCom accepted it
    app, clock, _ = env
    rep = REPS[1]
    writer = ReminderWriter(client, clock=lambda: clock.now)
    first_at = clock.now
    drop_next_send(app)
    with pytest.raises(RetryableError):
        writer.apply("outbox-2", payload(rep.userid), Attempt(number=1, first_attempt_at=first_at))
    # when the dispatcher retries 10 minutes later with the outcome unknown
    clock.advance(600)
    result = writer.apply("outbox-2", payload(rep.userid),
                          Attempt(number=2, first_attempt_at=first_at, outcome_unknown=True))
    # then WeCom's duplicate check suppressed the twin: one message, the same msgid
    [entry] = log_for(app, rep.userid)
    assert entry["duplicates_suppressed"] == 1
    assert result.external_id == entry["msgid"]
    assert result.detail["resent_after_unknown_outcome"] is True


def test_retry_outside_window_is_refused_and_nothing_is_sent(env, client):
    # given a lost reply and a retry that comes too late for WeCom's duplicate check
    app, clock, _ = env
    rep = REPS[2]
    writer = ReminderWriter(client, clock=lambda: clock.now)
    first_at = clock.now
    drop_next_send(app)
    with pytest.raises(RetryableError):
        writer.apply("outbox-3", payload(rep.userid), Attempt(number=1, first_attempt_at=first_at))
    clock.advance(1800 - 60)  # inside WeCom's window, but not by the writer's safety margin
    # when retried, then the writer refuses (a person decides) and sends nothing
    with pytest.raises(PermanentError) as caught:
        writer.apply("outbox-3", payload(rep.userid),
                     Attempt(number=2, first_attempt_at=first_at, outcome_unknown=True))
    assert caught.value.code == "duplicate_window_passed"
    assert "a person must" in str(caught.value)
    [entry] = log_for(app, rep.userid)
    assert entry["duplicates_suppressed"] == 0


def test_why_the_window_matters_wecom_delivers_a_twin_after_it(env, client):
    # given a card delivered with the duplicate check
    app, clock, _ = env
    rep = REPS[3]
    body = payload(rep.userid)["card"]
    client.send_message([rep.userid], body, enable_duplicate_check=True, duplicate_check_interval=1800)
    # when the identical request comes after the window, then WeCom delivers it again
    clock.advance(1801)
    client.send_message([rep.userid], body, enable_duplicate_check=True, duplicate_check_interval=1800)
    assert len(log_for(app, rep.userid)) == 2


def test_distinct_reminders_to_one_rep_are_both_delivered(env, client):
    app, clock, _ = env
    rep = REPS[4]
    writer = ReminderWriter(client, clock=lambda: clock.now)
    writer.apply("outbox-5a", payload(rep.userid, kind="due"), Attempt(1, clock.now))
    writer.apply("outbox-5b", payload(rep.userid, kind="overdue"), Attempt(1, clock.now))
    assert [e["duplicates_suppressed"] for e in log_for(app, rep.userid)] == [0, 0]


def test_unknown_user_is_a_recipient_error(env, client):
    _, clock, _ = env
    writer = ReminderWriter(client, clock=lambda: clock.now)
    with pytest.raises(RecipientError) as caught:
        writer.apply("outbox-6", payload("left.the.company"), Attempt(1, clock.now))
    assert caught.value.recipients == ["left.the.company"]
    assert caught.value.external_id == "left.the.company"


def test_unlicensed_user_is_a_recipient_error(env, client):
    app, clock, _ = env
    writer = ReminderWriter(client, clock=lambda: clock.now)
    with pytest.raises(RecipientError) as caught:
        writer.apply("outbox-7", payload(UNLICENSED.userid), Attempt(1, clock.now))
    assert caught.value.recipients == [UNLICENSED.userid]
    assert log_for(app, UNLICENSED.userid) == []


@pytest.mark.parametrize(
    "bad",
    [{"recipient": ""}, {"recipient": "a|b"}, {"card": {"msgtype": "text"}}, {"duplicate_check_interval": 20000},
     {"duplicate_check_interval": "1800"}],
)
def test_malformed_payload_is_permanent(env, client, bad):
    _, clock, _ = env
    writer = ReminderWriter(client, clock=lambda: clock.now)
    with pytest.raises(PermanentError) as caught:
        writer.apply("outbox-8", {**payload(REPS[5].userid), **bad}, Attempt(1, clock.now))
    assert caught.value.code == "bad_payload"


def test_schedule_writer_creates_once_and_refuses_blind_resends(env, client):
    app, clock, _ = env
    writer = make_writer("schedule", client)
    assert isinstance(writer, ScheduleWriter)
    body = {"task_id": 9, "attendees": [REPS[6].userid], "summary": "拜访 无锡华锐",
            "start": "2024-05-08T15:00:00+08:00", "end": "2024-05-08T16:00:00+08:00", "remind_before_s": 900}
    result = writer.apply("outbox-9", body, Attempt(1, clock.now))
    assert result.external_id in app.state.wecom.schedules
    with pytest.raises(PermanentError) as caught:
        writer.apply("outbox-9", body, Attempt(2, clock.now, outcome_unknown=True))
    assert caught.value.code == "outcome_unknown"
    assert len(app.state.wecom.schedules) == 1
