"""Outbox dispatchers as separate processes (``hub dispatch``), for tests that kill or race them.

A child is configured only through the environment, the way a deployment is: the test's
database schema, and each connector pointed at a sandbox running in the test process
(``HUB_<SYSTEM>__BASE_URL`` plus the sandbox's credentials, so not sandbox mode).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from hub.database import Database
from hub.registry import connector
from hub.runtime import load_sandbox
from hub.vault import generate_key
from tests.conftest import scalar

ROOT = Path(__file__).resolve().parents[2]


def dispatcher_env(db: Database, home: Path, *, sandboxes: Mapping[str, str],
                   connectors: Mapping[str, Mapping[str, Any]] | None = None,
                   outbox: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Environment for a child dispatcher: ``sandboxes`` maps a system to its sandbox URL;
    ``connectors`` and ``outbox`` add settings (``{"kingdee": {"timeout_s": 0.5}}``)."""
    env = {name: value for name, value in os.environ.items() if not name.upper().startswith("HUB_")}
    env.update({"HUB_DATABASE_URL": db.url, "HUB_DATABASE_SCHEMA": db.schema, "HUB_HOME": str(home),
                "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"})
    for system, url in sandboxes.items():
        spec = connector(system)
        pointed = load_sandbox(spec).client_settings(url, spec.settings_model())
        values = {**pointed.model_dump(exclude_none=True), **(connectors or {}).get(system, {})}
        for name, value in values.items():
            if name in spec.settings_model.model_fields:
                plain = value.get_secret_value() if isinstance(value, SecretStr) else value
                env[f"HUB_{system.upper()}__{name.upper()}"] = str(plain)
        env[f"HUB_{system.upper()}__ALLOW_HTTP"] = "true"  # the sandbox is plain http on loopback
    for name, value in (outbox or {}).items():
        env[f"HUB_OUTBOX__{name.upper()}"] = str(value)
    # not sandbox mode: the keys of the personal data at rest come from the environment too
    env.update({"HUB_VAULT__KEYS": f"child:{generate_key()}", "HUB_VAULT__INDEX_KEY": generate_key()})
    return env


def start_dispatcher(env: Mapping[str, str], *kinds: str, log: Path | None = None) -> subprocess.Popen[bytes]:
    """``hub dispatch --wait --kind …`` in a child process (its output into ``log``)."""
    args = [sys.executable, "-m", "hub", "dispatch", "--wait", *(f"--kind={kind}" for kind in kinds)]
    out = log.open("ab") if log is not None else subprocess.DEVNULL
    return subprocess.Popen(args, env=dict(env), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)


def audited_by(db: Database, child: subprocess.Popen[bytes]) -> int:
    """Outbox outcomes a child dispatcher has recorded so far (its actor names its pid)."""
    return int(scalar(db, "SELECT count(*) FROM audit_log WHERE actor LIKE :a",  # type: ignore[arg-type]
                      a=f"dispatcher:%:{child.pid}:%"))


def wait_until_working(db: Database, child: subprocess.Popen[bytes], *, at_least: int = 1,
                       timeout_s: float = 60.0) -> None:
    """Block until ``child`` has recorded ``at_least`` outcomes (it got past start-up)."""
    deadline = time.monotonic() + timeout_s
    while audited_by(db, child) < at_least:
        if child.poll() is not None:
            return  # it finished already: nothing left to do
        assert time.monotonic() < deadline, "dispatcher child made no progress"
        time.sleep(0.05)


def sigkill(child: subprocess.Popen[bytes]) -> None:
    """Kill ``child`` with no chance to clean up, and reap it."""
    if child.poll() is None:
        os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
