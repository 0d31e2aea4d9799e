"""When each job runs. Cron expressions come from the environment so IT can change a
cadence without a release: ``HUB_SCHEDULE_ERP_INBOUND`` (default every 15 minutes),
``HUB_SCHEDULE_DIRECTORY`` (nightly), ``HUB_SCHEDULE_REMINDERS`` (every 5 minutes),
``HUB_SCHEDULE_RECEIVABLES`` (hourly). Times are in ``HUB_TIMEZONE`` (Asia/Shanghai).
Schedules start stopped; IT turns them on in the UI (or `dagster schedule start`).
"""

from __future__ import annotations

import os

from dagster import DefaultScheduleStatus, ScheduleDefinition

from pipelines.jobs import directory_sync, erp_inbound, receivables_to_crm, todo_pushes

TIMEZONE = os.environ.get("HUB_TIMEZONE", "Asia/Shanghai")


def _cron(name: str, default: str) -> str:
    return os.environ.get(f"HUB_SCHEDULE_{name}", default)


erp_inbound_schedule = ScheduleDefinition(
    name="erp_inbound_every_15_min", job=erp_inbound, cron_schedule=_cron("ERP_INBOUND", "*/15 * * * *"),
    execution_timezone=TIMEZONE, default_status=DefaultScheduleStatus.STOPPED)
receivables_schedule = ScheduleDefinition(
    name="receivables_to_crm_hourly", job=receivables_to_crm, cron_schedule=_cron("RECEIVABLES", "5 * * * *"),
    execution_timezone=TIMEZONE, default_status=DefaultScheduleStatus.STOPPED)
directory_schedule = ScheduleDefinition(
    name="directory_sync_nightly", job=directory_sync, cron_schedule=_cron("DIRECTORY", "30 2 * * *"),
    execution_timezone=TIMEZONE, default_status=DefaultScheduleStatus.STOPPED)
reminders_schedule = ScheduleDefinition(
    name="todo_pushes_every_5_min", job=todo_pushes, cron_schedule=_cron("REMINDERS", "*/5 * * * *"),
    execution_timezone=TIMEZONE, default_status=DefaultScheduleStatus.STOPPED)

ALL_SCHEDULES = [erp_inbound_schedule, receivables_schedule, directory_schedule, reminders_schedule]
