"""The CRM API's lists and record reads: filters, paging, and each principal's visibility."""

from __future__ import annotations

from canonical_model.profile import business_today
from tests.crm_api.test_writes import NOW, order_body


def ids(page: dict, key: str = "customer_id") -> set[int]:
    return {item[key] for item in page["items"]}


def test_receivables_follow_visibility_finance_sees_all_it_nothing(api, world):
    everyone = set(world.customers.values())
    seen = {who: api.get("/api/receivables", headers=world.auth(who)) for who in
            ("sales", "manager", "finance", "crm", "admin", "other_sales", "it")}
    assert seen["it"].status_code == 403
    assert ids(seen["sales"].json()) == {world.customers["mine"]}
    assert ids(seen["other_sales"].json()) == {world.customers["theirs"]}
    assert ids(seen["manager"].json()) == {world.customers["mine"], world.customers["pool"]}  # team + pool
    for who in ("finance", "crm", "admin"):
        assert ids(seen[who].json()) == everyone
    assert api.get("/api/receivables").status_code == 401


def test_receivable_filters_and_paging(api, world):
    finance = world.auth("finance")
    overdue = api.get("/api/receivables", params={"overdue_only": "true"}, headers=finance).json()
    assert len(overdue["items"]) == 3 and all(r["days_overdue"] == 40 for r in overdue["items"])
    one = api.get("/api/receivables", params={"customer_id": world.customers["theirs"]}, headers=finance).json()
    assert [r["bill_number"] for r in one["items"]] == ["AR-theirs-0", "AR-theirs-1"]
    assert api.get("/api/receivables", params={"currency": "USD"}, headers=finance).json()["items"] == []
    today = business_today()
    later = api.get("/api/receivables", params={"due_from": today.isoformat()}, headers=finance).json()
    assert {r["bill_number"][-1] for r in later["items"]} == {"1"}
    first = api.get("/api/receivables", params={"limit": 4}, headers=finance).json()
    rest = api.get("/api/receivables", params={"limit": 4, "offset": first["next_offset"]}, headers=finance).json()
    assert (len(first["items"]), len(rest["items"]), rest["next_offset"]) == (4, 2, None)
    assert not {r["id"] for r in first["items"]} & {r["id"] for r in rest["items"]}
    assert api.get("/api/receivables", params={"limit": 501}, headers=finance).status_code == 422  # hard max
    assert api.get("/api/receivables", params={"due_to": "1700000000"}, headers=finance).status_code == 422


def test_overdue_customers_per_currency_with_days(api, world):
    page = api.get("/api/overdue-customers", headers=world.auth("finance")).json()
    assert {(r["customer_id"], r["currency"], r["overdue_amount"], r["max_days_overdue"]) for r in page["items"]} == {
        (cid, "CNY", "1200.50", 40) for cid in world.customers.values()}
    mine = api.get("/api/overdue-customers", headers=world.auth("sales")).json()
    assert ids(mine) == {world.customers["mine"]}
    assert api.get("/api/overdue-customers", params={"min_days": 41}, headers=world.auth("finance")).json()[
        "items"] == []


def test_tasks_list_filters_and_visibility(api, world):
    for who, customer in (("sales", "mine"), ("other_sales", "theirs")):
        assert api.post("/api/tasks", json={"title": f"任务 {customer}", "due_at": NOW,
                                             "customer_id": world.customers[customer]},
                        headers=world.auth(who)).status_code == 201
    own = api.post("/api/tasks", json={"title": "无客户任务", "due_at": "2026-12-05T09:00:00+08:00"},
                   headers=world.auth("sales")).json()
    assert {t["title"] for t in api.get("/api/tasks", headers=world.auth("sales")).json()["items"]} == {
        "任务 mine", "无客户任务"}
    assert {t["title"] for t in api.get("/api/tasks", headers=world.auth("other_sales")).json()["items"]} == {
        "任务 theirs"}
    assert len(api.get("/api/tasks", headers=world.auth("crm")).json()["items"]) == 3
    ranged = api.get("/api/tasks", params={"due_from": "2026-12-01", "due_to": "2026-12-31"},
                     headers=world.auth("crm")).json()
    assert [t["id"] for t in ranged["items"]] == [own["id"]]
    assert api.get("/api/tasks", params={"status": "done"}, headers=world.auth("crm")).json()["items"] == []
    assert api.get("/api/tasks", params={"assignee_id": world.users["other"]},
                   headers=world.auth("crm")).json()["items"][0]["title"] == "任务 theirs"
    assert api.get("/api/tasks", headers=world.auth("it")).status_code == 403


def test_an_order_and_its_audit_are_read_back_newest_first_and_hidden_from_other_teams(api, world):
    order = api.post("/api/orders", json=order_body("SO-A"), headers=world.auth("sales")).json()
    api.patch(f"/api/orders/{order['id']}", json={"approval_state": "pending"}, headers=world.auth("sales"))
    got = api.get(f"/api/orders/{order['id']}", headers=world.auth("sales")).json()
    assert (got["approval_state"], [line["amount"] for line in got["lines"]]) == ("pending", ["1000.00", "500.00"])
    assert api.get(f"/api/orders/{order['id']}", headers=world.auth("other_sales")).status_code == 404
    audit = api.get(f"/api/audit/sales_order/{order['id']}", headers=world.auth("sales")).json()
    assert [a["operation"] for a in audit] == ["sales_order:update", "sales_order:create"]
    assert audit[0]["actor"].startswith("api:token:")
    assert api.get(f"/api/audit/sales_order/{order['id']}", headers=world.auth("other_sales")).status_code == 404
    assert api.get(f"/api/audit/customer/{world.customers['theirs']}", headers=world.auth("sales")).status_code == 404
    assert api.get("/api/audit/app_login/1", headers=world.auth("admin")).status_code == 422  # not an audited table


def test_audit_masks_personal_data_for_principals_who_may_not_see_it(api, world, db):
    import sqlalchemy as sa

    with db.begin() as conn:  # a row written before the audit masked on the way in
        conn.execute(sa.text("INSERT INTO audit_log (actor, system, operation, key, outcome, error) VALUES "
                             "('test', 'hub', 'note', :k, 'ok', 'call 13800138000 or zhang@example.cn')"),
                     {"k": f"customer:{world.customers['mine']}"})
    finance = api.get(f"/api/audit/customer/{world.customers['mine']}", headers=world.auth("finance")).json()
    assert finance[0]["error"] == "call 138****8000 or z***@example.cn"
    admin = api.get(f"/api/audit/customer/{world.customers['mine']}", headers=world.auth("admin")).json()
    assert admin[0]["error"] == "call 13800138000 or zhang@example.cn"


def test_the_docs_page_describes_each_crm_api_operation_its_body_security_and_errors(api, world):
    spec = api.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": spec["components"]["securitySchemes"]["bearer"][
            "description"]}
    order = spec["paths"]["/api/orders"]["post"]
    assert order["security"] == [{"bearer": []}]
    assert {"400", "401", "403", "404", "409", "413", "422"} <= set(order["responses"])
    assert any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in order["parameters"])
    docs = api.get("/docs", headers=world.auth("crm")).text
    for fragment in ("/api/orders/{order_id}", "/api/audit/{table}/{record_id}", "OrderIn", "bearer", "413"):
        assert fragment in docs, fragment
