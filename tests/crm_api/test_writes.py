"""The CRM API's writes, over real HTTP against real Postgres: what each one stores."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from hub.demo.data import PRODUCTS, demo_credit_code
from hub.rules.todos import TodoPolicy, evaluate_todos
from tests.conftest import rows, scalar

NOW = "2026-11-20T10:00:00+08:00"


def test_a_new_customer_is_created_owned_by_the_salesperson_and_linked_as_a_crm_record(api, world, db):
    body = {"external_id": "crm-new-1", "name": "深圳新客户电子有限公司", "credit_code": demo_credit_code(8001),
            "region": "深圳", "industry": "电子元器件", "credit_limit": "500000.00", "stage": "意向客户"}
    reply = api.post("/api/customers", json=body, headers=world.auth("sales"))
    assert reply.status_code == 201, reply.text
    out = reply.json()
    assert (out["created"], out["resolved_by"], out["owner_id"]) == (True, "new", world.users["rep"])
    row = rows(db, "SELECT * FROM customer WHERE id = :id", id=out["id"])[0]
    assert (row.name, row.credit_code, row.region, row.stage, str(row.credit_limit)) == (
        "深圳新客户电子有限公司", demo_credit_code(8001), "深圳", "意向客户", "500000.00")
    assert row.normalized_name == "深圳新客户电子" and row.assigned_at is not None and row.pool_since is None
    assert row.field_sources["name"]["system"] == "crm" and row.field_sources["stage"]["external_id"] == "crm-new-1"
    assert rows(db, "SELECT system, object, external_id FROM external_identity WHERE canonical_id = :id "
                    "AND canonical_table = 'customer'", id=out["id"]) == [("crm", "customer", "crm-new-1")]
    audit = rows(db, "SELECT actor, operation, detail FROM audit_log WHERE key = :k", k=f"customer:{out['id']}")
    assert [(a.operation, a.detail["principal"].startswith("token:")) for a in audit] == [("customer:create", True)]


def test_a_customer_known_by_credit_code_is_the_same_golden_record_as_the_sync_engine_would_find(api, world, db):
    # given the ERP-side customer 张三 owns, sent by the CRM under a new id and a different name form
    body = {"external_id": "crm-mine-again", "name": "上海张三客户科技（中国）有限公司",
            "credit_code": world.credit_codes["mine"].lower()}
    reply = api.post("/api/customers", json=body, headers=world.auth("sales"))
    assert reply.status_code == 200, reply.text
    assert (reply.json()["id"], reply.json()["resolved_by"]) == (world.customers["mine"], "credit_code")
    assert scalar(db, "SELECT count(*) FROM customer") == 3
    # and by normalized name alone
    by_name = api.post("/api/customers", json={"external_id": "crm-pool-x", "name": "广州公海客户制造有限公司"},
                       headers=world.auth("crm"))
    assert (by_name.status_code, by_name.json()["id"], by_name.json()["resolved_by"]) == (
        200, world.customers["pool"], "name")


def test_sales_cannot_upsert_a_customer_that_resolves_to_another_teams(api, world, db):
    body = {"external_id": "crm-steal", "name": "随便", "credit_code": world.credit_codes["theirs"]}
    reply = api.post("/api/customers", json=body, headers=world.auth("sales"))
    assert reply.status_code == 403
    assert scalar(db, "SELECT count(*) FROM external_identity WHERE external_id = 'crm-steal'") == 0
    assert scalar(db, "SELECT name FROM customer WHERE id = :id", id=world.customers["theirs"]) == "北京李四客户贸易有限公司"


def test_owner_rules_a_manager_assigns_in_the_team_sales_only_themselves_and_the_crm_leaves_the_pool(api, world, db):
    team = api.post("/api/customers", json={"external_id": "crm-t1", "name": "团队客户有限公司",
                                             "owner_id": world.users["rep"]}, headers=world.auth("manager"))
    assert (team.status_code, team.json()["owner_id"]) == (201, world.users["rep"])
    outside = api.post("/api/customers", json={"external_id": "crm-t2", "name": "外队客户有限公司",
                                                "owner_id": world.users["other"]}, headers=world.auth("manager"))
    assert outside.status_code == 403
    sales = api.post("/api/customers", json={"external_id": "crm-t3", "name": "给别人的客户有限公司",
                                              "owner_id": world.users["manager"]}, headers=world.auth("sales"))
    assert sales.status_code == 403
    machine = api.post("/api/customers", json={"external_id": "crm-t4", "name": "无人认领客户有限公司"},
                       headers=world.auth("crm"))
    assert (machine.status_code, machine.json()["owner_id"]) == (201, None)
    assert scalar(db, "SELECT pool_since IS NOT NULL FROM customer WHERE id = :id", id=machine.json()["id"]) is True
    assert scalar(db, "SELECT count(*) FROM external_identity WHERE external_id IN ('crm-t2', 'crm-t3')") == 0


def test_contacts_are_upserted_with_title_decision_role_and_normalized_personal_data(api, world, db):
    body = {"customer_external_id": "crm-mine", "external_id": "ct-1", "name": "王建国", "title": "总经理",
            "decision_role": "决策者", "mobile": "+86 138-0013-8000", "email": "Wang.JG@Example.cn"}
    first = api.post("/api/contacts", json=body, headers=world.auth("sales"))
    assert first.status_code == 201, first.text
    again = api.post("/api/contacts", json={**body, "title": "董事长"}, headers=world.auth("sales"))
    assert (again.status_code, again.json()["id"]) == (200, first.json()["id"])
    stored = rows(db, "SELECT customer_id, name, title, decision_role, mobile, email, source_system FROM contact")[0]
    assert "13800138000" not in stored.mobile and "example.cn" not in stored.email  # sealed at rest
    row = (*stored[:4], db.vault.open("contact", "mobile", stored.mobile), db.vault.open("contact", "email", stored.email),
           stored.source_system)
    assert row == (world.customers["mine"], "王建国", "董事长", "决策者", "13800138000", "wang.jg@example.cn", "crm")


def test_an_order_whose_lines_do_not_add_up_is_refused_with_the_field_path(api, world, db):
    body = order_body("SO-BAD", total="100.00", amounts=("60.00", "30.00"))
    reply = api.post("/api/orders", json=body, headers=world.auth("sales"))
    assert reply.status_code == 422
    assert "add up to 90.00" in reply.text and reply.json()["detail"][0]["loc"][0] == "body"
    assert scalar(db, "SELECT count(*) FROM sales_order") == 0


def order_body(external_id: str, *, total: str = "1500.00", amounts: tuple[str, ...] = ("1000.00", "500.00"),
               customer: str = "crm-mine", **extra: object) -> dict:
    lines = [{"line_no": n, "product_code": code, "product_name": name, "quantity": "1", "unit_price": amount,
              "tax_rate": "13", "amount": amount}
             for n, (amount, (code, name)) in enumerate(zip(amounts, PRODUCTS, strict=False), 1)]
    return {"customer_external_id": customer, "external_id": external_id, "order_number": external_id,
            "order_date": "2026-11-20", "currency": "CNY", "total_amount": total, "lines": lines, **extra}


def test_order_approval_moves_only_along_its_transitions_and_approved_content_is_frozen(api, world, db):
    created = api.post("/api/orders", json=order_body("SO-1"), headers=world.auth("sales"))
    assert created.status_code == 201, created.text
    order = created.json()
    assert (order["status"], order["approval_state"], order["owner_id"]) == ("draft", "none", world.users["rep"])
    oid = order["id"]
    changed = api.patch(f"/api/orders/{oid}", json={"total_amount": "1600.00", "lines": order_body(
        "x", amounts=("1000.00", "600.00"))["lines"], "approval_state": "pending"}, headers=world.auth("sales"))
    assert (changed.status_code, changed.json()["total_amount"], changed.json()["status"]) == (200, "1600.00",
                                                                                               "submitted")
    assert api.patch(f"/api/orders/{oid}", json={"total_amount": "1.00"}, headers=world.auth("sales")).status_code == 422
    rejected = api.patch(f"/api/orders/{oid}", json={"approval_state": "rejected"}, headers=world.auth("sales"))
    assert rejected.json()["status"] == "rejected"
    assert api.patch(f"/api/orders/{oid}", json={"approval_state": "approved"},
                     headers=world.auth("sales")).status_code == 409  # rejected → approved skips a step
    api.patch(f"/api/orders/{oid}", json={"approval_state": "pending"}, headers=world.auth("sales"))
    approved = api.patch(f"/api/orders/{oid}", json={"approval_state": "approved"}, headers=world.auth("sales"))
    assert (approved.status_code, approved.json()["status"], approved.json()["erp_push"]) == (200, "approved",
                                                                                              "pending")
    assert api.patch(f"/api/orders/{oid}", json={"currency": "USD"}, headers=world.auth("sales")).status_code == 409
    outbox = rows(db, "SELECT kind, idempotency_key, payload FROM outbox")
    assert [(o.kind, o.idempotency_key) for o in outbox] == [("kingdee.sales_order",
                                                              f"kingdee.sales_order:crm-order-{oid}")]
    assert outbox[0].payload["total_amount"] == "1600.00" and len(outbox[0].payload["lines"]) == 2
    operations = [r.operation for r in rows(db, "SELECT operation FROM audit_log WHERE key = :k ORDER BY id",
                                            k=f"sales_order:{oid}")]
    assert operations == ["sales_order:create"] + ["sales_order:update"] * 4  # refused changes left no trace


def test_an_order_for_another_teams_customer_is_refused_and_nothing_is_stored(api, world, db):
    reply = api.post("/api/orders", json=order_body("SO-X", customer="crm-theirs"), headers=world.auth("sales"))
    assert reply.status_code == 404
    assert scalar(db, "SELECT count(*) FROM sales_order") == 0


def test_contracts_tickets_and_touchpoints_are_upserted_and_shown_in_the_profile(api, world, db):
    cust = {"customer_id": world.customers["mine"]}
    contract = api.post("/api/contracts", json={**cust, "external_id": "k-1", "contract_number": "HT-2026-001",
                                                 "title": "二期采购合同", "currency": "CNY", "amount": "88000.00",
                                                 "status": "signed", "signed_at": NOW, "starts_on": "2026-12-01",
                                                 "ends_on": "2027-11-30"}, headers=world.auth("sales"))
    assert contract.status_code == 201, contract.text
    api.post("/api/contacts", json={**cust, "external_id": "ct-9", "name": "李敏"}, headers=world.auth("sales"))
    ticket = api.post("/api/tickets", json={**cust, "external_id": "t-1", "kind": "complaint",
                                             "subject": "交付延迟投诉", "opened_at": NOW,
                                             "contact_external_id": "ct-9"}, headers=world.auth("sales"))
    assert ticket.status_code == 201, ticket.text
    survey = api.post("/api/tickets", json={**cust, "external_id": "t-2", "kind": "satisfaction", "subject": "回访",
                                             "satisfaction": 4, "opened_at": NOW}, headers=world.auth("sales"))
    assert survey.status_code == 201
    bad = api.post("/api/tickets", json={**cust, "external_id": "t-3", "kind": "inquiry", "subject": "x",
                                          "satisfaction": 4, "opened_at": NOW}, headers=world.auth("sales"))
    assert bad.status_code == 422
    touch = {**cust, "external_id": "ev-1", "kind": "quote_opened", "occurred_at": NOW, "campaign": "报价单 Q-77"}
    assert api.post("/api/touchpoints", json=touch, headers=world.auth("crm")).status_code == 201
    assert api.post("/api/touchpoints", json=touch, headers=world.auth("crm")).status_code == 200  # delivered twice
    assert scalar(db, "SELECT count(*) FROM touchpoint") == 1
    profile = api.get(f"/api/customers/{world.customers['mine']}", headers=world.auth("crm")).json()
    assert [c["contract_number"] for c in profile["contracts"]] == ["HT-2026-001"]
    assert sorted(t["kind"] for t in profile["tickets"]) == ["complaint", "satisfaction"]
    assert [t["campaign"] for t in profile["touchpoints"]] == ["报价单 Q-77"]
    assert {(e["type"], e["kind"]) for e in profile["timeline"]} == {
        ("ticket", "complaint"), ("ticket", "satisfaction"), ("touchpoint", "quote_opened")}
    page = api.get(f"/customers/{world.customers['mine']}", headers=world.auth("crm")).text
    assert "HT-2026-001" in page and "交付延迟投诉" in page and "报价单 Q-77" in page


def test_a_followup_logs_an_interaction_and_moves_last_followup_forward_only(api, world, db):
    cust = {"customer_id": world.customers["mine"]}
    late = api.post("/api/followups", json={**cust, "kind": "visit", "occurred_at": "2026-11-20T10:00:00+08:00",
                                             "summary": "现场拜访", "external_id": "f-1"}, headers=world.auth("sales"))
    assert late.status_code == 201, late.text
    older = api.post("/api/followups", json={**cust, "kind": "call", "occurred_at": "2026-11-01T10:00:00+08:00",
                                              "summary": "补录的电话"}, headers=world.auth("sales"))
    assert older.json()["last_followup_at"] == late.json()["last_followup_at"]
    repeat = api.post("/api/followups", json={**cust, "kind": "visit", "occurred_at": "2026-11-20T10:00:00+08:00",
                                               "summary": "现场拜访", "external_id": "f-1"}, headers=world.auth("sales"))
    assert (repeat.status_code, repeat.json()["id"]) == (200, late.json()["id"])
    assert scalar(db, "SELECT count(*) FROM interaction") == 2
    assert scalar(db, "SELECT last_followup_at FROM customer WHERE id = :id", id=world.customers["mine"]) == \
        dt.datetime(2026, 11, 20, 2, 0, tzinfo=dt.UTC)
    assert rows(db, "SELECT user_id, source_system FROM interaction WHERE external_id = 'f-1'") == [
        (world.users["rep"], "crm")]


def test_tasks_are_created_updated_and_completed_as_in_the_crm(api, world, db):
    outside = api.post("/api/tasks", json={"title": "电话回访采购负责人", "due_at": NOW,
                                            "customer_id": world.customers["mine"],
                                            "assignee_id": world.users["other"]}, headers=world.auth("manager"))
    assert outside.status_code == 403  # a manager gives work to the team only
    created = api.post("/api/tasks", json={"title": "电话回访采购负责人", "due_at": NOW,
                                            "customer_id": world.customers["mine"],
                                            "assignee_id": world.users["rep"]}, headers=world.auth("manager"))
    assert created.status_code == 201, created.text
    tid = created.json()["id"]
    moved = api.patch(f"/api/tasks/{tid}", json={"due_at": "2026-11-21T09:00:00+08:00", "title": "改期回访"},
                      headers=world.auth("sales"))
    assert (moved.status_code, moved.json()["title"]) == (200, "改期回访")
    done = api.post(f"/api/tasks/{tid}/complete", headers=world.auth("sales"))
    assert done.status_code == 200, done.text
    row = rows(db, "SELECT status, completed_via, completed_by_id, completed_at FROM task WHERE id = :id", id=tid)[0]
    assert (row.status, row.completed_via, row.completed_by_id) == ("done", "crm", world.users["rep"])
    assert api.post(f"/api/tasks/{tid}/complete", headers=world.auth("sales")).status_code == 409
    assert api.patch(f"/api/tasks/{tid}", json={"title": "x"}, headers=world.auth("sales")).status_code == 409


def test_completing_a_task_through_the_api_marks_its_dingtalk_todo_done_like_a_crm_completion(api, world, db):
    # given 张三 is on DingTalk and the task's to-do was pushed there
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE internal_user SET dingtalk_userid = 'ding-zs', directories = "
                             "'{\"dingtalk\": {\"active\": true}}' WHERE id = :id"), {"id": world.users["rep"]})
    created = api.post("/api/tasks", json={"title": "发送报价单", "due_at": NOW,
                                            "customer_id": world.customers["mine"]}, headers=world.auth("sales"))
    tid = created.json()["id"]
    policy = TodoPolicy(channels=("dingtalk",))
    with db.begin() as conn:
        assert evaluate_todos(conn, dt.datetime.now(dt.UTC), policy).queued == 1
        # the push reached DingTalk (what its effect handler records)
        conn.execute(sa.text(
            "UPDATE task SET push_state = jsonb_build_object('dingtalk', jsonb_build_object('todo', jsonb_build_object("
            "'seq', 1, 'synced', jsonb_build_object('id', 'todo-1', 'status', 'open', 'version', 'v1')))) "
            "WHERE id = :id"), {"id": tid})
    # when it is completed through the API
    assert api.post(f"/api/tasks/{tid}/complete", headers=world.auth("sales")).status_code == 200
    # then the to-do rule queues a push marking the DingTalk to-do done
    with db.begin() as conn:
        assert evaluate_todos(conn, dt.datetime.now(dt.UTC), policy).queued == 1
    done_push = rows(db, "SELECT payload FROM outbox WHERE idempotency_key = :k", k=f"todo:task-{tid}:2")
    assert done_push and done_push[0].payload["done"] is True
