"""End to end: the CRM's front door for leads and owners, over real HTTP with the sandboxes.

- A lead arrives through the API (``hub serve``'s app on a real port) → the rule table gives it
  to the next rep of a team → a first follow-up task → the reminder reaches that rep's WeCom
  (the WeCom sandbox's own message log), through the real outbox dispatcher.
- ERP-only customers (Kingdee sandbox) get owners from their ERP salesperson (BD_Saler linked
  to the WeCom directory's people), with provenance, and an overdue one gets its 催收 task,
  reminded in WeCom; what no salesperson covers sits in the pool and goes to finance.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import httpx
import pytest
import sqlalchemy as sa

from connectors.kit.sandbox import serve_in_thread
from hub.access import Role
from hub.rules.collections import evaluate_collection_tasks
from hub.rules.reminders import ReminderPolicy, evaluate_reminders
from hub.runtime import HubRuntime
from hub.settings import LeadSettings, OutboxSettings
from hub.web import create_web_app
from tests.conftest import rows, scalar
from tests.support.access import bearer, issue_token

pytestmark = pytest.mark.e2e


@pytest.fixture
def hub(settings, db):
    fast = settings.model_copy(update={"outbox": OutboxSettings(backoff_initial_s=0.01, backoff_max_s=0.05,
                                                                lease_s=30)})
    runtime = HubRuntime(fast, db, actor="test")
    yield runtime
    runtime.close()


def delivered(hub, userid: str) -> list[dict]:
    """The WeCom sandbox's messages that reached ``userid``."""
    return [m.content for m in hub.sandbox("wecom").app.state.wecom.messages if userid in m.delivered_to]


def test_a_lead_from_the_api_is_assigned_by_rule_and_its_owner_is_reminded_in_wecom(hub, db):
    # given the WeCom directory in the hub, and a rule giving 制造 leads to a manager's team in turn
    hub.sync("wecom", "directory")
    manager = rows(db, "SELECT m.wecom_userid, count(*) AS reports FROM internal_user u JOIN internal_user m "
                       "ON m.id = u.manager_id WHERE u.active GROUP BY m.wecom_userid ORDER BY 2 DESC, 1 LIMIT 1")[0]
    assert manager.reports >= 2
    leads = LeadSettings(rules=[{"name": "制造业轮转", "industries": ["制造"], "team": f"wecom:{manager.wecom_userid}"}],
                         first_followup_days=3)
    settings = hub.settings.model_copy(update={"leads": leads})
    crm = bearer(issue_token(db, Role.CRM))

    # when the CRM sends two leads through the API
    with serve_in_thread(create_web_app(db, settings)) as server:
        answers = [httpx.post(f"{server.url}/api/leads", headers={**crm, "Idempotency-Key": f"lead-{i}"}, json={
            "external_id": f"CRM-LEAD-{i}", "company_name": name, "industry": "智能制造", "region": "江苏",
            "contact_name": "周经理", "mobile": f"1391234567{i}", "estimated_amount": "80000.00"}, timeout=10)
            for i, name in enumerate(("无锡新锐智造有限公司", "常州远航精工有限公司"))]
    assert [a.status_code for a in answers] == [201, 201], [a.text for a in answers]

    # then each went to a different member of the team, by the rule, with a first follow-up task
    owners = [a.json()["owner_id"] for a in answers]
    assert len(set(owners)) == 2 and all(a.json()["assigned_rule"] == "制造业轮转" for a in answers)
    team = set(rows(db, "SELECT u.id FROM internal_user u JOIN internal_user m ON m.id = u.manager_id "
                        "WHERE m.wecom_userid = :m", m=manager.wecom_userid))
    assert {(o,) for o in owners} <= team
    tasks = rows(db, "SELECT id, assignee_id, lead_id FROM task WHERE kind = 'lead_followup' ORDER BY id")
    assert [t.assignee_id for t in tasks] == owners

    # when the reminder rules run and the outbox delivers
    with db.begin() as conn:
        queued = evaluate_reminders(conn, dt.datetime.now(dt.UTC), ReminderPolicy())
    assert queued.queued_by_channel.get("wecom") == 2
    counts = hub.dispatcher().drain(timeout_s=60)
    assert counts.done == 2 and counts.dead == 0

    # then each owner got the "new lead" reminder in WeCom, once
    for task, company in zip(tasks, ("无锡新锐智造有限公司", "常州远航精工有限公司"), strict=True):
        userid = scalar(db, "SELECT wecom_userid FROM internal_user WHERE id = :id", id=task.assignee_id)
        messages = delivered(hub, userid)
        assert len(messages) == 1, messages
        assert company in str(messages[0]) and "新线索" in str(messages[0])
    assert scalar(db, "SELECT count(*) FROM task WHERE push_state -> 'wecom' IS NOT NULL") == 2


def test_an_erp_only_overdue_customer_gets_its_owner_from_the_erp_salesperson_and_a_collection_task(hub, db):
    # given the WeCom directory (the company's people) and the Kingdee ERP with its salespeople
    hub.sandbox("kingdee", scale=0.02)
    hub.sync("wecom", "directory")
    finance = scalar(db, "SELECT wecom_userid FROM internal_user WHERE active AND wecom_userid IS NOT NULL "
                         "AND id NOT IN (SELECT manager_id FROM internal_user WHERE manager_id IS NOT NULL) "
                         "ORDER BY id DESC LIMIT 1")

    # when the ERP is synced
    hub.sync("kingdee")

    # then its salespeople are linked to the directory's people, and the ERP-only customers have owners
    linked = scalar(db, "SELECT count(*) FROM external_identity WHERE system = 'kingdee' AND object = 'salesperson'")
    assert linked > 0
    owned = rows(db, "SELECT c.id, c.owner_id, c.field_sources -> 'owner_id' AS source FROM customer c "
                     "WHERE c.owner_id IS NOT NULL ORDER BY c.id")
    assert len(owned) > 0
    first = owned[0]
    assert first.source["system"] == "kingdee" and first.source["external_id"].startswith("CUST")
    erp_salesperson = scalar(db, "SELECT e.canonical_id FROM external_identity e WHERE e.system = 'kingdee' "
                                 "AND e.object = 'salesperson' AND e.canonical_id = :o LIMIT 1", o=first.owner_id)
    assert erp_salesperson == first.owner_id

    # when the collection rule runs (finance chases what nobody owns)
    today = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()
    with db.begin() as conn:
        counts = evaluate_collection_tasks(conn, today, finance_recipients=[f"wecom:{finance}"])
    overdue_owned = scalar(db, "SELECT count(DISTINCT r.customer_id) FROM receivable r JOIN customer c "
                               "ON c.id = r.customer_id WHERE r.open_amount > 0 AND r.due_date < :t "
                               "AND c.owner_id IS NOT NULL", t=today)
    assert counts.to_owner == overdue_owned > 0 and counts.unrouted == 0
    assert counts.overdue_customers == counts.to_owner + counts.to_finance
    biggest = rows(db, "SELECT t.id, t.title, t.assignee_id, c.owner_id FROM task t JOIN customer c ON c.id = "
                       "t.customer_id WHERE t.kind = 'collection' AND c.owner_id IS NOT NULL ORDER BY t.id LIMIT 1")[0]
    assert biggest.title.startswith("催收：") and biggest.assignee_id == biggest.owner_id
    assert scalar(db, "SELECT count(*) FROM task WHERE kind = 'collection'") == counts.created > 0

    # and the owner hears of it in WeCom
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE task SET due_at = now() WHERE id = :id"), {"id": biggest.id})
        conn.execute(sa.text("UPDATE task SET status = 'cancelled' WHERE id <> :id"), {"id": biggest.id})
        evaluate_reminders(conn, dt.datetime.now(dt.UTC), ReminderPolicy())
    hub.dispatcher().drain(timeout_s=60)
    userid = scalar(db, "SELECT wecom_userid FROM internal_user WHERE id = :id", id=biggest.owner_id)
    assert any("催收" in str(m) for m in delivered(hub, userid))
