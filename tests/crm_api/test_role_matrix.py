"""Every route of the app × every role and no credential, over real HTTP.

A route is guarded when one of its dependencies is :func:`hub.web.auth.require`; the
capability it requires is read off that dependency, so the expectations below follow
the role table (:mod:`hub.access.roles`) and cannot drift from it:

- no credential → 401;
- a role without the capability → 403;
- a role with it → neither (the request reaches the endpoint; never a 5xx).

A route that is not guarded must be listed as public on purpose (health, the OpenAPI
document, the chat platforms' signed callbacks) or, for the pages and reads that predate
the CRM API, as awaiting the sign-in guards of issue 15 (they join the matrix as soon as
they carry a ``require``). Then, per CRM API route: a salesperson cannot read or write
another team's customer through it.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.routing import APIRoute
from starlette.routing import Route

from hub.access import Capability, Role
from hub.access.roles import CAPABILITIES
from hub.web import create_web_app
from hub.web.crm_api import ROUTERS
from tests.conftest import rows, scalar
from tests.crm_api.test_writes import NOW, order_body

# open on purpose: health, the API's description, and the website's lead form (authorised by its
# per-form key, tests/integration/test_leads.py)
PUBLIC = {("GET", "/healthz"), ("GET", "/openapi.json"), ("HEAD", "/openapi.json"), ("POST", "/forms/lead")}
# pages and reads from before the CRM API; the sign-in work of issue 15 guards them
# no capability, still guarded: the start page redirects to the (guarded) search, and /docs
# wants any signed-in principal (tests/web/test_roles.py checks both); /reports lists only the
# report pages the principal's capabilities open (hub.web.reports.visible_pages)
AWAITING_SIGN_IN = {("GET", "/"), ("GET", "/docs"), ("GET", "/reports")}

# claims act for the principal's own person (tests/integration/test_leads.py)
ACTS_FOR_A_PERSON = {"/api/pool/customers/{customer_id}/claim", "/api/leads/{lead_id}/claim"}


def required_capability(route: APIRoute) -> Capability | None:
    """The capability a route's ``require`` dependency asks for, if it has one."""
    pending = list(route.dependant.dependencies)
    while pending:
        dependant = pending.pop()
        call = dependant.call
        if getattr(call, "__qualname__", "") == "require.<locals>.dependency":
            cells = dict(zip(call.__code__.co_freevars, call.__closure__ or (), strict=True))
            return cells["capability"].cell_contents  # type: ignore[no-any-return]
        pending.extend(dependant.dependencies)
    return None


def routes_of(app: Any) -> list[tuple[str, str, Capability | None]]:
    """(method, path, required capability) of every route; callbacks are plain Routes."""
    found = []
    for route in app.routes:
        if isinstance(route, APIRoute):
            found += [(m, route.path, required_capability(route)) for m in sorted(route.methods)]
        elif isinstance(route, Route):
            found += [(m, route.path, None) for m in sorted(route.methods or ())]
    return found


def fill(path: str, ids: dict[str, int]) -> str:
    return (path.replace("{customer_id}", str(ids["customer"])).replace("{order_id}", str(ids["order"]))
            .replace("{task_id}", str(ids["task"])).replace("{table}", "customer")
            .replace("{record_id}", str(ids["customer"])))


@pytest.fixture
def records(api, world) -> dict[str, int]:
    """An order and a task of 张三's customer, made by the CRM."""
    order = api.post("/api/orders", json=order_body("SO-M"), headers=world.auth("crm")).json()
    task = api.post("/api/tasks", json={"title": "回访", "due_at": NOW, "customer_id": world.customers["mine"],
                                         "assignee_id": world.users["rep"]}, headers=world.auth("crm")).json()
    return {"customer": world.customers["mine"], "order": order["id"], "task": task["id"]}


def test_every_route_is_guarded_or_deliberately_open(db, settings):
    app = create_web_app(db, settings)
    callbacks = {path for path in app.state.callbacks}
    open_routes = {(m, p) for m, p, cap in routes_of(app) if cap is None and p not in callbacks}
    assert open_routes <= PUBLIC | AWAITING_SIGN_IN, sorted(open_routes - PUBLIC - AWAITING_SIGN_IN)
    crm_paths = {(m, r.path) for router in ROUTERS for r in router.routes if isinstance(r, APIRoute)
                 for m in r.methods}
    assert crm_paths and not crm_paths & (PUBLIC | AWAITING_SIGN_IN)


def test_role_matrix_over_every_guarded_route(api, world, records, db, settings):
    app = create_web_app(db, settings)
    checked = 0
    for method, path, capability in routes_of(app):
        if capability is None:
            continue
        url = fill(path, records)
        body = {} if method in ("POST", "PATCH", "PUT") else None
        anonymous = api.request(method, url, json=body)
        if path.startswith("/api/"):
            assert anonymous.status_code == 401, (method, path, anonymous.text)
            assert anonymous.headers["www-authenticate"].startswith("Bearer")
        else:  # a page sends the browser to sign in first
            assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login"), (
                method, path, anonymous.status_code)
        for role in Role:
            reply = api.request(method, url, json=body, headers=world.auth(role.value))
            if capability in CAPABILITIES[role]:
                if path in ACTS_FOR_A_PERSON and role not in (Role.SALES, Role.MANAGER):
                    # these tokens act for nobody: taking a customer or lead needs a person
                    refused_for_role = reply.status_code == 403 and "acting for a person" not in reply.text
                    assert reply.status_code != 401 and reply.status_code < 500 and not refused_for_role, (
                        role, path, reply.text)
                    continue
                assert reply.status_code not in (401, 403) and reply.status_code < 500, (role, method, path,
                                                                                          reply.text)
            else:
                assert reply.status_code == 403, (role, method, path, reply.text)
        checked += 1
    assert checked >= sum(len(r.routes) for r in ROUTERS)


def test_a_salesperson_reaches_no_other_teams_customer_through_any_crm_api_route(api, world, db):
    crm = world.auth("crm")
    theirs = world.customers["theirs"]
    order = api.post("/api/orders", json=order_body("SO-T", customer="crm-theirs"), headers=crm).json()
    task = api.post("/api/tasks", json={"title": "李四的任务", "due_at": NOW, "customer_id": theirs,
                                         "assignee_id": world.users["other"]}, headers=crm).json()
    api.post("/api/contacts", json={"customer_id": theirs, "external_id": "ct-t", "name": "赵六"}, headers=crm)
    api.post("/api/contracts", json={"customer_id": theirs, "external_id": "k-t", "contract_number": "HT-T",
                                     "title": "t", "currency": "CNY", "amount": "1.00"}, headers=crm)
    api.post("/api/tickets", json={"customer_id": theirs, "external_id": "t-t", "kind": "inquiry", "subject": "s",
                                   "opened_at": NOW}, headers=crm)
    api.post("/api/touchpoints", json={"customer_id": theirs, "external_id": "e-t", "kind": "link_clicked",
                                       "occurred_at": NOW}, headers=crm)
    snapshot = table_snapshot(db)
    ref = {"customer_id": theirs}
    cases: dict[tuple[str, str], tuple[str, dict[str, Any] | None]] = {
        ("POST", "/api/customers"): ("/api/customers", {"external_id": "crm-theirs", "name": "改名"}),
        ("POST", "/api/contacts"): ("/api/contacts", {**ref, "external_id": "ct-t", "name": "改名"}),
        ("POST", "/api/orders"): ("/api/orders", order_body("SO-T2", customer="crm-theirs")),
        ("PATCH", "/api/orders/{order_id}"): (f"/api/orders/{order['id']}", {"approval_state": "approved"}),
        ("GET", "/api/orders/{order_id}"): (f"/api/orders/{order['id']}", None),
        ("POST", "/api/contracts"): ("/api/contracts", {**ref, "external_id": "k-t", "contract_number": "HT-T",
                                                        "title": "改", "currency": "CNY", "amount": "2.00"}),
        ("POST", "/api/tasks"): ("/api/tasks", {**ref, "title": "x", "due_at": NOW}),
        ("PATCH", "/api/tasks/{task_id}"): (f"/api/tasks/{task['id']}", {"title": "改"}),
        ("POST", "/api/tasks/{task_id}/complete"): (f"/api/tasks/{task['id']}/complete", None),
        ("POST", "/api/followups"): ("/api/followups", {**ref, "kind": "call", "occurred_at": NOW, "summary": "x"}),
        ("POST", "/api/tickets"): ("/api/tickets", {**ref, "external_id": "t-t", "kind": "inquiry", "subject": "改",
                                                    "opened_at": NOW}),
        ("POST", "/api/touchpoints"): ("/api/touchpoints", {**ref, "external_id": "e-t", "kind": "link_clicked",
                                                            "occurred_at": NOW}),
        ("GET", "/api/audit/{table}/{record_id}"): (f"/api/audit/customer/{theirs}", None),
    }
    lists = {("GET", "/api/receivables"), ("GET", "/api/overdue-customers"), ("GET", "/api/tasks")}
    crm_routes = {(m, r.path) for router in ROUTERS for r in router.routes if isinstance(r, APIRoute)
                  for m in r.methods}
    assert set(cases) | lists == crm_routes  # every CRM API route is tried
    for (method, _), (url, body) in cases.items():
        reply = api.request(method, url, json=body, headers=world.auth("sales"))
        assert reply.status_code in (403, 404), (method, url, reply.status_code, reply.text)
    assert table_snapshot(db) == snapshot  # nothing written, not even half
    filters_of = {"/api/tasks": ({}, {"customer_id": theirs}, {"assignee_id": world.users["other"]}),
                  "/api/receivables": ({}, {"customer_id": theirs}), "/api/overdue-customers": ({},)}
    for _, path in lists:
        for filters in filters_of[path]:
            reply = api.get(path, params=filters, headers=world.auth("sales"))
            assert reply.status_code == 200, (path, filters, reply.text)
            page = reply.json()
            assert all(item.get("customer_id") != theirs for item in page["items"]), (path, filters)
            assert all(item.get("assignee_id") != world.users["other"] for item in page["items"]), (path, filters)


def table_snapshot(db) -> dict[str, Any]:
    """Everything the CRM API writes, as rows (to compare before and after)."""
    return {table: [tuple(r) for r in rows(db, f"SELECT * FROM {table} ORDER BY 1")]
            for table in ("customer", "contact", "sales_order", "sales_order_line", "contract", "task",
                          "interaction", "service_ticket", "touchpoint", "outbox", "external_identity")} | {
        "audit": scalar(db, "SELECT count(*) FROM audit_log")}
