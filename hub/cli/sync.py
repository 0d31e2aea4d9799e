"""`hub sync` and `hub dispatch`: move data in, and effects out, by hand."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

from hub.cli.base import (
    app,
    console,
    err_console,
    failures_as_one_line,
    known_kind,
    known_stream,
    known_system,
    print_json,
    runtime,
)
from hub.cli.tables import Column, print_table

COUNTS = ("read", "inserted", "updated", "unchanged", "quarantined", "superseded")
SYNC_COLUMNS = (Column("stream"), *(Column(c, "amount") for c in COUNTS), Column("seconds", "extra"),
                Column("cursor", "extra"))


@app.command()
def sync(
    system: Annotated[str, typer.Argument(help="A registered system: kingdee, wecom, …")],
    stream: Annotated[str | None, typer.Argument(help="One stream; default: all, in dependency order.")] = None,
    full: Annotated[bool, typer.Option("--full", help="Ignore the cursor and read everything.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Read a system's streams into the canonical store."""
    with failures_as_one_line():
        known_system(system)
        if stream is not None:
            known_stream(system, stream)
        elif not _has_streams(system, as_json):
            return
        with runtime() as hub, Progress(SpinnerColumn(), TextColumn("{task.description}"),
                                        TextColumn("{task.fields[rows]}"), console=err_console,
                                        transient=True) as progress:
            task = progress.add_task(f"{system}: starting", rows="")
            running: dict[str, Any] = {}  # stream -> its counts so far; streams read in parallel

            def on_page(name: str, counts: Any) -> None:
                running[name] = counts
                now = list(running.items())  # one copy: other streams' threads add to it
                read, quarantined = sum(c.read for _, c in now), sum(c.quarantined for _, c in now)
                progress.update(task, description=f"{system}: {', '.join(n for n, _ in now)}",
                                rows=f"{read:,} read, {quarantined:,} quarantined")

            reports = hub.sync(system, stream, full=full, on_page=on_page)
        if as_json:
            print_json([{"system": r.system, "stream": r.stream, **asdict(r.counts), "cursor_before": r.cursor_before,
                         "cursor_after": r.cursor_after, "seconds": round(r.duration_s, 2)} for r in reports])
            return
        rows = [[f"{r.system}/{r.stream}", *(f"{getattr(r.counts, c):,}" for c in COUNTS),
                 f"{r.duration_s:.1f}", r.cursor_after or "-"] for r in reports]
        print_table(console, SYNC_COLUMNS, rows)


def _has_streams(system: str, as_json: bool) -> bool:
    """True when ``system`` has inbound streams; else False, after saying that nothing is synced,
    how its data comes in instead and how the hub's effects on it go out."""
    from hub.registry import connector

    spec = connector(system)
    if spec.streams:
        return True
    if as_json:
        print_json([])
        return False
    console.print(f"{system} has no inbound streams: nothing to sync.")
    if spec.inbound_note:
        console.print(f"Instead, {spec.inbound_note}.")
    if spec.writer_kinds:
        console.print(f"What the hub sends to it ({', '.join(spec.writer_kinds)}) goes out with `hub dispatch`.")
    return False


@app.command()
def dispatch(
    kind: Annotated[list[str] | None, typer.Option("--kind", help="Only these outbox kinds.")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Also wait for scheduled retries.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Deliver pending outbox rows (ERP orders, chat reminders)."""
    with failures_as_one_line():
        for k in kind or []:
            known_kind(k)
        with runtime() as hub, Progress(SpinnerColumn(), TextColumn("dispatching"), BarColumn(bar_width=None),
                                        TextColumn("{task.fields[done]}"), console=err_console,
                                        transient=True) as progress:
            task = progress.add_task("dispatch", done="", total=None)

            def on_batch(counts: Any) -> None:
                progress.update(task, done=f"{counts.done:,} done, {counts.retried:,} retried, {counts.dead:,} dead")

            counts = hub.dispatcher(kinds=kind).drain(wait_for_scheduled=wait, on_batch=on_batch)
        if as_json:
            print_json(vars(counts))
        else:
            console.print(" ".join(f"{k}={v}" for k, v in vars(counts).items()))
