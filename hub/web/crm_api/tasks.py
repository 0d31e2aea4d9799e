"""Tasks (待办) from the CRM: ``POST /api/tasks``, ``PATCH /api/tasks/{id}``,
``POST /api/tasks/{id}/complete`` and the list ``GET /api/tasks``.

A task is visible with its customer; a task without a customer with its assignee (as a
customer with that owner would be). An assignee must be someone the caller may give
work to (:func:`~hub.web.crm_api.common.check_assignable`).

Completing a task here is completing it in the CRM, as the rules know it
(:func:`hub.engine.targets.complete_task` with ``via="crm"``, who and when recorded):
the to-do rule (:mod:`hub.rules.todos`) then marks the task's to-do done on the
assignee's chat platform, and reminders stop, since they only look at open tasks.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, model_validator
from sqlalchemy.engine import Connection

from canonical_model.models import ExternalIdentity, Task
from canonical_model.search import MAX_ID
from hub.access import Principal
from hub.access.visibility import Scope
from hub.engine.targets import complete_task
from hub.web.crm_api.common import (
    MAX_PAGE,
    READ_ERRORS,
    WRITE_ERRORS,
    CustomerRef,
    IdempotencyKey,
    Viewer,
    Writer,
    api_router,
    check_assignable,
    field_error,
    not_found,
    principal_scope,
    reading,
    visible_customer,
)
from hub.web.crm_api.fields import Body, Fits, Id, IsoDate, IsoDatetime, Text
from hub.web.crm_api.sql import inline
from hub.web.idempotency import Answer
from hub.web.writes import audit_write, write_once

router = api_router("tasks")
MAX_DESCRIPTION_CHARS = 20_000
TaskKind = Annotated[Text, Fits(Task.kind), Field(pattern=r"^[a-z][a-z0-9_]*$")]


class TaskIn(Body):
    """A new task, optionally about a customer."""

    title: Annotated[Text, Fits(Task.title), Field(min_length=1)]
    description: Annotated[Text, Fits(Task.description), Field(max_length=MAX_DESCRIPTION_CHARS)] | None = None
    kind: TaskKind = "follow_up"
    due_at: IsoDatetime
    assignee_id: Id | None = Field(None, description="Internal user who does it (default: the caller)")
    customer_id: Id | None = None
    customer_external_id: Annotated[Text, Fits(ExternalIdentity.external_id), Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _one_customer(self) -> TaskIn:
        if self.customer_id is not None and self.customer_external_id is not None:
            raise ValueError("give at most one of customer_id and customer_external_id")
        return self


class TaskPatch(Body):
    """Changes to an open task."""

    title: Annotated[Text, Fits(Task.title), Field(min_length=1)] | None = None
    description: Annotated[Text, Fits(Task.description), Field(max_length=MAX_DESCRIPTION_CHARS)] | None = None
    due_at: IsoDatetime | None = None
    assignee_id: Id | None = None
    status: Literal["open", "cancelled"] | None = Field(None, description="cancel (or reopen a cancelled) task; "
                                                                          "complete it with POST …/complete")


class TaskOut(BaseModel):
    """A task as stored."""

    id: int
    title: str
    description: str | None
    kind: str
    status: str
    customer_id: int | None
    assignee_id: int
    assignee: str
    due_at: dt.datetime
    created_at: dt.datetime
    completed_at: dt.datetime | None
    completed_by_id: int | None
    completed_via: str | None


class TaskPage(BaseModel):
    """One page of tasks; ``next_offset`` is null on the last page."""

    items: list[TaskOut]
    next_offset: int | None


_SELECT = ("SELECT t.id, t.title, t.description, t.kind, t.status, t.customer_id, t.assignee_id, a.name AS assignee, "
           "t.due_at, t.created_at, t.completed_at, t.completed_by_id, t.completed_via "
           "FROM task t JOIN internal_user a ON a.id = t.assignee_id LEFT JOIN customer c ON c.id = t.customer_id ")


def task_visibility(scope: Scope) -> sa.ColumnElement[bool]:
    """Tasks a scope sees: those of visible customers, and customer-less ones of visible assignees."""
    customer_owner: sa.ColumnElement[int | None] = sa.column("owner_id", sa.BigInteger, _selectable=sa.table("c"))
    assignee: sa.ColumnElement[int | None] = sa.column("assignee_id", sa.BigInteger, _selectable=sa.table("t"))
    customer: sa.ColumnElement[int | None] = sa.column("customer_id", sa.BigInteger, _selectable=sa.table("t"))
    return sa.or_(sa.and_(customer.is_not(None), scope.condition(customer_owner)),
                  sa.and_(customer.is_(None), scope.condition(assignee)))


def _visible_task(conn: Connection, scope: Scope, task_id: int, *, lock: bool = False) -> Any:
    row = conn.execute(sa.text(
        "SELECT t.id, t.status, t.customer_id, t.assignee_id, c.owner_id FROM task t "
        "LEFT JOIN customer c ON c.id = t.customer_id WHERE t.id = :id" + (" FOR UPDATE OF t" if lock else "")),
        {"id": task_id}).first()
    if row is None or not scope.sees_owner(row.owner_id if row.customer_id is not None else row.assignee_id):
        raise not_found("task", task_id)
    return row


def task_out(conn: Connection, task_id: int) -> dict[str, Any]:
    """One task as the API shows it."""
    row = conn.execute(sa.text(_SELECT + "WHERE t.id = :id"), {"id": task_id}).one()
    return TaskOut(**row._mapping).model_dump(mode="json")


def create_task(conn: Connection, principal: Principal, body: TaskIn) -> Answer:
    """The write of ``POST /api/tasks``."""
    scope = principal_scope(conn, principal)
    customer_id = None
    if body.customer_id is not None or body.customer_external_id is not None:
        ref = CustomerRef(customer_id=body.customer_id, customer_external_id=body.customer_external_id)
        customer_id = visible_customer(conn, scope, ref)
    assignee = body.assignee_id if body.assignee_id is not None else principal.user_id
    if assignee is None:
        raise field_error(["assignee_id"], "required: this credential acts for no user")
    check_assignable(conn, principal, scope, assignee, field="assignee_id")
    task_id = conn.execute(sa.text(
        "INSERT INTO task (title, description, kind, customer_id, assignee_id, due_at) "
        "VALUES (:t, :d, :k, :c, :a, :due) RETURNING id"),
        {"t": body.title, "d": body.description, "k": body.kind, "c": customer_id, "a": assignee,
         "due": body.due_at}).scalar_one()
    audit_write(conn, principal, operation="task:create", table="task", record_id=task_id,
                detail={"customer_id": customer_id, "assignee_id": assignee, "kind": body.kind})
    return Answer(201, task_out(conn, task_id))


def update_task(conn: Connection, principal: Principal, task_id: int, body: TaskPatch) -> Answer:
    """The write of ``PATCH /api/tasks/{id}``."""
    scope = principal_scope(conn, principal)
    task = _visible_task(conn, scope, task_id, lock=True)
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    if task.status == "done" and changes:
        raise HTTPException(409, f"task {task_id} is done")
    if "assignee_id" in changes:
        check_assignable(conn, principal, scope, changes["assignee_id"], field="assignee_id")
    if changes:
        sets = ", ".join(f"{name} = :{name}" for name in changes)
        conn.execute(sa.text(f"UPDATE task SET {sets} WHERE id = :id"), {**changes, "id": task_id})
    audit_write(conn, principal, operation="task:update", table="task", record_id=task_id,
                detail={"changed": sorted(changes)})
    return Answer(200, task_out(conn, task_id))


def finish_task(conn: Connection, principal: Principal, task_id: int) -> Answer:
    """The write of ``POST /api/tasks/{id}/complete``."""
    scope = principal_scope(conn, principal)
    task = _visible_task(conn, scope, task_id, lock=True)
    if not complete_task(conn, task_id, at=None, by_user_id=principal.user_id, via="crm"):
        raise HTTPException(409, f"task {task_id} is not open (it is {task.status})")
    audit_write(conn, principal, operation="task:complete", table="task", record_id=task_id)
    return Answer(200, task_out(conn, task_id))


TaskId = Annotated[int, Path(ge=1, le=MAX_ID, description="The hub's task id")]


@router.post("/api/tasks", response_model=TaskOut, status_code=201, responses=WRITE_ERRORS)
async def post_task(body: TaskIn, request: Request, principal: Writer,
                    idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """Create a task for an assignee the caller may give work to, optionally about a visible customer."""
    return await write_once(request, principal, lambda conn: create_task(conn, principal, body))


@router.patch("/api/tasks/{task_id}", response_model=TaskOut, responses=WRITE_ERRORS)
async def patch_task(task_id: TaskId, body: TaskPatch, request: Request, principal: Writer,
                     idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """Change a task's title, description, due time or assignee, or cancel it."""
    return await write_once(request, principal, lambda conn: update_task(conn, principal, task_id, body))


@router.post("/api/tasks/{task_id}/complete", response_model=TaskOut, responses=WRITE_ERRORS)
async def complete(task_id: TaskId, request: Request, principal: Writer,
                   idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """Complete an open task, as completing it in the CRM does (its chat to-do is then marked done)."""
    return await write_once(request, principal, lambda conn: finish_task(conn, principal, task_id))


@router.get("/api/tasks", response_model=TaskPage, responses=READ_ERRORS)
def list_tasks(
    request: Request, principal: Viewer,
    assignee_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    customer_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    status: Annotated[Literal["open", "done", "cancelled"] | None, Query()] = None,
    due_from: Annotated[IsoDate | None, Query(description="due on or after this day (UTC), YYYY-MM-DD")] = None,
    due_to: Annotated[IsoDate | None, Query(description="due on or before this day (UTC), YYYY-MM-DD")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> TaskPage:
    """Tasks the caller may see, soonest due first."""
    where = ["TRUE"]
    params: dict[str, Any] = {"limit": limit + 1, "offset": offset}
    for name, value, clause in (("assignee_id", assignee_id, "t.assignee_id = :assignee_id"),
                                ("customer_id", customer_id, "t.customer_id = :customer_id"),
                                ("status", status, "t.status = :status"),
                                ("due_from", due_from, "t.due_at >= CAST(:due_from AS date)"),
                                ("due_to", due_to, "t.due_at < CAST(:due_to AS date) + 1")):
        if value is not None:
            where.append(clause)
            params[name] = value
    with reading(request) as conn:
        visible = task_visibility(principal_scope(conn, principal))
        query = sa.text(_SELECT + "WHERE " + " AND ".join(where) + " AND " + inline(conn, visible) +
                        " ORDER BY t.due_at, t.id LIMIT :limit OFFSET :offset")
        rows = conn.execute(query, params).all()
    items = [TaskOut(**r._mapping) for r in rows[:limit]]
    return TaskPage(items=items, next_offset=offset + limit if len(rows) > limit else None)

