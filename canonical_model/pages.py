"""Canonical records validated a page at a time: one ``msgspec.convert`` call and a few
column-wise checks at C speed, instead of one pydantic model per record.

Constructing a pydantic canonical record costs about 5 us (measured on 5,000 receivables:
``ReceivableRecord(**values)`` 5.2 us, even ``model_construct`` without any validation
4.6 us); a first load of 200,000 receivables spent a third of its client CPU in
``BaseModel.__init__`` (benchmarks/RESULTS.md, ingest round 3). A :class:`PageSchema`
derives from a pydantic canonical model (the one definition of the fields and their
rules) a frozen ``msgspec.Struct`` with the same field names, and validates a whole page of
field values into it:

1. every column's values are of the field's own type (exactly ``str``, ``int``, ``Decimal``,
   ``date`` or aware-or-naive ``datetime``; ``None`` only where the field is optional), or,
   for a field holding a tuple of another model's records (an order's lines), lists of
   that model's field values, checked as one page of the nested model's own schema:
   values arrive already parsed, by the mapping's own readers (``Decimal``,
   ``date.fromisoformat``: C functions), so the page path never parses a value
   differently from the per-record path;
2. one ``msgspec.convert`` of the page into the Struct (unknown and missing fields
   refused, types checked, instances built in C);
3. the model's rules, column by column: text already stripped (in a model that strips
   whitespace), at least ``min_length`` and at most the :class:`~canonical_model.storable.Fits`
   limit characters, no character Postgres text cannot hold (one regular-expression
   search over the page's text), numbers finite and within their
   :class:`~canonical_model.storable.Digits` and ``gt``/``ge``/``lt``/``le`` bounds, and every
   ``AfterValidator`` and ``field_validator`` of the model called on each value, which must
   return the value unchanged.

If anything fails, :meth:`PageSchema.validate` returns ``None`` and says nothing about why:
the engine then maps the page record by record through the pydantic model
(``StreamSpec.map_record``), whose refusals name the field and the value
(``canonical_model.storable.explain``). The page path is therefore only ever a faster way
to the same records; it never decides a refusal. A model with a rule this module cannot
check column-wise (a model validator, a ``before`` validator, an unknown constraint)
cannot get a schema at all (``TypeError`` at import), rather than be checked less strictly.

The Structs carry the same attributes as the model (``rec.open_amount``, ``order.lines[0].amount``),
which is all the engine's writers read; they are not pydantic models (no ``model_dump``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import operator
import types
import typing
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import chain, repeat
from operator import eq
from typing import Any, Generic, TypeVar

import annotated_types
import msgspec
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic.functional_validators import AfterValidator

from canonical_model.storable import UNSTORABLE_CHARACTER, Digits, Fits

_NONE = type(None)
R = TypeVar("R")
_ABSENT = object()  # a field the values leave out (its default, or msgspec refuses the page)
_ABSENT_TYPE = type(_ABSENT)
_EMPTY = {_NONE, _ABSENT_TYPE}
_SCALARS = (str, int, Decimal, dt.date, dt.datetime)
_BOUNDS: dict[type, Callable[[Any, Any], bool]] = {  # annotated_types bound → "value passes it"
    annotated_types.Gt: operator.gt, annotated_types.Ge: operator.ge,
    annotated_types.Lt: operator.lt, annotated_types.Le: operator.le,
}


@dataclass(frozen=True)
class _Column:
    """How one field is checked on a page (see the module docstring)."""

    name: str
    kind: type
    optional: bool
    max_chars: int | None
    min_chars: int
    digits: Digits | None
    checks: tuple[Callable[[Any], Any], ...]
    strip: bool = True  # the model strips whitespace: text must come stripped already
    bounds: tuple[tuple[Callable[[Any, Any], bool], Any], ...] = ()  # (comparison, bound): gt=0 …
    nested: PageSchema | None = None  # a tuple of another model's records (kind is tuple)


def _parts(annotation: Any) -> tuple[type, bool, list[Any]]:
    """(base type, optional, metadata) of a field annotation such as
    ``Annotated[datetime, AfterValidator(...)] | None``; ``tuple[Model, ...]`` gives the model
    as its type."""
    optional = False
    metadata: list[Any] = []
    args = typing.get_args(annotation)
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        rest = [a for a in args if a is not _NONE]
        if len(rest) != 1 or len(args) != 2:
            raise TypeError(f"page schemas take one type or one type | None, not {annotation!r}")
        optional, annotation = True, rest[0]
    while typing.get_origin(annotation) is typing.Annotated:
        metadata.extend(annotation.__metadata__)
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) is tuple:
        item, *more = typing.get_args(annotation)
        if more == [Ellipsis] and isinstance(item, type) and issubclass(item, BaseModel) and not optional:
            return item, optional, metadata
    if annotation not in _SCALARS:
        raise TypeError(f"page schemas take {', '.join(t.__name__ for t in _SCALARS)} fields, not {annotation!r}")
    return annotation, optional, metadata


def _column(model: type[BaseModel], name: str, info: FieldInfo) -> _Column:
    kind, optional, metadata = _parts(info.annotation)
    strip = bool(model.model_config.get("str_strip_whitespace"))
    if issubclass(kind, BaseModel):
        if info.metadata or metadata or info.is_required() or info.default != ():
            raise TypeError(f"{model.__name__}.{name}: a tuple of records takes no constraints and defaults to ()")
        return _Column(name, tuple, False, None, 0, None, (), strip, (), PageSchema(kind))
    max_chars: int | None = None
    min_chars = 0
    digits: Digits | None = None
    checks: list[Callable[[Any], Any]] = []
    bounds: list[tuple[Callable[[Any, Any], bool], Any]] = []
    for meta in [*info.metadata, *metadata]:
        if isinstance(meta, Fits) and kind is str:
            max_chars = meta.limit
        elif isinstance(meta, Fits) and kind is Decimal and len(meta.columns) == 1:
            numeric: Any = meta.columns[0].type
            digits = Digits(numeric.precision, numeric.scale)
        elif isinstance(meta, Digits) and kind is Decimal:
            digits = meta
        elif isinstance(meta, annotated_types.MinLen) and kind is str:
            min_chars = meta.min_length
        elif type(meta) in _BOUNDS and kind in (int, Decimal):
            bound = next(iter(dataclasses.astuple(meta)))  # Gt(gt=0) → 0
            bounds.append((_BOUNDS[type(meta)], bound))
        elif isinstance(meta, AfterValidator):
            checks.append(typing.cast(Callable[[Any], Any], meta.func))
        else:
            raise TypeError(f"{model.__name__}.{name}: no page check for {meta!r}")
    for decorator in model.__pydantic_decorators__.field_validators.values():
        if name in decorator.info.fields:
            if decorator.info.mode != "after":
                raise TypeError(f"{model.__name__}.{name}: only 'after' field validators are checked on pages")
            checks.append(decorator.func)
    return _Column(name, kind, optional, max_chars, min_chars, digits, tuple(checks), strip, tuple(bounds))


class PageSchema:
    """A page of ``model``'s field values → Structs, or None (see the module docstring)."""

    def __init__(self, model: type[BaseModel]) -> None:
        decorators = model.__pydantic_decorators__
        if decorators.model_validators or decorators.root_validators or decorators.validators:
            raise TypeError(f"{model.__name__}: model validators are not checked on pages")
        if model.model_config.get("extra") != "forbid":
            raise TypeError(f"{model.__name__}: page schemas assume no extra fields")
        self.model = model
        self.columns = [_column(model, name, info) for name, info in model.model_fields.items()]
        fields: list[tuple[str, Any, Any]] = []
        for column in self.columns:
            info = model.model_fields[column.name]
            annotation: Any = column.kind | None if column.optional else column.kind
            if column.nested is not None:
                annotation = tuple[column.nested.row, ...]  # type: ignore[name-defined]
            fields.append((column.name, annotation, msgspec.NODEFAULT if info.is_required() else info.default))
        self.row: type[msgspec.Struct] = msgspec.defstruct(
            f"{model.__name__}Row", fields, frozen=True, kw_only=True, forbid_unknown_fields=True,
            # scalars and tuples of Structs of scalars, so never in a reference cycle: left out of
            # the cyclic collector, whose collections a first load would otherwise trigger more often
            gc=False, module=__name__)

    def validate(self, values: Sequence[dict[str, Any]]) -> list[Any] | None:
        """The page's records (Structs, same order), or None when any value of the page
        fails a rule or is not of its field's type: map the page record by record then."""
        if not values:
            return []
        texts: list[str] = []
        try:
            if not self.passes(values, texts):
                return None
        except (ArithmeticError, ValueError, TypeError):  # a rule refused a value (NaN compared, …)
            return None
        if UNSTORABLE_CHARACTER.search("".join(texts)) is not None:
            return None
        try:
            # every value is of its field's own type by now, so msgspec converts nothing (it
            # would read an int as a Decimal, ISO text as a date): it refuses missing and
            # unknown fields and builds the Structs, holding the very objects checked above
            return msgspec.convert(values, list[self.row], strict=True)  # type: ignore[name-defined]
        except msgspec.ValidationError:
            return None

    def passes(self, values: Sequence[dict[str, Any]], texts: list[str]) -> bool:
        """Whether every column of the page passes its rules (step 3 of the module docstring,
        text characters aside: the page's text is added to ``texts``); a value that cannot
        be compared may raise ArithmeticError, ValueError or TypeError instead."""
        if not values:
            return True  # no records (the lines of a page of orders without any)
        for column in self.columns:  # each column at C speed (dict.get: a TypeError on a non-dict)
            found = list(map(dict.get, values, repeat(column.name), repeat(_ABSENT)))
            if not _column_passes(column, found, texts):
                return False
        return True


def _column_passes(column: _Column, found: list[Any], texts: list[str]) -> bool:
    """Whether every value of a column passes the field's rules; its distinct text values
    are added to ``texts`` (checked for unstorable characters once a page). The rules are
    functions of the value alone. A value left out (``_ABSENT``) is msgspec's to judge:
    the default of an optional field, a refusal of a required one."""
    kinds = set(map(type, found))
    if kinds <= _EMPTY:
        return column.optional or kinds == {_ABSENT_TYPE}
    present = found
    if kinds & _EMPTY:
        if _NONE in kinds and not column.optional:
            return False
        present = [value for value in found if value is not None and value is not _ABSENT]
        kinds -= _EMPTY
    if column.nested is not None:
        # a tuple of records: every record's values (dicts) checked as one page of its model,
        # whose Structs msgspec builds with the page's; lists or tuples as pydantic takes them
        return kinds <= {list, tuple} and column.nested.passes([*chain.from_iterable(present)], texts)
    if kinds != {column.kind}:
        return False  # an int for a Decimal, text for a date, a str subclass, …: the model decides
    # text: checked once per distinct value (a page's source system, its currency: one);
    # numbers and times are mostly distinct and slower to hash than to check
    distinct: Collection[Any] = set(present) if column.kind is str else present
    if column.kind is str:
        if column.strip and not all(map(eq, distinct, map(str.strip, distinct))):
            return False
        lengths = set(map(len, distinct))
        if min(lengths) < column.min_chars or (column.max_chars is not None and max(lengths) > column.max_chars):
            return False
        texts.extend(distinct)
    if column.kind is Decimal and not all(map(Decimal.is_finite, distinct)):
        return False  # pydantic refuses NaN and infinities (before comparing: NaN raises there)
    if column.digits is not None and not _within(column.digits, distinct):
        return False
    if column.bounds:
        low, high = min(distinct), max(distinct)
        if not all(passes(low, bound) and passes(high, bound) for passes, bound in column.bounds):
            return False
    return all(all(map(eq, distinct, map(check, distinct))) for check in column.checks)


@dataclass(frozen=True)
class PagedMapping(Generic[R]):
    """A stream's mapping of one record that can also map a whole page at once.

    Called with one raw record it is ``one`` (the mapping, and the authority: its refusals
    name field and value). :meth:`page` reads every record's field values with ``fields``
    (the same readers ``one`` uses first) and validates them with ``schema`` in one go;
    None when any record needs ``one``. One object, so a stream that replaces its mapping
    replaces both (``StreamSpec.map_record``; the engine asks for ``page`` when present).
    """

    one: Callable[[Any], R]
    fields: Callable[[Any], dict[str, Any]]
    schema: PageSchema

    def __call__(self, raw: Any) -> R:
        return self.one(raw)

    def page(self, raws: Sequence[Any]) -> list[Any] | None:
        """The page's records (Structs of ``schema``, same order), or None."""
        try:
            values = list(map(self.fields, raws))
        except (ValueError, TypeError, KeyError, ArithmeticError, AttributeError):
            return None  # MappingError is a ValueError: ``one`` says what is wrong with which record
        return self.schema.validate(values)


def _within(digits: Digits, amounts: Collection[Decimal]) -> bool:
    """The :class:`Digits` rule over a column: within the bound, and equal to itself
    rounded to the scale (what the per-record check accepts without asking pydantic)."""
    bound = Decimal(10) ** (digits.precision - digits.scale)
    step = Decimal(1).scaleb(-digits.scale)
    return (-bound < min(amounts) and max(amounts) < bound
            and all(map(eq, amounts, map(Decimal.quantize, amounts, repeat(step)))))


__all__ = ["PageSchema", "PagedMapping"]
