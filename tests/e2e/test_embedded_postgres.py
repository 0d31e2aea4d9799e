"""With no HUB_DATABASE_URL the hub runs its own Postgres, and survives being SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from hub.database import head_revision

pytestmark = pytest.mark.e2e
HEAD = head_revision()

HOLDER = """
import sys, time
from hub.database import open_database
db = open_database(check_schema=False)
with db.begin() as conn:
    conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS survived (n int)")
    conn.exec_driver_sql("INSERT INTO survived VALUES (1)")
print("ready", flush=True)
time.sleep(600)
"""


def _postgres_for(pgdata: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        if proc.info["name"] == "postgres" and str(pgdata) in " ".join(proc.info["cmdline"] or []):
            found.append(proc)
    return found


def _hub(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env["HUB_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "hub", *args], env=env, capture_output=True, text=True, timeout=120)


def test_embedded_server_starts_recovers_after_sigkill_and_stops_at_exit(tmp_path: Path):
    home = tmp_path / "home"
    pgdata = home / "pg"

    # a first command initializes, migrates and stops the server at exit
    result = _hub(home, "db", "upgrade")
    assert result.returncode == 0, result.stderr
    assert f"→ {HEAD}" in result.stdout
    assert _postgres_for(pgdata) == []

    # a hub process holding the server is SIGKILLed
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")} | {"HUB_HOME": str(home)}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER], env=env, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=10)

    # the next start needs no manual step, sees the data, and (being last) stops the server
    result = _hub(home, "db", "status")
    assert result.returncode == 0, result.stderr
    assert f"at {HEAD}," in result.stdout
    deadline = time.monotonic() + 10
    while _postgres_for(pgdata) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _postgres_for(pgdata) == []


def test_a_killed_postmaster_is_restarted(tmp_path: Path):
    home = tmp_path / "home"
    assert _hub(home, "db", "upgrade").returncode == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")} | {"HUB_HOME": str(home)}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        for proc in _postgres_for(home / "pg"):
            proc.send_signal(signal.SIGKILL)
    finally:
        holder.kill()
        holder.wait(timeout=10)
    deadline = time.monotonic() + 15  # the killed postmaster's children exit on their own
    while _postgres_for(home / "pg") and time.monotonic() < deadline:
        time.sleep(0.1)
    result = _hub(home, "db", "status")
    assert result.returncode == 0, result.stderr
    assert f"at {HEAD}," in result.stdout
