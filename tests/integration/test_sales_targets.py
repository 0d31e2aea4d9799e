"""Sales targets are set by `hub targets set` or the performance page's form (admin only),
replace the month's earlier target, are audited, and refuse bad input with a clear reason."""

from __future__ import annotations

import json
import warnings

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from hub.access import Role
from hub.cli import app
from hub.web import create_web_app
from hub.web.auth import SESSION_COOKIE
from hub.web.signin import session_csrf
from tests.conftest import rows
from tests.support.access import bearer, issue_session, issue_token


@pytest.fixture
def people(db) -> dict[str, int]:
    with db.begin() as conn:
        ids = {name: conn.execute(sa.text(
            "INSERT INTO internal_user (name, department, source_system, external_id) VALUES (:n, '华东销售部', 'crm', :n) "
            "RETURNING id"), {"n": name}).scalar_one() for name in ("alice", "bob")}
    return ids


def test_hub_targets_set_writes_replaces_and_audits_a_target(db, people, monkeypatch):
    monkeypatch.setenv("HUB_DATABASE_URL", db.url)
    monkeypatch.setenv("HUB_DATABASE_SCHEMA", db.schema)
    runner = CliRunner(env={"COLUMNS": "200"})
    first = runner.invoke(app, ["targets", "set", "--owner", str(people["alice"]), "--month", "2026-11",
                                "--amount", "1,000,000", "--json"], catch_exceptions=False)
    assert first.exit_code == 0, first.output
    again = runner.invoke(app, ["targets", "set", "--owner", str(people["alice"]), "--month", "2026-11",
                                "--amount", "1200000.50", "--json"], catch_exceptions=False)
    assert json.loads(again.output)["previous"] == "1000000.00"
    team = runner.invoke(app, ["targets", "set", "--team", "华东销售部", "--month", "2026-11", "--amount", "5000000",
                               "--currency", "usd"], catch_exceptions=False)
    assert team.exit_code == 0, team.output
    assert [(r.owner_id, r.department, str(r.period_start), r.currency, str(r.amount)) for r in rows(
        db, "SELECT * FROM sales_target ORDER BY id")] == [
        (people["alice"], None, "2026-11-01", "CNY", "1200000.50"), (None, "华东销售部", "2026-11-01", "USD", "5000000.00")]
    audit = rows(db, "SELECT actor, detail FROM audit_log WHERE operation = 'sales_target:set' ORDER BY id")
    assert [(a.actor, a.detail["previous"]) for a in audit] == [("cli:targets", None), ("cli:targets", "1000000.00"),
                                                                ("cli:targets", None)]
    for args, reason in ((["--owner", "999999", "--month", "2026-11", "--amount", "1"], "no user"),
                         (["--owner", str(people["bob"]), "--month", "2026/11", "--amount", "1"], "month"),
                         (["--owner", str(people["bob"]), "--month", "2026-11", "--amount", "-5"], "amount"),
                         (["--owner", str(people["bob"]), "--team", "华东销售部", "--month", "2026-11", "--amount", "1"],
                          "not both"),
                         (["--team", "不存在的部门", "--month", "2026-11", "--amount", "1"], "nobody")):
        result = runner.invoke(app, ["targets", "set", *args])
        assert result.exit_code != 0 and reason in result.output, (args, result.output)
    assert len(rows(db, "SELECT id FROM sales_target")) == 2


def test_the_performance_pages_form_sets_a_target_for_admin_only_with_the_csrf_token(db, settings, people):
    form = {"owner": str(people["bob"]), "month": "2026-10", "currency": "CNY", "amount": "300000"}
    with TestClient(create_web_app(db, settings), follow_redirects=False) as http:
        # a salesperson may see the page but not set targets
        sales = bearer(issue_token(db, Role.SALES, user_id=people["bob"]))
        assert "target-form" not in http.get("/reports/performance", headers=sales).text
        assert http.post("/reports/performance/targets", data=form, headers=sales).status_code == 403
        # an admin's browser without the session's CSRF token is refused
        cookie = issue_session(db, Role.ADMIN)
        http.cookies.set(SESSION_COOKIE, cookie)
        assert http.post("/reports/performance/targets", data=form).status_code == 403
        # and so is it when some other Authorization header comes along with the session cookie
        assert http.post("/reports/performance/targets", data=form,
                         headers={"Authorization": "Basic eDp5"}).status_code == 403
        assert 'data-k="target-form"' in http.get("/reports/performance").text
        reply = http.post("/reports/performance/targets", data={**form, "csrf": session_csrf(cookie)})
        assert reply.status_code == 303 and reply.headers["location"] == "/reports/performance?month=2026-10"
        bad = http.post("/reports/performance/targets", data={**form, "amount": "abc", "csrf": session_csrf(cookie)})
        assert bad.status_code == 400 and "amount" in bad.text
    [target] = rows(db, "SELECT owner_id, amount, set_by FROM sales_target")
    assert (target.owner_id, str(target.amount)) == (people["bob"], "300000.00") and target.set_by.startswith("web:")
