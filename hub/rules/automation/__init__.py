"""Declarative automation rules: a TOML file of trigger → conditions → actions, evaluated
against the data, each firing exactly once per (rule, subject, window).

- :mod:`.model`: the file's schema (pydantic), loading it with errors naming rule and field;
- :mod:`.calendar`: deadlines in the tenant's time zone, on the clock or in business days;
- :mod:`.triggers`: the SQL that finds each trigger's subjects in the data (no event bus);
- :mod:`.conditions`: whether a subject meets a rule's conditions (pure);
- :mod:`.actions`: action name → what it does, calling the domain rules (``hub.rules.*``);
- :mod:`.evaluate`: the plan (a dry run writes nothing) and its application (firings).

Entry points build the environment from the settings with :func:`rule_env` and the book
with :func:`load_book` (``HUB_RULES__FILE``, else ``defaults.toml``).
"""

from __future__ import annotations

from hub.registry import chat_systems
from hub.rules.automation.actions import RuleEnv
from hub.rules.automation.calendar import BusinessCalendar
from hub.rules.automation.evaluate import (
    ApplyReport,
    RulePlan,
    apply,
    dry_run,
    plan,
    plan_as_dicts,
    plan_as_markdown,
)
from hub.rules.automation.model import DEFAULTS, RuleBook, RulesFileError, load_rules
from hub.rules.reminders import ReminderPolicy
from hub.settings import Settings


def load_book(settings: Settings) -> RuleBook:
    """The tenant's rules (``HUB_RULES__FILE``) or the shipped defaults; an invalid file is a
    :class:`RulesFileError`, never a fallback."""
    return load_rules(settings.rules.file)


def rule_env(settings: Settings, book: RuleBook) -> RuleEnv:
    """What the actions need, from the settings (and the book's calendar)."""
    intervals = [getattr(settings.connector(c), "duplicate_check_interval_s", None) for c in chat_systems()]
    policy = ReminderPolicy(duplicate_check_interval_s=next((i for i in intervals if i), 1800),
                            profile_base_url=settings.public_url, channels=settings.reminders.channels())
    return RuleEnv(calendar=BusinessCalendar(book.calendar, settings.timezone), leads=settings.leads,
                   orders=settings.orders, reminders=policy, finance_recipients=settings.collections.recipients())


__all__ = ["DEFAULTS", "ApplyReport", "BusinessCalendar", "RuleBook", "RuleEnv", "RulePlan", "RulesFileError", "apply",
           "dry_run", "load_book", "load_rules", "plan", "plan_as_dicts", "plan_as_markdown", "rule_env"]
