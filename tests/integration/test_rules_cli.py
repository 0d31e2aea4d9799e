"""`hub rules check | test | run`, and a tenant's rules file checked when the hub starts."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from hub.cli import app
from tests.conftest import scalar
from tests.integration.test_automation_rules import given_customer, given_people, table_counts

runner = CliRunner(env={"COLUMNS": "200"})
BAD = """
[[rules]]
name = "late-orders"
trigger = { event = "order_approved" }
actions = [{ do = "return_to_pool" }]
"""


@pytest.fixture
def env(db, monkeypatch):
    monkeypatch.setenv("HUB_DATABASE_URL", db.url)
    monkeypatch.setenv("HUB_DATABASE_SCHEMA", db.schema)
    monkeypatch.setenv("HUB_SANDBOX", "1")
    return db


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_check_refuses_a_bad_file_with_exit_2_naming_rule_and_field(env, tmp_path):
    path = tmp_path / "rules.toml"
    path.write_text(BAD, encoding="utf-8")
    result = invoke("rules", "check", str(path))
    assert result.exit_code == 2
    assert ("rule 'late-orders': actions[0].do: return_to_pool acts on lead, but order_approved is about "
            "sales_order") in result.output
    assert "Traceback" not in result.output
    ok = invoke("rules", "check")
    assert ok.exit_code == 0 and "12 rule(s), valid" in ok.output


def test_a_tenant_file_that_is_missing_or_invalid_stops_every_command_at_start(env, tmp_path, monkeypatch):
    monkeypatch.setenv("HUB_RULES__FILE", str(tmp_path / "missing.toml"))
    missing = invoke("pool", "status")
    assert missing.exit_code == 2 and "HUB_RULES__FILE" in missing.output and "missing.toml" in missing.output
    path = tmp_path / "rules.toml"
    path.write_text(BAD, encoding="utf-8")
    monkeypatch.setenv("HUB_RULES__FILE", str(path))
    invalid = invoke("pool", "status")
    assert invalid.exit_code == 2 and "rule 'late-orders'" in invalid.output


def test_rules_test_prints_the_plan_and_writes_nothing(env):
    db = env
    assigned = dt.datetime(2026, 11, 24, 2, 0, tzinfo=dt.UTC)
    with db.begin() as conn:
        people = given_people(conn)
        customer = given_customer(conn, "温州宏达", people["rep"], assigned)
    before = table_counts(db)
    result = invoke("rules", "test", "--at", "2026-11-25T11:00", "--since", "2026-11-24T00:00", "--json")
    assert result.exit_code == 0, result.output
    assert table_counts(db) == before  # not even the rules' activation is recorded
    plan = {r["rule"]: r for r in json.loads(result.output)["rules"]}
    fired = plan["customer-uncontacted-24h"]["firings"]
    assert [(f["subject"], f["actions"]) for f in fired] == [
        (f"customer:{customer}", ["task '首次跟进：温州宏达' (first_followup, or the open one) for the owner, due in 1d, "
                                  "tag 超时未跟进",
                                  "remind owner, supervisor in chat"])]
    # without --since the rules would start now: nothing from before fires
    quiet = json.loads(invoke("rules", "test", "--at", "2026-11-25T11:00", "--json").output)
    assert all(r["firings"] == [] for r in quiet["rules"])
    text = invoke("rules", "test", "--at", "2026-11-25T11:00", "--since", "2026-11-24T00:00")
    assert "### customer-uncontacted-24h" in text.output and "nothing is written" in text.output


def test_rules_run_applies_once(env):
    db = env
    with db.begin() as conn:
        given_people(conn)
    first = invoke("rules", "run", "--json")
    assert first.exit_code == 0, first.output
    assert json.loads(first.output)["fired"] == 0  # activation only
    assert scalar(db, "SELECT count(*) FROM rule_activation") == 12
    with db.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM rule_firing")).scalar_one() == 0
