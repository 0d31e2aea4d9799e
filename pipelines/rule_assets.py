"""Assets of the domain rules (``hub.rules``): what the hub derives from the synced data.

- ``crm/receivable_followups``: overdue receivables become 催收 tasks for the customer's
  owner (updated, closed when paid), after every ERP's receivables and receipts;
- ``crm/reminders_due``: due, overdue and uncontacted tasks become reminder rows in the
  outbox, once per (task, recipient, kind) on the recipient's one chat platform, and tasks
  become to-dos on platforms that hold them; the ``<chat>/reminder_push`` and
  ``<chat>/todo_push`` assets deliver them. It runs after the completion streams
  (to-dos ticked off on a platform), so a task closed there is not pushed back;
- ``crm/leads_returned_to_pool``: leads assigned ``HUB_LEADS__RETURN_TO_POOL_DAYS`` ago that
  nobody followed up go back to the public pool (job ``leads_to_pool``);
- ``crm/automation_rules``: the automation rules (``HUB_RULES__FILE`` or the shipped defaults,
  ``hub.rules.automation``) applied once, after the two above in the ``todo_pushes`` job; its
  metadata is the plan it applied, as markdown (the same as `hub rules test` shows), and the
  firings per rule. Its reminders share their keys and task kinds with ``crm/reminders_due``,
  so a reminder either of them queued is never queued again by the other.
- ``crm/approvals_reconciled``: every open OA approval not read for
  ``HUB_APPROVALS__RECHECK_MINUTES`` gets a re-read queued (the fallback for lost callbacks);
  the ``<chat>/approval_push`` assets read them (job ``approvals_reconcile``).
"""

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from dagster import AssetExecutionContext, AssetKey, AssetsDefinition, MaterializeResult, MetadataValue, asset

from hub.registry import chat_systems, specs
from hub.rules.approvals import reconcile
from hub.rules.automation import apply, dry_run, load_book, plan_as_markdown, rule_env
from hub.rules.collections import evaluate_collection_tasks
from hub.rules.lead_assignment import return_stale_leads
from hub.rules.reminders import ReminderPolicy, evaluate_reminders
from hub.rules.todos import TodoPolicy, evaluate_todos
from pipelines.assets import stream_key
from pipelines.resources import HubResource

RECEIVABLE_FOLLOWUPS = AssetKey(["crm", "receivable_followups"])
REMINDERS_DUE = AssetKey(["crm", "reminders_due"])
LEADS_TO_POOL = AssetKey(["crm", "leads_returned_to_pool"])
AUTOMATION_RULES = AssetKey(["crm", "automation_rules"])
APPROVALS_RECONCILED = AssetKey(["crm", "approvals_reconciled"])


def streams_into(*targets: str) -> list[AssetKey]:
    """Stream assets of every connector that write one of ``targets``."""
    return [stream_key(spec.system, s.name) for spec in specs() for s in spec.streams if s.target in targets]


def rule_assets() -> list[AssetsDefinition]:
    """The rule assets, wired to the streams they read."""

    @asset(key=RECEIVABLE_FOLLOWUPS, group_name="crm", deps=streams_into("receivable", "receipt"),
           kinds={"postgres"},
           description="Overdue ERP receivables become 催收 tasks for the customer's owner (updated, closed "
                       "when paid).")
    def receivable_followups(context: AssetExecutionContext, hub: HubResource) -> MaterializeResult:
        """Overdue as of today in the hub's time zone."""
        with hub.runtime("receivable_followups") as runtime, runtime.db.begin() as conn:
            today = dt.datetime.now(ZoneInfo(runtime.settings.timezone)).date()
            counts = evaluate_collection_tasks(conn, today,
                                               finance_recipients=runtime.settings.collections.recipients())
        metadata: dict[str, Any] = {k: v for k, v in vars(counts).items() if isinstance(v, int)}
        metadata["unrouted_sample"] = ", ".join(map(str, counts.unrouted_customer_ids[:20])) or "-"
        if counts.unrouted:
            context.log.warning(f"{counts.unrouted} overdue customer(s) have no owner and no finance recipient "
                                "(HUB_COLLECTIONS__FINANCE_RECIPIENTS): no 催收 task; see the audit")
        return MaterializeResult(metadata=metadata)

    @asset(key=REMINDERS_DUE, group_name="crm",
           deps=[*streams_into("internal_user", "task_completion"), RECEIVABLE_FOLLOWUPS], kinds={"postgres"},
           description="Queue due, overdue and uncontacted reminders (once per task, recipient and kind, on the "
                       "recipient's one chat platform) and keep tasks' to-dos in step.")
    def reminders_due(context: AssetExecutionContext, hub: HubResource) -> MaterializeResult:
        """Evaluate the reminder and to-do rules over every chat platform."""
        with hub.runtime("reminders_due") as runtime:
            s = runtime.settings
            intervals = [getattr(s.connector(c), "duplicate_check_interval_s", None) for c in chat_systems()]
            policy = ReminderPolicy(uncontacted_hours=s.reminders.uncontacted_hours,
                                    duplicate_check_interval_s=next((i for i in intervals if i), 1800),
                                    profile_base_url=s.public_url, channels=s.reminders.channels())
            now = dt.datetime.now(dt.UTC)
            with runtime.db.begin() as conn:
                reminders = evaluate_reminders(conn, now, policy)
            with runtime.db.begin() as conn:
                todos = evaluate_todos(conn, now, TodoPolicy(profile_base_url=s.public_url,
                                                             channels=s.reminders.channels()))
        by_channel = reminders.queued_by_channel
        metadata: dict[str, Any] = {k: v for k, v in vars(reminders).items() if isinstance(v, int)}
        metadata.update({f"{channel}_queued": by_channel.get(channel, 0) for channel in chat_systems()})
        metadata.update({f"todos_{k}": v for k, v in vars(todos).items()})
        return MaterializeResult(metadata=metadata)

    @asset(key=LEADS_TO_POOL, group_name="crm", kinds={"postgres"},
           description="Leads nobody followed up within HUB_LEADS__RETURN_TO_POOL_DAYS of their assignment go back "
                       "to the public pool (公海池).")
    def leads_returned_to_pool(context: AssetExecutionContext, hub: HubResource) -> MaterializeResult:
        """Return stale leads to the pool."""
        with hub.runtime("leads_to_pool") as runtime, runtime.db.begin() as conn:
            counts = return_stale_leads(conn, runtime.settings.leads, actor="dagster:leads_to_pool")
            in_pool = conn.execute(sa.text("SELECT count(*) FROM lead WHERE status = 'pool'")).scalar_one()
        return MaterializeResult(metadata={**vars(counts), "leads_in_pool": in_pool})

    @asset(key=AUTOMATION_RULES, group_name="crm", deps=[RECEIVABLE_FOLLOWUPS, REMINDERS_DUE], kinds={"postgres"},
           description="Apply the automation rules (HUB_RULES__FILE or the shipped defaults): each rule fires once "
                       "per subject and window; the plan it applied is in the metadata.")
    def automation_rules(context: AssetExecutionContext, hub: HubResource) -> MaterializeResult:
        """Plan (read-only), then apply; the plan is the metadata."""
        with hub.runtime("automation_rules") as runtime:
            book = load_book(runtime.settings)
            env = rule_env(runtime.settings, book)
            now = dt.datetime.now(dt.UTC)
            plans = dry_run(runtime.db.engine, book, now, env)
            report = apply(runtime.db.engine, book, now, env)
        if report.failed:
            context.log.warning(f"{report.failed} rule firing(s) failed: see rule_firing.error")
        metadata: dict[str, Any] = {"fired": report.fired, "failed": report.failed, "already": report.already,
                                    "rules": len(plans), "plan": MetadataValue.md(plan_as_markdown(plans) or "-")}
        metadata.update({f"fired_{name.replace('-', '_')}": count for name, count in report.by_rule.items()})
        return MaterializeResult(metadata=metadata)

    @asset(key=APPROVALS_RECONCILED, group_name="crm", kinds={"postgres"},
           description="Queue a re-read of every open OA approval (DingTalk, WeCom) not read for "
                       "HUB_APPROVALS__RECHECK_MINUTES, and of approved ones still watched for a revocation.")
    def approvals_reconciled(context: AssetExecutionContext, hub: HubResource) -> MaterializeResult:
        """The poll behind the approval callbacks."""
        with hub.runtime("approvals_reconcile") as runtime, runtime.db.begin() as conn:
            s = runtime.settings.approvals
            counts = reconcile(conn, dt.datetime.now(dt.UTC), recheck_after=dt.timedelta(minutes=s.recheck_minutes),
                               revoke_watch=dt.timedelta(days=s.revoke_watch_days))
        if counts.waiting_for_instance:
            context.log.info(f"{counts.waiting_for_instance} approval(s) still wait for their create in the outbox")
        return MaterializeResult(metadata=vars(counts))

    return [receivable_followups, reminders_due, leads_returned_to_pool, automation_rules, approvals_reconciled]
