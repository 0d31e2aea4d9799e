"""The jobs IT runs and schedules, generated from the registry.

Per connector: ``<system>_inbound`` (all its streams) and ``<system>_<writer>_push`` (one
outbox kind; the outbox sensor starts these). Across connectors, named in the users'
words: ``orders_to_erp`` (every ERP's sales-order push), ``receivables_to_crm``
(receivables and receipts, then collection tasks) and ``todo_pushes`` (to-dos completed on
chat platforms read back, reminders and to-dos queued, then delivered on every chat platform)
``leads_to_pool`` (unworked leads back to the public pool) and ``approvals_reconcile`` (open OA
approvals re-read on every chat platform: the fallback for lost callbacks).

Each job is tagged ``hub/system`` with the external systems it talks to (comma-joined);
the run queue's tag concurrency limits (``pipelines.instance``) keep one run per
system at a time, within each platform's rate limits.

Steps execute as ``HUB_DAGSTER__EXECUTOR`` says (:func:`executor_for`). ``in_process`` (the
default): one after another in the run's process, sharing one ``HubRuntime``, so a check
reconciles against what its asset read. ``multiprocess``: Dagster's multiprocess executor
runs the steps whose upstream assets are done at once, each in its own process (the stream
assets' deps follow ``StreamSpec.depends_on``: customers, then orders, receivables and
receipts together), at most ``HUB_DAGSTER__MAX_CONCURRENT_STEPS`` per run and, per
``hub/system`` op tag, at most the connector's declared concurrency
(``ConnectorSpec.limits``), the limit ``hub sync`` keeps too.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from dagster import (
    AssetKey,
    AssetSelection,
    ExecutorDefinition,
    define_asset_job,
    in_process_executor,
    multiprocess_executor,
)

from hub.registry import chat_systems, inbound_job_name, push_job_name, specs
from hub.settings import Settings
from pipelines.assets import push_key, stream_key
from pipelines.rule_assets import (
    APPROVALS_RECONCILED,
    AUTOMATION_RULES,
    LEADS_TO_POOL,
    RECEIVABLE_FOLLOWUPS,
    REMINDERS_DUE,
)

if TYPE_CHECKING:  # Dagster does not export the type of define_asset_job's result
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

SYSTEM_TAG = "hub/system"


def executor_for(settings: Settings | None) -> ExecutorDefinition:
    """The executor of every job: ``HUB_DAGSTER__EXECUTOR`` (in process without settings)."""
    if settings is None or settings.dagster.executor == "in_process":
        return in_process_executor
    limits: list[dict[str, Any]] = []
    for spec in specs():
        concurrency = spec.limits(settings.connector(spec.system)).concurrency if spec.limits else None
        if concurrency is not None:
            limits.append({"key": SYSTEM_TAG, "value": spec.system, "limit": concurrency})
    return multiprocess_executor.configured(
        {"max_concurrent": settings.dagster.max_concurrent_steps, "tag_concurrency_limits": limits},
        name="multiprocess")


def _job(name: str, keys: list[AssetKey], systems: set[str], description: str,
         executor: ExecutorDefinition = in_process_executor) -> UnresolvedAssetJobDefinition:
    return define_asset_job(
        name, selection=AssetSelection.assets(*keys), executor_def=executor,
        tags={SYSTEM_TAG: ",".join(sorted(systems))} if systems else None, description=description,
    )


def ledgers_in_use(settings: Settings | None) -> set[str] | None:
    """The ERPs whose ledgers ``receivables_to_crm`` reads: those orders are routed to
    (``HUB_ORDERS__*``) and any ERP whose connection is configured. None (no settings): every
    registered one. A registered ERP the tenant does not run must not fail that job with "not
    configured", nor be read in sandbox mode as if it were the tenant's."""
    if settings is None:
        return None
    routed = {settings.orders.erp, *settings.orders.erp_by_entity.values()} - {None}
    configured = {spec.system for spec in specs() if settings.connector(spec.system).is_configured()}
    return {erp for erp in routed if erp is not None} | configured


def build_jobs(settings: Settings | None = None) -> list[UnresolvedAssetJobDefinition]:
    """Every job, generated from the registered connectors (``settings`` decides which ERPs'
    ledgers the receivables job reads, :func:`ledgers_in_use`)."""
    ledgers = ledgers_in_use(settings)
    job = partial(_job, executor=executor_for(settings))
    jobs = []
    order_pushes: list[AssetKey] = []
    order_systems: set[str] = set()
    reminder_pushes: list[AssetKey] = []
    approval_pushes: list[AssetKey] = []
    approval_systems: set[str] = set()
    completion_streams: list[AssetKey] = []
    receivable_streams: list[AssetKey] = []
    receivable_systems: set[str] = set()
    for spec in specs():
        if spec.streams:
            jobs.append(job(inbound_job_name(spec.system), [stream_key(spec.system, s.name) for s in spec.streams],
                             {spec.system}, f"{spec.title}: every stream into the hub."))
        for kind in spec.writer_kinds:
            jobs.append(job(push_job_name(kind), [push_key(kind)], {spec.system},
                             f"{spec.title}: deliver the outbox rows of kind {kind}."))
            if kind.endswith(".sales_order"):
                order_pushes.append(push_key(kind))
                order_systems.add(spec.system)
            if kind.endswith((".reminder", ".todo")):
                reminder_pushes.append(push_key(kind))
            if kind.endswith(".approval"):
                approval_pushes.append(push_key(kind))
                approval_systems.add(spec.system)
        for s in spec.streams:
            if s.target == "task_completion":
                completion_streams.append(stream_key(spec.system, s.name))
            if s.target in ("receivable", "receipt") and (ledgers is None or spec.system in ledgers):
                receivable_streams.append(stream_key(spec.system, s.name))
                receivable_systems.add(spec.system)
    if order_pushes:
        jobs.append(job("orders_to_erp", order_pushes, order_systems,
                    "Approved CRM orders → ERP sales orders (outbox dispatch)."))
    jobs.append(job("receivables_to_crm", [*receivable_streams, RECEIVABLE_FOLLOWUPS], receivable_systems,
                    "Receivables and receipts into the profile; overdue amounts become collection tasks."))
    jobs.append(job("todo_pushes", [*completion_streams, REMINDERS_DUE, AUTOMATION_RULES, *reminder_pushes],
                    set(chat_systems()),
                    "To-dos ticked off in chat closed in the CRM; due, overdue and uncontacted reminders, the "
                    "automation rules, and to-dos to salespeople and managers in chat."))
    jobs.append(job("leads_to_pool", [LEADS_TO_POOL], set(),
                    "Leads nobody followed up in time go back to the public pool."))
    jobs.append(job("approvals_reconcile", [APPROVALS_RECONCILED, *approval_pushes], approval_systems,
                    "Open OA approvals re-read in DingTalk and WeCom; outcomes applied (approved orders to the ERP)."))
    return jobs


def system_tag_values(jobs: list[UnresolvedAssetJobDefinition]) -> set[str]:
    """The ``hub/system`` tag values of ``jobs`` (the run queue limits each to one run)."""
    return {job.tags[SYSTEM_TAG] for job in jobs if job.tags and SYSTEM_TAG in job.tags}
