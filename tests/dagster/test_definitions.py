"""The hub's Dagster definitions load, and say what IT sees in the UI.

``dagster definitions validate`` loads ``dagster_workspace.yaml`` exactly as `dagster dev`
does (in a process of its own, with the environment of a first run: no endpoints, the
sandboxes). The rest inspects the loaded ``Definitions``: one job per sync direction,
tagged with the external system it talks to (the run queue's concurrency key),
schedules that start stopped, and the outbox sensor's run requests.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa
from dagster import DefaultScheduleStatus, SensorResult, SkipReason, build_sensor_context

from hub.rules.orders import approve_order
from pipelines.definitions import defs as workspace_defs
from pipelines.instance import REPO_ROOT
from pipelines.resources import HubResource
from tests.dagster.support import load_crm

JOBS: dict[str, str | None] = {"kingdee_inbound": "kingdee", "kingdee_sales_order_push": "kingdee", "orders_to_erp": "kingdee,yonyou",
        # the tenant's ledgers only: Kingdee by default (HUB_ORDERS__ERP), Yonyou when routed to or configured
        "receivables_to_crm": "kingdee", "todo_pushes": "dingtalk,wecom", "wecom_inbound": "wecom",
        "wecom_reminder_push": "wecom", "yonyou_inbound": "yonyou", "yonyou_sales_order_push": "yonyou",
        "dingtalk_inbound": "dingtalk", "dingtalk_reminder_push": "dingtalk", "dingtalk_todo_push": "dingtalk",
        "crm_webhook_push": "crm",
        "dingtalk_approval_push": "dingtalk", "wecom_approval_push": "wecom", "approvals_reconcile": "dingtalk,wecom",
        # talks to no external system: no run-queue tag
        "leads_to_pool": None}


def test_the_workspace_passes_dagster_definitions_validate(tmp_path: Path):
    # given a first run's environment: a fresh Dagster home, nothing configured
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "DAGSTER_"))}
    env.update(DAGSTER_HOME=str(tmp_path), HUB_HOME=str(tmp_path / "hub"))
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")

    # when Dagster validates the workspace the UI loads
    result = subprocess.run(
        [str(Path(sys.executable).with_name("dagster")), "definitions", "validate", "-w",
         str(REPO_ROOT / "dagster_workspace.yaml")],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=180)

    # then it passes
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All code locations passed validation" in result.stdout + result.stderr


def test_each_sync_direction_is_a_job_tagged_with_the_system_it_talks_to():
    jobs = {job.name: job for job in workspace_defs.resolve_all_job_defs() if not job.name.startswith("__")}
    assert set(jobs) == set(JOBS)
    for name, system in JOBS.items():
        assert jobs[name].tags.get("hub/system") == system, name
        assert jobs[name].executor_def.name == "in_process", name
    schedules = list(workspace_defs.schedules or [])
    assert {s.job_name for s in schedules} == {"kingdee_inbound", "receivables_to_crm", "wecom_inbound", "todo_pushes",
                                                  "yonyou_inbound", "dingtalk_inbound", "leads_to_pool",
                                                  "approvals_reconcile"}
    assert {s.default_status for s in schedules} == {DefaultScheduleStatus.STOPPED}


def test_the_outbox_sensor_requests_one_dispatch_run_per_ready_set(defs, db, run):
    hub: HubResource = defs.resources["hub"]  # type: ignore[assignment]
    (outbox_sensor,) = defs.sensors or []

    def evaluate() -> SensorResult | SkipReason:
        with build_sensor_context(resources={"hub": hub}) as context:
            return outbox_sensor(context)  # type: ignore[no-any-return]

    # given no outbox work, the sensor skips
    assert isinstance(evaluate(), SkipReason)

    # given approved CRM orders, their pushes waiting in the outbox
    load_crm(db, orders=3)
    with db.begin() as conn:
        for order_id in conn.execute(sa.text("SELECT id FROM sales_order ORDER BY id")).scalars():
            approve_order(conn, order_id, at=dt.datetime.now(dt.UTC))

    # when the sensor evaluates (twice, nothing changing in between)
    first, again = evaluate(), evaluate()

    # then it asks for one run of the kind's push job, under a run key that does not start the same work twice
    assert isinstance(first, SensorResult) and isinstance(again, SensorResult)
    (request,) = first.run_requests or []
    assert request.job_name == "kingdee_sales_order_push"
    assert request.tags["hub/ready_rows"] == "3"
    assert [r.run_key for r in again.run_requests or []] == [request.run_key]

    # and once the run dispatched them, there is nothing left to ask for
    assert run("kingdee_sales_order_push").success
    assert isinstance(evaluate(), SkipReason)
