"""A whole demo run, every log line at DEBUG and everything printed, holds no secret and no
full mobile number: not the apps' secrets (Kingdee, WeCom, DingTalk, the CRM webhook key),
not the callback tokens and AES keys, not an access token or session id the sandboxes
issued (each one recorded as it is handed out), not the database password, not the phone numbers of the people and contacts whose
data went through. Nor does the database it leaves behind: every table dumped as text holds
no mobile number in plain text (personal data is encrypted at rest, ``hub.vault``), and
search by a full mobile still finds the contact's customer."""

from __future__ import annotations

import io
import logging
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from rich.console import Console
from sqlalchemy.engine import make_url

from connectors.crm.sandbox.receiver import SANDBOX_SECRET as CRM_WEBHOOK_SECRET
from connectors.dingtalk.sandbox.credentials import SANDBOX_APP_SECRET as DINGTALK_APP_SECRET
from connectors.dingtalk.sandbox.credentials import SANDBOX_CALLBACK_AES_KEY as DINGTALK_AES_KEY
from connectors.dingtalk.sandbox.credentials import SANDBOX_CALLBACK_TOKEN as DINGTALK_CALLBACK_TOKEN
from connectors.dingtalk.sandbox.state import DingTalkState
from connectors.kingdee.sandbox.auth import SANDBOX_CREDENTIALS, SessionStore
from connectors.kit.sandbox.universe import demo_directory
from connectors.wecom.sandbox.credentials import (
    SANDBOX_CALLBACK_TOKEN,
    SANDBOX_ENCODING_AES_KEY,
    SANDBOX_SECRET,
)
from connectors.wecom.sandbox.seed import demo_external_contacts
from connectors.wecom.sandbox.state import WeComState
from hub.database import Database
from hub.demo import DEMO_SCHEMA, run_demo
from hub.logging_setup import configure_logging
from hub.settings import Settings
from hub.vault.display import find_customers, profile_for_display

pytestmark = pytest.mark.e2e
MOBILE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
DB_PASSWORD = "demo-db-password-7731"


# A mobile standing on its own in a dump: not a run of digits inside a hex hash, a base64
# ciphertext or an id (which a bare 1[3-9]\d{9} would also match).
STANDALONE_MOBILE = re.compile(r"(?<![0-9A-Za-z_-])(?:\+?86[- ]?)?(1[3-9]\d{9})(?![0-9A-Za-z_-])")


def seeded_mobiles() -> set[str]:
    """Every mobile of a person or contact the demo's sandboxes hold."""
    mobiles = {u.mobile for u in demo_directory()}
    return mobiles | {m for c in demo_external_contacts() for f in c.follows for m in f.remark_mobiles}


issued: list[str] = []  # every token and session id the sandboxes handed out during the demo


def recording(issue: Any) -> Any:
    """``issue`` (a sandbox's token or session issuer), noting each secret it hands out."""
    def issue_and_note(*args: Any, **kwargs: Any) -> Any:
        result = issue(*args, **kwargs)
        for value in (result if isinstance(result, tuple) else (result,)):
            token = value.get("access_token") if isinstance(value, dict) else getattr(value, "sid", value)
            if isinstance(token, str) and len(token) >= 16:
                issued.append(token)
        return result
    return issue_and_note


@pytest.fixture(scope="module")
def demo_run(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Settings]]:
    """One demo run for this module: (every log line and everything printed, its settings)."""
    tmp_path = tmp_path_factory.mktemp("demo-home")
    # the demo's schema has a fixed name: a database of its own keeps other runs' demos out of it
    own = make_url(database_url).set(database=f"demo_{secrets.token_hex(4)}")
    admin = sa.create_engine(database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{own.database}"'))
    # given the demo on a database URL with a password (trust auth ignores it) and every log at DEBUG
    url = own.set(password=DB_PASSWORD).render_as_string(hide_password=False)
    settings = Settings(database_url=url, home=tmp_path, log_level="DEBUG")  # type: ignore[arg-type]
    captured = io.StringIO()
    handler = logging.StreamHandler(captured)
    handler.setLevel(logging.DEBUG)
    configure_logging(settings, "DEBUG")
    logging.getLogger().addHandler(handler)
    for noisy in ("httpx", "httpcore"):  # their DEBUG lines carry URLs: exactly what must not leak
        logging.getLogger(noisy).setLevel(logging.DEBUG)
    out = io.StringIO()
    issued.clear()
    spies = pytest.MonkeyPatch()
    for owner, method in ((WeComState, "issue_token"), (DingTalkState, "issue_token"), (SessionStore, "create")):
        spies.setattr(owner, method, recording(getattr(owner, method)))
    try:
        # when the demo runs end to end
        run_demo(settings, console=Console(file=out, width=120), kingdee_scale=0.02)
    finally:
        spies.undo()
        logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(logging.WARNING)
        for noisy in ("httpx", "httpcore"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    yield captured.getvalue() + out.getvalue(), settings
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{own.database}" WITH (FORCE)'))
    admin.dispose()


def test_a_demo_run_logs_and_prints_no_secret_and_no_full_mobile(demo_run):
    text, _ = demo_run

    # then none of the secrets is in any line
    assert len(text) > 10_000, "the demo should have said a lot"
    for secret in (SANDBOX_CREDENTIALS.app_secret, SANDBOX_CREDENTIALS.password, SANDBOX_SECRET,
                   SANDBOX_CALLBACK_TOKEN, SANDBOX_ENCODING_AES_KEY, DB_PASSWORD, DINGTALK_APP_SECRET,
                   DINGTALK_CALLBACK_TOKEN, DINGTALK_AES_KEY, CRM_WEBHOOK_SECRET):
        assert secret not in text
    # nor any token or session id a sandbox issued (WeCom access_token, DingTalk accessToken, Kingdee session)
    assert len(issued) >= 3, "the demo should have been issued tokens by the WeCom and DingTalk sandboxes and Kingdee"
    assert [token[:6] for token in issued if token in text] == []
    assert not re.search(r"access_token=(?!\*\*\*|\[REDACTED\])[^&\s]{8,}", text)
    assert "kdservice-sessionid" in text  # the session ids were in the lines httpcore wrote, masked
    assert not re.search(r"kdservice-sessionid['\",=:\sb]+[0-9a-f]{16,}", text, re.IGNORECASE)
    # and no full mobile number of anyone whose data went through
    leaked = set(MOBILE.findall(text)) & seeded_mobiles()
    assert leaked == set()
    # and it said where its demo keys are
    assert "vault-keys.json (mode 0600)" in " ".join(text.split())  # (the console wraps lines)


def dump(settings: Settings) -> dict[str, list[str]]:
    """Every row of every table of the demo schema, as Postgres prints it (a data-only dump)."""
    assert settings.database_url is not None
    engine = sa.create_engine(settings.database_url.get_secret_value())
    try:
        with engine.connect() as conn:
            tables = conn.execute(sa.text(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = :s AND "
                "table_type = 'BASE TABLE' ORDER BY 1"), {"s": DEMO_SCHEMA}).scalars().all()
            return {t: list(conn.execute(sa.text(f'SELECT t::text FROM {DEMO_SCHEMA}."{t}" t')).scalars())
                    for t in tables}
    finally:
        engine.dispose()


def test_after_a_demo_run_no_table_holds_a_mobile_in_plain_text_and_search_still_finds_it(demo_run):
    _, settings = demo_run
    # when every table the demo filled is dumped
    tables = dump(settings)
    assert {"contact", "internal_user", "quarantine", "audit_log", "outbox"} <= set(tables)
    assert len(tables["contact"]) > 50 and len(tables["internal_user"]) > 20 and tables["quarantine"]

    # then no seeded mobile appears anywhere, literally, nor anything shaped like a mainland mobile
    seeded = seeded_mobiles()
    assert len(seeded) > 50
    found: dict[str, list[str]] = {}
    for table, lines in tables.items():
        for line in lines:
            hits = [m for m in seeded if m in line] + STANDALONE_MOBILE.findall(line)
            if hits:
                found.setdefault(table, []).extend(hits)
    assert found == {}

    # and search by a full mobile of a synced contact still finds its customer
    database = Database.from_settings(settings.model_copy(update={"database_schema": DEMO_SCHEMA, "sandbox": True}))
    try:
        with database.begin() as conn:
            rows: Any = conn.execute(sa.text(
                "SELECT customer_id, name, mobile FROM contact WHERE mobile IS NOT NULL AND customer_id IS NOT NULL "
                "ORDER BY id LIMIT 5")).all()
            assert rows
            for customer_id, _name, sealed in rows:
                mobile = database.vault.reveal("contact", "mobile", sealed)
                assert mobile in seeded
                hits = find_customers(conn, mobile)
                assert (customer_id, "contact") in {(h["id"], h["matched_by"]) for h in hits}
                profile = profile_for_display(conn, customer_id)
                assert profile is not None and mobile in {c["mobile"] for c in profile.contacts}
    finally:
        database.dispose()
    assert Path(settings.home, "vault-keys.json").exists()
