"""Malformed HTTP to every route of the web app: a clear 4xx naming the problem, never a 500,
never a stack trace or a secret, and nothing stored.

The routes are *enumerated* from the app (``app.routes``, included routers opened up), so a
route added later is covered or the suite fails: each route is in :data:`ROUTES` (how to reach
it — the credential, what its body is, a valid body to spoil one field of) or in
:data:`NO_INPUT` with the reason it has nothing to malform. For each, the requests a careless
or hostile client sends:

- JSON bodies: not JSON, an array or a string for the object, ``{}`` (required fields
  missing), an unknown field, each field of a valid body given the wrong JSON type, NUL, a
  lone surrogate, numbers past bigint, NaN and Infinity, invalid UTF-8, a wrong content
  type, and a body over ``HUB_API__MAX_BODY_BYTES`` (413);
- path and query parameters: non-numeric, huge, negative, NaN, full-width and Arabic-Indic
  digits, NUL, invalid UTF-8, a traversal;
- forms (sign-in, sign-out, the report pages' actions, the public lead form): missing and
  wrong CSRF tokens, not UTF-8, JSON instead of a form, too many fields, too big, ids that
  ``str.isdigit`` takes but ``int`` does not (``²``);
- the chat callbacks: missing, malformed and forged signatures, stale and non-numeric
  timestamps, malformed and hostile XML (a DTD), a non-object JSON envelope, plaintext that
  decrypts to garbage, a body over the receiver's limit; and signed events whose fields are
  odd (NUL, huge numbers, wrong types), which must not make the receiver answer 500 (the
  platform would retry them for ever).

Each answer is judged the same way (:func:`judge`): a 4xx, a body that says what was wrong
(JSON ``detail`` for the API, a page or a plain-text reason elsewhere), no traceback, SQL
or driver text, and none of the secrets the app holds. And after each request the row count
of every table in the schema is what it was, except the audit of the refusal (``audit_log``, never
``callback_rejection_window``) where the code audits refusals.

Real Postgres (a schema of this module's own), the app served by uvicorn over real HTTP.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import SecretStr
from starlette.routing import BaseRoute, Route

from connectors.dingtalk.sandbox.credentials import SANDBOX_APP_KEY, SANDBOX_CALLBACK_AES_KEY
from connectors.dingtalk.sandbox.credentials import SANDBOX_CALLBACK_TOKEN as DINGTALK_TOKEN
from connectors.kit.crypto import dingtalk_crypto, wecom_crypto
from connectors.kit.sandbox import serve_in_thread
from connectors.wecom.sandbox.credentials import SANDBOX_CALLBACK_TOKEN as WECOM_TOKEN
from connectors.wecom.sandbox.credentials import SANDBOX_CORP_ID, SANDBOX_ENCODING_AES_KEY
from hub.access import Role
from hub.database import Database
from hub.settings import Settings
from hub.web import create_web_app
from hub.web.auth import SESSION_COOKIE
from hub.web.signin import CSRF_COOKIE, session_csrf
from tests.conftest import schema_database
from tests.support.access import bearer, issue_session
from tests.support.crm_world import World, build_world
from tests.web.conftest import audit

pytestmark = pytest.mark.e2e  # serves the app over HTTP

FORM_KEY = "formkey-" + secrets.token_hex(8)
MAX_BODY = 64 * 1024  # the app's body limit here (HUB_API__MAX_BODY_BYTES), small so oversizing is cheap
# Text no answer may contain: a trace, SQL or driver internals.
LEAKS = ("Traceback", 'File "', "sqlalchemy", "psycopg", "SELECT ", "INSERT INTO", "UPDATE ", "postgres@")
# Tables whose rows record a refusal (where the code audits refusals).
REFUSAL_RECORDS = frozenset({"audit_log", "callback_rejection_window"})
AUDITED_AS_DONE = "audit_log (outcome ok)"
# What an accepted callback event stores: its audit row, and its signature (refused if replayed).
ACCEPTED_EVENT = frozenset({"callback_replay", AUDITED_AS_DONE})


# ---------------------------------------------------------------------------- the routes


@dataclass(frozen=True)
class Spec:
    """How to reach one route with a malformed request.

    ``auth``: "token" (an administrator's bearer token), "session" (an administrator's
    browser, with the session's CSRF token), "login" (the sign-in form's double-submit
    cookie) or "none". ``body``: "json" (the route's pydantic model; ``valid`` is a body it
    accepts, whose fields are spoilt one at a time), "form" (a URL-encoded form read by the
    handler; ``valid`` its fields), "wecom"/"dingtalk" (a signed callback) or "none".
    ``path`` fills the route's path parameters with valid values.
    """

    auth: str = "token"
    body: str = "none"
    valid: dict[str, Any] = field(default_factory=dict)
    path: dict[str, str] = field(default_factory=dict)
    # form routes: the fields that must be numeric ids (spoilt with non-ids)
    id_fields: tuple[str, ...] = ()


ORDER_LINES = [{"line_no": 1, "product_code": "P-1", "product_name": "工业网关", "quantity": "1",
                "unit_price": "1000.00", "tax_rate": "13", "amount": "1000.00"}]
ROUTES: dict[tuple[str, str], Spec] = {
    # the CRM API's writes (hub.web.crm_api) and the leads API (hub.web.leads_api)
    ("POST", "/api/customers"): Spec(body="json", valid={"external_id": "crm-x1", "name": "杭州恶意测试有限公司",
                                                         "credit_limit": "100.00", "owner_id": 1}),
    ("POST", "/api/contacts"): Spec(body="json", valid={"customer_external_id": "crm-mine", "external_id": "ct-x1",
                                                        "name": "王五", "mobile": "13800001111"}),
    ("POST", "/api/orders"): Spec(body="json", valid={
        "customer_external_id": "crm-mine", "external_id": "SO-x1", "order_number": "SO-x1",
        "order_date": "2026-11-20", "currency": "CNY", "total_amount": "1000.00", "lines": ORDER_LINES}),
    ("PATCH", "/api/orders/{order_id}"): Spec(body="json", valid={"total_amount": "1000.00", "lines": ORDER_LINES},
                                              path={"order_id": "1"}),
    ("GET", "/api/orders/{order_id}"): Spec(path={"order_id": "1"}),
    ("POST", "/api/contracts"): Spec(body="json", valid={
        "customer_external_id": "crm-mine", "external_id": "k-x1", "contract_number": "HT-X1", "title": "年度框架合同",
        "currency": "CNY", "amount": "1000.00", "signed_at": "2026-11-20T10:00:00+08:00"}),
    ("POST", "/api/tasks"): Spec(body="json", valid={"title": "回访", "due_at": "2026-11-30T10:00:00+08:00",
                                                     "customer_id": 1, "assignee_id": 1}),
    ("PATCH", "/api/tasks/{task_id}"): Spec(body="json", valid={"title": "回访", "assignee_id": 1},
                                            path={"task_id": "1"}),
    ("POST", "/api/tasks/{task_id}/complete"): Spec(path={"task_id": "1"}),
    ("GET", "/api/tasks"): Spec(),
    ("POST", "/api/followups"): Spec(body="json", valid={
        "customer_id": 1, "kind": "visit", "occurred_at": "2026-11-20T10:00:00+08:00", "summary": "拜访"}),
    ("POST", "/api/tickets"): Spec(body="json", valid={
        "customer_id": 1, "external_id": "t-x1", "kind": "complaint", "subject": "投诉", "satisfaction": 3,
        "opened_at": "2026-11-20T10:00:00+08:00"}),
    ("POST", "/api/touchpoints"): Spec(body="json", valid={
        "customer_id": 1, "external_id": "tp-x1", "kind": "quote_opened", "occurred_at": "2026-11-20T10:00:00+08:00",
        "url": "https://example.com/q/1"}),
    ("GET", "/api/receivables"): Spec(),
    ("GET", "/api/overdue-customers"): Spec(),
    ("GET", "/api/audit/{table}/{record_id}"): Spec(path={"table": "customer", "record_id": "1"}),
    ("POST", "/api/leads"): Spec(body="json", valid={"external_id": "lead-x1", "company_name": "宁波线索有限公司",
                                                     "estimated_amount": "5000.00", "mobile": "13900002222"}),
    ("GET", "/api/leads"): Spec(),
    ("POST", "/api/leads/{lead_id}/claim"): Spec(path={"lead_id": "1"}),
    ("POST", "/api/leads/{lead_id}/invalid"): Spec(body="json", valid={"reason": "重复线索"}, path={"lead_id": "1"}),
    ("GET", "/api/pool/customers"): Spec(),
    ("POST", "/api/pool/customers/{customer_id}/claim"): Spec(path={"customer_id": "3"}),
    ("POST", "/api/pool/customers/{customer_id}/assign"): Spec(body="json", valid={"owner_id": 1},
                                                                path={"customer_id": "3"}),
    # the profile API and pages
    ("GET", "/api/customers/{customer_id}"): Spec(path={"customer_id": "1"}),
    ("GET", "/api/customers"): Spec(),
    ("GET", "/customers"): Spec(auth="session"),
    ("GET", "/customers/{customer_id}"): Spec(auth="session", path={"customer_id": "1"}),
    ("GET", "/tasks/{task_id}"): Spec(auth="session", path={"task_id": "1"}),
    # sign-in (no session needed) and sign-out
    ("GET", "/login"): Spec(auth="none"),
    ("POST", "/login"): Spec(auth="login", body="form", valid={"username": "nobody", "password": "wrong-pw",
                                                               "next": "/customers"}),
    ("POST", "/logout"): Spec(auth="session", body="form"),
    ("GET", "/auth/wecom/start"): Spec(auth="none"),
    ("GET", "/auth/wecom"): Spec(auth="none"),
    ("GET", "/auth/dingtalk/start"): Spec(auth="none"),
    ("GET", "/auth/dingtalk"): Spec(auth="none"),
    ("GET", "/auth/dingtalk/web"): Spec(auth="none"),
    # the public lead form
    ("POST", "/forms/lead"): Spec(auth="none", body="form", valid={"form_key": FORM_KEY, "company": "温州表单有限公司",
                                                                   "amount": "100"}),
    # report pages and their forms
    ("GET", "/reports/funnel"): Spec(auth="session"),
    ("GET", "/reports/rfm"): Spec(auth="session"),
    ("GET", "/reports/rfm/customers"): Spec(auth="session"),
    ("GET", "/reports/performance"): Spec(auth="session"),
    ("POST", "/reports/performance/targets"): Spec(auth="session", body="form", id_fields=("owner",), valid={
        "owner": "1", "month": "2026-11", "amount": "100000", "currency": "CNY"}),
    ("GET", "/reports/receivables.csv"): Spec(auth="session"),
    ("GET", "/reports/operations"): Spec(auth="session"),
    ("POST", "/reports/operations/dead-letters/replay"): Spec(auth="session", body="form", id_fields=("id",),
                                                              valid={"id": "1"}),
    ("POST", "/reports/operations/quarantine/retry"): Spec(auth="session", body="form",
                                                           valid={"system": "kingdee", "stream": "customers"}),
    ("POST", "/reports/operations/conflicts/resolve"): Spec(auth="session", body="form", id_fields=("id", "target"),
                                                            valid={"id": "1", "decision": "merge", "target": "1"}),
    # the chat platforms' signed callbacks
    ("GET", "/callbacks/wecom"): Spec(auth="none", body="wecom"),
    ("POST", "/callbacks/wecom"): Spec(auth="none", body="wecom"),
    ("POST", "/callbacks/dingtalk"): Spec(auth="none", body="dingtalk"),
}
# Routes with no parameter and no body: nothing to malform (what they answer for junk query
# strings is in test_bad_parameters.py; every request's size limits hold for them too).
NO_INPUT: dict[tuple[str, str], str] = {
    ("GET", "/"): "a redirect to the search page",
    ("GET", "/docs"): "the API reference page, no parameters",
    ("GET", "/healthz"): "status and schema revision, no parameters",
    ("GET", "/openapi.json"): "the API's description, no parameters",
    ("GET", "/logout"): "the sign-out confirmation form, no parameters",
    ("GET", "/reports"): "the list of report pages, no parameters",
    ("GET", "/reports/receivables"): "the receivables report, no parameters",
    ("GET", "/reports/receivables.xlsx"): "the receivables workbook, no parameters",
    ("GET", "/callbacks/dingtalk"): "DingTalk pushes by POST only: the receiver answers GET with 405",
}


def app_routes(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path) of every route the app serves, included routers opened up; HEAD (which
    Starlette adds to GET) left out."""
    found: set[tuple[str, str]] = set()

    def walk(routes: list[BaseRoute], prefix: str) -> None:
        for route in routes:
            included = getattr(route, "original_router", None)
            if included is not None:  # FastAPI 0.165 keeps an included router as one entry
                walk(included.routes, prefix + (route.include_context.prefix or ""))  # type: ignore[attr-defined]
            elif isinstance(route, APIRoute | Route):
                found.update((m, prefix + route.path) for m in route.methods or () if m != "HEAD")
            else:
                found.add(("?", f"{prefix}{getattr(route, 'path', route)!r}"))  # a kind of route not known here

    walk(app.router.routes, "")
    return found


def route_of(app: FastAPI, method: str, path: str) -> APIRoute | None:
    """The APIRoute serving (method, path) (None for a plain Starlette route)."""
    pending: list[BaseRoute] = list(app.router.routes)
    while pending:
        route = pending.pop()
        included = getattr(route, "original_router", None)
        if included is not None:
            pending.extend(included.routes)
        elif isinstance(route, APIRoute) and route.path == path and method in route.methods:
            return route
    return None


# ---------------------------------------------------------------------------- fixtures


@dataclass
class Hostile:
    """The app under attack, what it holds, and how to judge its answers."""

    db: Database
    http: httpx.Client
    app: FastAPI
    world: World
    token: str
    session: str
    secrets: tuple[str, ...]
    tables: list[str]

    def counts(self) -> dict[str, int]:
        """Rows per table of the schema."""
        query = " UNION ALL ".join([f"SELECT '{t}' AS tbl, count(*) AS n FROM \"{t}\"" for t in self.tables] + [
            # a refusal may be audited, but never as something done
            f"SELECT '{AUDITED_AS_DONE}', count(*) FROM audit_log WHERE outcome = 'ok'"])
        with self.db.engine.connect() as conn:
            return {r.tbl: int(r.n) for r in conn.execute(sa.text(query))}


@pytest.fixture(scope="module")
def hostile(database_url: str, schema_template, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    """The app over a schema of this module's own holding the CRM world, served over HTTP."""
    schema = f"t_hostile_{secrets.token_hex(4)}"
    home = tmp_path_factory.mktemp("hostile-home")
    settings = Settings(database_url=database_url, database_schema=schema, home=home,  # type: ignore[arg-type]
                        sandbox=True)
    settings = settings.model_copy(update={
        "leads": settings.leads.model_copy(update={"form_keys": SecretStr(f"site={FORM_KEY}"),
                                                   "form_rate_per_minute": 10_000}),
        "api": settings.api.model_copy(update={"max_body_bytes": MAX_BODY})})
    with schema_database(settings, schema_template) as db:
        world = build_world(db)
        token = world.tokens["admin"]
        session = issue_session(db, Role.ADMIN)
        with db.engine.connect() as conn:
            tables = sorted(conn.execute(sa.text(
                "SELECT tablename FROM pg_tables WHERE schemaname = :s"), {"s": schema}).scalars())
        app = create_web_app(db, settings)
        with serve_in_thread(app) as server, \
                httpx.Client(base_url=server.url, timeout=60, trust_env=False) as http:
            # the order and the task the PATCH routes are aimed at (id 1: the schema is new)
            for route in (("POST", "/api/orders"), ("POST", "/api/tasks")):
                made = http.post(route[1], json={**ROUTES[route].valid, **(
                    {"external_id": "SO-1", "order_number": "SO-1"} if route[1] == "/api/orders" else {})},
                    headers=bearer(world.tokens["admin"]))
                assert made.status_code == 201 and made.json()["id"] == 1, made.text
            yield Hostile(db, http, app, world, token, session,
                          (FORM_KEY, token, session, WECOM_TOKEN, SANDBOX_ENCODING_AES_KEY, DINGTALK_TOKEN,
                           SANDBOX_CALLBACK_AES_KEY, *world.tokens.values()), tables)


# ---------------------------------------------------------------------------- judging


@dataclass(frozen=True)
class Case:
    """One malformed request and what its answer must name."""

    label: str
    method: str
    path: str  # with the query string, already encoded
    content: bytes | None = None
    content_type: str | None = None
    names: tuple[str, ...] = ()  # the answer must mention one of these (field, parameter, reason)
    statuses: tuple[int, ...] = ()  # the 4xx expected (empty: any 4xx)
    lenient: bool = False  # free text: a 2xx/3xx answer (nothing stored) is fine too
    also_stored: frozenset[str] = frozenset()  # tables an accepted (lenient) request may add to


def judge(h: Hostile, spec: Spec, case: Case) -> str | None:
    """Send ``case``; what is wrong with the answer or the database afterwards (None: nothing)."""
    headers: dict[str, str] = {}
    cookies: dict[str, str] = {}
    if spec.auth == "token":
        headers.update(bearer(h.token))
    elif spec.auth == "session":
        cookies[SESSION_COOKIE] = h.session
    elif spec.auth == "login":
        cookies[CSRF_COOKIE] = "c" * 32
    if case.content_type is not None:
        headers["Content-Type"] = case.content_type
    before = h.counts()
    h.http.cookies.clear()
    try:
        reply = h.http.request(case.method, case.path, content=case.content, headers=headers, cookies=cookies,
                               follow_redirects=False)
    except httpx.HTTPError as exc:
        return f"{case.label}: no answer ({type(exc).__name__})"
    after = h.counts()
    problems = []
    if reply.status_code >= 500:
        problems.append(f"answered {reply.status_code}")
    elif not case.lenient and not 400 <= reply.status_code < 500:
        problems.append(f"answered {reply.status_code}, not a 4xx")
    elif case.statuses and reply.status_code not in case.statuses:
        problems.append(f"answered {reply.status_code}, expected one of {case.statuses}")
    text = reply.text
    if reply.status_code >= 400:
        if not text.strip():
            problems.append("an empty error")
        elif reply.headers.get("content-type", "").startswith("application/json"):
            detail = reply.json().get("detail") if isinstance(reply.json(), dict) else None
            if not detail:
                problems.append(f"JSON error without a detail: {text[:100]}")
        if case.names and not any(name.lower() in text.lower() for name in case.names):
            problems.append(f"the error names none of {case.names}: {text[:200]}")
    if leaked := [s for s in (*LEAKS, *h.secrets) if s and s in text]:
        problems.append(f"the answer shows {[s[:12] for s in leaked]}")
    changed = {t: (before[t], after[t]) for t in before
               if before[t] != after[t] and t not in REFUSAL_RECORDS | case.also_stored}
    if changed:
        problems.append(f"stored rows: {changed}")
    return f"{case.label} → {'; '.join(problems)}" if problems else None


# ---------------------------------------------------------------------------- the malformed requests

JUNK_IDS = {"letters": "abc", "40 digits": "9" * 40, "beyond bigint": "9223372036854775808", "negative": "-1",
            "zero": "0", "NaN": "NaN", "Infinity": "Infinity", "exponent": "1e3", "fraction": "1.5",
            "full-width digits": "%EF%BC%91%EF%BC%92", "Arabic-Indic digits": "%D9%A1%D9%A2",
            "superscript two": "%C2%B2", "NUL": "%00", "invalid UTF-8": "%FF%FE", "blank": "%20",
            "traversal": "..%2F..%2Fetc%2Fpasswd"}
JUNK_TEXT = {"NUL": "%00", "invalid UTF-8": "%FF%FE", "UTF-8 of a surrogate": "%ED%A0%80",
             "control characters": "%01%02%1B", "right-to-left override": "%E2%80%AE", "7 KB": "a" * 7000}
BAD_STRINGS = {"NUL": "甲\u0000乙", "lone surrogate": "\ud800", "control character": "a\u001bb"}


def _spoilt(value: Any, required: bool) -> list[tuple[str, Any]]:
    """Wrong-typed and out-of-range replacements for a field whose valid value is ``value``
    (null only for a required field: null is how an optional one is left unset)."""
    if isinstance(value, bool):
        return [("a string for a boolean", "yes")]
    if isinstance(value, int):
        return [("a string for a number", "1"), ("a float for an id", 1.5), ("beyond bigint", 2 ** 63),
                ("negative", -1), ("true for a number", True), ("an array for a number", [1])]
    if isinstance(value, str):
        out: list[tuple[str, Any]] = [("an array for a string", ["x"]), ("an object for a string", {"x": 1})]
        out += [("null", None)] if required else []
        out += list(BAD_STRINGS.items())
        if "." in value and value.replace(".", "").isdigit():  # an amount (a JSON number is one too)
            out += [("NaN", "NaN"), ("Infinity", "Infinity"), ("1e400", "1e400"), ("20 digits", "9" * 20)]
        else:
            out += [("a number for a string", 12345)]
        return out
    if isinstance(value, list):
        return [("an object for an array", {"x": 1}), ("a string for an array", "x"), ("an array of strings", ["x"])]
    return [("a string for an object", "x")]


def json_cases(method: str, path: str, spec: Spec, route: APIRoute) -> list[Case]:
    """The malformed JSON bodies of one route (module docstring)."""
    valid = json.dumps(spec.valid, ensure_ascii=False).encode()
    required = [n for body in route.dependant.body_params for n, f in body.field_info.annotation.model_fields.items()
                if f.is_required()] if route.dependant.body_params else []
    j = "application/json"
    cases = [
        Case("not JSON", method, path, b'{"name": ', j, names=("json",)),
        Case("an array for the object", method, path, b"[1, 2]", j, names=("body",)),
        Case("a string for the object", method, path, b'"x"', j, names=("body",)),
        Case("an empty body", method, path, b"", j, names=("body", "missing")),
        Case("JSON with NaN", method, path, json.dumps({**spec.valid, "zz": float("nan")}).encode(), j),
        Case("an unknown field", method, path, json.dumps({**spec.valid, "zz_unknown": 1}).encode(), j,
             names=("zz_unknown",)),
        Case("invalid UTF-8", method, path, valid[:-1] + b', "zz": "\xff\xfe"}', j, names=("utf-8", "json")),
        Case("text/plain", method, path, valid, "text/plain", names=("application/json",), statuses=(415,)),
        Case("a form for JSON", method, path, b"name=x&external_id=y", "application/x-www-form-urlencoded",
             names=("application/json",), statuses=(415,)),
        Case("over the body limit", method, path, b'{"name": "' + b"x" * MAX_BODY + b'"}', j, names=("too large",),
             statuses=(413,)),
        Case("deeply nested", method, path, b'{"x": ' + b"[" * 5000 + b"]" * 5000 + b"}", j),
    ]
    if required:
        cases.append(Case("required fields missing", method, path, b"{}", j, names=tuple(required)))
    for name, value in spec.valid.items():
        for label, bad in _spoilt(value, name in required):
            body = json.dumps({**spec.valid, name: bad}, allow_nan=False).encode()  # ASCII: "\\ud800" escaped
            cases.append(Case(f"{name}: {label}", method, path, body, j, names=(name,)))
    return cases


def path_cases(method: str, template: str, spec: Spec, body: bytes | None, ctype: str | None) -> list[Case]:
    """The route with each path parameter in turn replaced by junk."""
    cases = []
    for param in spec.path:
        for label, junk in JUNK_IDS.items():
            values = {**spec.path, param: junk}
            cases.append(Case(f"{{{param}}}: {label}", method, template.format(**values), body, ctype))
    return cases


def query_cases(method: str, path: str, route: APIRoute, body: bytes | None, ctype: str | None) -> list[Case]:
    """Each declared query parameter in turn given junk: a 4xx for a typed one (number,
    boolean, date, choice), any answer but a 5xx for free text."""
    cases = []
    pending = [route.dependant]
    while pending:
        dependant = pending.pop()
        pending.extend(dependant.dependencies)
        for param in dependant.query_params:
            typed = param.field_info.annotation not in (str, str | None)
            for label, junk in (JUNK_IDS if typed else JUNK_TEXT).items():
                if typed and junk in ("1e3", "0", "-1") and "int" not in str(param.field_info.annotation):
                    continue
                lenient = not typed or (label in ("zero", "negative", "exponent") and "limit" not in param.alias)
                cases.append(Case(f"?{param.alias}: {label}", method, f"{path}?{param.alias}={junk}", body, ctype,
                                  names=() if lenient else (param.alias,), lenient=lenient))
    return cases


def form_cases(method: str, path: str, spec: Spec, csrf: str) -> list[Case]:
    """The malformed forms of one route (module docstring)."""
    f = "application/x-www-form-urlencoded"
    fields = {**spec.valid, **({"csrf": csrf} if spec.auth == "session" else {}),
              **({"csrf": "c" * 32} if spec.auth == "login" else {})}

    def encoded(values: dict[str, str]) -> bytes:
        return "&".join(f"{k}={v}" for k, v in values.items()).encode()

    cases = [
        Case("not UTF-8", method, path, encoded(fields) + b"&zz=%ff%fe\xff", f),
        Case("JSON instead of a form", method, path, json.dumps(fields).encode(), "application/json"),
        Case("too many fields", method, path, encoded(fields) + b"".join(b"&f%d=x" % i for i in range(40)), f),
        Case("too big", method, path, encoded(fields) + b"&zz=" + b"x" * (MAX_BODY + 10), f,
             statuses=(413, 400, 403)),
        Case("an empty form", method, path, b"", f),
    ]
    if "csrf" in fields:
        cases += [Case("no CSRF token", method, path, encoded({k: v for k, v in fields.items() if k != "csrf"}), f,
                       statuses=(403,)),
                  Case("a wrong CSRF token", method, path, encoded({**fields, "csrf": "0" * 32}), f, statuses=(403,))]
    if "form_key" in fields:
        cases += [Case("no form key", method, path, encoded({k: v for k, v in fields.items() if k != "form_key"}), f,
                       statuses=(403,)),
                  Case("NUL in a field", method, path, encoded({**fields, "company": "甲%00乙"}), f),
                  Case("amount: NaN", method, path, encoded({**fields, "amount": "NaN"}), f, names=("amount",)),
                  Case("amount: 1e400", method, path, encoded({**fields, "amount": "1e400"}), f, names=("amount",)),
                  Case("wrong content type", method, path, encoded(fields), "text/plain", statuses=(415,))]
    for name in spec.id_fields:
        for label, junk in JUNK_IDS.items():
            if label in ("zero", "negative") and name == "id":
                continue  # a well-formed id that names nothing: answered 404 (a 4xx all the same)
            cases.append(Case(f"{name}: {label}", method, path, encoded({**fields, name: junk}), f))
    if path == "/reports/performance/targets":
        for name, junk in (("month", "2026-13"), ("month", "%00"), ("amount", "NaN"), ("amount", "1e400"),
                           ("amount", "-5"), ("currency", "XXX"), ("currency", "%00")):
            cases.append(Case(f"{name}: {junk}", method, path, encoded({**fields, name: junk}), f))
    if path == "/reports/operations/quarantine/retry":
        for name, junk in (("system", "nosuch"), ("stream", "nosuch"), ("system", "%00"), ("stream", "..%2F")):
            cases.append(Case(f"{name}: {junk}", method, path, encoded({**fields, name: junk}), f))
    if path == "/reports/operations/conflicts/resolve":
        cases.append(Case("decision: unknown", method, path, encoded({**fields, "decision": "explode"}), f))
    return cases


def _wecom_query(signature: str | None = None, timestamp: str | None = None, nonce: str = "n1",
                 echostr: str | None = None) -> str:
    params = {"msg_signature": signature if signature is not None else "0" * 40,
              "timestamp": timestamp if timestamp is not None else str(int(time.time())), "nonce": nonce}
    if echostr is not None:
        params["echostr"] = echostr
    return "&".join(f"{k}={v}" for k, v in params.items())


def wecom_cases(method: str, path: str) -> list[Case]:
    """Forged, malformed and hostile WeCom callbacks."""
    crypto = wecom_crypto(WECOM_TOKEN, SANDBOX_ENCODING_AES_KEY, SANDBOX_CORP_ID)

    def sealed(plaintext: str | bytes) -> tuple[str, bytes]:
        s = crypto.seal(plaintext, nonce="n" + secrets.token_hex(4), timestamp=crypto.now_timestamp())
        return (f"msg_signature={s.signature}&timestamp={s.timestamp}&nonce={s.nonce}",
                f"<xml><ToUserName>x</ToUserName><Encrypt><![CDATA[{s.encrypt}]]></Encrypt></xml>".encode())

    x = "text/xml"
    if method == "GET":
        return [Case("no parameters", method, path, names=("missing",)),
                Case("no echostr", method, f"{path}?{_wecom_query()}", names=("missing",)),
                Case("forged signature", method, f"{path}?{_wecom_query(echostr='QUJD')}", names=("signature",)),
                Case("malformed signature", method, f"{path}?{_wecom_query('xyz', echostr='QUJD')}",
                     names=("signature",)),
                Case("NaN timestamp", method, f"{path}?{_wecom_query(timestamp='NaN', echostr='QUJD')}",
                     names=("timestamp",)),
                Case("stale timestamp", method, f"{path}?{_wecom_query(timestamp='1000', echostr='QUJD')}",
                     names=("timestamp",)),
                Case("echostr not base64", method, f"{path}?{_wecom_query(echostr='%FF%00')}", names=("echostr",)),
                Case("parameter twice", method, f"{path}?{_wecom_query(echostr='QUJD')}&nonce=x",
                     names=("duplicate",))]
    query, envelope = sealed("<xml><Event>x</Event></xml>")
    cases = [
        Case("no parameters", method, path, b"<xml/>", x, names=("missing",)),
        Case("forged signature", method, f"{path}?{_wecom_query()}", envelope, x, names=("signature",)),
        Case("malformed signature", method, f"{path}?{_wecom_query('g' * 40)}", envelope, x, names=("signature",)),
        Case("timestamp 400 digits", method, f"{path}?{_wecom_query(timestamp='9' * 400)}", envelope, x,
             names=("timestamp",)),
        Case("nonce of NULs", method, f"{path}?{_wecom_query(nonce='%00%00')}", envelope, x, names=("nonce",)),
        Case("not XML", method, f"{path}?{query}", b"{not xml", x, names=("malformed",)),
        Case("XML not UTF-8", method, f"{path}?{query}", b"<xml><Encrypt>\xff\xfe</Encrypt></xml>", x,
             names=("malformed", "utf-8")),
        Case("a DTD (billion laughs)", method, f"{path}?{query}",
             b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><xml><Encrypt>&b;'
             b"</Encrypt></xml>", x, names=("malformed", "dtd")),
        Case("an external entity (XXE)", method, f"{path}?{query}",
             b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><Encrypt>&e;'
             b"</Encrypt></xml>", x, names=("malformed", "dtd", "external")),
        Case("no Encrypt", method, f"{path}?{query}", b"<xml><ToUserName>x</ToUserName></xml>", x,
             names=("encrypt",)),
        Case("Encrypt not base64", method, f"{path}?{query}", b"<xml><Encrypt>%%%</Encrypt></xml>", x,
             names=("encrypt",)),
        Case("nested too deep", method, f"{path}?{query}", b"<a>" * 100 + b"</a>" * 100, x, names=("malformed",)),
        Case("over the body limit", method, f"{path}?{query}", b"<xml>" + b"x" * (1 << 20) + b"</xml>", x,
             names=("too_large", "large"), statuses=(413,)),
    ]
    def event(fields: str) -> str:
        return (f"<xml><ToUserName>x</ToUserName><FromUserName>sys</FromUserName><CreateTime>{int(time.time())}"
                f"</CreateTime><MsgType>event</MsgType>{fields}</xml>")

    # authentic (signed) events with odd fields: taken or refused, never a 500 (WeCom retries a 500)
    for label, plaintext in (
            ("an approval event without ApprovalInfo", event("<Event>sys_approval_change</Event>")),
            ("an approval event with ApprovalInfo as text", event("<Event>sys_approval_change</Event>"
                                                                 "<ApprovalInfo>x</ApprovalInfo>")),
            ("an approval event with SpNo twice", event("<Event>sys_approval_change</Event><ApprovalInfo>"
                                                        "<SpNo>1</SpNo><SpNo>2</SpNo></ApprovalInfo>")),
            ("a lost contact with nested ids", event("<Event>change_external_contact</Event><ChangeType>"
                                                     "del_follow_user</ChangeType><ExternalUserID><a>1</a>"
                                                     "</ExternalUserID><CreateTime>NaN</CreateTime>")),
            ("a 20-digit CreateTime", event("<Event>change_external_contact</Event><ChangeType>del_external_contact"
                                            "</ChangeType><ExternalUserID>wm1</ExternalUserID>").replace(
                "<CreateTime>", "<CreateTime>99999999999999999999"))):
        signed_query, signed_envelope = sealed(plaintext)
        cases.append(Case(f"signed, {label}", method, f"{path}?{signed_query}", signed_envelope, x, lenient=True,
                          also_stored=ACCEPTED_EVENT))
    for label, plaintext in (("decrypts to garbage", b"\x00\x01not xml at all"),
                             ("decrypts to a DTD", b'<!DOCTYPE x [<!ENTITY a "a">]><xml>&a;</xml>'),
                             ("decrypts to invalid UTF-8", b"<xml><Event>\xff\xfe</Event></xml>")):
        signed_query, signed_envelope = sealed(plaintext)
        cases.append(Case(f"signed, {label}", method, f"{path}?{signed_query}", signed_envelope, x,
                          names=("malformed", "undecryptable")))
    return cases


def dingtalk_cases(method: str, path: str) -> list[Case]:
    """Forged, malformed and hostile DingTalk pushes."""
    crypto = dingtalk_crypto(DINGTALK_TOKEN, SANDBOX_CALLBACK_AES_KEY, SANDBOX_APP_KEY)

    def sealed(plaintext: str | bytes) -> tuple[str, bytes]:
        s = crypto.seal(plaintext, nonce="n" + secrets.token_hex(4), timestamp=crypto.now_timestamp())
        return (f"signature={s.signature}&timestamp={s.timestamp}&nonce={s.nonce}",
                json.dumps({"encrypt": s.encrypt}).encode())

    def query(signature: str = "0" * 40, timestamp: str | None = None, nonce: str = "n1") -> str:
        return f"signature={signature}&timestamp={timestamp or int(time.time() * 1000)}&nonce={nonce}"

    j = "application/json"
    good_query, envelope = sealed('{"EventType": "check_url"}')
    cases = [
        Case("no parameters", method, path, envelope, j, names=("missing",)),
        Case("forged signature", method, f"{path}?{query()}", envelope, j, names=("signature",)),
        Case("both spellings", method, f"{path}?{query()}&msg_signature={'0' * 40}", envelope, j,
             names=("duplicate",)),
        Case("seconds for milliseconds (stale)", method, f"{path}?{query(timestamp=str(int(time.time())))}",
             envelope, j, names=("timestamp",)),
        Case("NaN timestamp", method, f"{path}?{query(timestamp='NaN')}", envelope, j, names=("timestamp",)),
        Case("not JSON", method, f"{path}?{good_query}", b"{not json", j, names=("malformed",)),
        Case("an array for the envelope", method, f"{path}?{good_query}", b"[1]", j, names=("malformed",)),
        Case("invalid UTF-8", method, f"{path}?{good_query}", b'{"encrypt": "\xff\xfe"}', j, names=("malformed",)),
        Case("encrypt a number", method, f"{path}?{good_query}", b'{"encrypt": 12}', j, names=("encrypt",)),
        Case("nested too deep", method, f"{path}?{good_query}", b'{"encrypt": ' + b"[" * 3000 + b"]" * 3000 + b"}",
             j, names=("malformed",)),
        Case("over the body limit", method, f"{path}?{good_query}", b'{"encrypt": "' + b"A" * (1 << 20) + b'"}', j,
             names=("too_large", "large"), statuses=(413,)),
    ]
    for label, plaintext in (("decrypts to garbage", b"\x00\x01not json"),
                             ("decrypts to an array", b"[1, 2]"),
                             ("decrypts to invalid UTF-8", b'{"EventType": "\xff\xfe"}'),
                             ("decrypts to deep JSON", b"[" * 100 + b"]" * 100)):
        signed_query, signed_envelope = sealed(plaintext)
        cases.append(Case(f"signed, {label}", method, f"{path}?{signed_query}", signed_envelope, j,
                          names=("malformed", "undecryptable")))
    # authentic (signed) events with odd fields: taken or refused, never a 500 (DingTalk would
    # retry it for ever); nothing but their audit row stored
    for label, event in (
            ("a to-do event with NUL in its id", '{"EventType": "todo_task_update", "done": true, '
                                                 '"taskId": "t\\u0000x", "finishTime": 1e400}'),
            ("a to-do event with a lone surrogate", '{"EventType": "todo_task_update", "done": true, '
                                                    '"taskId": "\\ud800", "operatorUnionId": "\\ud800"}'),
            ("a to-do event with NaN times", '{"EventType": "todo_task_update", "done": true, "taskId": "x", '
                                             '"finishTime": NaN}'),
            ("an approval event with NUL in the instance id", '{"EventType": "bpms_instance_change", '
                                                              '"processInstanceId": "p\\u0000", "result": "agree"}'),
            ("an approval event with wrong types", '{"EventType": "bpms_instance_change", "processInstanceId": '
                                                   '[1, {"a": null}], "type": 12, "finishTime": "soon"}'),
            ("a key of NUL", '{"\\u0000": "\\u0000", "EventType": "\\u0000"}')):
        signed_query, signed_envelope = sealed(event)
        cases.append(Case(f"signed, {label}", method, f"{path}?{signed_query}", signed_envelope, j, lenient=True,
                          also_stored=ACCEPTED_EVENT))
    return cases


def cases_for(h: Hostile, method: str, path: str, spec: Spec) -> list[Case]:
    """Every malformed request of one route."""
    url = path.format(**spec.path) if spec.path else path
    route = route_of(h.app, method, path)
    if spec.body == "wecom":
        return wecom_cases(method, path)
    if spec.body == "dingtalk":
        return dingtalk_cases(method, path)
    cases: list[Case] = []
    body = json.dumps(spec.valid, ensure_ascii=False).encode() if spec.body == "json" else None
    ctype = "application/json" if body is not None else None
    if spec.body == "json":
        assert route is not None, (method, path)
        cases += json_cases(method, url, spec, route)
    elif spec.body == "form":
        cases += form_cases(method, url, spec, session_csrf(h.session))
    cases += path_cases(method, path, spec, body, ctype)
    if route is not None:
        cases += query_cases(method, url, route, body, ctype)
    return cases


# ---------------------------------------------------------------------------- the tests


def test_every_route_has_malformed_cases_or_a_reason_why_not(hostile):
    served = app_routes(hostile.app)
    assert not set(ROUTES) & set(NO_INPUT)
    assert sorted(served - set(ROUTES) - set(NO_INPUT)) == [], "routes without malformed cases: add them to ROUTES"
    assert sorted((set(ROUTES) | set(NO_INPUT)) - served) == [], "routes the app no longer serves"


def test_every_body_and_path_parameter_of_a_route_is_described(hostile):
    # a route that takes a JSON body or path parameters must have its valid body and ids here,
    # or its fields and parameters go unspoilt
    for method, path in ROUTES:
        route = route_of(hostile.app, method, path)
        if route is None:
            continue
        spec = ROUTES[(method, path)]
        assert (spec.body == "json") == bool(route.dependant.body_params), (method, path)
        assert set(spec.path) == {p.name for p in route.dependant.path_params}, (method, path)


@pytest.mark.parametrize(("method", "path"), sorted(ROUTES), ids=[f"{m} {p}" for m, p in sorted(ROUTES)])
def test_malformed_requests_are_a_clear_4xx_and_store_nothing(hostile, method, path):
    spec = ROUTES[(method, path)]
    cases = cases_for(hostile, method, path, spec)
    assert cases, "no malformed case for this route"
    problems = [p for case in cases if (p := judge(hostile, spec, case)) is not None]
    assert problems == [], f"{len(problems)} of {len(cases)} malformed requests:\n" + "\n".join(problems)


def test_a_refused_callback_whose_nonce_is_nuls_is_still_on_the_audit(db, served):
    # the refusal's details keep a prefix of the nonce; NUL cannot be stored in jsonb, and the
    # audit row used to be lost (logged "on_rejected hook failed") with the refusal unrecorded
    reply = httpx.post(f"{served}/callbacks/wecom?msg_signature={'0' * 40}&timestamp={int(time.time())}&nonce=%00%00",
                       content=b"<xml/>")
    assert reply.status_code == 400 and reply.text.startswith("bad_nonce")
    [row] = audit(db, outcome="rejected")
    assert (row.error, row.detail["nonce"]) == ("bad_nonce", "\ufffd\ufffd")
