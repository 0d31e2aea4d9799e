"""The hub's web face: the 360° customer profile for sales and finance, and WeCom's callbacks.

Pages (server-rendered Jinja2, autoescaped, no JavaScript; they must open quickly in
WeCom's in-app browser on a phone, which is where a reminder card's link lands):

- ``GET /customers/{id}`` the profile (基本信息, 联系人/决策链, 应收/回款/信用, 订单,
  待办, 互动记录, 审批, 数据完整性), every value with its source system, external id
  and fetch time;
- ``GET /customers?q=`` search by name fragment, credit code, external id or id;
- ``GET /tasks/{id}`` one to-do (reminder cards without a customer link here).

JSON (described by ``/openapi.json``): ``GET /api/customers/{id}``, ``GET /api/customers?q=``
and ``GET /healthz`` (database reachable and schema at the code's migration head).

``GET|POST /callbacks/<system>`` are the chat platforms' signed, encrypted event
callbacks (see :mod:`hub.web.callbacks`).

Every page and endpoint but ``/healthz``, ``/openapi.json``, the callbacks and the sign-in
routes (:mod:`hub.web.signin`) needs a principal (:mod:`hub.web.auth`: a bearer token or a
session): a page without one redirects to ``/login?next=…``, an API call gets 401. What a
principal sees is :mod:`hub.web.reads`: customers by ownership and team
(:mod:`hub.access.visibility`; one it may not see is a 404 like a missing one), personal data
masked unless its role may see it, and every read in clear audited.

No parameter can make a request fail with a 500 or hold the server: an over-long path or
query string is refused before routing (414, :mod:`hub.web.limits`), a malformed
parameter is a 4xx naming it (422 from the API's schema, a 400 or 404 page), and the
callback receivers do their CPU work in worker threads. While the app runs (its
lifespan), a background task closes rejection windows and prunes replay memory, and
another deletes sign-in sessions that expired or were revoked long ago (hourly).

Everything except the callbacks, the sign-in routes and the audit of reads in clear only reads. Each request reads in one REPEATABLE READ,
READ ONLY transaction, so the sections of a profile agree with each other even while a
sync is writing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Annotated, Any
from urllib.parse import urlencode

import sqlalchemy as sa
from fastapi import FastAPI, HTTPException, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined
from pydantic import BeforeValidator
from sqlalchemy.engine import Connection
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route

from canonical_model.profile import AGING_BUCKETS, KEY_FIELDS, Profile
from hub.access import Capability, Principal
from hub.access.accounts import prune_sessions
from hub.access.links import local_path
from hub.audit import AuditObserver
from hub.database import Database, head_revision
from hub.runtime import HubRuntime
from hub.settings import Settings
from hub.web import formatting as fmt
from hub.web.api_models import CustomerHit, Health, Problem, ProfileOut
from hub.web.auth import CurrentPrincipal, NotSignedIn, require, wants_html
from hub.web.callbacks import Receiver, create_receivers, maintain
from hub.web.crm_api import include_crm_api
from hub.web.i18n import Labels
from hub.web.lead_forms import lead_form_router
from hub.web.leads_api import leads_router
from hub.web.limits import RequestLimits
from hub.web.queries import (
    MAX_ID,
    open_receivable_bills,
    parse_id,
    row_provenance,
    task_detail,
)
from hub.web.reads import audit_unmasked_read, visible_profile, visible_search, visible_task
from hub.web.reports import ReportContext, reports_router, visible_pages
from hub.web.signin import create_signin_router

log = logging.getLogger(__name__)

MAX_SEARCH_CHARS = 200
MAINTAIN_EVERY_S = 15.0
# Sessions are pruned hourly: a dead session only takes a row, and it is never valid again.
PRUNE_SESSIONS_EVERY_S = 3600.0
# How long an expired or revoked session stays (a month of "who was signed in" for support).
SESSION_RETENTION_DAYS = 30

# A lone UTF-16 surrogate: Python's json reads "\\ud800" into a str that UTF-8 cannot encode.
UNENCODABLE = re.compile("[\ud800-\udfff]")

# The pages load nothing from anywhere: inline CSS only, no scripts, forms post back here.
_HTML_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
                               "form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    # customer ids are in the URLs; other sites need not learn them
    "Referrer-Policy": "no-referrer",
}




_FASTAPI_UNREADABLE_BODY = "There was an error parsing the body"
UNREADABLE_BODY = "the request body cannot be read as JSON text (not UTF-8, or nested too deeply)"


def encodable(value: Any) -> Any:
    """``value`` (JSON-like) with what strict JSON in UTF-8 cannot carry replaced: a lone
    surrogate by U+FFFD, NaN and ±Infinity by their names as strings."""
    if isinstance(value, str):
        return UNENCODABLE.sub("\ufffd", value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {encodable(k): encodable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encodable(v) for v in value]
    return value


def _iso_date_only(value: object) -> object:
    # pydantic's lax date parsing reads "0.0" or "1700000000" as a Unix timestamp; an API
    # caller who sends a number meant something else, so only YYYY-MM-DD is a date here
    if isinstance(value, str) and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError("expected a date as YYYY-MM-DD")
    return value


IsoDate = Annotated[dt.date, BeforeValidator(_iso_date_only)]

def _templates() -> Environment:
    env = Environment(loader=PackageLoader("hub.web", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.globals.update(
        label=fmt.label, money=fmt.money, percent=fmt.percent, AGING_BUCKETS=AGING_BUCKETS,
        AGING_LABELS=fmt.AGING_LABELS, FIELD_LABELS=fmt.FIELD_LABELS, ORDER_STATUS=fmt.ORDER_STATUS,
        APPROVAL_STATE=fmt.APPROVAL_STATE, ERP_STATUS=fmt.ERP_STATUS, APPROVAL_KIND=fmt.APPROVAL_KIND,
        INTERACTION_KIND=fmt.INTERACTION_KIND, TASK_KIND=fmt.TASK_KIND, TASK_STATUS=fmt.TASK_STATUS,
        REMINDER_KIND=fmt.REMINDER_KIND, PUSH_STATE=fmt.PUSH_STATE, SYSTEM_LABELS=fmt.SYSTEM_LABELS,
        PLAN_STATES=fmt.PLAN_STATES,
    )
    return env


def push_rows(push_state: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Flatten ``task.push_state`` ({channel: {"kind:recipient": {...}}}) into table rows."""
    rows = []
    for channel, slots in sorted((push_state or {}).items()):
        if not isinstance(slots, dict):
            continue
        for slot, entry in sorted(slots.items()):
            kind, _, recipient = slot.partition(":")
            entry = entry if isinstance(entry, dict) else {"state": str(entry)}
            if slot == "todo":  # the task's to-do on the platform (hub.rules.todos)
                entry = todo_entry(entry)
                recipient = entry.get("recipient") or ""
            rows.append({"channel": channel, "kind": kind, "recipient": recipient, "state": entry.get("state"),
                         "at": entry.get("at"), "msgid": entry.get("msgid"), "error": entry.get("error")})
    return rows


def todo_entry(todo: dict[str, Any]) -> dict[str, Any]:
    """A task's to-do state as one push row: in flight, failed, or as last synced (open/done)."""
    found = todo.get("synced")
    synced: dict[str, Any] = found if isinstance(found, dict) else {}
    for state in ("queued", "failed"):
        if isinstance(todo.get(state), dict):
            return {**todo[state], "state": state, "recipient": synced.get("recipient")}
    return {"state": synced.get("status"), "at": synced.get("at"), "msgid": synced.get("id"),
            "recipient": synced.get("recipient")}


def describe_operations(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The OpenAPI document's operations as rows for the /docs page."""

    def type_of(schema: dict[str, Any]) -> str:
        if "$ref" in schema:
            return str(schema["$ref"]).rsplit("/", 1)[-1]
        if "anyOf" in schema:
            return " | ".join(type_of(s) for s in schema["anyOf"])
        if schema.get("type") == "array":
            return f"list of {type_of(schema.get('items', {}))}"
        bounds = ", ".join(f"{k} {schema[k]}" for k in ("minimum", "maximum", "minLength", "maxLength")
                           if k in schema)
        return str(schema.get("type", "any")) + (f" ({bounds})" if bounds else "")

    operations = []
    for path, methods in spec.get("paths", {}).items():
        for method, op in methods.items():
            responses = []
            for status, response in op.get("responses", {}).items():
                body = response.get("content", {}).get("application/json", {}).get("schema", {})
                responses.append({"status": status, "description": response.get("description", ""),
                                  "body": type_of(body) if body else ""})
            operations.append({
                "id": op.get("operationId", f"{method}-{path}"), "method": method.upper(), "path": path,
                "summary": op.get("summary", ""), "description": op.get("description", ""),
                "parameters": [{**p, "type": type_of(p.get("schema", {})), "description": p.get("description", "")}
                               for p in op.get("parameters", [])],
                "responses": responses,
                "body": type_of(op.get("requestBody", {}).get("content", {}).get("application/json", {})
                                .get("schema", {})) if "requestBody" in op else "",
                "security": [name for requirement in op.get("security", []) for name in requirement],
            })
    return operations


def missing_key_fields(profile: Profile) -> list[str]:
    """The key fields (数据完整性) this customer lacks, as the profile counts them."""
    missing = [f for f in KEY_FIELDS if profile.customer.get(f) in (None, "")]
    if not profile.contacts:
        missing.append("contacts")
    return missing


def _database(runtime_or_db: HubRuntime | Database) -> Database:
    return runtime_or_db if isinstance(runtime_or_db, Database) else runtime_or_db.db


def create_web_app(runtime_or_db: HubRuntime | Database, settings: Settings) -> FastAPI:
    """Build the web app over a database (or a runtime's database) with the hub's settings."""
    db = _database(runtime_or_db)
    clock = fmt.Clock(settings.timezone)
    templates = _templates()
    # nav: the header's and footer's words in the configured language (base.html, every page)
    templates.globals.update(when=clock.when, timezone=settings.timezone, report_pages=visible_pages,
                             nav=Labels(settings.web.language))
    head = head_revision()
    receivers = create_receivers(db, settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_maintain_forever(receivers))
        pruning = asyncio.create_task(_prune_sessions_forever(db))
        try:
            yield
        finally:
            task.cancel()
            pruning.cancel()

    app = FastAPI(
        title="CRM–ERP hub", version="0.1.0",
        description="360° customer profile (360°客户视图) and search. Authenticate with "
                    "`Authorization: Bearer hub_tok_…` (`hub token create --role ROLE`); what a token sees "
                    "follows its role and user.",
        # No Swagger UI: it loads scripts from a CDN, which an on-premises install may not
        # reach and the pages' no-script policy does not want; /docs is rendered here instead.
        docs_url=None, redoc_url=None, openapi_url="/openapi.json", lifespan=lifespan,
        responses={414: {"model": Problem, "description": "Path or query string too long"}},
    )
    app.add_middleware(RequestLimits, exempt_paths=frozenset(receivers), max_body_bytes=settings.api.max_body_bytes)
    app.state.db = db
    clients: dict[str, Any] = {}

    def client_for(system: str) -> Any:
        """The WeCom/DingTalk client sign-in exchanges codes with (the runtime's when given)."""
        if isinstance(runtime_or_db, HubRuntime):
            return runtime_or_db.client(system)
        if system not in clients:
            from hub.errors import ConfigError
            from hub.registry import connector

            section = settings.connector(system)
            if section.missing():
                raise ConfigError(f"{system} is not configured for sign-in")
            clients[system] = connector(system).make_client(section, AuditObserver(db.engine, actor=f"web:{system}"))
        return clients[system]
    # the routes themselves, not include_router: see hub.web.crm_api.include_crm_api
    app.router.routes.extend(leads_router(settings).routes)  # /api/leads, /api/pool/customers
    app.router.routes.extend(lead_form_router(settings).routes)  # /forms/lead

    @contextmanager
    def reading() -> Iterator[Connection]:
        with db.engine.connect() as conn:
            conn.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
            try:
                yield conn
            finally:
                conn.rollback()

    def page(name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        html = templates.get_template(name).render(**context)
        return HTMLResponse(html, status_code=status_code, headers=_HTML_HEADERS)

    def not_found(what: str, ref: str, principal: Principal | None = None) -> HTMLResponse:
        return page("not_found.html", 404, title="未找到", what=what, ref=ref, principal=principal)

    def render(name: str, status_code: int, **context: Any) -> HTMLResponse:
        return page(name, status_code, **context)

    section_for = runtime_or_db.connector_settings if isinstance(runtime_or_db, HubRuntime) else settings.connector
    app.include_router(create_signin_router(db, settings, render, client_for, section_for))
    # Pages and endpoints that show customers: signed in, and a role that sees customers.
    viewer = require(Capability.VIEW_CUSTOMERS)

    # ------------------------------------------------------------------ pages

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        """The start page is the search."""
        return RedirectResponse("/customers", status_code=303)

    @app.get("/customers", include_in_schema=False, response_class=HTMLResponse)
    def customers_page(principal: Principal = viewer, q: str = "") -> HTMLResponse:
        """Search form and results (only customers the principal sees)."""
        if len(q) > MAX_SEARCH_CHARS:
            return page("search.html", 400, title="客户搜索", q="", hits=[], principal=principal,
                        error=f"搜索内容过长（{len(q)} 个字符，最多 {MAX_SEARCH_CHARS} 个）。")
        hits: list[dict[str, Any]] = []
        if q.strip():
            with reading() as conn:
                hits = visible_search(conn, principal, q)
        return page("search.html", title=f"搜索：{q}" if q.strip() else "客户搜索", q=q, hits=hits, error=None,
                    principal=principal)

    @app.get("/customers/{customer_id}", include_in_schema=False, response_class=HTMLResponse)
    def customer_page(customer_id: str, principal: Principal = viewer) -> HTMLResponse:
        """The 360° profile page (any non-id path segment, and a customer the principal does
        not see, is a 404 page)."""
        cid = parse_id(customer_id)
        if cid is None:
            return not_found("客户", customer_id, principal)
        as_of = clock.today()
        with reading() as conn:
            profile = visible_profile(conn, principal, cid, as_of)
            if profile is None:
                return not_found("客户", customer_id, principal)
            sources = row_provenance(conn, cid)
            bills = open_receivable_bills(conn, cid, as_of)
        audit_unmasked_read(db.engine, principal, profile, "page")
        credit_limit = profile.credit_limit
        over_limit = credit_limit is not None and profile.credit_used > credit_limit
        usage = (profile.credit_used / credit_limit) if credit_limit else None
        return page(
            "customer.html", title=profile.customer["name"], p=profile, c=profile.customer,
            src=profile.provenance, rows=sources, bills=bills, over_limit=over_limit,
            over_by=(profile.credit_used - credit_limit) if over_limit and credit_limit is not None else None,
            usage=usage, usage_bar=min(float(usage or 0), 1.0), missing=missing_key_fields(profile),
            push_rows=push_rows, key_fields=KEY_FIELDS, now=dt.datetime.now(dt.UTC), principal=principal,
        )

    @app.get("/tasks/{task_id}", include_in_schema=False, response_class=HTMLResponse)
    def task_page(task_id: str, principal: Principal = viewer) -> HTMLResponse:
        """One task: where a reminder card without a customer links to (404 when not visible)."""
        tid = parse_id(task_id)
        task = None
        if tid is not None:
            with reading() as conn:
                task = task_detail(conn, tid)
                if task is not None and not visible_task(conn, principal, task):
                    task = None
        if task is None:
            return not_found("待办", task_id, principal)
        overdue = task["status"] == "open" and task["due_at"] < dt.datetime.now(dt.UTC)
        return page("task.html", title=task["title"], t=task, overdue=overdue, pushes=push_rows(task["push_state"]),
                    principal=principal)

    # ------------------------------------------------------------------ JSON API

    api_errors: dict[int | str, dict[str, Any]] = {
        401: {"model": Problem, "description": "No valid API token or session"},
        403: {"model": Problem, "description": "The role may not read customers"},
    }

    @app.get("/api/customers/{customer_id}", response_model=ProfileOut, tags=["customers"],
             responses={**api_errors, 404: {"model": Problem, "description": "No such customer (or not visible)"}})
    def customer_json(
        principal: Principal = viewer,
        customer_id: int = Path(ge=1, le=MAX_ID, description="The hub's customer id"),
        as_of: IsoDate | None = Query(None, description="Age receivables as of this date, YYYY-MM-DD "
                                                       "(default: today in the hub's timezone)"),
    ) -> ProfileOut:
        """The 360° profile of one customer, with provenance; personal data masked unless the
        caller may see it (an unmasked read is audited)."""
        with reading() as conn:
            profile = visible_profile(conn, principal, customer_id, as_of or clock.today())
        if profile is None:
            raise HTTPException(404, f"no customer {customer_id}")
        audit_unmasked_read(db.engine, principal, profile, "api")
        return ProfileOut.from_profile(profile)

    @app.get("/api/customers", response_model=list[CustomerHit], tags=["customers"], responses=api_errors)
    def search_json(
        principal: Principal = viewer,
        q: str = Query(min_length=1, max_length=MAX_SEARCH_CHARS,
                       description="Name fragment, unified social credit code, external id or id"),
        limit: int = Query(50, ge=1, le=200),
    ) -> list[CustomerHit]:
        """Customers matching ``q`` that the caller sees, exact matches (id, credit code, external id) first."""
        with reading() as conn:
            hits = visible_search(conn, principal, q, limit=limit)
        return [CustomerHit(**h, url=f"/customers/{h['id']}") for h in hits]

    @app.get("/docs", include_in_schema=False, response_class=HTMLResponse)
    def api_docs(principal: CurrentPrincipal) -> HTMLResponse:
        """The API's reference, rendered from its OpenAPI document (no scripts, no CDN); signed in."""
        spec = app.openapi()
        return page("api_docs.html", title="API", spec=spec, operations=describe_operations(spec),
                    principal=principal)

    @app.get("/healthz", response_model=Health, tags=["operations"],
             responses={503: {"model": Health, "description": "Database unreachable or schema not current"}})
    def healthz(response: Response) -> Health:
        """Database reachable and its schema at the code's migration head."""
        try:
            current = db.current_revision()
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            # the class name only: a driver message can name hosts and users
            response.status_code = 503
            return Health(status="error", database=f"unreachable ({type(exc).__name__})",
                          schema_revision=None, head_revision=head)
        ok = current == head
        if not ok:
            response.status_code = 503
        return Health(status="ok" if ok else "error", database="ok", schema_revision=current, head_revision=head)

    include_crm_api(app, settings)  # the CRM's writes and lists (hub.web.crm_api)
    reports = ReportContext(db=db, settings=settings, reading=reading, page=page,
                            labels=Labels(settings.web.language), clock=clock)
    app.router.routes.extend(reports_router(reports).routes)  # /reports/… (hub.web.reports)

    # ------------------------------------------------------------------ chat callbacks

    for path, receiver in receivers.items():
        # A plain Starlette route with the receiver as its ASGI endpoint: the receiver sees
        # the full path, so no Mount and no trailing-slash redirect (WeCom follows none).
        app.router.routes.append(Route(path, receiver.app, methods=["GET", "POST"]))
    app.state.callbacks = receivers

    # ------------------------------------------------------------------ errors

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        """A person who mistypes a page URL gets a page, one not signed in the sign-in page;
        API clients keep JSON errors (401 with WWW-Authenticate)."""
        path = request.url.path
        page_request = not path.startswith(("/api/", "/healthz", "/callbacks/", "/openapi"))
        if exc.status_code == 401 and isinstance(exc, NotSignedIn) and wants_html(request):
            wanted = local_path(path + (f"?{request.url.query}" if request.url.query else ""))
            return RedirectResponse(f"/login?{urlencode({'next': wanted})}", status_code=303)
        if exc.status_code == 403 and path.startswith(("/customers", "/tasks", "/docs")):
            return page("signin_problem.html", 403, title="无权访问", heading="无权访问",
                        message="您的角色无权查看客户资料。", retry=None)
        if exc.status_code == 403 and path.startswith("/reports"):
            # a report page the role may not open, or a form whose CSRF token has expired
            return page("signin_problem.html", 403, title="无权访问", heading="无权访问",
                        message=str(exc.detail), retry=None)
        if exc.status_code == 404 and page_request:
            return not_found("页面", path)
        if exc.status_code == 400 and exc.detail == _FASTAPI_UNREADABLE_BODY:
            # FastAPI's words for a JSON body it could not decode (not UTF-8): say which
            return JSONResponse({"detail": UNREADABLE_BODY}, status_code=400)
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        """FastAPI's 422 with the field paths, made encodable: the problems echo the input,
        and JSON as Python reads it may hold NaN, Infinity or a lone surrogate ("\\ud800"),
        which FastAPI's own handler fails to encode (a 500 instead of the 422). A body sent
        as another media type than JSON (FastAPI then sees bytes, "not an object") is a 415
        saying so."""
        errors = exc.errors()
        media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media and not (media == "application/json" or media.endswith("+json")) and any(
                e.get("loc") == ("body",) and e.get("type") == "model_attributes_type" for e in errors):
            return JSONResponse({"detail": f"the body must be JSON (Content-Type: application/json), "
                                           f"not {encodable(media[:100])}"}, status_code=415)
        return JSONResponse({"detail": encodable(jsonable_encoder(errors))}, status_code=422)

    return app


def prune_old_sessions(db: Database, older_than_days: int = SESSION_RETENTION_DAYS) -> int:
    """One pruning round: delete sessions that expired or were revoked more than
    ``older_than_days`` ago (:func:`hub.access.accounts.prune_sessions`); how many."""
    with db.engine.begin() as conn:
        return prune_sessions(conn, older_than_days)


async def _prune_sessions_forever(db: Database) -> None:
    """At start-up and then every hour, off the event loop: :func:`prune_old_sessions`."""
    while True:
        try:
            pruned = await asyncio.to_thread(prune_old_sessions, db)
            if pruned:
                log.info("pruned %d old sign-in sessions", pruned)
        except Exception:  # the database may be away for a while; the next round retries
            log.exception("session pruning failed")
        await asyncio.sleep(PRUNE_SESSIONS_EVERY_S)


async def _maintain_forever(receivers: dict[str, Receiver]) -> None:
    """Every few seconds, off the event loop: close rejection windows, prune replay memory."""
    while receivers:
        await asyncio.sleep(MAINTAIN_EVERY_S)
        try:
            await asyncio.to_thread(maintain, receivers)
        except Exception:  # the database may be away for a while; the next round retries
            log.exception("callback maintenance failed")
