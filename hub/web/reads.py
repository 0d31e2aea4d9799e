"""What a principal may read through the pages and the API: one rule for both.

- :func:`visible_profile` — the 360° profile of a customer the principal sees (None, a
  404, for one it does not: existence is not revealed), with personal data masked
  unless the principal may see it; an unmasked read is written to the audit log, one
  row per read naming the customer and the principal.
- :func:`visible_search` — search (a contact's full mobile or e-mail included, by blind
  index), filtered by the same visibility before the limit.
- :func:`visible_task` — a task whose customer the principal sees; a task without a
  customer is visible to its assignee, their managers, and those who see all customers.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from canonical_model.profile import Profile, customer_profile
from canonical_model.search import search_customers
from hub.access import Capability, Principal
from hub.access.masking import has_personal_data, mask_record, mask_records
from hub.access.visibility import can_see_customer, scope_of
from hub.audit import write_audit
from hub.vault.display import blind_index_for, reveal_for


def unmasked(principal: Principal) -> bool:
    """Whether ``principal`` sees personal data in clear (of the customers it sees at all)."""
    return principal.can(Capability.SEE_PERSONAL_DATA)


def visible_profile(conn: Connection, principal: Principal, customer_id: int, as_of: dt.date) -> Profile | None:
    """The profile of ``customer_id`` as ``principal`` may see it, or None (unknown or not visible)."""
    if not can_see_customer(conn, principal, customer_id):
        return None
    # personal values opened (hub.vault), then masked below for whoever may not see them
    profile = customer_profile(conn, customer_id, as_of=as_of, reveal=reveal_for(conn))
    if profile is None or unmasked(principal):
        return profile
    return profile.model_copy(update={
        "contacts": mask_records(profile.contacts),
        "owner": mask_record(profile.owner) if profile.owner else None,
    })


def personal_fields_shown(profile: Profile) -> int:
    """How many personal-data values the profile shows (contacts' and the owner's)."""
    rows = [*profile.contacts, *([profile.owner] if profile.owner else [])]
    return sum(1 for r in rows if has_personal_data(r))


def audit_unmasked_read(engine: Engine, principal: Principal, profile: Profile, channel: str) -> None:
    """One audit row for a read that showed personal data in clear (own transaction: a read
    is on record even though the read itself changes nothing)."""
    if not unmasked(principal):
        return
    shown = personal_fields_shown(profile)
    if not shown:
        return
    with engine.begin() as conn:
        write_audit(conn, actor=principal.actor, system="hub", operation="personal_data.read", outcome="ok",
                    key=f"customer:{profile.customer['id']}",
                    detail={"principal": principal.ref, "channel": channel, "records": shown})


def visible_search(conn: Connection, principal: Principal, query: str, *, limit: int = 50) -> list[dict[str, Any]]:
    """Search hits the principal may see (visibility applied before ``limit``)."""
    scope = scope_of(conn, principal)
    owners = None if scope.all_customers else scope.owner_ids
    return search_customers(conn, query, limit=limit, blind_index=blind_index_for(conn), owner_ids=owners,
                            pool=scope.pool)


def visible_task(conn: Connection, principal: Principal, task: dict[str, Any]) -> bool:
    """Whether ``principal`` may see ``task`` (a row of :func:`hub.web.queries.task_detail`)."""
    if task.get("customer_id") is not None:
        return can_see_customer(conn, principal, int(task["customer_id"]))
    scope = scope_of(conn, principal)
    if scope.all_customers:
        return True
    assignee = conn.execute(sa.text("SELECT assignee_id FROM task WHERE id = :id"), {"id": task["id"]}).scalar()
    return assignee is not None and assignee in scope.owner_ids
