"""Every stage change is recorded where stages change: a lead's stage from the CRM's lead
API (created, moved on, sent again unchanged), a customer's from the CRM's customer API.
The funnel's dwell times come from these rows (``hub.web.reports.funnel``)."""

from __future__ import annotations

from tests.conftest import rows


def history(db, subject: str, subject_id: int) -> list[tuple[str | None, str, str]]:
    return [tuple(r) for r in rows(db, "SELECT from_stage, to_stage, source FROM stage_change "
                                       "WHERE subject_type = :t AND subject_id = :id ORDER BY id",
                                   t=subject, id=subject_id)]


def test_a_leads_stages_from_the_crm_api_are_recorded_once_each_in_order(api, world, db):
    body = {"external_id": "crm-lead-77", "company_name": "苏州阶段测试科技有限公司", "channel": "event"}
    created = api.post("/api/leads", json=body, headers=world.auth("sales"))
    assert created.status_code in (200, 201), created.text
    lead_id = created.json()["id"]
    for stage in ("意向客户", "方案/报价", "方案/报价", "输单"):
        reply = api.post("/api/leads", json={**body, "stage": stage}, headers=world.auth("sales"))
        assert reply.status_code in (200, 201), reply.text
        assert reply.json()["id"] == lead_id
    assert history(db, "lead", lead_id) == [(None, "潜在客户", "crm"), ("潜在客户", "意向客户", "crm"),
                                            ("意向客户", "方案/报价", "crm"), ("方案/报价", "输单", "crm")]
    [stamps] = rows(db, "SELECT bool_and(changed_at IS NOT NULL AND actor <> '') AS ok FROM stage_change")
    assert stamps.ok


def test_a_customers_stage_from_the_crm_customer_api_is_recorded_with_the_stage_before(api, world, db):
    body = {"external_id": "crm-stage-1", "name": "杭州阶段客户有限公司", "stage": "意向客户"}
    first = api.post("/api/customers", json=body, headers=world.auth("sales"))
    assert first.status_code == 201, first.text
    customer_id = first.json()["id"]
    api.post("/api/customers", json={**body, "stage": "商务谈判"}, headers=world.auth("sales"))
    api.post("/api/customers", json={**body, "stage": "商务谈判"}, headers=world.auth("sales"))
    api.post("/api/customers", json={"external_id": "crm-stage-1", "name": "杭州阶段客户有限公司"},
             headers=world.auth("sales"))  # no stage given: none changed
    assert history(db, "customer", customer_id) == [(None, "意向客户", "crm"), ("意向客户", "商务谈判", "crm")]
