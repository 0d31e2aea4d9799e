"""`hub approvals`: the OA approvals of CRM orders (DingTalk, WeCom) and their reconcile poll."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from hub.cli.base import app, console, failures_as_one_line, new_app, print_json, runtime

approvals_app = new_app("OA approvals (审批) of CRM orders in DingTalk and WeCom.")
app.add_typer(approvals_app, name="approvals")


@approvals_app.command("reconcile")
def reconcile_approvals(
    dispatch: Annotated[bool, typer.Option("--dispatch/--no-dispatch",
                                           help="Also read the queued checks now (else the outbox sensor does).")]
    = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Re-read every open approval not read for HUB_APPROVALS__RECHECK_MINUTES (the fallback for lost
    callbacks) and apply what changed: approved orders go to the ERP, rejections show on the order."""
    from hub.registry import specs
    from hub.rules.approvals import reconcile

    with failures_as_one_line(), runtime() as hub:
        s = hub.settings.approvals
        with hub.db.begin() as conn:
            counts = reconcile(conn, dt.datetime.now(dt.UTC), recheck_after=dt.timedelta(minutes=s.recheck_minutes),
                               revoke_watch=dt.timedelta(days=s.revoke_watch_days))
        done = None
        if dispatch and counts.checks_queued:
            kinds = [kind for spec in specs() for kind in spec.writer_kinds if kind.endswith(".approval")]
            done = hub.dispatcher(kinds=kinds).drain()
    if as_json:
        print_json({**vars(counts), "dispatched": vars(done) if done else None})
        return
    console.print(f"{counts.checks_queued} open approval(s) queued for a re-read of {counts.open_approvals} watched; "
                  f"{counts.waiting_for_instance} still waiting for their create"
                  + (f"; {done.done} read, {done.retried} to retry, {done.dead} dead" if done else ""))


@approvals_app.command("list")
def list_approvals(
    state: Annotated[str | None, typer.Option(help="Only this state (pending, approved, rejected, withdrawn, "
                                                   "revoked).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The latest order approvals: platform, instance, state, reason."""
    import sqlalchemy as sa

    with failures_as_one_line(), runtime() as hub, hub.db.begin() as conn:
        found = conn.execute(sa.text(
            "SELECT a.id, a.subject_id AS order_id, o.order_number, a.system, a.external_id, a.state, "
            "a.vendor_status, a.comment, a.error, a.submitted_at, a.decided_at FROM approval a "
            "JOIN sales_order o ON o.id = a.subject_id WHERE a.subject_type = 'sales_order' "
            "AND (CAST(:state AS text) IS NULL OR a.state = :state) ORDER BY a.id DESC LIMIT :n"),
            {"state": state, "n": limit}).mappings().all()
    if as_json:
        print_json([dict(r) for r in found])
        return
    for r in found:
        why = r["comment"] or r["error"] or ""
        console.print(f"{r['id']:>6} {r['order_number']:<20} {r['system']:<9} {r['state']:<10} "
                      f"{r['external_id'] or '-':<38} {why}", markup=False)
