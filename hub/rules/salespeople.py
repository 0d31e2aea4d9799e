"""ERP salespeople are the hub's users: customers that exist only in an ERP get an owner.

Kingdee (``BD_Saler``) and YonBIP (staff) keep their own salesperson records, and an ERP
customer names one of them as its owner (``FSELLER``, ``professSalesman``). The hub's owners
are internal users (the CRM's people, matched to the chat directories). Before an ERP's
customers are synced, :func:`link_erp_salespeople` links each ERP salesperson to the internal
user who is that person, as an ``external_identity`` row (system, ``salesperson``, ERP code →
internal user), which the customer merge then resolves owners through
(``hub.engine.targets``; the customer's ``field_sources["owner_id"]`` then names the ERP
record the owner came from). Matching, strongest first; the first rule that finds anyone
decides:

1. the employee number (工号: ``internal_user.employee_number``, which the DingTalk directory
   fills from ``job_number`` and the WeCom directory from a custom attribute);
2. the mobile (normalized), then the e-mail — YonBIP staff carry them;
3. the name, when it is an active internal user's — Kingdee's ``BD_Saler`` carries only
   number and name.

A rule that finds two or more people is an ambiguity a person resolves: the salesperson
stays unlinked and an ``identity_conflict`` row (object ``salesperson``) names the
candidates; it is never a guess. When a stronger rule links and a weaker one (mobile,
e-mail) points at someone else, the link stands and the disagreement is recorded too.

A link once made is kept (it may have been corrected by hand), and its open conflicts are
closed. When a pass links someone new, that ERP's customers without an owner are read once
more in full (their cursor and content hashes are reset), so customers synced before their
salesperson was known get their owner too.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hub.contracts import ConnectorSpec, Salesperson
from hub.identity import normalize_email, normalize_mobile
from hub.runtime import HubRuntime, before_stream

log = logging.getLogger(__name__)

# The identity rules, strongest first (module doc).
RULES = ("employee_number", "mobile", "email", "name")


@dataclass
class SalespersonLinks:
    """What one linking pass did (``linked_by``: how many each rule linked)."""

    seen: int = 0
    linked: int = 0
    already_linked: int = 0
    ambiguous: int = 0
    unmatched: int = 0
    disagreements: int = 0
    linked_by: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Match:
    """What the rules make of one salesperson: the user, or the ambiguous rule's candidates."""

    user_id: int | None
    rule: str | None
    candidates: tuple[int, ...] = ()
    disagreeing: dict[str, int] | None = None  # weaker rule -> the other user it points at


def _index(users: Iterable[Any], key: str, *, active_only: bool = False) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for user in users:
        value = getattr(user, key)
        if value and (user.active or not active_only):
            found.setdefault(str(value).strip(), []).append(int(user.id))
    return found


def match_salesperson(person: Salesperson, indexes: dict[str, dict[str, list[int]]]) -> Match:
    """Apply :data:`RULES` to one salesperson (pure; ``indexes`` per rule: key → user ids)."""
    keys = {
        "employee_number": (person.employee_number or "").strip() or None,
        "mobile": normalize_mobile(person.mobile),
        "email": normalize_email(person.email),
        "name": person.name.strip() or None,
    }
    for position, rule in enumerate(RULES):
        key = keys[rule]
        found = indexes[rule].get(key, []) if key else []
        if not found:
            continue
        if len(found) > 1:
            return Match(None, rule, tuple(sorted(found)))
        chosen = found[0]
        others: dict[str, int] = {}
        for weaker in RULES[position + 1:]:
            weaker_key = keys[weaker]
            other = indexes[weaker].get(weaker_key, []) if weaker_key and weaker != "name" else []
            if len(other) == 1 and other[0] != chosen:
                others[weaker] = other[0]
        return Match(chosen, rule, (chosen,), others or None)
    return Match(None, None)


def _conflict(conn: Connection, system: str, person: Salesperson, reason: str, chosen: int | None,
              candidates: Iterable[int], message: str) -> None:
    """An ``identity_conflict`` row about one ERP salesperson (candidates are internal users)."""
    users = sorted(set(candidates))
    conn.execute(sa.text(
        "INSERT INTO identity_conflict (system, object, external_id, reason, chosen_customer_id, "
        "candidate_customer_ids, detail) VALUES (:s, 'salesperson', :ref, :reason, NULL, CAST(:none AS bigint[]), "
        "CAST(:detail AS jsonb)) ON CONFLICT (system, object, external_id, reason) DO UPDATE SET "
        "detail = EXCLUDED.detail, status = 'open'"),
        {"s": system, "ref": person.ref, "reason": reason, "none": [],
         "detail": json.dumps({"message": message, "candidate_user_ids": users, "chosen_user_id": chosen,
                               "salesperson_name": person.name}, ensure_ascii=False)})


def link_erp_salespeople(conn: Connection, system: str, salespeople: Iterable[Salesperson]) -> SalespersonLinks:
    """Link ``system``'s salespeople to internal users (module doc); returns the counts."""
    counts = SalespersonLinks()
    users = conn.execute(sa.text(
        "SELECT id, name, mobile, email, employee_number, active FROM internal_user")).all()
    indexes = {
        "employee_number": _index(users, "employee_number"),
        "mobile": _index(users, "mobile"),
        "email": _index(users, "email"),
        "name": _index(users, "name", active_only=True),
    }
    linked = set(conn.execute(sa.text(
        "SELECT external_id FROM external_identity WHERE system = :s AND object = 'salesperson'"),
        {"s": system}).scalars())
    for person in salespeople:
        counts.seen += 1
        if person.ref in linked:
            counts.already_linked += 1
            continue
        match = match_salesperson(person, indexes)
        if match.user_id is None:
            if match.rule is None:
                counts.unmatched += 1
                continue
            counts.ambiguous += 1
            ids = ", ".join(f"#{u}" for u in match.candidates)
            _conflict(conn, system, person, f"ambiguous_salesperson_{match.rule}", None, match.candidates,
                      f"{system} salesperson {person.ref} {person.name}: {len(match.candidates)} internal users "
                      f"share its {match.rule.replace('_', ' ')} ({ids}); link one by hand")
            continue
        conn.execute(sa.text(
            "INSERT INTO external_identity (system, object, external_id, canonical_table, canonical_id) "
            "VALUES (:s, 'salesperson', :ref, 'internal_user', :u) ON CONFLICT (system, object, external_id) DO NOTHING"),
            {"s": system, "ref": person.ref, "u": match.user_id})
        conn.execute(sa.text(
            "UPDATE identity_conflict SET status = 'resolved' WHERE system = :s AND object = 'salesperson' "
            "AND external_id = :ref AND status = 'open' AND reason LIKE 'ambiguous_salesperson_%'"),
            {"s": system, "ref": person.ref})
        rule = match.rule or "?"
        for weaker, other in (match.disagreeing or {}).items():
            counts.disagreements += 1
            _conflict(conn, system, person, f"salesperson_{rule}_and_{weaker}_disagree", match.user_id,
                      (match.user_id, other),
                      f"{system} salesperson {person.ref} {person.name}: linked to user #{match.user_id} by "
                      f"{rule.replace('_', ' ')}, but its {weaker} is user #{other}'s")
        linked.add(person.ref)
        counts.linked += 1
        counts.linked_by[rule] = counts.linked_by.get(rule, 0) + 1
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
