"""Customer value by RFM (客户价值分层): recency, frequency and monetary value from the ERPs'
orders and the receipts, customers sorted into eight segments; each segment links to its
customers, and each customer to their profile.

Per customer the principal sees (and the owner / team / region filters keep), in one currency
at a time (``?currency=``; amounts in different currencies are never added):

- R (recency): days from the customer's last ERP order (``sales_order`` whose source is an ERP
  connector: one that streams sales orders) to today, in the hub's timezone;
- F (frequency): ERP orders in the window (``HUB_SALES_REPORTS__RFM_MONTHS``, default 12);
- M (monetary): receipts (``receipt``, 回款) in the window.

Only customers with at least one ERP order in the currency are segmented. R is *high*
when R <= its threshold, F and M when they are >= theirs; the thresholds are the medians of
the customers shown, or configured (``HUB_SALES_REPORTS__RFM_RECENCY_DAYS`` / ``_FREQUENCY`` /
``_MONETARY``). The page shows which, and the values.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import HTMLResponse
from sqlalchemy.engine import Connection

from hub.access import Capability, Principal
from hub.registry import specs
from hub.settings import SalesReportSettings
from hub.web import charts
from hub.web.auth import require
from hub.web.reports.common import OWNER_SCOPE, choices, parse_filters, scope_params

# (R high, F high, M high) → segment; the order is the page's
SEGMENTS: dict[tuple[bool, bool, bool], str] = {
    (True, True, True): "重要价值",
    (False, True, True): "重要保持",
    (True, False, True): "重要发展",
    (False, False, True): "重要挽留",
    (True, True, False): "一般价值",
    (False, True, False): "一般保持",
    (True, False, False): "一般发展",
    (False, False, False): "一般挽留",
}
PAGE_SIZE = 200

# The customers in scope first (vis, inlined where used so the planner sees the owner filter):
# a salesperson's ~100 customers reach their orders and receipts through the
# (currency, customer) and customer indexes. For the whole company (no scope, no filter) the
# orders and receipts are aggregated without that join ({o_join}, {m_join}: see _sql): the
# result is the same, base joins vis either way.
_BASE = """
WITH vis AS NOT MATERIALIZED (
    SELECT c.id, c.name, c.owner_id FROM customer c
    WHERE (CAST(:region AS text) IS NULL OR c.region = :region) AND {scope}
), o AS (
    SELECT so.customer_id, max(so.order_date) AS last_order,
           count(*) FILTER (WHERE so.order_date >= :since) AS frequency
    FROM sales_order so {o_join}
    WHERE so.source_system = ANY(CAST(:erps AS text[])) AND so.currency = :currency
    GROUP BY so.customer_id
), m AS (
    SELECT r.customer_id, sum(r.amount) AS monetary FROM receipt r {m_join}
    WHERE r.currency = :currency AND r.receipt_date >= :since AND r.receipt_date <= :today
    GROUP BY r.customer_id
), base AS (
    SELECT vis.id, vis.name, vis.owner_id, :today - o.last_order AS recency, o.frequency,
           COALESCE(m.monetary, 0) AS monetary
    FROM vis JOIN o ON o.customer_id = vis.id LEFT JOIN m ON m.customer_id = vis.id
), th AS (
    SELECT COALESCE(CAST(:r AS numeric), percentile_cont(0.5) WITHIN GROUP (ORDER BY recency)) AS r,
           COALESCE(CAST(:f AS numeric), percentile_cont(0.5) WITHIN GROUP (ORDER BY frequency)) AS f,
           COALESCE(CAST(:m AS numeric), percentile_cont(0.5) WITHIN GROUP (ORDER BY monetary)) AS m
    FROM base
), scored AS (
    SELECT base.*, base.recency <= th.r AS r_high, base.frequency >= th.f AS f_high, base.monetary >= th.m AS m_high
    FROM base, th
)
"""
_SUMMARY = _BASE + """
SELECT s.r_high, s.f_high, s.m_high, count(*) AS customers, sum(s.monetary) AS monetary,
       (SELECT r FROM th) AS r, (SELECT f FROM th) AS f, (SELECT m FROM th) AS m
FROM scored s GROUP BY s.r_high, s.f_high, s.m_high
"""
_MEMBERS = _BASE + """
SELECT s.id, s.name, s.recency, s.frequency, s.monetary, count(*) OVER () AS total
FROM scored s WHERE s.r_high = :rh AND s.f_high = :fh AND s.m_high = :mh
ORDER BY s.monetary DESC, s.id LIMIT :limit OFFSET :offset
"""
# The ERP orders' currencies without reading every order: a loose index scan of
# ix_sales_order_rfm (one probe per distinct currency), then one probe per currency for an
# ERP's order.
_CURRENCIES = """
WITH RECURSIVE cur(c) AS (
    SELECT min(currency) FROM sales_order
    UNION ALL
    SELECT (SELECT min(currency) FROM sales_order WHERE currency > cur.c) FROM cur WHERE cur.c IS NOT NULL
)
SELECT c AS currency FROM cur
WHERE c IS NOT NULL AND EXISTS (SELECT 1 FROM sales_order o WHERE o.currency = cur.c
                                AND o.source_system = ANY(CAST(:erps AS text[])))
ORDER BY c LIMIT 50
"""


def erp_systems() -> list[str]:
    """The connectors whose streams bring sales orders in: the ERPs."""
    return sorted(spec.system for spec in specs() if any(s.target == "sales_order" for s in spec.streams))


def segment_key(name: str) -> tuple[bool, bool, bool]:
    """The (R, F, M) highs of a segment's name; unknown: 400."""
    for key, segment in SEGMENTS.items():
        if segment == name:
            return key
    raise HTTPException(400, f"segment: one of {', '.join(SEGMENTS.values())}, not {name[:20]!r}")


@dataclass(frozen=True)
class Thresholds:
    """The R, F and M thresholds used, and whether each was configured (else the median)."""

    recency: float | None
    frequency: float | None
    monetary: Decimal | None
    configured: tuple[bool, bool, bool]


@dataclass(frozen=True)
class SegmentFigures:
    """One segment: its name, how many customers, and their receipts in the window."""

    name: str
    customers: int
    monetary: Decimal


def window_start(today: dt.date, months: int) -> dt.date:
    """The first day of the RFM window: ``months`` months before ``today`` (the day of month
    kept, at most the 28th so that every month has it)."""
    year, month = divmod(today.year * 12 + today.month - 1 - months, 12)
    return dt.date(year, month + 1, min(today.day, 28))


def _bind(params: dict[str, Any], settings: SalesReportSettings, currency: str, today: dt.date,
          region: str | None) -> dict[str, Any]:
    since = window_start(today, settings.rfm_months)
    return {**params, "erps": erp_systems(), "currency": currency, "since": since, "today": today,
            "region": region, "r": settings.rfm_recency_days, "f": settings.rfm_frequency,
            "m": settings.rfm_monetary}


def _sql(template: str, bind: dict[str, Any]) -> sa.TextClause:
    """``template`` for ``bind``'s scope (see :data:`_BASE`)."""
    whole = bind["all_rows"] and bind["owner"] is None and bind["team"] is None and bind["region"] is None
    return sa.text(template.format(scope=OWNER_SCOPE.format(col="c.owner_id"),
                                   o_join="" if whole else "JOIN vis ON vis.id = so.customer_id",
                                   m_join="" if whole else "JOIN vis ON vis.id = r.customer_id"))


def rfm_summary(conn: Connection, bind: dict[str, Any], settings: SalesReportSettings
                ) -> tuple[list[SegmentFigures], Thresholds]:
    """Customers and receipts per segment, and the thresholds: one statement."""
    rows = conn.execute(_sql(_SUMMARY, bind), bind).all()
    found = {(r.r_high, r.f_high, r.m_high): r for r in rows}
    figures = [SegmentFigures(name, int(found[k].customers) if k in found else 0,
                              Decimal(found[k].monetary) if k in found else Decimal(0))
               for k, name in SEGMENTS.items()]
    first = rows[0] if rows else None
    thresholds = Thresholds(float(first.r) if first else None, float(first.f) if first else None,
                            Decimal(first.m) if first else None,
                            (settings.rfm_recency_days is not None, settings.rfm_frequency is not None,
                             settings.rfm_monetary is not None))
    return figures, thresholds


def rfm_members(conn: Connection, bind: dict[str, Any], key: tuple[bool, bool, bool], page: int
                ) -> tuple[list[Any], int]:
    """One page of a segment's customers (highest receipts first) and how many there are."""
    rows = conn.execute(_sql(_MEMBERS, bind),
                        {**bind, "rh": key[0], "fh": key[1], "mh": key[2], "limit": PAGE_SIZE,
                         "offset": (page - 1) * PAGE_SIZE}).all()
    return list(rows), int(rows[0].total) if rows else 0


def add_routes(router: APIRouter, ctx: Any) -> None:
    """``GET /reports/rfm`` and ``GET /reports/rfm/customers?segment=…``."""
    settings: SalesReportSettings = ctx.settings.sales_reports
    t = ctx.labels

    def prepare(conn: Connection, principal: Principal, owner: str, team: str, region: str,
                currency: str) -> tuple[Any, dict[str, Any], list[str], str]:
        filters = parse_filters(owner, team, region)
        params = scope_params(conn, principal, filters)
        currencies = list(conn.execute(sa.text(_CURRENCIES), {"erps": erp_systems()}).scalars())
        chosen = currency.strip().upper() or (currencies[0] if currencies else "CNY")
        if len(chosen) != 3 or not chosen.isalpha():
            raise HTTPException(400, f"currency: a three-letter code, not {currency[:10]!r}")
        return filters, _bind(params, settings, chosen, ctx.clock.today(), filters.region), currencies, chosen

    @router.get("/reports/rfm", include_in_schema=False, response_class=HTMLResponse)
    def rfm_page(principal: Principal = require(Capability.VIEW_SALES_REPORTS),
                 owner: str = Query("", max_length=20), team: str = Query("", max_length=200),
                 region: str = Query("", max_length=200), currency: str = Query("", max_length=3)) -> HTMLResponse:
        """The segments of the customers the principal sees, with the thresholds."""
        now = dt.datetime.now(dt.UTC)  # the figures are read live: "as of" is now
        with ctx.reading() as conn:
            filters, bind, currencies, chosen = prepare(conn, principal, owner, team, region, currency)
            segments, thresholds = rfm_summary(conn, bind, settings)
            options = choices(conn, bind, "customer")
        query = filters.query(currency=chosen)
        bars = [charts.Bar(s.name, s.customers, href=f"/reports/rfm/customers?segment={s.name}&{query}")
                for s in segments]
        chart = charts.bar_chart(bars, title=t("segments"))
        return ctx.page("report_rfm.html", now=now, title=t("rfm"), principal=principal, t=t, segments=segments,
                        thresholds=thresholds, chart=chart, filters=filters, options=options, query=query,
                        currencies=currencies, currency=chosen, months=settings.rfm_months)

    @router.get("/reports/rfm/customers", include_in_schema=False, response_class=HTMLResponse)
    def rfm_customers(principal: Principal = require(Capability.VIEW_SALES_REPORTS),
                      segment: str = Query(..., max_length=20), owner: str = Query("", max_length=20),
                      team: str = Query("", max_length=200), region: str = Query("", max_length=200),
                      currency: str = Query("", max_length=3), page: int = Query(1, ge=1, le=10_000)
                      ) -> HTMLResponse:
        """The customers of one segment, each linking to their profile."""
        key = segment_key(segment)
        now = dt.datetime.now(dt.UTC)  # the figures are read live: "as of" is now
        with ctx.reading() as conn:
            filters, bind, _, chosen = prepare(conn, principal, owner, team, region, currency)
            members, total = rfm_members(conn, bind, key, page)
        return ctx.page("report_rfm_customers.html", now=now, title=f"{t('rfm')} · {segment}", principal=principal, t=t,
                        segment=segment, members=members, total=total, page=page, page_size=PAGE_SIZE,
                        currency=chosen, query=filters.query(currency=chosen, segment=segment))
