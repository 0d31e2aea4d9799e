"""WeCom assets: the directory and external contacts in; due reminders out."""

import datetime as dt

from dagster import AssetExecutionContext, AssetKey, MaterializeResult, asset

from hub.outbox import outbox_summary
from hub.reminders import ReminderPolicy, evaluate_reminders
from pipelines.outbox.assets import DispatchConfig
from pipelines.resources import HubResource
from pipelines.sync_assets import system_assets

WECOM_SYNC_ASSETS = system_assets("wecom")


@asset(
    key=["wecom", "reminders"], group_name="wecom",
    deps=[AssetKey(["wecom", "directory"]), AssetKey(["crm", "receivable_followups"])],
    kinds={"wecom", "postgres"}, op_tags={"hub/system": "wecom"},
    description="Queue due/overdue/uncontacted reminders (once per task, recipient and kind) and send them.",
)
def reminders(context: AssetExecutionContext, config: DispatchConfig, hub: HubResource) -> MaterializeResult:
    """Evaluate the reminder rules and dispatch the WeCom reminder outbox."""
    with hub.runtime("reminders") as runtime:
        s = runtime.settings
        policy = ReminderPolicy(uncontacted_hours=s.reminders.uncontacted_hours,
                                duplicate_check_interval_s=s.wecom.duplicate_check_interval_s,
                                profile_base_url=s.reminders.profile_base_url)
        with runtime.db.begin() as conn:
            queued = evaluate_reminders(conn, dt.datetime.now(dt.UTC), policy)
        sent = runtime.dispatcher(kinds=["wecom.reminder"]).drain(
            wait_for_scheduled=config.wait_for_retries_s > 0, timeout_s=config.wait_for_retries_s)
        with runtime.db.begin() as conn:
            statuses = outbox_summary(conn, kind="wecom.reminder")
    return MaterializeResult(metadata={
        "queued": queued.queued, "already_queued": queued.already_queued, "no_account": queued.no_account,
        "first_followup_tasks": queued.tasks_created, "sent": sent.done, "adopted": sent.adopted,
        "retried": sent.retried,
        "failed": sent.failed, "dead": sent.dead, **{f"outbox_{k}": v for k, v in statuses.items()},
    })
