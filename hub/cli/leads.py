"""`hub leads` and `hub pool`: leads nobody worked back to the public pool, and the pool's size."""

from __future__ import annotations

from typing import Annotated

import typer

from hub.cli.base import app, console, failures_as_one_line, new_app, print_json, runtime

leads_app = new_app("Leads (线索).")
pool_app = new_app("The public pool (公海池).")
app.add_typer(leads_app, name="leads")
app.add_typer(pool_app, name="pool")


@leads_app.command("return-to-pool")
def return_to_pool(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Give leads nobody followed up within HUB_LEADS__RETURN_TO_POOL_DAYS back to the public pool."""
    from hub.rules.lead_assignment import return_stale_leads

    with failures_as_one_line(), runtime() as hub, hub.db.begin() as conn:
        counts = return_stale_leads(conn, hub.settings.leads, actor="cli:leads")
    if as_json:
        print_json(vars(counts))
        return
    console.print(f"{counts.returned} lead(s) returned to the public pool "
                  f"({hub.settings.leads.return_to_pool_days:g} days without follow-up); "
                  f"{counts.tasks_cancelled} follow-up task(s) cancelled")


@pool_app.command("status")
def pool_status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """How many customers and leads are in the public pool."""
    import sqlalchemy as sa

    from hub.rules.pool import refresh_pool

    with failures_as_one_line(), runtime() as hub, hub.db.begin() as conn:
        counts = refresh_pool(conn)
        leads = conn.execute(sa.text("SELECT count(*) FROM lead WHERE status = 'pool'")).scalar_one()
    if as_json:
        print_json({"customers": counts.in_pool, "leads": leads, "entered": counts.entered, "left": counts.left})
        return
    console.print(f"public pool: {counts.in_pool} customer(s) without an owner, {leads} lead(s)")
