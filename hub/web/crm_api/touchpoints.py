"""``POST /api/touchpoints``: marketing touchpoints (营销触点): a quote or campaign opened, a
link clicked, a webinar attended; keyed by the CRM's (or the marketing tool's) event id, so
an event delivered twice is recorded once."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.engine import Connection

from canonical_model.models import Contact, Touchpoint
from hub.access import Principal
from hub.web.crm_api.common import (
    WRITE_ERRORS,
    CustomerRef,
    IdempotencyKey,
    Writer,
    api_router,
    contact_of,
    principal_scope,
    upsert_row,
    visible_customer,
)
from hub.web.crm_api.fields import Fits, IsoDatetime, Text
from hub.web.idempotency import Answer
from hub.web.writes import audit_write, write_once

router = api_router("touchpoints")
MAX_DETAIL_CHARS = 20_000


class TouchpointIn(CustomerRef):
    """One marketing event about a customer."""

    external_id: Annotated[Text, Fits(Touchpoint.external_id), Field(min_length=1)] = Field(
        description="The event's id: a repeat updates the same touchpoint")
    kind: Literal["quote_opened", "campaign_opened", "link_clicked", "webinar_attended"]
    occurred_at: IsoDatetime
    campaign: Annotated[Text, Fits(Touchpoint.campaign)] | None = None
    url: Annotated[Text, Fits(Touchpoint.url), Field(pattern=r"^https?://\S+$")] | None = None
    detail: Annotated[Text, Fits(Touchpoint.detail), Field(max_length=MAX_DETAIL_CHARS)] | None = None
    contact_external_id: Annotated[Text, Fits(Contact.external_id), Field(min_length=1)] | None = None


class TouchpointWritten(BaseModel):
    """The touchpoint as stored."""

    id: int
    external_id: str
    customer_id: int
    created: bool
    kind: str


def upsert_touchpoint(conn: Connection, principal: Principal, body: TouchpointIn) -> Answer:
    """The write of ``POST /api/touchpoints``."""
    scope = principal_scope(conn, principal)
    customer_id = visible_customer(conn, scope, body)
    contact_id = contact_of(conn, customer_id, body.contact_external_id)
    touchpoint_id, created = upsert_row(conn, scope, "touchpoint", body.external_id, {
        "customer_id": customer_id, "contact_id": contact_id, "kind": body.kind, "occurred_at": body.occurred_at,
        "campaign": body.campaign, "url": body.url, "detail": body.detail})
    audit_write(conn, principal, operation="touchpoint:create" if created else "touchpoint:update",
                table="touchpoint", record_id=touchpoint_id, detail={"external_id": body.external_id,
                                                                      "kind": body.kind})
    out = TouchpointWritten(id=touchpoint_id, external_id=body.external_id, customer_id=customer_id,
                            created=created, kind=body.kind)
    return Answer(201 if created else 200, out.model_dump(mode="json"))


@router.post("/api/touchpoints", response_model=TouchpointWritten, status_code=201,
             responses={200: {"model": TouchpointWritten, "description": "The event was recorded already"},
                        **WRITE_ERRORS})
async def post_touchpoint(body: TouchpointIn, request: Request, principal: Writer,
                          idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """Record a marketing touchpoint on the customer's timeline."""
    return await write_once(request, principal, lambda conn: upsert_touchpoint(conn, principal, body))
