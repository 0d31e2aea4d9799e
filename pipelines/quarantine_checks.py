"""Quarantine growth per inbound stream (warn): new bad records need a person's look."""

from typing import Any

import sqlalchemy as sa
from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetCheckSeverity, AssetKey, asset_check

from hub.registry import connector
from pipelines.resources import HubResource


def quarantine_growth_check(system: str, stream: str) -> Any:
    """A warn-level check on new quarantine rows of one stream in the last 24 h."""

    @asset_check(asset=AssetKey([system, stream]), name="quarantine_growth",
                 description="New quarantined records in the last 24 h (warn).")
    def _check(context: AssetCheckExecutionContext, hub: HubResource) -> AssetCheckResult:
        with hub.runtime(f"check:quarantine:{system}/{stream}") as runtime, runtime.db.begin() as conn:
            new, total = conn.execute(sa.text(
                "SELECT count(*) FILTER (WHERE created_at > now() - interval '1 day'), count(*) FROM quarantine "
                "WHERE system = :s AND stream = :st AND status = 'open'"), {"s": system, "st": stream}).one()
        return AssetCheckResult(passed=new == 0, severity=AssetCheckSeverity.WARN,
                                metadata={"new_last_24h": new, "open_total": total})

    return _check


def quarantine_checks(system: str) -> list[Any]:
    """One quarantine-growth check per stream of ``system``."""
    return [quarantine_growth_check(system, s.name) for s in connector(system).streams]
