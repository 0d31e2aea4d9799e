"""`hub dlq`: dead letters of the outbox, and their replay."""

from __future__ import annotations

from typing import Annotated

import typer

from hub.cli.base import USAGE, app, console, fail, failures_as_one_line, new_app, print_json, runtime
from hub.cli.tables import Column, print_table

dlq_app = new_app("Dead letters of the outbox.")
app.add_typer(dlq_app, name="dlq")

DLQ_COLUMNS = (Column("id"), Column("kind"), Column("key"), Column("status"), Column("attempts", "extra"),
               Column("last error", "text"))


@dlq_app.command("list")
def dlq_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Dead and permanently failed outbox rows."""
    from hub.outbox import dead_letters

    with failures_as_one_line(), runtime() as hub, hub.db.begin() as conn:
        rows = dead_letters(conn)
    if as_json:
        print_json([dict(r._mapping) for r in rows])
        return
    print_table(console, DLQ_COLUMNS, [[str(r.id), r.kind, r.idempotency_key, r.status, str(r.attempts),
                                        (r.last_error or "")[:300]] for r in rows])


@dlq_app.command("replay")
def dlq_replay(
    ids: Annotated[list[int] | None, typer.Argument(help="Outbox ids to requeue.")] = None,
    all_rows: Annotated[bool, typer.Option("--all", help="Requeue every dead/failed row.")] = False,
) -> None:
    """Requeue dead letters; the writer looks each effect up first, so no twin is created."""
    from hub.outbox import replay

    if not ids and not all_rows:
        raise fail("give outbox ids or --all", USAGE)
    with failures_as_one_line(), runtime() as hub, hub.db.begin() as conn:
        count = replay(conn, None if all_rows else list(ids or []))
    console.print(f"requeued {count} row(s); run `hub dispatch` to deliver them")
