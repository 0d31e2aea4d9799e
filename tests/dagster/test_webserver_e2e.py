"""End to end: IT launches ERP inbound in the Dagster UI and reads what it did there.

`hub ui` (the Dagster webserver and daemon, and the code server they start) on a free
port, with the hub's instance from ``pipelines.instance.prepare_dagster_home`` (run and
event storage on Postgres, in a storage database of this test's own). The run is launched through the
webserver's GraphQL API, queued, dequeued by the daemon and executed by a run worker
process; the test then reads the run's materialization metadata and asset check results
back through the same API and compares them with the test's database.

The run worker is another process, so it cannot share an in-process sandbox: the test
serves a small Kingdee sandbox on a loopback port and names it in the run config
(``resources.hub.config.sandbox_urls``), exactly as IT could in the launchpad; the
database reaches the Dagster processes through ``HUB_DATABASE_URL`` and
``HUB_DATABASE_SCHEMA``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from connectors.kit.sandbox import RunningServer
from connectors.kit.sandbox.server import free_port
from hub.settings import Settings
from pipelines.instance import REPO_ROOT, prepare_dagster_home
from tests.conftest import rows, scalar
from tests.dagster.support import HUB_ROWS, KINGDEE_STREAMS, SYNC_NUMBERS, erp_records

pytestmark = pytest.mark.e2e

STARTUP_TIMEOUT_S = 180  # webserver, daemon and code server each load the definitions (90 s ran out at load 17)
RUN_TIMEOUT_S = 90
SHUTDOWN_TIMEOUT_S = 15
# how long the group gets to stop on SIGTERM before SIGKILL: its graceful shutdown is not under test
# here, and the daemon's takes ~10 s
GRACE_S = 3

METADATA_ENTRY = """
fragment entry on MetadataEntry {
  label
  ... on IntMetadataEntry { intValue }
  ... on FloatMetadataEntry { floatValue }
  ... on TextMetadataEntry { text }
  ... on JsonMetadataEntry { jsonString }
  ... on MarkdownMetadataEntry { mdStr }
}
"""
WORKSPACE = """
{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus locationOrLoadError {
    __typename
    ... on RepositoryLocation { repositories { name jobs { name } } }
    ... on PythonError { message }
} } } } }
"""
LAUNCH_RUN = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on PythonError { message }
    ... on Error { message }
  }
}
"""
RUN_STATUS = """
query Run($runId: ID!) { runOrError(runId: $runId) { __typename ... on Run { status jobName tags { key value } } } }
"""
RUN_EVENTS = METADATA_ENTRY + """
query Events($runId: ID!, $cursor: String) {
  logsForRun(runId: $runId, afterCursor: $cursor) {
    __typename
    ... on EventConnection {
      cursor
      hasMore
      events {
        __typename
        ... on MaterializationEvent { assetKey { path } metadataEntries { ...entry } }
        ... on AssetCheckEvaluationEvent {
          evaluation { assetKey { path } checkName success severity metadataEntries { ...entry } }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""


def entry_value(entry: dict[str, Any]) -> Any:
    for key in ("intValue", "floatValue", "text", "mdStr"):
        if key in entry:
            return entry[key]
    if "jsonString" in entry:
        return json.loads(entry["jsonString"])
    return None


class DagsterUI:
    """`hub ui` in a process group of its own, and its GraphQL API."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.env = env
        self.url = f"http://127.0.0.1:{self.port}/graphql"
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [str(Path(sys.executable).with_name("hub")), "ui", "--host", "127.0.0.1", "--port", str(self.port)],
            env=env, cwd=REPO_ROOT, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        self.http = httpx.Client(timeout=10, trust_env=False)

    def query(self, text: str, **variables: Any) -> dict[str, Any]:
        response = self.http.post(self.url, json={"query": text, "variables": variables})
        response.raise_for_status()
        body = response.json()
        assert "errors" not in body, body["errors"]
        return dict(body["data"])

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def wait_until_loaded(self, timeout_s: float) -> dict[str, Any]:
        """The one code location, once the webserver answers and has loaded it."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"hub ui exited:\n{self.log_tail()}"
            try:
                entries = self.query(WORKSPACE)["workspaceOrError"]["locationEntries"]
            except httpx.HTTPError:
                entries = []
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                (entry,) = entries
                assert entry["locationOrLoadError"]["__typename"] == "RepositoryLocation", entry
                return dict(entry)
            time.sleep(0.5)
        raise AssertionError(f"hub ui did not load the workspace in {timeout_s} s:\n{self.log_tail()}")

    def wait_for_run(self, run_id: str, timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            run = self.query(RUN_STATUS, runId=run_id)["runOrError"]
            if run["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
                return dict(run)
            time.sleep(0.5)
        raise AssertionError(f"run {run_id} did not finish in {timeout_s} s:\n{self.log_tail()}")

    def run_events(self, run_id: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = self.query(RUN_EVENTS, runId=run_id, cursor=cursor)["logsForRun"]
            assert page["__typename"] == "EventConnection", page
            events += page["events"]
            cursor = page["cursor"]
            if not page["hasMore"]:
                return events

    def stop(self) -> None:
        """SIGTERM to the whole group (webserver, daemon, code server, run workers), then SIGKILL
        to whatever of it is left."""
        self.http.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=GRACE_S)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=SHUTDOWN_TIMEOUT_S)
        self._log.close()


@pytest.fixture
def dagster_env(settings: Settings, db: Any, database_url: str) -> Iterator[dict[str, str]]:
    """The hub's Dagster instance for this test: storage in a database of its own, dropped after."""
    storage_database = f"dagster_{settings.database_schema}"
    _home, env = prepare_dagster_home(settings, storage_database=storage_database)
    env["HUB_DAGSTER__DATABASE"] = storage_database  # what `hub ui` reads
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        env.pop(name, None)
    yield env
    admin = sa.create_engine(make_url(database_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{storage_database}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def ui(dagster_env: dict[str, str], tmp_path: Path) -> Iterator[DagsterUI]:
    server = DagsterUI(dagster_env, tmp_path / "dagster-dev.log")
    try:
        yield server
    finally:
        server.stop()


def test_erp_inbound_launched_in_the_ui_reports_its_numbers_and_checks_through_graphql(
        ui: DagsterUI, dagster_env: dict[str, str], db: Any, kingdee_sandbox: RunningServer, settings: Settings):
    # given the Dagster UI on the hub's instance, with the hub's code location loaded
    assert dagster_env["HUB_DATABASE_SCHEMA"] == settings.database_schema
    location = ui.wait_until_loaded(STARTUP_TIMEOUT_S)
    startup_log = ui.log_path.read_text(errors="replace")  # before any run logs its own words
    (repository,) = location["locationOrLoadError"]["repositories"]
    assert {j["name"] for j in repository["jobs"]} >= {
        "kingdee_inbound", "orders_to_erp", "receivables_to_crm", "todo_pushes", "wecom_inbound"}

    # when IT launches erp_inbound (pointing the run at the test's ERP sandbox)
    launched = ui.query(LAUNCH_RUN, params={
        "selector": {"repositoryLocationName": location["name"], "repositoryName": repository["name"],
                     "jobName": "kingdee_inbound"},
        "runConfigData": {"resources": {"hub": {"config": {"sandbox_urls": {"kingdee": kingdee_sandbox.url}}}}},
    })["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]

    # then the daemon runs it to success, queued under the ERP's concurrency tag
    run = ui.wait_for_run(run_id, RUN_TIMEOUT_S)
    assert run["status"] == "SUCCESS", ui.log_tail()
    assert {"key": "hub/system", "value": "kingdee"} in run["tags"]
    # and the run lives in the hub's Postgres storage, not in a file next to the webserver
    storage = sa.create_engine(make_url(dagster_env["HUB_DAGSTER_STORAGE_URL"]).set(drivername="postgresql+psycopg"))
    with storage.connect() as conn:
        assert conn.execute(sa.text("SELECT status FROM runs WHERE run_id = :id"), {"id": run_id}).scalar() \
            == "SUCCESS"
    storage.dispose()

    # and the API reports per asset the numbers the database holds
    events = ui.run_events(run_id)
    materialized = {"/".join(e["assetKey"]["path"]): {m["label"]: entry_value(m) for m in e["metadataEntries"]}
                    for e in events if e["__typename"] == "MaterializationEvent"}
    assert set(materialized) == {f"kingdee/{s}" for s in KINGDEE_STREAMS}
    for stream in KINGDEE_STREAMS:
        metadata = materialized[f"kingdee/{stream}"]
        assert metadata["read"] == erp_records(kingdee_sandbox, stream) > 0, stream
        assert metadata["inserted"] == scalar(db, HUB_ROWS[stream]), stream
        assert metadata["quarantined"] == scalar(
            db, "SELECT count(*) FROM quarantine WHERE system = 'kingdee' AND stream = :s", s=stream)
        (sync_run,) = rows(db, "SELECT status, counts FROM sync_run WHERE id = :id", id=metadata["sync_run_id"])
        assert sync_run.status == "succeeded"
        assert {k: metadata[k] for k in SYNC_NUMBERS} == {k: sync_run.counts[k] for k in SYNC_NUMBERS}

    # and every asset check it ran passed, the reconciliation with the database's total
    checks = {("/".join(e["evaluation"]["assetKey"]["path"]), e["evaluation"]["checkName"]): e["evaluation"]
              for e in events if e["__typename"] == "AssetCheckEvaluationEvent"}
    assert set(checks) == {("kingdee/receivables", "open_receivables_match"),
                           *((f"kingdee/{s}", "quarantine_growth") for s in KINGDEE_STREAMS)}
    assert {key for key, evaluation in checks.items() if not evaluation["success"]} == set()
    reconciliation = {m["label"]: entry_value(m)
                      for m in checks[("kingdee/receivables", "open_receivables_match")]["metadataEntries"]}
    assert reconciliation["mismatched"] == 0
    assert reconciliation["hub_total"] == reconciliation["source_total"] \
        == str(scalar(db, "SELECT sum(open_amount) FROM receivable"))
    # and all of it was done by that run's workers
    assert scalar(db, "SELECT count(DISTINCT actor) FROM audit_log WHERE system = 'kingdee' "
                      "AND actor LIKE 'dagster:kingdee_inbound:%'") == 1
    # and `hub ui` (webserver + daemon, not Dagster's development wrapper) printed no supersession
    # warning at start-up, and the instance asks nothing and sends nothing (checked on this run's
    # UI: a second start of the webserver would cost the suite ~45 s for no other behaviour)
    assert "superseded" not in startup_log.lower() and "dg dev" not in startup_log
    instance = (Path(ui.env["DAGSTER_HOME"]) / "dagster.yaml").read_text()
    assert "telemetry:\n  enabled: false" in instance and "nux:\n  enabled: false" in instance
