"""A tenant on WeCom and DingTalk at once: East and South China sales moved to DingTalk (its
app's scope), everyone else is on WeCom. Both directories sync onto the same CRM people;
every reminder reaches its person on exactly one platform, checked in both sandboxes' logs."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest
import sqlalchemy as sa

from connectors.dingtalk.sandbox import dingtalk_directory
from hub.demo.data import load_crm_demo
from hub.registry import connector
from hub.rules.reminders import ReminderPolicy, evaluate_reminders
from hub.runtime import HubRuntime, load_sandbox
from tests.conftest import rows, scalar

pytestmark = pytest.mark.e2e
MOVED_TO_DINGTALK = (3, 4)  # 华东销售部, 华南销售部


def test_each_person_is_reminded_on_exactly_one_platform(settings, db):
    hub = HubRuntime(settings.with_connector("dingtalk", max_qps=200), db, actor="test")
    try:
        hub.sandbox("dingtalk", visible_department_ids=MOVED_TO_DINGTALK, api_qps=200)
        seed = load_sandbox(connector("wecom")).demo_seed()  # type: ignore[misc]
        now = dt.datetime.now(dt.UTC)
        with db.begin() as conn:
            load_crm_demo(conn, seed["people"], seed["companies"], now=now, orders=0)
            conn.execute(sa.text("UPDATE customer SET assigned_at = NULL"))
            # one task per person, overdue, so managers hear of them too
            conn.execute(sa.text("DELETE FROM task"))
            conn.execute(sa.text("INSERT INTO task (title, assignee_id, due_at) SELECT '季度回访 ' || name, id, :d "
                                 "FROM internal_user"), {"d": now - dt.timedelta(hours=3)})

        # given a rep WeCom lists as disabled who moved to DingTalk and is active there
        state = hub.sandbox("dingtalk").app.state.dingtalk
        moved_rep = next(m for m in state.members.values() if m.person.status == 2)
        assert set(moved_rep.dept_id_list) & set(MOVED_TO_DINGTALK)
        state.members[moved_rep.userid] = replace(moved_rep, active=True)

        # when both directories are synced onto the CRM's people
        hub.sync("wecom", "directory")
        hub.sync("dingtalk", "directory")
        # then there are still 40 people; the moved teams carry both ids
        moved = {m.person.userid for m in dingtalk_directory() if set(m.dept_id_list) & set(MOVED_TO_DINGTALK)}
        assert scalar(db, "SELECT count(*) FROM internal_user") == 40
        assert scalar(db, "SELECT count(*) FROM internal_user WHERE dingtalk_userid IS NOT NULL") == len(moved)
        assert scalar(db, "SELECT count(*) FROM internal_user WHERE wecom_userid IS NOT NULL") == 40
        # and syncing again changes nothing: the two directories do not undo each other
        again = [hub.sync(system, "directory")[0].counts for system in ("wecom", "dingtalk")]
        assert [(c.inserted, c.updated, c.unchanged) for c in again] == [(0, 0, 40), (0, 0, len(moved))]
        rep_row = rows(db, "SELECT id, active, directories FROM internal_user WHERE dingtalk_userid = :u",
                       u=moved_rep.userid)[0]
        assert rep_row.active and rep_row.directories["wecom"]["active"] is False
        assert rep_row.directories["dingtalk"]["active"] is True

        # when the reminders go out, DingTalk preferred where it knows the person
        with db.begin() as conn:
            counts = evaluate_reminders(conn, now, ReminderPolicy(channels=("dingtalk", "wecom")))
        outcome = hub.dispatcher().drain(wait_for_scheduled=True, timeout_s=60)
        assert outcome.dead == 0

        # then every active person got their reminders on one platform only
        wecom_ids = {u.wecom_userid.lower(): u.id for u in rows(db, "SELECT id, wecom_userid FROM internal_user")}
        ding_ids = {u.dingtalk_userid: u.id for u in rows(db, "SELECT id, dingtalk_userid FROM internal_user "
                                                              "WHERE dingtalk_userid IS NOT NULL")}
        on_wecom = {wecom_ids[u.lower()] for m in hub.sandbox("wecom").app.state.wecom.messages for u in m.delivered_to}
        on_dingtalk = {ding_ids[u] for n in hub.sandbox("dingtalk").app.state.dingtalk.notice_log()
                       for u in n["delivered_to"]}
        assert on_wecom and on_dingtalk and not on_wecom & on_dingtalk
        assert counts.queued_by_channel["dingtalk"] > 0 and counts.queued_by_channel["wecom"] > 0
        # and the platform is the one the directories and the preference say
        dingtalk_people = set(ding_ids.values())
        assert on_dingtalk <= dingtalk_people and not on_wecom & dingtalk_people
        queued = rows(db, "SELECT kind, payload->>'recipient_user_id' AS who FROM outbox")
        assert all((q.kind == "dingtalk.reminder") == (int(q.who) in dingtalk_people) for q in queued)
        # the rep WeCom disabled is reached where they are active: DingTalk
        assert rep_row.id in on_dingtalk
    finally:
        hub.close()
