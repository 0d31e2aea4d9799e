"""`hub rules`: check a rules file, show what it would do now (dry run), apply it.

``check`` validates a file (exit 2 naming the rule and the field); ``test`` evaluates it
against the current data in a read-only transaction and prints, per rule, the subjects it
would fire for and the actions it would take; ``run`` applies the configured rules once
(what the Dagster asset ``crm/automation_rules`` does on schedule).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer

from hub.cli.base import (
    USAGE,
    app,
    console,
    fail,
    failures_as_one_line,
    new_app,
    print_json,
    runtime,
    settings,
)

rules_app = new_app("Automation rules (trigger → conditions → actions).")
app.add_typer(rules_app, name="rules")

FileArg = Annotated[Path | None, typer.Argument(help="A rules file (TOML); default: HUB_RULES__FILE or the "
                                                     "shipped defaults.", show_default=False)]


def _moment(text: str | None, timezone: str, option: str) -> dt.datetime | None:
    if text is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise fail(f"{option}: {text!r} is not an ISO time such as 2026-11-27T09:00 (the hub's time zone) or "
                   "2026-11-27T01:00Z", USAGE) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(timezone))


def _book(path: Path | None) -> Any:
    from hub.rules.automation import load_book, load_rules

    return load_rules(path) if path is not None else load_book(settings())


@rules_app.command("check")
def rules_check(path: FileArg = None) -> None:
    """Validate a rules file; exit 2 with every problem (rule and field named)."""
    from hub.rules.automation.model import DEFAULTS

    with failures_as_one_line():
        book = _book(path)
    console.print(f"{path or settings().rules.file or DEFAULTS}: {len(book.rules)} rule(s), valid")
    for rule in book.rules:
        state = "" if rule.enabled else " (disabled)"
        console.print(f"  {rule.name}{state}: {rule.trigger} → {', '.join(a.do for a in rule.actions)}",
                      highlight=False, soft_wrap=True)


@rules_app.command("test")
def rules_test(
    path: FileArg = None,
    at: Annotated[str | None, typer.Option("--at", help="Evaluate at this time instead of now (ISO).")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Evaluate as if every rule had become active at this "
                                                              "time (default: as recorded; now for new rules).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """What the rules would do now (dry run: a read-only transaction, nothing written)."""
    from hub.rules.automation import dry_run, plan_as_dicts, plan_as_markdown, rule_env

    with failures_as_one_line():
        book = _book(path)
        with runtime() as hub:
            tz = hub.settings.timezone
            now = _moment(at, tz, "--at") or dt.datetime.now(dt.UTC)
            plans = dry_run(hub.db.engine, book, now, rule_env(hub.settings, book),
                            since=_moment(since, tz, "--since"))
    if as_json:
        print_json({"at": now.isoformat(), "rules": plan_as_dicts(plans)})
        return
    console.print(f"dry run at {now.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC: nothing is written\n", highlight=False)
    console.print(plan_as_markdown(plans), highlight=False, markup=False, soft_wrap=True)


@rules_app.command("run")
def rules_run(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Apply the configured rules once (each firing exactly once)."""
    from hub.rules.automation import apply, load_book, rule_env

    with failures_as_one_line(), runtime() as hub:
        book = load_book(hub.settings)
        report = apply(hub.db.engine, book, dt.datetime.now(dt.UTC), rule_env(hub.settings, book))
    if as_json:
        print_json(vars(report))
        return
    console.print(f"{report.fired} firing(s), {report.failed} failed, {report.already} fired by another evaluator")
    for rule, count in sorted(report.by_rule.items()):
        console.print(f"  {rule}: {count}")
