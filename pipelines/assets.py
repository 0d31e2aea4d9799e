"""Assets generated from the connector registry: one per stream, one per writer kind.

- ``<system>/<stream>`` syncs a stream through ``hub.engine`` and reports the run's numbers
  as materialization metadata, so IT reads what happened in the UI without opening logs.
  Dependencies follow the streams' ``depends_on`` (customers before orders before
  receivables). Inbound steps carry a Dagster ``RetryPolicy``: the clients only refresh
  credentials and do not retry transient errors themselves, and the engine resumes from
  the committed cursor, so retrying the whole step is the one retry layer for reads.
- ``<system>/<writer>_push`` dispatches the outbox rows of kind ``<system>.<writer>``
  (ERP sales orders, chat reminders): claimed, written, retried or dead-lettered by
  ``hub.outbox``.

No ``from __future__ import annotations`` here: Dagster reads the ``config`` parameter's
annotation as an object to build the run-config schema, and a string does not resolve.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    Backoff,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
    asset,
)

from hub.contracts import ConnectorSpec, StreamSpec
from hub.errors import ConfigError, SchemaNotCurrentError
from hub.outbox import outbox_summary
from hub.registry import specs
from pipelines.resources import HubResource

INBOUND_RETRY = RetryPolicy(max_retries=3, delay=10, backoff=Backoff.EXPONENTIAL)


class SyncConfig(Config):
    """Run configuration of a stream asset."""

    full: bool = False  # ignore the cursor and read everything


class DispatchConfig(Config):
    """Run configuration of a dispatching asset."""

    # 0: dispatch what is ready now; rows whose retry falls due later get their own run
    # (the outbox sensor). The demo waits for them, bounded by this many seconds.
    wait_for_retries_s: float = 0.0


@contextmanager
def no_retry_for_configuration() -> Iterator[None]:
    """A configuration mistake or a stale schema fails the step at once: the RetryPolicy is
    for transient trouble, and retrying a missing setting only delays the one clear line."""
    try:
        yield
    except (ConfigError, SchemaNotCurrentError) as exc:
        raise Failure(str(exc), allow_retries=False) from None


def stream_key(system: str, stream: str) -> AssetKey:
    """The asset key of a stream."""
    return AssetKey([system, stream])


def push_key(kind: str) -> AssetKey:
    """The asset key dispatching outbox kind ``<system>.<writer>``."""
    system, _, writer = kind.partition(".")
    return AssetKey([system, f"{writer}_push"])


def stream_asset(spec: ConnectorSpec[Any, Any], stream: StreamSpec[Any]) -> AssetsDefinition:
    """The asset that syncs ``spec.system``'s ``stream`` into its canonical table."""
    system = spec.system

    @asset(
        name=stream.name,
        key_prefix=[system],
        group_name=system,
        deps=[stream_key(system, dep) for dep in stream.depends_on],
        kinds={system, "postgres"},
        retry_policy=INBOUND_RETRY,
        description=f"{spec.title}: {stream.source_object} → canonical `{stream.target}` "
                    f"(incremental on {stream.cursor_field or 'a full read'}).",
        op_tags={"hub/system": system},
    )
    def _sync(context: AssetExecutionContext, config: SyncConfig, hub: HubResource) -> MaterializeResult:
        with no_retry_for_configuration(), hub.runtime(f"{system}/{stream.name}") as runtime:
            report = runtime.sync(system, stream.name, full=config.full)[0]
        c = report.counts
        context.log.info(f"{system}/{stream.name}: {c}")
        metadata: dict[str, Any] = {
            **vars(c),
            "cursor_before": report.cursor_before or "-", "cursor_after": report.cursor_after or "-",
            "duration_s": round(report.duration_s, 2), "sync_run_id": report.run_id,
        }
        if c.quarantined:
            metadata["quarantine"] = MetadataValue.md(
                f"{c.quarantined} record(s) quarantined: `hub quarantine list --system {system} "
                f"--stream {stream.name}`")
        return MaterializeResult(metadata=metadata)

    return _sync


def push_asset(spec: ConnectorSpec[Any, Any], kind: str, deps: list[AssetKey]) -> AssetsDefinition:
    """The asset that dispatches the outbox rows of ``kind`` through its writer."""
    key = push_key(kind)

    @asset(
        key=key, group_name=spec.system, deps=deps, kinds={spec.system, "postgres"},
        op_tags={"hub/system": spec.system},
        description=f"{spec.title}: deliver the outbox rows of kind `{kind}` (claimed with SKIP LOCKED, "
                    "retried with backoff, looked up before a retry, dead-lettered when permanent).",
    )
    def _push(context: AssetExecutionContext, config: DispatchConfig, hub: HubResource) -> MaterializeResult:
        with no_retry_for_configuration(), hub.runtime(key.to_user_string()) as runtime:
            counts = runtime.dispatcher(kinds=[kind]).drain(
                wait_for_scheduled=config.wait_for_retries_s > 0, timeout_s=config.wait_for_retries_s)
            with runtime.db.begin() as conn:
                statuses = outbox_summary(conn, kind=kind)
        context.log.info(f"{kind}: {counts}")
        return MaterializeResult(metadata={**vars(counts), **{f"outbox_{s}": n for s, n in statuses.items()}})

    return _push


def connector_assets(push_deps: dict[str, list[AssetKey]] | None = None) -> list[AssetsDefinition]:
    """Stream and push assets of every registered connector; ``push_deps`` adds upstream
    assets to a writer's push asset (by writer name: reminders are queued by a rule asset)."""
    found: list[AssetsDefinition] = []
    for spec in specs():
        found.extend(stream_asset(spec, s) for s in spec.streams)
        for kind in spec.writer_kinds:
            writer = kind.partition(".")[2]
            found.append(push_asset(spec, kind, list((push_deps or {}).get(writer, []))))
    return found
