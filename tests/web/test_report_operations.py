"""IT's operations page: runs and lag, outbox backlog, dead-letter replay (delivered by a
dispatcher to the WeCom sandbox afterwards), quarantine retry, identity conflicts merged or
kept apart — every action a CSRF-checked POST, audited with the acting person; no personal
data shown; only it/admin may open it; a fixed number of SQL statements per view."""

from __future__ import annotations

import datetime as dt
import json
import re
import warnings

import pytest
import sqlalchemy as sa

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from connectors.kit.sandbox.universe import demo_directory
from hub.access import Role
from hub.ar_summary import refresh_receivables_summary
from hub.rules.reminders import ReminderPolicy, evaluate_reminders
from hub.runtime import HubRuntime
from hub.web import create_web_app
from hub.web.auth import SESSION_COOKIE
from hub.web.signin import session_csrf
from tests.conftest import rows, scalar
from tests.support.access import bearer, build_teams, issue_session, issue_token
from tests.web.test_report_receivables import MAX_STATEMENTS, counted

PAGE = "/reports/operations"


def signed_in(db, settings, role: Role = Role.IT) -> tuple[TestClient, str]:
    """A browser-like client with an ``role`` session cookie, and its forms' CSRF token."""
    cookie = issue_session(db, role)
    client = TestClient(create_web_app(db, settings), follow_redirects=False)
    client.cookies.set(SESSION_COOKIE, cookie)
    return client, session_csrf(cookie)


def dead_reminder(db, settings) -> tuple[HubRuntime, int]:
    """A WeCom reminder in the outbox that has died (its attempts used up)."""
    teams = build_teams(db, alice_wecom=demo_directory()[0].userid)  # a member of the sandbox's directory
    runtime = HubRuntime(settings, db, actor="test")
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE task SET due_at = now() + interval '20 minutes' WHERE id = :id"),
                     {"id": teams.alice_task})
        conn.execute(sa.text("DELETE FROM task WHERE id <> :id"), {"id": teams.alice_task})
        assert evaluate_reminders(conn, dt.datetime.now(dt.UTC), ReminderPolicy(
            profile_base_url="http://hub.test", channels=("wecom",))).queued == 1
        outbox_id = conn.execute(sa.text(
            "UPDATE outbox SET status = 'dead', attempts = 6, last_error = 'wecom 60020 from 13812345678' "
            "RETURNING id")).scalar_one()
    return runtime, int(outbox_id)


def test_replaying_a_dead_letter_requeues_it_and_a_dispatch_delivers_it(db, settings):
    runtime, outbox_id = dead_reminder(db, settings)
    client, csrf = signed_in(db, settings)
    page = client.get(PAGE).text
    assert f'data-k="dead-letter" data-id="{outbox_id}"' in page
    assert "13812345678" not in page and "138****5678" in page  # IT sees no mobile
    assert re.search(r'data-kind="wecom\.[^"]+">.*?data-k="dead">1<', page, re.S)
    # when IT presses replay
    reply = client.post(f"{PAGE}/dead-letters/replay", data={"csrf": csrf, "id": str(outbox_id)})
    assert reply.status_code == 303 and "notice=replayed" in reply.headers["location"]
    # then the row is back to pending, as `hub dlq replay` leaves it, and audited with the person
    row = rows(db, "SELECT status, attempts, outcome_unknown FROM outbox WHERE id = :id", id=outbox_id)[0]
    assert (row.status, row.attempts, row.outcome_unknown) == ("pending", 0, True)
    [audit] = rows(db, "SELECT actor FROM audit_log WHERE operation = 'dlq:replay'")
    assert audit.actor.startswith("web:session:")
    # and a dispatch run delivers it to the WeCom sandbox
    assert runtime.dispatcher().drain(wait_for_scheduled=True, timeout_s=60).done == 1, rows(
        db, "SELECT status, last_error FROM outbox")
    assert scalar(db, "SELECT status FROM outbox WHERE id = :id", id=outbox_id) == "done"
    assert 'data-k="dead-letter"' not in client.get(PAGE).text


def test_a_form_without_the_sessions_csrf_token_changes_nothing(db, settings):
    _, outbox_id = dead_reminder(db, settings)
    client, csrf = signed_in(db, settings)
    for token in ("", "0" * 32, session_csrf("hub_ses_other")):
        reply = client.post(f"{PAGE}/dead-letters/replay", data={"csrf": token, "id": str(outbox_id)})
        assert reply.status_code == 403
    assert scalar(db, "SELECT status FROM outbox WHERE id = :id", id=outbox_id) == "dead"
    assert scalar(db, "SELECT count(*) FROM audit_log WHERE operation = 'dlq:replay'") == 0
    # a row that is not dead is refused like the CLI refuses it, without writing
    assert client.post(f"{PAGE}/dead-letters/replay", data={"csrf": csrf, "id": "999999"}).status_code == 404


def test_quarantine_retry_runs_the_stream_again_as_the_person(db, settings):
    bad = {"FNumber": "CUST-BAD", "FName": "", "FMobile": "13987654321"}
    with db.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO quarantine (system, stream, source_ref, reason, payload, payload_hash) "
            "VALUES ('kingdee', 'customers', 'CUST-BAD', 'name missing; contact 13987654321', "
            "CAST(:p AS jsonb), 'h1')"), {"p": json.dumps(bad)})
    client, csrf = signed_in(db, settings)
    page = client.get(PAGE).text
    assert "13987654321" not in page and "139****4321" in page
    reply = client.post(f"{PAGE}/quarantine/retry", data={"csrf": csrf, "system": "kingdee", "stream": "customers"})
    assert reply.status_code == 303
    row = rows(db, "SELECT status, attempts FROM quarantine")[0]
    assert (row.status, row.attempts) == ("open", 2)  # still bad: kept, one more attempt counted
    [audit] = rows(db, "SELECT actor, detail FROM audit_log WHERE operation = 'retry:customers'")
    assert audit.actor.startswith("web:session:") and audit.detail["read"] == 1
    assert client.post(f"{PAGE}/quarantine/retry",
                       data={"csrf": csrf, "system": "kingdee", "stream": "nope"}).status_code == 400


def conflict_world(db) -> dict[str, int]:
    """Customer A (linked from Kingdee K1, with a Kingdee and a CRM receivable), customer B,
    and two open conflicts about K1 naming both."""
    with db.begin() as conn:
        def one(sql: str, **p: object) -> int:
            return int(conn.execute(sa.text(sql + " RETURNING id"), p).scalar_one())

        a = one("INSERT INTO customer (name, normalized_name) VALUES ('甲公司', '甲')")
        b = one("INSERT INTO customer (name, normalized_name) VALUES ('甲公司（杭州）', '甲杭州')")
        conn.execute(sa.text("INSERT INTO external_identity (system, object, external_id, canonical_table, "
                             "canonical_id) VALUES ('kingdee', 'customer', 'K1', 'customer', :a)"), {"a": a})
        ar = {"bd": dt.date(2026, 1, 1), "a": 10}
        k_ar = one("INSERT INTO receivable (customer_id, bill_number, bill_date, due_date, currency, amount, open_amount, "
                    "source_system, external_id) VALUES (:c, 'AR1', :bd, :bd, 'CNY', :a, :a, 'kingdee', 'ar1')", c=a, **ar)
        crm_ar = one("INSERT INTO receivable (customer_id, bill_number, bill_date, due_date, currency, amount, "
                     "open_amount, source_system, external_id) VALUES (:c, 'AR2', :bd, :bd, 'CNY', :a, :a, 'crm', 'ar2')",
                     c=a, **ar)
        merge = one("INSERT INTO identity_conflict (system, object, external_id, reason, chosen_customer_id, "
                    "candidate_customer_ids) VALUES ('kingdee', 'customer', 'K1', 'ambiguous_name', :a, :c)",
                    a=a, c=[a, b])
        apart = one("INSERT INTO identity_conflict (system, object, external_id, reason, chosen_customer_id, "
                    "candidate_customer_ids) VALUES ('kingdee', 'customer', 'K1', 'credit_code_points_elsewhere', :a, :c)",
                    a=a, c=[a, b])
    return {"a": a, "b": b, "k_ar": k_ar, "crm_ar": crm_ar, "merge": merge, "apart": apart}


def test_merging_a_conflict_repoints_the_identity_and_moves_that_systems_rows(db, settings):
    w = conflict_world(db)
    with db.begin() as conn:  # the receivables report's summary, as the last ledger sync left it
        refresh_receivables_summary(conn, dt.date(2026, 1, 10))
    client, csrf = signed_in(db, settings)
    # a candidate that is not one is refused, nothing written
    assert client.post(f"{PAGE}/conflicts/resolve", data={"csrf": csrf, "id": w["merge"], "decision": "merge",
                                                         "target": "424242"}).status_code == 400
    reply = client.post(f"{PAGE}/conflicts/resolve", data={"csrf": csrf, "id": w["merge"], "decision": "merge",
                                                          "target": w["b"]})
    assert reply.status_code == 303
    assert scalar(db, "SELECT canonical_id FROM external_identity WHERE external_id = 'K1'") == w["b"]
    assert scalar(db, "SELECT customer_id FROM receivable WHERE id = :i", i=w["k_ar"]) == w["b"]
    assert scalar(db, "SELECT customer_id FROM receivable WHERE id = :i", i=w["crm_ar"]) == w["a"]  # other system stays
    assert scalar(db, "SELECT count(*) FROM customer") == 2  # nothing deleted
    # the receivables report's per-customer balances follow the moved bill, aged for the same date
    assert {(r.customer_id, r.open_amount, r.oldest_days) for r in rows(
        db, "SELECT customer_id, open_amount, oldest_days FROM ar_customer_balance")} == {(w["a"], 10, 9), (w["b"], 10, 9)}
    assert scalar(db, "SELECT as_of FROM report_snapshot WHERE name = 'receivables'") == dt.date(2026, 1, 10)
    c = rows(db, "SELECT * FROM identity_conflict WHERE id = :i", i=w["merge"])[0]
    assert (c.status, c.resolution) == ("resolved", "merge") and c.resolved_by.startswith("web:session:")
    assert c.resolution_detail == {"identity_id": c.resolution_detail["identity_id"], "customer_before": w["a"],
                                   "customer_after": w["b"], "moved": {"receivable": [w["k_ar"]]}}
    [audit] = rows(db, "SELECT actor, detail FROM audit_log WHERE operation = 'identity:merge'")
    assert audit.actor == c.resolved_by and audit.detail["moved"] == {"receivable": [w["k_ar"]]}
    # resolving it again is refused
    again = client.post(f"{PAGE}/conflicts/resolve", data={"csrf": csrf, "id": w["merge"], "decision": "keep_apart"})
    assert again.status_code == 404


def test_keeping_a_conflict_apart_changes_no_data(db, settings):
    w = conflict_world(db)
    client, csrf = signed_in(db, settings)
    before = [tuple(r) for r in rows(db, "SELECT id, customer_id FROM receivable ORDER BY id")]
    reply = client.post(f"{PAGE}/conflicts/resolve", data={"csrf": csrf, "id": w["apart"], "decision": "keep_apart"})
    assert reply.status_code == 303
    assert [tuple(r) for r in rows(db, "SELECT id, customer_id FROM receivable ORDER BY id")] == before
    assert scalar(db, "SELECT canonical_id FROM external_identity WHERE external_id = 'K1'") == w["a"]
    assert scalar(db, "SELECT resolution FROM identity_conflict WHERE id = :i", i=w["apart"]) == "keep_apart"
    assert 'data-k="resolution"' in client.get(PAGE).text


def test_runs_lag_and_dagster_links(db, settings):
    with db.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO sync_run (connector, stream, started_at, finished_at, status, counts) VALUES "
            "('kingdee', 'receivables', now() - interval '3 hours', now() - interval '2 hours', 'succeeded', "
            "CAST('{\"read\": 12, \"inserted\": 5, \"updated\": 4, \"unchanged\": 1, \"quarantined\": 2}' AS jsonb))"))
        conn.execute(sa.text("INSERT INTO sync_cursor (connector, stream, value) VALUES ('kingdee', 'receivables', "
                             ":v)"), {"v": (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=90)).isoformat()})
    html = TestClient(create_web_app(db, settings)).get(PAGE, headers=bearer(issue_token(db, Role.IT))).text
    row = re.search(r'data-system="kingdee" data-stream="receivables">(.*?)</tr>', html, re.S).group(1)
    assert re.findall(r'data-k="(read|written|quarantined)">(\d+)<', row) == [
        ("read", "12"), ("written", "9"), ("quarantined", "2")]
    assert re.search(r'data-k="lag" data-basis="cursor">1 h 3\d min', row)
    assert 'href="http://127.0.0.1:3000/locations/pipelines.definitions%3Adefs/jobs/kingdee_inbound"' in row
    never = re.search(r'data-system="kingdee" data-stream="customers">(.*?)</tr>', html, re.S).group(1)
    assert 'data-basis="never"' in never


@pytest.mark.parametrize("role", [Role.SALES, Role.MANAGER, Role.FINANCE, Role.CRM])
def test_only_it_and_admin_open_the_operations_page(db, settings, role):
    client = TestClient(create_web_app(db, settings))
    headers = bearer(issue_token(db, role))
    assert client.get(PAGE, headers=headers).status_code == 403
    assert PAGE not in client.get("/reports", headers=headers).text
    assert client.get(PAGE, headers=bearer(issue_token(db, Role.ADMIN))).status_code == 200


@pytest.mark.parametrize("dead", [50, 500])
def test_the_page_costs_a_fixed_number_of_statements(db, settings, dead):
    conflict_world(db)
    with db.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO outbox (kind, idempotency_key, payload, status, attempts) "
            "SELECT 'wecom.message', 'k' || g, '{}'::jsonb, CASE WHEN g % 2 = 0 THEN 'dead' ELSE 'pending' END, 6 "
            "FROM generate_series(1, :n) g"), {"n": dead})
        conn.execute(sa.text(
            "INSERT INTO quarantine (system, stream, reason, payload, payload_hash) "
            "SELECT 'kingdee', 'customers', 'bad', '{}'::jsonb, 'h' || g FROM generate_series(1, :n) g"), {"n": dead})
    client = TestClient(create_web_app(db, settings))
    headers = bearer(issue_token(db, Role.IT))
    with counted(db.engine) as statements:
        assert client.get(PAGE, headers=headers).status_code == 200
    assert len(statements) <= MAX_STATEMENTS, len(statements)


def test_merging_a_salesperson_conflict_links_it_to_the_chosen_user(db, settings):
    teams = build_teams(db)
    with db.begin() as conn:
        conflict = conn.execute(sa.text(
            "INSERT INTO identity_conflict (system, object, external_id, reason, candidate_customer_ids, detail) "
            "VALUES ('kingdee', 'salesperson', 'SP01', 'ambiguous_salesperson_name', '{}', CAST(:d AS jsonb)) "
            "RETURNING id"), {"d": json.dumps({"candidate_user_ids": [teams.alice, teams.bob]})}).scalar_one()
    client, csrf = signed_in(db, settings, Role.ADMIN)
    assert client.post(f"{PAGE}/conflicts/resolve", data={"csrf": csrf, "id": conflict, "decision": "merge",
                                                         "target": teams.mia}).status_code == 400
    assert scalar(db, "SELECT count(*) FROM external_identity WHERE object = 'salesperson'") == 0
    assert client.post(f"{PAGE}/conflicts/resolve", data={"csrf": csrf, "id": conflict, "decision": "merge",
                                                         "target": teams.bob}).status_code == 303
    link = rows(db, "SELECT canonical_table, canonical_id FROM external_identity WHERE external_id = 'SP01'")
    assert [tuple(r) for r in link] == [("internal_user", teams.bob)]


def test_dead_letters_quarantine_and_conflicts_page_instead_of_stopping_at_the_cap(db, settings, monkeypatch):
    from hub.web.reports import operations

    monkeypatch.setattr(operations, "MAX_ROWS", 2)  # five of each: three pages
    with db.begin() as conn:
        dead = conn.execute(sa.text(
            "INSERT INTO outbox (kind, idempotency_key, payload, status, attempts) SELECT 'wecom.message', "
            "'t:' || g, '{}'::jsonb, 'dead', 6 FROM generate_series(1, 5) g RETURNING id")).scalars().all()
        held = conn.execute(sa.text(
            "INSERT INTO quarantine (system, stream, source_ref, reason, payload, payload_hash) SELECT 'kingdee', "
            "'receivables', 'AR' || g, 'customer not found', '{}'::jsonb, md5(g::text) FROM generate_series(1, 5) g "
            "RETURNING id")).scalars().all()
        conflicts = conn.execute(sa.text(
            "INSERT INTO identity_conflict (system, object, external_id, reason, candidate_customer_ids, created_at) "
            "SELECT 'kingdee', 'customer', 'C' || g, 'two customers share the name', ARRAY[]::bigint[], "
            "now() - g * interval '1 minute' FROM generate_series(1, 5) g RETURNING id")).scalars().all()
    client, _ = signed_in(db, settings)
    shown_dead: list[int] = []
    shown_held: list[int] = []
    shown_conflicts: list[int] = []
    for page in (1, 2, 3):
        html = client.get(f"{PAGE}?dead_page={page}&quarantine_page={page}&conflict_page={page}").text
        shown_dead += [int(i) for i in re.findall(r'data-k="dead-letter" data-id="(\d+)"', html)]
        shown_held += [int(i) for i in re.findall(r'data-k="quarantine" data-id="(\d+)"', html)]
        shown_conflicts += [int(i) for i in re.findall(r'data-k="conflict" data-id="(\d+)"', html)]
        assert ("dead_page=" + str(page + 1) in html) == (page < 3)
        assert ("quarantine_page=" + str(page - 1) in html) == (page > 1)
        assert ("conflict_page=" + str(page + 1) in html) == (page < 3)
    assert shown_dead == sorted(dead)  # oldest first, each once
    assert shown_held == sorted(held, reverse=True)  # newest first, each once
    assert shown_conflicts == conflicts  # newest first (the order inserted), each once
