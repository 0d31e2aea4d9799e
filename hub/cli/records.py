"""`hub quarantine` and `hub identity`: records the hub could not accept or place."""

from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
import typer

from hub.cli.base import (
    app,
    console,
    failures_as_one_line,
    known_stream,
    known_system,
    new_app,
    print_json,
    runtime,
)
from hub.cli.tables import Column, print_table

quarantine_app = new_app("Records the hub could not accept.")
identity_app = new_app("Identity resolution.")
app.add_typer(quarantine_app, name="quarantine")
app.add_typer(identity_app, name="identity")

QUARANTINE_COLUMNS = (Column("id"), Column("source"), Column("reference"), Column("reason", "text"),
                      Column("attempts", "extra"))
DISAGREEMENT_COLUMNS = (Column("customer"), Column("field"), Column("shown", "text"), Column("other record"),
                        Column("says", "text"))
CONFLICT_COLUMNS = (Column("id"), Column("record"), Column("reason"), Column("chosen", "extra"),
                    Column("candidates", "extra"), Column("detail", "text"))


@quarantine_app.command("list")
def quarantine_list(
    system: Annotated[str | None, typer.Option(help="Only this system.")] = None,
    stream: Annotated[str | None, typer.Option(help="Only this stream (give --system too).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many rows.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Open quarantine rows with their reasons, newest first."""
    from hub.engine.quarantine import open_rows

    with failures_as_one_line():
        if system is not None:
            known_system(system)
        if stream is not None:
            if system is None:
                raise typer.BadParameter("--stream needs --system", param_hint="--stream")
            known_stream(system, stream)
        with runtime() as hub, hub.db.begin() as conn:
            rows = open_rows(conn, system, stream, limit)
    if as_json:
        print_json([dict(r._mapping) for r in rows])
        return
    print_table(console, QUARANTINE_COLUMNS, [[str(r.id), f"{r.system}/{r.stream}", r.source_ref or "-",
                                               r.reason, str(r.attempts)] for r in rows])


@quarantine_app.command("retry")
def quarantine_retry(
    system: Annotated[str, typer.Argument(help="The system whose records to retry.")],
    stream: Annotated[str, typer.Argument(help="The stream whose records to retry.")],
) -> None:
    """Run a stream's open quarantine rows through mapping and merge again."""
    from hub.engine import retry_quarantined

    with failures_as_one_line():
        known_system(system)
        known_stream(system, stream)
        with runtime() as hub:
            counts = retry_quarantined(hub.db, system, hub.spec(system).stream(stream))
    console.print(f"retried {counts.read}: accepted {counts.read - counts.quarantined}, "
                  f"still quarantined {counts.quarantined}")


@identity_app.command("conflicts")
def identity_conflicts(
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many rows.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Records that identity rules could not place without a person deciding."""
    with failures_as_one_line(), runtime() as hub, hub.db.begin() as conn:
        rows = conn.execute(sa.text(
            "SELECT id, system, object, external_id, reason, chosen_customer_id, candidate_customer_ids, detail "
            "FROM identity_conflict WHERE status = 'open' ORDER BY id LIMIT :l"), {"l": limit}).all()
    if as_json:
        print_json([dict(r._mapping) for r in rows])
        return
    print_table(console, CONFLICT_COLUMNS, [
        [str(r.id), f"{r.system}/{r.object}/{r.external_id}", r.reason, str(r.chosen_customer_id or "-"),
         ",".join(map(str, r.candidate_customer_ids)), str((r.detail or {}).get("message", ""))] for r in rows])


@identity_app.command("disagreements")
def identity_disagreements(
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many rows.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Golden customers whose records disagree on a field: the value shown (by survivorship,
    HUB_SURVIVORSHIP__*) and the other record's value."""
    from dataclasses import asdict

    from hub.survivorship import disagreements

    with failures_as_one_line(), runtime() as hub, hub.db.begin() as conn:
        found = disagreements(conn, limit=limit)
    if as_json:
        print_json([asdict(d) for d in found])
        return
    print_table(console, DISAGREEMENT_COLUMNS, [
        [f"{d.customer_id} {d.customer}", d.field, f"{d.golden} ({d.golden_source or 'source not recorded'})",
         f"{d.system}/{d.external_id}", str(d.value)] for d in found])


@identity_app.command("settle")
def identity_settle() -> None:
    """Recompute every golden customer from its records' values with the precedence in effect
    (HUB_SURVIVORSHIP__*): run after changing it. Writes only the customers that change."""
    from hub.survivorship import settle_all

    with failures_as_one_line(), runtime() as hub, hub.db.begin() as conn:
        changed = settle_all(conn)
    console.print(f"settled: {changed} customers changed")
