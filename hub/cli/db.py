"""`hub db`: the database schema."""

from __future__ import annotations

from typing import Annotated

import typer

from hub.cli.base import SCHEMA_BEHIND, app, console, failures_as_one_line, new_app, print_json, settings

db_app = new_app("Database schema.")
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply all pending migrations."""
    from hub.database import open_database

    with failures_as_one_line():
        db = open_database(settings(), check_schema=False)
        try:
            before = db.current_revision()
            db.upgrade()
            console.print(f"schema {db.schema}: {before or 'empty'} → {db.current_revision()}")
        finally:
            db.dispose()


@db_app.command("status")
def db_status(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Show the schema revision; exit 3 when it is behind the code."""
    from hub.database import head_revision, open_database

    with failures_as_one_line():
        db = open_database(settings(), check_schema=False)
        try:
            current, head = db.current_revision(), head_revision()
        finally:
            db.dispose()
        if as_json:
            print_json({"schema": db.schema, "revision": current, "head": head, "current": current == head})
        else:
            console.print(f"schema {db.schema}: at {current or 'nothing'}, code expects {head}"
                          + ("" if current == head else "  → run `hub db upgrade`"), soft_wrap=True)
    if current != head:
        raise typer.Exit(SCHEMA_BEHIND)
