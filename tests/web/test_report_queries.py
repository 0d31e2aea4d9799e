"""The report pages cost a small fixed number of SQL statements, however many customers:
no query per row (N+1). Counted with SQLAlchemy's ``before_cursor_execute`` event on the
app's engine, per page, at 50 customers and again at 500."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from hub.access import Role
from hub.web import create_web_app
from tests.support.access import bearer, issue_token
from tests.support.sales_world import add_customers, build_sales_world

MAX_STATEMENTS = 10  # sign-in lookup, scope, the figures, the filter choices: nothing per row
PAGES = ("/reports/funnel", "/reports/funnel?subject=customer", "/reports/rfm",
         "/reports/rfm/customers?segment=重要价值", "/reports/rfm/customers?segment=一般挽留",
         "/reports/performance", "/reports/performance?team=华东销售部")


@contextmanager
def counting(engine: sa.Engine) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)


def statements_per_page(client: TestClient, engine: sa.Engine, headers: dict[str, str]) -> dict[str, int]:
    counts = {}
    for path in PAGES:
        with counting(engine) as statements:
            reply = client.get(path, headers=headers)
        assert reply.status_code == 200, (path, reply.text[:300])
        counts[path] = len(statements)
    return counts


async def _no_background_rounds(*_: object) -> None:
    """Stands in for the app's background rounds (session pruning at start-up, callback
    maintenance every 15 s): their statements run on the same engine whenever the loop gets
    to them, so on a slow machine they landed inside a page's count (seen: one page one
    statement over at 500 customers). They are no page's cost."""


def test_each_report_page_runs_a_fixed_small_number_of_statements_at_50_and_500_customers(db, settings, monkeypatch):
    monkeypatch.setattr("hub.web.app._prune_sessions_forever", _no_background_rounds)
    monkeypatch.setattr("hub.web.app._maintain_forever", _no_background_rounds)
    world = build_sales_world(db, customers=50)
    app = create_web_app(db, settings)
    with TestClient(app) as client:
        tokens = {"admin": bearer(issue_token(db, Role.ADMIN)),
                  "manager": bearer(issue_token(db, Role.MANAGER, user_id=world.mia)),
                  "sales": bearer(issue_token(db, Role.SALES, user_id=world.alice))}
        small = {who: statements_per_page(client, db.engine, headers) for who, headers in tokens.items()}
        add_customers(db, world, 450, first=50)
        large = {who: statements_per_page(client, db.engine, headers) for who, headers in tokens.items()}
    for who, counts in small.items():
        assert max(counts.values()) <= MAX_STATEMENTS, (who, counts)
    assert large == small  # ten times the customers, not one statement more
