"""`hub demo` / `make demo`: the main flow end to end through the Dagster jobs, in process.

1. a fresh ``hub_demo`` schema, migrated;
2. ERP inbound (job ``kingdee_inbound``): Kingdee customers, sales orders, receivables and
   receipts into the store;
3. the CRM demo data set (sales team, customers, orders, to-dos) on top;
4. CRM orders approved → outbox → Kingdee sales orders (job ``orders_to_erp``), while the
   sandbox injects faults (lost responses, HTTP 500, expired sessions): each order lands
   exactly once;
5. read-back (job ``kingdee_inbound`` again): the pushed orders come in again without echoing out;
6. overdue receivables become collection tasks (job ``receivables_to_crm``);
7. both chat directories (jobs ``wecom_inbound``, ``dingtalk_inbound``): the company runs
   WeCom, and its East and South China sales teams have moved to DingTalk
   (:data:`DINGTALK_SCOPE`); everyone is in WeCom, those two teams also in DingTalk;
8. due reminders and to-dos (job ``todo_pushes``) while both platforms misbehave: each
   person is reminded on one platform (DingTalk preferred where it knows them), never both;
   DingTalk salespeople also get their tasks as DingTalk to-dos;
9. a few of those to-dos ticked off in DingTalk (job ``todo_pushes`` again): the CRM tasks
   close with who and when, and nothing echoes back to DingTalk;
10. the biggest CRM order was held back in step 4: it goes to an OA approval on its owner's
    chat platform (job ``approvals_reconcile``: one instance, keyed by the order), the
    approver agrees in the platform (the sandbox's "act as the approver"), the poll reads the
    outcome (no ``hub serve`` runs to take the callback), and only then is it pushed to the
    ERP (job ``orders_to_erp``);
11. signed webhooks back to the CRM (job ``crm_webhook_push``): orders in the ERP, the
    approval, and tasks done in chat, delivered in order per customer to the CRM sandbox's
    receiver, which verifies every signature; it loses two replies, and the redeliveries carry
    the same delivery id;
12. one customer's 360° profile.

Each job runs exactly as Dagster runs it (``pipelines.definitions``; assets, checks and
resources), on a :class:`~pipelines.resources.HubResource` pointing at the demo schema.
Every run opens its own runtime, so the demo starts each sandbox once and hands its URL
to every run (``sandbox_urls``): the orders pushed in step 4 are in the ERP read in step 5,
and the faults armed here strike the runs. After each job a table shows, per asset, the
numbers of its materialization and how many of its checks passed.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import httpx
import sqlalchemy as sa
from pydantic import SecretStr
from rich.console import Console, RenderableType

import hub.rules  # noqa: F401  (outbox effect handlers and sync hooks)
from hub.demo.data import load_crm_demo
from hub.registry import systems
from hub.rules.approvals import reconcile, request_order_approval
from hub.rules.orders import approve_order
from hub.runtime import HubRuntime, load_sandbox
from hub.settings import Settings

if TYPE_CHECKING:
    from dagster import DagsterInstance, Definitions

    from pipelines.in_process import JobOutcome

DEMO_SCHEMA = "hub_demo"
# The DingTalk app's directory scope in the demo: 华东销售部 and 华南销售部 (universe ids).
DINGTALK_SCOPE = (3, 4)
TICKED_OFF_IN_DINGTALK = 3
SYNC_COLUMNS = ("read", "inserted", "updated", "unchanged", "quarantined", "superseded")
WAIT_FOR_RETRIES_S = 120.0  # the demo waits for scheduled retries instead of leaving them to the sensor


@dataclass
class DemoSummary:
    """What the demo did: the steps outside Dagster and each job's outcome."""

    rows: list[tuple[str, str, str]] = field(default_factory=list)
    jobs: list[JobOutcome] = field(default_factory=list)

    def add(self, step: str, what: str, numbers: dict[str, Any] | str) -> None:
        text = numbers if isinstance(numbers, str) else ", ".join(f"{k} {v}" for k, v in numbers.items())
        self.rows.append((step, what, text))


def reset_schema(runtime: HubRuntime) -> None:
    """Drop and re-create the demo schema (only ever the dedicated demo schema)."""
    assert runtime.db.schema == DEMO_SCHEMA
    with runtime.db.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{DEMO_SCHEMA}" CASCADE'))
    runtime.db.engine.dispose()
    runtime.db.upgrade()


def approve_all_pending(runtime: HubRuntime, hold_back: set[int] | frozenset[int] = frozenset()) -> int:
    """Approve every pending CRM order but those in ``hold_back`` (each approval enqueues its
    push to the ERP its legal entity is routed to, ``HUB_ORDERS__*``)."""
    with runtime.db.begin() as conn:
        ids = [i for i in conn.execute(sa.text("SELECT id FROM sales_order WHERE source_system = 'crm' AND "
                                               "approval_state = 'pending' ORDER BY id")).scalars()
               if i not in hold_back]
        for order_id in ids:
            approve_order(conn, order_id, routing=runtime.settings.orders,
                          max_attempts=runtime.settings.outbox.max_attempts)
    return len(ids)


def _biggest_pending_order(runtime: HubRuntime) -> int | None:
    """The pending CRM order the demo sends through an OA approval (the default rules ask for
    one from 100,000; the demo takes the biggest whatever its amount)."""
    with runtime.db.begin() as conn:
        found: int | None = conn.execute(sa.text(
            "SELECT id FROM sales_order WHERE source_system = 'crm' AND approval_state = 'pending' "
            "ORDER BY total_amount DESC, id LIMIT 1")).scalar()
    return found


def _order_through_approval(hub: HubRuntime, jobs: DemoJobs, console: Console, summary: DemoSummary,
                            order_id: int) -> None:
    """Step 10: one order through an OA approval on its owner's chat platform, then the ERP."""
    from pipelines.in_process import op_config

    settings = hub.settings
    with hub.db.begin() as conn:
        approval_id = request_order_approval(conn, order_id, at=dt.datetime.now(dt.UTC),
                                             preference=settings.reminders.channels(), routing=settings.orders)
    jobs.run("hub → OA approval", "approvals_reconcile")
    with hub.db.begin() as conn:
        row = conn.execute(sa.text("SELECT system, external_id, business_key, state, error FROM approval WHERE id = :id"),
                           {"id": approval_id}).one()
    if row.external_id is None or not hub.uses_sandbox(row.system):
        summary.add("OA approval", f"order {order_id}", f"not created: {row.error or row.state}")
        console.print(f"[bold]OA approval:[/] order {order_id}: {summary.rows[-1][2]}")
        return
    console.print(f"[bold]OA approval:[/] order {order_id} is {row.system} instance {row.external_id} "
                  f"(key {row.business_key}); the approver agrees in the app")
    httpx.post(f"{hub.sandbox(row.system).url}/__sandbox__/approvals/{row.external_id}/act",
               json={"action": "agree", "remark": "同意：价格在授权范围内"}, timeout=10).raise_for_status()
    # no `hub serve` takes the platform's callback here: the poll (its fallback) reads the outcome
    with hub.db.begin() as conn:
        reconcile(conn, dt.datetime.now(dt.UTC), recheck_after=dt.timedelta(0),
                  revoke_watch=dt.timedelta(days=settings.approvals.revoke_watch_days))
    jobs.run("OA approval → hub", "approvals_reconcile")
    jobs.run("CRM → ERP (approved in OA)", "orders_to_erp",
             op_config("kingdee/sales_order_push", wait_for_retries_s=WAIT_FOR_RETRIES_S))
    with hub.db.begin() as conn:
        order = conn.execute(sa.text(
            "SELECT o.order_number, o.approval_state, o.status, o.erp_bill_number, a.state, a.comment "
            "FROM sales_order o JOIN approval a ON a.subject_id = o.id AND a.id = :a WHERE o.id = :id"),
            {"id": order_id, "a": approval_id}).one()
    summary.add("OA approval", f"order {order.order_number}",
                {"approval": order.state, "order": order.status, "ERP bill": order.erp_bill_number or "—"})
    console.print(f"[bold]OA approval:[/] order {order.order_number} {order.state} ({order.comment or '—'}), "
                  f"then {order.status} as ERP bill {order.erp_bill_number or '—'}")


class DemoJobs:
    """The hub's Dagster jobs over the demo schema and the demo's sandboxes, run in process."""

    def __init__(self, hub: HubRuntime, console: Console, summary: DemoSummary) -> None:
        from dagster import DagsterInstance

        from pipelines.definitions import build_definitions
        from pipelines.resources import HubResource

        # the demo's own sandboxes, shared by every run (a run would otherwise start its own)
        sandbox_urls = {s: hub.sandbox(s).url for s in systems() if hub.uses_sandbox(s)}
        # the database as this process resolved it (the embedded server is not joined again per run)
        settings = hub.settings.model_copy(update={"database_url": SecretStr(hub.db.url)})
        self.defs: Definitions = build_definitions(HubResource.from_settings(settings, sandbox_urls=sandbox_urls))
        self.instance: DagsterInstance = DagsterInstance.ephemeral()
        self.console = console
        self.summary = summary

    def run(self, step: str, job: str, run_config: dict[str, Any] | None = None) -> JobOutcome:
        """Run ``job``, print its table, fail loudly when a step failed."""
        from pipelines.in_process import run_job

        started = time.perf_counter()
        outcome = run_job(self.defs, job, run_config=run_config, instance=self.instance)
        self.summary.jobs.append(outcome)
        self.console.print(job_table(step, outcome, time.perf_counter() - started, self.console.size.width),
                           crop=False)
        if not outcome.success:
            raise RuntimeError(f"Dagster job {job} failed: " + "; ".join(outcome.errors))
        return outcome

    def close(self) -> None:
        self.instance.dispose()


def run_demo(settings: Settings, *, fresh: bool = True, console: Console | None = None,
             kingdee_scale: float = 1.0) -> DemoSummary:
    """Run the demo flow (see the module docstring) and print what happened.

    ``kingdee_scale`` sizes the Kingdee sandbox's seed (1.0: 2,000 customers, 20,000
    orders); the test suite runs the whole demo at a small scale.
    """
    from pipelines.in_process import op_config

    console = console or Console()
    settings = settings.model_copy(update={
        "database_schema": DEMO_SCHEMA, "sandbox": True,
        "outbox": settings.outbox.model_copy(update={"backoff_initial_s": 0.05, "backoff_max_s": 0.5}),
    })
    summary = DemoSummary()
    now = dt.datetime.now(dt.UTC)
    with HubRuntime.open(settings, check_schema=False, actor="demo") as hub:
        if fresh:
            reset_schema(hub)
        else:
            hub.db.upgrade()
        where = ("embedded Postgres in " + str(settings.home / "pg")) if settings.database_url is None \
            else "configured Postgres"
        console.print(f"[bold]database:[/] {where}, schema {DEMO_SCHEMA}")
        vault = hub.db.vault
        if vault.origin != "environment":
            console.print(f"[bold]vault:[/] mobiles and e-mails are encrypted at rest with demo keys generated in "
                          f"{vault.origin} (mode 0600); a real deployment sets HUB_VAULT__KEYS and "
                          "HUB_VAULT__INDEX_KEY (`hub keys generate`)")
        if hub.uses_sandbox("kingdee"):
            hub.sandbox("kingdee", scale=kingdee_scale)
        if hub.uses_sandbox("dingtalk"):
            hub.sandbox("dingtalk", visible_department_ids=DINGTALK_SCOPE)
        receiver = _point_webhooks_at_the_receiver(hub)
        jobs = DemoJobs(hub, console, summary)
        try:
            jobs.run("ERP → hub", "kingdee_inbound")

            with hub.db.begin() as conn:
                present = conn.execute(sa.text("SELECT count(*) FROM internal_user WHERE source_system = 'crm'")
                                       ).scalar_one()
                if present:  # `hub demo --keep`: the CRM data of an earlier run is still there
                    loaded: dict[str, Any] | str = f"kept from an earlier run ({present} users)"
                else:
                    erp_customers = conn.execute(sa.text(
                        "SELECT DISTINCT r.customer_id FROM receivable r WHERE r.open_amount > 0 ORDER BY 1 LIMIT 12")
                    ).scalars().all()
                    seed_source = load_sandbox(hub.spec("wecom")).demo_seed if hub.uses_sandbox("wecom") else None
                    seed = seed_source() if seed_source else {"people": [], "companies": []}
                    loaded = load_crm_demo(conn, seed["people"], seed["companies"], now=now,
                                           erp_customer_ids=list(erp_customers))
            summary.add("CRM data", "demo data set", loaded)
            console.print("[bold]CRM data:[/] " + summary.rows[-1][2])

            big_order = _biggest_pending_order(hub)
            approved = approve_all_pending(hub, hold_back={big_order} if big_order else set())
            summary.add("CRM → ERP", "approved orders", {"approved": approved})
            console.print(f"[bold]CRM:[/] {approved} orders approved, each with its ERP push in the outbox"
                          + (f"; the biggest (order {big_order}) waits for an OA approval" if big_order else ""))
            if hub.uses_sandbox("kingdee"):
                plan = hub.sandbox("kingdee").app.state.faults
                plan.arm("drop_response", rate=0.2, seed=3, times=8, operations=["save"])
                plan.arm("http_500", times=2, operations=["save"])
                plan.arm("auth_expired", times=1, operations=["save"])
                console.print("[bold]Kingdee sandbox:[/] will drop up to 8 save responses, answer 2 saves with "
                              "HTTP 500 and expire the session once")
            jobs.run("CRM → ERP", "orders_to_erp",
                     op_config("kingdee/sales_order_push", wait_for_retries_s=WAIT_FOR_RETRIES_S))
            if hub.uses_sandbox("kingdee"):
                hub.sandbox("kingdee").app.state.faults.clear()

            jobs.run("ERP → hub (read-back of the pushed orders)", "kingdee_inbound")
            with hub.db.begin() as conn:
                echoes = conn.execute(sa.text(
                    "SELECT count(*) FROM outbox WHERE kind = 'kingdee.sales_order' AND payload->>'order_id' IN "
                    "(SELECT id::text FROM sales_order WHERE source_system <> 'crm')")).scalar_one()
            summary.add("ERP → hub", "read-back", {"orders echoed back to the ERP": echoes})
            console.print(f"[bold]read-back:[/] ERP orders pushed back to the ERP (echoes): {echoes}")

            jobs.run("ERP → CRM", "receivables_to_crm")
            jobs.run("WeCom → hub", "wecom_inbound")
            jobs.run("DingTalk → hub", "dingtalk_inbound")
            _arm_chat_faults(hub, console)
            jobs.run("hub → WeCom and DingTalk", "todo_pushes", _push_config())
            _print_channel_split(hub, console, summary)
            if hub.uses_sandbox("dingtalk"):
                _tick_off_in_dingtalk(hub, jobs, console, summary)
            if big_order:
                _order_through_approval(hub, jobs, console, summary, big_order)
            if receiver is not None:
                _deliver_webhooks(receiver, jobs, console, summary)
        finally:
            jobs.close()
        _print_featured_profile(hub, console)
        _print_sign_in(hub, console, summary)
    return summary


def _point_webhooks_at_the_receiver(hub: HubRuntime) -> Any:
    """In sandbox mode without a CRM receiver configured, start the CRM sandbox's receiver and
    send the webhooks there (webhooks are never on by default, so this is the demo's choice);
    returns the running receiver, or None when the CRM is configured."""
    if not hub.uses_sandbox("crm"):
        return None
    receiver = hub.sandbox("crm")
    pointed = load_sandbox(hub.spec("crm")).client_settings(receiver.url, hub.settings.connector("crm"))
    hub.settings = hub.settings.model_copy(update={"connectors": {**hub.settings.connectors, "crm": pointed}})
    receiver.app.state.faults.arm("drop_response", times=2)
    return receiver


def _deliver_webhooks(receiver: Any, jobs: DemoJobs, console: Console, summary: DemoSummary) -> None:
    """Run the webhook push and say what the CRM's receiver verified and accepted."""
    from pipelines.in_process import op_config

    console.print("[bold]CRM receiver:[/] will lose 2 replies (the deliveries arrive, the answers do not)")
    jobs.run("hub → CRM (signed webhooks)", "crm_webhook_push",
             op_config("crm/webhook_push", wait_for_retries_s=WAIT_FOR_RETRIES_S))
    got = receiver.app.state.receiver.snapshot()
    types: dict[str, int] = {}
    for delivery in got["accepted"]:
        types[delivery["event_type"]] = types.get(delivery["event_type"], 0) + 1
    numbers = {**types, "redeliveries (same delivery id)": got["duplicates"], "refused signatures": len(got["rejected"])}
    summary.add("hub → CRM", "webhooks", numbers)
    console.print("[bold]CRM receiver:[/] " + summary.rows[-1][2] + "; every signature verified")


def _print_sign_in(hub: HubRuntime, console: Console, summary: DemoSummary) -> None:
    """Make two demo logins with fresh random passwords and say how to sign in with them:
    an administrator, and the salesperson who owns the most overdue customer (who sees
    only their own customers). The passwords are shown once; only their hashes are kept."""
    import secrets

    from hub.access import Role
    from hub.access.accounts import add_login, set_password
    from hub.access.principal import cli_principal

    passwords = {name: secrets.token_urlsafe(12) for name in ("demo-admin", "demo-sales")}
    with hub.db.begin() as conn:
        owner = conn.execute(sa.text(
            "SELECT c.owner_id FROM customer c JOIN receivable r ON r.customer_id = c.id WHERE c.owner_id IS NOT NULL "
            "AND r.open_amount > 0 GROUP BY c.owner_id ORDER BY sum(r.open_amount) DESC LIMIT 1")).scalar()
        for name, role, user in (("demo-admin", Role.ADMIN, None), ("demo-sales", Role.SALES, owner)):
            if role is Role.SALES and user is None:
                passwords.pop(name)
                continue
            exists = conn.execute(sa.text("SELECT 1 FROM app_login WHERE username = :u"), {"u": name}).first()
            if exists:
                set_password(conn, cli_principal(), name, passwords[name])
            else:
                add_login(conn, cli_principal(), name, passwords[name], role, str(user) if user else None)
    summary.add("sign-in", "demo logins", {"logins": len(passwords)})
    url = hub.settings.public_url.rstrip("/")
    console.print(f"[bold]sign in:[/] HUB_DATABASE_SCHEMA={hub.settings.database_schema} hub serve, then open "
                  f"{url}/login", highlight=False, soft_wrap=True)
    for name, password in passwords.items():
        console.print(f"  {name} / {password}  (shown once; `hub user password {name}` sets a new one)",
                      highlight=False, soft_wrap=True)


def _push_config() -> dict[str, Any]:
    """Every chat push of ``todo_pushes`` waits for its scheduled retries (the demo has no sensor)."""
    from pipelines.in_process import op_config

    ops: dict[str, Any] = {}
    for key in ("wecom/reminder_push", "dingtalk/reminder_push", "dingtalk/todo_push"):
        ops.update(op_config(key, wait_for_retries_s=WAIT_FOR_RETRIES_S)["ops"])
    return {"ops": ops}


def _arm_chat_faults(hub: HubRuntime, console: Console) -> None:
    if hub.uses_sandbox("wecom"):
        wecom_plan = hub.sandbox("wecom").app.state.faults
        wecom_plan.arm("auth_expired", times=1)
        wecom_plan.arm("drop_response", times=2, operations=["message/send"])
        console.print("[bold]WeCom sandbox:[/] will expire the token once and drop 2 send responses")
    if hub.uses_sandbox("dingtalk"):
        ding_plan = hub.sandbox("dingtalk").app.state.faults
        ding_plan.arm("auth_expired", times=1, operations=["todo/tasks/create"])
        ding_plan.arm("drop_response", times=2, operations=["topapi/message/corpconversation/asyncsend_v2"])
        ding_plan.arm("drop_response", times=2, operations=["todo/tasks/create"])
        console.print("[bold]DingTalk sandbox:[/] will expire the token once and drop 2 notice and 2 to-do "
                      "create responses")


def _print_channel_split(hub: HubRuntime, console: Console, summary: DemoSummary) -> None:
    """Who was reminded where: each person on one platform."""
    with hub.db.begin() as conn:
        rows = conn.execute(sa.text(
            "SELECT split_part(kind, '.', 1) AS channel, count(DISTINCT payload->>'recipient_user_id') AS people, "
            "count(*) AS reminders FROM outbox WHERE kind LIKE '%.reminder' GROUP BY 1 ORDER BY 1")).all()
        both = conn.execute(sa.text(
            "SELECT count(*) FROM (SELECT payload->>'recipient_user_id' FROM outbox WHERE kind LIKE '%.reminder' "
            "GROUP BY 1 HAVING count(DISTINCT kind) > 1) AS twice")).scalar_one()
        todos = conn.execute(sa.text("SELECT count(*) FROM outbox WHERE kind LIKE '%.todo'")).scalar_one()
    numbers = {f"{r.channel} people": r.people for r in rows} | {"reminded on both": both, "to-dos pushed": todos}
    summary.add("hub → chat", "one platform per person", numbers)
    console.print("[bold]chat platforms:[/] " + ", ".join(
        f"{r.channel}: {r.reminders} reminders to {r.people} people" for r in rows)
        + f"; people reminded on both: {both}; DingTalk to-dos pushed: {todos}")


def _tick_off_in_dingtalk(hub: HubRuntime, jobs: DemoJobs, console: Console, summary: DemoSummary) -> None:
    """Salespeople tick a few to-dos off in DingTalk; the next run closes the CRM tasks."""
    state = hub.sandbox("dingtalk").app.state.dingtalk
    open_todos = [t for t in state.todo_list() if not t["done"]][:TICKED_OFF_IN_DINGTALK]
    for todo in open_todos:
        state.complete_todo(todo["id"])
    updates_before = len(state.todo_updates)
    console.print(f"[bold]DingTalk:[/] {len(open_todos)} to-dos ticked off by their salespeople in the app")
    jobs.run("DingTalk → CRM (to-dos ticked off)", "todo_pushes", _push_config())
    ids = [int(t["sourceId"].removeprefix("crm-task-")) for t in open_todos]
    with hub.db.begin() as conn:
        closed = conn.execute(sa.text(
            "SELECT t.id, u.name, t.completed_at FROM task t LEFT JOIN internal_user u ON u.id = t.completed_by_id "
            "WHERE t.id = ANY(:ids) AND t.status = 'done' AND t.completed_via = 'dingtalk' ORDER BY t.id"),
            {"ids": ids}).all()
    echoes = len(state.todo_updates) - updates_before
    summary.add("DingTalk → CRM", "to-dos ticked off", {"tasks closed": len(closed), "echo updates sent": echoes})
    local = ZoneInfo(hub.settings.timezone)
    console.print("[bold]CRM:[/] " + "; ".join(
        f"task {r.id} done by {r.name} at {r.completed_at.astimezone(local):%H:%M:%S}" for r in closed)
        + f"; updates echoed back to DingTalk: {echoes}")


def job_table(step: str, outcome: JobOutcome, seconds: float, width: int) -> RenderableType:
    """One job's run, fitted to ``width``: per asset the numbers of its materialization and
    how many of its checks passed. Sync assets fill the read … quarantined columns; the
    numbers of other assets (dispatch, derived tasks) go in a column of their own."""
    from hub.cli.tables import Column, fit

    state = "success" if outcome.success else "FAILED"
    title = f"{step}: job {outcome.job}, run {outcome.run_id[:8]}, {seconds:.1f} s, {state}"
    synced = [a for a, m in outcome.assets.items() if "read" in m]
    columns = [Column("asset")]
    if synced:
        columns += [Column(c, "amount" if c in ("read", "quarantined") else "extra") for c in SYNC_COLUMNS]
    columns += [Column("numbers", "text")] if len(synced) < len(outcome.assets) else []
    columns.append(Column("checks passed", "text"))
    rows = []
    for asset, metadata in outcome.assets.items():
        cells = [asset]
        if synced:
            cells += [str(metadata[k]) if asset in synced else "" for k in SYNC_COLUMNS]
        if len(synced) < len(outcome.assets):
            cells.append("" if asset in synced else ", ".join(
                f"{k} {v}" for k, v in metadata.items() if isinstance(v, int) and not k.startswith("outbox_")))
        cells.append(_checks_cell(outcome, asset))
        rows.append(cells)
    return fit(columns, rows, width, title=title)


def _checks_cell(outcome: JobOutcome, asset: str) -> str:
    checks = outcome.checks_of(asset)
    if not checks:
        return "—"
    passed = sum(c.passed for c in checks)
    failed = [f"{'warn' if c.severity == 'WARN' else 'error'}: {c.name}" for c in checks if not c.passed]
    return f"{passed}/{len(checks)}" + (f" ({', '.join(failed)})" if failed else "")


def _print_featured_profile(hub: HubRuntime, console: Console) -> None:
    from hub.cli import print_profile
    from hub.vault.display import profile_for_display

    with hub.db.begin() as conn:
        featured = conn.execute(sa.text(
            "SELECT c.id FROM customer c JOIN receivable r ON r.customer_id = c.id "
            "JOIN sales_order o ON o.customer_id = c.id AND o.source_system = 'crm' "
            "WHERE r.open_amount > 0 GROUP BY c.id ORDER BY sum(r.open_amount) DESC LIMIT 1")).scalar()
        profile = profile_for_display(conn, featured) if featured else None
    if profile is not None:
        print_profile(profile, console)
