"""End to end: an order the CRM approves through the API reaches Kingdee through the outbox,
once, and its bill number and status come back on ``GET /api/orders/{id}``.

Real Postgres, the app over real HTTP, the Kingdee sandbox over real HTTP, the real
dispatcher (what Dagster's ``orders_to_erp`` runs).
"""

from __future__ import annotations

import pytest

from hub.runtime import HubRuntime
from hub.settings import OutboxSettings
from tests.conftest import rows, scalar
from tests.crm_api.test_writes import order_body
from tests.support.orders import erp_bill_counts

pytestmark = pytest.mark.e2e


@pytest.fixture
def hub(settings, db):
    fast = settings.model_copy(update={"outbox": OutboxSettings(backoff_initial_s=0.05, backoff_max_s=0.1)})
    runtime = HubRuntime(fast, db, actor="test")
    runtime.sandbox("kingdee", scale=0.01)
    yield runtime
    runtime.close()


def test_an_order_approved_through_the_api_reaches_kingdee_once_and_shows_its_bill_number(api, world, hub, db):
    crm = world.auth("crm")
    # given a customer and an order the CRM sends (the customer is new to the ERP: created on the way)
    customer = api.post("/api/customers", json={"external_id": "crm-e2e", "name": "苏州端到端精密机械有限公司",
                                                 "owner_id": world.users["rep"]}, headers=crm)
    assert customer.status_code == 201, customer.text
    order = api.post("/api/orders", json=order_body("SO-E2E-1", customer="crm-e2e", approval_state="pending"),
                     headers=crm).json()
    sandbox = hub.sandbox("kingdee").app.state.kingdee
    dispatcher = hub.dispatcher(kinds=["kingdee.sales_order"])
    # nothing goes out before approval
    assert dispatcher.drain(timeout_s=30).done == 0 and erp_bill_counts(sandbox.data) == {}

    # when the CRM approves it (twice: a retried request)
    for _ in range(2):
        approved = api.patch(f"/api/orders/{order['id']}", json={"approval_state": "approved"}, headers=crm)
        assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved" and approved.json()["erp_push"] == "pending"
    assert scalar(db, "SELECT count(*) FROM outbox") == 1

    # then the dispatcher creates it in Kingdee, once, even when it runs again
    assert dispatcher.drain(wait_for_scheduled=True, timeout_s=60).done == 1
    assert dispatcher.drain(timeout_s=30).done == 0
    assert erp_bill_counts(sandbox.data) == {"CRM-SO-E2E-1": 1}

    # and the API shows the ERP's bill number and status
    got = api.get(f"/api/orders/{order['id']}", headers=world.auth("sales")).json()
    assert (got["erp_system"], got["erp_bill_number"], got["status"], got["erp_push"]) == (
        "kingdee", "CRM-SO-E2E-1", "in_erp", "done")
    assert got["erp_status"] and got["erp_error"] is None
    # the ERP's customer number is linked to the golden record
    assert rows(db, "SELECT count(*) FROM external_identity WHERE system = 'kingdee' AND object = 'customer' "
                    "AND canonical_id = :c", c=customer.json()["id"])[0][0] == 1
