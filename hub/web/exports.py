"""Tables as files to download: CSV that Excel opens correctly, and XLSX (openpyxl).

CSV is UTF-8 with a byte-order mark (without it Excel on Windows reads UTF-8 as the local
code page and Chinese names turn into mojibake). Both formats neutralise spreadsheet
formula injection (OWASP "CSV Injection"): a text cell starting with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return gets a leading ``'``, so a customer named
``=HYPERLINK(…)`` is shown as text, never evaluated. Numbers stay numbers.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV_BOM = "\ufeff"


def neutral(value: Any) -> Any:
    """``value`` safe for a spreadsheet cell: a formula-like text gets a leading ``'``."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float | Decimal):
        return value
    return neutral(str(value))


def csv_bytes(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    """The table as CSV: UTF-8 with BOM, CRLF line ends, formulas neutralised."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([_cell(h) for h in header])
    writer.writerows([[_cell(v) for v in row] for row in rows])
    return (CSV_BOM + out.getvalue()).encode("utf-8")


def xlsx_bytes(sheets: Sequence[tuple[str, Sequence[str], Sequence[Sequence[Any]]]]) -> bytes:
    """A workbook with one sheet per (title, header, rows); texts never become formulas."""
    from openpyxl import Workbook

    book = Workbook()
    book.remove(book.active)
    for title, header, rows in sheets:
        sheet = book.create_sheet(title=title[:31])  # Excel's limit on sheet names
        sheet.append([_cell(h) for h in header])
        for row in rows:
            sheet.append([_cell(v) for v in row])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


__all__ = ["CSV_BOM", "FORMULA_STARTS", "csv_bytes", "neutral", "xlsx_bytes"]
