"""``POST /api/contracts``: the CRM upserts a contract (合同) of a visible customer, keyed by its id."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import sqlalchemy as sa
from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, model_validator
from sqlalchemy.engine import Connection

from canonical_model.models import Contract
from hub.access import Principal
from hub.web.crm_api.common import (
    WRITE_ERRORS,
    CustomerRef,
    IdempotencyKey,
    Writer,
    api_router,
    check_assignable,
    default_owner,
    principal_scope,
    upsert_row,
    visible_customer,
)
from hub.web.crm_api.fields import Currency, Fits, Id, IsoDate, IsoDatetime, NonNegativeMoney, Text
from hub.web.idempotency import Answer
from hub.web.writes import audit_write, write_once

router = api_router("contracts")


class ContractIn(CustomerRef):
    """A contract as the CRM holds it."""

    external_id: Annotated[Text, Fits(Contract.external_id), Field(min_length=1)] = Field(
        description="The CRM's id of the contract: repeats update it")
    contract_number: Annotated[Text, Fits(Contract.contract_number), Field(min_length=1)]
    title: Annotated[Text, Fits(Contract.title), Field(min_length=1)]
    currency: Currency
    amount: NonNegativeMoney
    status: Literal["draft", "signed", "cancelled", "closed"] = "draft"
    signed_at: IsoDatetime | None = Field(None, description="When it was signed (required when status is signed)")
    starts_on: IsoDate | None = None
    ends_on: IsoDate | None = None
    owner_id: Id | None = Field(None, description="Salesperson (default: the caller)")

    @model_validator(mode="after")
    def _consistent(self) -> ContractIn:
        if self.status == "signed" and self.signed_at is None:
            raise ValueError("a signed contract needs signed_at")
        if self.starts_on and self.ends_on and self.ends_on < self.starts_on:
            raise ValueError("ends_on is before starts_on")
        return self


class ContractWritten(BaseModel):
    """The contract as stored."""

    id: int
    external_id: str
    customer_id: int
    created: bool
    contract_number: str
    status: str
    amount: str
    currency: str


def upsert_contract(conn: Connection, principal: Principal, body: ContractIn) -> Answer:
    """The write of ``POST /api/contracts``."""
    scope = principal_scope(conn, principal)
    customer_id = visible_customer(conn, scope, body)
    if body.owner_id is not None:
        check_assignable(conn, principal, scope, body.owner_id, field="owner_id")
    values: dict[str, Any] = {
        "customer_id": customer_id, "owner_id": default_owner(principal, body.owner_id),
        "contract_number": body.contract_number, "title": body.title, "currency": body.currency,
        "amount": body.amount, "status": body.status, "signed_at": body.signed_at, "starts_on": body.starts_on,
        "ends_on": body.ends_on}
    contract_id, created = upsert_row(conn, scope, "contract", body.external_id, values)
    conn.execute(sa.text("UPDATE contract SET updated_at = now() WHERE id = :id"), {"id": contract_id})
    audit_write(conn, principal, operation="contract:create" if created else "contract:update", table="contract",
                record_id=contract_id, detail={"external_id": body.external_id, "status": body.status})
    out = ContractWritten(id=contract_id, external_id=body.external_id, customer_id=customer_id, created=created,
                          contract_number=body.contract_number, status=body.status, amount=str(body.amount),
                          currency=body.currency)
    return Answer(201 if created else 200, out.model_dump(mode="json"))


@router.post("/api/contracts", response_model=ContractWritten, status_code=201,
             responses={200: {"model": ContractWritten, "description": "An existing contract was updated"},
                        **WRITE_ERRORS})
async def post_contract(body: ContractIn, request: Request, principal: Writer,
                        idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """Upsert a contract (number, title, amount, status, term) by the CRM's id."""
    return await write_once(request, principal, lambda conn: upsert_contract(conn, principal, body))
