"""Finding customers by what people type: an id, a credit code, an external id, a contact's
full mobile or e-mail, a name.

One search for every entry point (the web's search box and API, `hub profile`), so a
reference means the same thing everywhere. All user text reaches Postgres as a bound
value only. Contacts' mobiles and e-mails are stored sealed, so they are matched exactly,
through their blind index: the caller passes the function computing it (``blind_index``,
the hub's vault; this package imports nothing of the hub). A fragment of a mobile finds
nothing, by design.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

# Postgres bigint: a larger id cannot exist, and binding it would raise instead of "not found".
MAX_ID = 2**63 - 1


def parse_id(raw: str) -> int | None:
    """A positive bigint from a path segment or search text, else None."""
    raw = raw.strip()
    # a bigint has at most 19 digits; int() of a longer string is a waste, past 4300 digits an error
    if not raw.isascii() or not raw.isdigit() or len(raw) > len(str(MAX_ID)):
        return None
    value = int(raw)
    return value if 0 < value <= MAX_ID else None


def clean_query(raw: str | None) -> str:
    """Search text as Postgres can take it: NUL removed (text values cannot hold it), trimmed."""
    return (raw or "").replace("\x00", "").strip()


def like_pattern(text: str) -> str:
    """``%text%`` for ILIKE, the user's ``%`` and ``_`` taken literally."""
    # backslash is LIKE's default escape
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


BlindIndex = Callable[[str, str], str | None]  # (kind: "mobile" | "email", raw value) -> index or None


def search_customers(conn: Connection, query: str, *, limit: int = 50, blind_index: BlindIndex | None = None,
                     owner_ids: Iterable[int] | None = None, pool: bool = True) -> list[dict[str, Any]]:
    """Customers matching ``query`` by id, unified social credit code, ``SYSTEM:EXTERNAL_ID``,
    an external id of any system, a contact's full mobile or e-mail (with ``blind_index``),
    or a name fragment; exact matches first (``matched_by`` other than ``name``), then
    names, shortest first. A contact match names the contact, never the number.

    ``owner_ids`` (None: everyone's) keeps only customers owned by those users, plus,
    with ``pool``, those nobody owns: what the asker may see, applied before the limit.
    """
    query = clean_query(query)
    if not query:
        return []
    as_id = parse_id(query)
    mobile_key = email_key = None
    if blind_index is not None:
        if "@" in query:
            email_key = blind_index("email", query)
        elif sum(ch.isdigit() for ch in query) >= 7:  # a phone number, not a name
            mobile_key = blind_index("mobile", query)
    system, qualified, external = query.partition(":")
    rows = conn.execute(sa.text(
        """
        WITH hits AS (
            SELECT id AS customer_id, 0 AS rank, 'id' AS matched_by, NULL AS matched_value
              FROM customer WHERE id = :id
            UNION ALL
            SELECT id, 1, 'credit_code', credit_code FROM customer WHERE credit_code = upper(:q)
            UNION ALL
            SELECT canonical_id, 2, 'external_id', system || ' ' || external_id
              FROM external_identity
             WHERE canonical_table = 'customer' AND object = 'customer'
               AND (external_id = :q OR (:qualified AND system = :system AND external_id = :external))
            UNION ALL
            SELECT customer_id, 2, 'contact', name FROM contact
             WHERE customer_id IS NOT NULL
               AND ((CAST(:mobile_key AS text) IS NOT NULL AND mobile_hash = :mobile_key)
                    OR (CAST(:email_key AS text) IS NOT NULL AND email_hash = :email_key))
            UNION ALL
            SELECT id, 3, 'name', NULL FROM customer
             WHERE name ILIKE :pat OR normalized_name ILIKE :pat
        ), best AS (
            SELECT DISTINCT ON (customer_id) customer_id, rank, matched_by, matched_value
              FROM hits ORDER BY customer_id, rank
        )
        SELECT c.id, c.name, c.credit_code, c.region, c.industry, u.name AS owner,
               b.matched_by, b.matched_value
          FROM best b
          JOIN customer c ON c.id = b.customer_id
          LEFT JOIN internal_user u ON u.id = c.owner_id
         WHERE :everyone OR c.owner_id = ANY(CAST(:owners AS bigint[])) OR (:pool AND c.owner_id IS NULL)
         ORDER BY b.rank, length(c.name), c.id
         LIMIT :limit
        """), {"id": as_id or 0, "q": query, "pat": like_pattern(query), "limit": limit,
               "qualified": bool(qualified), "system": system, "external": external,
               "mobile_key": mobile_key, "email_key": email_key,
               "everyone": owner_ids is None, "owners": sorted(owner_ids or ()), "pool": pool})
    return [dict(r._mapping) for r in rows]
