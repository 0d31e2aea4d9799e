"""End to end: two dispatcher processes share one WeCom member's message budget.

WeCom lets one app send one member at most 30 messages a minute and 1,000 an hour and drops
the excess *silently* (messaging-apis.md §1.4). Here the windows are shortened (20 per
second, 50 per 4 s) in the sandbox and in the hub's setting alike, so 200 reminders to one
manager take seconds, not hours. Two ``hub dispatch`` processes send them at once; the
sandbox's own message log (its delivery timestamps) shows the budget held between them:
nothing dropped, no window over its limit, every reminder delivered once.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from connectors.kit.sandbox import serve_in_thread
from connectors.wecom.sandbox import demo_directory, make_sandbox
from hub.rules.reminders import ReminderPolicy, evaluate_reminders
from tests.conftest import scalar
from tests.support.dispatchers import dispatcher_env, start_dispatcher

pytestmark = pytest.mark.e2e

WINDOWS = ((1.0, 20), (4.0, 50))  # (seconds, limit): the shape of 30/min and 1,000/h
REMINDERS = 200


def most_in_any_window(times: list[float], seconds: float) -> int:
    """The largest number of ``times`` inside one sliding window of ``seconds``."""
    times = sorted(times)
    return max(sum(1 for t in times if end - seconds < t <= end) for end in times)


def test_two_dispatcher_processes_keep_one_members_budget_together(db, tmp_path: Path):
    manager = next(u for u in demo_directory() if u.position == "区域销售经理" and u.status == 1)
    app = make_sandbox(member_message_limits=WINDOWS)
    with serve_in_thread(app) as wecom:
        # given 200 due tasks of one manager, each queueing a reminder to them
        now = dt.datetime.now(dt.UTC)
        with db.begin() as conn:
            user = conn.execute(sa.text(
                "INSERT INTO internal_user (name, wecom_userid, source_system, external_id) "
                "VALUES (:n, :u, 'crm', 'crm-mgr') RETURNING id"), {"n": manager.name, "u": manager.userid}
            ).scalar_one()
            for i in range(REMINDERS):
                conn.execute(sa.text("INSERT INTO task (title, assignee_id, due_at) VALUES (:t, :a, :d)"),
                             {"t": f"审批跟进 {i}", "a": user, "d": now + dt.timedelta(minutes=20)})
            assert evaluate_reminders(conn, now, ReminderPolicy()).queued == REMINDERS

        # when two dispatcher processes send them at the same time
        limits = ",".join(f"{limit}/{seconds:g}" for seconds, limit in WINDOWS)
        env = dispatcher_env(db, tmp_path, sandboxes={"wecom": wecom.url},
                             connectors={"wecom": {"member_message_limits": limits, "timeout_s": 2}},
                             outbox={"backoff_initial_s": 0.05, "backoff_max_s": 0.5})
        log = tmp_path / "dispatchers.log"
        children = [start_dispatcher(env, "wecom.reminder", log=log) for _ in range(2)]
        for child in children:
            assert child.wait(timeout=180) == 0, log.read_text()[-3000:]

        # then the sandbox delivered every reminder exactly once and dropped none
        log_entries = app.state.wecom.message_log(manager.userid)
        assert [e["status"] for e in log_entries] == ["delivered"] * REMINDERS
        assert set(Counter(e["content"]["task_id"] for e in log_entries).values()) == {1}
        # and no window of the sandbox's own timestamps holds more than its limit
        sent = [e["sent_at"] for e in log_entries]
        for seconds, limit in WINDOWS:
            assert most_in_any_window(sent, seconds) <= limit
        # the budget was the limit: the hour-like window was filled (so both shared, not raced)
        assert most_in_any_window(sent, WINDOWS[1][0]) == WINDOWS[1][1]
        # and both processes did part of the work
        senders = scalar(db, "SELECT count(DISTINCT actor) FROM audit_log WHERE outcome = 'ok' "
                             "AND operation = 'wecom.reminder'")
        assert senders == 2
        assert scalar(db, "SELECT count(*) FROM outbox WHERE status = 'done'") == REMINDERS
