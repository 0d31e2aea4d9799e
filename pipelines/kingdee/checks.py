"""Kingdee reconciliation: open receivables per customer equal the ERP's (blocking).

Blocking because the collection tasks (crm/receivable_followups) are built on these
numbers: a disagreement must stop them rather than chase customers for money they paid.
"""

from collections import defaultdict
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetKey, asset_check

from hub.registry import connector
from pipelines.resources import HubResource


def erp_open_receivables(runtime: Any, system: str) -> dict[str, Decimal]:
    """Open amount per ERP customer number, read from the ERP through the stream itself."""
    spec = connector(system).stream("receivables")
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for page in spec.read_pages(runtime.client(system), None):
        for raw in page.records:
            try:
                record = spec.map_record(raw)
            except Exception:
                continue
            totals[record.customer_ref] += record.open_amount  # type: ignore[attr-defined]
    return dict(totals)


def hub_open_receivables(conn: sa.Connection, system: str) -> dict[str, Decimal]:
    """Open amount per ERP customer number, as the hub has it."""
    rows = conn.execute(sa.text(
        "SELECT e.external_id, sum(r.open_amount) FROM receivable r JOIN external_identity e "
        "ON e.canonical_id = r.customer_id AND e.system = :s AND e.object = 'customer' "
        "WHERE r.source_system = :s GROUP BY e.external_id"), {"s": system})
    return {ext: total for ext, total in rows}


@asset_check(asset=AssetKey(["kingdee", "receivables"]), blocking=True,
             description="Open receivables per customer equal Kingdee's.")
def kingdee_open_receivables_match(context: AssetCheckExecutionContext, hub: HubResource) -> AssetCheckResult:
    """Compare per-customer open AR between the ERP and the hub."""
    with hub.runtime("check:receivables") as runtime:
        erp = erp_open_receivables(runtime, "kingdee")
        with runtime.db.begin() as conn:
            ours = hub_open_receivables(conn, "kingdee")
    quarantined_customers = {k for k in erp if k not in ours and erp[k] != 0}
    mismatched = {k: (erp.get(k, Decimal(0)), ours.get(k, Decimal(0))) for k in set(erp) | set(ours)
                  if erp.get(k, Decimal(0)) != ours.get(k, Decimal(0))}
    sample = dict(list(sorted(mismatched.items()))[:10])
    return AssetCheckResult(
        passed=not mismatched,
        metadata={"customers_compared": len(set(erp) | set(ours)), "mismatched": len(mismatched),
                  "erp_total": str(sum(erp.values(), Decimal(0))), "hub_total": str(sum(ours.values(), Decimal(0))),
                  "missing_in_hub": len(quarantined_customers),
                  "sample": {k: f"erp {a} / hub {b}" for k, (a, b) in sample.items()}},
    )
