"""The rules file: its pydantic schema, and loading one with errors that name rule and field.

A rules file is TOML (stdlib :mod:`tomllib`)::

    [calendar]                      # business days (工作日): weekends, holidays, make-up days
    weekend = [6, 7]                # ISO weekdays: Saturday, Sunday
    holidays = ["2026-10-01"]       # days off on a weekday
    workdays = ["2026-09-27"]       # 调休: a weekend day that is a working day

    [[rules]]
    name = "lead-uncontacted-24h"
    trigger = { time = "no_followup", subject = "lead", after = "24h" }
    conditions = { regions = ["华东"], min_amount = 100000 }
    actions = [ { do = "remind", to = ["owner", "supervisor"] } ]

A **trigger** is an event found in the data (``event = "lead_created"`` …) or a deadline
crossed (``time = "no_followup"`` …). **Conditions** narrow the subjects (all must hold;
an empty list matches anything). **Actions** run in order in one transaction with the
firing row (:mod:`.evaluate`). Durations are ``30m``, ``24h``, ``7d`` or ``3bd`` (business
days by the calendar). Which actions suit which subject is checked here, so a file that
would fail at run time is refused when it is loaded.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Discriminator, Field, Tag, ValidationError, model_validator

from hub.errors import ConfigError
from hub.settings import USER_REF_PATTERN

DEFAULTS = Path(__file__).with_name("defaults.toml")

MAX_MINUTES = 3660 * 1440  # ten years: a longer duration is a typo, and would overflow a date
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(m|h|d|bd)\s*$")


@dataclass(frozen=True)
class Duration:
    """A length of time as a rule states it: minutes, hours, days, or business days."""

    amount: Decimal
    unit: Literal["m", "h", "d", "bd"]

    @property
    def business(self) -> bool:
        """Counted in business days (by the calendar), not on the clock."""
        return self.unit == "bd"

    def clock(self) -> dt.timedelta:
        """The clock length (business days: their calendar-day lower bound)."""
        minutes = {"m": 1, "h": 60, "d": 1440, "bd": 1440}[self.unit]
        return dt.timedelta(minutes=float(self.amount) * minutes)

    def __str__(self) -> str:
        return f"{self.amount.normalize():f}{self.unit}"


def _duration(value: Any) -> Duration:
    if isinstance(value, Duration):
        return value
    found = _DURATION.match(str(value)) if isinstance(value, str | int) and not isinstance(value, bool) else None
    if found is None:
        raise ValueError(f"expected a duration such as 30m, 24h, 7d or 3bd, got {value!r}")
    amount, unit = Decimal(found.group(1)), found.group(2)
    if unit == "bd" and amount != amount.to_integral_value():
        raise ValueError(f"business days are whole days, got {value!r}")
    if amount * {"m": 1, "h": 60, "d": 1440, "bd": 2016}[unit] > MAX_MINUTES:  # bd: at most 7/5 calendar days each
        raise ValueError(f"at most ten years, got {value!r}")
    return Duration(amount, unit)  # type: ignore[arg-type]  # the regex allows only the four units


DurationText = Annotated[Duration, BeforeValidator(_duration)]
Recipient = Literal["owner", "supervisor", "finance"]

EVENT_SUBJECTS: dict[str, str] = {
    "lead_created": "lead", "lead_assigned": "lead", "order_submitted": "sales_order",
    "order_approved": "sales_order", "order_rejected": "sales_order", "contract_signed": "contract",
    "receivable_changed": "receivable", "task_done": "task",
}
TIME_SUBJECTS: dict[str, tuple[str, ...]] = {
    "no_followup": ("lead", "customer"), "receivable_overdue": ("receivable",), "task_due": ("task",),
    "task_overdue": ("task",),
}


class Calendar(BaseModel):
    """Business days: every day but the weekend and the holidays, plus the make-up working
    days (调休) that fall on a weekend."""

    model_config = {"extra": "forbid"}

    weekend: list[Annotated[int, Field(ge=1, le=7)]] = Field(default_factory=lambda: [6, 7])
    holidays: list[dt.date] = Field(default_factory=list)
    workdays: list[dt.date] = Field(default_factory=list)

    @model_validator(mode="after")
    def _disjoint(self) -> Calendar:
        both = sorted(set(self.holidays) & set(self.workdays))
        if both:
            raise ValueError(f"{both[0]} is listed both as a holiday and as a make-up working day")
        return self


class EventTrigger(BaseModel):
    """A change found in the data since the rule became active."""

    model_config = {"extra": "forbid"}

    event: Literal["lead_created", "lead_assigned", "order_submitted", "order_approved", "order_rejected",
                   "contract_signed", "receivable_changed", "task_done"]

    @property
    def subject(self) -> str:
        """The kind of row the event is about."""
        return EVENT_SUBJECTS[self.event]

    def __str__(self) -> str:
        return self.event


class TimeTrigger(BaseModel):
    """A deadline crossed: ``after`` a follow-up-less assignment (``since`` the assignment or
    the last follow-up), after a receivable's due date, before or after a task's due time."""

    model_config = {"extra": "forbid"}

    time: Literal["no_followup", "receivable_overdue", "task_due", "task_overdue"]
    subject: Literal["lead", "customer", "receivable", "task"] | None = None
    after: DurationText | None = None
    before: DurationText | None = None
    since: Literal["assignment", "last_followup"] = "assignment"

    @model_validator(mode="after")
    def _shape(self) -> TimeTrigger:
        allowed = TIME_SUBJECTS[self.time]
        if self.subject is None:
            if len(allowed) > 1:
                raise ValueError(f"subject: {self.time} needs one of {', '.join(allowed)}")
            self.subject = allowed[0]  # type: ignore[assignment]  # one of the Literal's values
        elif self.subject not in allowed:
            raise ValueError(f"subject: {self.time} is about {' or '.join(allowed)}, not {self.subject}")
        wanted = "before" if self.time == "task_due" else "after"
        unwanted = "after" if wanted == "before" else "before"
        if getattr(self, wanted) is None:
            raise ValueError(f"{wanted}: {self.time} needs {wanted} (a duration such as 24h or 3bd)")
        if getattr(self, unwanted) is not None:
            raise ValueError(f"{unwanted}: {self.time} takes {wanted}, not {unwanted}")
        if self.time == "receivable_overdue" and self.after is not None and self.after.unit in ("m", "h"):
            raise ValueError("after: receivables fall due by the day: give days (30d) or business days (20bd)")
        return self

    @property
    def offset(self) -> Duration:
        """The trigger's duration (``after`` or ``before``)."""
        found = self.before if self.time == "task_due" else self.after
        assert found is not None  # _shape holds it
        return found

    def __str__(self) -> str:
        side = "before" if self.time == "task_due" else "after"
        return f"{self.time}({self.subject}, {side} {self.offset})"


class Conditions(BaseModel):
    """What a subject must be for the rule to fire (all given must hold)."""

    model_config = {"extra": "forbid"}

    regions: list[str] = Field(default_factory=list, description="region contains one of these")
    industries: list[str] = Field(default_factory=list, description="industry contains one of these")
    min_amount: Decimal | None = Field(default=None, ge=0, description="amount at least this")
    max_amount: Decimal | None = Field(default=None, ge=0, description="amount below this")
    stages: list[str] = Field(default_factory=list, description="stage is one of these")
    currencies: list[Annotated[str, Field(pattern=r"^[A-Z]{3}$")]] = Field(default_factory=list)
    owner_team: str | None = Field(default=None, pattern=USER_REF_PATTERN,
                                   description="user ref of a manager: the owner reports to them (at any depth)")

    @model_validator(mode="after")
    def _range(self) -> Conditions:
        if self.min_amount is not None and self.max_amount is not None and self.min_amount >= self.max_amount:
            raise ValueError(f"min_amount {self.min_amount} must be below max_amount {self.max_amount}")
        return self


class AssignOwner(BaseModel):
    """Assign a lead by the lead assignment table (``HUB_LEADS__RULES``), with its first
    follow-up task; a lead that has an owner or sits in the pool already is left alone."""

    model_config = {"extra": "forbid"}
    do: Literal["assign_owner"]


class CreateTask(BaseModel):
    """A task for the owner (or supervisor, or finance) about the subject, due ``due_in``
    later; an open task of the same kind about the same subject is adopted instead."""

    model_config = {"extra": "forbid"}
    do: Literal["create_task"]
    title: str = Field(min_length=1, max_length=200, description="{name} is the subject's name")
    kind: str = Field(default="rule", pattern=r"^[a-z][a-z0-9_]{0,49}$")
    due_in: DurationText = Field(default_factory=lambda: _duration("1d"))
    assignee: Recipient = "owner"
    description: str | None = Field(default=None, max_length=2000)
    tag: str | None = Field(default=None, max_length=50, description="also tag the customer (e.g. 超时未跟进)")


class Remind(BaseModel):
    """Remind people in their one chat platform about the rule's task (the one the rule just
    created, else the subject's own: a task, a lead's first follow-up, a receivable's 催收)."""

    model_config = {"extra": "forbid"}
    do: Literal["remind"]
    to: list[Recipient] = Field(min_length=1)
    kind: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]{0,39}$",
                             description="reminder kind (its card's heading); supervisor gets <kind>_manager, "
                                         "finance <kind>_finance; default: the rule's name")


class ReturnToPool(BaseModel):
    """Give the lead back to the public pool (公海池); its open first follow-up is cancelled."""

    model_config = {"extra": "forbid"}
    do: Literal["return_to_pool"]


class Instalment(BaseModel):
    """One instalment of a receivable plan: a share of the contract, due some days after signing."""

    model_config = {"extra": "forbid"}
    percent: Decimal = Field(gt=0, le=100)
    due_after: DurationText


class CreateReceivablePlan(BaseModel):
    """The contract's receivable plan (回款计划): one row per instalment; the last takes
    what rounding left so the plan adds up to the contract amount exactly."""

    model_config = {"extra": "forbid"}
    do: Literal["create_receivable_plan"]
    instalments: list[Instalment] = Field(min_length=1, max_length=36)

    @model_validator(mode="after")
    def _adds_up(self) -> CreateReceivablePlan:
        total = sum((i.percent for i in self.instalments), Decimal(0))
        if total != 100:
            raise ValueError(f"instalments: the percentages add up to {total}, not 100")
        if any(i.due_after.unit in ("m", "h") for i in self.instalments):
            raise ValueError("instalments: due_after is days (30d) or business days (20bd)")
        return self


class RequestApproval(BaseModel):
    """Open an OA approval of the order (``hub.rules.approvals``), unless one is open already."""

    model_config = {"extra": "forbid"}
    do: Literal["request_approval"]


class PushOrderToErp(BaseModel):
    """Send the approved order to its ERP (``hub.rules.orders.approve_order``) unless it went already."""

    model_config = {"extra": "forbid"}
    do: Literal["push_order_to_erp"]


class SendCrmWebhook(BaseModel):
    """Tell the CRM (signed webhook ``rule.fired``) that the rule fired for the subject."""

    model_config = {"extra": "forbid"}
    do: Literal["send_crm_webhook"]


Action = Annotated[AssignOwner | CreateTask | Remind | ReturnToPool | CreateReceivablePlan | RequestApproval
                   | PushOrderToErp | SendCrmWebhook, Field(discriminator="do")]

# the subjects each action can act on
ACTION_SUBJECTS: dict[str, tuple[str, ...]] = {
    "assign_owner": ("lead",), "return_to_pool": ("lead",), "create_receivable_plan": ("contract",),
    "request_approval": ("sales_order",), "push_order_to_erp": ("sales_order",),
}
# subjects with a task of their own that ``remind`` can fall back to
OWN_TASK = ("task", "lead", "customer", "receivable")


def _trigger_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "time" if "time" in value and "event" not in value else "event"
    return "time" if isinstance(value, TimeTrigger) else "event"


Trigger = Annotated[Annotated[EventTrigger, Tag("event")] | Annotated[TimeTrigger, Tag("time")],
                    Discriminator(_trigger_kind)]


class Rule(BaseModel):
    """One automation rule: when (trigger), for what (conditions), do what (actions)."""

    model_config = {"extra": "forbid"}

    name: str = Field(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9_\-]*$")
    description: str = Field(default="", max_length=500)
    enabled: bool = True
    include_history: bool = Field(default=False, description="also fire for events before the rule became active")
    trigger: Trigger
    conditions: Conditions = Field(default_factory=Conditions)
    actions: list[Action] = Field(min_length=1)

    @property
    def subject(self) -> str:
        """The kind of row the rule fires for."""
        return str(self.trigger.subject)

    @model_validator(mode="after")
    def _actions_fit(self) -> Rule:
        created = False
        for index, action in enumerate(self.actions):
            allowed = ACTION_SUBJECTS.get(action.do)
            if allowed and self.subject not in allowed:
                raise ValueError(f"actions[{index}].do: {action.do} acts on {' or '.join(allowed)}, but "
                                 f"{self.trigger} is about {self.subject}")
            if isinstance(action, Remind) and not created and self.subject not in OWN_TASK:
                raise ValueError(f"actions[{index}].do: remind needs a task; a {self.subject} has none of its own: "
                                 "put a create_task action before it")
            created = created or isinstance(action, CreateTask)
        return self


class RuleBook(BaseModel):
    """A whole rules file."""

    model_config = {"extra": "forbid"}

    calendar: Calendar = Field(default_factory=Calendar)
    rules: list[Rule] = Field(default_factory=list)

    def active(self) -> list[Rule]:
        """The enabled rules, in file order."""
        return [r for r in self.rules if r.enabled]


class RulesFileError(ConfigError):
    """A rules file is missing, not TOML, or does not validate; the message names the file,
    the rule and the field."""


_TAGS = frozenset({"event", "time", "assign_owner", "create_task", "remind", "return_to_pool", "create_receivable_plan",
                   "request_approval", "push_order_to_erp", "send_crm_webhook"})


def _where(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for position, part in enumerate(loc):
        after_union = (position > 0 and loc[position - 1] == "trigger") or (
            position > 1 and loc[position - 2] == "actions" and isinstance(loc[position - 1], int))
        if isinstance(part, int):
            parts[-1:] = [f"{parts[-1]}[{part}]"] if parts else [f"[{part}]"]
        elif not (after_union and part in _TAGS):  # the union's tag pydantic puts in the path
            parts.append(str(part))
    return ".".join(parts)


def _problem(label: str, err: Any) -> str:
    where = _where(err["loc"])
    message = err["msg"].removeprefix("Value error, ")
    # a whole-rule check names its field in the message ("actions[1].do: …")
    return f"{label}: {where}: {message}" if where else f"{label}: {message}"


def parse_rules(data: dict[str, Any], source: str) -> RuleBook:
    """Validate a parsed rules file; :class:`RulesFileError` lists every problem as
    ``<source>: rule '<name>': <field>: <message>``."""
    problems: list[str] = []
    raw_rules = data.get("rules", [])
    if not isinstance(raw_rules, list):
        raise RulesFileError(f"{source}: rules: expected [[rules]] tables")
    seen: set[str] = set()
    for index, raw in enumerate(raw_rules, 1):
        name = raw.get("name") if isinstance(raw, dict) else None
        label = f"rule {name!r}" if isinstance(name, str) and name else f"rule {index}"
        try:
            rule = Rule.model_validate(raw)
        except ValidationError as exc:
            problems.extend(_problem(label, err) for err in exc.errors(include_url=False))
            continue
        if rule.name in seen:
            problems.append(f"{label}: name: another rule is named {rule.name!r}")
        seen.add(rule.name)
    try:
        Calendar.model_validate(data.get("calendar", {}))
    except ValidationError as exc:
        problems.extend(_problem("calendar", e) for e in exc.errors(include_url=False))
    if not problems:
        try:
            return RuleBook.model_validate(data)
        except ValidationError as exc:
            problems = [_problem("file", e) for e in exc.errors(include_url=False)]
    raise RulesFileError(f"{source}: " + f"\n{source}: ".join(problems))


def load_rules(path: Path | None = None) -> RuleBook:
    """The rules of ``path`` (None: the shipped defaults), validated (:func:`parse_rules`)."""
    source = path or DEFAULTS
    try:
        data = tomllib.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RulesFileError(f"{source}: no such rules file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesFileError(f"{source}: cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise RulesFileError(f"{source}: not valid TOML: {exc}") from None
    return parse_rules(data, str(source))


__all__ = ["ACTION_SUBJECTS", "DEFAULTS", "Action", "AssignOwner", "Calendar", "Conditions", "CreateReceivablePlan",
           "CreateTask", "Duration", "DurationText", "EventTrigger", "Instalment", "PushOrderToErp", "Remind",
           "RequestApproval", "ReturnToPool", "Rule", "RuleBook", "RulesFileError", "SendCrmWebhook", "TimeTrigger",
           "load_rules", "parse_rules"]
