"""Report page latency at a mid-size company's volume: p50/p95 per page and role through the app.

    .venv/bin/python benchmarks/pages.py [--scale 1.0] [--requests 20]
    .venv/bin/python benchmarks/pages.py --before /tmp/main-tree     # before/after, same data, same run
    .venv/bin/python benchmarks/pages.py --keep | --schema bench_x    # keep the data / reuse it

``--before DIR``: DIR is another checkout of the hub (``git worktree add --detach DIR main``);
after generating the data once, each side's app is timed in its own process (DIR's ``hub``
on ``sys.path`` first), ``--rounds`` times in turn (before, after, before, after …), and
the table shows each page's p95 over all of a side's requests. The 1-minute load average is
printed before and after each round (the machine is shared).

At ``--scale 1`` a fresh schema gets 20,000 customers, 200,000 orders, 500,000 receivables,
200,000 receipts, 20,000 leads with their stage history, contracts, interactions and tasks
(INSERT … SELECT generate_series: seconds, not hours), then ``ANALYZE``. Each page of
:data:`PAGES` is requested ``--requests`` times through the ASGI app (Starlette's httpx
test client, in process: no network in the figures), as the role given: ``admin`` sees
everything, ``manager`` is the first team's manager (a tenth of the company), ``sales`` its
first salesperson. ``/healthz`` (one small query) is timed the same way as the baseline;
each page's p95 is printed as a ratio to it, so the figures travel between machines
(the machine is shared: absolute times move with its load).

Every page is timed for every role that may open it (``finance`` and ``it`` as well as
``admin`` for theirs). After generating, the tables are ``VACUUM ANALYZE``d (what autovacuum
does to a settled table: index-only scans need the visibility map) and the receivables
report's summary is built as the end of a ledger sync builds it.

To add a page, add a line to :data:`PAGES`; to add data it needs, add a statement to
:data:`GENERATE` (``{n}`` is the scale's customer count).
Uses ``HUB_TEST_DATABASE_URL``, else Postgres on 127.0.0.1:5432/test, else the embedded one.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import sqlalchemy as sa

# a --child process times the hub of another checkout: that tree first on the path
sys.path.insert(0, sys.argv[sys.argv.index("--child") + 1] if "--child" in sys.argv
                else str(Path(__file__).resolve().parents[1]))

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from benchmarks.ingest import database_url, drop, fresh_db
from hub.access import Role
from hub.database import Database, create_db_engine
from hub.settings import Settings
from hub.web import create_web_app
from hub.web.formatting import Clock
from tests.support.access import bearer, issue_token

ROOT = Path(__file__).resolve().parents[1]
if "--child" not in sys.argv:  # only the generating side needs it (the "before" tree may not have it)
    from hub.ar_summary import refresh_receivables_summary

# (name, path, role): the pages timed, in the order printed
PAGES: list[tuple[str, str, str]] = [
    *((f"funnel ({role})", "/reports/funnel", role) for role in ("admin", "manager", "sales")),
    *((f"funnel of customers ({role})", "/reports/funnel?subject=customer", role) for role in ("admin", "manager")),
    *((f"rfm ({role})", "/reports/rfm", role) for role in ("admin", "manager", "sales")),
    *((f"rfm segment list ({role})", "/reports/rfm/customers?segment=重要价值", role)
      for role in ("admin", "manager", "sales")),
    ("rfm segment list p.3 (admin)", "/reports/rfm/customers?segment=一般挽留&page=3", "admin"),
    *((f"performance ({role})", "/reports/performance", role) for role in ("admin", "manager", "sales")),
    *((f"receivables ({role})", "/reports/receivables", role) for role in ("finance", "admin")),
    ("receivables p.5 (finance)", "/reports/receivables?top_page=5&over_page=5", "finance"),
    ("receivables CSV (finance)", "/reports/receivables.csv?table=aging", "finance"),
    ("receivables XLSX (finance)", "/reports/receivables.xlsx", "finance"),
    *((f"operations ({role})", "/reports/operations", role) for role in ("it", "admin")),
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
    # every 10th customer has a credit limit (many of them are over it)
    "UPDATE customer SET currency = 'CNY', credit_limit = 20000 + id % 7 * 10000 WHERE id % 10 = 0",
    # the operations page: a year of runs of 20 streams, an outbox with dead letters, open quarantine
    """INSERT INTO sync_run (connector, stream, started_at, finished_at, status, counts, error)
        SELECT 'kingdee', 'stream' || g % 20, now() - g * interval '10 minutes',
               now() - g * interval '10 minutes' + interval '1 minute',
               CASE WHEN g % 17 = 0 THEN 'failed' ELSE 'succeeded' END,
               '{{"read": 100, "inserted": 5, "updated": 3, "quarantined": 1}}'::jsonb,
               CASE WHEN g % 17 = 0 THEN 'HTTP 502 from the ERP' END
        FROM generate_series(1, {n} * 2) g""",
    """INSERT INTO outbox (kind, idempotency_key, payload, status, attempts, last_error, updated_at)
        SELECT (ARRAY['wecom.message', 'kingdee.sales_order', 'crm.webhook'])[1 + g % 3], 'bench:' || g, '{{}}'::jsonb,
               CASE WHEN g % 20 = 0 THEN 'dead' WHEN g % 50 = 1 THEN 'failed' WHEN g % 7 = 0 THEN 'pending'
                    ELSE 'done' END,
               CASE WHEN g % 20 = 0 THEN 6 ELSE g % 3 END,
               CASE WHEN g % 20 = 0 THEN 'HTTP 503' END, now() - g * interval '1 minute'
        FROM generate_series(1, {n} * 5) g""",
    """INSERT INTO quarantine (system, stream, source_ref, reason, payload, payload_hash, status)
        SELECT 'kingdee', 'receivables', 'AR-Q' || g, 'customer not found: C' || g, '{{"FBillNo": "AR-Q1"}}'::jsonb,
               md5(g::text), CASE WHEN g % 4 = 0 THEN 'resolved' ELSE 'open' END
        FROM generate_series(1, {n} / 10) g""",
]


def generate(db: Database, customers: int) -> dict[str, int]:
    """Fill the schema (module doc); returns the row counts."""
    with db.begin() as conn:
        conn.execute(sa.text(GENERATE[0]))
        u0 = conn.execute(sa.text("SELECT min(id) FROM internal_user")).scalar_one()
        for statement in GENERATE[1:]:
            conn.execute(sa.text(statement.format(n=customers, u0=u0)))
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE"))
    with db.begin() as conn:  # as the end of a receivables sync does
        refresh_receivables_summary(conn, Clock(Settings.model_fields["timezone"].default).today())
    with db.engine.connect() as conn:
        tables = ("customer", "sales_order", "receivable", "receipt", "lead", "stage_change", "task", "interaction",
                  "sync_run", "outbox", "quarantine")
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


def timed(client: TestClient, path: str, headers: dict[str, str], requests: int, budget_s: float = 30.0,
          ok: tuple[int, ...] = (200,)) -> list[float]:
    """Milliseconds per request (one warm-up request first, not counted); a page slower than
    ``budget_s`` in all is timed fewer times (at least 3: a p95 of 3 is their maximum)."""
    assert client.get(path, headers=headers).status_code in ok, path
    times: list[float] = []
    for _ in range(requests):
        if len(times) >= 3 and sum(times) > budget_s * 1000:
            break
        started = time.perf_counter()
        reply = client.get(path, headers=headers)
        times.append((time.perf_counter() - started) * 1000)
        assert reply.status_code in ok, (path, reply.status_code)
    return times


def p95(values: list[float]) -> float:
    """The 95th percentile (inclusive method)."""
    return statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 else values[0]


def load() -> float:
    """The 1-minute load average."""
    return os.getloadavg()[0]


def time_pages(url: str, schema: str, requests: int) -> dict[str, list[float]]:
    """Every page of :data:`PAGES` (and the baseline) timed through the app of the ``hub``
    imported here, on the generated data in ``schema``: milliseconds per request."""
    db = Database(create_db_engine(url, schema), schema, url)
    settings = Settings(database_url=url, database_schema=schema, sandbox=True)  # type: ignore[arg-type]
    headers = principals(db)
    found: dict[str, list[float]] = {}
    try:
        with TestClient(create_web_app(db, settings)) as client:
            for name, path, role in [BASELINE, *PAGES]:
                # an older checkout's /healthz says 503 (the schema is ahead of its migrations): still timed
                found[name] = timed(client, path, headers[role], requests, ok=(200, 503) if name == BASELINE[0] else (200,))
    finally:
        db.dispose()
    return found


def in_child(tree: str, url: str, schema: str, requests: int) -> dict[str, list[float]]:
    """:func:`time_pages` in a new process whose ``hub`` is the one in ``tree``."""
    reply = subprocess.run([sys.executable, __file__, "--child", tree, "--schema", schema,
                            "--requests", str(requests)], capture_output=True, text=True, check=False,
                           env={**os.environ, "HUB_TEST_DATABASE_URL": url})
    if reply.returncode:
        raise SystemExit(f"timing with {tree} failed:\n{reply.stderr[-3000:]}")
    return dict(json.loads(reply.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="1.0 = 20,000 customers")
    parser.add_argument("--requests", type=int, default=20, help="timed requests per page (per round)")
    parser.add_argument("--before", metavar="DIR", help="another checkout of the hub to time on the same data")
    parser.add_argument("--after", metavar="DIR", default=str(ROOT), help="with --before: the checkout timed as "
                        "'after' (default: this one)")
    parser.add_argument("--rounds", type=int, default=2, help="with --before: rounds per side, alternating")
    parser.add_argument("--keep", action="store_true", help="keep the generated schema (prints its name)")
    parser.add_argument("--schema", help="time on this already generated schema (kept)")
    parser.add_argument("--child", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    url = database_url()
    if args.child:
        print(json.dumps(time_pages(url, args.schema, args.requests)))
        return
    customers = max(int(20_000 * args.scale), 10)
    db = Database(create_db_engine(url, args.schema), args.schema, url) if args.schema else fresh_db(url)
    try:
        if not args.schema:
            started = time.perf_counter()
            counts = generate(db, customers)
            print(f"generated in {time.perf_counter() - started:.1f} s: "
                  + ", ".join(f"{t} {n:,}" for t, n in counts.items()))
        sides = {"after": args.after} | ({"before": args.before} if args.before else {})
        times: dict[str, dict[str, list[float]]] = {side: {} for side in sides}
        for round_no in range(1, (args.rounds if args.before else 1) + 1):
            for side in reversed(sides):  # before first
                at_start = load()
                found = in_child(sides[side], url, db.schema, args.requests) if args.before else time_pages(
                    url, db.schema, args.requests)
                for name, values in found.items():
                    times[side].setdefault(name, []).extend(values)
                print(f"round {round_no} {side}: load {at_start:.2f} → {load():.2f}", flush=True)
        if args.before:
            print(f"{'page':32} {'n':>4} {'before p50':>10} {'before p95':>10} {'n':>4} {'after p50':>10} "
                  f"{'after p95':>10} {'p95 ratio':>9}")
            for name in [BASELINE[0], *(p[0] for p in PAGES)]:
                b, a = times["before"][name], times["after"][name]
                print(f"{name:32} {len(b):4} {statistics.median(b):10.1f} {p95(b):10.1f} {len(a):4} "
                      f"{statistics.median(a):10.1f} {p95(a):10.1f} {p95(b) / p95(a):8.1f}x")
        else:
            base_p95 = p95(times["after"][BASELINE[0]])
            print(f"{'page':32} {'p50 ms':>9} {'p95 ms':>9} {'p95 / healthz':>14}")
            for name in [BASELINE[0], *(p[0] for p in PAGES)]:
                values = times["after"][name]
                print(f"{name:32} {statistics.median(values):9.1f} {p95(values):9.1f} {p95(values) / base_p95:14.1f}")
    finally:
        if args.keep or args.schema:
            print(f"schema kept: {db.schema}")
            db.dispose()
        else:
            drop(db)


if __name__ == "__main__":
    main()
