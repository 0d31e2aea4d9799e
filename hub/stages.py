"""Sales stages (销售阶段) and their history: the one place a stage change is recorded.

The funnel's stages, in order, are :data:`FUNNEL_STAGES`; :data:`LOST` (输单) ends a
subject's way through the funnel without winning. Leads (``lead.stage``) and customers
(``customer.stage``) both carry a stage; every place that sets one calls
:func:`record_stage_change` in the same transaction, so ``stage_change`` holds when each
subject entered each stage (its first stage included, ``from_stage`` None) and, by the
next row, when it left: the sales funnel's dwell times (``hub.web.reports.funnel``).
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

Subject = Literal["lead", "customer"]

FUNNEL_STAGES: tuple[str, ...] = ("潜在客户", "意向客户", "方案/报价", "商务谈判", "赢单")
WON = "赢单"
LOST = "输单"


def stage_rank(stage: str | None) -> int | None:
    """The position of ``stage`` in the funnel (0 = 潜在客户), None for 输单 and stages
    outside the funnel (a CRM may use its own words: they are recorded, not ranked)."""
    return FUNNEL_STAGES.index(stage) if stage in FUNNEL_STAGES else None


def record_stage_change(conn: Connection, subject: Subject, subject_id: int, before: str | None, after: str | None,
                        *, at: dt.datetime, source: str, actor: str) -> bool:
    """Record that ``subject`` ``subject_id`` went from ``before`` to ``after`` at ``at``;
    nothing when the stage did not change (or is unset). True when a row was written."""
    if after is None or before == after:
        return False
    conn.execute(sa.text(
        "INSERT INTO stage_change (subject_type, subject_id, from_stage, to_stage, changed_at, source, actor) "
        "VALUES (:t, :id, :b, :a, :at, :s, :actor)"),
        {"t": subject, "id": subject_id, "b": before, "a": after, "at": at, "s": source[:32], "actor": actor[:200]})
    return True


__all__ = ["FUNNEL_STAGES", "LOST", "WON", "Subject", "record_stage_change", "stage_rank"]
