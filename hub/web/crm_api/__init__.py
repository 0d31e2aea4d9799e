"""The CRM's API: what the CRM (and signed-in people) write into the hub and read back.

One module per subject, each an ``APIRouter``:

=====================  ====================================================================
module                 endpoints
=====================  ====================================================================
:mod:`.customers`      ``POST /api/customers`` (upsert by the CRM's id; the sync engine's
                       identity resolution)
:mod:`.contacts`       ``POST /api/contacts``
:mod:`.orders`         ``POST /api/orders``, ``PATCH``/``GET /api/orders/{id}`` (approval →
                       the ERP through the outbox)
:mod:`.contracts`      ``POST /api/contracts``
:mod:`.tasks`          ``POST /api/tasks``, ``PATCH /api/tasks/{id}``,
                       ``POST /api/tasks/{id}/complete``, ``GET /api/tasks``
:mod:`.followups`      ``POST /api/followups`` (interactions)
:mod:`.tickets`        ``POST /api/tickets`` (服务工单)
:mod:`.touchpoints`    ``POST /api/touchpoints`` (营销触点)
:mod:`.receivables`    ``GET /api/receivables``, ``GET /api/overdue-customers``
:mod:`.audit`          ``GET /api/audit/{table}/{id}``
=====================  ====================================================================

Every write runs through :func:`hub.web.writes.write_once` (one transaction, at most once
per ``Idempotency-Key``, audited with its principal) and needs ``write_crm``; every read
applies :mod:`hub.access.visibility`. :func:`include_crm_api` adds them all to the app.
"""

from __future__ import annotations

from fastapi import FastAPI

from hub.settings import Settings
from hub.web.crm_api import (
    audit,
    contacts,
    contracts,
    customers,
    followups,
    orders,
    receivables,
    tasks,
    tickets,
    touchpoints,
)

ROUTERS = (customers.router, contacts.router, orders.router, contracts.router, tasks.router, followups.router,
           tickets.router, touchpoints.router, receivables.router, audit.router)


def include_crm_api(app: FastAPI, settings: Settings) -> None:
    """Add the CRM API's routes to ``app`` (which must hold the database in ``app.state.db``)."""
    app.state.settings = settings
    for router in ROUTERS:
        # The routes themselves, not app.include_router: FastAPI 0.165 keeps an included
        # router as one opaque entry of app.routes, and the role matrix test and anything
        # else that walks app.routes must see every route (the routers add no prefix).
        app.router.routes.extend(router.routes)


__all__ = ["ROUTERS", "include_crm_api"]
