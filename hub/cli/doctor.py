"""`hub doctor`: configuration, database and every connector, on any database state."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import sqlalchemy as sa
import typer

from hub.cli.base import FAILED, app, console, failures_as_one_line, print_json, settings
from hub.cli.tables import Column, print_table
from hub.errors import ConnectorError, HubError

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "0.0.0.0")


@app.command()
def doctor(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Check configuration, database, schema and every connector (no secrets printed).

    Works before `hub db upgrade` too: it then says so, and checks the connectors
    without writing their calls to the (missing) audit table.
    """
    from hub.database import head_revision, open_database
    from hub.registry import systems
    from hub.runtime import HubRuntime

    checks: list[dict[str, Any]] = []

    def add(check: str, status: str, detail: str) -> None:
        checks.append({"check": check, "status": status, "detail": detail})

    with failures_as_one_line():
        config = settings()
        add("configuration", "ok", f"sandbox mode {'on' if config.sandbox else 'off'}")
        db = open_database(config, check_schema=False)
        try:
            try:
                current = db.current_revision()
            except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
                add("database", "failed", f"unreachable ({type(exc).__name__})")
                current = None
                reachable = False
            else:
                reachable = True
                where = "embedded" if config.database_url is None else "configured"
                add("database", "ok", f"{where}, schema {db.schema}")
                head = head_revision()
                if current == head:
                    add("schema", "ok", f"at {current}")
                    check_owners(db, config, add)
                else:
                    add("schema", "behind", f"at {current or 'nothing'}, code expects {head}: run `hub db upgrade`")
            runtime = HubRuntime(config, db, actor="doctor", audit_calls=reachable and current == head_revision())
            try:
                for system in systems():
                    check_connector(runtime, system, add)
            finally:
                runtime.close()
        finally:
            db.dispose()
        warn_public_url(config, add)
    ok = all(c["status"] in ("ok", "not configured", "warning") for c in checks)
    if as_json:
        print_json({"ok": ok, "checks": checks})
    else:
        print_table(console, (Column("check"), Column("status"), Column("detail", "text")),
                    [[c["check"], c["status"], c["detail"]] for c in checks])
    if not ok:
        raise typer.Exit(FAILED)


def check_owners(db: Any, config: Any, add: Any) -> None:
    """Customers without an owner (the public pool) and who chases their overdue money."""
    from hub.rules.collections import finance_assignees
    from hub.rules.pool import ownerless_customers

    with db.begin() as conn:
        count = ownerless_customers(conn)
        overdue = conn.execute(sa.text(
            "SELECT count(DISTINCT c.id) FROM customer c JOIN receivable r ON r.customer_id = c.id "
            "WHERE c.owner_id IS NULL AND r.open_amount > 0 AND r.due_date < :today"),
                {"today": dt.datetime.now(ZoneInfo(config.timezone)).date()}).scalar_one()
        finance, problems = finance_assignees(conn, config.collections.recipients())
    detail = f"{count} customer(s) without an owner (public pool), {overdue} of them overdue"
    if overdue and not finance:
        why = "; ".join(problems) or "HUB_COLLECTIONS__FINANCE_RECIPIENTS is not set"
        add("owners", "warning", f"{detail}: nobody chases them ({why})")
    elif count:
        add("owners", "warning", f"{detail}; their 催收 tasks go to {len(finance)} finance recipient(s)")
    else:
        add("owners", "ok", "every customer has an owner")


def check_connector(runtime: Any, system: str, add: Any) -> None:
    """Reachability and credentials of one connector (its client's own check)."""
    section = runtime.settings.connector(system)
    if not runtime.uses_sandbox(system) and not section.is_configured():
        add(system, "not configured", f"unused; set HUB_{system.upper()}__* to use it")
        return
    mode = "sandbox" if runtime.uses_sandbox(system) else "configured"
    try:
        runtime.client(system).check()
    except (ConnectorError, HubError) as exc:
        add(system, "failed", f"{mode}; {exc}")
    else:
        add(system, "ok", f"{mode}; credentials accepted")


def warn_public_url(config: Any, add: Any) -> None:
    """Reminder links must reach people's phones: localhost does not, once a real chat
    platform is configured."""
    from hub.registry import chat_systems

    host = urlsplit(config.public_url).hostname or ""
    real_chat = [s for s in chat_systems() if config.connector(s).base_url]
    if host in LOCAL_HOSTS and real_chat:
        add("public_url", "warning", f"{config.public_url} is this machine; reminder links from "
                                     f"{', '.join(real_chat)} will not open on phones: set HUB_PUBLIC_URL")
