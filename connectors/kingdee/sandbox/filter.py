"""A small real parser for the subset of K/3 Cloud ``FilterString`` and ``OrderString`` we emulate.

``FilterString`` is SQL-like text over field keys (reference ``erp-apis.md`` §1.4 [COMM]; the
server pastes it into a SQL ``WHERE`` clause). Grammar accepted here, keywords
case-insensitive::

    expr       := or_expr
    or_expr    := and_expr ( OR and_expr )*
    and_expr   := not_expr ( AND not_expr )*
    not_expr   := NOT not_expr | primary
    primary    := "(" expr ")" | predicate
    predicate  := field cmp_op literal
                | field [NOT] IN "(" literal ( "," literal )* ")"
                | field [NOT] LIKE string
                | field IS [NOT] NULL
    cmp_op     := "=" | "<>" | "!=" | ">" | ">=" | "<" | "<="
    literal    := string | number
    string     := [N] "'" ( any char but "'" | "''" )* "'"
    field      := letter ( letter | digit | "_" | "." )*

Dates are quoted strings (``'2024-05-01 00:00:00'``); they become datetimes only when
compiled against a date field, as SQL Server converts them. The parser builds an AST;
:func:`compile_filter` turns it into a predicate given a resolver from field key to a typed
getter, so that the parser knows nothing about forms.

Text comparison is case-insensitive because Kingdee runs on SQL Server with a
case-insensitive collation by default (``Chinese_PRC_CI_AS``) [guess: collation is per
installation].
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

FieldKind = Literal["text", "datetime", "decimal", "int", "bool"]


class FilterSyntaxError(ValueError):
    """The filter or order text is not valid; the message points at the position."""


class FilterTypeError(ValueError):
    """A literal cannot be converted to the type of the field it is compared with."""


# ---------------------------------------------------------------------------------------------
# Tokens

@dataclass(frozen=True)
class Token:
    """One lexical token: kind is one of ident, string, number, op, lparen, rparen, comma, end."""

    kind: str
    value: str
    pos: int


_KEYWORDS = frozenset({"and", "or", "not", "in", "like", "is", "null"})
_TWO_CHAR_OPS = ("<>", "!=", ">=", "<=")
_ONE_CHAR_OPS = ("=", ">", "<")


def tokenize(text: str) -> list[Token]:
    """Split filter text into tokens; raises :class:`FilterSyntaxError` on a stray character."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch == "(":
            tokens.append(Token("lparen", ch, i))
            i += 1
            continue
        if ch == ")":
            tokens.append(Token("rparen", ch, i))
            i += 1
            continue
        if ch == ",":
            tokens.append(Token("comma", ch, i))
            i += 1
            continue
        if text.startswith(_TWO_CHAR_OPS, i):
            tokens.append(Token("op", text[i:i + 2], i))
            i += 2
            continue
        if ch in _ONE_CHAR_OPS:
            tokens.append(Token("op", ch, i))
            i += 1
            continue
        # N'...' is SQL Server's unicode string prefix; people paste it into filters.
        if ch in "nN" and i + 1 < n and text[i + 1] == "'":
            i += 1
            ch = "'"
        if ch == "'":
            start = i
            i += 1
            chars: list[str] = []
            while True:
                if i >= n:
                    raise FilterSyntaxError(f"unterminated string starting at position {start}")
                if text[i] == "'":
                    if i + 1 < n and text[i + 1] == "'":  # '' is an escaped quote
                        chars.append("'")
                        i += 2
                        continue
                    i += 1
                    break
                chars.append(text[i])
                i += 1
            tokens.append(Token("string", "".join(chars), start))
            continue
        if ch.isdigit() or (ch == "-" and i + 1 < n and text[i + 1].isdigit()):
            start = i
            i += 1
            while i < n and (text[i].isdigit() or text[i] == "."):
                i += 1
            tokens.append(Token("number", text[start:i], start))
            continue
        if ch.isalpha() or ch == "_":
            start = i
            while i < n and (text[i].isalnum() or text[i] in "_."):
                i += 1
            word = text[start:i]
            kind = "keyword" if word.lower() in _KEYWORDS else "ident"
            tokens.append(Token(kind, word.lower() if kind == "keyword" else word, start))
            continue
        raise FilterSyntaxError(f"unexpected character {ch!r} at position {i}")
    tokens.append(Token("end", "", n))
    return tokens


# ---------------------------------------------------------------------------------------------
# AST

Literal_ = str | Decimal  # strings stay text until compiled against a field type


@dataclass(frozen=True)
class Compare:
    """``field op literal``."""

    field: str
    op: str
    value: Literal_


@dataclass(frozen=True)
class InList:
    """``field [NOT] IN (v1, v2, ...)``."""

    field: str
    values: tuple[Literal_, ...]
    negated: bool = False


@dataclass(frozen=True)
class Like:
    """``field [NOT] LIKE 'pattern'`` with SQL ``%`` and ``_`` wildcards."""

    field: str
    pattern: str
    negated: bool = False


@dataclass(frozen=True)
class IsNull:
    """``field IS [NOT] NULL``."""

    field: str
    negated: bool = False


@dataclass(frozen=True)
class And:
    """Conjunction of two or more nodes."""

    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    """Disjunction of two or more nodes."""

    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    """Negation."""

    item: Node


Node = Compare | InList | Like | IsNull | And | Or | Not


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.pos = 0

    def peek(self) -> Token:
        return self.tokens[self.pos]

    def take(self) -> Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def accept_keyword(self, word: str) -> bool:
        token = self.peek()
        if token.kind == "keyword" and token.value == word:
            self.pos += 1
            return True
        return False

    def expect(self, kind: str, what: str) -> Token:
        token = self.take()
        if token.kind != kind:
            found = token.value or "end of filter"
            raise FilterSyntaxError(f"expected {what} at position {token.pos}, found {found!r}")
        return token

    def parse(self) -> Node:
        node = self.or_expr()
        token = self.peek()
        if token.kind != "end":
            raise FilterSyntaxError(f"unexpected {token.value!r} at position {token.pos}")
        return node

    def or_expr(self) -> Node:
        items = [self.and_expr()]
        while self.accept_keyword("or"):
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_expr(self) -> Node:
        items = [self.not_expr()]
        while self.accept_keyword("and"):
            items.append(self.not_expr())
        return items[0] if len(items) == 1 else And(tuple(items))

    def not_expr(self) -> Node:
        if self.accept_keyword("not"):
            return Not(self.not_expr())
        return self.primary()

    def primary(self) -> Node:
        token = self.peek()
        if token.kind == "lparen":
            self.take()
            node = self.or_expr()
            self.expect("rparen", "')'")
            return node
        return self.predicate()

    def literal(self) -> Literal_:
        token = self.take()
        if token.kind == "string":
            return token.value
        if token.kind == "number":
            try:
                return Decimal(token.value)
            except InvalidOperation as exc:
                raise FilterSyntaxError(f"bad number {token.value!r} at position {token.pos}") from exc
        found = token.value or "end of filter"
        raise FilterSyntaxError(f"expected a value at position {token.pos}, found {found!r}")

    def predicate(self) -> Node:
        field = self.expect("ident", "a field key").value
        token = self.peek()
        if token.kind == "op":
            self.take()
            op = "<>" if token.value == "!=" else token.value
            return Compare(field, op, self.literal())
        negated = self.accept_keyword("not")
        if self.accept_keyword("in"):
            self.expect("lparen", "'(' after IN")
            values = [self.literal()]
            while self.peek().kind == "comma":
                self.take()
                values.append(self.literal())
            self.expect("rparen", "')' closing the IN list")
            return InList(field, tuple(values), negated)
        if self.accept_keyword("like"):
            pattern = self.expect("string", "a quoted LIKE pattern").value
            return Like(field, pattern, negated)
        if not negated and self.accept_keyword("is"):
            is_not = self.accept_keyword("not")
            if not self.accept_keyword("null"):
                raise FilterSyntaxError(f"expected NULL at position {self.peek().pos}")
            return IsNull(field, is_not)
        found = token.value or "end of filter"
        raise FilterSyntaxError(f"expected an operator after {field} at position {token.pos}, found {found!r}")


def parse_filter(text: str) -> Node | None:
    """Parse a FilterString; empty or blank text means "no filter" and returns None."""
    if not text or not text.strip():
        return None
    return _Parser(text).parse()


def referenced_fields(node: Node | None) -> list[str]:
    """Field keys a filter mentions, in order of appearance (the server must know them all)."""
    if node is None:
        return []
    if isinstance(node, And | Or):
        out: list[str] = []
        for item in node.items:
            out.extend(referenced_fields(item))
        return out
    if isinstance(node, Not):
        return referenced_fields(node.item)
    return [node.field]


# ---------------------------------------------------------------------------------------------
# Compilation against typed fields

Row = Any
Getter = Callable[[Row], Any]
Predicate = Callable[[Row], bool]
Resolver = Callable[[str], tuple[Getter, FieldKind]]

_DATETIME_FORMATS = (
    "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M", "%Y-%m-%d", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d",
)


def parse_datetime_literal(text: str) -> dt.datetime:
    """Convert a quoted date literal the way SQL Server would accept it (common formats only)."""
    value = text.strip()
    for fmt in _DATETIME_FORMATS:
        try:
            return dt.datetime.strptime(value, fmt)
        except ValueError:
            continue
    # SQL Server's own message for this case, so that tests read like the real thing.
    raise FilterTypeError(f"从字符串转换日期和/或时间时，转换失败。('{text}')")


def coerce_literal(value: Literal_, kind: FieldKind) -> Any:
    """Convert a literal to the comparison domain of a field kind (as SQL Server would)."""
    if kind == "datetime":
        if isinstance(value, Decimal):
            raise FilterTypeError(f"cannot compare a date field with the number {value}")
        return parse_datetime_literal(value)
    if kind in ("decimal", "int"):
        if isinstance(value, Decimal):
            return value
        try:
            return Decimal(value.strip())
        except InvalidOperation as exc:
            raise FilterTypeError(f"在将 varchar 值 '{value}' 转换成数据类型 numeric 时失败。") from exc
    if kind == "bool":
        text = str(value).strip().lower()
        return text in ("1", "true")
    return str(value).casefold()


def _normalise(raw: Any, kind: FieldKind) -> Any:
    """Bring a stored value into the comparison domain of its kind (None stays None)."""
    if raw is None:
        return None
    if kind == "text":
        return str(raw).casefold()
    if kind in ("decimal", "int"):
        return raw if isinstance(raw, Decimal) else Decimal(raw)
    return raw


_COMPARATORS: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b,
    "<>": lambda a, b: a != b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}


def like_to_regex(pattern: str) -> re.Pattern[str]:
    """Translate a SQL LIKE pattern (``%``, ``_``, ``[...]`` sets) into an anchored regex."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "%":
            out.append(".*")
        elif ch == "_":
            out.append(".")
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(ch))
            else:
                body = pattern[i + 1:end]
                body = "^" + re.escape(body[1:]) if body.startswith("^") else re.escape(body)
                out.append(f"[{body}]")
                i = end
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out), re.DOTALL | re.IGNORECASE)


def compile_filter(node: Node | None, resolve: Resolver) -> Predicate:
    """Turn an AST into a row predicate; ``resolve`` maps a field key to (getter, kind).

    Semantics follow SQL: a comparison with NULL is false, and so is NOT of it (the
    three-valued-logic case worth getting right for ``<>``). NOT over a compound expression
    is plain negation — exact three-valued logic there is more than the sandbox needs.
    """
    if node is None:
        return lambda row: True
    return _compile(node, resolve)


def _compile(node: Node, resolve: Resolver) -> Predicate:
    if isinstance(node, And):
        parts = [_compile(item, resolve) for item in node.items]
        return lambda row: all(p(row) for p in parts)
    if isinstance(node, Or):
        parts = [_compile(item, resolve) for item in node.items]
        return lambda row: any(p(row) for p in parts)
    if isinstance(node, Not):
        inner = _compile(node.item, resolve)
        nullable = _null_guard(node.item, resolve)
        return lambda row: not nullable(row) and not inner(row)
    getter, kind = resolve(node.field)
    if isinstance(node, Compare):
        target = coerce_literal(node.value, kind)
        compare = _COMPARATORS[node.op]

        def compare_pred(row: Row) -> bool:
            value = _normalise(getter(row), kind)
            return value is not None and compare(value, target)

        return compare_pred
    if isinstance(node, InList):
        targets = frozenset(coerce_literal(v, kind) for v in node.values)
        negated = node.negated

        def in_pred(row: Row) -> bool:
            value = _normalise(getter(row), kind)
            if value is None:
                return False
            return (value in targets) != negated

        return in_pred
    if isinstance(node, Like):
        regex = like_to_regex(node.pattern)
        negated_like = node.negated

        def like_pred(row: Row) -> bool:
            value = getter(row)
            if value is None:
                return False
            return bool(regex.fullmatch(str(value))) != negated_like

        return like_pred
    negated_null = node.negated
    return lambda row: (getter(row) is None) != negated_null


def _null_guard(node: Node, resolve: Resolver) -> Predicate:
    """True when a simple predicate's field is NULL (then NOT of it is unknown, i.e. false)."""
    if isinstance(node, Compare | InList | Like):
        getter, _ = resolve(node.field)
        return lambda row: getter(row) is None
    return lambda row: False


# ---------------------------------------------------------------------------------------------
# OrderString

@dataclass(frozen=True)
class OrderItem:
    """One ``key [ASC|DESC]`` item of an OrderString."""

    field: str
    descending: bool = False


_ORDER_ITEM = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(asc|desc)?\s*$", re.IGNORECASE)


def parse_order(text: str) -> list[OrderItem]:
    """Parse ``"FModifyDate ASC,FCUSTID DESC"``; blank text means no explicit order."""
    if not text or not text.strip():
        return []
    items: list[OrderItem] = []
    for part in text.split(","):
        match = _ORDER_ITEM.match(part)
        if not match:
            raise FilterSyntaxError(f"bad OrderString item {part.strip()!r}")
        items.append(OrderItem(match.group(1), (match.group(2) or "asc").lower() == "desc"))
    return items


__all__ = [
    "And",
    "Compare",
    "FilterSyntaxError",
    "FilterTypeError",
    "InList",
    "IsNull",
    "Like",
    "Node",
    "Not",
    "Or",
    "OrderItem",
    "coerce_literal",
    "compile_filter",
    "like_to_regex",
    "parse_datetime_literal",
    "parse_filter",
    "parse_order",
    "referenced_fields",
    "tokenize",
]
