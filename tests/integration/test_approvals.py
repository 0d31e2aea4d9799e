"""Order approvals in the hub's own rows: asking, applying outcomes once, checks from callbacks.

The platforms are left out here (the writers and sandboxes are in tests/contract and
tests/e2e/test_order_approvals_under_faults.py): outcomes are applied as the writers report them.
"""

from __future__ import annotations

import datetime as dt
import json

import httpx
import sqlalchemy as sa

from connectors.dingtalk.sandbox import CallbackDriver
from connectors.kit.approvals import ApprovalOutcome
from connectors.kit.sandbox import serve_in_thread
from hub.rules.approvals import (
    apply_outcome,
    reconcile,
    record_dingtalk_event,
    record_wecom_event,
    request_order_approval,
)
from hub.web.app import create_web_app
from tests.conftest import rows, scalar

NOW = dt.datetime(2026, 11, 27, 8, 0, tzinfo=dt.UTC)


def order_of(db, owner: dict[str, str | None]) -> int:
    """A CRM order of ¥128,000 owned by a person with these platform ids."""
    with db.begin() as conn:
        user = conn.execute(sa.text(
            "INSERT INTO internal_user (name, wecom_userid, dingtalk_userid, active, source_system, external_id) "
            "VALUES ('李四', :w, :d, true, 'crm', :x) RETURNING id"),
            {"w": owner.get("wecom"), "d": owner.get("dingtalk"), "x": f"u-{owner}"}).scalar_one()
        customer = conn.execute(sa.text(
            "INSERT INTO customer (name, normalized_name, owner_id) VALUES ('深圳华南精密制造有限公司', "
            "'深圳华南精密制造', :o) RETURNING id"), {"o": user}).scalar_one()
        return int(conn.execute(sa.text(
            "INSERT INTO sales_order (order_number, customer_id, owner_id, order_date, currency, total_amount, "
            "source_system, external_id) VALUES (:n, :c, :o, :d, 'CNY', 128000, 'crm', :n) RETURNING id"),
            {"n": f"SO-{user}", "c": customer, "o": user, "d": NOW.date()}).scalar_one())


def ask(db, order_id: int, preference: tuple[str, ...] = ()) -> int | None:
    with db.begin() as conn:
        return request_order_approval(conn, order_id, at=NOW, preference=preference)


def apply(db, approval_id: int, outcome: ApprovalOutcome):
    with db.begin() as conn:
        return apply_outcome(conn, approval_id, outcome, now=NOW)


def test_asking_opens_one_approval_on_the_owners_platform_with_its_create_queued(db):
    order = order_of(db, {"wecom": "lisi", "dingtalk": "lisi01"})
    approval = ask(db, order, ("dingtalk", "wecom"))
    assert approval is not None and ask(db, order) is None  # asking twice opens nothing
    [row] = rows(db, "SELECT system, state, business_key, originator, revision FROM approval")
    assert (row.system, row.state, row.originator, row.revision) == ("dingtalk", "pending", "lisi01", 1)
    [queued] = rows(db, "SELECT kind, idempotency_key, payload, ordering_key FROM outbox")
    assert (queued.kind, queued.idempotency_key) == ("dingtalk.approval", row.business_key)
    assert queued.payload["order"]["total_amount"] == "128000.00" and queued.ordering_key == f"approval:{approval}"
    assert scalar(db, "SELECT approval_state FROM sales_order WHERE id = :id", id=order) == "pending"
    assert scalar(db, "SELECT count(*) FROM webhook_event WHERE type = 'order.approval'") == 1


def test_an_owner_on_no_platform_gets_a_visible_reason_and_nothing_is_sent(db):
    order = order_of(db, {})
    approval = ask(db, order)
    [row] = rows(db, "SELECT system, state, error FROM approval WHERE id = :id", id=approval)
    assert row.system == "crm" and row.state == "pending" and "no account on a chat platform" in row.error
    assert scalar(db, "SELECT count(*) FROM outbox") == 0
    assert scalar(db, "SELECT count(*) FROM audit_log WHERE operation = 'approval:request' AND outcome = 'unrouted'") == 1


def test_a_refusal_is_applied_once_with_the_reason_and_nothing_goes_to_the_erp(db):
    order = order_of(db, {"wecom": "lisi"})
    approval = ask(db, order)
    refused = ApprovalOutcome("202611270001", "rejected", "sp_status 3", "k", "director", "折扣过大", NOW)
    first, again = apply(db, approval, refused), apply(db, approval, refused)
    assert first.changed and not again.changed
    [row] = rows(db, "SELECT a.state, a.comment, a.approver, o.approval_state, o.status FROM approval a "
                     "JOIN sales_order o ON o.id = a.subject_id")
    assert (row.state, row.comment, row.approver, row.approval_state) == ("rejected", "折扣过大", "director", "rejected")
    assert scalar(db, "SELECT count(*) FROM outbox WHERE kind LIKE '%.sales_order'") == 0
    assert scalar(db, "SELECT count(*) FROM audit_log WHERE operation = 'approval:rejected'") == 1
    # a late "approved" read of a rejected approval changes nothing
    assert not apply(db, approval, ApprovalOutcome("202611270001", "approved", "sp_status 2")).changed


def test_approval_enqueues_the_erp_push_once_and_a_later_revocation_reopens_the_order(db):
    order = order_of(db, {"dingtalk": "lisi01"})
    approval = ask(db, order)
    approved = ApprovalOutcome("inst-1", "approved", "COMPLETED/agree", "k", "mgr", "同意", NOW)
    apply(db, approval, approved)
    apply(db, approval, approved)
    assert scalar(db, "SELECT count(*) FROM outbox WHERE kind = 'kingdee.sales_order'") == 1
    assert scalar(db, "SELECT status FROM sales_order WHERE id = :id", id=order) == "approved"
    revoked = ApprovalOutcome("inst-1", "revoked", "COMPLETED/agree+REVOKE", "k", "mgr", "同意", NOW,
                              extra={"revoke_remark": "客户取消", "revoked_at": NOW.isoformat()})
    assert apply(db, approval, revoked).after == "revoked"
    [o] = rows(db, "SELECT status, approval_state FROM sales_order WHERE id = :id", id=order)
    assert (o.status, o.approval_state) == ("reopened", "revoked")
    [task] = rows(db, "SELECT kind, title, description FROM task")
    assert task.kind == "erp_compensation" and "客户取消" in task.description
    # the push already queued is not deleted behind anyone's back
    assert scalar(db, "SELECT count(*) FROM outbox WHERE kind = 'kingdee.sales_order'") == 1


def test_a_revocation_seen_before_the_approval_is_a_withdrawal(db):
    order = order_of(db, {"wecom": "lisi"})
    approval = ask(db, order)
    assert apply(db, approval, ApprovalOutcome("sp", "revoked", "sp_status 6")).after == "withdrawn"
    assert scalar(db, "SELECT count(*) FROM outbox WHERE kind LIKE '%.sales_order'") == 0
    assert scalar(db, "SELECT count(*) FROM task") == 0


def test_callback_events_queue_one_check_per_event_and_state_and_the_poll_covers_the_rest(db):
    dingtalk_order, wecom_order = order_of(db, {"dingtalk": "lisi01"}), order_of(db, {"wecom": "zhaoliu"})
    a1, a2 = ask(db, dingtalk_order), ask(db, wecom_order)
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE approval SET external_id = CASE WHEN id = :a THEN 'inst-1' ELSE '202611270001' "
                             "END"), {"a": a1})
        event = {"EventType": "bpms_instance_change", "processInstanceId": "inst-1", "type": "finish",
                 "result": "agree", "staffId": "lisi01", "finishTime": 1764230000000}
        assert record_dingtalk_event(conn, event) == [a1]
        assert record_dingtalk_event(conn, event) == []  # the same event again
        assert record_dingtalk_event(conn, {**event, "processInstanceId": "someone-elses"}) == []
        wecom_event = {"Event": "sys_approval_change", "CreateTime": 1764230000,
                       "ApprovalInfo": {"SpNo": "202611270001", "SpStatus": 2, "StatuChangeEvent": 2}}
        assert record_wecom_event(conn, wecom_event) == [a2]
        assert record_wecom_event(conn, wecom_event) == []
    assert scalar(db, "SELECT count(*) FROM outbox WHERE idempotency_key LIKE 'approval:%:check:%'") == 2
    with db.begin() as conn:
        counts = reconcile(conn, NOW, recheck_after=dt.timedelta(minutes=10), revoke_watch=dt.timedelta(days=30))
        again = reconcile(conn, NOW, recheck_after=dt.timedelta(minutes=10), revoke_watch=dt.timedelta(days=30))
    assert (counts.checks_queued, counts.open_approvals, again.checks_queued) == (2, 2, 0)


def test_a_replayed_approval_callback_is_refused_and_audited_once(settings, db):
    order = order_of(db, {"dingtalk": "lisi01"})
    approval = ask(db, order)
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE approval SET external_id = 'inst-9' WHERE id = :id"), {"id": approval})
    with serve_in_thread(create_web_app(db, settings)) as web, CallbackDriver(f"{web.url}/callbacks/dingtalk") as ding:
        params, body = ding.seal({"EventType": "bpms_instance_change", "processInstanceId": "inst-9",
                                  "type": "finish", "result": "refuse", "staffId": "lisi01"})
        first, replay = ding.post(params, body), ding.post(params, body)
        tampered = httpx.post(f"{web.url}/callbacks/dingtalk", params=params,
                              content=json.dumps({"encrypt": json.loads(body)["encrypt"][:-8] + "AAAAAAA="}))
    assert first.acknowledged and not replay.acknowledged and replay.status == 403
    assert tampered.status_code in (400, 403)
    assert scalar(db, "SELECT count(*) FROM outbox WHERE idempotency_key LIKE 'approval:%:check:%'") == 1
    refusals = [r.error for r in rows(db, "SELECT error FROM audit_log WHERE operation = 'callback' "
                                          "AND outcome = 'rejected' ORDER BY id")]
    assert refusals[0] == "replayed" and len(refusals) == 2
    assert scalar(db, "SELECT count(*) FROM audit_log WHERE operation = 'callback:bpms_instance_change'") == 1
    assert scalar(db, "SELECT state FROM approval WHERE id = :id", id=approval) == "pending"  # the event alone decides nothing


def test_the_customer_profile_shows_the_orders_approval_its_platform_and_reason(db):
    from canonical_model.profile import customer_profile

    order = order_of(db, {"wecom": "lisi"})
    approval = ask(db, order)
    apply(db, approval, ApprovalOutcome("202611270003", "rejected", "sp_status 3", "k", "director", "折扣过大", NOW))
    customer = scalar(db, "SELECT customer_id FROM sales_order WHERE id = :id", id=order)
    with db.begin() as conn:
        profile = customer_profile(conn, customer)
    [shown] = profile.recent_orders
    assert (shown["approval_state"], shown["approval_system"], shown["approval_instance"], shown["approval_comment"]) \
        == ("rejected", "wecom", "202611270003", "折扣过大")
    [card] = profile.approvals
    assert (card["state"], card["order_number"], card["comment"], card["external_id"]) == \
        ("rejected", f"SO-{scalar(db, 'SELECT owner_id FROM sales_order WHERE id = :id', id=order)}", "折扣过大",
         "202611270003")
