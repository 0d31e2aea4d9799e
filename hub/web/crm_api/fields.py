"""The value types of the CRM API's request bodies: strict, bounded, storable.

Every field of every body says exactly what the column it lands in holds, so a value
that passes validation is writable and a request that is not is a 422 naming the field:

- text: at most the column's characters, no NUL (:class:`canonical_model.storable.Fits`)
  nor other control characters but tab, CR and LF (:class:`Body`), and only JSON strings
  (a number is not a name);
- ids: JSON integers from 1 to the bigint maximum (no "12", no 12.0, no true);
- money: a finite decimal with at most 16 digits before and 2 after the point
  (``numeric(18, 2)``), given as a JSON string ("1280.00", exact) or number;
- dates: ``YYYY-MM-DD`` only, times: ISO 8601 with a timezone only (pydantic alone
  would read ``1700000000`` or ``"0.0"`` as a Unix timestamp);
- currencies: ISO 4217 codes the hub accepts (:data:`canonical_model.records.KNOWN_CURRENCIES`).

Bodies refuse unknown fields (``extra="forbid"``): a typo must not be silently dropped.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    field_validator,
)

from canonical_model.models import MONEY
from canonical_model.records import KNOWN_CURRENCIES
from canonical_model.search import MAX_ID
from canonical_model.storable import Fits

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# RFC 3339 date-time with a timezone (Z or ±hh:mm); fractions of a second allowed
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})", re.IGNORECASE)


_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class Body(BaseModel):
    """Base of every request body: unknown fields refused, nothing coerced silently, no
    control characters in text (tab and line breaks aside: a summary may have lines)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_control_characters(cls, value: object) -> object:
        # an escape or a backspace in a name or an id is a client's bug, not text; NUL cannot be stored
        if isinstance(value, str) and _CONTROL.search(value):
            raise ValueError("control characters are not allowed (tab, CR and LF aside)")
        return value


def _iso_date_only(value: object) -> object:
    # the same rule as hub.web.app's ``as_of``: only YYYY-MM-DD is a date
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise ValueError("expected a date as YYYY-MM-DD")
    return value


def _iso_datetime_only(value: object) -> object:
    if not isinstance(value, str) or not _DATETIME.fullmatch(value):
        raise ValueError("expected a time as ISO 8601 with a timezone, e.g. 2026-11-27T09:30:00+08:00")
    return value


def _money_text(value: object) -> object:
    # a JSON number or string; never a bool (True would be 1), never a list
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise ValueError("expected an amount: a decimal string such as \"1280.00\" or a number")
    return value


def _currency(value: str) -> str:
    if value not in KNOWN_CURRENCIES:
        raise ValueError(f"unknown currency {value!r}: an ISO 4217 code the hub accepts "
                         f"({', '.join(sorted(KNOWN_CURRENCIES))})")
    return value


IsoDate = Annotated[dt.date, BeforeValidator(_iso_date_only)]
IsoDatetime = Annotated[dt.datetime, BeforeValidator(_iso_datetime_only)]
Id = Annotated[StrictInt, Field(ge=1, le=MAX_ID)]
Money = Annotated[Decimal, BeforeValidator(_money_text),
                  Field(max_digits=MONEY.precision, decimal_places=MONEY.scale, allow_inf_nan=False)]
NonNegativeMoney = Annotated[Decimal, BeforeValidator(_money_text),
                             Field(ge=0, max_digits=MONEY.precision, decimal_places=MONEY.scale, allow_inf_nan=False)]
Currency = Annotated[str, StringConstraints(strict=True, min_length=3, max_length=3), AfterValidator(_currency),
                     Field(json_schema_extra={"enum": sorted(KNOWN_CURRENCIES)})]
# A JSON string; each field adds ``Fits(<column>)`` (length, no NUL) and, when required, min_length=1.
Text = Annotated[str, StringConstraints(strict=True)]


__all__ = ["Body", "Currency", "Fits", "Id", "IsoDate", "IsoDatetime", "Money", "NonNegativeMoney", "Text"]
