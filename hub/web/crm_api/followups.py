"""``POST /api/followups``: a follow-up logged in the CRM (call, visit, meeting, chat, note)
becomes an ``interaction`` on the customer's timeline, and moves the customer's
``last_followup_at`` forward (never back: a late-logged old call does not make a customer
look freshly contacted). With the CRM's id of the follow-up, a repeat is recorded once."""

from __future__ import annotations

from typing import Annotated, Literal

import sqlalchemy as sa
from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.engine import Connection

from canonical_model.models import Interaction
from hub.access import Principal
from hub.web.crm_api.common import (
    CRM,
    WRITE_ERRORS,
    CustomerRef,
    IdempotencyKey,
    Writer,
    api_router,
    principal_scope,
    visible_customer,
)
from hub.web.crm_api.fields import Fits, IsoDatetime, Text
from hub.web.idempotency import Answer
from hub.web.writes import audit_write, write_once

router = api_router("follow-ups")
MAX_SUMMARY_CHARS = 20_000


class FollowupIn(CustomerRef):
    """One follow-up with the customer."""

    kind: Literal["call", "visit", "meeting", "chat", "email", "note"]
    occurred_at: IsoDatetime
    summary: Annotated[Text, Fits(Interaction.summary), Field(min_length=1, max_length=MAX_SUMMARY_CHARS)]
    external_id: Annotated[Text, Fits(Interaction.external_id), Field(min_length=1)] | None = Field(
        None, description="The CRM's id of the follow-up: a repeat is recorded once")


class FollowupWritten(BaseModel):
    """The interaction as stored, and the customer's last follow-up time after it."""

    id: int
    customer_id: int
    created: bool
    kind: str
    occurred_at: str
    last_followup_at: str


def log_followup(conn: Connection, principal: Principal, body: FollowupIn) -> Answer:
    """The write of ``POST /api/followups``."""
    scope = principal_scope(conn, principal)
    customer_id = visible_customer(conn, scope, body, lock=True)
    existing = None
    if body.external_id is not None:
        existing = conn.execute(sa.text(
            "SELECT id FROM interaction WHERE customer_id = :c AND source_system = :s AND external_id = :x"),
            {"c": customer_id, "s": CRM, "x": body.external_id}).scalar()
    if existing is None:
        interaction_id = conn.execute(sa.text(
            "INSERT INTO interaction (customer_id, user_id, kind, occurred_at, summary, source_system, external_id) "
            "VALUES (:c, :u, :k, :at, :s, :src, :x) RETURNING id"),
            {"c": customer_id, "u": principal.user_id, "k": body.kind, "at": body.occurred_at, "s": body.summary,
             "src": CRM, "x": body.external_id}).scalar_one()
    else:
        interaction_id = existing
    last = conn.execute(sa.text(
        "UPDATE customer SET last_followup_at = GREATEST(last_followup_at, CAST(:at AS timestamptz)) "
        "WHERE id = :c RETURNING last_followup_at"), {"at": body.occurred_at, "c": customer_id}).scalar_one()
    created = existing is None
    if created:
        audit_write(conn, principal, operation="interaction:create", table="interaction", record_id=interaction_id,
                    detail={"customer_id": customer_id, "kind": body.kind, "external_id": body.external_id})
    out = FollowupWritten(id=interaction_id, customer_id=customer_id, created=created, kind=body.kind,
                          occurred_at=body.occurred_at.isoformat(), last_followup_at=last.isoformat())
    return Answer(201 if created else 200, out.model_dump(mode="json"))


@router.post("/api/followups", response_model=FollowupWritten, status_code=201,
             responses={200: {"model": FollowupWritten, "description": "The follow-up was recorded already"},
                        **WRITE_ERRORS})
async def post_followup(body: FollowupIn, request: Request, principal: Writer,
                        idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """Log a follow-up (interaction) on a visible customer; the customer's last follow-up moves forward."""
    return await write_once(request, principal, lambda conn: log_followup(conn, principal, body))
