"""Leases: a working dispatcher renews them, a SIGKILLed one loses its rows within seconds.

The Kingdee sandbox takes 3 s to answer each Save (``latency``), much longer than the 1.5 s
lease, so a dispatcher keeps its rows only by renewing. It is SIGKILLed mid-batch; a second
dispatcher retakes the rows one lease after the last renewal, looks each order up (the lost
attempts may have saved it) and finishes them: one ERP order each.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from connectors.kingdee.sandbox.testing import running_sandbox
from hub.runtime import HubRuntime
from tests.conftest import rows, scalar
from tests.support.dispatchers import dispatcher_env, sigkill, start_dispatcher
from tests.support.orders import approve_crm_orders, erp_bill_counts

pytestmark = pytest.mark.e2e

LEASE_S = 1.5
SAVE_S = 3.0
ORDERS = 6


def held_by(db, child) -> list:
    return rows(db, "SELECT id, locked_until FROM outbox WHERE status = 'in_progress' AND locked_by LIKE :me "
                    "ORDER BY id", me=f"%:{child.pid}:%")


def test_a_sigkilled_dispatchers_rows_are_retaken_within_seconds_and_finished_once(settings, db, tmp_path: Path):
    with running_sandbox(scale=0.05) as erp:
        runtime = HubRuntime(settings, db, actor="test", sandbox_urls={"kingdee": erp.server.url})
        runtime.sync("kingdee", "customers")
        runtime.close()
        approve_crm_orders(db, ORDERS)
        erp.faults.latency_ms = int(SAVE_S * 1000)
        erp.faults.arm("latency", times=None, operations=["save"])
        env = dispatcher_env(db, tmp_path, sandboxes={"kingdee": erp.server.url},
                             connectors={"kingdee": {"timeout_s": 10}},
                             outbox={"lease_s": LEASE_S, "backoff_initial_s": 0.05, "backoff_max_s": 0.5})
        log = tmp_path / "dispatchers.log"

        # given a dispatcher holding rows whose Saves outlast the lease
        first = start_dispatcher(env, "kingdee.sales_order", log=log)
        deadline = time.monotonic() + 120  # start-up on a loaded machine: generous, not a measurement
        while not held_by(db, first):
            assert time.monotonic() < deadline and first.poll() is None, log.read_text()[-2000:]
            time.sleep(0.05)
        before = {r.id: r.locked_until for r in held_by(db, first)}
        # then it renews them while it works: each of those leases moves on while the row is
        # still held (a Save takes two leases), none lapses into another's hands
        while True:
            held = {r.id: r.locked_until for r in held_by(db, first)}
            assert set(before) & set(held), "rows finished or were lost before any renewal was seen"
            if all(held[i] > before[i] for i in before if i in held):
                break
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.05)
        assert scalar(db, "SELECT count(*) FROM audit_log WHERE outcome = 'lease_lost'") == 0

        # when it is SIGKILLed mid-batch and another dispatcher starts
        sigkill(first)
        orphans = sorted(r.id for r in held_by(db, first))  # after the kill: it can hold nothing new
        last_lease = max(r.locked_until for r in held_by(db, first))
        assert orphans
        killed_at = time.monotonic()
        second = start_dispatcher(env, "kingdee.sales_order", log=log)

        # then the orphaned rows are retaken, not before their lease lapsed, and soon after
        # (one lease after the last renewal plus the new process's start-up; the bound is
        # generous because start-up on a loaded machine is not what is measured here)
        while scalar(db, "SELECT count(*) FROM audit_log WHERE outcome = 'lease_lost'") < len(orphans):
            assert time.monotonic() - killed_at < 120, log.read_text()[-2000:]
            time.sleep(0.05)
        retaken_after = time.monotonic() - killed_at
        # (the audit's time is its transaction's start, a moment before the claim itself)
        first_retake = scalar(db, "SELECT min(at) + interval '1 second' FROM audit_log WHERE outcome = 'lease_lost'")
        assert first_retake >= last_lease  # type: ignore[operator]
        assert second.wait(timeout=120) == 0, log.read_text()[-2000:]

        # and every order is in the ERP exactly once, the lost attempts audited as such
        assert scalar(db, "SELECT count(*) FROM outbox WHERE status <> 'done'") == 0
        bills = erp_bill_counts(erp.state)
        assert len(bills) == ORDERS and set(bills.values()) == {1}
        lost = rows(db, "SELECT o.id FROM audit_log a JOIN outbox o ON o.idempotency_key = a.key "
                        "WHERE a.outcome = 'lease_lost'")
        assert sorted(r.id for r in lost) == orphans
        print(f"\n{len(orphans)} rows held by the killed dispatcher, retaken {retaken_after:.1f} s after the kill "
              f"(lease {LEASE_S} s)")
