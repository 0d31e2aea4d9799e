"""The ``hub`` command line: what IT runs by hand next to the Dagster UI.

Every command prints one clear line on failure and exits non-zero:
1 for an operational failure (a connector refused, nothing found), 2 for usage or
configuration errors, 3 when the database schema needs ``hub db upgrade``.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Annotated, Any

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.table import Table

import hub.rules  # noqa: F401  (registers outbox effect handlers and sync hooks)
from hub.errors import ConfigError, ConnectorError, HubError, NotFoundError, SchemaNotCurrentError
from hub.logging_setup import configure_logging
from hub.settings import Settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help="CRM ⇄ ERP ⇄ chat integration hub.")
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
dlq_app = typer.Typer(no_args_is_help=True, help="Dead letters of the outbox.")
quarantine_app = typer.Typer(no_args_is_help=True, help="Records the hub could not accept.")
identity_app = typer.Typer(no_args_is_help=True, help="Identity resolution.")
app.add_typer(db_app, name="db")
app.add_typer(dlq_app, name="dlq")
app.add_typer(quarantine_app, name="quarantine")
app.add_typer(identity_app, name="identity")

console = Console()
err_console = Console(stderr=True)


def _exit_code(exc: HubError) -> int:
    if isinstance(exc, SchemaNotCurrentError):
        return 3
    if isinstance(exc, ConfigError):
        return 2
    return 1


@contextmanager
def failures_as_one_line() -> Iterator[None]:
    """Turn hub errors into a one-line message and an exit code (no traceback)."""
    try:
        yield
    except HubError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(_exit_code(exc)) from None
    except sa.exc.OperationalError as exc:
        err_console.print(f"[bold red]error:[/] database unreachable: {str(exc.orig).splitlines()[0]}",
                          highlight=False)
        raise typer.Exit(1) from None


def _runtime(check_schema: bool = True) -> Any:
    from hub.runtime import HubRuntime

    return HubRuntime.open(Settings(), check_schema=check_schema, actor="cli")


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at DEBUG level.")] = False) -> None:
    """Configure logging (secrets are redacted from every log line)."""
    # SIGTERM (systemd, `timeout`, a container stop) exits like Ctrl-C: finally blocks and
    # atexit run, so sandboxes, `dagster dev` and the embedded Postgres are stopped too.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    with failures_as_one_line():
        configure_logging(Settings(), "DEBUG" if verbose else None)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply all pending migrations."""
    from hub.database import open_database

    with failures_as_one_line():
        db = open_database(check_schema=False)
        before = db.current_revision()
        db.upgrade()
        console.print(f"schema {db.schema}: {before or 'empty'} → {db.current_revision()}")
        db.dispose()


@db_app.command("status")
def db_status() -> None:
    """Show the schema revision and whether it is current."""
    from hub.database import head_revision, open_database

    with failures_as_one_line():
        db = open_database(check_schema=False)
        current, head = db.current_revision(), head_revision()
        console.print(f"schema {db.schema}: at {current or 'nothing'}, code expects {head}"
                      + ("" if current == head else "  → run `hub db upgrade`"))
        db.dispose()


@app.command()
def sync(
    system: Annotated[str, typer.Argument(help="kingdee, wecom, …")],
    stream: Annotated[str | None, typer.Argument(help="One stream; default: all, in dependency order.")] = None,
    full: Annotated[bool, typer.Option("--full", help="Ignore the cursor and read everything.")] = False,
) -> None:
    """Read a system's streams into the canonical store."""
    from rich.progress import Progress, SpinnerColumn, TextColumn

    with failures_as_one_line(), _runtime() as hub:
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), console=err_console) as progress:
            task = progress.add_task(f"{system}: starting")

            def on_page(counts: Any) -> None:
                progress.update(task, description=f"{system}: {counts.read} read, {counts.quarantined} quarantined")

            reports = hub.sync(system, stream, full=full, on_page=on_page)
        table = Table("stream", "read", "inserted", "updated", "unchanged", "quarantined", "superseded", "cursor",
                      "seconds")
        for r in reports:
            c = r.counts
            table.add_row(f"{r.system}/{r.stream}", *(str(v) for v in (c.read, c.inserted, c.updated, c.unchanged,
                                                                          c.quarantined, c.superseded)),
                          r.cursor_after or "-", f"{r.duration_s:.1f}")
        console.print(table)


@app.command()
def dispatch(
    kind: Annotated[list[str] | None, typer.Option("--kind", help="Only these outbox kinds.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Also wait for scheduled retries.")] = False,
) -> None:
    """Deliver pending outbox rows (ERP orders, chat reminders)."""
    with failures_as_one_line(), _runtime() as hub:
        counts = hub.dispatcher(kinds=kind).drain(wait_for_scheduled=wait)
        console.print(" ".join(f"{k}={v}" for k, v in vars(counts).items()))


@dlq_app.command("list")
def dlq_list() -> None:
    """Dead and permanently failed outbox rows."""
    from hub.outbox import dead_letters

    with failures_as_one_line(), _runtime() as hub, hub.db.begin() as conn:
        table = Table("id", "kind", "key", "status", "attempts", "last error")
        for r in dead_letters(conn):
            table.add_row(str(r.id), r.kind, r.idempotency_key, r.status, str(r.attempts), (r.last_error or "")[:120])
        console.print(table)


@dlq_app.command("replay")
def dlq_replay(
    ids: Annotated[list[int] | None, typer.Argument(help="Outbox ids to requeue.")] = None,
    all_rows: Annotated[bool, typer.Option("--all", help="Requeue every dead/failed row.")] = False,
) -> None:
    """Requeue dead letters; the writer looks each effect up first, so no twin is created."""
    from hub.outbox import replay

    if not ids and not all_rows:
        err_console.print("[bold red]error:[/] give outbox ids or --all")
        raise typer.Exit(2)
    with failures_as_one_line(), _runtime() as hub, hub.db.begin() as conn:
        count = replay(conn, None if all_rows else list(ids or []))
        console.print(f"requeued {count} row(s); run `hub dispatch` to deliver them")


@quarantine_app.command("list")
def quarantine_list(
    system: Annotated[str | None, typer.Option(help="Only this system.")] = None,
    stream: Annotated[str | None, typer.Option(help="Only this stream.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many rows.")] = 50,
) -> None:
    """Open quarantine rows with their reasons."""
    from hub.engine.quarantine import open_rows

    with failures_as_one_line(), _runtime() as hub, hub.db.begin() as conn:
        table = Table("id", "source", "reference", "reason", "attempts")
        for r in open_rows(conn, system, stream, limit):
            table.add_row(str(r.id), f"{r.system}/{r.stream}", r.source_ref or "-", r.reason, str(r.attempts))
        console.print(table)


@quarantine_app.command("retry")
def quarantine_retry(system: str, stream: str) -> None:
    """Run a stream's open quarantine rows through mapping and merge again."""
    from hub.engine import retry_quarantined

    with failures_as_one_line(), _runtime() as hub:
        counts = retry_quarantined(hub.db, system, hub.spec(system).stream(stream))
        console.print(f"retried {counts.read}: accepted {counts.read - counts.quarantined}, "
                      f"still quarantined {counts.quarantined}")


@identity_app.command("conflicts")
def identity_conflicts(limit: int = 50) -> None:
    """Records that identity rules could not place without a person deciding."""
    with failures_as_one_line(), _runtime() as hub, hub.db.begin() as conn:
        table = Table("id", "record", "reason", "chosen", "candidates", "detail")
        for r in conn.execute(sa.text(
                "SELECT id, system, object, external_id, reason, chosen_customer_id, candidate_customer_ids, detail "
                "FROM identity_conflict WHERE status = 'open' ORDER BY id LIMIT :l"), {"l": limit}):
            table.add_row(str(r.id), f"{r.system}/{r.object}/{r.external_id}", r.reason,
                          str(r.chosen_customer_id or "-"), ",".join(map(str, r.candidate_customer_ids)),
                          r.detail.get("message", ""))
        console.print(table)


@app.command()
def profile(
    customer: Annotated[str, typer.Argument(help="Id, credit code, external id or part of the name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Show a customer's 360° profile."""
    from canonical_model.profile import customer_profile, find_customer_id

    with failures_as_one_line(), _runtime() as hub, hub.db.begin() as conn:
        customer_id = find_customer_id(conn, customer)
        found = customer_profile(conn, customer_id) if customer_id else None
        if found is None:
            raise NotFoundError(f"no customer matches {customer!r}")
        if as_json:
            console.print_json(found.model_dump_json())
        else:
            print_profile(found)


def print_profile(p: Any, out: Console | None = None) -> None:
    """Render a profile as rich tables (the demo uses this too)."""
    out = out or console
    c = p.customer
    out.rule(f"[bold]{c['name']}[/]  #{c['id']}")
    basics = Table(show_header=False, box=None)
    for label, key in (("统一社会信用代码", "credit_code"), ("region", "region"), ("industry", "industry"),
                       ("phone", "phone"), ("tags", "tags")):
        source = p.provenance.get(key, {})
        basics.add_row(label, str(c.get(key) or "—"),
                       f"[dim]{source.get('system', '')} {source.get('external_id', '')}[/]" if source else "")
    if p.owner:
        basics.add_row("owner", f"{p.owner['name']} ({p.owner.get('department') or ''})",
                       f"[dim]manager {p.owner.get('manager') or '—'}[/]")
    basics.add_row("identities", ", ".join(f"{i['system']}:{i['external_id']}" for i in p.identities) or "—", "")
    basics.add_row("completeness", f"{p.completeness:.0%}", "")
    out.print(basics)
    ar = Table("currency", "open", "overdue", "not due", "1–30", "31–60", "61–90", ">90", "bills", title="应收 receivables")
    for s in p.receivables:
        ar.add_row(s.currency, _money(s.open_amount), _money(s.overdue_amount),
                   *(_money(v) for v in s.aging.values()), str(s.open_bills))
    out.print(ar)
    limit = _money(p.credit_limit) if p.credit_limit is not None else "—"
    out.print(f"credit used {_money(p.credit_used)} of limit {limit}")
    orders = Table("order", "date", "amount", "status", "ERP bill", "ERP status", title="orders")
    for o in p.recent_orders:
        orders.add_row(o["order_number"], str(o["order_date"]), f"{_money(o['total_amount'])} {o['currency']}",
                       o["status"], o["erp_bill_number"] or "—", o["erp_status"] or "—")
    out.print(orders)
    if p.open_tasks:
        tasks = Table("task", "due", "assignee", "pushed", title="open tasks")
        for t in p.open_tasks:
            pushed = ", ".join(f"{ch}:{len(v)}" for ch, v in (t["push_state"] or {}).items()) or "—"
            tasks.add_row(t["title"], t["due_at"].strftime("%Y-%m-%d %H:%M"), t["assignee"], pushed)
        out.print(tasks)
    if p.contacts:
        out.print("contacts: " + "; ".join(f"{x['name']} {x['title'] or ''}".strip() for x in p.contacts[:8]))


def _money(value: Decimal | None) -> str:
    return "—" if value is None else f"{value:,.2f}"


@app.command()
def doctor() -> None:
    """Check configuration, database and every connector (no secrets printed)."""
    from hub.database import head_revision, open_database
    from hub.registry import systems
    from hub.runtime import HubRuntime

    settings = Settings()
    ok = True
    table = Table("check", "status", "detail")
    try:
        db = open_database(settings, check_schema=False)
        current = db.current_revision()
        table.add_row("database", "ok", f"schema {db.schema} at {current}")
        if current != head_revision():
            ok = False
            table.add_row("schema", "[red]behind[/]", "run `hub db upgrade`")
    except (HubError, sa.exc.OperationalError) as exc:
        table.add_row("database", "[red]failed[/]", str(exc).splitlines()[0])
        console.print(table)
        raise typer.Exit(1) from None
    runtime = HubRuntime(settings, db, actor="doctor")
    try:
        for system in systems():
            section = settings.connector(system)
            if not runtime.uses_sandbox(system) and not section.is_configured():
                table.add_row(system, "not configured", "unused (set its HUB_" + system.upper() + "__* variables)")
                continue
            mode = "sandbox" if runtime.uses_sandbox(system) else "configured"
            try:
                runtime.client(system).check()
                table.add_row(system, "ok", f"{mode}; credentials accepted")
            except (ConnectorError, HubError) as exc:
                ok = False
                table.add_row(system, "[red]failed[/]", f"{mode}; {exc}")
    finally:
        runtime.close()
    console.print(table)
    if not ok:
        raise typer.Exit(1)


@app.command()
def demo(
    keep: Annotated[bool, typer.Option("--keep", help="Keep the previous demo data instead of starting fresh.")] = False,
) -> None:
    """Run the main flow end to end on the embedded Postgres and the sandboxes."""
    from hub.demo import run_demo

    with failures_as_one_line():
        run_demo(Settings(), fresh=not keep, console=console)


@app.command()
def sandbox(
    system: str,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8600,
    scale: Annotated[float | None, typer.Option(help="Kingdee: seed size factor (1.0 = 2,000 customers).")] = None,
) -> None:
    """Run a connector's sandbox in the foreground (Ctrl-C stops it)."""
    import uvicorn

    from hub.registry import connector
    from hub.runtime import load_sandbox

    with failures_as_one_line():
        sandbox_spec = load_sandbox(connector(system))
        console.print(f"{system} sandbox on http://127.0.0.1:{port} (admin: /__sandbox__/)")
        options = {} if scale is None else {"scale": scale}
        uvicorn.run(sandbox_spec.create_app(**options), host="127.0.0.1", port=port, log_level="warning")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
) -> None:
    """Serve the 360° profile pages, the JSON API and the WeCom callback receiver."""
    from hub.web import serve as serve_web

    with failures_as_one_line():
        console.print(f"profiles at http://{host}:{port}/customers, WeCom callbacks at /callbacks/wecom")
        serve_web(Settings(), host=host, port=port)


@app.command()
def ui() -> None:
    """Start the Dagster UI and daemon on the hub's Postgres (Ctrl-C stops both)."""
    from pipelines.instance import run_dagster_dev

    with failures_as_one_line():
        sys.exit(run_dagster_dev(Settings()))
