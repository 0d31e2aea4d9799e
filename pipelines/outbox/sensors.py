"""The outbox sensor: ready outbox rows request a dispatch run, never two for the same work.

The run key is the kind plus the newest ready row and its last change, so the same
ready set never starts a second run, while a retry that becomes due (its row changed)
does start one.
"""

import sqlalchemy as sa
from dagster import RunRequest, SensorEvaluationContext, SensorResult, SkipReason, sensor

from pipelines.jobs import orders_to_erp, todo_pushes
from pipelines.resources import HubResource

JOB_FOR_KIND = {"kingdee.sales_order": orders_to_erp, "wecom.reminder": todo_pushes}


def ready_work(conn: sa.Connection) -> list[tuple[str, int, int, str]]:
    """(kind, ready rows, newest id, last change) for outbox kinds with due work."""
    return [tuple(r) for r in conn.execute(sa.text(
        "SELECT kind, count(*), max(id), to_char(max(updated_at), 'YYYYMMDDHH24MISSUS') FROM outbox "
        "WHERE (status = 'pending' AND next_attempt_at <= now()) "
        "OR (status = 'in_progress' AND locked_until < now()) GROUP BY kind ORDER BY kind"))]


@sensor(name="outbox_sensor", jobs=[orders_to_erp, todo_pushes], minimum_interval_seconds=30,
        description="Starts a dispatch run when outbox rows are ready.")
def outbox_sensor(context: SensorEvaluationContext, hub: HubResource) -> SensorResult | SkipReason:
    """Request one run per outbox kind with ready rows."""
    with hub.runtime("sensor:outbox") as runtime, runtime.db.begin() as conn:
        work = ready_work(conn)
    requests = [
        RunRequest(run_key=f"{kind}:{newest}:{changed}", job_name=JOB_FOR_KIND[kind].name,
                   tags={"hub/outbox_kind": kind, "hub/ready_rows": str(count)})
        for kind, count, newest, changed in work if kind in JOB_FOR_KIND
    ]
    if not requests:
        return SkipReason("no ready outbox rows")
    return SensorResult(run_requests=requests)
