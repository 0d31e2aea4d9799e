"""A small SQL helper of the list endpoints."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def inline(conn: Connection, clause: sa.ColumnElement[bool]) -> str:
    """``clause`` as SQL text with its values inline, for joining into a ``sa.text`` query.

    Only for conditions built by :mod:`hub.access.visibility`: their values are owner ids
    (integers read from the database), never request text, which always stays a bound
    parameter.
    """
    return "(" + str(clause.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})) + ")"
