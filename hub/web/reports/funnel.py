"""The sales funnel (销售漏斗): how many leads reached each stage, stage-to-stage conversion,
and the average days spent in each stage, from the stage history (``stage_change``).

What is counted (also written on the page):

- the subjects are leads (线索, the default) or customers (``?subject=customer``): the ones
  *created* in the period (dates in the hub's timezone, both ends included), owned by the
  filtered owner / team (``internal_user.department``) / region, within the principal's scope;
- a subject *reached* a stage when its history (or its current stage) shows that stage or a
  later one: the funnel counts stay cumulative (1000 → 400 → 120 → 60 → 48), a lead that
  skipped a stage counts for it, a lost one (输单) counts for the stages it got to;
- conversion is reached(next stage) / reached(stage);
- dwell (停留天数) is the average length of the completed stays in a stage: from the history
  row that entered it to the next row of that subject; stays still going are not averaged;
- a stage's dwell is *unusually long* when it exceeds ``HUB_SALES_REPORTS__DWELL_FLAG_FACTOR``
  (default 1.5) times the median of the stages' average dwells; it is drawn in red.
"""

from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import HTMLResponse
from sqlalchemy.engine import Connection

from hub.access import Capability, Principal
from hub.stages import FUNNEL_STAGES, LOST
from hub.web import charts
from hub.web.auth import require
from hub.web.reports.common import OWNER_SCOPE, Filters, choices, parse_filters, period_bounds, scope_params

SUBJECTS = {"lead": "lead", "customer": "customer"}  # subject → its table (a whitelist: goes into SQL)

# One pass over the cohort's history (read in the index's order: no sort), then tiny
# aggregates: per subject its top stage, per top stage how many (the funnel's counts are the
# cumulative sums from the last stage down), per stage the completed stays.
_FUNNEL = """
WITH cohort AS NOT MATERIALIZED (
    SELECT s.id, s.stage FROM {table} s
    WHERE s.created_at >= :start AND s.created_at < :end
      AND (CAST(:region AS text) IS NULL OR s.region = :region) AND {scope}
), hist AS (
    SELECT h.subject_id AS id, h.to_stage, h.changed_at,
           lead(h.changed_at) OVER (PARTITION BY h.subject_id ORDER BY h.changed_at, h.id) AS left_at
    FROM stage_change h
    WHERE h.subject_type = :subject AND h.subject_id IN (SELECT id FROM cohort)
), per_subject AS (
    SELECT id, max(array_position(CAST(:stages AS text[]), to_stage)) AS top, bool_or(to_stage = :lost) AS lost
    FROM hist GROUP BY id
), levels AS (
    SELECT GREATEST(COALESCE(p.top, 0), COALESCE(array_position(CAST(:stages AS text[]), c.stage), 0)) AS top,
           count(*) AS subjects, count(*) FILTER (WHERE c.stage = :lost OR p.lost) AS lost
    FROM cohort c LEFT JOIN per_subject p ON p.id = c.id GROUP BY 1
), dwell AS (
    SELECT to_stage, avg(EXTRACT(EPOCH FROM left_at - changed_at)) / 86400.0 AS days, count(*) AS stays
    FROM hist WHERE left_at IS NOT NULL GROUP BY to_stage
), reached AS (
    SELECT s.stage, s.rank, (SELECT COALESCE(sum(l.subjects), 0) FROM levels l WHERE l.top >= s.rank) AS reached
    FROM unnest(CAST(:stages AS text[])) WITH ORDINALITY AS s(stage, rank)
)
SELECT r.rank, r.stage, r.reached, d.days, COALESCE(d.stays, 0) AS stays,
       (SELECT COALESCE(sum(lost), 0) FROM levels) AS lost
FROM reached r LEFT JOIN dwell d ON d.to_stage = r.stage
ORDER BY r.rank
"""


@dataclass(frozen=True)
class StageFigures:
    """One funnel stage: how many reached it, the share of them that reached the next
    stage, the average days of completed stays, and whether that dwell is unusually long."""

    stage: str
    reached: int
    conversion: float | None  # to the next stage; None for the last stage or nobody reached
    dwell_days: float | None
    stays: int
    flagged: bool


@dataclass(frozen=True)
class Funnel:
    """The funnel's stages, the lost count, and the dwell threshold that flags a stage."""

    stages: list[StageFigures]
    lost: int
    dwell_median: float | None
    dwell_limit: float | None


def flag_dwell(dwell: list[float | None], factor: float) -> tuple[list[bool], float | None, float | None]:
    """Which stages' dwell is over ``factor`` × the median of the known dwells; with the
    median and the limit (None when no stage has a dwell)."""
    known = [d for d in dwell if d is not None]
    if not known:
        return [False] * len(dwell), None, None
    median = statistics.median(known)
    limit = factor * median
    return [d is not None and d > limit for d in dwell], median, limit


def funnel_figures(conn: Connection, params: dict[str, Any], subject: str, start: dt.datetime, end: dt.datetime,
                   region: str | None, factor: float) -> Funnel:
    """The funnel (module doc) over ``subject`` rows created in [start, end): one statement."""
    table = SUBJECTS[subject]
    rows = conn.execute(sa.text(_FUNNEL.format(table=table, scope=OWNER_SCOPE.format(col="s.owner_id"))),
                        {**params, "start": start, "end": end, "region": region, "subject": subject,
                         "stages": list(FUNNEL_STAGES), "lost": LOST}).all()
    # the last stage (won) has no dwell: nobody leaves it in the funnel's sense
    dwell = [float(r.days) if r.days is not None and r.stage != FUNNEL_STAGES[-1] else None for r in rows]
    flags, median, limit = flag_dwell(dwell, factor)
    stages = []
    for i, r in enumerate(rows):
        nxt = rows[i + 1].reached if i + 1 < len(rows) else None
        conversion = nxt / r.reached if nxt is not None and r.reached else None
        stages.append(StageFigures(r.stage, int(r.reached), conversion, dwell[i], int(r.stays), flags[i]))
    return Funnel(stages, int(rows[0].lost) if rows else 0, median, limit)


def add_routes(router: APIRouter, ctx: Any) -> None:
    """``GET /reports/funnel``."""
    settings = ctx.settings.sales_reports
    t = ctx.labels

    @router.get("/reports/funnel", include_in_schema=False, response_class=HTMLResponse)
    def funnel_page(principal: Principal = require(Capability.VIEW_SALES_REPORTS),
                    owner: str = Query("", max_length=20), team: str = Query("", max_length=200),
                    region: str = Query("", max_length=200), subject: str = Query("lead", max_length=20),
                    start: str = Query("", alias="from", max_length=20),
                    end: str = Query("", alias="to", max_length=20)) -> HTMLResponse:
        """The funnel over the leads (or customers) the principal sees, filtered."""
        if subject not in SUBJECTS:
            raise HTTPException(400, f"subject: one of {', '.join(SUBJECTS)}, not {subject[:20]!r}")
        filters = parse_filters(owner, team, region, start, end)
        today = ctx.clock.today()
        last = filters.end or today
        first = filters.start or last - dt.timedelta(days=settings.funnel_days - 1)
        filters = Filters(filters.owner, filters.team, filters.region, first, last)
        lo, hi = period_bounds(first, last, ctx.settings.timezone)
        now = dt.datetime.now(dt.UTC)  # the figures are read live: "as of" is now
        with ctx.reading() as conn:
            params = scope_params(conn, principal, filters)
            figures = funnel_figures(conn, params, subject, lo, hi, filters.region, settings.dwell_flag_factor)
            options = choices(conn, params, SUBJECTS[subject])
        bars = [charts.Bar(s.stage, s.reached, flagged=s.flagged) for s in figures.stages]
        chart = charts.bar_chart(bars, title=t("funnel"), centred=True)
        return ctx.page("report_funnel.html", now=now, title=t("funnel"), principal=principal, t=t, figures=figures,
                        chart=chart, filters=filters, options=options, subject=subject, subjects=list(SUBJECTS),
                        factor=settings.dwell_flag_factor)
