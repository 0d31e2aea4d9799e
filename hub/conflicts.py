"""Identity conflicts resolved by a person: merge the record into a customer, or keep it apart.

Identity resolution (:mod:`hub.identity`) never merges on its own: when two rules disagree
it links the record somewhere safe (its earlier link, or a new golden record) and writes an
``identity_conflict`` row. IT decides on the operations page:

- **keep apart** — the records are different companies (or people): the conflict is closed
  with who and when; no data changes.
- **merge** — the record *is* the chosen candidate. For a customer record, its
  ``external_identity`` is repointed to the chosen customer (the next sync of that system
  then lands there), and the rows that record's system brought to the customer it was linked
  to so far (receivables, orders, contacts… of that ``source_system``) move with it. Rows
  of other systems stay where they are; no row and no customer is deleted (the customer the
  record leaves keeps its golden fields and its other identities). The record's own values
  (``external_identity.source_values``) then take part in the chosen customer's golden fields
  at once, by survivorship (:func:`hub.survivorship.settle_customer`). For an ERP
  salesperson, merge links it to the chosen internal user, as
  :func:`hub.rules.salespeople.link_erp_salespeople` does for an unambiguous match.

Either way the conflict row keeps the decision (``resolution``, ``resolved_by``,
``resolved_at``) and, for a merge, what changed (``resolution_detail``: customer before and
after, the ids of the moved rows per table), and one audit row names the acting user.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hub.ar_summary import refresh_receivables_summary
from hub.audit import write_audit
from hub.engine.links import hold_customer_links
from hub.errors import HubError, NotFoundError
from hub.survivorship import settle_customer

Decision = Literal["merge", "keep_apart"]
DECISIONS: tuple[Decision, ...] = ("merge", "keep_apart")

# Tables whose rows belong to one customer and name the system they came from (the rows a
# record's system brought along move with the record on a merge).
_MOVABLE_TABLES = sa.text("""
    SELECT c.table_name FROM information_schema.columns c
    JOIN information_schema.columns s ON s.table_schema = c.table_schema AND s.table_name = c.table_name
         AND s.column_name = 'source_system'
    JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
         AND t.table_type = 'BASE TABLE'
    WHERE c.table_schema = current_schema() AND c.column_name = 'customer_id'
    ORDER BY c.table_name
""")


class ConflictResolutionError(HubError):
    """A resolution that cannot be applied (already resolved, target not a candidate…)."""


@dataclass(frozen=True)
class Resolved:
    """What a resolution did."""

    conflict_id: int
    decision: Decision
    detail: dict[str, Any]


def resolve_conflict(conn: Connection, conflict_id: int, decision: str, *, actor: str,
                     target_id: int | None = None) -> Resolved:
    """Resolve open conflict ``conflict_id`` with ``decision`` (module docstring), as ``actor``.

    ``target_id`` is the candidate to merge into (a customer id, or an internal user id for
    a salesperson); required for a merge, ignored otherwise. Raises NotFoundError for no
    such open conflict and ConflictResolutionError for a decision that cannot apply; in
    both cases nothing is written.
    """
    if decision not in DECISIONS:
        raise ConflictResolutionError(f"identity conflict {conflict_id}: unknown decision {decision!r} "
                                      f"(one of {', '.join(DECISIONS)})")
    row = conn.execute(sa.text(
        "SELECT id, system, object, external_id, reason, chosen_customer_id, candidate_customer_ids, detail "
        "FROM identity_conflict WHERE id = :id AND status = 'open' FOR UPDATE"), {"id": conflict_id}).first()
    if row is None:
        raise NotFoundError(f"no open identity conflict {conflict_id}")
    detail: dict[str, Any] = {}
    if decision == "merge":
        if target_id is None:
            raise ConflictResolutionError(f"identity conflict {conflict_id}: a merge needs the candidate to merge into")
        if row.object == "customer":
            detail = _merge_customer_record(conn, row, target_id)
        elif row.object == "salesperson":
            detail = _link_salesperson(conn, row, target_id)
        else:
            raise ConflictResolutionError(f"identity conflict {conflict_id}: cannot merge a {row.object!r} record")
    conn.execute(sa.text(
        "UPDATE identity_conflict SET status = 'resolved', resolution = :d, resolved_by = :by, resolved_at = now(), "
        "resolution_detail = CAST(:detail AS jsonb) WHERE id = :id"),
        {"d": decision, "by": actor[:100], "detail": json.dumps(detail), "id": conflict_id})
    write_audit(conn, actor=actor[:100], system=row.system, operation=f"identity:{decision}",
                key=f"identity_conflict:{conflict_id}", external_id=row.external_id, outcome="resolved",
                detail={"reason": row.reason, "object": row.object, **detail})
    return Resolved(conflict_id, decision, detail)


def _merge_customer_record(conn: Connection, row: Any, target_id: int) -> dict[str, Any]:
    candidates = {*(row.candidate_customer_ids or ()), *([row.chosen_customer_id] if row.chosen_customer_id else [])}
    if target_id not in candidates:
        raise ConflictResolutionError(f"identity conflict {row.id}: customer {target_id} is not one of its "
                                      f"candidates {sorted(candidates)}")
    if conn.execute(sa.text("SELECT 1 FROM customer WHERE id = :id"), {"id": target_id}).first() is None:
        raise ConflictResolutionError(f"identity conflict {row.id}: customer {target_id} does not exist")
    # wait for the pages writing rows by this system's links to commit, and keep new ones
    # out until the rows have moved: a page's rows then move with the record, or the page
    # looks the link up after the merge
    hold_customer_links(conn, row.system, exclusive=True)
    identity = conn.execute(sa.text(
        "SELECT id, canonical_id FROM external_identity WHERE system = :s AND object = 'customer' "
        "AND external_id = :e FOR UPDATE"), {"s": row.system, "e": row.external_id}).first()
    if identity is None:
        raise ConflictResolutionError(f"identity conflict {row.id}: {row.system} customer {row.external_id} "
                                      "has no identity link to repoint")
    before = int(identity.canonical_id)
    moved: dict[str, list[int]] = {}
    if before != target_id:
        conn.execute(sa.text("UPDATE external_identity SET canonical_id = :t, last_seen = now() WHERE id = :id"),
                     {"t": target_id, "id": identity.id})
        for table in conn.execute(_MOVABLE_TABLES).scalars():
            # table names come from the catalogue, not from input
            ids = conn.execute(sa.text(
                f'UPDATE "{table}" SET customer_id = :t WHERE customer_id = :b AND source_system = :s RETURNING id'),
                {"t": target_id, "b": before, "s": row.system}).scalars().all()
            if ids:
                moved[table] = sorted(int(i) for i in ids)
        settle_customer(conn, target_id)
        if "receivable" in moved:
            # the receivables report's per-customer balances follow the bills, for the same date
            refresh_receivables_summary(conn)
    return {"identity_id": int(identity.id), "customer_before": before, "customer_after": target_id, "moved": moved}


def _link_salesperson(conn: Connection, row: Any, user_id: int) -> dict[str, Any]:
    candidates = set((row.detail or {}).get("candidate_user_ids") or ())
    if user_id not in candidates:
        raise ConflictResolutionError(f"identity conflict {row.id}: user {user_id} is not one of its candidates "
                                      f"{sorted(candidates)}")
    before = conn.execute(sa.text(
        "SELECT canonical_id FROM external_identity WHERE system = :s AND object = 'salesperson' AND external_id = :e"),
        {"s": row.system, "e": row.external_id}).scalar()
    conn.execute(sa.text(
        "INSERT INTO external_identity (system, object, external_id, canonical_table, canonical_id) "
        "VALUES (:s, 'salesperson', :e, 'internal_user', :u) ON CONFLICT (system, object, external_id) "
        "DO UPDATE SET canonical_id = EXCLUDED.canonical_id, last_seen = now()"),
        {"s": row.system, "e": row.external_id, "u": user_id})
    return {"user_before": before, "user_after": user_id}


__all__ = ["DECISIONS", "ConflictResolutionError", "Decision", "Resolved", "resolve_conflict"]
