"""``GET /api/audit/{table}/{id}``: the audit of one record, newest first.

The audit key of a canonical record is ``<table>:<id>`` (:func:`hub.web.writes.record_key`);
this lists those rows: who (the principal), what, when, the outcome and its detail. A
record's audit is as visible as the record: through its customer (a task without one,
through its assignee). Personal data is masked on the way into the audit already; a caller
without the ``see_personal_data`` capability gets every text masked again on the way out.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import Path, Query, Request
from pydantic import BaseModel

from canonical_model.search import MAX_ID
from hub.access import Capability, Principal
from hub.audit import mask_personal_data
from hub.web.crm_api.common import (
    MAX_PAGE,
    READ_ERRORS,
    WRITE_ERRORS,
    Viewer,
    api_router,
    not_found,
    principal_scope,
    reading,
)
from hub.web.writes import record_key

router = api_router("audit")

AuditedTable = Literal["customer", "contact", "sales_order", "contract", "task", "interaction", "service_ticket",
                       "touchpoint"]
# whose owner decides whether a record is visible: its customer's (a task without one: its assignee)
_OWNER = {table: f"SELECT c.owner_id AS owner, TRUE AS found FROM {table} x JOIN customer c ON c.id = x.customer_id "
                 "WHERE x.id = :id"
          for table in ("contact", "sales_order", "contract", "interaction", "service_ticket", "touchpoint")}
_OWNER["customer"] = "SELECT owner_id AS owner, TRUE AS found FROM customer WHERE id = :id"
_OWNER["task"] = ("SELECT CASE WHEN t.customer_id IS NULL THEN t.assignee_id ELSE c.owner_id END AS owner, "
                  "TRUE AS found FROM task t LEFT JOIN customer c ON c.id = t.customer_id WHERE t.id = :id")


class AuditEntry(BaseModel):
    """One audit row about the record."""

    id: int
    at: dt.datetime
    actor: str
    system: str
    operation: str
    outcome: str
    error: str | None
    detail: dict[str, Any]


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return mask_personal_data(value)
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


def shown_to(principal: Principal, entry: AuditEntry) -> AuditEntry:
    """``entry`` as ``principal`` may read it (masked without the see_personal_data capability)."""
    if principal.can(Capability.SEE_PERSONAL_DATA):
        return entry
    return entry.model_copy(update={"error": _masked(entry.error), "detail": _masked(entry.detail),
                                    "actor": mask_personal_data(entry.actor)})


@router.get("/api/audit/{table}/{record_id}", response_model=list[AuditEntry],
            responses={**READ_ERRORS, 404: WRITE_ERRORS[404]})
def record_audit(
    table: Annotated[AuditedTable, Path(description="The canonical table")],
    record_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    request: Request, principal: Viewer,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> list[AuditEntry]:
    """Who wrote this record, when and how (audit rows keyed ``table:id``), newest first."""
    with reading(request) as conn:
        scope = principal_scope(conn, principal)
        row = conn.execute(sa.text(_OWNER[table]), {"id": record_id}).first()
        if row is None or not scope.sees_owner(row.owner):
            raise not_found(table.replace("_", " "), record_id)
        rows = conn.execute(sa.text(
            "SELECT id, at, actor, system, operation, outcome, error, detail FROM audit_log WHERE key = :k "
            "ORDER BY at DESC, id DESC LIMIT :limit"), {"k": record_key(table, record_id), "limit": limit}).all()
    return [shown_to(principal, AuditEntry(**r._mapping)) for r in rows]
