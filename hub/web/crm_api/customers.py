"""``POST /api/customers``: the CRM upserts a customer, keyed by its own id.

Identity is the sync engine's, not a second resolver: the body becomes a
:class:`~canonical_model.records.CustomerRecord` of system ``crm`` and goes through
:func:`hub.engine.targets.upsert_customers`, so an earlier link of the CRM id, then the
unified social credit code, then the normalized name decide which golden record it is,
disagreements become ``identity_conflict`` rows, every field gets its provenance, and the
CRM id is linked in ``external_identity`` (system ``crm``). Before writing, the same
resolution (:func:`~hub.engine.targets.resolve_customer_record`) says which customer the
write would reach: one the caller may not see is refused (403: the credit code or name
belongs to another team's customer, 撞单).

A new customer belongs to the owner the body names (one the caller may assign), else to
the caller; a machine token without a user leaves it in the public pool (公海池).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import sqlalchemy as sa
from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError, field_validator
from sqlalchemy.engine import Connection

from canonical_model.models import Customer, ExternalIdentity
from canonical_model.records import CustomerRecord
from hub.access import Principal
from hub.engine.bulk import content_hash
from hub.engine.targets import PageContext, resolve_customer_record, upsert_customers
from hub.identity import credit_code_problem, normalize_credit_code
from hub.stages import record_stage_change
from hub.survivorship import claim_value, settle_customer
from hub.web.crm_api.common import (
    CRM,
    WRITE_ERRORS,
    IdempotencyKey,
    Writer,
    api_router,
    check_assignable,
    crm_customer_id,
    default_owner,
    owner_of,
    principal_scope,
)
from hub.web.crm_api.fields import Body, Currency, Fits, Id, NonNegativeMoney, Text
from hub.web.idempotency import Answer
from hub.web.writes import audit_write, write_once

router = api_router("customers")
# API upserts of customers take turns: two new records with one credit code or name must
# not both see "new" and make twins (the sync engine writes one page at a time likewise).
_CUSTOMER_UPSERT_LOCK = 0x43524D0001

_FIELDS = ("name", "region", "industry", "size", "phone", "address", "credit_limit", "currency")


class CustomerIn(Body):
    """A customer as the CRM holds it."""

    external_id: Annotated[Text, Fits(ExternalIdentity.external_id), Field(min_length=1)] = Field(
        description="The CRM's id of the customer: repeats update the same golden record")
    name: Annotated[Text, Fits(Customer.name, Customer.normalized_name), Field(min_length=1)]
    credit_code: Annotated[Text, Fits(Customer.credit_code)] | None = Field(
        None, description="统一社会信用代码 (GB 32100-2015, check character verified)")
    region: Annotated[Text, Fits(Customer.region)] | None = None
    industry: Annotated[Text, Fits(Customer.industry)] | None = None
    size: Annotated[Text, Fits(Customer.size)] | None = None
    phone: Annotated[Text, Fits(Customer.phone)] | None = None
    address: Annotated[Text, Fits(Customer.address)] | None = None
    credit_limit: NonNegativeMoney | None = None
    currency: Currency = "CNY"
    stage: Annotated[Text, Fits(Customer.stage), Field(min_length=1)] | None = Field(
        None, description="Sales stage (销售阶段), e.g. 意向客户")
    owner_id: Id | None = Field(None, description="Internal user who owns the customer (default: the caller)")

    @field_validator("external_id", "name")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        # stored trimmed, as the sync engine stores every customer record (CustomerRecord)
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()

    @field_validator("credit_code")
    @classmethod
    def _valid_credit_code(cls, value: str | None) -> str | None:
        code = normalize_credit_code(value)
        if code is not None and (problem := credit_code_problem(code)) is not None:
            raise ValueError(problem)
        return code


class CustomerWritten(BaseModel):
    """The golden record the upsert reached."""

    id: int
    external_id: str
    created: bool
    resolved_by: str = Field(description="link | credit_code | name | contact | new (hub.identity)")
    conflicts: list[str] = Field(description="identity conflicts recorded (a person decides; nothing merged)")
    name: str
    credit_code: str | None
    owner_id: int | None
    stage: str | None
    url: str


def upsert_customer(conn: Connection, principal: Principal, body: CustomerIn) -> Answer:
    """The write of ``POST /api/customers`` (see the module docstring), in the caller's transaction."""
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _CUSTOMER_UPSERT_LOCK})
    scope = principal_scope(conn, principal)
    if body.owner_id is not None:
        check_assignable(conn, principal, scope, body.owner_id, field="owner_id")
    raw = body.model_dump(mode="json")
    try:
        record = CustomerRecord(source_system=CRM, source_object="customer", external_id=body.external_id,
                                credit_code=body.credit_code, **{f: getattr(body, f) for f in _FIELDS})
    except ValidationError as exc:  # the body's own rules are stricter; kept as a 422, never a 500
        raise HTTPException(422, [{**e, "loc": ["body", *e["loc"]]} for e in exc.errors(
            include_url=False, include_context=False, include_input=False)]) from None
    ctx = PageContext(conn, CRM, "api", None, claims_kept=("owner_id",))
    resolution = resolve_customer_record(ctx, record)
    before: int | None = None
    if resolution.customer_id is not None:
        _, before = owner_of(conn, resolution.customer_id, lock=True)
        if not scope.sees_owner(before):
            raise HTTPException(403, f"customer {body.external_id!r} resolves ({resolution.rule}) to a customer "
                                     "you may not see: it belongs to another owner")
    upsert_customers(ctx, [(raw, record, content_hash(raw, "crm-api"))])
    customer_id = crm_customer_id(conn, record.external_id)
    if customer_id is None:  # upsert_customers links every record it writes
        raise RuntimeError(f"customer {record.external_id!r} was not linked")
    created = resolution.customer_id is None
    # the owner the CRM names is the CRM record's claim; survivorship (hub.survivorship, the
    # CRM first for owners by default) decides whether it becomes the golden owner
    owner_claim = default_owner(principal, body.owner_id) if created else body.owner_id
    if owner_claim is not None and claim_value(conn, CRM, record.external_id, "owner_id", owner_claim,
                                               dt.datetime.now(dt.UTC)):
        settle_customer(conn, customer_id)
    _, owner_now = owner_of(conn, customer_id)
    if created:
        conn.execute(sa.text(
            "UPDATE customer SET assigned_at = CASE WHEN owner_id IS NULL THEN NULL ELSE now() END, "
            "pool_since = CASE WHEN owner_id IS NULL THEN now() END WHERE id = :id"), {"id": customer_id})
    elif owner_now != before:
        conn.execute(sa.text("UPDATE customer SET assigned_at = now(), pool_since = CASE WHEN owner_id IS NULL "
                             "THEN COALESCE(pool_since, now()) END WHERE id = :id"), {"id": customer_id})
    if body.stage is not None:
        before_stage = conn.execute(sa.text("SELECT stage FROM customer WHERE id = :id FOR UPDATE"),
                                    {"id": customer_id}).scalar()
        conn.execute(sa.text("UPDATE customer SET stage = :s, field_sources = field_sources || "
                             "jsonb_build_object('stage', jsonb_build_object('system', 'crm', 'external_id', "
                             "CAST(:x AS text), 'fetched_at', now())) WHERE id = :id"),
                     {"s": body.stage, "x": body.external_id, "id": customer_id})
        record_stage_change(conn, "customer", customer_id, before_stage, body.stage,
                            at=dt.datetime.now(dt.UTC), source="crm", actor=principal.actor)
    _, owner_after = owner_of(conn, customer_id)
    if not scope.sees_owner(owner_after):
        raise HTTPException(403, "the customer would end up with an owner you may not see")
    conflicts = [c.reason for c in resolution.conflicts]
    audit_write(conn, principal, operation="customer:create" if created else "customer:update", table="customer",
                record_id=customer_id, detail={"external_id": body.external_id, "resolved_by": resolution.rule,
                                               "conflicts": conflicts})
    row = conn.execute(sa.text("SELECT id, name, credit_code, owner_id, stage FROM customer WHERE id = :id"),
                       {"id": customer_id}).one()
    out = CustomerWritten(id=row.id, external_id=body.external_id, created=created, resolved_by=resolution.rule,
                          conflicts=conflicts, name=row.name, credit_code=row.credit_code, owner_id=row.owner_id,
                          stage=row.stage, url=f"/customers/{row.id}")
    return Answer(201 if created else 200, out.model_dump(mode="json"))


@router.post("/api/customers", response_model=CustomerWritten, status_code=201,
             responses={200: {"model": CustomerWritten, "description": "An existing customer was updated"},
                        **WRITE_ERRORS})
async def post_customer(body: CustomerIn, request: Request, principal: Writer,
                        idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """Upsert a customer by the CRM's id, resolved to its golden record the way syncs are
    (credit code, normalized name); 201 when it is new, 200 when an existing one was updated."""
    return await write_once(request, principal, lambda conn: upsert_customer(conn, principal, body))


