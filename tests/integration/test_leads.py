"""Leads: captured from the API, the web form and chat contacts, de-duplicated by identity rules,
assigned by the rule table (round-robin inside a team, safe under concurrent assigners),
returned to the pool when nobody follows up (hub.rules.leads, lead_assignment; hub.web.leads_api,
lead_forms)."""

from __future__ import annotations

import datetime as dt
import itertools
import threading
import warnings
from collections import Counter
from decimal import Decimal

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from hub.access import Role
from hub.demo.data import demo_credit_code
from hub.rules.lead_assignment import assign_lead, match_rule, return_stale_leads
from hub.rules.leads import LeadInput, capture_lead, leads_from_unmatched_contacts
from hub.settings import LeadSettings
from hub.web import create_web_app
from tests.conftest import rows, scalar
from tests.support.access import bearer, issue_token

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

NOW = dt.datetime(2026, 11, 25, 2, 0, tzinfo=dt.UTC)
_SEQ = itertools.count(1)
FORM_KEY = "site-key-0123456789abcdef"


def user(conn, name, *, wecom=None, department=None, manager=None, active=True) -> int:
    return int(conn.execute(sa.text(
        "INSERT INTO internal_user (name, wecom_userid, department, manager_id, active, source_system, external_id) "
        "VALUES (:n, :w, :d, :m, :a, 'crm', :x) RETURNING id"),
        {"n": name, "w": wecom, "d": department, "m": manager, "a": active, "x": f"crm-l{next(_SEQ)}"}).scalar_one())


def team(conn):
    """A manager with three reps (one inactive) in 华东销售部, and a key-account owner."""
    boss = user(conn, "华东经理", wecom="boss", department="华东销售部")
    reps = [user(conn, f"销售{i}", wecom=f"rep{i}", department="华东销售部", manager=boss) for i in range(3)]
    conn.execute(sa.text("UPDATE internal_user SET active = false WHERE id = :id"), {"id": reps[1]})
    ka = user(conn, "大客户经理", wecom="ka")
    return boss, reps, ka


RULES = LeadSettings(rules=[
    {"name": "大单", "min_amount": "1000000", "owner": "wecom:ka"},
    {"name": "华东制造", "regions": ["上海", "江苏"], "industries": ["制造"], "team": "wecom:boss"},
    {"name": "华东", "regions": ["上海", "江苏", "浙江"], "department": "华东销售部"},
], first_followup_days=3, return_to_pool_days=7)


def lead(**values) -> LeadInput:
    base = {"source_system": "crm", "external_id": f"L{next(_SEQ)}", "company_name": "上海示例机械有限公司",
            "channel": "crm"}
    return LeadInput(**{**base, **values})


def test_the_first_matching_rule_wins_region_industry_and_amount_range():
    rules = RULES.rules
    assert match_rule(rules, "上海市浦东新区", "智能制造", Decimal("1500000")).name == "大单"
    assert match_rule(rules, "上海市浦东新区", "智能制造", Decimal("5000")).name == "华东制造"
    assert match_rule(rules, "浙江杭州", "零售", None).name == "华东"
    assert match_rule(rules, "广东深圳", "制造", Decimal("5000")) is None


def test_a_new_lead_is_assigned_by_rule_gets_a_first_followup_task_and_is_audited(db):
    with db.begin() as conn:
        _boss, _reps, ka = team(conn)
        capture = capture_lead(conn, lead(region="江苏苏州", estimated_amount=Decimal("2000000")), RULES,
                               actor="test", now=NOW)
    assert (capture.outcome, capture.assignment.rule, capture.assignment.owner_id) == ("created", "大单", ka)
    row = rows(db, "SELECT status, owner_id, assigned_rule, assigned_at, pool_since FROM lead")[0]
    assert (row.status, row.owner_id, row.assigned_rule, row.assigned_at, row.pool_since) == (
        "assigned", ka, "大单", NOW, None)
    task = rows(db, "SELECT kind, lead_id, assignee_id, due_at, title FROM task")[0]
    assert (task.kind, task.lead_id, task.assignee_id, task.due_at) == (
        "lead_followup", capture.lead_id, ka, NOW + dt.timedelta(days=3))
    assert task.title == "首次跟进线索：上海示例机械有限公司"
    audit = rows(db, "SELECT operation, detail FROM audit_log WHERE key = :k ORDER BY id", k=f"lead:{capture.lead_id}")
    assert [a.operation for a in audit] == ["lead:created", "lead:assigned"]
    assert audit[1].detail["rule"] == "大单"


def test_no_matching_rule_or_nobody_left_in_the_rule_sends_the_lead_to_the_pool(db):
    with db.begin() as conn:
        team(conn)
        nowhere = capture_lead(conn, lead(company_name="广州甲公司", region="广东"), RULES, actor="t", now=NOW)
        gone = LeadSettings(rules=[{"name": "离职", "owner": "wecom:nobody"}])
        orphan = capture_lead(conn, lead(company_name="广州乙公司"), gone, actor="t", now=NOW)
    assert (nowhere.assignment.owner_id, nowhere.assignment.rule) == (None, "pool")
    assert orphan.assignment.problem == "wecom:nobody names no internal user"
    assert rows(db, "SELECT assigned_rule, status, pool_since FROM lead ORDER BY id") == [
        ("pool", "pool", NOW), ("离职", "pool", NOW)]
    assert scalar(db, "SELECT count(*) FROM task") == 0


def test_duplicates_update_the_existing_lead_by_credit_code_name_or_mobile_and_say_so(db):
    code = demo_credit_code(4242)
    with db.begin() as conn:
        team(conn)
        first = capture_lead(conn, lead(company_name="苏州恒瑞精密机械有限公司", region="江苏", industry="制造"),
                             RULES, actor="t", now=NOW)
        by_name = capture_lead(conn, lead(company_name="苏州恒瑞精密机械（中国）有限公司", credit_code=code,
                                          mobile="13912345678"), RULES, actor="t", now=NOW)
        by_code = capture_lead(conn, lead(company_name="恒瑞精密", credit_code=code.lower()), RULES, actor="t", now=NOW)
        by_mobile = capture_lead(conn, lead(company_name="某个别名", mobile="+86 139 1234 5678"), RULES, actor="t",
                                 now=NOW)
        again = capture_lead(conn, lead(external_id=by_mobile_ext(conn), company_name="完全不同"), RULES, actor="t",
                             now=NOW)
    assert [(c.outcome, c.matched_by, c.lead_id) for c in (by_name, by_code, by_mobile)] == [
        ("duplicate", "name", first.lead_id), ("duplicate", "credit_code", first.lead_id),
        ("duplicate", "mobile", first.lead_id)]
    assert (again.outcome, again.matched_by, again.lead_id) == ("updated", "same_record", first.lead_id)
    assert scalar(db, "SELECT count(*) FROM lead") == 1
    # the duplicate filled what was missing; nothing was assigned twice
    assert rows(db, "SELECT credit_code, mobile FROM lead") == [(code, "13912345678")]
    assert scalar(db, "SELECT count(*) FROM task") == 1


def by_mobile_ext(conn) -> str:
    return conn.execute(sa.text("SELECT max(external_id) FROM external_identity WHERE object = 'lead'")).scalar_one()


def test_a_lead_of_a_known_customer_is_linked_to_it_and_goes_to_its_owner(db):
    with db.begin() as conn:
        _boss, reps, _ka = team(conn)
        cid = conn.execute(sa.text("INSERT INTO customer (name, normalized_name, owner_id) VALUES "
                                   "('杭州示例智能科技有限公司', '杭州示例智能科技', :o) RETURNING id"),
                           {"o": reps[0]}).scalar_one()
        capture = capture_lead(conn, lead(company_name="杭州示例智能科技有限公司", region="浙江"), RULES, actor="t",
                               now=NOW)
    assert (capture.outcome, capture.customer_id, capture.assignment.owner_id) == ("linked_to_customer", cid, reps[0])
    assert scalar(db, "SELECT assigned_rule FROM lead") == "customer_owner"


def test_round_robin_under_two_concurrent_assigners_never_doubles_and_rotates_fairly(db):
    with db.begin() as conn:
        boss, reps, _ka = team(conn)
        ids = [conn.execute(sa.text(
            "INSERT INTO lead (company_name, region, industry, source_system, external_id) VALUES "
            "(:n, '上海', '制造', 'crm', :x) RETURNING id"), {"n": f"公司{i}", "x": f"rr{i}"}).scalar_one()
            for i in range(20)]
    active = [reps[0], reps[2]]  # reps[1] is inactive; the manager is not in his own rotation
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def assigner(mine: list[int]) -> None:
        try:
            barrier.wait()
            for lead_id in mine:
                with db.begin() as conn:
                    assign_lead(conn, lead_id, RULES, actor="t", now=NOW)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=assigner, args=(ids[i::2],)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    owners = dict(rows(db, "SELECT id, owner_id FROM lead"))
    assert set(owners.values()) <= set(active)
    assert Counter(owners.values()) == {active[0]: 10, active[1]: 10}
    assert scalar(db, "SELECT position FROM lead_rotation WHERE team = 'team:wecom:boss'") == 20
    assert scalar(db, "SELECT count(*) FROM task WHERE kind = 'lead_followup'") == 20
    assert boss not in owners.values()


def test_a_lead_nobody_followed_up_returns_to_the_pool_and_a_followup_stops_the_clock(db):
    with db.begin() as conn:
        team(conn)
        stale = capture_lead(conn, lead(company_name="南京甲公司", region="江苏"), RULES, actor="t", now=NOW)
        worked = capture_lead(conn, lead(company_name="南京乙公司", region="江苏"), RULES, actor="t", now=NOW)
        fresh = capture_lead(conn, lead(company_name="南京丙公司", region="江苏"), RULES, actor="t",
                             now=NOW + dt.timedelta(days=6))
        # the CRM reports a follow-up of the second
        capture_lead(conn, lead(external_id=worked_ext(conn, worked.lead_id), company_name="南京乙公司",
                                last_contacted_at=NOW + dt.timedelta(days=1)), RULES, actor="t", now=NOW)
        counts = return_stale_leads(conn, RULES, now=NOW + dt.timedelta(days=7, hours=1))
    assert (counts.returned, counts.tasks_cancelled) == (1, 1)
    status = dict(rows(db, "SELECT id, status FROM lead"))
    assert status == {stale.lead_id: "pool", worked.lead_id: "assigned", fresh.lead_id: "assigned"}
    assert scalar(db, "SELECT pool_since FROM lead WHERE id = :id", id=stale.lead_id) == NOW + dt.timedelta(days=7,
                                                                                                          hours=1)
    tasks = dict(rows(db, "SELECT lead_id, status FROM task"))
    assert tasks == {stale.lead_id: "cancelled", worked.lead_id: "done", fresh.lead_id: "open"}
    assert scalar(db, "SELECT count(*) FROM audit_log WHERE operation = 'lead:returned_to_pool'") == 1


def worked_ext(conn, lead_id: int) -> str:
    return conn.execute(sa.text("SELECT external_id FROM lead WHERE id = :id"), {"id": lead_id}).scalar_one()


def test_chat_contacts_that_match_no_customer_become_leads_once_for_their_rep(db):
    from hub.registry import connector

    stream = connector("wecom").stream("external_contacts")
    payload = '{"external_contact": {"external_userid": "wmX1", "name": "陈总", "corp_name": "宁波新客户有限公司"}, ' \
              '"follow_info": {"userid": "rep0", "remark_mobiles": ["13711112222"]}}'
    with db.begin() as conn:
        _boss, reps, _ka = team(conn)
        conn.execute(sa.text(
            "INSERT INTO quarantine (system, stream, source_ref, reason, payload, payload_text, payload_hash) VALUES "
            "('wecom', 'external_contacts', 'wmX1', 'corp_name: no customer matches: its corp name …', "
            "CAST(:p AS jsonb), :p, 'h1')"), {"p": payload})
        first = leads_from_unmatched_contacts(conn, "wecom", stream, RULES, now=NOW)
        again = leads_from_unmatched_contacts(conn, "wecom", stream, RULES, now=NOW)
    assert (first["created"], again["updated"]) == (1, 1)
    row = rows(db, "SELECT company_name, contact_name, mobile, channel, owner_id, assigned_rule, source_system "
                   "FROM lead")
    assert row == [("宁波新客户有限公司", "陈总", "13711112222", "wecom", reps[0], "chat_follow_user", "wecom")]
    assert scalar(db, "SELECT count(*) FROM task") == 1


def web_client(db, settings, rate: int) -> TestClient:
    tuned = settings.model_copy(update={"leads": RULES.model_copy(update={
        "form_keys": SecretStr(f"site={FORM_KEY}"), "form_rate_per_minute": rate})})
    return TestClient(create_web_app(db, tuned))


@pytest.fixture
def api(db, settings):
    with web_client(db, settings, 5) as client:
        yield client


def test_the_api_upserts_by_the_crms_id_reports_duplicates_and_is_idempotent(db, api):
    with db.begin() as conn:
        _boss, _reps, _ka = team(conn)
    crm = bearer(issue_token(db, Role.CRM))
    body = {"external_id": "CRM-L-1", "company_name": "上海示例机械有限公司", "region": "上海", "industry": "制造"}
    created = api.post("/api/leads", json=body, headers={**crm, "Idempotency-Key": "k1"})
    assert created.status_code == 201, created.text
    assert created.json()["outcome"] == "created" and created.json()["assigned_rule"] == "华东制造"
    replay = api.post("/api/leads", json=body, headers={**crm, "Idempotency-Key": "k1"})
    assert replay.json() == created.json() and replay.headers["Idempotent-Replayed"] == "true"
    dup = api.post("/api/leads", json={"external_id": "CRM-L-2", "company_name": "上海示例机械（中国）有限公司"},
                   headers=crm)
    assert dup.status_code == 200
    assert (dup.json()["outcome"], dup.json()["matched_by"], dup.json()["id"]) == ("duplicate", "name",
                                                                                   created.json()["id"])
    assert scalar(db, "SELECT count(*) FROM lead") == 1
    bad = api.post("/api/leads", json={"external_id": "x", "company_name": "甲", "credit_code": "91350100M000100Y40"},
                   headers=crm)
    assert bad.status_code == 422 and "credit_code" in str(bad.json()["detail"][0]["loc"])
    assert api.post("/api/leads", json=body).status_code == 401
    assert api.post("/api/leads", json=body, headers=bearer(issue_token(db, Role.FINANCE))).status_code == 403
    assert scalar(db, "SELECT count(*) FROM audit_log WHERE operation LIKE 'lead:%' AND actor LIKE 'api:%'") >= 2


def test_leads_are_listed_by_visibility_and_a_pool_lead_is_claimed_once(db, api):
    with db.begin() as conn:
        boss, reps, _ka = team(conn)
        capture_lead(conn, lead(company_name="上海甲公司", region="上海", industry="制造"), RULES, actor="t")  # rep
        pool = capture_lead(conn, lead(company_name="广州乙公司", region="广东"), RULES, actor="t")
    owner = scalar(db, "SELECT owner_id FROM lead WHERE company_name = '上海甲公司'")
    other = reps[2] if owner == reps[0] else reps[0]
    as_owner, as_other = bearer(issue_token(db, Role.SALES, user_id=owner)), bearer(issue_token(db, Role.SALES,
                                                                                                 user_id=other))
    assert [x["company_name"] for x in api.get("/api/leads", headers=as_owner).json()] == ["上海甲公司"]
    assert api.get("/api/leads", headers=as_other).json() == []
    assert len(api.get("/api/leads", headers=bearer(issue_token(db, Role.MANAGER, user_id=boss))).json()) == 1
    assert len(api.get("/api/leads", headers=bearer(issue_token(db, Role.ADMIN))).json()) == 2
    assert [x["id"] for x in api.get("/api/leads?pool=true", headers=as_other).json()] == [pool.lead_id]
    won = api.post(f"/api/leads/{pool.lead_id}/claim", headers=as_other)
    assert won.status_code == 200 and won.json()["owner_id"] == other and won.json()["assigned_rule"] == "claimed"
    lost = api.post(f"/api/leads/{pool.lead_id}/claim", headers=as_owner)
    assert lost.status_code == 409
    assert api.post(f"/api/leads/{pool.lead_id}/claim", headers=bearer(issue_token(db, Role.CRM))).status_code == 403
    marked = api.post(f"/api/leads/{pool.lead_id}/invalid", json={"reason": "空号"}, headers=as_other)
    assert marked.status_code == 200 and marked.json()["status"] == "invalid"
    assert scalar(db, "SELECT invalid_reason FROM lead WHERE id = :id", id=pool.lead_id) == "空号"


def test_pool_customers_are_listed_with_basic_info_and_claimed_once_audited(db, api):
    with db.begin() as conn:
        boss, reps, _ka = team(conn)
        cid = conn.execute(sa.text("INSERT INTO customer (name, normalized_name, region, phone) VALUES "
                                   "('无主客户有限公司', '无主客户', '上海', '021-1234') RETURNING id")).scalar_one()
    rep = bearer(issue_token(db, Role.SALES, user_id=reps[0]))
    listed = api.get("/api/pool/customers", headers=rep).json()
    assert [c["id"] for c in listed] == [cid] and "phone" not in listed[0]
    assert api.post(f"/api/pool/customers/{cid}/claim", headers=rep).json()["owner_id"] == reps[0]
    assert api.post(f"/api/pool/customers/{cid}/claim",
                    headers=bearer(issue_token(db, Role.SALES, user_id=reps[2]))).status_code == 409
    assert api.get("/api/pool/customers", headers=rep).json() == []
    assert scalar(db, "SELECT count(*) FROM audit_log WHERE operation = 'pool:claimed' AND key = :k",
                  k=f"customer:{cid}") == 1
    # a manager hands out to their team only
    with db.begin() as conn:
        other = conn.execute(sa.text("INSERT INTO customer (name, normalized_name) VALUES ('又一家', '又一家') "
                                     "RETURNING id")).scalar_one()
        outsider = user(conn, "外组销售")
    manager = bearer(issue_token(db, Role.MANAGER, user_id=boss))
    assert api.post(f"/api/pool/customers/{other}/assign", json={"owner_id": outsider},
                    headers=manager).status_code == 403
    assert api.post(f"/api/pool/customers/{other}/assign", json={"owner_id": reps[2]},
                    headers=manager).status_code == 200
    assert api.post(f"/api/pool/customers/{other}/assign", json={"owner_id": reps[2]},
                    headers=rep).status_code == 403


def test_the_web_form_takes_a_lead_with_a_key_and_refuses_bots_big_bodies_and_floods(db, api):
    with db.begin() as conn:
        team(conn)
    form = {"form_key": FORM_KEY, "company": "上海示例机械有限公司", "name": "王经理", "mobile": "13800138000",
            "region": "上海", "industry": "制造", "amount": "50,000"}
    ok = api.post("/forms/lead", data=form, headers={"Accept": "application/json"})
    assert ok.status_code == 200 and ok.json() == {"received": True}
    page = api.post("/forms/lead", data={**form, "company": "上海示例机械（中国）有限公司"})
    assert page.status_code == 200 and "感谢您的咨询" in page.text
    row = rows(db, "SELECT channel, source_system, mobile, estimated_amount, assigned_rule FROM lead")
    assert row == [("web_form:site", "web_form", "13800138000", Decimal("50000.00"), "华东制造")]  # one: a duplicate
    assert api.post("/forms/lead", data={**form, "form_key": "wrong"}).status_code == 403
    assert api.post("/forms/lead", data={**form, "website": "http://spam"}).status_code == 200  # thanked, not stored
    assert scalar(db, "SELECT count(*) FROM lead") == 1
    assert scalar(db, "SELECT count(*) FROM audit_log WHERE operation = 'lead:form:honeypot'") == 1
    # five posts a minute per address (four so far): the sixth is refused
    assert api.post("/forms/lead", data=form).status_code == 200
    flooded = api.post("/forms/lead", data=form)
    assert flooded.status_code == 429 and int(flooded.headers["Retry-After"]) >= 1


def test_the_web_form_refuses_oversized_and_non_form_bodies_before_storing(db, settings):
    with web_client(db, settings, 100) as api:
        refuses_bad_forms(db, api)


def refuses_bad_forms(db, api) -> None:
    big = {"form_key": FORM_KEY, "company": "甲" * 200, "name": "乙" * 3000}
    assert api.post("/forms/lead", data=big).status_code == 413
    assert api.post("/forms/lead", json={"company": "甲"}).status_code == 415
    assert api.post("/forms/lead", data={"form_key": FORM_KEY, "company": ""}).status_code == 422
    assert api.post("/forms/lead", data={"form_key": FORM_KEY, "company": "甲", "amount": "NaN"}).status_code == 422
    assert api.post("/forms/lead", data={"form_key": FORM_KEY, "company": "甲\x00乙"}).status_code == 422
    assert api.post("/forms/lead", content=b"form_key=%ff%fe&company=x",
                    headers={"Content-Type": "application/x-www-form-urlencoded"}).status_code == 400
    assert scalar(db, "SELECT count(*) FROM lead") == 0
