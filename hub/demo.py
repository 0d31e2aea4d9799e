"""`hub demo` / `make demo`: the main flow end to end on the embedded Postgres and sandboxes.

1. a fresh ``hub_demo`` schema, migrated;
2. ERP inbound: Kingdee customers, sales orders, receivables and receipts into the store;
3. the CRM demo data set (sales team, customers, orders, to-dos) on top;
4. CRM orders approved → outbox → Kingdee sales orders, while the sandbox injects
   faults (lost responses, HTTP 500, expired sessions): each order lands exactly once;
5. read-back: the pushed orders come in again without echoing out;
6. WeCom directory sync, then due reminders pushed to salespeople (and managers);
7. a run summary and one customer's 360° profile.

Each step is a plain function so that Dagster's jobs (``pipelines/``) run the same code.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from rich.console import Console
from rich.table import Table

from hub.demo_data import load_crm_demo
from hub.orders import approve_order
from hub.reminders import ReminderPolicy, evaluate_reminders
from hub.runtime import HubRuntime
from hub.settings import Settings

DEMO_SCHEMA = "hub_demo"


@dataclass
class DemoSummary:
    """Rows of the run-summary table."""

    rows: list[tuple[str, str, str]] = field(default_factory=list)

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


def approve_all_pending(runtime: HubRuntime, erp_system: str = "kingdee") -> int:
    """Approve every pending CRM order (each approval enqueues its ERP push)."""
    with runtime.db.begin() as conn:
        ids = conn.execute(sa.text("SELECT id FROM sales_order WHERE source_system = 'crm' AND "
                                   "approval_state = 'pending' ORDER BY id")).scalars().all()
        for order_id in ids:
            approve_order(conn, order_id, erp_system=erp_system, max_attempts=runtime.settings.outbox.max_attempts)
    return len(ids)


def run_demo(settings: Settings, *, fresh: bool = True, console: Console | None = None) -> DemoSummary:
    """Run the demo flow (see the module docstring) and print what happened."""
    console = console or Console()
    settings = settings.model_copy(update={
        "database_schema": DEMO_SCHEMA,
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

        for report in hub.sync("kingdee"):
            c = report.counts
            summary.add("ERP → hub", f"kingdee/{report.stream}",
                        {"read": c.read, "inserted": c.inserted, "quarantined": c.quarantined})
        with hub.db.begin() as conn:
            erp_customers = conn.execute(sa.text(
                "SELECT DISTINCT r.customer_id FROM receivable r WHERE r.open_amount > 0 ORDER BY 1 LIMIT 12")
            ).scalars().all()
            seed_source = hub.spec("wecom").demo_seed
            seed = seed_source() if seed_source else {"people": [], "companies": []}
            loaded = load_crm_demo(conn, seed["people"], seed["companies"], now=now,
                                   erp_customer_ids=list(erp_customers))
        summary.add("CRM data", "demo data set", loaded)

        approved = approve_all_pending(hub)
        if hub.uses_sandbox("kingdee"):
            plan = hub.sandbox("kingdee").app.state.faults
            plan.arm("drop_response", rate=0.2, seed=3, times=8, operations=["save"])
            plan.arm("http_500", times=2, operations=["save"])
            plan.arm("auth_expired", times=1, operations=["save"])
        counts = hub.dispatcher(kinds=["kingdee.sales_order"]).drain(wait_for_scheduled=True, timeout_s=120)
        summary.add("CRM → ERP", f"{approved} approved orders",
                    {"done": counts.done, "adopted after lost response": counts.adopted, "retried": counts.retried,
                     "dead": counts.dead})
        readback = hub.sync("kingdee", "sales_orders")[0].counts
        summary.add("ERP → hub", "read-back of pushed orders",
                    {"read": readback.read, "inserted": readback.inserted, "updated": readback.updated})

        for report in hub.sync("wecom"):
            c = report.counts
            summary.add("chat → hub", f"wecom/{report.stream}",
                        {"read": c.read, "inserted": c.inserted, "updated": c.updated, "quarantined": c.quarantined})
        policy = ReminderPolicy(uncontacted_hours=settings.reminders.uncontacted_hours,
                                duplicate_check_interval_s=settings.wecom.duplicate_check_interval_s,
                                profile_base_url=settings.reminders.profile_base_url)
        with hub.db.begin() as conn:
            queued = evaluate_reminders(conn, now, policy)
        if hub.uses_sandbox("wecom"):
            wecom_plan = hub.sandbox("wecom").app.state.faults
            wecom_plan.arm("auth_expired", times=1)
            wecom_plan.arm("drop_response", times=2, operations=["message/send"])
        sent = hub.dispatcher(kinds=["wecom.reminder"]).drain(wait_for_scheduled=True, timeout_s=120)
        summary.add("hub → WeCom", "reminders",
                    {"queued": queued.queued, "delivered": sent.done, "retried": sent.retried,
                     "no WeCom account": queued.no_account, "failed": sent.failed, "dead": sent.dead})

        table = Table("step", "what", "numbers", title="demo run")
        for row in summary.rows:
            table.add_row(*row)
        console.print(table)
        _print_featured_profile(hub, console)
    return summary


def _print_featured_profile(hub: HubRuntime, console: Console) -> None:
    from canonical_model.profile import customer_profile
    from hub.cli import print_profile

    with hub.db.begin() as conn:
        featured = conn.execute(sa.text(
            "SELECT c.id FROM customer c JOIN receivable r ON r.customer_id = c.id "
            "JOIN sales_order o ON o.customer_id = c.id AND o.source_system = 'crm' "
            "WHERE r.open_amount > 0 GROUP BY c.id ORDER BY sum(r.open_amount) DESC LIMIT 1")).scalar()
        profile = customer_profile(conn, featured) if featured else None
    if profile is not None:
        print_profile(profile)
