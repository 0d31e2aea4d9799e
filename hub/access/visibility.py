"""Which customers a principal sees: the one ownership rule pages, API and search share.

- sales see the customers they own;
- managers also the customers owned by anyone who reports to them, directly or through
  other managers (``internal_user.manager_id``, from the chat directories' department
  leaders), and the public pool (公海池: customers nobody owns), which they hand out;
- finance, admin and the CRM see every customer; IT sees none.

:func:`customer_condition` is the condition on ``customer`` rows every listing applies,
so a search, a list endpoint and a profile page cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hub.access.principal import Principal
from hub.access.roles import Capability, Role

_TEAM = sa.text("""
    WITH RECURSIVE team(id) AS (
        SELECT CAST(:me AS bigint)
        UNION
        SELECT u.id FROM internal_user u JOIN team t ON u.manager_id = t.id
    )
    SELECT id FROM team LIMIT 100000
""")


@dataclass(frozen=True)
class Scope:
    """What one principal sees: everything, nothing, or the customers of ``owner_ids``."""

    all_customers: bool
    owner_ids: frozenset[int]
    pool: bool  # customers without an owner

    def condition(self, owner_column: sa.ColumnElement[int | None]) -> sa.ColumnElement[bool]:
        """A SQL condition on a customer's owner column that keeps what this scope sees."""
        if self.all_customers:
            return sa.true()
        clauses = []
        if self.owner_ids:
            clauses.append(owner_column.in_(sorted(self.owner_ids)))
        if self.pool:
            clauses.append(owner_column.is_(None))
        return sa.or_(*clauses) if clauses else sa.false()

    def sees_owner(self, owner_id: int | None) -> bool:
        """Whether a customer owned by ``owner_id`` (None: the pool) is visible."""
        if self.all_customers:
            return True
        return self.pool if owner_id is None else owner_id in self.owner_ids


def team_of(conn: Connection, user_id: int) -> frozenset[int]:
    """``user_id`` and everyone reporting to them, at any depth."""
    return frozenset(conn.execute(_TEAM, {"me": user_id}).scalars())


def scope_of(conn: Connection, principal: Principal) -> Scope:
    """The customers ``principal`` may see."""
    if not principal.can(Capability.VIEW_CUSTOMERS):
        return Scope(all_customers=False, owner_ids=frozenset(), pool=False)
    if principal.sees_all_customers:
        return Scope(all_customers=True, owner_ids=frozenset(), pool=True)
    if principal.user_id is None:
        return Scope(all_customers=False, owner_ids=frozenset(), pool=False)
    if principal.role is Role.MANAGER:
        return Scope(all_customers=False, owner_ids=team_of(conn, principal.user_id), pool=True)
    return Scope(all_customers=False, owner_ids=frozenset({principal.user_id}), pool=False)


def customer_condition(conn: Connection, principal: Principal,
                       owner_column: sa.ColumnElement[int | None] | None = None) -> sa.ColumnElement[bool]:
    """The condition on ``customer.owner_id`` (or ``owner_column``) for ``principal``."""
    column: sa.ColumnElement[int | None] = (owner_column if owner_column is not None
                                            else sa.column("owner_id", sa.BigInteger))
    return scope_of(conn, principal).condition(column)


def can_see_customer(conn: Connection, principal: Principal, customer_id: int) -> bool:
    """Whether ``principal`` may see customer ``customer_id`` (False when it does not exist)."""
    row = conn.execute(sa.text("SELECT owner_id FROM customer WHERE id = :id"), {"id": customer_id}).first()
    return row is not None and scope_of(conn, principal).sees_owner(row.owner_id)
