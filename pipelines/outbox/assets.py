"""Outbound assets: approved CRM orders pushed to the ERP, receivables turned into CRM tasks."""

import datetime as dt
from zoneinfo import ZoneInfo

from dagster import AssetExecutionContext, AssetKey, Config, MaterializeResult, asset

from hub.collections_followup import evaluate_collection_tasks
from hub.outbox import outbox_summary
from pipelines.resources import HubResource


class DispatchConfig(Config):
    """Run configuration of a dispatching asset."""

    # 0: dispatch what is ready now; rows whose retry falls due later get their own run
    # (the outbox sensor). The demo waits for them, bounded by this many seconds.
    wait_for_retries_s: float = 0.0


@asset(
    key=["crm", "orders_to_erp"], group_name="crm", deps=[AssetKey(["kingdee", "customers"])],
    kinds={"kingdee", "postgres"}, op_tags={"hub/system": "kingdee"},
    description="Dispatch the outbox rows of approved CRM orders into Kingdee sales orders "
                "(lost responses are looked up by bill number and adopted, never re-saved).",
)
def orders_to_erp(context: AssetExecutionContext, config: DispatchConfig, hub: HubResource) -> MaterializeResult:
    """Push approved CRM orders to the ERP through the outbox."""
    with hub.runtime("orders_to_erp") as runtime:
        counts = runtime.dispatcher(kinds=["kingdee.sales_order"]).drain(
            wait_for_scheduled=config.wait_for_retries_s > 0, timeout_s=config.wait_for_retries_s)
        with runtime.db.begin() as conn:
            statuses = outbox_summary(conn, kind="kingdee.sales_order")
    context.log.info(f"orders_to_erp: {counts}")
    return MaterializeResult(metadata={
        **vars(counts),
        **{f"outbox_{status}": n for status, n in statuses.items()},
    })


@asset(
    key=["crm", "receivable_followups"], group_name="crm",
    deps=[AssetKey(["kingdee", "receivables"]), AssetKey(["kingdee", "receipts"])],
    kinds={"postgres"},
    description="Overdue ERP receivables become 催收 tasks for the customer's owner (updated, closed when paid).",
)
def receivable_followups(context: AssetExecutionContext, hub: HubResource) -> MaterializeResult:
    """Turn overdue receivables into CRM collection tasks (overdue as of today in the hub's time zone)."""
    with hub.runtime("receivable_followups") as runtime, runtime.db.begin() as conn:
        today = dt.datetime.now(ZoneInfo(runtime.settings.timezone)).date()
        counts = evaluate_collection_tasks(conn, today)
    return MaterializeResult(metadata=dict(vars(counts)))
