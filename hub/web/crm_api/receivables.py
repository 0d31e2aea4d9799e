"""Receivables for finance and the CRM: ``GET /api/receivables`` (open bills, filtered and
paged) and ``GET /api/overdue-customers`` (per customer and currency: amount overdue, bills,
days past due of the oldest). Both need the ``view_finance`` capability and apply the
caller's customer visibility: finance sees every customer, sales their own, managers their
team's, IT nothing (no capability). Amounts are never summed across currencies.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Query, Request
from pydantic import BaseModel

from canonical_model.search import MAX_ID
from hub.access.visibility import customer_condition
from hub.web.crm_api.common import (
    MAX_PAGE,
    READ_ERRORS,
    FinanceViewer,
    api_router,
    reading,
    today,
)
from hub.web.crm_api.fields import IsoDate
from hub.web.crm_api.sql import inline

router = api_router("receivables")
CurrencyParam = Annotated[str | None, Query(pattern=r"^[A-Z]{3}$", description="ISO 4217 code")]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"rows per page (at most {MAX_PAGE})")]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]


class ReceivableOut(BaseModel):
    """One open receivable bill (应收单)."""

    id: int
    customer_id: int
    customer_name: str
    bill_number: str
    bill_date: dt.date
    due_date: dt.date
    currency: str
    amount: Decimal
    open_amount: Decimal
    days_overdue: int
    status: str | None
    source_system: str
    external_id: str
    fetched_at: dt.datetime


class ReceivablePage(BaseModel):
    """One page of receivables; ``next_offset`` is null on the last page."""

    items: list[ReceivableOut]
    as_of: dt.date
    next_offset: int | None


class OverdueCustomer(BaseModel):
    """A customer's overdue receivables in one currency."""

    customer_id: int
    customer_name: str
    owner_id: int | None
    currency: str
    overdue_amount: Decimal
    overdue_bills: int
    max_days_overdue: int
    oldest_due_date: dt.date


class OverduePage(BaseModel):
    """One page of overdue customers, largest amount first."""

    items: list[OverdueCustomer]
    as_of: dt.date
    next_offset: int | None


@router.get("/api/receivables", response_model=ReceivablePage, responses=READ_ERRORS)
def list_receivables(
    request: Request, principal: FinanceViewer,
    customer_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    overdue_only: Annotated[bool, Query(description="only bills past their due date")] = False,
    currency: CurrencyParam = None,
    due_from: Annotated[IsoDate | None, Query(description="due on or after, YYYY-MM-DD")] = None,
    due_to: Annotated[IsoDate | None, Query(description="due on or before, YYYY-MM-DD")] = None,
    as_of: Annotated[IsoDate | None, Query(description="count days overdue as of, YYYY-MM-DD (default today)")] = None,
    limit: Limit = 100, offset: Offset = 0,
) -> ReceivablePage:
    """Open receivable bills the caller may see, earliest due first."""
    day = as_of or today(request)
    where = ["r.open_amount > 0"]
    params: dict[str, Any] = {"d": day, "limit": limit + 1, "offset": offset}
    for name, value, clause in (("customer_id", customer_id, "r.customer_id = :customer_id"),
                                ("currency", currency, "r.currency = :currency"),
                                ("due_from", due_from, "r.due_date >= :due_from"),
                                ("due_to", due_to, "r.due_date <= :due_to")):
        if value is not None:
            where.append(clause)
            params[name] = value
    if overdue_only:
        where.append("r.due_date < :d")
    with reading(request) as conn:
        where.append(inline(conn, customer_condition(conn, principal, _owner())))
        rows = conn.execute(sa.text(
            "SELECT r.id, r.customer_id, c.name AS customer_name, r.bill_number, r.bill_date, r.due_date, r.currency, "
            "r.amount, r.open_amount, GREATEST(:d - r.due_date, 0) AS days_overdue, r.status, r.source_system, "
            "r.external_id, r.fetched_at FROM receivable r JOIN customer c ON c.id = r.customer_id "
            "WHERE " + " AND ".join(where) + " ORDER BY r.due_date, r.id LIMIT :limit OFFSET :offset"), params).all()
    return ReceivablePage(items=[ReceivableOut(**r._mapping) for r in rows[:limit]], as_of=day,
                          next_offset=offset + limit if len(rows) > limit else None)


@router.get("/api/overdue-customers", response_model=OverduePage, responses=READ_ERRORS)
def list_overdue_customers(
    request: Request, principal: FinanceViewer,
    currency: CurrencyParam = None,
    min_days: Annotated[int, Query(ge=1, le=100_000, description="only bills at least this many days past due")] = 1,
    as_of: Annotated[IsoDate | None, Query(description="as of, YYYY-MM-DD (default today)")] = None,
    limit: Limit = 100, offset: Offset = 0,
) -> OverduePage:
    """Customers with overdue receivables, per currency, largest overdue amount first."""
    day = as_of or today(request)
    params: dict[str, Any] = {"d": day, "min_days": min_days, "limit": limit + 1, "offset": offset}
    where = ["r.open_amount > 0", ":d - r.due_date >= :min_days"]
    if currency is not None:
        where.append("r.currency = :currency")
        params["currency"] = currency
    with reading(request) as conn:
        where.append(inline(conn, customer_condition(conn, principal, _owner())))
        rows = conn.execute(sa.text(
            "SELECT c.id AS customer_id, c.name AS customer_name, c.owner_id, r.currency, "
            "sum(r.open_amount) AS overdue_amount, count(*) AS overdue_bills, max(:d - r.due_date) AS max_days_overdue, "
            "min(r.due_date) AS oldest_due_date FROM receivable r JOIN customer c ON c.id = r.customer_id "
            "WHERE " + " AND ".join(where) + " GROUP BY c.id, c.name, c.owner_id, r.currency "
            "ORDER BY overdue_amount DESC, c.id, r.currency LIMIT :limit OFFSET :offset"), params).all()
    return OverduePage(items=[OverdueCustomer(**r._mapping) for r in rows[:limit]], as_of=day,
                       next_offset=offset + limit if len(rows) > limit else None)


def _owner() -> sa.ColumnElement[int | None]:
    return sa.column("owner_id", sa.BigInteger, _selectable=sa.table("c"))
