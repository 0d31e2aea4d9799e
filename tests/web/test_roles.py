"""Who may read what, over real HTTP: every page and endpoint × every role, no credential,
an expired, a revoked and a malformed one.

Given two sales teams and the public pool (:func:`tests.support.access.build_teams`):
alice (reporting to manager mia) owns one customer, bob another, a third is in the pool.
A page without a valid credential redirects to the sign-in page with ``next``; an API
call gets 401 with ``WWW-Authenticate``. A role that sees no customers (it) gets 403. A
customer (or task) the principal does not see is a 404, exactly like one that does not
exist, on pages and the API alike, and search leaves it out.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import sqlalchemy as sa

from connectors.kit.sandbox import serve_in_thread
from hub.access import Role
from hub.web import create_web_app
from hub.web.auth import SESSION_COOKIE
from tests.support.access import Teams, bearer, build_teams, issue_session, issue_token

pytestmark = pytest.mark.e2e  # starts a server
# a correctness test, not a timed one: on a busy shared machine a page may take longer than
# httpx's 5 s default (seen: a ReadTimeout at load 17)
TIMEOUT_S = 60

ALLOWED, HIDDEN, FORBIDDEN = 200, 404, 403
CUSTOMER_PAGES = ("alice_page", "bob_page", "pool_page", "alice_task", "loose_task", "search_page")
CUSTOMER_API = ("api_alice", "api_bob", "api_pool", "api_search")
OPEN = ("healthz", "openapi")


def paths(t: Teams) -> dict[str, str]:
    """Every page and endpoint of the app that existed before sign-in, by name."""
    return {
        "search_page": "/customers?q=测试", "alice_page": f"/customers/{t.alice_customer}",
        "bob_page": f"/customers/{t.bob_customer}", "pool_page": f"/customers/{t.pool_customer}",
        "alice_task": f"/tasks/{t.alice_task}", "loose_task": f"/tasks/{t.bob_loose_task}",
        "api_search": "/api/customers?q=测试", "api_alice": f"/api/customers/{t.alice_customer}",
        "api_bob": f"/api/customers/{t.bob_customer}", "api_pool": f"/api/customers/{t.pool_customer}",
        "docs": "/docs", "healthz": "/healthz", "openapi": "/openapi.json",
    }


def expected(role: str) -> dict[str, int | str]:
    """What each principal gets from each path: a status, or 'login' (redirect to sign in)."""
    everything = {name: ALLOWED for name in (*CUSTOMER_PAGES, *CUSTOMER_API, "docs", *OPEN)}
    if role in ("none", "expired", "revoked", "malformed"):
        return {**{n: "login" for n in (*CUSTOMER_PAGES, "docs")}, **{n: 401 for n in CUSTOMER_API},
                **{n: ALLOWED for n in OPEN}}
    if role == "it":
        return {**everything, **{n: FORBIDDEN for n in (*CUSTOMER_PAGES, *CUSTOMER_API)}}
    if role in ("finance", "admin", "crm"):
        return everything
    sees = {"alice": {"alice_page", "api_alice", "alice_task"},
            "alice_session": {"alice_page", "api_alice", "alice_task"},
            "bob": {"bob_page", "api_bob", "loose_task"},
            "mia": {"alice_page", "api_alice", "alice_task", "pool_page", "api_pool"}}[role]
    hidden = {"alice_page", "bob_page", "pool_page", "alice_task", "loose_task", "api_alice", "api_bob",
              "api_pool"} - sees
    return {**everything, **{n: HIDDEN for n in hidden}}


SEARCH_HITS = {
    "alice": {"苏州艾丽丝测试有限公司"}, "alice_session": {"苏州艾丽丝测试有限公司"}, "bob": {"无锡鲍勃测试有限公司"},
    "mia": {"苏州艾丽丝测试有限公司", "常州公海测试有限公司"},
    "finance": {"苏州艾丽丝测试有限公司", "无锡鲍勃测试有限公司", "常州公海测试有限公司"},
}
SEARCH_HITS["admin"] = SEARCH_HITS["crm"] = SEARCH_HITS["finance"]
ROLES = ("none", "expired", "revoked", "malformed", "it", "alice", "alice_session", "bob", "mia", "finance", "admin",
         "crm")


@pytest.fixture
def world(db, settings) -> Iterator[tuple[str, Teams, dict[str, dict[str, str]]]]:
    """The served app, the teams, and request headers/cookies per principal."""
    teams = build_teams(db)
    revoked = issue_token(db, Role.ADMIN)
    with db.engine.begin() as conn:
        conn.execute(sa.text("UPDATE api_token SET revoked_at = now() WHERE label = 'test' AND role = 'admin'"))
    credentials: dict[str, dict[str, str]] = {
        "none": {},
        "expired": bearer(issue_token(db, Role.ADMIN, expires_in_s=-1)),
        "revoked": bearer(revoked),
        "malformed": {"Authorization": "Bearer hub_tok_" + "x" * 500},
        "it": bearer(issue_token(db, Role.IT)),
        "alice": bearer(issue_token(db, Role.SALES, user_id=teams.alice)),
        "alice_session": {"Cookie": f"{SESSION_COOKIE}={issue_session(db, Role.SALES, user_id=teams.alice)}"},
        "bob": bearer(issue_token(db, Role.SALES, user_id=teams.bob)),
        "mia": bearer(issue_token(db, Role.MANAGER, user_id=teams.mia)),
        "finance": bearer(issue_token(db, Role.FINANCE)),
        "admin": bearer(issue_token(db, Role.ADMIN)),
        "crm": bearer(issue_token(db, Role.CRM)),
    }
    with serve_in_thread(create_web_app(db, settings)) as server:
        yield server.url, teams, credentials


@pytest.mark.parametrize("role", ROLES)
def test_every_page_and_endpoint_answers_each_principal_as_its_role_allows(world, role):
    url, teams, credentials = world
    want = expected(role)
    got: dict[str, int | str] = {}
    with httpx.Client(base_url=url, headers=credentials[role], follow_redirects=False, timeout=TIMEOUT_S) as http:
        for name, path in paths(teams).items():
            reply = http.get(path)
            if reply.status_code == 303 and reply.headers["location"].startswith("/login?"):
                # the sign-in page is told where to come back to
                assert parse_qs(urlsplit(reply.headers["location"]).query)["next"] == [reply.request.url.raw_path.decode()]
                got[name] = "login"
            else:
                got[name] = reply.status_code
            if reply.status_code == 401:
                assert reply.headers["www-authenticate"].startswith("Bearer")
            if reply.status_code == 404 and name.startswith("api_"):
                assert reply.json()["detail"].startswith("no customer")  # the same as for an unknown id
    assert got == want


@pytest.mark.parametrize("role", [r for r in ROLES if r in SEARCH_HITS])
def test_search_and_the_list_endpoint_show_only_the_customers_the_role_sees(world, role):
    url, _teams, credentials = world
    with httpx.Client(base_url=url, headers=credentials[role], timeout=TIMEOUT_S) as http:
        listed = {hit["name"] for hit in http.get("/api/customers", params={"q": "测试有限公司"}).json()}
        page = http.get("/customers", params={"q": "测试有限公司"}).text
    assert listed == SEARCH_HITS[role]
    for name in SEARCH_HITS["finance"]:
        assert (name in page) == (name in SEARCH_HITS[role])


def test_a_hidden_customer_is_indistinguishable_from_a_missing_one(world):
    url, teams, credentials = world
    with httpx.Client(base_url=url, headers=credentials["bob"], timeout=TIMEOUT_S) as http:
        hidden = http.get(f"/api/customers/{teams.alice_customer}")
        missing = http.get("/api/customers/999999999")
        by_id = http.get("/api/customers", params={"q": str(teams.alice_customer)}).json()
    assert (hidden.status_code, missing.status_code) == (404, 404)
    assert hidden.json()["detail"].replace(str(teams.alice_customer), "N") == \
        missing.json()["detail"].replace("999999999", "N")
    assert by_id == []  # not even an exact id match reveals it
