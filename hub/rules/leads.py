"""Leads (线索) in: one capture for every source, de-duplicated by identity rules.

Sources: the CRM's API (``POST /api/leads``, upsert by the CRM's id), the public web form
(``POST /forms/lead``) and chat contacts that match no customer (:func:`leads_from_unmatched_contacts`,
after a WeCom/DingTalk contact stream). Each arrives as a :class:`LeadInput` and goes
through :func:`capture_lead`, which finds what it already is, strongest rule first:

1. the same record again: (source system, external id), including ids earlier merged into
   another lead (``external_identity`` object ``lead``);
2. an existing lead with the unified social credit code (checksum-valid), then the same
   normalized company name (``hub.identity.normalize_company_name``, as customers use), then
   the same mobile — a duplicate updates that lead (empty fields filled, nothing blanked)
   and its id is remembered as an alias of it;
3. an existing customer by the same rules (contacts' mobiles) — the lead is linked to the
   customer and goes to the customer's owner (or the pool);
4. otherwise a new lead, assigned by the rule table (``hub.rules.lead_assignment``).

The answer says which (``outcome``: created, updated, duplicate, linked_to_customer) and
by which rule. Mobile and e-mail are read and written in :func:`contact_columns` and
:func:`leads_with_mobile` / :func:`customers_with_mobile` only (personal data: one place
to encrypt them).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hub.audit import write_audit
from hub.engine.quarantine import stored_record
from hub.identity import (
    credit_code_problem,
    normalize_company_name,
    normalize_credit_code,
)
from hub.rules.lead_assignment import Assignment, assign_lead, assign_to, close_followups
from hub.rules.people import resolve_active_user_ref
from hub.settings import LeadSettings
from hub.stages import record_stage_change
from hub.vault import vault_for

log = logging.getLogger(__name__)

UNMATCHED_CONTACT = "corp_name: no customer matches"  # the contact target's quarantine reason


@dataclass(frozen=True)
class LeadInput:
    """One lead as a source delivers it (already validated for shape)."""

    source_system: str  # crm, web_form, wecom, dingtalk
    external_id: str
    company_name: str
    channel: str
    credit_code: str | None = None
    region: str | None = None
    industry: str | None = None
    contact_name: str | None = None
    mobile: str | None = None
    email: str | None = None
    estimated_amount: Decimal | None = None
    stage: str | None = None
    last_contacted_at: dt.datetime | None = None
    owner_ref: str | None = None  # a chat contact's following rep (user ref), when known


@dataclass
class Capture:
    """What :func:`capture_lead` did: the lead, and whether it was new, a duplicate or a customer's."""

    lead_id: int
    outcome: str  # created | updated | duplicate | linked_to_customer
    matched_by: str | None = None  # same_record | credit_code | name | mobile
    customer_id: int | None = None
    assignment: Assignment | None = None
    notes: list[str] = field(default_factory=list)

    def answer(self, conn: Connection) -> dict[str, Any]:
        """The API's answer: what happened and the lead as it now stands."""
        row = conn.execute(sa.text(
            "SELECT id, status, owner_id, assigned_rule, customer_id, pool_since FROM lead WHERE id = :id"),
            {"id": self.lead_id}).one()
        return {"id": row.id, "outcome": self.outcome, "matched_by": self.matched_by, "status": row.status,
                "owner_id": row.owner_id, "assigned_rule": row.assigned_rule, "customer_id": row.customer_id,
                "pool_since": row.pool_since, "notes": self.notes}


# --- personal data: every read and write of lead.mobile / lead.email is here ----------------

def contact_columns(conn: Connection, mobile: str | None, email: str | None) -> dict[str, str | None]:
    """The lead's stored mobile and e-mail columns for the given values: normalized, sealed,
    and their blind indexes beside them (``hub.vault``)."""
    return vault_for(conn).protect("lead", mobile=mobile, email=email)


def leads_with_mobile(conn: Connection, mobile: str | None) -> list[int]:
    """Valid leads with this mobile (matched by its blind index), oldest first."""
    key = vault_for(conn).blind_index("mobile", mobile)
    if not key:
        return []
    return list(conn.execute(sa.text(
        "SELECT id FROM lead WHERE mobile_hash = :m AND status <> 'invalid' ORDER BY id"), {"m": key}).scalars())


def customers_with_mobile(conn: Connection, mobile: str | None) -> list[int]:
    """Customers one of whose contacts has this mobile (matched by its blind index)."""
    key = vault_for(conn).blind_index("mobile", mobile)
    if not key:
        return []
    return list(conn.execute(sa.text(
        "SELECT DISTINCT customer_id FROM contact WHERE mobile_hash = :m AND customer_id IS NOT NULL ORDER BY 1"),
        {"m": key}).scalars())


# --- identity -------------------------------------------------------------------------------

def _same_record(conn: Connection, data: LeadInput) -> int | None:
    found = conn.execute(sa.text("SELECT id FROM lead WHERE source_system = :s AND external_id = :x"),
                         {"s": data.source_system, "x": data.external_id}).scalar()
    if found is None:
        found = conn.execute(sa.text(
            "SELECT canonical_id FROM external_identity WHERE system = :s AND object = 'lead' AND external_id = :x"),
            {"s": data.source_system, "x": data.external_id}).scalar()
    return int(found) if found is not None else None


def _existing_lead(conn: Connection, code: str | None, name_key: str, mobile: str | None) -> tuple[int, str] | None:
    if code:
        found = conn.execute(sa.text(
            "SELECT id FROM lead WHERE credit_code = :c AND status <> 'invalid' ORDER BY id LIMIT 1"), {"c": code}).scalar()
        if found is not None:
            return int(found), "credit_code"
    if name_key:
        found = conn.execute(sa.text(
            "SELECT id FROM lead WHERE normalized_name = :n AND status <> 'invalid' ORDER BY id LIMIT 1"),
            {"n": name_key}).scalar()
        if found is not None:
            return int(found), "name"
    by_mobile = leads_with_mobile(conn, mobile)
    return (by_mobile[0], "mobile") if by_mobile else None


def _existing_customer(conn: Connection, code: str | None, name_key: str,
                       mobile: str | None) -> tuple[int, str] | None:
    if code:
        found = conn.execute(sa.text("SELECT id FROM customer WHERE credit_code = :c"), {"c": code}).scalar()
        if found is not None:
            return int(found), "credit_code"
    if name_key:
        named = conn.execute(sa.text("SELECT id FROM customer WHERE normalized_name = :n LIMIT 2"),
                             {"n": name_key}).scalars().all()
        if len(named) == 1:
            return int(named[0]), "name"
    by_mobile = customers_with_mobile(conn, mobile)
    return (by_mobile[0], "mobile") if len(by_mobile) == 1 else None


def valid_credit_code(raw: str | None) -> tuple[str | None, str | None]:
    """The normalized code when it is valid, else None and why."""
    code = normalize_credit_code(raw)
    if code is None:
        return None, None
    problem = credit_code_problem(code)
    return (None, problem) if problem else (code, None)


# --- capture --------------------------------------------------------------------------------

_UPDATABLE = ("company_name", "credit_code", "region", "industry", "contact_name", "mobile", "mobile_hash", "email",
              "email_hash", "estimated_amount", "stage")


def capture_lead(conn: Connection, data: LeadInput, settings: LeadSettings, *, actor: str,
                 now: dt.datetime | None = None) -> Capture:
    """Take one lead in (module doc); assigns a new one. Runs in the caller's transaction."""
    now = now or dt.datetime.now(dt.UTC)
    code, problem = valid_credit_code(data.credit_code)
    notes = [f"credit_code ignored: {problem}"] if problem else []
    name_key = normalize_company_name(data.company_name)
    # one capture per company at a time: two posts of one lead cannot both create it
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"lead:{name_key}"})
    values: dict[str, Any] = {
        "company_name": data.company_name.strip()[:300], "normalized_name": name_key[:300], "credit_code": code,
        "region": data.region, "industry": data.industry, "contact_name": data.contact_name,
        **contact_columns(conn, data.mobile, data.email), "estimated_amount": data.estimated_amount,
        "stage": data.stage, "channel": data.channel,
    }
    lead_id = _same_record(conn, data)
    matched_by = "same_record" if lead_id is not None else None
    if lead_id is None and (found := _existing_lead(conn, code, name_key, data.mobile)) is not None:
        lead_id, matched_by = found
    if lead_id is not None:
        _update_lead(conn, lead_id, values, data, actor=actor, now=now)
        if matched_by != "same_record":
            conn.execute(sa.text(
                "INSERT INTO external_identity (system, object, external_id, canonical_table, canonical_id) "
                "VALUES (:s, 'lead', :x, 'lead', :id) ON CONFLICT (system, object, external_id) DO NOTHING"),
                {"s": data.source_system, "x": data.external_id, "id": lead_id})
        if data.last_contacted_at is not None:
            _followed_up(conn, lead_id, data.last_contacted_at)
        outcome = "updated" if matched_by == "same_record" else "duplicate"
        write_audit(conn, actor=actor, system="hub", operation=f"lead:{outcome}", outcome="ok", key=f"lead:{lead_id}",
                    external_id=data.external_id[:200], detail={"matched_by": matched_by, "source": data.source_system})
        return Capture(lead_id, outcome, matched_by, notes=notes)

    customer = _existing_customer(conn, code, name_key, values["mobile"])
    lead_id = int(conn.execute(sa.text(
        "INSERT INTO lead (company_name, normalized_name, credit_code, region, industry, contact_name, mobile, email, "
        "channel, estimated_amount, stage, source_system, external_id, customer_id, last_contacted_at, created_at) "
        "VALUES (:company_name, :normalized_name, :credit_code, :region, :industry, :contact_name, :mobile, :email, "
        ":channel, :estimated_amount, COALESCE(:stage, '潜在客户'), :s, :x, :customer_id, :contacted, :now) "
        "RETURNING id"),
        {**values, "s": data.source_system, "x": data.external_id, "now": now,
         "customer_id": customer[0] if customer else None, "contacted": data.last_contacted_at}).scalar_one())
    record_stage_change(conn, "lead", lead_id, None, data.stage or "潜在客户", at=now, source=data.source_system,
                        actor=actor)
    write_audit(conn, actor=actor, system="hub", operation="lead:created", outcome="ok", key=f"lead:{lead_id}",
                external_id=data.external_id[:200], detail={"source": data.source_system, "channel": data.channel})
    if customer is not None:
        owner = conn.execute(sa.text("SELECT owner_id FROM customer WHERE id = :id"), {"id": customer[0]}).scalar()
        assignment = assign_to(conn, lead_id, owner, "customer_owner", settings, actor=actor, now=now)
        return Capture(lead_id, "linked_to_customer", customer[1], customer[0], assignment, notes)
    follower = resolve_active_user_ref(conn, data.owner_ref) if data.owner_ref else None
    if follower is not None:
        assignment = assign_to(conn, lead_id, follower, "chat_follow_user", settings, actor=actor, now=now)
    else:
        assignment = assign_lead(conn, lead_id, settings, actor=actor, now=now)
    return Capture(lead_id, "created", None, None, assignment, notes)


def _update_lead(conn: Connection, lead_id: int, values: Mapping[str, Any], data: LeadInput, *, actor: str,
                 now: dt.datetime) -> None:
    # a newer record fills what the lead lacks and corrects what it says; it never blanks a field
    sets = ", ".join(f"{c} = COALESCE(:{c}, l.{c})" for c in _UPDATABLE)
    # the stage before the update comes from the locked row, so the history sees the change
    changed = conn.execute(sa.text(
        f"WITH before AS (SELECT id, stage FROM lead WHERE id = :id FOR UPDATE) "
        f"UPDATE lead l SET {sets}, normalized_name = :normalized_name, fetched_at = now() FROM before "
        f"WHERE l.id = before.id RETURNING before.stage AS before, l.stage AS after"),
        {**{c: values.get(c) for c in _UPDATABLE}, "normalized_name": values["normalized_name"], "id": lead_id}).one()
    record_stage_change(conn, "lead", lead_id, changed.before, changed.after, at=now, source=data.source_system,
                        actor=actor)


def _followed_up(conn: Connection, lead_id: int, at: dt.datetime) -> None:
    """A follow-up happened: the clock that returns the lead to the pool stops, its first
    follow-up task is done."""
    conn.execute(sa.text("UPDATE lead SET last_contacted_at = GREATEST(last_contacted_at, :at) WHERE id = :id"),
                 {"at": at, "id": lead_id})
    close_followups(conn, lead_id, "done")


# --- chat contacts that match no customer --------------------------------------------------

def lead_from_contact(record: Any, system: str) -> LeadInput:
    """A chat platform's contact (a ``ContactRecord``) as a lead: the company it names, or,
    for a personal WeChat user without one, the person's name; the following rep as owner ref."""
    company = (record.corp_name or "").strip() or record.name
    return LeadInput(source_system=system, external_id=record.external_id, company_name=company, channel=system,
                     contact_name=record.name, mobile=record.mobile, email=record.email,
                     owner_ref=f"{system}:{record.owner_ref}" if record.owner_ref else None)


def leads_from_unmatched_contacts(conn: Connection, system: str, stream: Any, settings: LeadSettings,
                                  *, now: dt.datetime | None = None) -> dict[str, int]:
    """Every open quarantined contact of ``system``'s ``stream`` that matched no customer
    becomes (or updates) a lead with channel ``system``. The quarantine row stays open: the
    contact still has no customer, and `hub quarantine retry` links it once it has one."""
    counts = {"seen": 0, "created": 0, "updated": 0, "duplicate": 0, "linked_to_customer": 0}
    found = conn.execute(sa.text(
        "SELECT id, payload, payload_text FROM quarantine WHERE system = :s AND stream = :st AND status = 'open' "
        "AND reason LIKE :r ORDER BY id"), {"s": system, "st": stream.name, "r": UNMATCHED_CONTACT + "%"}).all()
    for row in found:
        try:
            record = stream.map_record(stored_record(row.payload, row.payload_text, vault_for(conn)))
        except (ValueError, TypeError, KeyError):
            continue  # it maps no longer: the quarantine says why
        counts["seen"] += 1
        capture = capture_lead(conn, lead_from_contact(record, system), settings, actor=f"rule:leads:{system}",
                               now=now)
        counts[capture.outcome] += 1
    return counts


__all__ = ["Capture", "LeadInput", "capture_lead", "contact_columns", "customers_with_mobile", "lead_from_contact",
           "leads_from_unmatched_contacts", "leads_with_mobile", "valid_credit_code"]
