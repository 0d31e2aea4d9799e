"""What the Dagster tests compare a run's report with: the ERP sandbox's records, the hub's
rows, the engine's ``sync_run`` rows; and the CRM data the outbound jobs start from."""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from hub.database import Database
from hub.demo.data import load_crm_demo
from hub.registry import connector
from hub.runtime import load_sandbox
from pipelines.in_process import JobOutcome
from tests.conftest import rows, scalar

SYNC_NUMBERS = ("read", "inserted", "updated", "unchanged", "quarantined", "superseded", "pages")
KINGDEE_STREAMS = ("customers", "sales_orders", "receivables", "receipts")
# Rows the hub holds per Kingdee stream.
HUB_ROWS = {
    "customers": "SELECT count(*) FROM external_identity WHERE system = 'kingdee' AND object = 'customer'",
    "sales_orders": "SELECT count(*) FROM sales_order WHERE source_system = 'kingdee'",
    "receivables": "SELECT count(*) FROM receivable WHERE source_system = 'kingdee'",
    "receipts": "SELECT count(*) FROM receipt WHERE source_system = 'kingdee'",
}


def erp_records(kingdee_sandbox: Any, stream: str) -> int:
    """How many records of ``stream`` the ERP holds (the sandbox's own tables)."""
    state = kingdee_sandbox.app.state.kingdee.data
    form = {"customers": "BD_Customer", "sales_orders": "SAL_SaleOrder", "receivables": "AR_receivable",
            "receipts": "AR_RECEIVEBILL"}[stream]
    docs = state.table(form).docs.values()
    if stream == "receipts":  # only money from customers is a receipt for the hub
        docs = [d for d in docs if d.get("FCONTACTUNITTYPE") == "BD_Customer"]
    return len(docs)


def numbers(metadata: dict[str, Any]) -> dict[str, int]:
    return {k: metadata[k] for k in SYNC_NUMBERS}


def sync_run(db: Database, run_id: int) -> dict[str, Any]:
    """The engine's own record of a stream run."""
    row = rows(db, "SELECT status, counts FROM sync_run WHERE id = :id", id=run_id)[0]
    return {"status": row.status, **row.counts}


def quarantined(db: Database, system: str, stream: str) -> int:
    return int(scalar(db, "SELECT count(*) FROM quarantine WHERE system = :s AND stream = :st AND status = 'open'",
                      s=system, st=stream))  # type: ignore[arg-type]


def assert_all_checks_passed(outcome: JobOutcome, *, warnings: frozenset[str] = frozenset()) -> None:
    """Every check passed, but for the warn-level ones named in ``warnings`` (expected to warn)."""
    assert outcome.checks, f"{outcome.job} ran no checks"
    assert [(c.asset, c.name) for c in outcome.checks
            if not c.passed and not (c.name in warnings and c.severity == "WARN")] == []


def load_crm(db: Database, *, erp_customers: int = 0, orders: int = 0) -> dict[str, int]:
    """The CRM demo data (sales team from the WeCom directory), with ``erp_customers`` of the
    synced ERP customers given CRM owners, orders and tasks."""
    seed = load_sandbox(connector("wecom")).demo_seed()  # type: ignore[misc]
    with db.begin() as conn:
        erp_ids = conn.execute(sa.text(
            "SELECT DISTINCT customer_id FROM receivable WHERE open_amount > 0 ORDER BY 1 LIMIT :n"),
            {"n": erp_customers}).scalars().all()
        return load_crm_demo(conn, seed["people"], seed["companies"], now=dt.datetime.now(dt.UTC),
                             erp_customer_ids=list(erp_ids), orders=orders)
