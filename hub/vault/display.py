"""Personal data as the entry points show and search it: the 360° profile with mobiles and
e-mails opened (for display; masking per role is the pages' business), and customer search
that finds a contact's full mobile or e-mail through its blind index.

``canonical_model`` imports nothing of the hub, so these pass the vault in as functions.
The vault is looked up only when a value needs it, so a page without personal data never
asks for keys.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.engine import Connection

from canonical_model.profile import Profile, customer_profile
from canonical_model.search import search_customers
from hub.vault.binding import vault_for


def reveal_for(conn: Connection) -> Any:
    """A ``reveal(table, column, stored)`` opening sealed values with ``conn``'s vault."""
    def reveal(table: str, column: str, stored: Any) -> Any:
        return stored if stored is None else vault_for(conn).reveal(table, column, stored)
    return reveal


def blind_index_for(conn: Connection) -> Any:
    """A ``blind_index(kind, raw)`` computed with ``conn``'s vault."""
    def blind_index(kind: str, raw: str) -> str | None:
        return vault_for(conn).blind_index(kind, raw)
    return blind_index


def profile_for_display(conn: Connection, customer_id: int, *, as_of: dt.date | None = None) -> Profile | None:
    """The 360° profile with personal values opened (see the module docstring)."""
    return customer_profile(conn, customer_id, as_of=as_of, reveal=reveal_for(conn))


def find_customers(conn: Connection, query: str, *, limit: int = 50) -> list[dict[str, Any]]:
    """:func:`canonical_model.search.search_customers`, a contact's full mobile or e-mail included."""
    return search_customers(conn, query, limit=limit, blind_index=blind_index_for(conn))
