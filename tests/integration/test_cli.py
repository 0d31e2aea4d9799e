"""The `hub` command line against a real database: outputs, one-line errors, exit codes."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from hub.cli import app
from hub.outbox import enqueue

runner = CliRunner(env={"COLUMNS": "200"})  # rich tables would truncate names at 80 columns


@pytest.fixture
def env(db, monkeypatch):
    monkeypatch.setenv("HUB_DATABASE_URL", db.url)
    monkeypatch.setenv("HUB_DATABASE_SCHEMA", db.schema)
    monkeypatch.setenv("HUB_SANDBOX", "1")
    return db


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_a_stale_schema_is_refused_with_the_fix_and_exit_code_3(database_url, monkeypatch):
    monkeypatch.setenv("HUB_DATABASE_URL", database_url)
    monkeypatch.setenv("HUB_DATABASE_SCHEMA", "never_migrated_cli")
    result = invoke("dlq", "list")
    assert result.exit_code == 3
    assert "run `hub db upgrade`" in result.output
    assert "Traceback" not in result.output


def test_sync_prints_counts_and_profile_finds_the_customer_by_credit_code(env):
    result = invoke("sync", "kingdee", "customers")
    assert result.exit_code == 0, result.output
    assert "kingdee/customers" in result.output
    with env.begin() as conn:
        code = conn.execute(sa.text("SELECT credit_code FROM customer WHERE credit_code IS NOT NULL LIMIT 1")).scalar()
    result = invoke("profile", code, "--json")
    assert result.exit_code == 0, result.output
    assert code in result.output


def test_unknown_things_are_one_line_errors(env):
    result = invoke("profile", "不存在的公司名称")
    assert result.exit_code == 1 and "no customer matches" in result.output
    result = invoke("sync", "sap")
    assert result.exit_code == 2 and "unknown system 'sap'" in result.output
    result = invoke("sync", "kingdee", "invoices")
    assert result.exit_code != 0 and "no stream 'invoices'" in result.output
    result = invoke("dlq", "replay", "4242")
    assert result.exit_code == 1 and "no dead or failed outbox row with id 4242" in result.output


def test_dlq_list_and_replay_all(env):
    with env.begin() as conn:
        row_id = enqueue(conn, "kingdee.sales_order", "k-1", {"order_id": 1})
        conn.execute(sa.text("UPDATE outbox SET status = 'dead', last_error = 'HTTP 500' WHERE id = :id"),
                     {"id": row_id})
    listed = invoke("dlq", "list")
    assert listed.exit_code == 0 and "k-1" in listed.output and "HTTP 500" in listed.output
    replayed = invoke("dlq", "replay", "--all")
    assert replayed.exit_code == 0 and "requeued 1 row" in replayed.output
    with env.begin() as conn:
        status, unknown = conn.execute(sa.text("SELECT status, outcome_unknown FROM outbox")).one()
    assert (status, unknown) == ("pending", True)


def test_doctor_reports_each_connector_without_secrets(env, monkeypatch):
    monkeypatch.setenv("HUB_KINGDEE__APP_SECRET", "doctor-must-not-print-this")
    result = invoke("doctor")
    assert result.exit_code == 0, result.output
    assert "kingdee" in result.output and "wecom" in result.output and "credentials accepted" in result.output
    assert "doctor-must-not-print-this" not in result.output


def test_doctor_fails_when_a_configured_connector_is_unreachable(env, monkeypatch):
    monkeypatch.setenv("HUB_WECOM__BASE_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setenv("HUB_WECOM__CORP_ID", "ww123")
    monkeypatch.setenv("HUB_WECOM__SECRET", "s3cret-value-xyz")
    monkeypatch.setenv("HUB_WECOM__AGENT_ID", "1000002")
    result = invoke("doctor")
    assert result.exit_code == 1
    assert "wecom" in result.output and "failed" in result.output
    assert "s3cret-value-xyz" not in result.output


def test_quarantine_list_and_identity_conflicts_render(env):
    with env.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO quarantine (system, stream, source_ref, reason, payload, payload_hash) VALUES "
            "('kingdee', 'receivables', 'AR0001', 'unknown currency ''XYZ''', '{}'::jsonb, 'h1')"))
        conn.execute(sa.text(
            "INSERT INTO identity_conflict (system, object, external_id, reason, candidate_customer_ids, detail) "
            "VALUES ('kingdee', 'customer', 'K9', 'ambiguous_name', '{1,2}', '{\"message\": \"两个客户同名\"}')"))
    assert "unknown currency" in invoke("quarantine", "list").output
    conflicts = invoke("identity", "conflicts").output
    assert "ambiguous_name" in conflicts and "两个客户同名" in conflicts


def one_error_line(output: str) -> str:
    """The output must be exactly one line: the error."""
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert "Traceback" not in output
    return lines[0]


def test_a_misspelt_setting_is_refused_naming_the_closest_known_one(env, monkeypatch):
    monkeypatch.setenv("HUB_KINGDE__BASE_URL", "https://erp.example.cn/k3cloud/")
    result = invoke("db", "status")
    assert result.exit_code == 2
    line = one_error_line(result.output)
    assert "HUB_KINGDE__BASE_URL" in line and "did you mean HUB_KINGDEE__BASE_URL" in line


def test_a_wrongly_typed_setting_is_one_line_naming_the_variable(env, monkeypatch):
    monkeypatch.setenv("HUB_OUTBOX__MAX_ATTEMPTS", "abc")
    result = invoke("db", "status")
    assert result.exit_code == 2
    assert "HUB_OUTBOX__MAX_ATTEMPTS" in one_error_line(result.output)


def test_outside_sandbox_mode_an_unset_base_url_is_a_config_error_not_a_sandbox(env, monkeypatch):
    # given a production hub (no HUB_SANDBOX) whose Kingdee is half configured
    monkeypatch.delenv("HUB_SANDBOX")
    monkeypatch.setenv("HUB_KINGDEE__ACCT_ID", "66f0a1b2")
    monkeypatch.setenv("HUB_KINGDEE__APP_SECRET", "must-not-be-printed")

    # when it syncs, it refuses in one line naming what is missing, and starts no sandbox
    result = invoke("sync", "kingdee")
    assert result.exit_code == 2
    line = one_error_line(result.output.replace("⠋ kingdee: starting", ""))
    assert "HUB_KINGDEE__BASE_URL" in line and "HUB_KINGDEE__USERNAME" in line
    assert "HUB_KINGDEE__ACCT_ID" not in line and "must-not-be-printed" not in result.output
    with env.begin() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM customer")).scalar() == 0


def test_doctor_before_db_upgrade_says_what_to_run_instead_of_crashing(database_url, monkeypatch):
    # given a database nobody migrated yet (no audit table to write the connector checks to)
    monkeypatch.setenv("HUB_DATABASE_URL", database_url)
    monkeypatch.setenv("HUB_DATABASE_SCHEMA", "never_migrated_doctor")
    monkeypatch.setenv("HUB_SANDBOX", "1")
    result = invoke("doctor", "--json")
    # then it reports the schema as behind with the command, still checks the connectors, exits 1
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    checks = {c["check"]: c for c in report["checks"]}
    assert checks["schema"]["status"] == "behind" and "hub db upgrade" in checks["schema"]["detail"]
    assert checks["kingdee"]["status"] == "ok" and checks["wecom"]["status"] == "ok"
    assert "Traceback" not in result.output
