"""When each job runs, in the hub's timezone; every schedule starts stopped (IT turns it on).

Cadences are settings, not code: each connector's inbound job runs on its own
``sync_cron`` (``HUB_KINGDEE__SYNC_CRON``, ``HUB_WECOM__SYNC_CRON``…), ``receivables_to_crm``
on ``HUB_SCHEDULES__RECEIVABLES``, ``todo_pushes`` on ``HUB_SCHEDULES__REMINDERS`` and
``leads_to_pool`` on ``HUB_SCHEDULES__LEADS`` and ``approvals_reconcile`` on
``HUB_APPROVALS__RECONCILE_CRON``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dagster import DefaultScheduleStatus, ScheduleDefinition

from hub.registry import specs
from hub.settings import Settings
from pipelines.jobs import inbound_job_name

if TYPE_CHECKING:  # Dagster does not export the type of define_asset_job's result
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition


def build_schedules(settings: Settings, jobs: list[UnresolvedAssetJobDefinition]) -> list[ScheduleDefinition]:
    """A schedule per inbound job and for the receivables and reminder jobs."""
    by_name = {job.name: job for job in jobs}
    cadences: dict[str, str] = {inbound_job_name(spec.system): settings.connector(spec.system).sync_cron
                for spec in specs() if spec.streams}
    cadences["receivables_to_crm"] = settings.schedules.receivables
    cadences["todo_pushes"] = settings.schedules.reminders
    cadences["leads_to_pool"] = settings.schedules.leads
    cadences["approvals_reconcile"] = settings.approvals.reconcile_cron
    return [
        ScheduleDefinition(name=f"{job}_schedule", job=by_name[job], cron_schedule=cron,
                           execution_timezone=settings.timezone, default_status=DefaultScheduleStatus.STOPPED)
        for job, cron in cadences.items() if job in by_name
    ]
