"""A Dagster instance on the hub's Postgres: ``DAGSTER_HOME`` under ``HUB_HOME``.

Run, event-log and schedule storage live in a database (``HUB_DAGSTER__DATABASE``,
default ``dagster``) on the same server as the hub (the embedded one by default), so run history and schedule state survive
restarts and several processes (webserver, daemon, run workers) share them. The run
queue limits concurrent runs per external system through the ``hub/system`` tag, so
parallel runs stay inside each platform's rate limits. The Dagster processes get the
hub's database, schema and home through the environment (``HUB_DATABASE_URL``,
``HUB_DATABASE_SCHEMA``, ``HUB_HOME``), which is where ``pipelines.definitions`` reads
them; a test gives its own storage database so its runs never meet anyone else's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from hub.database import dagster_storage_url, resolve_url
from hub.settings import Settings


def system_concurrency() -> dict[str, int]:
    """At most one concurrent run per ``hub/system`` tag value of the hub's jobs: ERP
    servers show overload as timeouts, and chat platforms count their limits per app."""
    from pipelines.jobs import build_jobs, system_tag_values

    return {value: 1 for value in sorted(system_tag_values(build_jobs()))}
REPO_ROOT = Path(__file__).resolve().parents[1]


def ensure_dagster_database(hub_url: str, database: str) -> str:
    """Create ``database`` next to the hub's if missing; return its SQLAlchemy URL."""
    url = make_url(hub_url)
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": database}).scalar()
            if not exists:
                try:
                    conn.execute(sa.text(f'CREATE DATABASE "{database}"'))
                except sa.exc.ProgrammingError:
                    # another process created it between our look and our CREATE
                    if not conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :d"),
                                        {"d": database}).scalar():
                        raise
    finally:
        admin.dispose()
    return url.set(database=database).render_as_string(hide_password=False)


def instance_yaml(settings: Settings) -> str:
    """dagster.yaml text: Postgres storage (URL from the environment), queued runs with
    per-system limits, run monitoring; telemetry and the onboarding prompt as configured
    (off by default: a private deployment sends nothing and asks nothing)."""
    limits = "\n".join(
        f'    - key: "hub/system"\n      value: "{system}"\n      limit: {limit}'
        for system, limit in system_concurrency().items()
    )
    telemetry = "true" if settings.dagster.telemetry else "false"
    return (
        "storage:\n  postgres:\n    postgres_url:\n      env: HUB_DAGSTER_STORAGE_URL\n"
        "run_queue:\n  max_concurrent_runs: 4\n  tag_concurrency_limits:\n" + limits + "\n"
        "run_monitoring:\n  enabled: true\n"
        f"telemetry:\n  enabled: {telemetry}\n"
        "nux:\n  enabled: false\n"
    )


def prepare_dagster_home(settings: Settings, *, storage_database: str | None = None
                         ) -> tuple[Path, dict[str, str]]:
    """Write ``HUB_HOME/dagster/dagster.yaml``; return the home and the environment to run in.

    Dagster's storage goes into ``storage_database`` (default ``HUB_DAGSTER__DATABASE``) on
    the hub's server. The storage URL and the hub's database URL (they may hold a
    password) go through the environment, not the file.
    """
    hub_url = resolve_url(settings)
    storage = dagster_storage_url(ensure_dagster_database(hub_url, storage_database or settings.dagster.database))
    home = settings.home / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(instance_yaml(settings))
    env = {
        **os.environ, "DAGSTER_HOME": str(home), "HUB_DAGSTER_STORAGE_URL": storage,
        # run workers and the code server use this hub's database (and, when it is the
        # embedded one, join the server started here instead of starting their own)
        "HUB_DATABASE_URL": hub_url, "HUB_DATABASE_SCHEMA": settings.database_schema,
        "HUB_HOME": str(settings.home),
    }
    if settings.sandbox:
        env["HUB_SANDBOX"] = "1"
    return home, env


def run_ui(settings: Settings, *, host: str = "127.0.0.1", port: int = 3000) -> int:
    """The Dagster webserver and daemon on the hub's instance, as two processes (what a
    deployment runs; `dagster dev` is Dagster's development wrapper around the same two).
    Ctrl-C or SIGTERM stops both; if either dies, the other is stopped too."""
    _home, env = prepare_dagster_home(settings)
    workspace = str(REPO_ROOT / "dagster_workspace.yaml")
    bin_dir = Path(sys.executable).parent
    processes = [
        subprocess.Popen([str(bin_dir / "dagster-webserver"), "-w", workspace, "-h", host, "-p", str(port)],
                         env=env, cwd=REPO_ROOT),
        subprocess.Popen([str(bin_dir / "dagster-daemon"), "run", "-w", workspace], env=env, cwd=REPO_ROOT),
    ]
    try:
        while all(p.poll() is None for p in processes):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
    return max(p.returncode or 0 for p in processes)
