"""End to end: a Kingdee order pushed in steps (Save → Submit → Audit) says what the ERP holds.

Real Postgres, the Kingdee sandbox over real HTTP, the real dispatcher. An attempt that
fails after the Save leaves the CRM order "in the ERP, not yet audited" with its bill
number; a push given up there shows as stalled, never as failed; a replay resumes from
the step the ERP reached, with one lookup per attempt, and never makes a twin.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from hub.outbox import replay
from hub.runtime import HubRuntime
from hub.settings import OutboxSettings
from tests.conftest import rows, scalar
from tests.support.orders import approve_crm_orders, erp_bill_counts

pytestmark = pytest.mark.e2e


@pytest.fixture
def hub(settings, db):
    fast = settings.with_connector("kingdee", timeout_s=1.0).model_copy(update={
        "outbox": OutboxSettings(retry_budget_s=1.5, backoff_initial_s=0.05, backoff_max_s=0.1, lease_s=5)})
    runtime = HubRuntime(fast, db, actor="test")
    runtime.sandbox("kingdee", scale=0.05)
    runtime.sync("kingdee", "customers")
    yield runtime
    runtime.close()


def one_order_of_an_erp_customer(db) -> tuple[int, str]:
    """An approved order whose customer the ERP already has (so no customer Save on the way)."""
    row = rows(db, "SELECT o.id, 'CRM-' || o.order_number AS bill FROM sales_order o JOIN external_identity e "
                   "ON e.canonical_id = o.customer_id AND e.system = 'kingdee' AND e.object = 'customer' "
                   "WHERE o.source_system = 'crm' ORDER BY o.id LIMIT 1")[0]
    with db.begin() as conn:  # only this order's push stays queued
        conn.execute(sa.text("DELETE FROM outbox WHERE payload->>'order_id' <> :id"), {"id": str(row.id)})
    return row.id, row.bill


def order_state(db, order_id: int):
    return rows(db, "SELECT status, erp_bill_number, erp_status, erp_error FROM sales_order WHERE id = :id",
                id=order_id)[0]


def test_an_order_whose_audit_keeps_failing_shows_in_erp_unaudited_then_stalled_and_a_replay_finishes_it(hub, db):
    approve_crm_orders(db, 40)
    order_id, bill = one_order_of_an_erp_customer(db)
    sandbox = hub.sandbox("kingdee").app.state.kingdee
    sandbox.faults.arm("http_500", times=None, operations=["audit"])
    dispatcher = hub.dispatcher(kinds=["kingdee.sales_order"])

    # when the first attempt saves and submits the order, then fails on Audit
    assert dispatcher.run_once(1).retried == 1
    # then the CRM order already says the ERP holds it, submitted, not yet audited
    first = order_state(db, order_id)
    assert (first.status, first.erp_bill_number, first.erp_status) == ("in_erp_unaudited", bill, "B")
    assert scalar(db, "SELECT result->>'complete' FROM outbox") == "false"

    # when every later Audit fails too until the retry budget is used up
    queries_before = sandbox.requests.get("executebillquery", 0)
    counts = dispatcher.drain(wait_for_scheduled=True, timeout_s=30)
    # then the push is dead-lettered, and the order shows as in the ERP but stalled, never failed
    assert counts.dead == 1
    stalled = order_state(db, order_id)
    assert (stalled.status, stalled.erp_bill_number, stalled.erp_status) == ("in_erp_stalled", bill, "B")
    assert "retry budget" in stalled.erp_error and "HTTP 500" in stalled.erp_error
    # each of those attempts looked the order up exactly once (and the customer not again)
    attempts = scalar(db, "SELECT attempts FROM outbox")
    assert sandbox.requests["executebillquery"] - queries_before == attempts - 1
    assert sandbox.requests["save"] == 1 and sandbox.requests["submit"] == 1

    # when the ERP recovers and a person replays the dead letter
    sandbox.faults.clear()
    with db.begin() as conn:
        replay(conn, None)
    assert dispatcher.drain(wait_for_scheduled=True, timeout_s=30).done == 1
    # then the order was audited from where it stopped: one ERP order, one Save, one Submit
    done = order_state(db, order_id)
    assert (done.status, done.erp_status, done.erp_error) == ("in_erp", "C", None)
    assert erp_bill_counts(sandbox.data) == {bill: 1}
    assert (sandbox.requests["save"], sandbox.requests["submit"]) == (1, 1)


def test_a_push_given_up_while_its_save_was_lost_is_unknown_not_failed_and_a_replay_adopts_it(hub, db):
    approve_crm_orders(db, 40)
    order_id, bill = one_order_of_an_erp_customer(db)
    sandbox = hub.sandbox("kingdee").app.state.kingdee
    dispatcher = hub.dispatcher(kinds=["kingdee.sales_order"])
    # given a Save the ERP applied but whose reply was lost
    sandbox.faults.arm("drop_response", times=1, operations=["save"])
    assert dispatcher.run_once(1).retried == 1
    # and an ERP that then answers no lookup until the retry budget is used up
    sandbox.faults.arm("http_500", times=None, operations=["executebillquery"])
    assert dispatcher.drain(wait_for_scheduled=True, timeout_s=30).dead == 1

    # then the order is "unknown" (the ERP may hold it), not "failed"
    assert order_state(db, order_id).status == "erp_unknown"
    assert erp_bill_counts(sandbox.data) == {bill: 1}

    # and a replay adopts the order the lost Save made and takes it to the end, without a twin
    sandbox.faults.clear()
    with db.begin() as conn:
        replay(conn, None)
    counts = dispatcher.drain(wait_for_scheduled=True, timeout_s=30)
    assert (counts.done, counts.adopted) == (1, 1)
    assert order_state(db, order_id).status == "in_erp"
    assert erp_bill_counts(sandbox.data) == {bill: 1}
