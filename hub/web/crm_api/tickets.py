"""``POST /api/tickets``: service tickets (服务工单) from the CRM: inquiries, complaints and
satisfaction surveys of a visible customer, keyed by the CRM's ticket id."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, StrictInt, model_validator
from sqlalchemy.engine import Connection

from canonical_model.models import Contact, ServiceTicket
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

router = api_router("service tickets")
MAX_DETAIL_CHARS = 20_000


class TicketIn(CustomerRef):
    """A service ticket."""

    external_id: Annotated[Text, Fits(ServiceTicket.external_id), Field(min_length=1)] = Field(
        description="The CRM's id of the ticket: repeats update it")
    kind: Literal["inquiry", "complaint", "satisfaction"]
    subject: Annotated[Text, Fits(ServiceTicket.subject), Field(min_length=1)]
    detail: Annotated[Text, Fits(ServiceTicket.detail), Field(max_length=MAX_DETAIL_CHARS)] | None = None
    status: Literal["open", "resolved", "closed"] = "open"
    satisfaction: StrictInt | None = Field(None, ge=1, le=5, description="1–5, for satisfaction surveys only")
    opened_at: IsoDatetime
    closed_at: IsoDatetime | None = None
    contact_external_id: Annotated[Text, Fits(Contact.external_id), Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> TicketIn:
        if self.satisfaction is not None and self.kind != "satisfaction":
            raise ValueError("satisfaction is given only for satisfaction surveys")
        if self.closed_at is not None and self.closed_at < self.opened_at:
            raise ValueError("closed_at is before opened_at")
        return self


class TicketWritten(BaseModel):
    """The ticket as stored."""

    id: int
    external_id: str
    customer_id: int
    created: bool
    kind: str
    status: str


def upsert_ticket(conn: Connection, principal: Principal, body: TicketIn) -> Answer:
    """The write of ``POST /api/tickets``."""
    scope = principal_scope(conn, principal)
    customer_id = visible_customer(conn, scope, body)
    contact_id = contact_of(conn, customer_id, body.contact_external_id)
    ticket_id, created = upsert_row(conn, scope, "service_ticket", body.external_id, {
        "customer_id": customer_id, "contact_id": contact_id, "kind": body.kind, "subject": body.subject,
        "detail": body.detail, "status": body.status, "satisfaction": body.satisfaction,
        "opened_at": body.opened_at, "closed_at": body.closed_at})
    audit_write(conn, principal, operation="service_ticket:create" if created else "service_ticket:update",
                table="service_ticket", record_id=ticket_id,
                detail={"external_id": body.external_id, "kind": body.kind, "status": body.status})
    out = TicketWritten(id=ticket_id, external_id=body.external_id, customer_id=customer_id, created=created,
                        kind=body.kind, status=body.status)
    return Answer(201 if created else 200, out.model_dump(mode="json"))


@router.post("/api/tickets", response_model=TicketWritten, status_code=201,
             responses={200: {"model": TicketWritten, "description": "An existing ticket was updated"},
                        **WRITE_ERRORS})
async def post_ticket(body: TicketIn, request: Request, principal: Writer,
                      idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """Record or update a service ticket (inquiry, complaint, satisfaction survey)."""
    return await write_once(request, principal, lambda conn: upsert_ticket(conn, principal, body))
