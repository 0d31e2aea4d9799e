"""What the canonical store can hold, checked while a record is validated, and said in words.

A canonical record that passes validation must be writable: a value Postgres would refuse
fails the page's transaction, and a sync that cannot commit a page is stuck until someone
edits the source. So the limits live where the values land, in the table definitions
(``canonical_model.models``: one source), and each string field of a record names the
column(s) it lands in::

    phone: Annotated[str, Fits(Customer.phone)] | None = None

:class:`Fits` turns that into pydantic constraints checked in pydantic-core (Rust), which
costs a first load about 5 % of validation time instead of a Python call per field:

- at most as many characters as the shortest of the columns (``varchar(n)``);
- no NUL (U+0000): Postgres ``text`` and ``jsonb`` cannot hold it. Lone UTF-16 surrogates
  (U+D800–U+DFFF, not Unicode text; Postgres' UTF-8 cannot encode them) are refused by
  pydantic-core itself for every ``str`` field.

A ``Decimal`` bound for a ``numeric(p, s)`` column gets :class:`Digits`: the same rules
and errors as pydantic's ``max_digits``/``decimal_places``, at a quarter of their cost.

:func:`explain` turns a pydantic ``ValidationError`` into one sentence per problem that a
person can act on: the field, the shape of the value, what is expected, and for a length
the column. Values are shown only when short (the quarantine row holds the record anyway);
long ones are described by their length.
"""

from __future__ import annotations

import functools
import re
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, GetCoreSchemaHandler, ValidationError
from pydantic_core import CoreSchema, PydanticCustomError, SchemaValidator, core_schema

# Rust-regex pattern of text Postgres can hold (see the module docstring).
STORABLE_TEXT = "^[^\x00]*$"
# NUL, or a lone surrogate: what a ``text`` value cannot carry.
UNSTORABLE_CHARACTER = re.compile("[\x00\ud800-\udfff]")
SHOWN_MAX_CHARS = 40


def _column(attribute: Any) -> sa.Column[Any]:
    """The table column behind a mapped attribute (``Customer.phone``) or a column itself."""
    prop = getattr(attribute, "property", None)
    if prop is not None and getattr(prop, "columns", None):
        column: sa.Column[Any] = prop.columns[0]
        return column
    if isinstance(attribute, sa.Column):
        return attribute
    raise TypeError(f"not a mapped column: {attribute!r}")


@dataclass(frozen=True, init=False)
class Fits:
    """Marks a field whose value lands in (or is matched against) these columns.

    A text field gets the shortest column's length and the character check; without
    columns only the character check (a value stored nowhere that still travels through
    SQL, e.g. a reference looked up in a JSON key list). A ``Decimal`` field gets the
    digits of its one ``numeric(p, s)`` column.
    """

    columns: tuple[sa.Column[Any], ...]
    max_chars: int | None

    def __init__(self, *columns: Any, max_chars: int | None = None) -> None:
        object.__setattr__(self, "columns", tuple(_column(c) for c in columns))
        # the limit of a value stored transformed (sealed personal data: the column is text,
        # the value it holds is longer than the plaintext, which is what is limited)
        object.__setattr__(self, "max_chars", max_chars)

    @property
    def limit(self) -> int | None:
        """The most characters every column takes; None when none of them is limited."""
        lengths = [n for c in self.columns if (n := getattr(c.type, "length", None))]
        if self.max_chars is not None:
            lengths.append(self.max_chars)
        return min(lengths) if lengths else None

    @property
    def label(self) -> str:
        """The limiting column as ``table.column`` (e.g. ``sales_order.erp_bill_number``)."""
        limit = self.limit
        limiting = [c for c in self.columns if getattr(c.type, "length", None) == limit] or list(self.columns)
        return ", ".join(f"{c.table.name}.{c.name}" for c in limiting[:1])

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        schema: dict[str, Any] = dict(handler(source))
        if schema.get("type") == "decimal" and len(self.columns) == 1:
            numeric: Any = self.columns[0].type  # numeric(p, s): p digits, s of them after the point
            return Digits(numeric.precision, numeric.scale).wrap(typing.cast(CoreSchema, schema))
        if schema.get("type") != "str":
            raise TypeError(f"Fits applies to text fields and to numbers of one numeric column, not {source!r}")
        limit = self.limit
        if limit is not None:
            schema["max_length"] = min(limit, schema.get("max_length", limit))
        schema["pattern"] = STORABLE_TEXT
        return typing.cast(CoreSchema, schema)


@dataclass(frozen=True)
class Digits:
    """Marks a ``Decimal`` field stored in a ``numeric(precision, scale)`` column: at most
    ``precision`` digits, ``scale`` of them after the point (trailing zeros not counted).

    Equivalent to pydantic's ``Field(max_digits=precision, decimal_places=scale)``, errors
    included (same types, messages and context, so :func:`explain` reads them alike), but
    cheaper: pydantic-core counts digits through ``Decimal.as_tuple()``, a Python named
    tuple per value, 1.6 us a field (measured); the check here is two comparisons and one
    ``quantize`` in C, about 0.4 us, and asks pydantic's own check only for a value that
    fails (whose error then is pydantic's, word for word).
    """

    precision: int
    scale: int

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        schema = handler(source)
        if schema.get("type") != "decimal":
            raise TypeError(f"Digits applies to Decimal fields, not {source!r}")
        return self.wrap(schema)

    def wrap(self, schema: CoreSchema) -> CoreSchema:
        """``schema`` (a decimal schema) followed by this check."""
        return core_schema.no_info_after_validator_function(_digits_check(self.precision, self.scale), schema)


@functools.cache
def _digits_check(precision: int, scale: int) -> typing.Callable[[Decimal], Decimal]:
    bound = Decimal(10) ** (precision - scale)
    step = Decimal(1).scaleb(-scale)
    exact = SchemaValidator(core_schema.decimal_schema(max_digits=precision, decimal_places=scale))

    def check(value: Decimal) -> Decimal:
        # exact: within the bound, a value equal to itself rounded to `scale` places has at
        # most precision - scale digits before the point and scale after it once normalized,
        # and one that is not fails pydantic's check (the bound also keeps quantize in range)
        if -bound < value < bound and value == value.quantize(step):
            return value
        try:
            exact.validate_python(value)
        except ValidationError as exc:
            error = exc.errors(include_url=False)[0]
            raise PydanticCustomError(error["type"], error["msg"], error.get("ctx")) from None
        return value

    return check


def _fits_in(annotation: Any) -> Fits | None:
    """The Fits marker inside an annotation such as ``Annotated[str, Fits(...)] | None``."""
    for meta in getattr(annotation, "__metadata__", ()):
        if isinstance(meta, Fits):
            return meta
    for arg in typing.get_args(annotation):
        if (found := _fits_in(arg)) is not None:
            return found
    return None


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    """Pydantic models nested in an annotation (``tuple[SalesOrderLineRecord, ...]``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    for arg in typing.get_args(annotation):
        yield from _models_in(arg)


@functools.cache
def string_fields(model: type[BaseModel]) -> dict[str, Fits | None]:
    """Every field of ``model`` that holds text, with its Fits marker (None: unmarked)."""
    return {
        name: next((m for m in info.metadata if isinstance(m, Fits)), None) or _fits_in(info.annotation)
        for name, info in model.model_fields.items() if _holds_text(info.annotation)
    }


def _holds_text(annotation: Any) -> bool:
    if annotation is str:
        return True
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) in (typing.Union, typing.Annotated):
        return any(_holds_text(a) for a in typing.get_args(annotation))
    return False


def fits_at(model: type[BaseModel] | None, loc: tuple[int | str, ...]) -> Fits | None:
    """The Fits marker of the field at a pydantic error location, nested models included."""
    current = model
    marker: Fits | None = None
    for part in loc:
        if current is None or isinstance(part, int):
            continue
        info = current.model_fields.get(part)
        if info is None:
            return None
        marker = string_fields(current).get(part)
        current = next(_models_in(info.annotation), None)
    return marker


def shown(value: Any) -> str:
    """A value as a reason may show it: short text and numbers as they are, anything else
    by its shape (``a 350-character text``, ``a list``, ``true``)."""
    if value is None:
        return "empty (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        if len(value) > SHOWN_MAX_CHARS:
            return f"a {len(value)}-character text"
        return repr(value)
    if isinstance(value, int) and value.bit_length() > 128:  # str() refuses past 4300 digits
        return f"a whole number of about {int(value.bit_length() * 0.30103) + 1} digits"
    if isinstance(value, int | float | Decimal):
        text = str(value)
        return text if len(text) <= SHOWN_MAX_CHARS else f"a {len(text)}-digit number"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


def character_problem(text: str) -> str | None:
    """Why Postgres text cannot hold ``text`` (which character, where), or None."""
    match = UNSTORABLE_CHARACTER.search(text)
    if match is None:
        return None
    where = match.start() + 1
    if match.group() == "\x00":
        return f"contains a NUL character (U+0000) at position {where}, which Postgres text cannot hold"
    return (f"contains a lone surrogate (U+{ord(match.group()):04X}) at position {where}: half of a UTF-16 pair, "
            "not Unicode text, so it cannot be stored")


def _where(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) or "record"


def _sentence(model: type[BaseModel] | None, err: Any) -> str:
    loc: tuple[int | str, ...] = tuple(err.get("loc", ()))
    where, kind, value, ctx = _where(loc), err.get("type"), err.get("input"), err.get("ctx") or {}
    if kind == "string_too_long" and isinstance(value, str):
        marker = fits_at(model, loc)
        column = f" ({marker.label})" if marker is not None else ""
        return (f"{where}: {len(value)} characters, more than the {ctx.get('max_length')} the hub stores"
                f"{column}; shorten it at the source")
    if kind in ("string_pattern_mismatch", "string_unicode") and isinstance(value, str):
        problem = character_problem(value)
        if problem is not None:
            return f"{where}: {problem}; remove it at the source"
    if kind == "string_type":
        return f"{where}: expected text, got {shown(value)}"
    if kind == "decimal_max_digits":
        return f"{where}: {shown(value)} has more digits than the {ctx.get('max_digits')} this amount holds"
    if kind == "decimal_whole_digits":
        return (f"{where}: {shown(value)} is too large: at most {ctx.get('whole_digits')} digits before the "
                "decimal point are stored")
    if kind == "decimal_max_places":
        return f"{where}: {shown(value)} has more than {ctx.get('decimal_places')} decimal places"
    if kind == "finite_number":
        return f"{where}: {shown(value)} is not a finite number; expected an amount"
    if kind == "missing":
        return f"{where}: missing"
    if kind == "extra_forbidden":
        return f"{where}: not a field of this record"
    message = str(err.get("msg", "invalid"))
    message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind in ("value_error", "assertion_error"):
        return f"{where}: {message}"
    return f"{where}: {shown(value)} is not accepted: {message[:1].lower()}{message[1:]}"


def explain(exc: ValidationError, model: type[BaseModel] | None = None) -> str:
    """One readable sentence per problem of a failed validation, joined by "; "."""
    return "; ".join(_sentence(model, err) for err in exc.errors(include_url=False))


__all__ = [
    "STORABLE_TEXT",
    "UNSTORABLE_CHARACTER",
    "Digits",
    "Fits",
    "character_problem",
    "explain",
    "fits_at",
    "shown",
    "string_fields",
]
