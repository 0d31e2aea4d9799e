"""Tables that fit the terminal without cutting what matters.

Rich shortens cells with "…" when a table is wider than the terminal. Identifiers
(stream names, bill numbers, idempotency keys) and amounts must never be cut, so each
column says what it holds:

- ``key`` and ``amount`` columns never wrap and are never shortened;
- ``text`` columns (reasons, error messages) wrap;
- ``extra`` columns are dropped, right to left, when the table would not fit.

When even the ``key`` and ``amount`` columns alone are wider than the terminal, the rows
are printed one block each (``header  value`` lines, never cropped) instead of as a table.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rich import box
from rich.cells import cell_len
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

Kind = Literal["key", "amount", "text", "extra"]
_TEXT_MIN = 12  # a wrapping column narrower than this reads badly


@dataclass(frozen=True)
class Column:
    """One column: its header and what it holds (module docstring)."""

    header: str
    kind: Kind = "key"


def _natural(header: str, cells: Sequence[str]) -> int:
    return max([cell_len(header), *(max((cell_len(line) for line in c.splitlines()), default=0) for c in cells)])


def fit(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int, *,
        title: str | None = None) -> RenderableType:
    """``rows`` as a table that fits ``width`` columns of terminal (module docstring)."""
    shown = list(range(len(columns)))
    natural = [_natural(c.header, [r[i] for r in rows]) for i, c in enumerate(columns)]
    while True:
        table = _table(columns, rows, shown, natural, title, text_width=_TEXT_MIN)
        if _rendered_width(table, width) <= width:
            return _table(columns, rows, shown, natural, title,
                          text_width=_TEXT_MIN + width - _rendered_width(table, width))
        extras = [i for i in shown if columns[i].kind == "extra"]
        if not extras:
            return _blocks(columns, rows, title)
        shown.remove(max(extras))


def _table(columns: Sequence[Column], rows: Sequence[Sequence[str]], shown: list[int], natural: list[int],
           title: str | None, *, text_width: int) -> Table:
    texts = [i for i in shown if columns[i].kind == "text"]
    share = max(_TEXT_MIN, text_width // max(len(texts), 1)) if texts else 0
    table = Table(box=box.SIMPLE_HEAD, title=title, title_justify="left", pad_edge=False)
    for i in shown:
        column = columns[i]
        if column.kind == "text":
            table.add_column(column.header, overflow="fold", min_width=min(natural[i], _TEXT_MIN),
                             max_width=min(natural[i], share))
        else:
            table.add_column(column.header, no_wrap=True, min_width=natural[i],
                             justify="right" if column.kind == "amount" else "left")
    for row in rows:
        table.add_row(*(Text(row[i]) for i in shown))
    return table


def _rendered_width(table: Table, width: int) -> int:
    # what rich actually draws (its padding and box edges included), on a console wider
    # than needed so nothing is squeezed
    console = Console(width=max(width * 4, 400), file=io.StringIO())
    lines = console.render_lines(table, console.options, pad=False)
    return max((sum(cell_len(segment.text) for segment in line) for line in lines), default=0)


def _blocks(columns: Sequence[Column], rows: Sequence[Sequence[str]], title: str | None) -> RenderableType:
    # one "header: value" line per cell, never cropped: the terminal wraps a long value
    # and the value stays whole in the output (a copy-paste, a grep)
    parts: list[RenderableType] = [Text(title, style="bold")] if title else []
    width = max(cell_len(c.header) for c in columns)
    for row in rows:
        for column, value in zip(columns, row, strict=True):
            parts.append(Text(f"{column.header.ljust(width)}  {value}", no_wrap=True, overflow="ignore"))
        parts.append(Text(""))
    return Group(*parts)


def print_table(console: Console, columns: Sequence[Column], rows: Sequence[Sequence[str]], *,
                title: str | None = None) -> None:
    """Print ``rows`` fitted to ``console``'s width."""
    console.print(fit(columns, rows, console.size.width, title=title), crop=False)


def money(value: object) -> str:
    """An amount with thousands separators and cents (— when absent)."""
    if value is None:
        return "—"
    return f"{value:,.2f}"
