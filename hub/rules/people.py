"""Naming internal users in settings: user refs, and the one place a ref becomes a user.

Settings name people (finance recipients, lead rules' owners and teams) with a ref:

- ``id:42`` — the hub's own ``internal_user.id``;
- ``employee:E0012`` — the employee number (工号);
- ``<chat platform>:<userid>`` — the person's account on a chat platform (``wecom:zhangsan``,
  ``dingtalk:manager01``), the id people see in the platform's admin console;
- ``<system>:<external id>`` — any other source of internal users (``crm:u-17``).

A ref that names nobody, or two people, resolves to None: the rule using it reports it
(:func:`describe_ref_problem`), it never picks one.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hub.engine.targets import user_id_column


def _candidates(conn: Connection, ref: str) -> list[int]:
    kind, _, value = ref.partition(":")
    value = value.strip()
    if not value:
        return []
    if kind == "id":
        if not value.isdecimal() or len(value) > 18:
            return []
        return list(conn.execute(sa.text("SELECT id FROM internal_user WHERE id = :v"), {"v": int(value)}).scalars())
    if kind == "employee":
        return list(conn.execute(sa.text("SELECT id FROM internal_user WHERE employee_number = :v ORDER BY id LIMIT 2"),
                                 {"v": value}).scalars())
    column = user_id_column(kind)
    if column is not None:
        return list(conn.execute(sa.text(f"SELECT id FROM internal_user WHERE {column} = :v"), {"v": value}).scalars())
    return list(conn.execute(sa.text(
        "SELECT id FROM internal_user WHERE source_system = :s AND external_id = :v"), {"s": kind, "v": value}).scalars())


def resolve_user_ref(conn: Connection, ref: str) -> int | None:
    """The internal user ``ref`` names (module doc), or None when it names nobody or several."""
    found = _candidates(conn, ref)
    return found[0] if len(found) == 1 else None


def resolve_active_user_ref(conn: Connection, ref: str) -> int | None:
    """As :func:`resolve_user_ref`, but only an active user (a person who left gets no work)."""
    user_id = resolve_user_ref(conn, ref)
    if user_id is None:
        return None
    active = conn.execute(sa.text("SELECT active FROM internal_user WHERE id = :id"), {"id": user_id}).scalar()
    return user_id if active else None


def describe_ref_problem(conn: Connection, ref: str) -> str:
    """Why ``ref`` resolves to no active user, in one line."""
    found = _candidates(conn, ref)
    if not found:
        return f"{ref} names no internal user"
    if len(found) > 1:
        return f"{ref} names {len(found)} internal users"
    return f"{ref} is not an active user"


__all__ = ["describe_ref_problem", "resolve_active_user_ref", "resolve_user_ref"]
