"""The jobs IT runs and schedules, one per sync direction.

Each job is tagged with the external systems it talks to (``hub/system``); the run
queue's tag concurrency limits (``hub.dagster_home``) keep parallel runs within each
platform's rate limits. Jobs execute in process: the run's steps and checks share one
``HubRuntime`` (``HubResource`` opens it per run), so with no endpoint configured they all
talk to the one sandbox the run started, and a check reconciles against what its asset read.
"""

from __future__ import annotations

from dagster import AssetKey, AssetSelection, define_asset_job, in_process_executor

KINGDEE_INBOUND = AssetSelection.assets(*(AssetKey(["kingdee", s]) for s in
                                          ("customers", "sales_orders", "receivables", "receipts")))

erp_inbound = define_asset_job(
    "erp_inbound", selection=KINGDEE_INBOUND, executor_def=in_process_executor,
    tags={"hub/system": "kingdee"}, description="ERP customers, orders, receivables and receipts into the hub.",
)
orders_to_erp = define_asset_job(
    "orders_to_erp", selection=AssetSelection.assets(AssetKey(["crm", "orders_to_erp"])),
    executor_def=in_process_executor, tags={"hub/system": "kingdee"},
    description="Approved CRM orders → Kingdee sales orders (outbox dispatch).",
)
receivables_to_crm = define_asset_job(
    "receivables_to_crm",
    selection=AssetSelection.assets(AssetKey(["kingdee", "receivables"]), AssetKey(["kingdee", "receipts"]),
                                    AssetKey(["crm", "receivable_followups"])),
    executor_def=in_process_executor, tags={"hub/system": "kingdee"},
    description="Receivables and receipts into the profile; overdue amounts become collection tasks.",
)
todo_pushes = define_asset_job(
    "todo_pushes", selection=AssetSelection.assets(AssetKey(["wecom", "reminders"])),
    executor_def=in_process_executor, tags={"hub/system": "wecom"},
    description="Due, overdue and uncontacted reminders to salespeople and managers in WeCom.",
)
directory_sync = define_asset_job(
    "directory_sync",
    selection=AssetSelection.assets(AssetKey(["wecom", "directory"]), AssetKey(["wecom", "external_contacts"])),
    executor_def=in_process_executor, tags={"hub/system": "wecom"},
    description="WeCom departments, members (with managers) and external contacts into the hub.",
)

ALL_JOBS = [erp_inbound, orders_to_erp, receivables_to_crm, todo_pushes, directory_sync]
