"""A sync and a dispatcher SIGKILLed at random points ten times each (three in the suite),
restarted each time, end exactly where an uninterrupted run ends.

The sync (synthetic receivables, a child process, ``tests.support.crashes``) and the outbox
dispatcher (``hub dispatch`` pushing approved orders to the Kingdee sandbox, a child process,
``tests.support.dispatchers``) run side by side on one database; each round both are started,
each is let work until it has made progress, and both are SIGKILLed after a random pause (in a
page's transaction, between pages, mid-HTTP-call, mid-outcome). After the last round one
uninterrupted run of each finishes the work. Then:

- the receivables equal, row for row, those of an uninterrupted sync of the same source into
  a fresh schema, and the cursor is at the same place;
- every order is in the ERP exactly once and audited there; no outbox row is left behind, and
  every attempt of every row has exactly one audited outcome (a killed one: ``lease_lost``).
"""

from __future__ import annotations

import os
import random
import secrets
import time
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from connectors.kingdee.sandbox.testing import running_sandbox
from hub.database import Database, create_db_engine
from hub.engine import sync_stream
from hub.runtime import HubRuntime
from tests.conftest import rows, scalar
from tests.support.crashes import start_sync, sync_env, wait_for_pages
from tests.support.dispatchers import dispatcher_env, sigkill, start_dispatcher, wait_until_working
from tests.support.orders import approve_crm_orders, erp_bill_counts
from tests.support.synthetic import CUSTOMERS, RECEIVABLES, SyntheticSource

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

# ten kills each under ``make soak`` (``SOAK_KILLS=10``); the suite kills each three times: a
# round costs two process start-ups, which on a loaded 2-core machine take seconds each
KILLS = int(os.environ.get("SOAK_KILLS", "3"))
RECEIVABLE_ROWS = 3000  # a killed run commits at most ~4 pages of 50: ten never finish it
PAGE = 50
ORDERS = 80
RECEIVABLE_COLUMNS = ("SELECT r.external_id, c.external_id AS customer, r.bill_date, r.due_date, r.currency, r.amount, "
                      "r.open_amount FROM receivable r JOIN external_identity c ON c.canonical_table = 'customer' "
                      "AND c.canonical_id = r.customer_id AND c.system = 'synthetic' ORDER BY r.external_id")


def uninterrupted(db: Database, source: SyntheticSource) -> tuple[list[tuple], object]:
    """The receivables and the cursor of one uninterrupted sync of ``source`` into a fresh schema."""
    schema = f"{db.schema}_ref_{secrets.token_hex(2)}"
    reference = Database(create_db_engine(db.url, schema), schema, db.url)
    try:
        reference.upgrade()
        sync_stream(reference, "synthetic", CUSTOMERS, source)
        sync_stream(reference, "synthetic", RECEIVABLES, source)
        return ([tuple(r) for r in rows(reference, RECEIVABLE_COLUMNS)],
                scalar(reference, "SELECT value FROM sync_cursor WHERE stream = 'receivables'"))
    finally:
        reference.dispose()
        admin = sa.create_engine(db.url)
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def test_sync_and_dispatcher_killed_ten_times_each_end_as_an_uninterrupted_run(settings, db, tmp_path: Path):
    rng = random.Random(29)
    source = SyntheticSource(customers=50, receivables=RECEIVABLE_ROWS, page_size=PAGE)
    with running_sandbox(scale=0.05) as erp:
        # given approved orders for Kingdee, whose calls take a while, and receivables to sync
        runtime = HubRuntime(settings, db, actor="test", sandbox_urls={"kingdee": erp.server.url})
        runtime.sync("kingdee", "customers")
        runtime.close()
        # (a row lost with its dispatcher max_attempts times is dead-lettered, by design: here the
        # same rows may be in flight at every one of the ten kills, so they may be lost ten times)
        approve_crm_orders(db, ORDERS, max_attempts=KILLS + 6)
        erp.faults.latency_ms = 50
        erp.faults.arm("latency", times=None)
        dispatch_env = dispatcher_env(db, tmp_path, sandboxes={"kingdee": erp.server.url},
                                      connectors={"kingdee": {"timeout_s": 5}},
                                      outbox={"lease_s": 1, "backoff_initial_s": 0.05, "backoff_max_s": 0.5})
        log, marker = tmp_path / "dispatchers.log", tmp_path / "pages"

        # when both are SIGKILLed at a random moment once they work, ten times, and restarted
        killed: Counter[str] = Counter()
        for _ in range(KILLS):
            sync = start_sync(sync_env(db, tmp_path), marker, receivables=RECEIVABLE_ROWS, page_size=PAGE,
                              pause_s=0.2)
            dispatcher = start_dispatcher(dispatch_env, "kingdee.sales_order", log=log)
            try:
                # each after a random amount of its own progress, then a random moment more
                wait_for_pages(sync, marker, rng.randint(1, 3))
                time.sleep(rng.uniform(0.0, 0.2))
                if sync.poll() is None:
                    sigkill(sync)
                    killed["sync"] += 1
                wait_until_working(db, dispatcher, at_least=rng.randint(1, 3))
                time.sleep(rng.uniform(0.0, 0.5))
                if dispatcher.poll() is None:
                    sigkill(dispatcher)
                    killed["dispatcher"] += 1
            finally:
                for child in (sync, dispatcher):
                    if child.poll() is None:
                        sigkill(child)
        assert killed == {"sync": KILLS, "dispatcher": KILLS}, killed
        interrupted_rows = int(scalar(db, "SELECT count(*) FROM receivable"))  # type: ignore[arg-type]
        assert 0 < interrupted_rows < RECEIVABLE_ROWS

        # and one uninterrupted run of each finishes the work
        sync_stream(db, "synthetic", RECEIVABLES, source)
        erp.faults.clear()
        final = start_dispatcher(dispatch_env, "kingdee.sales_order", log=log)
        assert final.wait(timeout=600) == 0, log.read_text()[-3000:]

        # then the receivables are, row for row, what an uninterrupted sync gives, cursor included
        expected_rows, expected_cursor = uninterrupted(db, source)
        assert len(expected_rows) == RECEIVABLE_ROWS
        assert [tuple(r) for r in rows(db, RECEIVABLE_COLUMNS)] == expected_rows
        assert scalar(db, "SELECT value FROM sync_cursor WHERE stream = 'receivables'") == expected_cursor

        # and every order is in the ERP exactly once, audited there, nothing left in the outbox
        bills = erp_bill_counts(erp.state)
        assert len(bills) == ORDERS and set(bills.values()) == {1}
        assert all(erp.state.snapshot("SAL_SaleOrder", bill)["FDocumentStatus"] == "C" for bill in bills)  # type: ignore[index]
        assert scalar(db, "SELECT count(*) FROM outbox WHERE status <> 'done'") == 0
        # and every attempt of every row has exactly one audited outcome (a killed one: lease_lost)
        audited = rows(db, "SELECT o.attempts, array_agg(a.attempt ORDER BY a.attempt) AS outcomes "
                           "FROM outbox o JOIN audit_log a ON a.key = o.idempotency_key "
                           "AND a.actor LIKE 'dispatcher:%' GROUP BY o.id, o.attempts")
        assert len(audited) == ORDERS
        assert [r for r in audited if r.outcomes != list(range(1, r.attempts + 1))] == []
        lost = scalar(db, "SELECT count(*) FROM audit_log WHERE outcome = 'lease_lost'")
        runs = Counter(r.status for r in rows(db, "SELECT status FROM sync_run WHERE stream = 'receivables'"))
        print(f"\n{KILLS} SIGKILLs each: {interrupted_rows} of {RECEIVABLE_ROWS} receivables synced by the killed "
              f"runs; sync runs {dict(runs)}; {lost} dispatcher attempts retaken; {ORDERS} orders once each")
