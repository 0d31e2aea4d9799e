"""What every CRM API endpoint shares: who may call it, which customers it may touch, how
it reads, and the error answers its OpenAPI description lists.

Visibility is :mod:`hub.access.visibility`'s, applied in two ways:

- a customer named by a request (``customer_id`` or the CRM's ``customer_external_id``)
  that the principal may not see is answered exactly like one that does not exist (404):
  a salesperson learns nothing about another team's customers;
- an owner or assignee a request names must be one the principal may assign: itself for
  sales, anyone in the team for a manager, any user for the CRM and admins (403 otherwise).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Header, HTTPException, Request
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer
from pydantic import BaseModel, Field, model_validator
from sqlalchemy.engine import Connection

from canonical_model.models import ExternalIdentity
from hub.access import Capability, Principal
from hub.access.visibility import Scope, scope_of
from hub.settings import Settings
from hub.web.api_models import Problem
from hub.web.auth import require
from hub.web.crm_api.fields import Body, Fits, Id, Text
from hub.web.idempotency import MAX_KEY_CHARS

CRM = "crm"  # source_system / external_identity.system of what the CRM sends
MAX_PAGE = 500  # the most rows one list answer holds, whatever ``limit`` asks

# Documents the bearer scheme in the OpenAPI description; hub.web.auth does the checking.
bearer_scheme = HTTPBearer(auto_error=False, scheme_name="bearer",
                           description="An API token (`hub token create --role crm`) or a signed-in session")

def refuse_unknown_query(request: Request) -> None:
    """A query parameter the operation does not take is a 422, like an unknown body field: a
    misspelt filter (``?overdue=true`` for ``overdue_only``) must not silently list everything."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    known: set[str] = set()
    pending = [route.dependant]
    while pending:  # the operation's own query parameters and those of its dependencies
        dependant = pending.pop()
        known.update(param.alias for param in dependant.query_params)
        pending.extend(dependant.dependencies)
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        raise HTTPException(422, [{"loc": ["query", name], "msg": "not a parameter of this operation",
                                   "type": "extra_forbidden"} for name in unknown[:10]])


def api_router(tag: str) -> APIRouter:
    """The router of one subject: its operations tagged ``tag``, documented as bearer-secured,
    refusing unknown query parameters."""
    return APIRouter(tags=[tag], dependencies=[Depends(bearer_scheme), Depends(refuse_unknown_query)])


Writer = Annotated[Principal, require(Capability.WRITE_CRM)]
Viewer = Annotated[Principal, require(Capability.VIEW_CUSTOMERS)]
FinanceViewer = Annotated[Principal, require(Capability.VIEW_FINANCE)]
IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", min_length=1, max_length=MAX_KEY_CHARS, pattern=r"^[!-~]+$",
    description="Any client-chosen key: a repeat with the same key and body returns the first answer "
                "(header Idempotent-Replayed: true); the same key with another body is a 422")]


class ValidationProblem(BaseModel):
    """A 422: FastAPI's list of problems with field paths (``loc``), or one sentence."""

    detail: str | list[dict[str, Any]]


READ_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "No valid API token or session"},
    403: {"model": Problem, "description": "The principal's role may not do this"},
    422: {"model": ValidationProblem, "description": "Invalid parameters (field paths in `loc`)"},
}
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **READ_ERRORS,
    400: {"model": Problem, "description": "The body cannot be read as JSON text (e.g. not UTF-8)"},
    404: {"model": Problem, "description": "A record the request names does not exist or is not visible"},
    409: {"model": Problem, "description": "The record is in a state that does not allow this change"},
    413: {"model": Problem, "description": "Request body over HUB_API__MAX_BODY_BYTES"},
    415: {"model": Problem, "description": "The body is not sent as JSON (Content-Type: application/json)"},
    422: {"model": ValidationProblem,
          "description": "Invalid body (field paths in `loc`), or an Idempotency-Key reused for another request"},
}


def settings_of(request: Request) -> Settings:
    """The hub's settings the app was built with."""
    settings: Settings = request.app.state.settings
    return settings


def today(request: Request) -> dt.date:
    """Today in the hub's business timezone (aging is counted in it)."""
    return dt.datetime.now(ZoneInfo(settings_of(request).timezone)).date()


@contextmanager
def reading(request: Request) -> Iterator[Connection]:
    """One consistent, read-only transaction for a list or a record read."""
    with request.app.state.db.engine.connect() as conn:
        conn.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
        try:
            yield conn
        finally:
            conn.rollback()


def not_found(what: str, ref: object) -> HTTPException:
    """The 404 of a record that does not exist, or that the principal may not see."""
    return HTTPException(404, f"no {what} {ref}")


def field_error(loc: list[str | int], message: str) -> HTTPException:
    """A 422 about one body field, in FastAPI's own shape (``loc`` is the field path)."""
    return HTTPException(422, [{"loc": ["body", *loc], "msg": message, "type": "value_error"}])


class CustomerRef(Body):
    """Which customer a record belongs to: the hub's id or the CRM's external id, exactly one."""

    customer_id: Id | None = Field(None, description="The hub's customer id")
    customer_external_id: Annotated[Text, Fits(ExternalIdentity.external_id), Field(min_length=1)] | None = Field(
        None, description="The CRM's id of the customer (as upserted through POST /api/customers)")

    @model_validator(mode="after")
    def _exactly_one_customer(self) -> CustomerRef:
        if (self.customer_id is None) == (self.customer_external_id is None):
            raise ValueError("give exactly one of customer_id and customer_external_id")
        return self


def crm_customer_id(conn: Connection, external_id: str) -> int | None:
    """The golden customer the CRM's customer ``external_id`` resolved to, if any."""
    found = conn.execute(sa.text(
        "SELECT canonical_id FROM external_identity WHERE system = :s AND object = 'customer' "
        "AND external_id = :x AND canonical_table = 'customer'"), {"s": CRM, "x": external_id}).scalar()
    return int(found) if found is not None else None


def owner_of(conn: Connection, customer_id: int, *, lock: bool = False) -> tuple[bool, int | None]:
    """(exists, owner id) of a customer; ``lock`` holds the row until the transaction ends."""
    row = conn.execute(sa.text("SELECT owner_id FROM customer WHERE id = :id" + (" FOR UPDATE" if lock else "")),
                       {"id": customer_id}).first()
    return (row is not None, row.owner_id if row is not None else None)


def visible_customer(conn: Connection, scope: Scope, ref: CustomerRef, *, lock: bool = False) -> int:
    """The customer ``ref`` names, when the principal sees it; else 404 (unknown and hidden alike)."""
    label = ref.customer_id if ref.customer_id is not None else f"with CRM id {ref.customer_external_id!r}"
    customer_id = ref.customer_id if ref.customer_id is not None else crm_customer_id(conn, str(ref.customer_external_id))
    if customer_id is None:
        raise not_found("customer", label)
    exists, owner = owner_of(conn, customer_id, lock=lock)
    if not exists or not scope.sees_owner(owner):
        raise not_found("customer", label)
    return customer_id


def check_assignable(conn: Connection, principal: Principal, scope: Scope, user_id: int, *, field: str) -> None:
    """Refuse an owner or assignee ``user_id`` the principal may not give work to (see the module docstring)."""
    if conn.execute(sa.text("SELECT 1 FROM internal_user WHERE id = :id"), {"id": user_id}).first() is None:
        raise field_error([field], f"no internal user {user_id}")
    if scope.all_customers or user_id in scope.owner_ids:
        return
    raise HTTPException(403, f"{field}: your role ({principal.role.value}) may not give customers or tasks to "
                             f"user {user_id}")


def default_owner(principal: Principal, given: int | None) -> int | None:
    """Whom a record a principal creates belongs to: the one it names, else itself (None for a
    machine without a user: the public pool)."""
    return given if given is not None else principal.user_id


def principal_scope(conn: Connection, principal: Principal) -> Scope:
    """The principal's visibility (one query for managers, none for the others)."""
    return scope_of(conn, principal)


def limit_param(limit: int) -> int:
    """``limit`` clamped to :data:`MAX_PAGE` (the query parameter also refuses more)."""
    return min(limit, MAX_PAGE)


def upsert_row(conn: Connection, scope: Scope, table: str, external_id: str, values: dict[str, Any]) -> tuple[int, bool]:
    """Insert or update the CRM's record ``external_id`` of ``table`` (a table keyed by
    ``(source_system, external_id)`` with a ``customer_id``); returns (id, created). A record
    held under a customer the caller may not see is a 404: it cannot be moved away from it.
    ``table`` and the keys of ``values`` are the endpoint's own names, never request text."""
    existing = conn.execute(sa.text(
        f"SELECT t.id, c.owner_id FROM {table} t JOIN customer c ON c.id = t.customer_id "
        "WHERE t.source_system = :s AND t.external_id = :x FOR UPDATE OF t"), {"s": CRM, "x": external_id}).first()
    if existing is not None and not scope.sees_owner(existing.owner_id):
        raise not_found(table.replace("_", " "), repr(external_id))
    columns = list(values)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns)
    row = conn.execute(sa.text(
        f"INSERT INTO {table} ({', '.join(columns)}, source_system, external_id) "
        f"VALUES ({', '.join(':' + c for c in columns)}, :_s, :_x) ON CONFLICT (source_system, external_id) "
        f"DO UPDATE SET {updates}, fetched_at = now() RETURNING id, (xmax = 0) AS created"),
        {**values, "_s": CRM, "_x": external_id}).one()
    return int(row.id), bool(row.created)


def contact_of(conn: Connection, customer_id: int, external_id: str | None) -> int | None:
    """The hub id of the CRM's contact ``external_id`` at ``customer_id`` (422 when it is not there)."""
    if external_id is None:
        return None
    found = conn.execute(sa.text("SELECT id FROM contact WHERE source_system = :s AND external_id = :x "
                                 "AND customer_id = :c"), {"s": CRM, "x": external_id, "c": customer_id}).scalar()
    if found is None:
        raise field_error(["contact_external_id"], f"no CRM contact {external_id!r} at this customer")
    return int(found)
