"""End to end: signed webhooks back to the CRM, through the outbox, to a receiver over real HTTP.

Real Postgres, the CRM sandbox's receiver (it verifies every signature and de-duplicates by
``X-Hub-Delivery``), the real dispatcher, the Kingdee and DingTalk sandboxes as the sources of
the events. The receiver is the test's witness: every request it got verified, and it saw
each event exactly once per delivery id, in the order they happened per customer.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from connectors.crm.sandbox import SANDBOX_SECRET, create_app
from connectors.kit.sandbox import RunningServer, serve_in_thread
from hub.outbox import replay
from hub.rules import webhooks
from hub.rules.orders import approve_order
from hub.runtime import HubRuntime
from hub.settings import OutboxSettings, Settings
from tests.conftest import rows, scalar

pytestmark = pytest.mark.e2e

CUSTOMERS = 12
EVENTS_EACH = 6


@pytest.fixture
def receiver() -> Iterator[RunningServer]:
    with serve_in_thread(create_app()) as server:
        server.app.state.faults.timeout_s = 1.0  # longer than the hub's 0.5 s below
        yield server


def webhook_settings(settings: Settings, receiver: RunningServer, **outbox: float) -> Settings:
    fast = OutboxSettings(**{"max_attempts": 10, "backoff_initial_s": 0.01, "backoff_max_s": 0.05, "lease_s": 30,
                             **outbox})  # type: ignore[arg-type]
    return settings.with_connector("crm", base_url=receiver.url + "/webhooks", signing_secret=SANDBOX_SECRET,
                                   timeout_s=0.5).model_copy(update={"outbox": fast})


@pytest.fixture
def hub(settings, db, receiver) -> Iterator[HubRuntime]:
    runtime = HubRuntime(webhook_settings(settings, receiver), db, actor="test")
    yield runtime
    runtime.close()


def make_customers(db, n: int) -> list[int]:
    with db.begin() as conn:
        ids = [conn.execute(sa.text(
            "INSERT INTO customer (name, normalized_name) VALUES (:n, :n) RETURNING id"),
            {"n": f"测试{i}号贸易有限公司"}).scalar_one() for i in range(n)]
        for cid in ids:
            conn.execute(sa.text("INSERT INTO external_identity (system, object, external_id, canonical_table, "
                                 "canonical_id) VALUES ('crm', 'customer', :x, 'customer', :id)"),
                         {"x": f"CRM-C{cid}", "id": cid})
    return ids


def emit_interleaved(db, customers: list[int], each: int) -> dict[int, list[str]]:
    """``each`` lead.assigned events per customer, customers interleaved, one transaction each."""
    emitted: dict[int, list[str]] = defaultdict(list)
    for n in range(each):
        for cid in customers:
            with db.begin() as conn:
                emitted[cid].append(webhooks.emit(conn, "lead.assigned", customer_id=cid, subject=f"lead:{cid}-{n}",
                                                  data={"lead_id": n, "owner_user_id": 7, "rule": "region"}))
    return emitted


def deliveries(receiver: RunningServer) -> dict:
    return receiver.app.state.receiver.snapshot()


def per_customer(accepted: list[dict]) -> dict[int, list[str]]:
    order: dict[int, list[str]] = defaultdict(list)
    for delivery in accepted:
        order[delivery["event"]["customer"]["id"]].append(delivery["delivery_id"])
    return order


def test_every_event_arrives_signed_once_per_delivery_id_and_in_order_per_customer_under_faults(hub, db, receiver):
    customers = make_customers(db, CUSTOMERS)
    emitted = emit_interleaved(db, customers, EVENTS_EACH)
    faults = receiver.app.state.faults
    # when the receiver answers 5xx, times out and loses replies to a share of the deliveries
    faults.arm("http_500", rate=0.2, seed=1, times=None)
    faults.arm("drop_response", rate=0.2, seed=2, times=None)
    faults.arm("timeout", rate=0.05, seed=3, times=4)
    counts = hub.dispatcher(kinds=["crm.webhook"]).drain(wait_for_scheduled=True, timeout_s=120)
    faults.clear()
    fired = {kind for _, kind in faults.history}
    assert fired == {"http_500", "drop_response", "timeout"}, fired

    # then every event was delivered, every request the receiver processed verified
    got = deliveries(receiver)
    assert counts.done == CUSTOMERS * EVENTS_EACH and counts.dead == counts.failed == 0
    assert got["rejected"] == []
    # and the receiver saw each event exactly once per delivery id; lost replies were redelivered
    # with the same delivery id (the receiver's duplicates), never as a new id
    ids = [d["delivery_id"] for d in got["accepted"]]
    assert sorted(ids) == sorted(i for e in emitted.values() for i in e)
    assert got["duplicates"] >= 1 and got["arrivals"] == len(ids) + got["duplicates"]
    # and each customer's events arrived in the order they happened
    assert per_customer(got["accepted"]) == emitted
    # and the body is the documented envelope, with the customer's ids and no secret
    first = got["accepted"][0]
    assert first["event_type"] == first["event"]["type"] == "lead.assigned"
    assert first["event"]["customer"]["external_ids"] == [
        {"system": "crm", "id": f"CRM-C{first['event']['customer']['id']}"}]
    assert set(first["event"]) == {"id", "type", "occurred_at", "customer", "subject", "data"}


def test_order_holds_with_several_dispatchers_while_different_customers_are_delivered_in_parallel(
        hub, db, receiver):
    customers = make_customers(db, CUSTOMERS)
    emitted = emit_interleaved(db, customers, EVENTS_EACH)
    faults = receiver.app.state.faults
    faults.latency_ms = 30
    faults.arm("http_500", rate=0.15, seed=5, times=None)
    faults.arm("latency", times=None)  # every other delivery takes 30 ms: room to overlap
    # when three dispatchers of four workers each deliver at once
    results = []

    def run() -> None:
        results.append(hub.dispatcher(kinds=["crm.webhook"]).drain(wait_for_scheduled=True, timeout_s=120))

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    got = deliveries(receiver)
    # then each customer's events still arrived in order, each once
    assert sum(r.done for r in results) == CUSTOMERS * EVENTS_EACH
    assert per_customer(got["accepted"]) == emitted
    assert {kind for _, kind in faults.history} == {"http_500", "latency"}
    # and deliveries of different customers overlapped: order per customer did not serialise them
    peak = receiver.app.state.gate.peak_in_flight
    assert 2 <= peak <= 4  # at most HUB_CRM__MAX_CONCURRENT_DELIVERIES across all dispatchers


def test_a_delivery_the_receiver_keeps_failing_is_dead_lettered_then_later_events_go_and_a_replay_delivers_it(
        settings, db, receiver):
    runtime = HubRuntime(webhook_settings(settings, receiver, retry_budget_s=0.5), db, actor="test")
    try:
        (cid,) = make_customers(db, 1)
        with db.begin() as conn:
            doomed = webhooks.emit(conn, "lead.assigned", customer_id=cid, subject="lead:1", data={"lead_id": 1})
        faults = receiver.app.state.faults
        faults.arm("http_500", times=None)
        # when the receiver answers 500 for longer than the retry budget
        counts = runtime.dispatcher(kinds=["crm.webhook"]).drain(wait_for_scheduled=True, timeout_s=30)
        assert counts.dead == 1
        dead = rows(db, "SELECT status, last_error FROM outbox WHERE kind = 'crm.webhook'")[0]
        assert dead.status == "dead" and "HTTP 500" in dead.last_error
        # then the customer's next event is not held up behind the dead letter
        faults.clear()
        with db.begin() as conn:
            later = webhooks.emit(conn, "lead.assigned", customer_id=cid, subject="lead:2", data={"lead_id": 2})
        assert runtime.dispatcher(kinds=["crm.webhook"]).drain(wait_for_scheduled=True, timeout_s=30).done == 1
        assert [d["delivery_id"] for d in deliveries(receiver)["accepted"]] == [later]
        # and `hub dlq replay` delivers the dead letter with its own delivery id
        with db.begin() as conn:
            assert replay(conn, None) == 1
        assert runtime.dispatcher(kinds=["crm.webhook"]).drain(wait_for_scheduled=True, timeout_s=30).done == 1
        assert [d["delivery_id"] for d in deliveries(receiver)["accepted"]] == [later, doomed]
    finally:
        runtime.close()


def test_with_webhooks_unconfigured_events_are_kept_but_nothing_is_enqueued(settings, db):
    (cid,) = make_customers(db, 1)
    with db.begin() as conn:
        webhooks.emit(conn, "lead.assigned", customer_id=cid, subject="lead:1", data={})
    runtime = HubRuntime(settings, db, actor="test")  # sandbox mode, no HUB_CRM__BASE_URL
    try:
        assert runtime.dispatcher().drain(timeout_s=10).claimed == 0
    finally:
        runtime.close()
    assert scalar(db, "SELECT count(*) FROM outbox") == 0
    assert scalar(db, "SELECT count(*) FROM webhook_event WHERE published_at IS NULL") == 1


def test_a_changed_bill_in_a_kingdee_sync_sends_receivable_changed_and_an_unchanged_resync_sends_nothing(
        hub, db, receiver):
    hub.sandbox("kingdee", scale=0.05)
    hub.sync("kingdee")
    assert scalar(db, "SELECT count(*) FROM webhook_event") == 0  # a first load is no change
    state = hub.sandbox("kingdee").app.state.kingdee.data
    held = {r.external_id: r for r in rows(db, "SELECT id, external_id, open_amount, status, customer_id "
                                               "FROM receivable WHERE source_system = 'kingdee' AND open_amount > 0")}
    paid, touched = [doc for doc in state.table("AR_receivable").docs.values() if doc["FBillNo"] in held][:2]
    with state.lock:
        # when finance books a part payment on one bill, and another bill is saved with its amounts as they were
        total = Decimal(str(paid["FALLAMOUNTFOR"]))
        open_now = Decimal(str(paid["FNOTWRITTENOFFAMOUNTFOR"]))
        paid["FNOTWRITTENOFFAMOUNTFOR"] = type(paid["FNOTWRITTENOFFAMOUNTFOR"])(open_now - Decimal("100.00"))
        paid["FWRITTENOFFAMOUNTFOR"] = type(paid["FNOTWRITTENOFFAMOUNTFOR"])(total - open_now + Decimal("100.00"))
        paid["FModifyDate"] = state.now()
        touched["FModifyDate"] = state.now()
        state.version += 1
    reports = {r.stream: r.counts for r in hub.sync("kingdee", "receivables")}
    assert reports["receivables"].updated == 2  # both rows were rewritten...
    # then exactly one receivable.changed, for the bill whose open amount changed
    hub.dispatcher(kinds=["crm.webhook"]).drain(wait_for_scheduled=True, timeout_s=30)
    (delivery,) = deliveries(receiver)["accepted"]
    event = delivery["event"]
    bill = held[paid["FBillNo"]]
    assert event["type"] == "receivable.changed" and event["subject"] == f"receivable:{bill.id}"
    assert event["customer"]["id"] == bill.customer_id
    assert {"system": "kingdee", "id": event["customer"]["external_ids"][0]["id"]} in event["customer"]["external_ids"]
    assert Decimal(event["data"]["open_amount"]) == bill.open_amount - Decimal("100.00")
    assert Decimal(event["data"]["open_amount_before"]) == bill.open_amount
    assert event["data"]["bill_number"] == paid["FBillNo"]
    # and a resync with nothing changed sends nothing more
    hub.sync("kingdee", "receivables")
    hub.dispatcher(kinds=["crm.webhook"]).drain(wait_for_scheduled=True, timeout_s=30)
    assert len(deliveries(receiver)["accepted"]) == 1


def test_an_order_reaching_kingdee_sends_order_in_erp_with_its_bill_number_and_status(hub, db, receiver):
    from connectors.kingdee.sandbox import SANDBOX_CREDENTIALS  # noqa: F401  (the sandbox is the ERP here)
    from hub.demo.data import load_crm_demo
    from hub.registry import connector
    from hub.runtime import load_sandbox

    hub.sandbox("kingdee", scale=0.05)
    hub.sync("kingdee", "customers")
    seed = load_sandbox(connector("wecom")).demo_seed()  # type: ignore[misc]
    with db.begin() as conn:
        erp_customers = conn.execute(sa.text("SELECT canonical_id FROM external_identity WHERE system = 'kingdee' "
                                             "ORDER BY id LIMIT 3")).scalars().all()
        load_crm_demo(conn, seed["people"], seed["companies"], now=dt.datetime.now(dt.UTC),
                      erp_customer_ids=list(erp_customers), orders=1)
        order_id = conn.execute(sa.text("SELECT id FROM sales_order WHERE source_system = 'crm' ORDER BY id LIMIT 1")
                                ).scalar_one()
        conn.execute(sa.text("DELETE FROM webhook_event"))  # only the order's events below
        approve_order(conn, order_id)
    # when the order is pushed to Kingdee, then the webhooks go out
    assert hub.dispatcher(kinds=["kingdee.sales_order"]).drain(wait_for_scheduled=True, timeout_s=60).done == 1
    hub.dispatcher(kinds=["crm.webhook"]).drain(wait_for_scheduled=True, timeout_s=30)
    order = rows(db, "SELECT customer_id, erp_bill_number, erp_status, status FROM sales_order WHERE id = :id",
                 id=order_id)[0]
    events = [d["event"] for d in deliveries(receiver)["accepted"]]
    assert [e["type"] for e in events] == ["order.in_erp"]
    data = events[0]["data"]
    assert (data["order_id"], data["bill_number"], data["erp_status"], data["status"], data["erp_system"]) == (
        order_id, order.erp_bill_number, order.erp_status, "in_erp", "kingdee")
    assert events[0]["customer"]["id"] == order.customer_id
    # and the event carries every system's id for the customer and the order, as the hub holds them
    with db.begin() as conn:
        assert events[0]["customer"] == webhooks.customer_reference(conn, order.customer_id)
        assert data["external_ids"] == webhooks.external_ids(conn, "sales_order", order_id)
    assert "kingdee" in {i["system"] for i in events[0]["customer"]["external_ids"]}


def test_a_to_do_ticked_off_in_dingtalk_through_the_callback_sends_task_done_in_chat(hub, db, receiver, settings):
    from connectors.dingtalk.sandbox import CallbackDriver
    from hub.demo.data import load_crm_demo
    from hub.registry import connector
    from hub.rules.todos import TodoPolicy, evaluate_todos
    from hub.runtime import load_sandbox
    from hub.web import create_web_app

    hub.sandbox("dingtalk")
    seed = load_sandbox(connector("dingtalk")).demo_seed()  # type: ignore[misc]
    with db.begin() as conn:
        load_crm_demo(conn, seed["people"], seed["companies"], now=dt.datetime.now(dt.UTC), orders=0)
        conn.execute(sa.text("DELETE FROM task"))
        conn.execute(sa.text("UPDATE customer SET assigned_at = NULL"))
    hub.sync("dingtalk", "directory")
    now = dt.datetime.now(dt.UTC)
    with db.begin() as conn:
        rep, customer = conn.execute(sa.text(
            "SELECT u.id, c.id FROM internal_user u, customer c WHERE u.active AND u.title LIKE '%销售代表%' "
            "ORDER BY u.id, c.id LIMIT 1")).one()
        task = conn.execute(sa.text("INSERT INTO task (title, assignee_id, customer_id, due_at) "
                                    "VALUES ('回访客户', :a, :c, :d) RETURNING id"),
                            {"a": rep, "c": customer, "d": now + dt.timedelta(hours=3)}).scalar_one()
        evaluate_todos(conn, now, TodoPolicy())
    hub.dispatcher(kinds=["dingtalk.todo"]).drain(wait_for_scheduled=True, timeout_s=30)
    state = hub.sandbox("dingtalk").app.state.dingtalk
    (todo,) = state.todo_list(f"crm-task-{task}")
    event = state.complete_todo(todo["id"])
    # when DingTalk pushes the completion through the signed callback
    with serve_in_thread(create_web_app(db, settings.model_copy(update={"sandbox": True}))) as web, \
            CallbackDriver(web.url + "/callbacks/dingtalk") as ding:
        assert ding.register().acknowledged
        assert ding.push(event).acknowledged
    hub.dispatcher(kinds=["crm.webhook"]).drain(wait_for_scheduled=True, timeout_s=30)
    # then the CRM hears that the task was done in chat, by whom (a hub user id) and when
    events = [d["event"] for d in deliveries(receiver)["accepted"]]
    assert [e["type"] for e in events] == ["task.done_in_chat"]
    data = events[0]["data"]
    assert (data["task_id"], data["completed_via"], data["completed_by_user_id"], data["status"]) == (
        task, "dingtalk", rep, "done")
    assert events[0]["customer"]["id"] == customer


def test_no_secret_reaches_the_logs_the_audit_or_the_stored_events(hub, db, receiver, caplog):
    (cid,) = make_customers(db, 1)
    with db.begin() as conn:
        webhooks.emit(conn, "lead.assigned", customer_id=cid, subject="lead:1", data={"lead_id": 1})
    receiver.app.state.faults.arm("http_500", times=1)
    with caplog.at_level(logging.DEBUG):
        assert hub.dispatcher(kinds=["crm.webhook"]).drain(wait_for_scheduled=True, timeout_s=30).done == 1
    dumped = json.dumps([list(map(str, r)) for r in rows(db, "SELECT * FROM audit_log")], ensure_ascii=False)
    dumped += json.dumps([list(map(str, r)) for r in rows(db, "SELECT * FROM outbox")], ensure_ascii=False)
    dumped += json.dumps([list(map(str, r)) for r in rows(db, "SELECT * FROM webhook_event")], ensure_ascii=False)
    assert "crm.webhook" in dumped and "HTTP 500" in dumped  # the calls are audited...
    assert SANDBOX_SECRET not in dumped and SANDBOX_SECRET not in caplog.text  # ...without the key


def test_hub_sync_crm_says_the_crm_pushes_through_the_api_and_syncs_nothing(db, monkeypatch):
    from hub.cli import app

    monkeypatch.setenv("HUB_DATABASE_URL", db.url)
    monkeypatch.setenv("HUB_DATABASE_SCHEMA", db.schema)
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["sync", "crm"])
    assert result.exit_code == 0, result.output
    assert "no inbound streams: nothing to sync" in result.output
    assert "API of `hub serve`" in result.output and "crm.webhook" in result.output
    assert "unknown system" not in result.output


def test_doctor_pings_the_receiver_with_a_signed_request_and_names_a_refused_secret(db, receiver, monkeypatch):
    from hub.cli import app

    monkeypatch.setenv("HUB_DATABASE_URL", db.url)
    monkeypatch.setenv("HUB_DATABASE_SCHEMA", db.schema)
    monkeypatch.setenv("HUB_SANDBOX", "1")
    monkeypatch.setenv("HUB_CRM__BASE_URL", receiver.url + "/webhooks")
    monkeypatch.setenv("HUB_CRM__SIGNING_SECRET", SANDBOX_SECRET)
    runner = CliRunner()

    def crm_check() -> tuple[int, dict]:
        result = runner.invoke(app, ["doctor", "--json"])
        return result.exit_code, next(c for c in json.loads(result.output)["checks"] if c["check"] == "crm")

    code, check = crm_check()
    assert (code, check["status"]) == (0, "ok"), check
    assert [d.event_type for d in receiver.app.state.receiver.accepted] == ["ping"]

    monkeypatch.setenv("HUB_CRM__SIGNING_SECRET", "a-key-the-crm-does-not-know")
    code, check = crm_check()
    assert code == 1 and check["status"] != "ok"
    assert "HTTP 401" in check["detail"] and "a-key-the-crm-does-not-know" not in json.dumps(check)
    assert receiver.app.state.receiver.rejected == ["no signature matches a known secret"]
