"""The leads and public-pool API (``/api/leads``, ``/api/pool/customers``): an APIRouter the web
app includes with one line.

- ``POST /api/leads`` — upsert a lead by the CRM's id; de-duplicated by identity rules
  (``hub.rules.leads``): the answer's ``outcome`` says created, updated, duplicate (of
  which lead, by which rule) or linked_to_customer; a new lead is assigned by the rule
  table at once (``hub.rules.lead_assignment``);
- ``GET /api/leads`` — the leads the principal sees: own (sales), team (managers), all
  (finance, admin, CRM); ``pool=true`` lists the public pool's leads instead;
- ``POST /api/leads/{id}/claim`` — a salesperson takes a pool lead;
- ``POST /api/leads/{id}/invalid`` — mark a lead invalid, with the reason;
- ``GET /api/pool/customers`` — the public pool (公海池), basic info only;
- ``POST /api/pool/customers/{id}/claim`` — a salesperson takes a pool customer;
- ``POST /api/pool/customers/{id}/assign`` — a manager hands a pool customer to someone in
  their team (admin and the CRM: to anyone).

Writes run once per ``Idempotency-Key`` in one transaction and are audited with the
principal (``hub.web.writes``).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt, field_validator
from sqlalchemy.engine import Connection
from starlette.concurrency import run_in_threadpool

from hub.access import Capability, Principal, Role
from hub.access.visibility import scope_of, team_of
from hub.identity import credit_code_problem, normalize_credit_code
from hub.rules.lead_assignment import LeadRefusal, claim_lead, mark_invalid
from hub.rules.leads import LeadInput, capture_lead
from hub.rules.pool import PoolRefusal, pool_customers, take_from_pool
from hub.settings import Settings
from hub.web.api_models import Problem
from hub.web.auth import require
from hub.web.idempotency import Answer
from hub.web.queries import MAX_ID
from hub.web.writes import audit_write, write_once

MOBILE_PATTERN = r"^\+?[0-9][0-9 \-]{4,30}$"
_Text = Annotated[str, Field(min_length=1, max_length=200)]
_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"model": Problem, "description": "The role may not do this"},
    404: {"model": Problem, "description": "No such record (or not visible)"},
    409: {"model": Problem, "description": "Not in the public pool any more"},
}


def no_control_characters(value: object) -> object:
    """Text without control characters (NUL and friends: no column may hold them)."""
    if isinstance(value, str) and any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError("control characters are not allowed")
    return value


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="before")
    @classmethod
    def _printable(cls, value: object) -> object:
        return no_control_characters(value)


class LeadIn(_Input):
    """A lead as the CRM sends it; ``external_id`` is the CRM's id (the upsert key)."""

    external_id: str = Field(min_length=1, max_length=200, description="the CRM's id of the lead")
    company_name: str = Field(min_length=1, max_length=300)
    credit_code: str | None = Field(default=None, max_length=40, description="统一社会信用代码 (checked)")
    region: _Text | None = Field(default=None, max_length=100)
    industry: _Text | None = Field(default=None, max_length=100)
    contact_name: _Text | None = None
    mobile: str | None = Field(default=None, pattern=MOBILE_PATTERN, max_length=32)
    email: str | None = Field(default=None, pattern=r"^[^@\s]{1,64}@[^@\s]{1,190}$", max_length=200)
    channel: str = Field(default="crm", min_length=1, max_length=50, description="web form, event, ad, partner…")
    estimated_amount: Decimal | None = Field(default=None, ge=0, max_digits=18, decimal_places=2)
    stage: str | None = Field(default=None, min_length=1, max_length=30)
    last_contacted_at: AwareDatetime | None = Field(default=None, description="the latest follow-up (stops the "
                                                                              "clock that returns it to the pool)")

    @field_validator("credit_code")
    @classmethod
    def _valid_code(cls, value: str | None) -> str | None:
        code = normalize_credit_code(value)
        if code is None:
            return None
        problem = credit_code_problem(code)
        if problem:
            raise ValueError(problem)
        return code


class LeadOut(BaseModel):
    """A lead as the API lists it."""

    id: int
    company_name: str
    credit_code: str | None
    region: str | None
    industry: str | None
    contact_name: str | None
    channel: str | None
    status: str
    stage: str
    estimated_amount: Decimal | None
    owner_id: int | None
    customer_id: int | None
    assigned_rule: str | None
    assigned_at: dt.datetime | None
    last_contacted_at: dt.datetime | None
    pool_since: dt.datetime | None
    invalid_reason: str | None
    created_at: dt.datetime


class LeadWritten(BaseModel):
    """What a lead write did: ``outcome`` created / updated / duplicate / linked_to_customer, the
    identity rule that matched (``matched_by``), and where the lead now is."""

    id: int
    outcome: str
    matched_by: str | None
    status: str
    owner_id: int | None
    assigned_rule: str | None
    customer_id: int | None
    pool_since: dt.datetime | None
    notes: list[str]


class InvalidIn(_Input):
    """Why a lead is invalid."""

    reason: str = Field(min_length=1, max_length=500)


class AssignIn(BaseModel):
    """Who gets a pool customer (an internal user's id)."""

    model_config = ConfigDict(extra="forbid")

    owner_id: StrictInt = Field(ge=1, le=MAX_ID)  # a JSON integer: not "12", not true


class PoolCustomerOut(BaseModel):
    """A customer in the public pool: basic info only."""

    id: int
    name: str
    region: str | None
    industry: str | None
    size: str | None
    pool_since: dt.datetime | None


_LEAD_COLUMNS = ", ".join(LeadOut.model_fields)


def _acting_user(principal: Principal) -> int:
    if principal.user_id is None:
        raise HTTPException(403, "claiming needs a principal acting for a person (a user's sign-in or token)")
    return principal.user_id


def leads_router(settings: Settings) -> APIRouter:
    """The router (module doc), over the hub's ``settings`` (lead rules, follow-up days)."""
    router = APIRouter(tags=["leads"], responses={
        400: {"model": Problem, "description": "The body is not JSON"},
        415: {"model": Problem, "description": "The body is not sent as JSON (Content-Type: application/json)"},
        401: {"model": Problem, "description": "No valid API token or session"}})
    leads = settings.leads

    def read(request: Request, work: Any) -> Any:
        def run() -> Any:
            with request.app.state.db.engine.connect() as conn:
                conn.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
                try:
                    return work(conn)
                finally:
                    conn.rollback()
        return run_in_threadpool(run)

    @router.post("/api/leads", response_model=LeadWritten, status_code=201,
                 responses={200: {"model": LeadWritten, "description": "Updated, or a duplicate of an existing lead"},
                            **_ERRORS})
    async def upsert_lead(request: Request, lead: LeadIn,
                          principal: Principal = require(Capability.WRITE_CRM)) -> JSONResponse:
        """Upsert a lead by the CRM's id; de-duplicated by credit code, normalized name and mobile."""
        data = LeadInput(source_system="crm", external_id=lead.external_id, company_name=lead.company_name,
                         channel=lead.channel, credit_code=lead.credit_code, region=lead.region,
                         industry=lead.industry, contact_name=lead.contact_name, mobile=lead.mobile,
                         email=lead.email, estimated_amount=lead.estimated_amount, stage=lead.stage,
                         last_contacted_at=lead.last_contacted_at)

        def write(conn: Connection) -> Answer:
            capture = capture_lead(conn, data, leads, actor=principal.actor)
            audit_write(conn, principal, operation=f"lead:{capture.outcome}", table="lead", record_id=capture.lead_id,
                        detail={"external_id": lead.external_id, "matched_by": capture.matched_by})
            return Answer(201 if capture.outcome == "created" else 200, capture.answer(conn))

        return await write_once(request, principal, write)

    @router.get("/api/leads", response_model=list[LeadOut])
    async def list_leads(
        request: Request,
        principal: Principal = require(Capability.VIEW_CUSTOMERS),
        pool: bool = Query(False, description="the public pool's leads instead of the visible ones"),
        status: str | None = Query(None, pattern=r"^(new|assigned|pool|invalid)$"),
        limit: int = Query(100, ge=1, le=500),
        offset: int = Query(0, ge=0, le=1_000_000),
    ) -> list[LeadOut]:
        """Leads the principal sees, newest first (sales: own; managers: their team; finance, admin, CRM: all)."""

        def work(conn: Connection) -> list[LeadOut]:
            owner: sa.ColumnElement[int | None] = sa.column("owner_id", sa.BigInteger)
            if pool:
                if not principal.can(Capability.WRITE_CRM):
                    raise HTTPException(403, "only people who can take leads see the pool")
                condition: sa.ColumnElement[bool] = owner.is_(None)
            else:
                scope = scope_of(conn, principal)
                condition = scope.condition(owner) if scope.all_customers else sa.and_(
                    owner.is_not(None), scope.condition(owner))
            query: Any = sa.select(*(sa.column(c) for c in LeadOut.model_fields)).select_from(sa.table("lead")).where(
                condition)
            if pool:
                query = query.where(sa.column("status").in_(["new", "pool"]))
            if status:
                query = query.where(sa.column("status") == status)
            query = query.order_by(sa.column("id").desc()).limit(limit).offset(offset)
            return [LeadOut(**r._mapping) for r in conn.execute(query)]

        result: list[LeadOut] = await read(request, work)
        return result

    @router.post("/api/leads/{lead_id}/claim", response_model=LeadWritten, responses=_ERRORS)
    async def claim(request: Request, lead_id: int = Path(ge=1, le=MAX_ID),
                    principal: Principal = require(Capability.WRITE_CRM)) -> JSONResponse:
        """Take a lead from the public pool (the first claim wins; a later one is 409)."""
        user_id = _acting_user(principal)

        def write(conn: Connection) -> Answer:
            try:
                claim_lead(conn, lead_id, user_id, leads, actor=principal.actor)
            except LeadRefusal as exc:
                raise HTTPException(exc.status, str(exc)) from None
            audit_write(conn, principal, operation="lead:claimed", table="lead", record_id=lead_id)
            return Answer(200, _lead_answer(conn, lead_id, "claimed"))

        return await write_once(request, principal, write)

    @router.post("/api/leads/{lead_id}/invalid", response_model=LeadWritten, responses=_ERRORS)
    async def invalid(request: Request, body: InvalidIn, lead_id: int = Path(ge=1, le=MAX_ID),
                      principal: Principal = require(Capability.WRITE_CRM)) -> JSONResponse:
        """Mark a lead invalid (spam, unreachable, no need), with the reason."""

        def write(conn: Connection) -> Answer:
            owner = conn.execute(sa.text("SELECT owner_id FROM lead WHERE id = :id"), {"id": lead_id}).first()
            if owner is None or not _may_touch(conn, principal, owner.owner_id):
                raise HTTPException(404, f"no lead {lead_id}")
            try:
                mark_invalid(conn, lead_id, body.reason, actor=principal.actor)
            except LeadRefusal as exc:
                raise HTTPException(exc.status, str(exc)) from None
            audit_write(conn, principal, operation="lead:invalid", table="lead", record_id=lead_id,
                        detail={"reason": body.reason})
            return Answer(200, _lead_answer(conn, lead_id, "invalid"))

        return await write_once(request, principal, write)

    @router.get("/api/pool/customers", response_model=list[PoolCustomerOut], tags=["pool"])
    async def list_pool(request: Request, principal: Principal = require(Capability.VIEW_CUSTOMERS),
                        limit: int = Query(100, ge=1, le=500),
                        offset: int = Query(0, ge=0, le=1_000_000)) -> list[PoolCustomerOut]:
        """The public pool (公海池): customers nobody owns, longest waiting first; basic info only."""
        if not (principal.can(Capability.WRITE_CRM) or principal.sees_all_customers):
            raise HTTPException(403, f"your role ({principal.role.value}) may not see the pool")
        found = await read(request, lambda conn: pool_customers(conn, limit=limit, offset=offset))
        return [PoolCustomerOut(**row) for row in found]

    @router.post("/api/pool/customers/{customer_id}/claim", tags=["pool"], responses=_ERRORS)
    async def claim_customer(request: Request, customer_id: int = Path(ge=1, le=MAX_ID),
                             principal: Principal = require(Capability.WRITE_CRM)) -> JSONResponse:
        """Take a customer from the public pool: it becomes yours (the first claim wins)."""
        user_id = _acting_user(principal)
        return await write_once(request, principal, _taking(principal, customer_id, user_id, "claimed"))

    @router.post("/api/pool/customers/{customer_id}/assign", tags=["pool"], responses=_ERRORS)
    async def assign_customer(request: Request, body: AssignIn, customer_id: int = Path(ge=1, le=MAX_ID),
                              principal: Principal = require(Capability.WRITE_CRM)) -> JSONResponse:
        """Hand a pool customer to someone: a manager to their team, admin and the CRM to anyone."""
        if principal.role not in (Role.MANAGER, Role.ADMIN, Role.CRM):
            raise HTTPException(403, f"your role ({principal.role.value}) may not hand out pool customers")
        return await write_once(request, principal, _taking(principal, customer_id, body.owner_id, "assigned"))

    return router


def _taking(principal: Principal, customer_id: int, owner_id: int, how: str) -> Any:
    def write(conn: Connection) -> Answer:
        owner = conn.execute(sa.text("SELECT active FROM internal_user WHERE id = :id"), {"id": owner_id}).first()
        if owner is None or not owner.active:
            raise HTTPException(422, f"owner_id: no active internal user {owner_id}")
        if principal.role is Role.MANAGER and how == "assigned" and principal.user_id is not None \
                and owner_id not in team_of(conn, principal.user_id):
            raise HTTPException(403, f"user {owner_id} is not in your team")
        try:
            taken = take_from_pool(conn, customer_id, owner_id, by=principal.ref)
        except PoolRefusal as exc:
            raise HTTPException(exc.status, str(exc)) from None
        audit_write(conn, principal, operation=f"pool:{how}", table="customer", record_id=customer_id,
                    detail={"owner_id": owner_id})
        return Answer(200, {**taken, "outcome": how})

    return write


def _may_touch(conn: Connection, principal: Principal, owner_id: int | None) -> bool:
    scope = scope_of(conn, principal)
    return scope.sees_owner(owner_id) or (owner_id is None and principal.can(Capability.WRITE_CRM))


def _lead_answer(conn: Connection, lead_id: int, outcome: str) -> dict[str, Any]:
    row = conn.execute(sa.text(
        "SELECT id, status, owner_id, assigned_rule, customer_id, pool_since FROM lead WHERE id = :id"),
        {"id": lead_id}).one()
    return {**row._mapping, "outcome": outcome, "matched_by": None, "notes": []}


__all__ = ["LeadIn", "LeadOut", "LeadWritten", "leads_router"]
