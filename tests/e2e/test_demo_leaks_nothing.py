"""A whole demo run, every log line at DEBUG and everything printed, holds no secret and no
full mobile number: not the apps' secrets, not an access token or session id the sandboxes
issued, not the database password, not the phone numbers of the people and contacts whose
data went through."""

from __future__ import annotations

import io
import logging
import re

import pytest
from rich.console import Console
from sqlalchemy.engine import make_url

from connectors.kingdee.sandbox.auth import SANDBOX_CREDENTIALS
from connectors.kit.sandbox.universe import demo_directory
from connectors.wecom.sandbox.credentials import (
    SANDBOX_CALLBACK_TOKEN,
    SANDBOX_ENCODING_AES_KEY,
    SANDBOX_SECRET,
)
from connectors.wecom.sandbox.seed import demo_external_contacts
from hub.demo import run_demo
from hub.logging_setup import configure_logging
from hub.settings import Settings

pytestmark = pytest.mark.e2e
MOBILE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
DB_PASSWORD = "demo-db-password-7731"


def test_a_demo_run_logs_and_prints_no_secret_and_no_full_mobile(database_url, tmp_path, monkeypatch):
    # given the demo on a database URL with a password (trust auth ignores it) and every log at DEBUG
    url = make_url(database_url).set(password=DB_PASSWORD).render_as_string(hide_password=False)
    settings = Settings(database_url=url, home=tmp_path, log_level="DEBUG")  # type: ignore[arg-type]
    captured = io.StringIO()
    handler = logging.StreamHandler(captured)
    handler.setLevel(logging.DEBUG)
    configure_logging(settings, "DEBUG")
    logging.getLogger().addHandler(handler)
    for noisy in ("httpx", "httpcore"):  # their DEBUG lines carry URLs: exactly what must not leak
        logging.getLogger(noisy).setLevel(logging.DEBUG)
    out = io.StringIO()
    try:
        # when the demo runs end to end
        run_demo(settings, console=Console(file=out, width=120), kingdee_scale=0.02)
    finally:
        logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(logging.WARNING)
        for noisy in ("httpx", "httpcore"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    text = captured.getvalue() + out.getvalue()

    # then none of the secrets is in any line
    assert len(text) > 10_000, "the demo should have said a lot"
    for secret in (SANDBOX_CREDENTIALS.app_secret, SANDBOX_CREDENTIALS.password, SANDBOX_SECRET,
                   SANDBOX_CALLBACK_TOKEN, SANDBOX_ENCODING_AES_KEY, DB_PASSWORD):
        assert secret not in text
    assert not re.search(r"access_token=(?!\*\*\*|\[REDACTED\])[^&\s]{8,}", text)
    assert "kdservice-sessionid" in text  # the session ids were in the lines httpcore wrote, masked
    assert not re.search(r"kdservice-sessionid['\",=:\sb]+[0-9a-f]{16,}", text, re.IGNORECASE)
    # and no full mobile number of anyone whose data went through
    mobiles = {u.mobile for u in demo_directory()}
    mobiles |= {m for c in demo_external_contacts() for f in c.follows for m in f.remark_mobiles}
    leaked = set(MOBILE.findall(text)) & mobiles
    assert leaked == set()
