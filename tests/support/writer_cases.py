"""Every outbox writer as a case of the fault matrix: how to give it work, and how its sandbox
shows what was really written.

A :class:`WriterCase` starts the writer's sandbox beside a :class:`~hub.runtime.HubRuntime`
(``start``), prepares the source of ``total`` effects once (``prepare``: the CRM's orders, its
people linked to the platform's directory, customers), queues ``n`` of them at a time the way
the domain rules do (``enqueue``: approvals, due tasks, webhook events; it returns the effect
keys the sandbox must end up holding) and reads the sandbox's own state back (``written``: how
often each effect key is there).
``write_operations`` are the sandbox operations (lower case) that carry the effect (the audit must have a
row for every request the sandbox saw to them; an approval check's is the read of the instance); ``tokens`` says whether the writer holds a
token or session that can expire (the CRM's webhooks are HMAC-signed per request: none);
``refusal`` names a fault kind the sandbox answers with a permanent refusal (the CRM receiver's
``auth_expired`` is a 401 "signature refused").

A kind whose writer carries more than one effect (:data:`EFFECTS_OF_WRITER`: an approval's create
and its checks) has a case per effect, told apart by ``effect`` and picked out of the kind's outbox
rows by ``rows_sql``. Adding a writer to the matrix is one entry in :data:`WRITER_CASES`; the
matrix fails while a registered writer kind (or one of its effects) has none.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

import connectors.dingtalk.client as dingtalk_client
import connectors.wecom.client as wecom_client
import connectors.yonyou.client as yonyou_client
from connectors.crm.sandbox import SANDBOX_SECRET as CRM_SECRET
from connectors.crm.sandbox import create_app as crm_receiver
from connectors.kit import CodeRule
from connectors.kit.sandbox import FaultPlan, serve_in_thread
from connectors.wecom.sandbox import demo_directory
from hub.database import Database
from hub.demo.data import load_crm_demo
from hub.errors import RateLimitedError
from hub.registry import connector
from hub.rules import webhooks
from hub.rules.approvals import (
    business_key,
    record_dingtalk_event,
    record_wecom_event,
    request_order_approval,
)
from hub.rules.reminders import ReminderPolicy, evaluate_reminders
from hub.rules.todos import TodoPolicy, evaluate_todos
from hub.runtime import HubRuntime, load_sandbox
from hub.settings import OutboxSettings, Settings
from tests.support.orders import approve_orders, erp_bill_counts, load_crm_orders

CLIENT_TIMEOUT_S = 0.5  # every client gives up after this; the sandboxes' "timeout" fault outlasts it
FAST_OUTBOX = OutboxSettings(max_attempts=8, backoff_initial_s=0.01, backoff_max_s=0.1, lease_s=30)
FAST_QPS = 400  # DingTalk's 20/s default would make a run of hundreds of writes a minute


@dataclass
class World:
    """A runtime over the test's database and the sandbox (ASGI app) of the writer under test."""

    hub: HubRuntime
    app: Any
    ready: list[Any] = field(default_factory=list)  # prepared work not queued yet (order ids, reps…)

    @property
    def faults(self) -> FaultPlan:
        """The sandbox's fault plan."""
        plan: FaultPlan = self.app.state.faults
        return plan


@dataclass(frozen=True)
class WriterCase:
    """One writer of the matrix (see the module docstring)."""

    kind: str
    prepare: Callable[[World, Database, int], None]
    enqueue: Callable[[World, Database, int], set[str]]
    written: Callable[[World], Counter[str]]
    write_operations: tuple[str, ...]
    tokens: bool = True
    # a fault kind the platform answers with a permanent refusal (a row that must fail, not retry)
    refusal: str | None = None
    sandbox_options: dict[str, Any] = field(default_factory=dict)
    connector_options: dict[str, Any] = field(default_factory=dict)
    # the platform's rate-limit waits (seconds to a minute) shortened so a test waits milliseconds
    fast_throttle: Callable[[pytest.MonkeyPatch], None] | None = None
    # the effect of the kind this case covers, where the kind's writer has more than one
    # (an approval's create and its checks); "" for the kind's one effect
    effect: str = ""
    # the SQL condition (on outbox row ``o``) that picks this case's effects among the kind's rows
    rows_sql: str = "TRUE"

    @property
    def system(self) -> str:
        """The system the writer writes to."""
        return self.kind.partition(".")[0]

    def __str__(self) -> str:
        return f"{self.kind}:{self.effect}" if self.effect else self.kind

    def start(self, settings: Settings, db: Database, stack: ExitStack, monkeypatch: pytest.MonkeyPatch) -> World:
        """The runtime and the running sandbox (stopped when ``stack`` closes)."""
        if self.fast_throttle is not None:
            self.fast_throttle(monkeypatch)
        configured = settings.with_connector(self.system, timeout_s=CLIENT_TIMEOUT_S, **self.connector_options)
        configured = configured.model_copy(update={"outbox": FAST_OUTBOX})
        if self.system == "crm":  # webhooks go out only to a configured endpoint
            receiver = stack.enter_context(serve_in_thread(crm_receiver(**self.sandbox_options)))
            configured = configured.with_connector("crm", base_url=receiver.url + "/webhooks",
                                                   signing_secret=CRM_SECRET)
            hub = HubRuntime(configured, db, actor="test")
            stack.callback(hub.close)
            return World(hub, receiver.app)
        hub = HubRuntime(configured, db, actor="test")
        stack.callback(hub.close)
        return World(hub, hub.sandbox(self.system, **self.sandbox_options).app)


# -- the ERPs: approved CRM orders become sales orders ------------------------------------------

def _erp_orders(erp: str) -> Callable[[World, Database, int], None]:
    def prepare(world: World, db: Database, total: int) -> None:
        world.hub.sync(erp, "customers")
        world.ready.extend(load_crm_orders(db, total, erp_system=erp))
    return prepare


def _approve(erp: str) -> Callable[[World, Database, int], set[str]]:
    def enqueue(world: World, db: Database, n: int) -> set[str]:
        ids, world.ready[:n] = world.ready[:n], []
        approve_orders(db, ids, erp_system=erp)
        with db.engine.connect() as conn:
            numbers = conn.execute(sa.text("SELECT order_number FROM sales_order WHERE id = ANY(:ids)"),
                                   {"ids": ids}).scalars()
            return {f"CRM-{number}" for number in numbers}
    return enqueue


def _kingdee_orders(world: World) -> Counter[str]:
    return Counter(erp_bill_counts(world.app.state.kingdee.data))


def _yonyou_orders(world: World) -> Counter[str]:
    orders = world.app.state.yonyou.data.orders.values()
    return Counter(o["code"] for o in orders if str(o["code"]).startswith("CRM-"))


def _yonyou_throttle(monkeypatch: pytest.MonkeyPatch) -> None:
    fast = {code: CodeRule(RateLimitedError, "throttled", retry_after=0.05) for code in (310046, 310039, 202)}
    monkeypatch.setattr(yonyou_client, "CODES", yonyou_client.CODES.override(fast))


# -- chat: reminders and to-dos for due CRM tasks ----------------------------------------------

def _directory(system: str, column: str) -> Callable[[World, Database, int], None]:
    """The demo CRM with ``system``'s directory synced onto it; its active sales reps are ready."""
    def prepare(world: World, db: Database, total: int) -> None:
        seed: dict[str, Any] = load_sandbox(connector(system)).demo_seed()  # type: ignore[misc]
        with db.begin() as conn:
            load_crm_demo(conn, seed["people"], seed["companies"], now=dt.datetime.now(dt.UTC), orders=0)
            conn.execute(sa.text("DELETE FROM task"))
            conn.execute(sa.text("UPDATE customer SET assigned_at = NULL"))  # no first-follow-up rule here
        world.hub.sync(system, "directory")
        with db.engine.connect() as conn:
            world.ready.extend(conn.execute(sa.text(
                f"SELECT id, {column} FROM internal_user WHERE active AND {column} IS NOT NULL "
                "AND title LIKE '%销售代表%' ORDER BY id")).all())
    return prepare


def _due_tasks(world: World, db: Database, n: int) -> list[tuple[int, str]]:
    """``n`` tasks due within the hour, spread over the ready reps: (task id, the assignee's
    platform id)."""
    due = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=30)
    reps = world.ready
    with db.begin() as conn:
        return [(conn.execute(sa.text(
            "INSERT INTO task (title, description, assignee_id, due_at, customer_id) VALUES "
            "(:t, '报价跟进', :a, :d, (SELECT min(id) FROM customer)) RETURNING id"),
            {"t": f"跟进任务 {i}", "a": reps[i % len(reps)][0], "d": due}).scalar_one(), reps[i % len(reps)][1])
            for i in range(n)]


def _reminders(system: str) -> Callable[[World, Database, int], set[str]]:
    def enqueue(world: World, db: Database, n: int) -> set[str]:
        tasks = _due_tasks(world, db, n)
        with db.begin() as conn:
            counts = evaluate_reminders(conn, dt.datetime.now(dt.UTC), ReminderPolicy(channels=(system,)))
        assert counts.queued == n, counts
        return {f"{userid.lower()}:{task}" for task, userid in tasks}
    return enqueue


def _wecom_messages(world: World) -> Counter[str]:
    written: Counter[str] = Counter()
    for message in world.app.state.wecom.messages:
        task = re.match(r"crm-(\d+)-", str(message.content.get("task_id")))  # crm-<task>-<kind>-<when>
        for user in message.delivered_to:
            written[f"{user.lower()}:{task.group(1) if task else '?'}"] += 1
    return written


def _dingtalk_notices(world: World) -> Counter[str]:
    written: Counter[str] = Counter()
    for notice in world.app.state.dingtalk.notice_log():
        task = re.search(r"#(\d+)", notice["msg"]["action_card"]["markdown"])
        for user in notice["delivered_to"]:
            written[f"{user.lower()}:{task.group(1) if task else '?'}"] += 1
    return written


def _dingtalk_todos(world: World, db: Database, n: int) -> set[str]:
    tasks = _due_tasks(world, db, n)
    with db.begin() as conn:
        counts = evaluate_todos(conn, dt.datetime.now(dt.UTC), TodoPolicy())
    assert counts.queued == n, counts
    return {f"crm-task-{task}" for task, _ in tasks}


def _dingtalk_todo_sources(world: World) -> Counter[str]:
    return Counter(str(todo["sourceId"]) for todo in world.app.state.dingtalk.todo_list())


def _wecom_throttle(monkeypatch: pytest.MonkeyPatch) -> None:
    fast = {code: CodeRule(RateLimitedError, "rate limited", retry_after=0.05) for code in (45009, 45033)}
    monkeypatch.setattr(wecom_client, "ERRCODES", wecom_client.ERRCODES.override(fast))


def _dingtalk_throttle(monkeypatch: pytest.MonkeyPatch) -> None:
    fast = {code: CodeRule(RateLimitedError, "throttled", retry_after=0.05) for code in (90018, 143103)}
    monkeypatch.setattr(dingtalk_client, "ERRCODES", dingtalk_client.ERRCODES.override(fast))
    monkeypatch.setattr(dingtalk_client, "API_CODES", dingtalk_client.API_CODES.override(
        {"Forbidden.AccessDenied.QpsLimitForApi": CodeRule(RateLimitedError, "throttled", retry_after=0.05)}))


def not_near_shanghai_midnight() -> None:
    """DingTalk suppresses an identical notice per day; across Shanghai midnight a resend is a
    new day's notice (the writer refuses it then, a person decides), which the matrix does not model."""
    local = dt.datetime.now(ZoneInfo("Asia/Shanghai"))
    if (local.hour, local.minute) >= (23, 50):
        pytest.skip("within 10 minutes of Shanghai midnight: same-day suppression does not cover resends")


# -- the CRM: signed webhooks ------------------------------------------------------------------

def _customers(world: World, db: Database, total: int) -> None:
    """Customers for the events: a third as many as events (each customer's go out in order)."""
    with db.begin() as conn:
        world.ready.extend(conn.execute(sa.text(
            "INSERT INTO customer (name, normalized_name) VALUES (:n, :n) RETURNING id"),
            {"n": f"故障测试{i}号贸易有限公司"}).scalar_one() for i in range(max(total // 3, 1)))


def _webhook_events(world: World, db: Database, n: int) -> set[str]:
    """``n`` lead.assigned events over the ready customers."""
    customers = world.ready
    ids = set()
    for i in range(n):
        with db.begin() as conn:
            ids.add(webhooks.emit(conn, "lead.assigned", customer_id=customers[i % len(customers)],
                                  subject=f"lead:{i}", data={"lead_id": i, "owner_user_id": 7, "rule": "region"}))
    return ids


def _webhook_deliveries(world: World) -> Counter[str]:
    """Deliveries the receiver accepted, by delivery id; a redelivery of an id it had (a lost
    reply) is the receiver's duplicate, acknowledged and not applied again."""
    return Counter(d["delivery_id"] for d in world.app.state.receiver.snapshot()["accepted"])


# -- OA approvals: big CRM orders asked for approval on the owner's platform --------------------

APPROVAL_KEY_CONTROL = "CRM单号"  # the sandboxes' order templates hold the business key here


def _approval_orders(system: str, column: str) -> Callable[[World, Database, int], None]:
    """``total`` CRM orders, each owned by a rep the platform lets apply (an active member in
    the app's range; WeCom refuses one not yet activated for good, which is not this matrix's
    question), with ``system``'s directory synced onto the CRM's people."""
    def prepare(world: World, db: Database, total: int) -> None:
        seed: dict[str, Any] = load_sandbox(connector(system)).demo_seed()  # type: ignore[misc]
        with db.begin() as conn:
            load_crm_demo(conn, seed["people"], seed["companies"], now=dt.datetime.now(dt.UTC), orders=total)
        world.hub.sync(system, "directory")
        unable = [u.userid for u in demo_directory() if u.status != 1] if system == "wecom" else []
        with db.begin() as conn:
            reps = conn.execute(sa.text(
                f"SELECT id FROM internal_user WHERE active AND {column} IS NOT NULL AND {column} <> ALL(:unable) "
                "AND title LIKE '%销售代表%' ORDER BY id"), {"unable": unable}).scalars().all()
            orders = conn.execute(sa.text(
                "SELECT id FROM sales_order WHERE source_system = 'crm' ORDER BY id")).scalars().all()
            assert reps and len(orders) >= total, (len(reps), len(orders))
            for n, order_id in enumerate(orders):
                conn.execute(sa.text("UPDATE sales_order SET owner_id = :o WHERE id = :id"),
                             {"o": reps[n % len(reps)], "id": order_id})
        world.ready.extend(orders)
    return prepare


def _ask_approval(system: str) -> Callable[[World, Database, int], set[str]]:
    def enqueue(world: World, db: Database, n: int) -> set[str]:
        ids, world.ready[:n] = world.ready[:n], []
        with db.begin() as conn:
            asked = [request_order_approval(conn, o, at=dt.datetime.now(dt.UTC), preference=(system,)) for o in ids]
            routed = conn.execute(sa.text("SELECT count(*) FROM approval WHERE id = ANY(:a) AND system = :s"),
                                  {"a": asked, "s": system}).scalar_one()
        assert None not in asked and routed == n, (asked, routed)
        return {business_key(o, 1) for o in ids}
    return enqueue


def _dingtalk_instances(world: World) -> Counter[str]:
    """Instances the DingTalk sandbox holds, by the business key in their key control."""
    book = world.app.state.approvals
    return Counter(v["value"] for i in book.instances.values() for v in i["formComponentValues"]
                   if v["name"] == APPROVAL_KEY_CONTROL and str(v["value"]).startswith("crm-order-"))


def _wecom_applications(world: World) -> Counter[str]:
    """Applications the WeCom sandbox holds, by the business key in their key control."""
    book = world.app.state.wecom.approvals
    written: Counter[str] = Counter()
    for application in book.approvals.values():
        for item in application["apply_data"]["contents"]:
            text = str((item.get("value") or {}).get("text") or "")
            if item["title"][0]["text"] == APPROVAL_KEY_CONTROL and text.startswith("crm-order-"):
                written[text] += 1
    return written


# -- OA approval checks: a callback (or the reconcile poll) has the hub re-read an instance ------

# Writers whose outbox kind carries more than one effect, and those effects: an approval's kind
# carries its create (``request_order_approval``) and the checks of its instance (a callback,
# the reconcile poll: ``hub.rules.approvals``), which call different platform operations.
EFFECTS_OF_WRITER = {"approval": ("check", "create")}

CHECK = "(o.payload ? 'instance_id')"  # a check's payload names the instance; a create's does not
CREATE = f"NOT {CHECK}"


def _approvals_on_platform(system: str, column: str) -> Callable[[World, Database, int], None]:
    """``total`` orders asked for approval on ``system`` and their instances created there
    (dispatched with no fault armed, before the matrix starts): the ready approvals are
    (approval id, instance id, business key)."""
    orders, ask = _approval_orders(system, column), _ask_approval(system)

    def prepare(world: World, db: Database, total: int) -> None:
        orders(world, db, total)
        ask(world, db, total)
        counts = world.hub.dispatcher(kinds=[f"{system}.approval"]).drain(wait_for_scheduled=True, timeout_s=600)
        assert counts.dead == counts.failed == 0, counts
        with db.engine.connect() as conn:
            world.ready[:] = conn.execute(sa.text(
                "SELECT id, external_id, business_key FROM approval WHERE system = :s AND state = 'pending' "
                "ORDER BY id"), {"s": system}).all()
        assert len(world.ready) == total and all(r.external_id for r in world.ready), world.ready[:3]
    return prepare


def _decide_and_call_back(system: str) -> Callable[[World, Database, int], set[str]]:
    """The approvers decide ``n`` ready approvals in the sandbox (every third refused, the rest
    agreed), and each callback the platform sends of it reaches the hub twice, as the web
    receiver hands it on (``record_dingtalk_event`` / ``record_wecom_event``): one check each."""
    def enqueue(world: World, db: Database, n: int) -> set[str]:
        ready, world.ready[:n] = world.ready[:n], []
        book = world.app.state.approvals if system == "dingtalk" else world.app.state.wecom.approvals
        record = record_dingtalk_event if system == "dingtalk" else record_wecom_event
        seen = len(book.events)
        for i, approval in enumerate(ready):
            book.act(approval.external_id, "refuse" if i % 3 == 2 else "agree", remark=f"审批意见 {i}")
        checked: set[int] = set()
        with db.begin() as conn:
            for event in book.events[seen:] * 2:  # every callback delivered twice
                checked.update(record(conn, event))
        assert checked == {a.id for a in ready}, (len(checked), len(ready))
        return {a.business_key for a in ready}
    return enqueue


def _platform_decision(world: World, system: str) -> dict[str, tuple[str, int]]:
    """The sandbox's own state: business key → (the decision it holds, its instances)."""
    if system == "dingtalk":
        book = world.app.state.approvals
        held: dict[str, tuple[str, int]] = {}
        for key, n in _dingtalk_instances(world).items():
            [first, *_] = book.by_key(APPROVAL_KEY_CONTROL, key)
            state = {"agree": "approved", "refuse": "rejected"}.get(first["result"], "pending")
            held[key] = (state if first["status"] == "COMPLETED" else "pending", n)
        return held
    states = {2: "approved", 3: "rejected"}  # sp_status (oa-approvals.md §2.3)
    applications = world.app.state.wecom.approvals
    return {key: (states.get(applications.by_key(APPROVAL_KEY_CONTROL, key)[0]["sp_status"], "pending"), n)
            for key, n in _wecom_applications(world).items()}


def _checks_applied(system: str) -> Callable[[World], Counter[str]]:
    """Per business key: how often the hub applied the decision the platform holds (its
    ``approval:<state>`` audit rows, counted only when the approval's state is the platform's),
    plus any instance the platform holds beyond the one created (a check must create none).
    A check not applied, or applied with another state than the platform's, is lost; applied
    twice (the order approved, its ERP push enqueued twice) is a duplicate."""
    def written(world: World) -> Counter[str]:
        decided = {key: held for key, held in _platform_decision(world, system).items() if held[0] != "pending"}
        with world.hub.db.engine.connect() as conn:
            applied = {r.business_key: (r.state, r.n) for r in conn.execute(sa.text(
                "SELECT a.business_key, a.state, count(l.id) AS n FROM approval a JOIN audit_log l "
                "ON l.key = a.business_key AND l.operation = 'approval:' || a.state AND l.outcome = 'applied' "
                "WHERE a.system = :s GROUP BY a.business_key, a.state"), {"s": system})}
        counts: Counter[str] = Counter()
        for key, (state, instances) in decided.items():
            hub_state, n = applied.get(key, ("pending", 0))
            counts[key] = (n if hub_state == state else 0) + instances - 1
        return +counts  # keys counted 0 (not applied) are lost, not present
    return written


WRITER_CASES = (
    WriterCase("kingdee.sales_order", _erp_orders("kingdee"), _approve("kingdee"), _kingdee_orders,
               ("save", "submit", "audit"), sandbox_options={"scale": 0.05}),
    WriterCase("yonyou.sales_order", _erp_orders("yonyou"), _approve("yonyou"), _yonyou_orders,
               ("sd/voucherorder/singlesave", "sd/voucherorder/batchsubmit", "sd/voucherorder/batchaudit"),
               # a tenant with purchased quota: these cases push hundreds of orders, not 60 a minute
               sandbox_options={"scale": 0.05, "order_calls_per_minute": None},
               connector_options={"order_calls_per_minute": 0}, fast_throttle=_yonyou_throttle),
    WriterCase("wecom.reminder", _directory("wecom", "wecom_userid"), _reminders("wecom"), _wecom_messages,
               ("message/send",), fast_throttle=_wecom_throttle),
    WriterCase("dingtalk.reminder", _directory("dingtalk", "dingtalk_userid"), _reminders("dingtalk"),
               _dingtalk_notices, ("topapi/message/corpconversation/asyncsend_v2",),
               sandbox_options={"api_qps": FAST_QPS}, connector_options={"max_qps": FAST_QPS},
               fast_throttle=_dingtalk_throttle),
    WriterCase("dingtalk.todo", _directory("dingtalk", "dingtalk_userid"), _dingtalk_todos, _dingtalk_todo_sources,
               ("todo/tasks/create",), sandbox_options={"api_qps": FAST_QPS}, connector_options={"max_qps": FAST_QPS},
               fast_throttle=_dingtalk_throttle),
    WriterCase("dingtalk.approval", _approval_orders("dingtalk", "dingtalk_userid"), _ask_approval("dingtalk"),
               _dingtalk_instances, ("workflow/processinstances/create",), sandbox_options={"api_qps": FAST_QPS},
               connector_options={"max_qps": FAST_QPS}, fast_throttle=_dingtalk_throttle, refusal="refused",
               effect="create", rows_sql=CREATE),
    WriterCase("dingtalk.approval", _approvals_on_platform("dingtalk", "dingtalk_userid"),
               _decide_and_call_back("dingtalk"), _checks_applied("dingtalk"), ("workflow/processinstances/get",),
               sandbox_options={"api_qps": FAST_QPS}, connector_options={"max_qps": FAST_QPS},
               fast_throttle=_dingtalk_throttle, refusal="refused", effect="check", rows_sql=CHECK),
    WriterCase("wecom.approval", _approval_orders("wecom", "wecom_userid"), _ask_approval("wecom"),
               _wecom_applications, ("oa/applyevent",), fast_throttle=_wecom_throttle, refusal="refused",
               effect="create", rows_sql=CREATE),
    WriterCase("wecom.approval", _approvals_on_platform("wecom", "wecom_userid"), _decide_and_call_back("wecom"),
               _checks_applied("wecom"), ("oa/getapprovaldetail",), fast_throttle=_wecom_throttle, refusal="refused",
               effect="check", rows_sql=CHECK),
    WriterCase("crm.webhook", _customers, _webhook_events, _webhook_deliveries, ("webhook",), tokens=False,
               refusal="auth_expired"),
)
