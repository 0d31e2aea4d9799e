"""Finance's receivables report (``/reports/receivables``, capability ``view_finance_reports``).

Across every customer, each currency on its own (amounts of different currencies are never
added up), read from the summary :mod:`hub.ar_summary` rebuilds after each receivable or
receipt sync: the figures are as of that rebuild, aged for its business date (hub timezone);
the page shows both (数据截至 … · 汇总计算于 …). Before the first rebuild the page says so.

- aging by bucket: open amounts per currency in the buckets of the customer profile
  (:data:`canonical_model.profile.AGING_COLUMNS`, the one definition of the buckets);
- top overdue customers: per currency the customers with the most overdue, linking to their
  profiles, ten a page (``?top_page=``);
- DSO trend, monthly for the last 12 months: DSO = open receivables at month end ÷ credit
  sales of the last 90 days × 90, where open at month end = receivable bills issued up to
  the month end − receipts up to the month end (the hub keeps each bill's open amount as of
  now, not as of a past day, so the past balance comes from the ledger identity), and credit
  sales = bills issued in the 90 days up to the month end; the current month ends on the
  summary's date;
- customers over their credit limit: open receivables in the customer's own currency above
  ``customer.credit_limit`` (credit used exactly as on the profile), fifty a page (``?over_page=``).

``GET /reports/receivables.csv?table=aging|top_overdue|over_limit|dso`` and
``GET /reports/receivables.xlsx`` (all four as sheets) export the same figures (the top ten
overdue per currency, every customer over the limit)
(:mod:`hub.web.exports`); every export is in the audit log with the acting person.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.engine import Connection

from canonical_model.profile import AGING_BUCKETS, aging_of
from hub.access import Capability, Principal
from hub.ar_summary import SNAPSHOT
from hub.audit import write_audit
from hub.web.auth import require
from hub.web.charts import Bar, bar_chart, line_chart
from hub.web.exports import csv_bytes, xlsx_bytes
from hub.web.i18n import Labels
from hub.web.reports import ReportContext
from hub.web.reports.forms import actor_of

PATH = "/reports/receivables"
TOP_PER_CURRENCY = 10  # a page of each currency's top overdue list
OVER_LIMIT_PAGE = 50
DSO_MONTHS = 12
DSO_WINDOW_DAYS = 90
TABLES = ("aging", "top_overdue", "over_limit", "dso")

# Every figure comes from the summary tables (hub.ar_summary), rebuilt after each ledger
# sync: the page reads ~one row per customer and currency, never the 500,000 bills.
_SNAPSHOT = sa.text("SELECT as_of, refreshed_at FROM report_snapshot WHERE name = :n")

_AGING = sa.text("""
    SELECT currency, sum(open_amount) AS open_amount, sum(overdue) AS overdue, sum(not_due) AS not_due,
           sum(b1_30) AS b1_30, sum(b31_60) AS b31_60, sum(b61_90) AS b61_90, sum(bover_90) AS bover_90,
           sum(open_bills) AS bills, count(*) AS customers
    FROM ar_customer_balance GROUP BY currency ORDER BY currency
""")

# one page (ranks :offset+1 … :offset+:top) of each currency's list, with the list's length
_TOP_OVERDUE = sa.text("""
    SELECT ranked.customer_id, c.name, ranked.currency, ranked.overdue, ranked.oldest_days, ranked.total
    FROM (SELECT customer_id, currency, overdue, oldest_days,
                 row_number() OVER (PARTITION BY currency ORDER BY overdue DESC, customer_id) AS rank,
                 count(*) OVER (PARTITION BY currency) AS total
          FROM ar_customer_balance WHERE overdue > 0) ranked
    JOIN customer c ON c.id = ranked.customer_id
    WHERE ranked.rank > :offset AND ranked.rank <= :offset + :top ORDER BY ranked.currency, ranked.rank
""")

_OVER_LIMIT = sa.text("""
    SELECT c.id AS customer_id, c.name, c.currency, c.credit_limit, b.open_amount AS used,
           b.open_amount - c.credit_limit AS over_by, count(*) OVER () AS total
    FROM customer c JOIN ar_customer_balance b ON b.customer_id = c.id AND b.currency = c.currency
    WHERE c.credit_limit IS NOT NULL AND b.open_amount > c.credit_limit
    ORDER BY c.currency, b.open_amount - c.credit_limit DESC, c.id
    LIMIT :limit OFFSET :offset
""")

# One row per (currency, month) of the last DSO_MONTHS months, the current month ending :d;
# the sums run over the per-day ledger (a few rows per currency and day), one pass.
_DSO = sa.text("""
    WITH ends AS (
        SELECT m::date AS month, LEAST((m + interval '1 month' - interval '1 day')::date, CAST(:d AS date)) AS month_end
        FROM generate_series(date_trunc('month', CAST(:d AS date)) - make_interval(months => :months - 1),
                             date_trunc('month', CAST(:d AS date)), interval '1 month') AS m
    ), currencies AS (SELECT currency FROM ar_daily GROUP BY currency HAVING sum(bills) > 0)
    SELECT cur.currency, e.month, e.month_end,
           COALESCE(sum(d.billed) FILTER (WHERE d.day <= e.month_end), 0)
         - COALESCE(sum(d.received) FILTER (WHERE d.day <= e.month_end), 0) AS open_at_end,
           COALESCE(sum(d.billed) FILTER (WHERE d.day > e.month_end - :window AND d.day <= e.month_end), 0) AS sales_90
    FROM currencies cur CROSS JOIN ends e LEFT JOIN ar_daily d ON d.currency = cur.currency AND d.day <= e.month_end
    GROUP BY cur.currency, e.month, e.month_end ORDER BY cur.currency, e.month
""")


def dso(open_at_end: Decimal, sales: Decimal, window_days: int = DSO_WINDOW_DAYS) -> Decimal | None:
    """Days sales outstanding, one decimal; None without credit sales in the window."""
    if sales <= 0:
        return None
    return (open_at_end / sales * window_days).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def receivables_data(conn: Connection, *, top_page: int = 1, over_page: int = 1, whole: bool = False
                     ) -> dict[str, Any]:
    """The report's four tables from the summary, as of its date (one statement each, and one
    for the snapshot): a page of each capped list (top overdue per currency, over the credit
    limit), or with ``whole`` the exports' tables (top 10 per currency, every customer over
    the limit). No summary yet: empty tables and ``as_of`` None."""
    snapshot = conn.execute(_SNAPSHOT, {"n": SNAPSHOT}).first()
    if snapshot is None:
        return {"as_of": None, "refreshed_at": None, "aging": [], "top_overdue": [], "top_total": 0,
                "over_limit": [], "over_total": 0, "dso": {}}
    as_of = snapshot.as_of
    aging = [{"currency": r.currency, "open_amount": r.open_amount, "overdue": r.overdue,
              "buckets": aging_of(r), "bills": r.bills, "customers": r.customers} for r in conn.execute(_AGING)]
    top_first = 0 if whole else (top_page - 1) * TOP_PER_CURRENCY
    top = [dict(r._mapping) for r in conn.execute(_TOP_OVERDUE, {"offset": top_first, "top": TOP_PER_CURRENCY})]
    over_first = 0 if whole else (over_page - 1) * OVER_LIMIT_PAGE
    over = [dict(r._mapping) for r in conn.execute(_OVER_LIMIT, {"limit": None if whole else OVER_LIMIT_PAGE,
                                                                  "offset": over_first})]
    trend: dict[str, list[dict[str, Any]]] = {}
    for r in conn.execute(_DSO, {"d": as_of, "months": DSO_MONTHS, "window": DSO_WINDOW_DAYS}):
        trend.setdefault(r.currency, []).append({"month": r.month.strftime("%Y-%m"), "month_end": r.month_end,
                                                 "open_at_end": r.open_at_end, "sales_90": r.sales_90,
                                                 "dso": dso(r.open_at_end, r.sales_90)})
    return {"as_of": as_of, "refreshed_at": snapshot.refreshed_at, "aging": aging, "top_overdue": top,
            # the longest currency list decides whether there is a next page
            "top_total": max((int(r["total"]) for r in top), default=0), "over_limit": over,
            "over_total": int(over[0]["total"]) if over else 0, "dso": trend}


def export_tables(data: dict[str, Any], t: Labels) -> dict[str, tuple[str, list[str], list[list[Any]]]]:
    """The report's tables as (sheet title, header, rows), the figures as on the page."""
    buckets = [t(f"ar_{b}") for b in AGING_BUCKETS]
    return {
        "aging": (t("ar_aging"), [t("currency"), t("ar_open"), t("ar_overdue"), *buckets, t("ar_bills"),
                                  t("ar_customers_n")],
                  [[a["currency"], a["open_amount"], a["overdue"], *(a["buckets"][b] for b in AGING_BUCKETS),
                    a["bills"], a["customers"]] for a in data["aging"]]),
        "top_overdue": (t("ar_top_overdue"), ["id", t("ar_customer"), t("currency"), t("ar_overdue"),
                                              t("ar_oldest_days")],
                        [[r["customer_id"], r["name"], r["currency"], r["overdue"], r["oldest_days"]]
                         for r in data["top_overdue"]]),
        "over_limit": (t("ar_over_limit"), ["id", t("ar_customer"), t("currency"), t("ar_credit_limit"),
                                            t("ar_credit_used"), t("ar_over_by")],
                       [[r["customer_id"], r["name"], r["currency"], r["credit_limit"], r["used"], r["over_by"]]
                        for r in data["over_limit"]]),
        "dso": (t("ar_dso"), [t("currency"), t("ar_month"), t("ar_month_end"), t("ar_open_at_end"),
                              t("ar_sales_90"), t("ar_dso_days")],
                [[currency, m["month"], m["month_end"].isoformat(), m["open_at_end"], m["sales_90"], m["dso"]]
                 for currency, months in data["dso"].items() for m in months]),
    }


def add_routes(router: APIRouter, ctx: ReportContext) -> None:
    """The report page and its two exports."""
    finance = require(Capability.VIEW_FINANCE_REPORTS)
    t = ctx.labels

    def read(**pages: Any) -> dict[str, Any]:
        with ctx.reading() as conn:
            return receivables_data(conn, **pages)

    def audited(principal: Principal, fmt: str, table: str, rows: int) -> None:
        with ctx.db.engine.begin() as conn:
            write_audit(conn, actor=actor_of(principal), system="hub", operation=f"export:receivables:{fmt}",
                        key=f"report:receivables:{table}", outcome="exported", detail={"table": table, "rows": rows})

    def download(body: bytes, media: str, filename: str) -> Response:
        return Response(body, media_type=media, headers={
            "Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff"})

    @router.get(PATH, include_in_schema=False, response_class=HTMLResponse)
    def receivables_page(principal: Principal = finance, top_page: int = Query(1, ge=1, le=100_000),
                         over_page: int = Query(1, ge=1, le=100_000)) -> HTMLResponse:
        """The receivables report (a page of each capped list)."""
        data = read(top_page=top_page, over_page=over_page)
        aging_charts = {a["currency"]: bar_chart([Bar(t(f"ar_{b}"), float(a["buckets"][b]),
                                                      flagged=b == "over_90" and a["buckets"][b] > 0)
                                                  for b in AGING_BUCKETS], title=f"{t('ar_aging')} {a['currency']}")
                        for a in data["aging"]}
        dso_charts = {currency: line_chart([(m["month"], float(m["dso"] or 0)) for m in months],
                                           title=f"{t('ar_dso')} {currency}")
                      for currency, months in data["dso"].items()}
        return ctx.page("report_receivables.html", title=t("receivables"), principal=principal, t=t,
                        buckets=AGING_BUCKETS, aging_charts=aging_charts, dso_charts=dso_charts, top_page=top_page,
                        over_page=over_page, top_size=TOP_PER_CURRENCY, over_size=OVER_LIMIT_PAGE, **data)

    @router.get(f"{PATH}.csv", include_in_schema=False)
    def receivables_csv(principal: Principal = finance, table: str = "aging") -> Response:
        """One of the report's tables as CSV (UTF-8 with BOM, formulas neutralised)."""
        if table not in TABLES:
            raise HTTPException(400, f"table must be one of {', '.join(TABLES)}")
        data = read(whole=True)
        _, header, rows = export_tables(data, t)[table]
        audited(principal, "csv", table, len(rows))
        return download(csv_bytes(header, rows), "text/csv; charset=utf-8",
                        f"receivables-{table}-{data['as_of'] or 'none'}.csv")

    @router.get(f"{PATH}.xlsx", include_in_schema=False)
    def receivables_xlsx(principal: Principal = finance) -> Response:
        """The report's four tables as one workbook."""
        data = read(whole=True)
        sheets = export_tables(data, t)
        audited(principal, "xlsx", "all", sum(len(rows) for _, _, rows in sheets.values()))
        return download(xlsx_bytes(list(sheets.values())),
                        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                        f"receivables-{data['as_of'] or 'none'}.xlsx")
