"""OA approvals end to end under faults: big orders go through DingTalk or WeCom approval to the ERP.

A tenant on both platforms (East and South China sales on DingTalk, everyone else on WeCom).
N CRM orders need approval (``APPROVAL_ORDERS``, 40 here; ``make soak`` runs 200): each is
asked for on its owner's platform while the platforms drop a third of the create replies
after creating (and answer some list calls with 500), so the writer must look the order's
key up and adopt before any retry. The approvers then decide through the sandboxes' admin
endpoints; the signed, encrypted callbacks reach ``hub serve``'s receivers — a third lost,
a third delivered twice — and the reconcile poll finds what the lost ones said.

Then, from the sandboxes' own state: exactly N approval instances, one per order; every
outcome applied once (one audit row per approval and state); approved orders in the ERP
sandbox exactly once, rejected ones never, with the approver's remark on the rejected
approval. Finally a revocation after approval on each platform reopens the order and gives
its owner an ERP compensation task, and a forged approval callback is refused and audited.
"""

from __future__ import annotations

import datetime as dt
import os
from collections import Counter

import httpx
import pytest
import sqlalchemy as sa

from connectors.kit.sandbox import serve_in_thread
from connectors.wecom.sandbox import demo_directory
from hub.demo.data import load_crm_demo
from hub.registry import connector
from hub.rules.approvals import reconcile, request_order_approval
from hub.runtime import HubRuntime, load_sandbox
from hub.settings import OutboxSettings
from hub.web.app import create_web_app
from tests.conftest import rows, scalar
from tests.support.orders import erp_bill_counts

ORDERS = int(os.environ.get("APPROVAL_ORDERS", "40"))
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(max(300, ORDERS * 6))]
MOVED_TO_DINGTALK = (3, 4)  # 华东销售部, 华南销售部
PREFERENCE = ("dingtalk", "wecom")
NOT_ACTIVATED = [u.userid for u in demo_directory() if u.status == 4]
CREATES = {"dingtalk": "workflow/processInstances/create", "wecom": "oa/applyevent"}
LISTS = {"dingtalk": "workflow/instanceIds/query", "wecom": "oa/getapprovalinfo"}


def test_orders_are_approved_once_and_reach_the_erp_once_under_lost_replies_and_callbacks(settings, db):
    fast = settings.model_copy(update={"outbox": OutboxSettings(backoff_initial_s=0.05, backoff_max_s=0.5)})
    hub = HubRuntime(fast.with_connector("dingtalk", max_qps=500), db, actor="test")
    try:
        ding = hub.sandbox("dingtalk", visible_department_ids=MOVED_TO_DINGTALK, api_qps=1000, max_in_flight=64)
        wecom = hub.sandbox("wecom")
        hub.sandbox("kingdee")
        seed = load_sandbox(connector("wecom")).demo_seed()  # type: ignore[misc]
        now = dt.datetime.now(dt.UTC)
        with db.begin() as conn:
            load_crm_demo(conn, seed["people"], seed["companies"], now=now, orders=ORDERS)
        hub.sync("wecom", "directory")
        hub.sync("dingtalk", "directory")

        # given N CRM orders asked for approval, each on its owner's one platform
        with db.begin() as conn:
            order_ids = list(conn.execute(sa.text(
                "SELECT id FROM sales_order WHERE source_system = 'crm' ORDER BY id")).scalars())
            approval_ids = [request_order_approval(conn, o, at=now, preference=PREFERENCE) for o in order_ids]
            # asking twice opens nothing
            assert request_order_approval(conn, order_ids[0], at=now, preference=PREFERENCE) is None
        assert len(order_ids) == ORDERS and None not in approval_ids
        by_system = Counter(r.system for r in rows(db, "SELECT system FROM approval"))
        assert by_system["dingtalk"] > 0 and by_system["wecom"] > 0 and sum(by_system.values()) == ORDERS
        assert by_system["crm"] < ORDERS / 5

        # and the hub's callback receivers served, the platforms pushing there
        with serve_in_thread(create_web_app(db, fast)) as web:
            for system, sandbox in (("dingtalk", ding), ("wecom", wecom)):
                assert httpx.post(f"{sandbox.url}/__sandbox__/approvals/callbacks", json={
                    "url": f"{web.url}/callbacks/{system}", "drop_rate": 0.3, "duplicate_rate": 0.3,
                    "seed": 7}).status_code == 200
                # when a third of the create replies are lost after the create, and lists fail at times
                sandbox.app.state.faults.arm("drop_response", times=None, rate=0.33, seed=1,
                                             operations=[CREATES[system]])
                sandbox.app.state.faults.arm("http_500", times=None, rate=0.1, seed=2, operations=[LISTS[system]])
            counts = hub.dispatcher().drain(wait_for_scheduled=True, timeout_s=ORDERS * 3)
            # a rep WeCom lists as not yet activated (status 4) cannot apply: refused (301025), shown, not retried
            unable = {r.id for r in rows(db, "SELECT id FROM approval WHERE system = 'wecom' AND originator = ANY(:u)",
                                         u=NOT_ACTIVATED)}
            assert counts.dead == 0 and counts.failed == len(unable)
            failed = rows(db, "SELECT a.id, a.error, o.approval_state FROM approval a JOIN sales_order o "
                              "ON o.id = a.subject_id WHERE a.external_id IS NULL AND a.system <> 'crm'")
            assert {f.id for f in failed} == unable
            assert all("301025" in f.error and f.approval_state == "failed" for f in failed)
            # an owner no platform knows (disabled in WeCom, not on DingTalk): nothing sent, the reason kept
            unrouted = rows(db, "SELECT error FROM approval WHERE system = 'crm'")
            assert all("no account on a chat platform" in u.error for u in unrouted)
            unable |= {r.id for r in rows(db, "SELECT id FROM approval WHERE system = 'crm'")}
            ding.app.state.faults.clear()
            wecom.app.state.faults.clear()
            dropped = Counter(kind for _, kind in ding.app.state.faults.history + wecom.app.state.faults.history)
            assert dropped["drop_response"] > 0

            # then the platforms hold exactly one instance per order, whatever the lost replies
            keys = {r.business_key: r for r in rows(db, "SELECT id, system, business_key, external_id, state "
                                                         "FROM approval WHERE external_id IS NOT NULL")}
            assert len(keys) == ORDERS - len(unable)
            for key, row in keys.items():
                sandbox = ding if row.system == "dingtalk" else wecom
                found = httpx.get(f"{sandbox.url}/__sandbox__/approvals", params={"key": key}).json()
                held = found["instances"] if row.system == "dingtalk" else found["approvals"]
                assert len(held) == 1, (key, held)
            assert ding.app.state.approvals.created + len(wecom.app.state.wecom.approvals.approvals) == len(keys)

            # when the approvers decide: every third order refused with a reason, the rest approved
            decided: dict[int, str] = {}
            for n, row in enumerate(sorted(keys.values(), key=lambda r: r.id)):
                action = "refuse" if n % 3 == 0 else "agree"
                sandbox = ding if row.system == "dingtalk" else wecom
                reply = httpx.post(f"{sandbox.url}/__sandbox__/approvals/{row.external_id}/act",
                                   json={"action": action, "remark": "折扣超出权限" if action == "refuse" else "同意"})
                assert reply.status_code == 200
                decided[row.id] = "rejected" if action == "refuse" else "approved"
            for sandbox in (ding, wecom):
                sandbox.app.state.approval_pushes.settle()
            hub.dispatcher().drain(wait_for_scheduled=True, timeout_s=ORDERS * 3)
            fates = Counter()
            for sandbox in (ding, wecom):
                fates.update(sandbox.app.state.approval_pushes.describe()["pushes"])
            assert fates["dropped"] > 0 and fates["duplicated"] > 0
            # the lost callbacks left some approvals pending; the poll finds them
            still_pending = scalar(db, "SELECT count(*) FROM approval WHERE state = 'pending'")
            assert still_pending > 0
            with db.begin() as conn:
                polled = reconcile(conn, dt.datetime.now(dt.UTC) + dt.timedelta(minutes=11),
                                   recheck_after=dt.timedelta(minutes=10), revoke_watch=dt.timedelta(days=30))
            assert polled.checks_queued >= still_pending
            hub.dispatcher().drain(wait_for_scheduled=True, timeout_s=ORDERS * 3)

            # then every approval has its outcome, applied once
            states = {r.id: r.state for r in rows(db, "SELECT id, state FROM approval WHERE external_id IS NOT NULL")}
            assert states == decided
            applied = rows(db, "SELECT key, operation, count(*) AS n FROM audit_log WHERE operation IN "
                               "('approval:approved', 'approval:rejected') GROUP BY key, operation")
            assert len(applied) == len(keys) and {a.n for a in applied} == {1}
            rejected = rows(db, "SELECT a.comment, o.approval_state, o.status FROM approval a JOIN sales_order o "
                                "ON o.id = a.subject_id WHERE a.state = 'rejected'")
            assert rejected and all(r.comment == "折扣超出权限" and r.approval_state == "rejected" for r in rejected)

            # and approved orders are in the ERP exactly once, rejected ones never
            bills = erp_bill_counts(hub.sandbox("kingdee").app.state.kingdee.data)
            approved_orders = rows(db, "SELECT o.id, o.order_number, o.erp_bill_number FROM sales_order o JOIN approval a "
                                       "ON a.subject_id = o.id WHERE a.state = 'approved'")
            assert len(bills) == len(approved_orders) and set(bills.values()) == {1}
            assert all(o.erp_bill_number in bills for o in approved_orders)
            assert scalar(db, "SELECT count(*) FROM sales_order o JOIN approval a ON a.subject_id = o.id "
                              "WHERE a.state = 'rejected' AND o.erp_bill_number IS NOT NULL") == 0

            # when one approved order on each platform is revoked after approval
            revoked = {}
            for system, sandbox in (("dingtalk", ding), ("wecom", wecom)):
                row = next(r for r in keys.values() if r.system == system and decided[r.id] == "approved")
                sandbox.app.state.approval_pushes.configure({"drop_rate": 0.0, "duplicate_rate": 0.0})
                assert httpx.post(f"{sandbox.url}/__sandbox__/approvals/{row.external_id}/act",
                                  json={"action": "revoke", "remark": "客户取消订单"}).status_code == 200
                sandbox.app.state.approval_pushes.settle()
                revoked[row.id] = system
            hub.dispatcher().drain(wait_for_scheduled=True, timeout_s=120)
            # then each order is reopened with an ERP compensation task for its owner; nothing deleted
            for approval_id in revoked:
                order = rows(db, "SELECT o.id, o.status, o.approval_state, o.erp_bill_number, a.state FROM approval a "
                                 "JOIN sales_order o ON o.id = a.subject_id WHERE a.id = :id", id=approval_id)[0]
                assert (order.state, order.approval_state, order.status) == ("revoked", "revoked", "reopened")
                assert order.erp_bill_number in bills  # the ERP order is still there, for the owner to compensate
                tasks = rows(db, "SELECT t.title FROM task t JOIN sales_order o ON o.customer_id = t.customer_id "
                                 "WHERE o.id = :id AND t.kind = 'erp_compensation'", id=order.id)
                assert tasks and "撤销" in tasks[0].title

            # a forged approval callback is refused and audited, and changes nothing
            forged = httpx.post(f"{web.url}/callbacks/dingtalk", params={
                "signature": "0" * 40, "timestamp": str(int(dt.datetime.now().timestamp() * 1000)), "nonce": "abc"},
                json={"encrypt": "QUJD"})
            assert forged.status_code == 403
        refusals = Counter(r.error for r in rows(db, "SELECT error FROM audit_log WHERE operation = 'callback' "
                                                     "AND outcome = 'rejected'"))
        assert refusals["bad_signature"] == 1, refusals
        # the platforms' duplicate deliveries (freshly signed) were accepted and led to no second check
        accepted = scalar(db, "SELECT count(*) FROM audit_log WHERE operation IN "
                              "('callback:bpms_instance_change', 'callback:sys_approval_change') AND outcome = 'ok'")
        checks = scalar(db, "SELECT count(*) FROM outbox WHERE idempotency_key LIKE 'approval:%:check:event-%'")
        assert accepted > checks > 0
        assert scalar(db, "SELECT count(*) FROM approval WHERE state = 'revoked'") == 2
    finally:
        hub.close()
