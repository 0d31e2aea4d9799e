"""An IT person starts the Kingdee, WeCom and DingTalk sandboxes one by one, as the README says,
pastes the variables each prints, and syncs: they agree with each other as they do in the demo.

Both sandboxes are seeded from one demo universe (connectors/kit/sandbox/universe.py): the
firms the WeCom contacts work for are Kingdee customers, the ERP's salespeople are the
directory's sales team. So after `hub sync kingdee` and `hub sync wecom` (not in sandbox
mode: the hub talks to the sandboxes as to real systems), a contact stays unmatched only
when the universe made it so on purpose: a firm nobody's records hold, no full company
name (none, or only a short name like 中科汽配), or a blank WeChat name.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from connectors.dingtalk.sandbox import dingtalk_directory
from connectors.kit.sandbox.server import free_port
from connectors.wecom.sandbox.seed import demo_external_contacts
from tests.conftest import rows

pytestmark = pytest.mark.e2e
HUB = str(Path(sys.executable).with_name("hub"))


def clean_environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(extra)
    return env


@pytest.fixture
def sandbox_exports(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Start `hub sandbox kingdee`, `wecom` and `dingtalk`; return the variables they printed."""
    processes, exports = [], {}
    try:
        for system in ("kingdee", "wecom", "dingtalk"):
            log = tmp_path / f"{system}.log"
            process = subprocess.Popen(
                [HUB, "sandbox", system, "--port", str(free_port()), *(["--scale", "0.02"] if system == "kingdee" else [])],
                stdout=log.open("w"), stderr=subprocess.STDOUT, env=clean_environment(COLUMNS="200"),
                start_new_session=True)
            processes.append(process)
            deadline = time.monotonic() + 60
            while "export HUB_" not in log.read_text() or not _answers(log.read_text()):
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
            exports.update(re.findall(r"export (HUB_[A-Z_]+)=(\S+)", log.read_text()))
        yield exports
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)


def _answers(banner: str) -> bool:
    url = re.search(r"sandbox at (http://\S+)", banner)
    if url is None:
        return False
    import httpx

    try:
        httpx.get(url.group(1) + "/", timeout=1, trust_env=False)
    except httpx.HTTPError:
        return False
    return True


def hub(*args: str, env: dict[str, str]) -> str:
    result = subprocess.run([HUB, *args], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_sandboxes_started_one_by_one_agree_with_each_other(sandbox_exports, db, settings, tmp_path):
    # given the printed variables (not sandbox mode) and the hub's database
    assert {"HUB_KINGDEE__BASE_URL", "HUB_KINGDEE__APP_SECRET", "HUB_WECOM__BASE_URL", "HUB_WECOM__SECRET"} \
        <= set(sandbox_exports)
    keys = dict(line.removeprefix("export ").split("=", 1) for line in hub("keys", "generate", env=clean_environment(
        COLUMNS="400")).splitlines() if line.startswith("export "))
    env = clean_environment(HUB_DATABASE_URL=db.url, HUB_DATABASE_SCHEMA=db.schema, COLUMNS="200",
                            **sandbox_exports, **keys)

    # the DingTalk sandbox printed its app key and secret and the unionId of a demo user (the
    # account to-dos are created as)
    assert {"HUB_DINGTALK__BASE_URL", "HUB_DINGTALK__API_BASE_URL", "HUB_DINGTALK__APP_KEY",
            "HUB_DINGTALK__APP_SECRET", "HUB_DINGTALK__OPERATOR_UNION_ID"} <= set(sandbox_exports)
    assert sandbox_exports["HUB_DINGTALK__OPERATOR_UNION_ID"] in {m.unionid for m in dingtalk_directory()}

    # when IT syncs the ERP, then the chat directories
    hub("sync", "kingdee", env=env)
    hub("sync", "wecom", env=env)
    hub("sync", "dingtalk", env=env)

    # then every salesperson the ERP names is a directory user (one person, not two), known
    # to both chat platforms
    with db.engine.connect() as conn:
        users = conn.execute(sa.text("SELECT count(*) FROM internal_user")).scalar()
        both = conn.execute(sa.text("SELECT count(*) FROM internal_user WHERE wecom_userid IS NOT NULL AND "
                                    "dingtalk_userid IS NOT NULL AND dingtalk_unionid IS NOT NULL")).scalar()
    assert users == 40 and both == 40
    # and a WeCom contact is unmatched only where the universe made it so on purpose
    quarantined = {r.source_ref for r in rows(db, "SELECT source_ref FROM quarantine WHERE stream = "
                                                  "'external_contacts' AND status = 'open'")}
    linked = {r.external_id for r in rows(db, "SELECT external_id FROM contact WHERE source_system = 'wecom' "
                                              "AND customer_id IS NOT NULL")}
    contacts = demo_external_contacts()
    assert quarantined | linked == {c.external_userid for c in contacts}
    assert len(linked) > 200
    for contact in contacts:
        if contact.external_userid in quarantined:
            # a short name alone (中科汽配 for 长沙中科汽车零部件有限公司) is not a name the hub may guess from
            full_name = contact.company.full_name if contact.company else ""
            always_named = bool(contact.corp_full_name) or all(f.remark_corp_name == full_name
                                                               for f in contact.follows)
            assert (not contact.name.strip()) or not contact.known_company or not always_named, contact

    # and it is the very outcome of the same syncs in sandbox mode (as the demo runs them)
    in_process = demo_like_outcome(settings, tmp_path)
    assert in_process == (quarantined, linked)


def demo_like_outcome(settings, tmp_path) -> tuple[set[str], set[str]]:
    """Quarantined and linked WeCom contacts after `sync kingdee` + `sync wecom` on in-process
    sandboxes (sandbox mode), in a schema of its own."""
    from hub.database import Database, create_db_engine
    from hub.runtime import HubRuntime

    schema = f"{settings.database_schema}_demo"
    url = settings.database_url.get_secret_value()
    db = Database(create_db_engine(url, schema), schema, url)
    db.upgrade()
    try:
        with HubRuntime(settings.model_copy(update={"database_schema": schema}), db, actor="test") as runtime:
            runtime.sandbox("kingdee", scale=0.02)
            runtime.sync("kingdee")
            runtime.sync("wecom")
            quarantined = {r.source_ref for r in rows(db, "SELECT source_ref FROM quarantine WHERE stream = "
                                                          "'external_contacts' AND status = 'open'")}
            linked = {r.external_id for r in rows(db, "SELECT external_id FROM contact WHERE source_system = "
                                                      "'wecom' AND customer_id IS NOT NULL")}
    finally:
        with sa.create_engine(url).begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    return quarantined, linked
