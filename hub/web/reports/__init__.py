"""The report pages: sales funnel, RFM, receivables, sales performance, and IT's operations page.

Server-rendered like the profile (Jinja2, inline CSS, no scripts; charts are inline SVG from
:mod:`hub.web.charts`). Each page is one module here with ``add_routes(router, ctx)``; the
figures themselves are computed by SQL in the module's query functions, kept apart from
the rendering so tests can compare them with independently written SQL.

Who sees what is a capability (:mod:`hub.access.roles`): ``view_sales_reports`` (funnel,
RFM, performance, over the customers the principal sees), ``view_finance_reports`` (the
receivables report across every customer, and its exports), ``manage_operations`` (the
operations page). ``GET /reports`` lists the pages the principal may open.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace

import sqlalchemy as sa
from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from sqlalchemy.engine import Connection

from hub.access import Capability, Principal
from hub.database import Database
from hub.settings import Settings
from hub.web import formatting as fmt
from hub.web.auth import CurrentPrincipal
from hub.web.i18n import Labels

# (path, label key, capability): the report pages, in the order the index lists them
PAGES: list[tuple[str, str, Capability]] = [
    ("/reports/funnel", "funnel", Capability.VIEW_SALES_REPORTS),
    ("/reports/rfm", "rfm", Capability.VIEW_SALES_REPORTS),
    ("/reports/performance", "performance", Capability.VIEW_SALES_REPORTS),
    ("/reports/receivables", "receivables", Capability.VIEW_FINANCE_REPORTS),
    ("/reports/operations", "operations", Capability.MANAGE_OPERATIONS),
]


@dataclass(frozen=True)
class ReportContext:
    """What a report page needs from the app: the database, settings, a read-only
    transaction, the page renderer, the labels and the clock."""

    db: Database
    settings: Settings
    reading: Callable[[], AbstractContextManager[Connection]]
    page: Callable[..., HTMLResponse]
    labels: Labels
    clock: fmt.Clock


def visible_pages(principal: Principal) -> list[tuple[str, str]]:
    """(path, label key) of the report pages ``principal`` may open."""
    return [(path, key) for path, key, capability in PAGES if principal.can(capability)]


def _tuned(reading: Callable[[], AbstractContextManager[Connection]]
           ) -> Callable[[], AbstractContextManager[Connection]]:
    """The app's read-only transaction, set up for report aggregates: no JIT compilation (at
    these sizes compiling costs 50–100 ms and saves less: measured on the funnel, issue 17),
    room to sort and hash a few hundred thousand rows in memory, and a plan for each
    execution's own parameters (psycopg prepares a statement run five times on a connection;
    a generic plan of the scope condition fits admin or a salesperson, never both: RFM admin
    p50 294 → 188 ms at load ~5). Local to the transaction, one statement.
    """

    @contextmanager
    def tuned() -> Iterator[Connection]:
        with reading() as conn:
            conn.execute(sa.text("SELECT set_config('jit', 'off', true), set_config('work_mem', '32MB', true), "
                                 "set_config('plan_cache_mode', 'force_custom_plan', true)"))
            yield conn

    return tuned


def reports_router(ctx: ReportContext) -> APIRouter:
    """The report pages' routes (added to the app with ``app.router.routes.extend``)."""
    router = APIRouter()
    ctx = replace(ctx, reading=_tuned(ctx.reading))

    @router.get("/reports", include_in_schema=False, response_class=HTMLResponse)
    def reports_index(principal: CurrentPrincipal) -> HTMLResponse:
        """The report pages this principal may open (none is a page that says so)."""
        return ctx.page("reports_index.html", title=ctx.labels("reports"), principal=principal,
                        pages=visible_pages(principal), t=ctx.labels)

    # the pages' modules import this package (ReportContext): imported here, not at the top
    from hub.web.reports import funnel, operations, performance, receivables, rfm

    for module in (funnel, rfm, performance, receivables, operations):
        module.add_routes(router, ctx)
    return router
