"""What the sales report pages share: their filters (owner, team, region, period), the
principal's scope as SQL, the filter form's choices, and per-currency amounts.

A salesperson's reports cover their own customers and leads, a manager's their team's
(``hub.access.visibility``: the same rule as every page), admin's everything. The scope
becomes three bind parameters (``all``, ``owners``, ``pool``) of the condition
:data:`OWNER_SCOPE`, so each page stays one SQL statement per figure set.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from fastapi import HTTPException
from sqlalchemy.engine import Connection

from hub.access import Principal
from hub.access.visibility import scope_of
from hub.web import formatting as fmt

# {col}: the owner column of the rows being counted. VISIBLE is the principal's scope,
# OWNER_SCOPE adds the owner and team filters (NULL when unset).
VISIBLE = ("(CAST(:all_rows AS boolean) OR {col} = ANY(CAST(:owners AS bigint[])) "
           "OR (CAST(:pool AS boolean) AND {col} IS NULL))")
OWNER_SCOPE = (VISIBLE + " AND (CAST(:owner AS bigint) IS NULL OR {col} = :owner) "
               "AND (CAST(:team AS text) IS NULL OR {col} IN (SELECT id FROM internal_user WHERE department = :team))")


@dataclass(frozen=True)
class Filters:
    """The filters of a report page as the query string gave them (checked)."""

    owner: int | None = None
    team: str | None = None  # internal_user.department
    region: str | None = None
    start: dt.date | None = None
    end: dt.date | None = None  # inclusive

    def query(self, **extra: Any) -> str:
        """The filters as a query string (links keep them)."""
        from urllib.parse import urlencode
        pairs = {"owner": self.owner, "team": self.team, "region": self.region,
                 "from": self.start.isoformat() if self.start else None,
                 "to": self.end.isoformat() if self.end else None, **extra}
        return urlencode({k: v for k, v in pairs.items() if v not in (None, "")})


def _date(text: str, name: str) -> dt.date | None:
    if not text.strip():
        return None
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise HTTPException(400, f"{name}: not a date (YYYY-MM-DD): {text[:40]!r}") from None


def parse_filters(owner: str, team: str, region: str, start: str = "", end: str = "") -> Filters:
    """Filters from the query string; a malformed value is a 400 naming the parameter."""
    owner_id: int | None = None
    if owner.strip():
        # isascii: str.isdigit also takes "²" and "１２", which int() refuses or reads as 12
        if not (owner.strip().isascii() and owner.strip().isdigit()) or len(owner.strip()) > 18:
            raise HTTPException(400, f"owner: not a user id: {owner[:40]!r}")
        owner_id = int(owner)
    for name, value in (("team", team), ("region", region)):
        if len(value) > 200:
            raise HTTPException(400, f"{name}: longer than 200 characters")
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):  # NUL cannot even reach Postgres
            raise HTTPException(400, f"{name}: control characters are not allowed")
    first, last = _date(start, "from"), _date(end, "to")
    if first and last and first > last:
        raise HTTPException(400, f"from ({first}) is after to ({last})")
    return Filters(owner_id, team.strip() or None, region.strip() or None, first, last)


def scope_params(conn: Connection, principal: Principal, filters: Filters) -> dict[str, Any]:
    """Bind parameters of :data:`OWNER_SCOPE` for ``principal`` and ``filters``."""
    scope = scope_of(conn, principal)
    return {"all_rows": scope.all_customers, "owners": sorted(scope.owner_ids), "pool": scope.pool,
            "owner": filters.owner, "team": filters.team}


@dataclass(frozen=True)
class Choices:
    """The filter form's options: the people, teams and regions the principal sees."""

    owners: list[tuple[int, str]]
    teams: list[str]
    regions: list[str]


def choices(conn: Connection, params: dict[str, Any], region_table: str) -> Choices:
    """The people the principal's scope covers, their teams and the regions of ``region_table``
    (``customer`` or ``lead``) rows they own: one statement."""
    rows = conn.execute(sa.text(
        "SELECT 'o' AS k, u.id, u.name AS v FROM internal_user u WHERE " + VISIBLE.format(col="u.id")
        + " UNION ALL SELECT DISTINCT 't', CAST(NULL AS bigint), u.department FROM internal_user u WHERE u.department IS NOT NULL "
        "AND " + VISIBLE.format(col="u.id")
        + f" UNION ALL (SELECT DISTINCT 'r', CAST(NULL AS bigint), s.region FROM {region_table} s WHERE s.region IS NOT NULL AND "
        + VISIBLE.format(col="s.owner_id") + " LIMIT 200) ORDER BY 1, 3"), params).all()
    return Choices([(r.id, r.v) for r in rows if r.k == "o"], [r.v for r in rows if r.k == "t"],
                   [r.v for r in rows if r.k == "r"])


@dataclass
class Money:
    """Amounts per currency (never added across currencies: there is no rate table)."""

    by_currency: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))

    def add(self, currency: str, amount: Decimal) -> None:
        """Add ``amount`` of ``currency``."""
        self.by_currency[currency] += amount

    def text(self) -> str:
        """``CNY 1,234.00 · USD 10.00``, or ``—`` when empty."""
        return " · ".join(f"{cur} {fmt.money(v)}" for cur, v in sorted(self.by_currency.items())) or "—"


def month_bounds(month: dt.date) -> tuple[dt.date, dt.date]:
    """The first day of ``month`` and of the month after."""
    first = month.replace(day=1)
    after = (first + dt.timedelta(days=32)).replace(day=1)
    return first, after


def period_bounds(start: dt.date, end: dt.date, timezone: str) -> tuple[dt.datetime, dt.datetime]:
    """The instants from ``start`` 00:00 to the day after ``end`` 00:00 in ``timezone``."""
    zone = ZoneInfo(timezone)
    return (dt.datetime.combine(start, dt.time(), zone),
            dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), zone))
