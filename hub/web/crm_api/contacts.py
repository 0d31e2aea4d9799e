"""``POST /api/contacts``: the CRM upserts a contact person (with title and decision role,
决策链) under a customer the caller sees, keyed by the CRM's contact id.

Mobiles and e-mails are personal data: they are written by :func:`store_contact_personal_data`
and nowhere else in the API, so protecting them at rest is a change of one function. They
are normalized the way the sync engine stores contacts (mobiles as digits without +86,
e-mails lower-cased), so identity resolution by mobile matches across sources.
"""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.engine import Connection

from canonical_model.models import Contact
from hub.access import Principal
from hub.identity import normalize_email
from hub.vault import vault_for
from hub.web.crm_api.common import (
    CRM,
    WRITE_ERRORS,
    CustomerRef,
    IdempotencyKey,
    Writer,
    api_router,
    field_error,
    not_found,
    owner_of,
    principal_scope,
    visible_customer,
)
from hub.web.crm_api.fields import Fits, Text
from hub.web.idempotency import Answer
from hub.web.writes import audit_write, write_once

router = api_router("contacts")


class ContactIn(CustomerRef):
    """A person at the customer."""

    external_id: Annotated[Text, Fits(Contact.external_id), Field(min_length=1)] = Field(
        description="The CRM's id of the contact: repeats update the same contact")
    name: Annotated[Text, Fits(Contact.name), Field(min_length=1)]
    title: Annotated[Text, Fits(Contact.title)] | None = Field(None, description="Job title, e.g. 采购经理")
    decision_role: Annotated[Text, Fits(Contact.decision_role)] | None = Field(
        None, description="Place in the decision chain (决策链), e.g. 决策者 / 影响者 / 使用者")
    mobile: Annotated[Text, Fits(Contact.mobile), Field(pattern=r"^\+?[0-9][0-9 \-]{4,30}$")] | None = None
    email: Annotated[Text, Fits(Contact.email), Field(pattern=r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")] | None = None


class ContactWritten(BaseModel):
    """The contact as stored."""

    id: int
    external_id: str
    customer_id: int
    created: bool
    name: str
    title: str | None
    decision_role: str | None


def store_contact_personal_data(conn: Connection, contact_id: int, *, mobile: str | None, email: str | None) -> None:
    """Write a contact's mobile and e-mail: normalized, sealed, with their blind indexes
    (``hub.vault``). The one place the API writes them."""
    sealed = vault_for(conn).protect("contact", mobile=mobile, email=email)
    conn.execute(sa.text("UPDATE contact SET mobile = :mobile, mobile_hash = :mobile_hash, email = :email, "
                         "email_hash = :email_hash WHERE id = :id"), {**sealed, "id": contact_id})


def upsert_contact(conn: Connection, principal: Principal, body: ContactIn) -> Answer:
    """The write of ``POST /api/contacts``, in the caller's transaction."""
    scope = principal_scope(conn, principal)
    customer_id = visible_customer(conn, scope, body)
    if body.email is not None and normalize_email(body.email) is None:
        raise field_error(["email"], "not an e-mail address")
    existing = conn.execute(sa.text(
        "SELECT id, customer_id FROM contact WHERE source_system = :s AND external_id = :x FOR UPDATE"),
        {"s": CRM, "x": body.external_id}).first()
    if existing is not None and existing.customer_id is not None and existing.customer_id != customer_id:
        exists, owner = owner_of(conn, existing.customer_id)
        if exists and not scope.sees_owner(owner):  # moving someone else's contact is touching their customer
            raise not_found("contact", repr(body.external_id))
    values = {"c": customer_id, "n": body.name, "t": body.title, "r": body.decision_role, "s": CRM,
              "x": body.external_id, "o": principal.user_id}
    row = conn.execute(sa.text(
        "INSERT INTO contact (customer_id, name, title, decision_role, owner_id, source_system, external_id) "
        "VALUES (:c, :n, :t, :r, :o, :s, :x) ON CONFLICT (source_system, external_id) DO UPDATE SET "
        "customer_id = EXCLUDED.customer_id, name = EXCLUDED.name, title = EXCLUDED.title, "
        "decision_role = EXCLUDED.decision_role, fetched_at = now() RETURNING id, (xmax = 0) AS created"),
        values).one()
    store_contact_personal_data(conn, row.id, mobile=body.mobile, email=body.email)
    audit_write(conn, principal, operation="contact:create" if row.created else "contact:update", table="contact",
                record_id=row.id, detail={"external_id": body.external_id, "customer_id": customer_id})
    out = ContactWritten(id=row.id, external_id=body.external_id, customer_id=customer_id, created=row.created,
                         name=body.name, title=body.title, decision_role=body.decision_role)
    return Answer(201 if row.created else 200, out.model_dump(mode="json"))


@router.post("/api/contacts", response_model=ContactWritten, status_code=201,
             responses={200: {"model": ContactWritten, "description": "An existing contact was updated"},
                        **WRITE_ERRORS})
async def post_contact(body: ContactIn, request: Request, principal: Writer,
                       idempotency_key: IdempotencyKey = None) -> JSONResponse:
    """Upsert a contact (title, decision role, mobile, e-mail) by the CRM's id under a visible customer."""
    return await write_once(request, principal, lambda conn: upsert_contact(conn, principal, body))
