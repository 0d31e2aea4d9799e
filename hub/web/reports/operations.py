"""IT's operations page (``/reports/operations``, capability ``manage_operations``).

What it shows, each section one SQL statement (the page's statement count does not grow
with the data):

- per system and stream (every stream of the registry, also one that never ran): the last
  run (status, when, rows read / written / quarantined), and the lag behind the source:
  now − the stream's cursor when the cursor is a timestamp (the newest source stamp the hub
  has read), otherwise now − the end of the last successful run; a link into the Dagster UI
  (``HUB_DAGSTER__UI_URL``) for the stream's job;
- the outbox backlog per kind: pending, in flight (claimed by a dispatcher), retrying
  (pending after a failed attempt), dead and failed, with a link to the kind's push job;
- dead letters (:func:`hub.outbox.dead_letters`) with a replay button: the very
  :func:`hub.outbox.replay` of ``hub dlq replay`` (the writer looks the effect up first, so
  a replay never creates a twin);
- open quarantine rows (:func:`hub.engine.quarantine.open_rows`) with a retry button per
  system and stream: :func:`hub.engine.retry_quarantined`, as ``hub quarantine retry``;
- open identity conflicts with merge / keep apart (:func:`hub.conflicts.resolve_conflict`).

IT sees no customer personal data here: texts (errors, reasons, references, record
payloads) pass through :func:`hub.audit.mask_personal_data` and payload fields named as
personal data through :func:`hub.access.masking.mask_value`. Every action is a POST with the
session's CSRF token (:mod:`hub.web.reports.forms`) and is audited with the acting person.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import sqlalchemy as sa
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.engine import Connection

from hub.access import Capability, Principal
from hub.access.masking import mask_value
from hub.audit import mask_personal_data
from hub.conflicts import ConflictResolutionError, resolve_conflict
from hub.engine import retry_quarantined
from hub.engine.quarantine import open_rows
from hub.errors import ConfigError, NotFoundError
from hub.outbox import dead_letters, replay
from hub.registry import connector, inbound_job_name, push_job_name, specs
from hub.web.auth import require
from hub.web.reports import ReportContext
from hub.web.reports.forms import actor_of, checked_form, csrf_field

PATH = "/reports/operations"
# The Dagster code location of dagster_workspace.yaml: an entry without location_name is
# named "<module>:<attribute>" (dagster/_core/remote_origin.py,
# _assign_loadable_target_origin_name). The UI addresses a job of the location's only
# repository as /locations/<url-encoded location>/jobs/<job>: the repository part is left
# out for the default "__repository__" (dagster-ui workspace/buildRepoAddress.ts,
# buildRepoPathForURL; workspacePath.ts, workspacePipelinePath).
DAGSTER_LOCATION = "pipelines.definitions:defs"
MAX_ROWS = 100
# What a redirect after an action may report: fixed codes, never text from the request.
NOTICES = ("replayed", "retried", "resolved")

# The latest run of each stream that ever ran, without reading the whole run history (a
# year of runs every few minutes): a loose index scan of ix_sync_run_latest for the
# streams, then per stream its newest run and newest successful run, each read backwards
# from that index.
_RUNS = sa.text("""
    WITH RECURSIVE streams AS (
        (SELECT connector, stream FROM sync_run ORDER BY connector, stream LIMIT 1)
        UNION ALL
        SELECT n.connector, n.stream FROM streams s CROSS JOIN LATERAL (
            SELECT r.connector, r.stream FROM sync_run r WHERE (r.connector, r.stream) > (s.connector, s.stream)
            ORDER BY r.connector, r.stream LIMIT 1) n
    )
    SELECT s.connector, s.stream, r.started_at, r.finished_at, r.status, r.counts, r.error,
           ok.finished_at AS last_ok, c.value AS cursor, c.updated_at AS cursor_updated_at
    FROM streams s
    CROSS JOIN LATERAL (SELECT started_at, finished_at, status, counts, error FROM sync_run x
                        WHERE x.connector = s.connector AND x.stream = s.stream
                        ORDER BY x.started_at DESC, x.id DESC LIMIT 1) r
    LEFT JOIN LATERAL (SELECT finished_at FROM sync_run y
                       WHERE y.connector = s.connector AND y.stream = s.stream AND y.status = 'succeeded'
                       ORDER BY y.started_at DESC, y.id DESC LIMIT 1) ok ON true
    LEFT JOIN sync_cursor c ON c.connector = s.connector AND c.stream = s.stream
""")

_BACKLOG = sa.text("""
    SELECT kind,
           count(*) FILTER (WHERE status = 'pending' AND attempts = 0) AS pending,
           count(*) FILTER (WHERE status = 'in_progress') AS in_flight,
           count(*) FILTER (WHERE status = 'pending' AND attempts > 0) AS retrying,
           count(*) FILTER (WHERE status = 'dead') AS dead,
           count(*) FILTER (WHERE status = 'failed') AS failed
    FROM outbox WHERE status IN ('pending', 'in_progress', 'dead', 'failed')
    GROUP BY kind ORDER BY kind
""")

_QUARANTINE_COUNTS = sa.text(
    "SELECT system, stream, count(*) AS open FROM quarantine WHERE status = 'open' GROUP BY system, stream "
    "ORDER BY system, stream")

_CONFLICTS = sa.text("""
    SELECT id, system, object, external_id, reason, chosen_customer_id, candidate_customer_ids, detail, status,
           created_at, resolution, resolved_by, resolved_at, count(*) OVER () AS total
    FROM identity_conflict
    WHERE status = 'open' OR resolved_at > now() - interval '30 days'
    ORDER BY status = 'open' DESC, COALESCE(resolved_at, created_at) DESC, id DESC LIMIT :limit OFFSET :offset
""")


@dataclass(frozen=True)
class StreamStatus:
    """One stream's row on the page."""

    system: str
    stream: str
    last_run: dict[str, Any] | None
    read: int | None
    written: int | None
    quarantined: int | None
    lag: dt.timedelta | None
    lag_basis: str  # cursor | last_ok | never
    dagster_url: str


def dagster_job_url(base: str, job: str) -> str:
    """The Dagster UI page of ``job``."""
    return f"{base.rstrip('/')}/locations/{quote(DAGSTER_LOCATION, safe='')}/jobs/{quote(job, safe='')}"


def cursor_time(value: str | None) -> dt.datetime | None:
    """The cursor as an aware datetime when it is an ISO timestamp (a modify-time
    watermark); None for any other cursor (page tokens, ids). A naive timestamp is UTC —
    a guess: the sources' watermarks carry an offset where the hub writes them."""
    if not value:
        return None
    try:
        stamp = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=dt.UTC)


def stream_statuses(conn: Connection, now: dt.datetime, dagster_ui: str) -> list[StreamStatus]:
    """Every registered stream with its last run and lag (module docstring)."""
    runs = {(r.connector, r.stream): r for r in conn.execute(_RUNS)}
    found: list[StreamStatus] = []
    names = [(spec.system, stream.name) for spec in specs() for stream in spec.streams]
    names += sorted(set(runs) - set(names))  # runs of streams no longer registered stay visible
    for system, stream in names:
        run = runs.get((system, stream))
        counts = (run.counts or {}) if run is not None else {}
        stamp = cursor_time(run.cursor) if run is not None else None
        lag, basis = (None, "never")
        if stamp is not None:
            lag, basis = max(now - stamp, dt.timedelta(0)), "cursor"
        elif run is not None and run.last_ok is not None:
            lag, basis = max(now - run.last_ok, dt.timedelta(0)), "last_ok"
        found.append(StreamStatus(
            system=system, stream=stream,
            last_run=None if run is None else {"status": run.status, "started_at": run.started_at,
                                               "finished_at": run.finished_at,
                                               "error": mask_personal_data((run.error or "")[:300])},
            read=counts.get("read") if run is not None else None,
            written=(counts.get("inserted", 0) + counts.get("updated", 0)) if run is not None else None,
            quarantined=counts.get("quarantined") if run is not None else None,
            lag=lag, lag_basis=basis, dagster_url=dagster_job_url(dagster_ui, inbound_job_name(system))))
    return found


def masked_payload(value: Any, field: str = "") -> Any:
    """A quarantined record for IT's eyes: fields named as personal data masked by name,
    mobiles and e-mail addresses in any text masked too."""
    if isinstance(value, dict):
        return {str(k): masked_payload(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [masked_payload(v, field) for v in value]
    if isinstance(value, str):
        return mask_personal_data(mask_value(field.lower(), value))
    return value


def operations_data(conn: Connection, now: dt.datetime, dagster_ui: str, *, dead_page: int = 1,
                    quarantine_page: int = 1, conflict_page: int = 1) -> dict[str, Any]:
    """Everything the operations page shows, read on ``conn`` (one statement per section): the
    ``dead_page``-th page of dead letters, the ``quarantine_page``-th of open quarantine rows and
    the ``conflict_page``-th of identity conflicts (:data:`MAX_ROWS` each; how many there are
    comes from the backlog and quarantine counts, and for conflicts from the page's own rows)."""
    backlog = [dict(r._mapping) | {"dagster_url": dagster_job_url(dagster_ui, push_job_name(r.kind))}
               for r in conn.execute(_BACKLOG)]
    dead = [{"id": r.id, "kind": r.kind, "key": mask_personal_data(r.idempotency_key), "status": r.status,
             "attempts": r.attempts, "last_error": mask_personal_data((r.last_error or "")[:300]),
             "updated_at": r.updated_at} for r in dead_letters(conn, limit=MAX_ROWS, offset=(dead_page - 1) * MAX_ROWS)]
    quarantine = [{"id": r.id, "system": r.system, "stream": r.stream,
                   "source_ref": mask_personal_data(r.source_ref or ""), "reason": mask_personal_data(r.reason),
                   "payload": masked_payload(r.payload), "attempts": r.attempts, "created_at": r.created_at}
                  for r in open_rows(conn, limit=MAX_ROWS, offset=(quarantine_page - 1) * MAX_ROWS)]
    conflicts = []
    conflicts_total = 0
    for r in conn.execute(_CONFLICTS, {"limit": MAX_ROWS, "offset": (conflict_page - 1) * MAX_ROWS}):
        conflicts_total = int(r.total)
        detail = r.detail or {}
        candidates = (list(r.candidate_customer_ids or ()) if r.object == "customer"
                      else list(detail.get("candidate_user_ids") or ()))
        conflicts.append({"id": r.id, "system": r.system, "object": r.object, "external_id": r.external_id,
                          "reason": r.reason, "chosen": r.chosen_customer_id, "candidates": candidates,
                          "message": mask_personal_data(str(detail.get("message", ""))[:300]), "status": r.status,
                          "created_at": r.created_at, "resolution": r.resolution, "resolved_by": r.resolved_by,
                          "resolved_at": r.resolved_at})
    quarantine_counts = [dict(r._mapping) for r in conn.execute(_QUARANTINE_COUNTS)]
    return {"streams": stream_statuses(conn, now, dagster_ui), "backlog": backlog, "dead": dead,
            "dead_total": sum(b["dead"] + b["failed"] for b in backlog), "quarantine": quarantine,
            "quarantine_counts": quarantine_counts, "quarantine_total": sum(q["open"] for q in quarantine_counts),
            "conflicts": conflicts, "conflicts_total": conflicts_total}


def lag_text(lag: dt.timedelta | None) -> str:
    """``3 d 4 h``, ``2 h 5 min``, ``7 min``; None → ``—``."""
    if lag is None:
        return "—"
    minutes = int(lag.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {mins} min"
    return f"{mins} min"


def _int_field(fields: dict[str, str], name: str) -> int | None:
    value = fields.get(name, "").strip()
    # isascii: str.isdigit also takes "²" (int() refuses it) and "１２"
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 18 else None


def add_routes(router: APIRouter, ctx: ReportContext) -> None:
    """``GET /reports/operations`` and its three actions (module docstring)."""
    operator = require(Capability.MANAGE_OPERATIONS)
    t = ctx.labels

    def problem(principal: Principal, status: int, message: str) -> HTMLResponse:
        return ctx.page("report_problem.html", status, title=t("operations"), heading=t("operations"),
                        message=message, back=PATH, principal=principal, t=t)

    def done(notice: str, count: int, anchor: str) -> RedirectResponse:
        return RedirectResponse(f"{PATH}?{urlencode({'notice': notice, 'n': count})}#{anchor}", status_code=303)

    @router.get(PATH, include_in_schema=False, response_class=HTMLResponse)
    def operations_page(request: Request, principal: Principal = operator, notice: str = "",
                        n: int = Query(0, ge=0, le=10**6), dead_page: int = Query(1, ge=1, le=100_000),
                        quarantine_page: int = Query(1, ge=1, le=100_000),
                        conflict_page: int = Query(1, ge=1, le=100_000)) -> HTMLResponse:
        """The operations page (a page of each long list)."""
        now = dt.datetime.now(dt.UTC)
        with ctx.reading() as conn:
            data = operations_data(conn, now, ctx.settings.dagster.ui_url, dead_page=dead_page,
                                   quarantine_page=quarantine_page, conflict_page=conflict_page)
        return ctx.page("report_operations.html", title=t("operations"), principal=principal, t=t, **data,
                        csrf=csrf_field(request), lag_text=lag_text, now=now, dead_page=dead_page,
                        quarantine_page=quarantine_page, conflict_page=conflict_page, page_size=MAX_ROWS,
                        notice=notice if notice in NOTICES else "", notice_count=n)

    @router.post(f"{PATH}/dead-letters/replay", include_in_schema=False)
    async def replay_dead_letter(request: Request, principal: Principal = operator) -> Response:
        """Requeue one dead letter, exactly as ``hub dlq replay ID``."""
        fields = await checked_form(request, principal)
        outbox_id = _int_field(fields, "id")
        if outbox_id is None:
            return problem(principal, 400, t("ops_bad_form"))
        try:
            with ctx.db.engine.begin() as conn:
                count = replay(conn, [outbox_id], actor=actor_of(principal))
        except NotFoundError:
            return problem(principal, 404, t("ops_not_dead"))
        return done("replayed", count, "dead-letters")

    @router.post(f"{PATH}/quarantine/retry", include_in_schema=False)
    async def retry_quarantine(request: Request, principal: Principal = operator) -> Response:
        """Run one stream's open quarantine rows again, exactly as ``hub quarantine retry``."""
        fields = await checked_form(request, principal)
        system, stream = fields.get("system", ""), fields.get("stream", "")
        try:
            spec = connector(system).stream(stream)
        except (ConfigError, KeyError, ValueError):
            return problem(principal, 400, t("ops_bad_form"))
        counts = retry_quarantined(ctx.db, system, spec, actor=actor_of(principal))
        return done("retried", counts.read - counts.quarantined, "quarantine")

    @router.post(f"{PATH}/conflicts/resolve", include_in_schema=False)
    async def resolve(request: Request, principal: Principal = operator) -> Response:
        """Merge or keep apart one identity conflict (:func:`hub.conflicts.resolve_conflict`)."""
        fields = await checked_form(request, principal)
        conflict_id = _int_field(fields, "id")
        if conflict_id is None:
            return problem(principal, 400, t("ops_bad_form"))
        try:
            with ctx.db.engine.begin() as conn:
                resolve_conflict(conn, conflict_id, fields.get("decision", ""), actor=actor_of(principal),
                                 target_id=_int_field(fields, "target"))
        except NotFoundError:
            return problem(principal, 404, t("ops_no_conflict"))
        except ConflictResolutionError as exc:
            return problem(principal, 400, str(exc))
        return done("resolved", 1, "conflicts")
