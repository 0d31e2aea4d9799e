"""Outbound checks: approved orders reach the ERP in time, the outbox is not stuck, dead letters.
"""

import sqlalchemy as sa
from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetCheckSeverity, AssetKey, asset_check

from pipelines.resources import HubResource

ORDER_DEADLINE_MIN = 30
OUTBOX_MAX_AGE_MIN = 30


@asset_check(asset=AssetKey(["crm", "orders_to_erp"]), blocking=True,
             description=f"Every CRM order approved over {ORDER_DEADLINE_MIN} min ago has an ERP bill number.")
def approved_orders_reached_erp(context: AssetCheckExecutionContext, hub: HubResource) -> AssetCheckResult:
    """Approved CRM orders without an ERP bill number after the deadline."""
    with hub.runtime("check:orders") as runtime, runtime.db.begin() as conn:
        late = conn.execute(sa.text(
            "SELECT order_number FROM sales_order WHERE source_system = 'crm' AND approval_state = 'approved' "
            "AND erp_bill_number IS NULL AND approved_at < now() - make_interval(mins => :m) ORDER BY id"),
            {"m": ORDER_DEADLINE_MIN}).scalars().all()
    return AssetCheckResult(passed=not late, metadata={"late_orders": len(late), "sample": ", ".join(late[:10])})


@asset_check(asset=AssetKey(["crm", "orders_to_erp"]),
             description=f"No outbox row pending for more than {OUTBOX_MAX_AGE_MIN} min.")
def outbox_not_stuck(context: AssetCheckExecutionContext, hub: HubResource) -> AssetCheckResult:
    """Pending outbox rows older than the limit, per kind."""
    with hub.runtime("check:outbox") as runtime, runtime.db.begin() as conn:
        stuck: dict[str, int] = dict(conn.execute(sa.text(
            "SELECT kind, count(*) FROM outbox WHERE status IN ('pending', 'in_progress') "
            "AND created_at < now() - make_interval(mins => :m) GROUP BY kind"), {"m": OUTBOX_MAX_AGE_MIN}).all())
    return AssetCheckResult(passed=not stuck, metadata={"stuck": sum(stuck.values()), **stuck})


@asset_check(asset=AssetKey(["crm", "orders_to_erp"]), description="Dead letters waiting for a person (warn).")
def no_dead_letters(context: AssetCheckExecutionContext, hub: HubResource) -> AssetCheckResult:
    """Count dead and permanently failed outbox rows."""
    with hub.runtime("check:dlq") as runtime, runtime.db.begin() as conn:
        dead: dict[str, int] = dict(conn.execute(sa.text(
            "SELECT kind, count(*) FROM outbox WHERE status IN ('dead', 'failed') GROUP BY kind")).all())
    return AssetCheckResult(passed=not dead, severity=AssetCheckSeverity.WARN,
                            metadata={"dead_letters": sum(dead.values()), **dead,
                                      "replay": "hub dlq list / hub dlq replay ID"})
