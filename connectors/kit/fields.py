"""Pure field readers every mapping uses: one raw value → text or a number, or a MappingError.

Vendors send whatever they like where a field should be: numbers where text is expected,
objects, lists, booleans, NaN, ``1E+400``. Each reader names the field and the shape of the
value it refused, so the engine's quarantine reason is one a person can act on, and never
raises anything but :class:`~canonical_model.records.MappingError` for bad data (any other
exception from a mapping is a bug and stops the run).

Digit limits come from the store's columns (``numeric(p, s)``: ``p − s`` digits before the
point), checked before any arithmetic: Decimal's context holds 28 digits, so ``1E+400``
cannot even be rounded to cents.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, cast

from canonical_model.models import MONEY, SalesOrderLine
from canonical_model.records import MappingError
from canonical_model.storable import shown

CENT = Decimal("0.01")
MONEY_WHOLE_DIGITS = MONEY.precision - MONEY.scale  # type: ignore[operator]
_LINE_NUMBER: Any = SalesOrderLine.quantity.property.columns[0].type
QUANTITY_WHOLE_DIGITS = _LINE_NUMBER.precision - _LINE_NUMBER.scale
_MAX_INT_BITS = 256  # a whole number longer than this is not an id, an amount or a phone number


def text(raw: Mapping[str, Any], key: str) -> str | None:
    """The field as trimmed text (a whole number sent as a JSON number is accepted), None when empty."""
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        found = value.strip()
    elif isinstance(value, int) and not isinstance(value, bool) and value.bit_length() <= _MAX_INT_BITS:
        found = str(value)  # a number code or phone number sent as a JSON number
    else:
        raise MappingError(f"{key}: expected text, got {shown(value)}")
    return found or None


def required_text(raw: Mapping[str, Any], key: str, what: str) -> str:
    """:func:`text`, refusing a missing or empty value as "missing <what>"."""
    found = text(raw, key)
    if found is None:
        raise MappingError(f"{key}: missing {what}")
    return found


def number(raw: Mapping[str, Any], key: str, whole_digits: int = MONEY_WHOLE_DIGITS) -> Decimal:
    """A finite number of at most ``whole_digits`` digits before the decimal point."""
    value = raw.get(key)
    kind = type(value)
    if kind is float:  # what a JSON reply mostly holds: the general path's conversion, without its tests
        return _checked(Decimal(str(value)), value, key, whole_digits)
    if kind is int:
        return _checked(Decimal(cast(int, value)), value, key, whole_digits)
    if kind is Decimal:  # a client that reads JSON numbers as Decimals (Kingdee's)
        return _checked(cast(Decimal, value), value, key, whole_digits)
    if value is None or value == "":
        raise MappingError(f"{key}: missing number")
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise MappingError(f"{key}: expected a number, got {shown(value)}")
    try:
        if isinstance(value, Decimal):
            found = value
        elif isinstance(value, int):
            found = Decimal(value)
        else:
            found = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise MappingError(f"{key}: {shown(value)} is not a number") from None
    return _checked(found, value, key, whole_digits)


def _checked(found: Decimal, value: Any, key: str, whole_digits: int) -> Decimal:
    """``found`` (read from ``value``) when finite and within ``whole_digits``."""
    if not found.is_finite():
        raise MappingError(f"{key}: {shown(value)} is not a finite number; expected an amount")
    if found and found.adjusted() >= whole_digits:
        raise MappingError(f"{key}: {shown(value)} is too large: the hub stores at most {whole_digits} digits "
                           "before the decimal point")
    return found


def money(raw: Mapping[str, Any], key: str) -> Decimal:
    """An amount rounded to cents (ERPs store more decimals than the currency has: noise)."""
    return number(raw, key).quantize(CENT, rounding=ROUND_HALF_UP)


# Quantities read before, by the exact type of the value sent: an order page repeats a few
# quantities, prices and tax rates (2.0, 13.0, "0.5"), and reading one costs about 1.8 us
# (Decimal, normalize, as_tuple: inbound round 4). Only what was read without a problem is
# kept (a refusal is always worded afresh), the Decimals are immutable, and each type has its
# own table so that 1, 1.0 and True never share an entry (they are equal dict keys). Equal
# Decimals (2.0 and 2.00) read alike (normalized), zeros aside: a zero is never kept.
_QUANTITIES: dict[type, dict[Any, Decimal]] = {float: {}, int: {}, str: {}, Decimal: {}}
_QUANTITIES_KEPT = 4096  # entries a table holds before it starts again (a bound, not a tuning)
_QUANTITY_KEY_CHARS = 40  # longer text is read every time (a key is kept whole)
_SIGNED_ZEROS = (float, Decimal)


def quantity(raw: Mapping[str, Any], key: str) -> Decimal:
    """A quantity or unit price as the order line column holds it (at most 6 decimals)."""
    value = raw.get(key)
    known = _QUANTITIES.get(type(value))
    if known is not None:
        try:
            found = known.get(value)
        except TypeError:  # Decimal('sNaN') cannot be hashed (and is refused below)
            known = None
        else:
            if found is not None:
                return found
    found = scaled(number(raw, key, QUANTITY_WHOLE_DIGITS))
    # not a float or Decimal zero: 0.0 and -0.0 are one key but read as 0 and -0
    if known is not None and (value or type(value) not in _SIGNED_ZEROS) and (
            type(value) is not str or len(value) <= _QUANTITY_KEY_CHARS):
        if len(known) >= _QUANTITIES_KEPT:
            known.clear()
        known[value] = found
    return found


def scaled(value: Decimal, places: int = 6) -> Decimal:
    """Drop trailing zeros (``2.0000000000`` → ``2``), then round to at most ``places`` decimals."""
    normalized = value.normalize()
    exponent = normalized.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -places:
        return normalized.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    if isinstance(exponent, int) and exponent > 0:
        return normalized.quantize(Decimal(1))  # 1E+2 → 100
    return normalized


__all__ = [
    "CENT",
    "MONEY_WHOLE_DIGITS",
    "QUANTITY_WHOLE_DIGITS",
    "money",
    "number",
    "quantity",
    "required_text",
    "scaled",
    "text",
]
