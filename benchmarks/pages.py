"""Report page latency at a mid-size company's volume: p50/p95 per page through the app.

    .venv/bin/python benchmarks/pages.py [--scale 1.0] [--requests 20]

At ``--scale 1`` a fresh schema gets 20,000 customers, 200,000 orders, 500,000 receivables,
200,000 receipts, 20,000 leads with their stage history, contracts, interactions and tasks
(INSERT … SELECT generate_series: seconds, not hours), then ``ANALYZE``. Each page of
:data:`PAGES` is requested ``--requests`` times through the ASGI app (Starlette's httpx
test client, in process: no network in the figures), as the role given: ``admin`` sees
everything, ``manager`` is the first team's manager (a tenth of the company), ``sales`` its
first salesperson. ``/healthz`` (one small query) is timed the same way as the baseline;
each page's p95 is printed as a ratio to it, so the figures travel between machines
(the machine is shared: absolute times move with its load).

To add a page, add a line to :data:`PAGES`; to add data it needs, add a statement to
:data:`GENERATE` (``{n}`` is the scale's customer count).
Uses ``HUB_TEST_DATABASE_URL``, else Postgres on 127.0.0.1:5432/test, else the embedded one.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from benchmarks.ingest import database_url, drop, fresh_db
from hub.access import Role
from hub.database import Database
from hub.settings import Settings
from hub.web import create_web_app
from tests.support.access import bearer, issue_token

# (name, path, role): the pages timed, in the order printed
PAGES: list[tuple[str, str, str]] = [
    ("funnel (admin)", "/reports/funnel", "admin"),
    ("funnel (manager)", "/reports/funnel", "manager"),
    ("funnel (sales)", "/reports/funnel", "sales"),
    ("funnel of customers (admin)", "/reports/funnel?subject=customer", "admin"),
    ("rfm (admin)", "/reports/rfm", "admin"),
    ("rfm (manager)", "/reports/rfm", "manager"),
    ("rfm segment list (admin)", "/reports/rfm/customers?segment=重要价值", "admin"),
    ("performance (admin)", "/reports/performance", "admin"),
    ("performance (manager)", "/reports/performance", "manager"),
    ("performance (sales)", "/reports/performance", "sales"),
    ("receivables (finance)", "/reports/receivables", "finance"),
    ("receivables CSV (finance)", "/reports/receivables.csv?table=aging", "finance"),
    ("receivables XLSX (finance)", "/reports/receivables.xlsx", "finance"),
    ("operations (it)", "/reports/operations", "it"),
]
BASELINE = ("healthz", "/healthz", "admin")

TEAMS = 10
REPS_PER_TEAM = 19
# the data, proportional to {n} customers; {u0} is the first user id
GENERATE: list[str] = [
    # managers (u0 … u0+9), then their reps; departments 销售一部 …
    f"""INSERT INTO internal_user (name, department, source_system, external_id)
        SELECT '经理' || g, '销售' || g || '部', 'bench', 'm' || g FROM generate_series(1, {TEAMS}) g""",
    f"""INSERT INTO internal_user (name, department, manager_id, source_system, external_id)
        SELECT '销售' || g, '销售' || (1 + g % {TEAMS}) || '部', {{u0}} + g % {TEAMS}, 'bench', 'r' || g
        FROM generate_series(1, {TEAMS * REPS_PER_TEAM}) g""",
    f"""INSERT INTO customer (name, normalized_name, region, owner_id, stage, created_at)
        SELECT '客户' || g, '客户' || g, (ARRAY['上海', '杭州', '深圳', '成都'])[1 + g % 4],
               CASE WHEN g % 50 = 0 THEN NULL ELSE {{u0}} + {TEAMS} + g % {TEAMS * REPS_PER_TEAM} END,
               (ARRAY['潜在客户', '意向客户', '方案/报价'])[1 + g % 3], now() - (g % 365) * interval '1 day'
        FROM generate_series(1, {{n}}) g""",
    """INSERT INTO sales_order (order_number, customer_id, owner_id, order_date, currency, total_amount, status,
                               source_system, external_id)
        SELECT 'SO' || g, c.id, c.owner_id, current_date - (g % 7919) * 13 % 540, CASE WHEN g % 10 = 0 THEN 'USD' ELSE 'CNY' END,
               1000 + (g % 9973) * 9, 'erp', (ARRAY['kingdee', 'yonyou', 'crm'])[1 + g % 3], 'SO' || g
        FROM generate_series(1, {n} * 10) g JOIN customer c ON c.id = (SELECT min(id) FROM customer) + g % {n}""",
    """INSERT INTO receivable (customer_id, bill_number, bill_date, due_date, currency, amount, open_amount,
                              source_system, external_id)
        SELECT (SELECT min(id) FROM customer) + g % {n}, 'AR' || g, current_date - (g % 400),
               current_date - (g % 400) + 30, 'CNY', 500 + g % 9000, (g % 3) * 100, 'kingdee', 'AR' || g
        FROM generate_series(1, {n} * 25) g""",
    """INSERT INTO receipt (customer_id, bill_number, receipt_date, currency, amount, source_system, external_id)
        SELECT (SELECT min(id) FROM customer) + g * 31 % {n}, 'SK' || g, current_date - (g * 13 % 500),
               CASE WHEN g % 10 = 0 THEN 'USD' ELSE 'CNY' END, 100 + g % 50000, 'kingdee', 'SK' || g
        FROM generate_series(1, {n} * 10) g""",
    """INSERT INTO contract (customer_id, owner_id, contract_number, title, currency, amount, status, signed_at,
                            source_system, external_id)
        SELECT c.id, c.owner_id, 'HT' || c.id, '框架合同', 'CNY', 10000 + c.id % 90000,
               CASE WHEN c.id % 3 = 0 THEN 'draft' ELSE 'signed' END, now() - (c.id % 200) * interval '1 day',
               'crm', 'HT' || c.id FROM customer c""",
    """INSERT INTO interaction (customer_id, user_id, kind, occurred_at, summary)
        SELECT c.id, c.owner_id, 'call', now() - (g % 90) * interval '1 day', '电话'
        FROM generate_series(1, 5) g, customer c WHERE c.owner_id IS NOT NULL""",
    """INSERT INTO task (title, customer_id, assignee_id, due_at, status, completed_at, completed_via, push_state)
        SELECT '跟进', c.id, c.owner_id, now() - (g * 11 % 60) * interval '1 day',
               CASE WHEN (c.id + g) % 3 = 0 THEN 'open' ELSE 'done' END,
               CASE WHEN (c.id + g) % 3 = 0 THEN NULL ELSE now() - (g * 11 % 60) * interval '1 day' END,
               CASE WHEN (c.id + g) % 3 = 1 THEN 'wecom' WHEN (c.id + g) % 3 = 2 THEN 'crm' END,
               CASE WHEN g % 2 = 0 THEN '{{"wecom": {{"due:x": {{"state": "sent"}}}}}}'::jsonb ELSE '{{}}'::jsonb END
        FROM generate_series(1, 3) g, customer c WHERE c.owner_id IS NOT NULL""",
    """INSERT INTO lead (company_name, normalized_name, region, owner_id, stage, source_system, external_id, created_at)
        SELECT '线索' || g, '线索' || g, (ARRAY['上海', '杭州', '深圳', '成都'])[1 + g % 4], c.owner_id,
               CASE WHEN g % 17 = 0 THEN '输单'
                    ELSE (ARRAY['潜在客户', '意向客户', '方案/报价', '商务谈判', '赢单'])[1 + (g * g) % 5] END,
               'bench', 'L' || g, now() - (g % 120) * interval '1 day'
        FROM generate_series(1, {n}) g JOIN customer c ON c.id = (SELECT min(id) FROM customer) + g % {n}""",
    """INSERT INTO stage_change (subject_type, subject_id, from_stage, to_stage, changed_at, source, actor)
        SELECT 'lead', l.id, CASE WHEN k > 1 THEN s.st[k - 1] END, s.st[k],
               l.created_at + (k - 1) * (2 + l.id % 9) * interval '1 day', 'bench', 'bench'
        FROM lead l, LATERAL (SELECT ARRAY['潜在客户', '意向客户', '方案/报价', '商务谈判', '赢单'] AS st) s,
             generate_series(1, COALESCE(array_position(s.st, l.stage), 3)) k""",
]


def generate(db: Database, customers: int) -> dict[str, int]:
    """Fill the schema (module doc); returns the row counts."""
    with db.begin() as conn:
        conn.execute(sa.text(GENERATE[0]))
        u0 = conn.execute(sa.text("SELECT min(id) FROM internal_user")).scalar_one()
        for statement in GENERATE[1:]:
            conn.execute(sa.text(statement.format(n=customers, u0=u0)))
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("ANALYZE"))
        tables = ("customer", "sales_order", "receivable", "receipt", "lead", "stage_change", "task", "interaction")
        return {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in tables}


def principals(db: Database) -> dict[str, dict[str, str]]:
    """A bearer header per role name of :data:`PAGES`."""
    with db.engine.connect() as conn:
        manager = conn.execute(sa.text("SELECT min(id) FROM internal_user WHERE manager_id IS NULL")).scalar_one()
        rep = conn.execute(sa.text("SELECT min(id) FROM internal_user WHERE manager_id = :m"), {"m": manager}).scalar()
    return {"admin": bearer(issue_token(db, Role.ADMIN)),
            "manager": bearer(issue_token(db, Role.MANAGER, user_id=manager)),
            "sales": bearer(issue_token(db, Role.SALES, user_id=rep)),
            "finance": bearer(issue_token(db, Role.FINANCE)),
            "it": bearer(issue_token(db, Role.IT))}


def timed(client: TestClient, path: str, headers: dict[str, str], requests: int) -> list[float]:
    """Milliseconds per request (one warm-up request first, not counted)."""
    assert client.get(path, headers=headers).status_code == 200, path
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        reply = client.get(path, headers=headers)
        times.append((time.perf_counter() - started) * 1000)
        assert reply.status_code == 200, (path, reply.status_code)
    return times


def p95(values: list[float]) -> float:
    """The 95th percentile (inclusive method)."""
    return statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="1.0 = 20,000 customers")
    parser.add_argument("--requests", type=int, default=20, help="timed requests per page")
    args = parser.parse_args()
    customers = max(int(20_000 * args.scale), 10)
    url = database_url()
    db = fresh_db(url)
    try:
        started = time.perf_counter()
        counts = generate(db, customers)
        print(f"generated in {time.perf_counter() - started:.1f} s: "
              + ", ".join(f"{t} {n:,}" for t, n in counts.items()))
        settings = Settings(database_url=url, database_schema=db.schema, sandbox=True)  # type: ignore[arg-type]
        headers = principals(db)
        with TestClient(create_web_app(db, settings)) as client:
            base = timed(client, BASELINE[1], headers[BASELINE[2]], args.requests)
            base_p95 = p95(base)
            print(f"{'page':32} {'p50 ms':>9} {'p95 ms':>9} {'p95 / healthz':>14}")
            print(f"{BASELINE[0]:32} {statistics.median(base):9.1f} {base_p95:9.1f} {1.0:14.1f}")
            for name, path, role in PAGES:
                times = timed(client, path, headers[role], args.requests)
                print(f"{name:32} {statistics.median(times):9.1f} {p95(times):9.1f} {p95(times) / base_p95:14.1f}")
    finally:
        drop(db)


if __name__ == "__main__":
    main()
