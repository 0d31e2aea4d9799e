"""Whether a subject meets a rule's conditions (pure: the owner's team comes in as ids).

Region and industry match when the subject's text contains one of the values (as the lead
assignment table does: ``华东`` matches ``华东区``); stage and currency match exactly; the
amount lies in ``[min_amount, max_amount)``; the owner is in the team (the people reporting
to the named manager, at any depth, and the manager). A condition on a value the subject
does not have (a task has no amount) does not hold.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from hub.rules.automation.model import Conditions
from hub.rules.automation.triggers import Subject


def _contains(text: str | None, wanted: Sequence[str]) -> bool:
    return not wanted or (bool(text) and any(w.strip() and w.strip() in str(text) for w in wanted))


def unmet(conditions: Conditions, subject: Subject, team: Collection[int] | None = None) -> str | None:
    """The first condition ``subject`` does not meet, named (None: all hold). ``team``: the
    members of ``conditions.owner_team`` (required when it is set)."""
    if not _contains(subject.region, conditions.regions):
        return f"region {subject.region!r} not in {conditions.regions}"
    if not _contains(subject.industry, conditions.industries):
        return f"industry {subject.industry!r} not in {conditions.industries}"
    if conditions.stages and subject.stage not in conditions.stages:
        return f"stage {subject.stage!r} not in {conditions.stages}"
    if conditions.currencies and subject.currency not in conditions.currencies:
        return f"currency {subject.currency!r} not in {conditions.currencies}"
    if conditions.min_amount is not None and (subject.amount is None or subject.amount < conditions.min_amount):
        return f"amount {subject.amount} below {conditions.min_amount}"
    if conditions.max_amount is not None and (subject.amount is None or subject.amount >= conditions.max_amount):
        return f"amount {subject.amount} not below {conditions.max_amount}"
    if conditions.owner_team is not None:
        if team is None:
            raise ValueError("owner_team is set: pass its members")
        if subject.owner_id is None or subject.owner_id not in team:
            return f"owner not in the team of {conditions.owner_team}"
    return None


__all__ = ["unmet"]
