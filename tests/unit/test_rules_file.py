"""The rules file: the shipped defaults validate, a bad file is refused naming rule and
field, and business-day arithmetic follows weekends, holidays and make-up days (调休)."""

from __future__ import annotations

import datetime as dt
import tomllib
from decimal import Decimal

import pytest

from hub.rules.automation import BusinessCalendar, load_rules
from hub.rules.automation.actions import plan_instalments
from hub.rules.automation.conditions import unmet
from hub.rules.automation.model import Calendar, CreateReceivablePlan, RulesFileError, parse_rules
from hub.rules.automation.triggers import Subject


def refused(text: str) -> str:
    with pytest.raises(RulesFileError) as caught:
        parse_rules(tomllib.loads(text), "tenant.toml")
    return str(caught.value)


def test_the_shipped_defaults_cover_the_brief():
    book = load_rules()
    triggers = {str(r.trigger) for r in book.rules}
    assert {"lead_created", "contract_signed", "order_submitted", "order_approved", "order_rejected",
            "no_followup(lead, after 24h)", "no_followup(customer, after 24h)", "no_followup(lead, after 7d)",
            "receivable_overdue(receivable, after 30d)"} <= triggers
    assert len({r.name for r in book.rules}) == len(book.rules)


@pytest.mark.parametrize(("text", "message"), [
    ('[[rules]]\nname = "pool-orders"\ntrigger = { event = "order_approved" }\nactions = [{ do = "return_to_pool" }]',
     "rule 'pool-orders': actions[0].do: return_to_pool acts on lead, but order_approved is about sales_order"),
    ('[[rules]]\nname = "slow"\ntrigger = { time = "no_followup", subject = "lead", after = "3 weeks" }\n'
     'actions = [{ do = "return_to_pool" }]',
     "rule 'slow': trigger.after: expected a duration such as 30m, 24h, 7d or 3bd, got '3 weeks'"),
    ('[[rules]]\nname = "far"\ntrigger = { time = "task_overdue", after = "99999d" }\n'
     'actions = [{ do = "remind", to = ["owner"] }]', "rule 'far': trigger.after: at most ten years, got '99999d'"),
    ('[[rules]]\nname = "who"\ntrigger = { event = "task_done" }\nactions = [{ do = "remind", to = ["boss"] }]',
     "rule 'who': actions[0].to[0]: Input should be 'owner', 'supervisor' or 'finance'"),
    ('[[rules]]\nname = "c"\ntrigger = { event = "lead_created" }\nconditions = { colour = "red" }\n'
     'actions = [{ do = "assign_owner" }]', "rule 'c': conditions.colour: Extra inputs are not permitted"),
    ('[[rules]]\nname = "plan"\ntrigger = { event = "contract_signed" }\n'
     'actions = [{ do = "create_receivable_plan", instalments = [{ percent = 50, due_after = "0d" }] }]',
     "rule 'plan': actions[0]: instalments: the percentages add up to 50, not 100"),
    ('[[rules]]\nname = "tell"\ntrigger = { event = "order_rejected" }\nactions = [{ do = "remind", to = ["owner"] }]',
     "rule 'tell': actions[0].do: remind needs a task; a sales_order has none of its own: put a "
     "create_task action before it"),
    ('[[rules]]\nname = "twice"\ntrigger = { event = "lead_created" }\nactions = [{ do = "assign_owner" }]\n'
     '[[rules]]\nname = "twice"\ntrigger = { event = "lead_created" }\nactions = [{ do = "assign_owner" }]',
     "rule 'twice': name: another rule is named 'twice'"),
    ('[calendar]\nholidays = ["2026-10-01"]\nworkdays = ["2026-10-01"]',
     "calendar: 2026-10-01 is listed both as a holiday and as a make-up working day"),
])
def test_a_bad_rules_file_is_refused_naming_the_rule_and_the_field(text, message):
    assert f"tenant.toml: {message}" in refused(text).splitlines()


def test_every_problem_of_a_file_is_listed_with_the_file_name():
    text = ('[[rules]]\nname = "a"\ntrigger = { event = "nope" }\nactions = [{ do = "assign_owner" }]\n'
            '[[rules]]\ntrigger = { event = "lead_created" }\nactions = []')
    lines = refused(text).splitlines()
    assert lines[0].startswith("tenant.toml: rule 'a': trigger.event: Input should be")
    assert "tenant.toml: rule 2: name: Field required" in lines
    assert "tenant.toml: rule 2: actions: List should have at least 1 item after validation, not 0" in lines


CALENDAR = BusinessCalendar(Calendar(holidays=[dt.date(2026, 10, 1), dt.date(2026, 10, 2), dt.date(2026, 10, 5)],
                                     workdays=[dt.date(2026, 10, 10)]), "Asia/Shanghai")


@pytest.mark.parametrize(("start", "days", "expected"), [
    (dt.date(2026, 9, 25), 1, dt.date(2026, 9, 28)),  # Friday + 1 → Monday
    (dt.date(2026, 9, 30), 1, dt.date(2026, 10, 6)),  # over the National Day holidays and the weekend
    (dt.date(2026, 10, 9), 1, dt.date(2026, 10, 10)),  # Saturday 10 October is worked (调休)
    (dt.date(2026, 10, 6), -1, dt.date(2026, 9, 30)),
    (dt.date(2026, 9, 26), 0, dt.date(2026, 9, 26)),
])
def test_business_days_skip_weekends_and_holidays_and_count_make_up_days(start, days, expected):
    assert CALENDAR.add_business_days(start, days) == expected


def test_a_business_day_deadline_keeps_the_local_time_of_day():
    from hub.rules.automation.model import _duration

    friday_1730 = dt.datetime(2026, 9, 30, 9, 30, tzinfo=dt.UTC)  # Wednesday 17:30 in Shanghai
    assert CALENDAR.shift(friday_1730, _duration("1bd")) == dt.datetime(2026, 10, 6, 9, 30, tzinfo=dt.UTC)
    assert CALENDAR.shift(friday_1730, _duration("24h")) == dt.datetime(2026, 10, 1, 9, 30, tzinfo=dt.UTC)


def test_a_receivable_plan_adds_up_to_the_contract_to_the_cent():
    action = CreateReceivablePlan.model_validate({"do": "create_receivable_plan", "instalments": [
        {"percent": 33.33, "due_after": "0d"}, {"percent": 33.33, "due_after": "30d"},
        {"percent": 33.34, "due_after": "2bd"}]})
    rows = plan_instalments(Decimal("1000.00"), action, dt.date(2026, 9, 30), CALENDAR)
    assert rows == [(1, dt.date(2026, 9, 30), Decimal("333.30")), (2, dt.date(2026, 10, 30), Decimal("333.30")),
                    (3, dt.date(2026, 10, 7), Decimal("333.40"))]


def test_conditions_name_what_does_not_hold():
    from hub.rules.automation.model import Conditions

    subject = Subject("sales_order", 1, "approved", dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "某公司 SO-1",
                      owner_id=7, region="华东区", industry="制造", amount=Decimal("99999"), currency="CNY")
    assert unmet(Conditions(regions=["华东"], min_amount=Decimal(50000)), subject) is None
    assert unmet(Conditions(min_amount=Decimal(100000)), subject) == "amount 99999 below 100000"
    assert unmet(Conditions(currencies=["USD"]), subject) == "currency 'CNY' not in ['USD']"
    assert unmet(Conditions(owner_team="id:3"), subject, team={3, 8}) == "owner not in the team of id:3"
    assert unmet(Conditions(owner_team="id:3"), subject, team={3, 7}) is None
