"""Deadlines in the tenant's time zone, on the clock or in business days (pure).

A business day is a day that is not on the calendar's weekend and not a holiday, or that is
a make-up working day (调休: a Saturday worked to bridge a holiday). Adding ``n`` business
days to a moment steps day by day in the tenant's time zone, counting only business days,
and keeps the time of day: assigned Friday 10:00 + 1bd is Monday 10:00, or Tuesday 10:00
when Monday is a holiday.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from hub.rules.automation.model import Calendar, Duration


class BusinessCalendar:
    """A :class:`~hub.rules.automation.model.Calendar` in a time zone."""

    def __init__(self, calendar: Calendar, timezone: str) -> None:
        self.zone = ZoneInfo(timezone)
        self._weekend = frozenset(calendar.weekend)
        self._holidays = frozenset(calendar.holidays)
        self._workdays = frozenset(calendar.workdays)

    def is_business_day(self, day: dt.date) -> bool:
        """Whether people work on ``day``."""
        if day in self._workdays:
            return True
        return day.isoweekday() not in self._weekend and day not in self._holidays

    def add_business_days(self, day: dt.date, n: int) -> dt.date:
        """The ``n``-th business day after ``day`` (before it when ``n`` is negative)."""
        step = 1 if n >= 0 else -1
        left = abs(n)
        for _ in range(3660):  # a calendar with no business day in ten years is a mistake, not a loop
            if left == 0:
                return day
            day += dt.timedelta(days=step)
            left -= self.is_business_day(day)
        raise ValueError("the calendar has no business day in ten years")

    def shift(self, at: dt.datetime, duration: Duration, *, backwards: bool = False) -> dt.datetime:
        """``at`` plus (``backwards``: minus) ``duration``; business days keep the local time of day."""
        if not duration.business:
            return at - duration.clock() if backwards else at + duration.clock()
        local = at.astimezone(self.zone)
        n = int(duration.amount)
        day = self.add_business_days(local.date(), -n if backwards else n)
        return dt.datetime.combine(day, local.time().replace(tzinfo=None), self.zone).astimezone(dt.UTC)

    def start_of(self, day: dt.date) -> dt.datetime:
        """Midnight at the start of ``day`` in the tenant's time zone, in UTC."""
        return dt.datetime.combine(day, dt.time(), self.zone).astimezone(dt.UTC)

    def today(self, now: dt.datetime) -> dt.date:
        """The tenant's date at ``now``."""
        return now.astimezone(self.zone).date()


__all__ = ["BusinessCalendar"]
