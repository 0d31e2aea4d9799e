"""The outbox sensor: ready outbox rows request a dispatch run, never two for the same work.

One run request per outbox kind with ready rows, for that kind's push job. The run key is
the kind plus the newest ready row and its last change, so the same ready set never
starts a second run, while a retry that becomes due (its row changed) does start one.
"""

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from dagster import (
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from hub.registry import writer_kinds
from hub.rules import webhooks
from hub.settings import Settings
from pipelines.jobs import push_job_name
from pipelines.resources import HubResource

if TYPE_CHECKING:  # Dagster does not export the type of define_asset_job's result
    from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition


def ready_work(conn: sa.Connection) -> list[tuple[Any, ...]]:
    """(kind, ready rows, newest id, last change) for outbox kinds with due work."""
    return [tuple(r) for r in conn.execute(sa.text(
        "SELECT kind, count(*), max(id), to_char(max(updated_at), 'YYYYMMDDHH24MISSUS') FROM outbox "
        "WHERE (status = 'pending' AND next_attempt_at <= now()) "
        "OR (status = 'in_progress' AND locked_until < now()) GROUP BY kind ORDER BY kind"))]


def webhook_work(conn: sa.Connection, settings: Settings) -> list[tuple[Any, ...]]:
    """Webhook events not yet handed to the outbox, as work of ``crm.webhook`` (its push run
    publishes them first, ``hub.rules.webhooks``); none while webhooks are not configured."""
    if not settings.connector("crm").is_configured():
        return []
    count, newest = conn.execute(sa.text(
        "SELECT count(*), max(id) FROM webhook_event WHERE published_at IS NULL")).one()
    return [(webhooks.KIND, count, f"event-{newest}", "unpublished")] if count else []


def build_outbox_sensor(jobs: "list[UnresolvedAssetJobDefinition]") -> SensorDefinition:
    """The sensor over every push job in ``jobs``."""
    by_name = {job.name: job for job in jobs}
    job_for_kind = {kind: by_name[push_job_name(kind)] for kind in writer_kinds() if push_job_name(kind) in by_name}

    @sensor(name="outbox_sensor", jobs=list(job_for_kind.values()), minimum_interval_seconds=30,
            description="Starts a dispatch run when outbox rows are ready.")
    def outbox_sensor(context: SensorEvaluationContext, hub: HubResource) -> SensorResult | SkipReason:
        """Request one run per outbox kind with ready rows."""
        with hub.runtime("sensor:outbox") as runtime, runtime.db.begin() as conn:
            work = ready_work(conn) + webhook_work(conn, runtime.settings)
        requests = [
            RunRequest(run_key=f"{kind}:{newest}:{changed}", job_name=job_for_kind[kind].name,
                       tags={"hub/outbox_kind": kind, "hub/ready_rows": str(count)})
            for kind, count, newest, changed in work if kind in job_for_kind
        ]
        if not requests:
            return SkipReason("no ready outbox rows")
        return SensorResult(run_requests=requests)

    return outbox_sensor
