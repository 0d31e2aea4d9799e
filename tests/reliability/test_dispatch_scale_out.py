"""Scale-out: several dispatcher processes over one outbox deliver every effect exactly once.

Three ``hub dispatch --wait`` processes (configured only through the environment, as a
deployment runs them) share one outbox on the real Postgres and one Kingdee sandbox over
real HTTP that answers every call after 20 ms and drops the reply of 5 % of them after
applying them (so retries must look up, not re-send). The rows are held back until every
process is connected, then released at once, so that the processes really compete for
them. Then, from the sandbox's own state and the database: every order is in the ERP
exactly once, none is lost or dead-lettered, each row's attempts have one audited outcome
each, more than one process did the work (the ERP allows more writes at once than one
process runs), and the ERP's concurrency limit held across processes.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from connectors.kingdee.sandbox.testing import running_sandbox
from hub.runtime import HubRuntime
from tests.conftest import rows, scalar
from tests.support.dispatchers import dispatcher_env, start_dispatcher
from tests.support.orders import approve_crm_orders, erp_bill_counts

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
ORDERS = 60
PROCESSES = 3
# More writes in flight than one process runs (OutboxSettings.workers, 8): the system-wide cap
# is kept in Postgres across processes, so with the default 4 one process can hold every slot.
ERP_LIMIT = 12


def connected(db, names: list[str]) -> set[str]:
    """Which of ``names`` (libpq application names) hold a connection to the database now."""
    return {r.application_name for r in rows(
        db, "SELECT DISTINCT application_name FROM pg_stat_activity WHERE application_name = ANY(:n)", n=names)}


def test_three_dispatcher_processes_deliver_every_order_once_and_lose_none(settings, db, tmp_path: Path):
    with running_sandbox(scale=0.05, max_concurrent_requests=ERP_LIMIT) as erp:
        # given the ERP's customers synced in and the CRM orders approved, held back for now
        runtime = HubRuntime(settings, db, actor="test", sandbox_urls={"kingdee": erp.server.url})
        runtime.sync("kingdee", "customers")
        runtime.close()
        order_ids = approve_crm_orders(db, ORDERS)
        with db.begin() as conn:
            conn.execute(sa.text("UPDATE outbox SET next_attempt_at = now() + interval '1 hour'"))
        # and an ERP that takes 20 ms per call and loses 5 % of its replies after applying them
        erp.faults.latency_ms = 20
        erp.faults.arm("drop_response", times=None, rate=0.05, seed=3)
        erp.faults.arm("latency", times=None)
        env = dispatcher_env(db, tmp_path, sandboxes={"kingdee": erp.server.url},
                             connectors={"kingdee": {"timeout_s": 2.0, "max_concurrent_calls": ERP_LIMIT}},
                             outbox={"lease_s": 5, "backoff_initial_s": 0.05, "backoff_max_s": 0.5, "workers": 8})
        log = tmp_path / "dispatchers.log"
        names = [f"scale-out-{i}" for i in range(PROCESSES)]
        children = [start_dispatcher({**env, "PGAPPNAME": name}, "kingdee.sales_order", log=log) for name in names]
        try:
            deadline = time.monotonic() + 240
            while connected(db, names) != set(names):
                assert all(c.poll() is None for c in children), log.read_text()[-3000:]
                assert time.monotonic() < deadline, "the dispatchers did not all connect"
                time.sleep(0.1)

            # when the rows are released to all of them at once
            with db.begin() as conn:
                conn.execute(sa.text("UPDATE outbox SET next_attempt_at = now()"))
            for child in children:
                assert child.wait(timeout=300) == 0, log.read_text()[-3000:]
        finally:
            for child in children:
                if child.poll() is None:
                    child.kill()
                    child.wait(timeout=30)

        # then every order is in the ERP exactly once (none twice, none missing), audited
        bills = erp_bill_counts(erp.state)
        assert len(bills) == ORDERS and set(bills.values()) == {1}
        assert scalar(db, "SELECT count(*) FROM outbox WHERE status <> 'done'") == 0
        assert scalar(db, "SELECT count(*) FROM sales_order WHERE id = ANY(:ids) AND status = 'in_erp'",
                      ids=order_ids) == ORDERS
        # every attempt of every row has exactly one audited outcome, whichever process made it
        outcomes = rows(db, "SELECT o.attempts, array_agg(a.attempt ORDER BY a.attempt) AS audited, "
                            "array_agg(DISTINCT split_part(a.actor, ':', 3)) AS pids FROM outbox o "
                            "JOIN audit_log a ON a.key = o.idempotency_key AND a.actor LIKE 'dispatcher:%' "
                            "GROUP BY o.id, o.attempts")
        assert len(outcomes) == ORDERS
        assert all(r.audited == list(range(1, r.attempts + 1)) for r in outcomes)
        # the replies really were lost (so retries had to adopt), and the work was shared
        assert any(kind == "drop_response" for _, kind in erp.faults.history)
        workers = {pid for r in outcomes for pid in r.pids}
        assert workers <= {str(c.pid) for c in children} and len(workers) > 1, workers
        # and the ERP was never driven past its concurrency limit by the processes together
        assert erp.sandbox.gate.overloaded == 0
        assert erp.sandbox.gate.peak_in_flight <= erp.sandbox.gate.limit
