"""Evaluate a rule book at ``now``: the plan (what would fire; writes nothing) and its
application (each firing exactly once).

**Activation.** A rule fires only for events and deadlines from the moment it first
became active (``rule_activation``, recorded by the first :func:`apply`), unless it says
``include_history``: a new install does not fire on years of history. :func:`plan` takes
activations as they are and, for a rule never applied, assumes ``assume_since`` (default:
``now``), so a dry run writes nothing.

**Exactly once.** :func:`apply` plans each rule just before applying it, in file order,
and gives every planned firing its own transaction: it inserts
the ``rule_firing`` row ``ON CONFLICT DO NOTHING`` and runs the actions only when the
insert took, then records what each action did on the row. A second evaluator planning
the same firing waits on the first one's uncommitted row and then finds it there; a
re-run or a replay finds it too. An action that raises a typed error (a missing row, a
bad configuration) rolls its firing back and records it ``failed`` with the error, so it
is visible and not retried blindly every five minutes; any other error stops the run
(nothing of that firing is kept, the next run tries again).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from hub.errors import HubError
from hub.rules.automation.actions import HANDLERS, Firing, RuleEnv
from hub.rules.automation.conditions import unmet
from hub.rules.automation.model import Rule, RuleBook
from hub.rules.automation.triggers import Subject, find_subjects
from hub.rules.people import resolve_user_ref

log = logging.getLogger(__name__)

BEGINNING = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class PlannedFiring:
    """A rule that would fire for a subject, and what it would do."""

    rule: str
    subject: Subject
    actions: list[str]


@dataclass
class RulePlan:
    """What one rule would do at ``now``."""

    rule: str
    trigger: str
    active_since: dt.datetime | None  # None: never applied yet (the plan assumed a start)
    firings: list[PlannedFiring] = field(default_factory=list)
    not_matching: int = 0  # subjects the trigger found that the conditions left out


@dataclass
class ApplyReport:
    """What :func:`apply` did."""

    fired: int = 0
    failed: int = 0
    already: int = 0  # fired by another evaluator meanwhile
    by_rule: dict[str, int] = field(default_factory=dict)


def fingerprint(rule: Rule) -> str:
    """A hash of the rule's definition (recorded with its activation)."""
    return hashlib.sha256(rule.model_dump_json().encode()).hexdigest()


def activations(conn: Connection) -> dict[str, dt.datetime]:
    """When each rule name first became active."""
    return {r.rule: r.activated_at for r in conn.execute(sa.text("SELECT rule, activated_at FROM rule_activation"))}


def activate(conn: Connection, book: RuleBook, now: dt.datetime) -> dict[str, dt.datetime]:
    """Record ``now`` as the activation of every enabled rule seen for the first time."""
    for rule in book.active():
        conn.execute(sa.text(
            "INSERT INTO rule_activation (rule, activated_at, fingerprint) VALUES (:r, :at, :f) "
            "ON CONFLICT (rule) DO NOTHING"), {"r": rule.name, "at": now, "f": fingerprint(rule)})
    return activations(conn)


def team_of(conn: Connection, manager_ref: str) -> frozenset[int]:
    """The manager ``manager_ref`` names and everyone reporting to them, at any depth."""
    manager = resolve_user_ref(conn, manager_ref)
    if manager is None:
        return frozenset()
    return frozenset(conn.execute(sa.text(
        """
        WITH RECURSIVE team(id) AS (
            SELECT CAST(:m AS bigint) UNION SELECT u.id FROM internal_user u JOIN team t ON u.manager_id = t.id
        ) SELECT id FROM team
        """), {"m": manager}).scalars())


def plan_rule(conn: Connection, rule: Rule, now: dt.datetime, since: dt.datetime, env: RuleEnv) -> RulePlan:
    """The firings of one rule at ``now`` for events and deadlines from ``since``."""
    plan = RulePlan(rule.name, str(rule.trigger), since)
    team = team_of(conn, rule.conditions.owner_team) if rule.conditions.owner_team else None
    for subject in find_subjects(conn, rule, now, since, env.calendar):
        if unmet(rule.conditions, subject, team) is not None:
            plan.not_matching += 1
            continue
        plan.firings.append(PlannedFiring(rule.name, subject,
                                          [HANDLERS[a.do].describe(a, subject) for a in rule.actions]))
    return plan


def plan(conn: Connection, book: RuleBook, now: dt.datetime, env: RuleEnv, *,
         active: Mapping[str, dt.datetime] | None = None, assume_since: dt.datetime | None = None) -> list[RulePlan]:
    """What every enabled rule would do at ``now`` (reads only). ``active``: activations
    (default: as recorded); a rule without one is assumed active from ``assume_since``
    (default ``now``)."""
    known = activations(conn) if active is None else active
    plans = []
    for rule in book.active():
        since = BEGINNING if rule.include_history else known.get(rule.name, assume_since or now)
        plans.append(plan_rule(conn, rule, now, since, env))
        plans[-1].active_since = known.get(rule.name)
    return plans


def dry_run(engine: Engine, book: RuleBook, now: dt.datetime, env: RuleEnv, *,
            since: dt.datetime | None = None) -> list[RulePlan]:
    """:func:`plan` in a READ ONLY transaction that is rolled back: Postgres itself refuses
    any write, so a dry run cannot change anything. ``since``: evaluate as if every rule had
    become active then (what would this file have done over the last month?); default: the
    recorded activations, ``now`` for rules never applied."""
    with engine.connect() as conn:
        conn.execute(sa.text("SET TRANSACTION READ ONLY"))
        try:
            active = {r.name: since for r in book.rules} if since is not None else None
            return plan(conn, book, now, env, active=active)
        finally:
            conn.rollback()


def _fire(conn: Connection, rule: Rule, subject: Subject, now: dt.datetime, env: RuleEnv) -> bool:
    firing_id = conn.execute(sa.text(
        "INSERT INTO rule_firing (rule, subject_type, subject_id, window_key, fired_at, state) "
        "VALUES (:r, :t, :s, :w, :at, 'running') ON CONFLICT (rule, subject_type, subject_id, window_key) DO NOTHING "
        "RETURNING id"), {"r": rule.name, "t": subject.type, "s": subject.id, "w": subject.window[:200],
                          "at": now}).scalar()
    if firing_id is None:
        return False
    firing = Firing(conn, rule, subject, now, env)
    outcomes = [{"do": action.do, "did": HANDLERS[action.do].run(firing, action)} for action in rule.actions]
    conn.execute(sa.text("UPDATE rule_firing SET state = 'done', outcomes = CAST(:o AS jsonb) WHERE id = :id"),
                 {"o": json.dumps(outcomes, ensure_ascii=False), "id": firing_id})
    return True


def _record_failure(engine: Engine, rule: Rule, subject: Subject, now: dt.datetime, error: Exception) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO rule_firing (rule, subject_type, subject_id, window_key, fired_at, state, error) "
            "VALUES (:r, :t, :s, :w, :at, 'failed', :e) ON CONFLICT (rule, subject_type, subject_id, window_key) "
            "DO NOTHING"), {"r": rule.name, "t": subject.type, "s": subject.id, "w": subject.window[:200], "at": now,
                            "e": f"{type(error).__name__}: {error}"[:2000]})


def apply(engine: Engine, book: RuleBook, now: dt.datetime, env: RuleEnv) -> ApplyReport:
    """Record new rules' activation, then fire every planned firing once (module doc)."""
    report = ApplyReport()
    with engine.begin() as conn:
        active = activate(conn, book, now)
    for rule in book.active():
        # planned just before it is applied: an earlier rule's actions (a lead returned to the
        # pool, its task cancelled) are seen by the later rules of the same run
        with engine.connect() as conn:
            since = BEGINNING if rule.include_history else active[rule.name]
            rule_plan = plan_rule(conn, rule, now, since, env)
        for planned in rule_plan.firings:
            try:
                with engine.begin() as conn:
                    fired = _fire(conn, rule, planned.subject, now, env)
            except (HubError, LookupError, ValueError) as exc:  # the firing is rolled back, then kept as failed
                log.warning("rule %s failed for %s: %s", rule.name, planned.subject.ref, exc)
                _record_failure(engine, rule, planned.subject, now, exc)
                report.failed += 1
                continue
            if fired:
                report.fired += 1
                report.by_rule[rule.name] = report.by_rule.get(rule.name, 0) + 1
            else:
                report.already += 1
    return report


def plan_as_dicts(plans: list[RulePlan]) -> list[dict[str, Any]]:
    """The plan as JSON-ready data (``hub rules test --json``)."""
    return [{"rule": p.rule, "trigger": p.trigger,
             "active_since": p.active_since.isoformat() if p.active_since else None,
             "not_matching": p.not_matching,
             "firings": [{"subject": f.subject.ref, "name": f.subject.name, "window": f.subject.window,
                          "at": f.subject.at.isoformat(), "owner_id": f.subject.owner_id, "actions": f.actions}
                         for f in p.firings]} for p in plans]


def plan_as_markdown(plans: list[RulePlan], *, limit: int = 20) -> str:
    """The plan as markdown: per rule its trigger and the subjects with their actions."""
    lines = []
    for p in plans:
        since = f"active since {p.active_since:%Y-%m-%d %H:%M} UTC" if p.active_since else "not active yet"
        lines.append(f"### {p.rule}\n`{p.trigger}`, {since}: **{len(p.firings)}** to fire"
                     + (f", {p.not_matching} not matching the conditions" if p.not_matching else ""))
        for f in p.firings[:limit]:
            lines.append(f"- `{f.subject.ref}` {f.subject.name} ({f.subject.at:%Y-%m-%d %H:%M} UTC): "
                         + "; ".join(f.actions))
        if len(p.firings) > limit:
            lines.append(f"- … and {len(p.firings) - limit} more")
        lines.append("")
    return "\n".join(lines)


__all__ = ["BEGINNING", "ApplyReport", "PlannedFiring", "RulePlan", "activate", "activations", "apply", "dry_run", "fingerprint",
           "plan", "plan_as_dicts", "plan_as_markdown", "plan_rule", "team_of"]
