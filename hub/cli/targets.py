"""`hub targets set`: a salesperson's or a team's monthly sales target (audited).

Run by whoever operates the hub (like `hub user`); in the web app the same change is the
performance page's form, open to roles with ``set_targets`` (admin).
"""

from __future__ import annotations

from typing import Annotated

import typer

from hub.cli.base import app, console, failures_as_one_line, new_app, print_json, runtime

targets_app = new_app("Sales targets (销售目标) per salesperson or team and month.")
app.add_typer(targets_app, name="targets")


@targets_app.command("set")
def set_command(
    month: Annotated[str, typer.Option(help="The month, YYYY-MM.")],
    amount: Annotated[str, typer.Option(help="The target amount, e.g. 1000000.00.")],
    owner: Annotated[int | None, typer.Option(help="The salesperson's user id.")] = None,
    team: Annotated[str | None, typer.Option(help="The team (department) instead of a salesperson.")] = None,
    currency: Annotated[str, typer.Option(help="ISO 4217 currency of the amount.")] = "CNY",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Set (or replace) one month's target; the change is audited."""
    from hub.rules.targets import parse_target_amount, parse_target_month, set_target

    with failures_as_one_line(), runtime() as hub, hub.db.begin() as conn:
        target = set_target(conn, owner_id=owner, department=team, month=parse_target_month(month),
                            currency=currency, amount=parse_target_amount(amount), actor="cli:targets")
    if as_json:
        print_json({"owner_id": target.owner_id, "team": target.department, "month": f"{target.month:%Y-%m}",
                    "currency": target.currency, "amount": str(target.amount),
                    "previous": None if target.previous is None else str(target.previous)})
        return
    who = f"user {target.owner_id}" if target.owner_id is not None else f"team {target.department}"
    was = "" if target.previous is None else f" (was {target.previous:,.2f})"
    console.print(f"target of {who} for {target.month:%Y-%m}: {target.currency} {target.amount:,.2f}{was}")
