"""ERP salespeople are the hub's users: customers that exist only in an ERP get an owner.

Kingdee (``BD_Saler``) and YonBIP (staff) keep their own salesperson records, and an ERP
customer names one of them as its owner (``FSELLER``, ``professSalesman``). The hub's owners
are internal users (the CRM's people, matched to the chat directories). Before an ERP's
customers are synced, :func:`link_erp_salespeople` links each ERP salesperson to the internal
user who is that person, as an ``external_identity`` row (system, ``salesperson``, ERP code →
internal user), which the customer merge then resolves owners through
(``hub.engine.targets``). Matching, strongest first:

1. mobile (normalized), then e-mail — YonBIP staff carry them; matched through their blind
   indexes (``hub.vault``: the store holds them sealed);
2. the name, when exactly one active internal user has it — Kingdee's ``BD_Saler`` carries
   only number and name. Two users with one name are an ambiguity a person resolves: the
   salesperson stays unlinked and is counted.

A link once made is kept (it may have been corrected by hand). When a pass links someone
new, that ERP's customers without an owner are read once more in full (their cursor and
content hashes are reset), so customers synced before their salesperson was known get their
owner too.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hub.contracts import ConnectorSpec, Salesperson
from hub.runtime import HubRuntime, before_stream
from hub.vault import vault_for

log = logging.getLogger(__name__)


@dataclass
class SalespersonLinks:
    """What one linking pass did."""

    seen: int = 0
    linked: int = 0
    already_linked: int = 0
    ambiguous: int = 0
    unmatched: int = 0


def link_erp_salespeople(conn: Connection, system: str, salespeople: Iterable[Salesperson]) -> SalespersonLinks:
    """Link ``system``'s salespeople to internal users (module doc); returns the counts."""
    counts = SalespersonLinks()
    vault = vault_for(conn)
    users = conn.execute(sa.text("SELECT id, name, mobile_hash, email_hash, active FROM internal_user")).all()
    by_mobile = {u.mobile_hash: u.id for u in users if u.mobile_hash}
    by_email = {u.email_hash: u.id for u in users if u.email_hash}
    by_name: dict[str, list[int]] = {}
    for user in users:
        if user.active:
            by_name.setdefault(user.name.strip(), []).append(user.id)
    linked = set(conn.execute(sa.text(
        "SELECT external_id FROM external_identity WHERE system = :s AND object = 'salesperson'"),
        {"s": system}).scalars())
    for person in salespeople:
        counts.seen += 1
        if person.ref in linked:
            counts.already_linked += 1
            continue
        named = by_name.get(person.name.strip(), [])
        user_id = (by_mobile.get(vault.blind_index("mobile", person.mobile) or "")
                   or by_email.get(vault.blind_index("email", person.email) or "")
                   or (named[0] if len(named) == 1 else None))
        if user_id is None:
            counts.ambiguous += len(named) > 1
            counts.unmatched += len(named) <= 1
            continue
        conn.execute(sa.text(
            "INSERT INTO external_identity (system, object, external_id, canonical_table, canonical_id) "
            "VALUES (:s, 'salesperson', :ref, 'internal_user', :u) ON CONFLICT (system, object, external_id) DO NOTHING"),
            {"s": system, "ref": person.ref, "u": user_id})
        linked.add(person.ref)
        counts.linked += 1
    return counts


def reread_ownerless_customers(conn: Connection, spec: ConnectorSpec[Any, Any]) -> int:
    """Make the next customer sync of ``spec`` re-apply its customers that have no owner:
    their content hashes and the customer streams' cursors are cleared. Returns how many."""
    cleared = conn.execute(sa.text(
        "UPDATE external_identity e SET content_hash = NULL FROM customer c WHERE e.system = :s "
        "AND e.object = 'customer' AND e.canonical_id = c.id AND c.owner_id IS NULL AND e.content_hash IS NOT NULL"),
        {"s": spec.system}).rowcount
    streams = [s.name for s in spec.streams if s.target == "customer"]
    conn.execute(sa.text("DELETE FROM sync_cursor WHERE connector = :s AND stream = ANY(:names)"),
                 {"s": spec.system, "names": streams})
    return int(cleared or 0)


def link_before_customer_sync(runtime: HubRuntime, spec: ConnectorSpec[Any, Any], client: Any) -> None:
    """Before an ERP's customers are synced: link its salespeople to internal users."""
    if spec.salespeople is None:
        return
    people = list(spec.salespeople(client))
    with runtime.db.begin() as conn:
        counts = link_erp_salespeople(conn, spec.system, people)
        reread = reread_ownerless_customers(conn, spec) if counts.linked else 0
    log.info("%s: %d salespeople linked to users (%d already, %d ambiguous, %d unmatched); %d ownerless customers "
             "to re-read", spec.system, counts.linked, counts.already_linked, counts.ambiguous, counts.unmatched, reread)


before_stream("customer", link_before_customer_sync)
