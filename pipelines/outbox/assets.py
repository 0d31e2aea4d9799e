"""Outbound assets: approved CRM orders pushed to the ERP, receivables turned into CRM tasks."""

from __future__ import annotations

import datetime as dt

from dagster import AssetExecutionContext, AssetKey, MaterializeResult, asset

from hub.collections_followup import evaluate_collection_tasks
from hub.outbox import outbox_summary
from pipelines.resources import HubResource


@asset(
    key=["crm", "orders_to_erp"], group_name="crm", deps=[AssetKey(["kingdee", "customers"])],
    kinds={"kingdee", "postgres"}, op_tags={"hub/system": "kingdee"},
    description="Dispatch the outbox rows of approved CRM orders into Kingdee sales orders "
                "(lost responses are looked up by bill number and adopted, never re-saved).",
)
def orders_to_erp(context: AssetExecutionContext, hub: HubResource) -> MaterializeResult:
    """Push approved CRM orders to the ERP through the outbox."""
    with hub.runtime("orders_to_erp") as runtime:
        counts = runtime.dispatcher(kinds=["kingdee.sales_order"]).drain()
        with runtime.db.begin() as conn:
            statuses = outbox_summary(conn, kind="kingdee.sales_order")
    return MaterializeResult(metadata={
        **{k: v for k, v in vars(counts).items()},
        **{f"outbox_{status}": n for status, n in statuses.items()},
    })


@asset(
    key=["crm", "receivable_followups"], group_name="crm",
    deps=[AssetKey(["kingdee", "receivables"]), AssetKey(["kingdee", "receipts"])],
    kinds={"postgres"},
    description="Overdue ERP receivables become 催收 tasks for the customer's owner (updated, closed when paid).",
)
def receivable_followups(context: AssetExecutionContext, hub: HubResource) -> MaterializeResult:
    """Turn overdue receivables into CRM collection tasks."""
    with hub.runtime("receivable_followups") as runtime, runtime.db.begin() as conn:
        counts = evaluate_collection_tasks(conn, dt.date.today())
    return MaterializeResult(metadata=dict(vars(counts)))
