"""Audit rows are append-only; secrets never reach logs, audit rows or exception text."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa

from connectors.kingdee.settings import KingdeeSettings
from hub.audit import AuditObserver, write_audit
from hub.calls import ExternalCall
from hub.errors import ConfigError
from hub.logging_setup import RedactSecrets, configure_logging, redaction_filter, secret_values
from hub.settings import Settings
from tests.conftest import scalar


def test_audit_rows_cannot_be_updated_deleted_or_truncated(db):
    with db.begin() as conn:
        write_audit(conn, actor="test", system="kingdee", operation="save", outcome="ok", key="k1")
    for statement in ("UPDATE audit_log SET outcome = 'forged'", "DELETE FROM audit_log", "TRUNCATE audit_log"):
        with pytest.raises(sa.exc.ProgrammingError, match="append-only"), db.begin() as conn:
            conn.execute(sa.text(statement))
    assert scalar(db, "SELECT outcome FROM audit_log") == "ok"


def test_personal_data_is_masked_in_audit_rows(db):
    observer = AuditObserver(db.engine, actor="test")
    observer(ExternalCall(system="wecom", operation="user/getuserid", outcome="error", duration_ms=3.2,
                          error="no user with mobile 13812345678 / li.lei@demo-corp.cn"))
    error = scalar(db, "SELECT error FROM audit_log")
    assert "13812345678" not in error and "138****5678" in error and "l***@demo-corp.cn" in error


def test_secrets_are_absent_from_repr_and_redacted_from_logs(monkeypatch, caplog):
    secret = "kd-app-secret-0123456789abcdef"
    monkeypatch.setenv("HUB_KINGDEE__APP_SECRET", secret)
    monkeypatch.setenv("HUB_WECOM__SECRET", "wecom-corp-secret-xyz")
    settings = Settings()
    assert secret not in repr(settings) and secret not in str(settings.model_dump())
    assert secret_values(settings) >= {secret, "wecom-corp-secret-xyz"}

    configure_logging(settings)
    caplog.handler.addFilter(redaction_filter())
    log = logging.getLogger("hub.test")
    log.warning("calling with secret %s", secret)
    try:
        raise RuntimeError(f"vendor said: bad appsecret {secret}")
    except RuntimeError:
        log.exception("call failed")
    assert secret not in caplog.text
    assert "[REDACTED]" in caplog.text


def test_redaction_covers_longest_secret_first():
    f = RedactSecrets(["abcd", "abcdefgh"])
    assert f.redact("x abcdefgh y") == "x [REDACTED] y"


def test_a_secret_in_the_config_file_is_refused(tmp_path, monkeypatch):
    config = tmp_path / "hub.toml"
    config.write_text('[kingdee]\nbase_url = "https://erp.example.cn/k3cloud/"\napp_secret = "oops"\n')
    monkeypatch.setenv("HUB_CONFIG_FILE", str(config))
    with pytest.raises(ConfigError, match="HUB_KINGDEE__APP_SECRET"):
        Settings()


def test_the_config_file_supplies_non_secret_settings(tmp_path, monkeypatch):
    config = tmp_path / "hub.toml"
    config.write_text('[kingdee]\nbase_url = "https://erp.example.cn/k3cloud/"\npage_size = 500\n')
    monkeypatch.setenv("HUB_CONFIG_FILE", str(config))
    monkeypatch.setenv("HUB_KINGDEE__PAGE_SIZE", "700")  # the environment wins over the file
    settings = Settings()
    assert settings.connector("kingdee").base_url == "https://erp.example.cn/k3cloud/"
    assert settings.connector("kingdee", KingdeeSettings).page_size == 700
