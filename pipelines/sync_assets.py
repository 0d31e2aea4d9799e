"""One asset per (system, stream), generated from the connector registry.

A stream's asset syncs it through ``hub.engine`` and reports the run's numbers as
materialization metadata, so IT reads what happened in the UI without opening logs.
Dependencies follow the streams' ``depends_on`` (customers before orders before
receivables). Inbound steps carry a Dagster ``RetryPolicy``: the clients only refresh
credentials and do not retry transient errors themselves, and the engine resumes from
the committed cursor, so retrying the whole step is the one retry layer for reads.

No ``from __future__ import annotations`` here: Dagster reads the ``config`` parameter's
annotation as an object to build the run-config schema, and a string does not resolve.
"""

from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    Backoff,
    Config,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
    asset,
)

from hub.contracts import StreamSpec
from hub.registry import connector
from pipelines.resources import HubResource

INBOUND_RETRY = RetryPolicy(max_retries=3, delay=10, backoff=Backoff.EXPONENTIAL)


class SyncConfig(Config):
    """Run configuration of a stream asset."""

    full: bool = False  # ignore the cursor and read everything


def stream_asset(system: str, stream: StreamSpec) -> AssetsDefinition:
    """The asset that syncs ``system``'s ``stream`` into its canonical table."""

    @asset(
        name=stream.name,
        key_prefix=[system],
        group_name=system,
        deps=[AssetKey([system, dep]) for dep in stream.depends_on],
        kinds={system, "postgres"},
        retry_policy=INBOUND_RETRY,
        description=f"{connector(system).title}: {stream.source_object} → canonical `{stream.target}` "
                    f"(incremental on {stream.cursor_field or 'a full read'}).",
        op_tags={"hub/system": system},
    )
    def _sync(context: AssetExecutionContext, config: SyncConfig, hub: HubResource) -> MaterializeResult:
        with hub.runtime(f"{system}/{stream.name}") as runtime:
            report = runtime.sync(system, stream.name, full=config.full)[0]
        c = report.counts
        context.log.info(f"{system}/{stream.name}: {c}")
        metadata: dict[str, Any] = {
            "read": c.read, "inserted": c.inserted, "updated": c.updated, "unchanged": c.unchanged,
            "quarantined": c.quarantined, "pages": c.pages,
            "cursor_before": report.cursor_before or "-", "cursor_after": report.cursor_after or "-",
            "duration_s": round(report.duration_s, 2), "sync_run_id": report.run_id,
        }
        if c.quarantined:
            metadata["quarantine"] = MetadataValue.md(
                f"{c.quarantined} record(s) quarantined: `hub quarantine list --system {system} "
                f"--stream {stream.name}`")
        return MaterializeResult(metadata=metadata)

    return _sync


def system_assets(system: str) -> list[AssetsDefinition]:
    """Assets for every stream of ``system``."""
    return [stream_asset(system, s) for s in connector(system).streams]
