"""Each Dagster job, run in process against the sandboxes: what it reports is what it did.

For every job the materialization metadata (read, inserted, updated, unchanged,
quarantined; sent, adopted, ... for outbound work) is compared with the rows in the
database, the ``sync_run`` rows the engine wrote, and the sandboxes' own records; and the
asset checks that ran with it must pass (warn-level checks must report the database's
numbers).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from decimal import Decimal
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from dagster import DagsterInstance

from hub.rules.orders import approve_order
from pipelines.definitions import build_definitions
from pipelines.in_process import op_config, run_job
from pipelines.resources import HubResource
from tests.conftest import rows, scalar
from tests.dagster.support import (
    HUB_ROWS,
    KINGDEE_STREAMS,
    assert_all_checks_passed,
    erp_records,
    load_crm,
    numbers,
    quarantined,
    sync_run,
)


def test_erp_inbound_reports_what_it_wrote_and_a_second_run_finds_everything_unchanged(run, db, kingdee_sandbox):
    # given an empty hub and a seeded ERP
    assert scalar(db, "SELECT count(*) FROM customer") == 0

    # when ERP inbound runs
    first = run("kingdee_inbound")

    # then each stream's asset reports what the ERP holds and what the hub now holds
    assert first.success, first.errors
    assert set(first.assets) == {f"kingdee/{s}" for s in KINGDEE_STREAMS}
    for stream in KINGDEE_STREAMS:
        metadata = first.assets[f"kingdee/{stream}"]
        assert metadata["read"] == erp_records(kingdee_sandbox, stream) > 0, stream
        assert metadata["inserted"] == scalar(db, HUB_ROWS[stream]), stream
        assert metadata["quarantined"] == quarantined(db, "kingdee", stream), stream
        assert metadata["read"] == metadata["inserted"] + metadata["quarantined"], stream
        assert metadata["updated"] == metadata["unchanged"] == 0, stream
        # and the numbers are the engine's own record of the run
        assert sync_run(db, metadata["sync_run_id"]) == {"status": "succeeded", **numbers(metadata)}
    # and the reconciliation and quarantine checks ran and passed
    assert {(c.asset, c.name) for c in first.checks} == {
        ("kingdee/receivables", "open_receivables_match"),
        *((f"kingdee/{s}", "quarantine_growth") for s in KINGDEE_STREAMS)}
    assert_all_checks_passed(first)
    reconciliation = first.check("kingdee/receivables", "open_receivables_match")
    hub_open = scalar(db, "SELECT sum(open_amount) FROM receivable")
    assert Decimal(reconciliation.metadata["hub_total"]) == Decimal(reconciliation.metadata["source_total"]) == hub_open
    assert reconciliation.metadata["mismatched"] == 0

    # when it runs again with nothing changed in the ERP
    held = {stream: scalar(db, HUB_ROWS[stream]) for stream in KINGDEE_STREAMS}
    second = run("kingdee_inbound")

    # then every record it reads again is reported unchanged, and nothing was written
    assert second.success, second.errors
    for stream in KINGDEE_STREAMS:
        metadata = second.assets[f"kingdee/{stream}"]
        assert metadata["inserted"] == metadata["updated"] == metadata["quarantined"] == 0, stream
        assert metadata["unchanged"] == metadata["read"], stream
        assert metadata["cursor_before"] == first.assets[f"kingdee/{stream}"]["cursor_after"], stream
        assert sync_run(db, metadata["sync_run_id"]) == {"status": "succeeded", **numbers(metadata)}
        assert scalar(db, HUB_ROWS[stream]) == held[stream], stream
    assert_all_checks_passed(second)
    assert scalar(db, "SELECT count(*) FROM sync_run WHERE status = 'succeeded'") == 2 * len(KINGDEE_STREAMS)


def test_orders_to_erp_pushes_each_approved_order_exactly_once_while_saves_fail(run, db, kingdee_sandbox):
    # given ERP customers in the hub, CRM orders for them and for CRM-only customers, all approved
    assert run("kingdee_inbound").success
    load_crm(db, erp_customers=5, orders=30)
    with db.begin() as conn:
        order_ids = conn.execute(sa.text("SELECT id FROM sales_order WHERE source_system = 'crm'")).scalars().all()
        for order_id in order_ids:
            approve_order(conn, order_id)
    erp = kingdee_sandbox.app.state.kingdee.data
    orders_before = len(erp.table("SAL_SaleOrder").docs)
    # and an ERP that loses responses and fails saves
    plan = kingdee_sandbox.app.state.faults
    plan.arm("drop_response", rate=0.3, seed=7, times=4, operations=["save"])
    plan.arm("http_500", times=2, operations=["save"])

    # when the orders go out, the run waiting for retries that fall due
    outcome = run("orders_to_erp", run_config=op_config("kingdee/sales_order_push", wait_for_retries_s=30))

    # then the ERP holds exactly one sales order per CRM order
    assert outcome.success, outcome.errors
    fired = Counter(kind for _, kind in plan.history)
    assert fired["drop_response"] > 0 and fired["http_500"] == 2
    crm_bills = Counter(d["FBillNo"] for d in erp.table("SAL_SaleOrder").docs.values()
                        if str(d["FBillNo"]).startswith("CRM-"))
    assert len(crm_bills) == len(order_ids) == 30 and set(crm_bills.values()) == {1}
    assert len(erp.table("SAL_SaleOrder").docs) == orders_before + 30
    # and the asset reports it as the outbox and the CRM orders record it
    metadata = outcome.assets["kingdee/sales_order_push"]
    assert metadata["done"] == metadata["outbox_done"] == 30
    assert metadata["failed"] == metadata["dead"] == 0
    assert metadata["retried"] >= fired["drop_response"] + fired["http_500"]
    assert metadata["adopted"] == scalar(db, "SELECT count(*) FROM outbox WHERE (result->>'adopted')::boolean")
    assert metadata["claimed"] == 30 + metadata["retried"]
    assert scalar(db, "SELECT count(*) FROM outbox WHERE status <> 'done'") == 0
    assert scalar(db, "SELECT count(*) FROM sales_order WHERE source_system = 'crm' "
                      "AND erp_bill_number = 'CRM-' || order_number") == 30
    # and the outbound checks pass
    assert {c.name for c in outcome.checks} == {"approved_orders_reached_erp", "outbox_not_stuck", "no_dead_letters"}
    assert_all_checks_passed(outcome)
    assert outcome.check("kingdee/sales_order_push", "no_dead_letters").metadata["dead_letters"] == 0


def test_an_order_approved_long_ago_that_never_reached_the_erp_fails_the_run(run, db, kingdee_sandbox):
    # given an order approved two hours ago whose push the ERP keeps refusing with HTTP 500
    load_crm(db, orders=1)
    with db.begin() as conn:
        order_id = conn.execute(sa.text("SELECT id FROM sales_order WHERE source_system = 'crm'")).scalar_one()
        approve_order(conn, order_id, at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=2))
    kingdee_sandbox.app.state.faults.arm("http_500", times=None, operations=["save"])

    # when the dispatch job runs (without waiting for the retry)
    outcome = run("orders_to_erp")

    # then the blocking check names the late order and the run fails
    check = outcome.check("kingdee/sales_order_push", "approved_orders_reached_erp")
    assert not check.passed and check.severity == "ERROR"
    assert check.metadata["late_orders"] == 1
    assert check.metadata["sample"] == scalar(db, "SELECT order_number FROM sales_order WHERE id = :id", id=order_id)
    assert outcome.assets["kingdee/sales_order_push"]["retried"] >= 1  # once, or again if due while it ran
    assert scalar(db, "SELECT status FROM outbox") == "pending"
    assert not outcome.success
    assert any("blocking asset check failed" in e and "approved_orders_reached_erp" in e for e in outcome.errors)


def test_receivables_to_crm_opens_one_collection_task_per_overdue_customer_and_is_idempotent(run, db):
    # given the ERP synced and CRM owners for ERP customers with open receivables
    assert run("kingdee_inbound").success
    load_crm(db, erp_customers=10)
    today = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()
    overdue_customers = scalar(db, "SELECT count(DISTINCT r.customer_id) FROM receivable r JOIN customer c "
                                   "ON c.id = r.customer_id WHERE r.open_amount > 0 AND r.due_date < :today "
                                   "AND c.owner_id IS NOT NULL", today=today)
    assert overdue_customers

    # when receivables come into the CRM
    first = run("receivables_to_crm")

    # then the receivables are already current, and each overdue customer got one 催收 task
    assert first.success, first.errors
    for stream in ("receivables", "receipts"):
        metadata = first.assets[f"kingdee/{stream}"]
        assert metadata["inserted"] == metadata["updated"] == 0 and metadata["unchanged"] == metadata["read"]
    followups = first.assets["crm/receivable_followups"]
    assert followups["to_owner"] == followups["created"] == overdue_customers
    assert followups["overdue_customers"] == followups["to_owner"] + followups["unrouted"]
    assert scalar(db, "SELECT count(*) FROM task WHERE kind = 'collection' AND status = 'open'") == overdue_customers
    assert scalar(db, "SELECT count(*) FROM task t JOIN customer c ON c.id = t.customer_id "
                      "WHERE t.kind = 'collection' AND t.assignee_id = c.owner_id") == overdue_customers
    assert_all_checks_passed(first, warnings=frozenset({"customers_without_owner"}))
    assert first.check("kingdee/receivables", "open_receivables_match").passed
    # and the customers nobody owns are counted, as the database has them
    owners = first.check("crm/receivable_followups", "customers_without_owner")
    assert owners.metadata["customers_without_owner"] == scalar(db, "SELECT count(*) FROM customer "
                                                                    "WHERE owner_id IS NULL") > 0
    assert followups["unrouted"] == owners.metadata["overdue_without_owner"] > 0  # no finance recipients set

    # and a second run changes nothing
    second = run("receivables_to_crm")
    assert second.success, second.errors
    followups = second.assets["crm/receivable_followups"]
    assert (followups["created"], followups["updated"], followups["closed"]) == (0, 0, 0)
    assert scalar(db, "SELECT count(*) FROM task WHERE kind = 'collection'") == overdue_customers


def test_directory_sync_links_crm_users_and_reports_unmatched_contacts_in_a_warning(run, db, wecom_sandbox):
    # given the CRM's users and customers, none linked to WeCom yet
    loaded = load_crm(db)
    directory = wecom_sandbox.app.state.wecom
    assert scalar(db, "SELECT count(*) FROM internal_user WHERE wecom_userid IS NOT NULL") == 0

    # when the WeCom directory and external contacts are synced
    outcome = run("wecom_inbound")

    # then every CRM user is found in the directory and linked, none duplicated
    assert outcome.success, outcome.errors
    people = outcome.assets["wecom/directory"]
    assert people["read"] == people["updated"] == loaded["users"] == len(directory.users)
    assert scalar(db, "SELECT count(*) FROM internal_user") == loaded["users"]
    assert scalar(db, "SELECT count(*) FROM internal_user WHERE wecom_userid IS NOT NULL") == loaded["users"]
    assert sync_run(db, people["sync_run_id"]) == {"status": "succeeded", **numbers(people)}
    # and external contacts land as contacts or, unmatched, in quarantine, as reported
    contacts = outcome.assets["wecom/external_contacts"]
    assert contacts["read"] == contacts["inserted"] + contacts["quarantined"] > 0
    assert contacts["read"] == len(directory.contacts)
    assert contacts["inserted"] == scalar(db, "SELECT count(*) FROM contact WHERE source_system = 'wecom'")
    assert contacts["quarantined"] == quarantined(db, "wecom", "external_contacts") > 0
    assert sync_run(db, contacts["sync_run_id"]) == {"status": "succeeded", **numbers(contacts)}
    # and the quarantine check warns about them (with the database's count) without failing the run
    warning = outcome.check("wecom/external_contacts", "quarantine_growth")
    assert (warning.passed, warning.severity) == (False, "WARN")
    assert warning.metadata["new_last_24h"] == warning.metadata["open_total"] == contacts["quarantined"]
    assert outcome.check("wecom/directory", "quarantine_growth").passed
    assert [c for c in outcome.checks if c.severity == "ERROR" and not c.passed] == []


def test_todo_pushes_delivers_each_due_reminder_once_and_a_second_run_sends_nothing(run, db, wecom_sandbox):
    # given CRM to-dos (some due, some overdue) and salespeople linked to WeCom
    load_crm(db)
    assert run("wecom_inbound").success
    wecom = wecom_sandbox.app.state.wecom
    # and a WeCom that expires the token once and loses a send response
    plan = wecom_sandbox.app.state.faults
    plan.arm("auth_expired", times=1)
    plan.arm("drop_response", times=1, operations=["message/send"])

    # when reminders are evaluated and pushed
    first = run("todo_pushes", run_config=op_config("wecom/reminder_push", wait_for_retries_s=30))

    # then each queued reminder reached its recipient exactly once (the sandbox's message log)
    assert first.success, first.errors
    due, sent = first.assets["crm/reminders_due"], first.assets["wecom/reminder_push"]
    queued = scalar(db, "SELECT count(*) FROM outbox WHERE kind = 'wecom.reminder'")
    assert due["wecom_queued"] == queued > 0
    delivered = Counter((user, m.content["task_id"], m.content.get("kind")) for m in wecom.messages
                        for user in m.delivered_to)
    assert len(delivered) == sent["done"] == sent["outbox_done"] == queued
    assert set(delivered.values()) == {1}
    assert sent["retried"] >= 1 and sent["failed"] == sent["dead"] == 0
    # and users without an active WeCom account are reported on their tasks instead
    assert due["no_account"] == scalar(db, "SELECT coalesce(sum(cardinality(problems)), 0) FROM task")
    assert due["tasks_created"] == scalar(db, "SELECT count(*) FROM task WHERE kind = 'first_followup'")

    # when the job runs again
    messages_before = len(wecom.messages)
    second = run("todo_pushes")

    # then nothing is queued or sent twice
    again_due, again_sent = second.assets["crm/reminders_due"], second.assets["wecom/reminder_push"]
    assert (again_due["wecom_queued"], again_due["already_queued"], again_sent["done"]) == (0, queued, 0)
    assert len(wecom.messages) == messages_before


def test_a_run_without_a_sandbox_url_starts_one_sandbox_for_all_its_steps_and_stops_it(fast_settings, db):
    # given definitions whose WeCom has neither an endpoint nor a running sandbox
    defs = build_definitions(HubResource.from_settings(fast_settings))
    threads_before = {t.name for t in threading.enumerate() if t.name.startswith("sandbox-")}

    # when directory sync runs (two assets, two checks)
    with DagsterInstance.ephemeral() as instance:
        outcome = run_job(defs, "wecom_inbound", instance=instance)

    # then all its WeCom calls went through one client to one sandbox: one access token for the run
    assert outcome.success, outcome.errors
    actors = {r.actor for r in rows(db, "SELECT DISTINCT actor FROM audit_log WHERE system = 'wecom' "
                                        "AND operation NOT LIKE 'batch:%' AND operation NOT LIKE 'run:%'")}
    assert actors == {f"dagster:wecom_inbound:{outcome.run_id[:8]}:wecom"}
    assert scalar(db, "SELECT count(*) FROM audit_log WHERE system = 'wecom' AND operation = 'gettoken'") == 1
    # and the sandbox is gone with the run
    assert {t.name for t in threading.enumerate() if t.name.startswith("sandbox-") and t.is_alive()} \
        <= threads_before


def test_a_run_on_a_schema_that_was_never_migrated_fails_with_the_fix(fast_settings, database_url):
    # given definitions pointing at a schema the migrations never built
    stale = fast_settings.model_copy(update={"database_schema": f"{fast_settings.database_schema}_stale"})
    defs = build_definitions(HubResource.from_settings(stale))

    # when a job runs
    with DagsterInstance.ephemeral() as instance:
        outcome = run_job(defs, "wecom_inbound", instance=instance)

    # then it fails before touching anything, saying what to do
    assert not outcome.success
    assert outcome.assets == {}
    assert any("hub db upgrade" in error for error in outcome.errors), outcome.errors


def test_leads_to_pool_returns_the_leads_nobody_followed_up_and_reports_them(run, db):
    # given one lead assigned a month ago without follow-up, and one followed up since
    with db.begin() as conn:
        owner = conn.execute(sa.text("INSERT INTO internal_user (name, source_system, external_id) VALUES "
                                     "('王芳', 'crm', 'crm-wf') RETURNING id")).scalar_one()
        for name, contacted in (("无人跟进公司", None), ("已跟进公司", "now()")):
            conn.execute(sa.text(
                "INSERT INTO lead (company_name, status, owner_id, assigned_at, last_contacted_at, source_system, "
                f"external_id) VALUES (:n, 'assigned', :o, now() - interval '30 days', {contacted or 'NULL'}, 'crm', :n)"),
                {"n": name, "o": owner})

    # when the job runs
    outcome = run("leads_to_pool")

    # then the unworked lead is back in the pool, as the asset reports
    assert outcome.success, outcome.errors
    metadata = outcome.assets["crm/leads_returned_to_pool"]
    assert metadata["returned"] == 1 == metadata["leads_in_pool"]
    assert dict(rows(db, "SELECT company_name, status FROM lead")) == {"无人跟进公司": "pool", "已跟进公司": "assigned"}


def test_todo_pushes_applies_the_automation_rules_once_and_shows_the_plan(run, db):
    # given rules active for a month, and a customer assigned two days ago that nobody contacted
    # (its owner has no chat account: the reminder is reported on the task instead)
    with db.begin() as conn:
        owner = conn.execute(sa.text("INSERT INTO internal_user (name, source_system, external_id) VALUES "
                                     "('赵敏', 'crm', 'crm-zm') RETURNING id")).scalar_one()
        conn.execute(sa.text("INSERT INTO customer (name, normalized_name, owner_id, assigned_at) VALUES "
                             "('台州远景阀门有限公司', '台州远景阀门', :o, now() - interval '2 days')"), {"o": owner})
        conn.execute(sa.text("INSERT INTO rule_activation (rule, activated_at, fingerprint) VALUES "
                             "('customer-uncontacted-24h', now() - interval '30 days', 'test')"))

    # when the reminder job runs (twice)
    first = run("todo_pushes")
    second = run("todo_pushes")

    # then the rule fired once, and the asset's plan names the customer and the actions
    assert first.success and second.success, (first.errors, second.errors)
    applied = first.assets["crm/automation_rules"]
    assert applied["fired_customer_uncontacted_24h"] == 1 == applied["fired"]
    assert "台州远景阀门有限公司" in applied["plan"] and "remind owner, supervisor in chat" in applied["plan"]
    assert second.assets["crm/automation_rules"]["fired"] == 0
    assert scalar(db, "SELECT count(*) FROM rule_firing WHERE rule = 'customer-uncontacted-24h'") == 1
    assert scalar(db, "SELECT count(*) FROM task WHERE kind = 'first_followup'") == 1
