"""When the database still refuses a page: find the records it refuses, keep the rest.

Validation (``canonical_model.storable``) refuses what the columns cannot hold, but a value
can still fail in the database: one derived while writing (a normalized name that grew
under NFKC), a constraint that depends on rows already stored (a unique directory id held
by another user). Without isolation that one record rolls back its page on every sync, and
the stream is stuck until someone edits the source.

So a target handler runs inside a savepoint; when the database refuses the data (the
psycopg ``DataError``/``IntegrityError`` family, and text UTF-8 cannot encode), the page is
split in halves and each half retried in its own savepoint, down to single records, which
are rejected with what refused them, in words: the SQLSTATE's meaning, the constraint or
column, never the row (Postgres' DETAIL and CONTEXT lines quote values, so they are left
out). Anything else, a lost connection included, is not the data's fault and fails the run.
A page of n records with k refused costs about 2·k·log2(n) extra savepoints; a clean page
costs one, or none when written ``optimistic``: the sync's writer first writes a page with no
savepoint (two round trips fewer a page, each one a wait for the GIL while the next page is
mapped), and only when the database refuses something rolls the page's transaction back and
writes it again here, isolated (``hub.engine.sync.PageCommitter``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import fields, replace
from typing import Any

import psycopg
import sqlalchemy as sa

from hub.engine.quarantine import Rejected
from hub.engine.targets import Mapped, PageContext, TargetOutcome

DATA_ERRORS: tuple[type[BaseException], ...] = (
    sa.exc.DataError, sa.exc.IntegrityError, psycopg.DataError, psycopg.IntegrityError, UnicodeEncodeError,
)

# SQLSTATE → what it means for the record, in words (Postgres appendix A).
_MEANING = {
    "22001": "a text is longer than its column allows",
    "22003": "a number is too large for its column",
    "22007": "a date or time is not valid",
    "22008": "a date or time is out of range",
    "22021": "a text holds bytes that are not valid UTF-8",
    "22P02": "a value is not of its column's type",
    "22P05": "a text holds a character the database cannot store",
    "23502": "a required value is missing",
    "23503": "it refers to a row that does not exist",
    "23505": "another row already holds one of its unique values",
    "23514": "it breaks a check rule of the table",
}
_COPY_COLUMN = re.compile(r"^COPY (\S+), line \d+, column ([^\s:]+)")  # text COPY adds ": value", binary not
_QUOTED_VALUE = re.compile(r':\s*".*$', re.DOTALL)

Handler = Callable[[PageContext, Sequence[Mapped]], TargetOutcome]


def write_isolated(ctx: PageContext, handler: Handler, mapped: Sequence[Mapped], target: str, *,
                   raced: bool = False, optimistic: bool = False) -> TargetOutcome:
    """``handler(ctx, mapped)`` in a savepoint; records the database refuses are isolated
    by halving and returned as rejections, everything else is written.

    A unique violation is first taken for a race, once (``raced``): another writer stored
    one of the page's keys, or a golden customer with one of its credit codes (two ERPs'
    customer syncs at once), after the page looked them up and before it wrote. The insert
    waited for that writer's commit, so the handler run again sees the row, merges with it
    or links to it, and nothing is quarantined for having lost a race. A violation that
    comes back is the data's own and is isolated as any other refusal.

    ``optimistic``: no savepoint and no isolation; a refusal is raised, and the caller rolls
    the page's transaction back and writes the page again without ``optimistic`` (the
    all-new fast path is guarded by that retry, as by the savepoint)."""
    if not mapped:
        return handler(ctx, mapped)
    if ctx.all_new and not ctx.guarded:
        ctx = replace(ctx, guarded=True)
    if optimistic:
        return handler(ctx, mapped)
    try:
        with ctx.conn.begin_nested():
            return handler(ctx, mapped)
    except DATA_ERRORS as exc:
        if not raced and _sqlstate(exc) == UNIQUE_VIOLATION:
            # looked up, then stored by someone else: look up again (and, if it was taken for
            # all new, leave the COPY-only fast path for the merge with ON CONFLICT)
            return write_isolated(replace(ctx, all_new=False, guarded=False), handler, mapped, target, raced=True)
        if len(mapped) == 1:
            raw, record, _ = mapped[0]
            return TargetOutcome(rejected=[Rejected(record.external_id, refusal(exc, target), raw)])
    half = len(mapped) // 2
    return combined(write_isolated(ctx, handler, mapped[:half], target, raced=raced),
                    write_isolated(ctx, handler, mapped[half:], target, raced=raced))


UNIQUE_VIOLATION = "23505"


def _sqlstate(exc: BaseException) -> str | None:
    error: Any = getattr(exc, "orig", None) or exc
    return getattr(getattr(error, "diag", None), "sqlstate", None) or getattr(error, "sqlstate", None)


def combined(first: TargetOutcome, second: TargetOutcome) -> TargetOutcome:
    """Counts and rejections of two outcomes added up."""
    return TargetOutcome(**{
        f.name: getattr(first, f.name) + getattr(second, f.name) for f in fields(TargetOutcome)
    })


def refusal(exc: BaseException, target: str) -> str:
    """Why the database refused one record, in words and without its values."""
    if isinstance(exc, UnicodeEncodeError):
        return (f"the database refused this {target} record: a value holds a character UTF-8 cannot encode "
                f"(U+{ord(exc.object[exc.start]):04X}, a lone surrogate); fix it at the source")
    error: Any = getattr(exc, "orig", None) or exc
    diag = getattr(error, "diag", None)
    state = getattr(diag, "sqlstate", None) or getattr(error, "sqlstate", None)
    primary = getattr(diag, "message_primary", None) or (str(error).splitlines() or [""])[0]
    primary = _QUOTED_VALUE.sub("", primary)  # "invalid input syntax for type date: "<value>""
    details = [primary]
    if (constraint := getattr(diag, "constraint_name", None)) is not None:
        details.append(f"constraint {constraint}")
    copy = _COPY_COLUMN.match(getattr(diag, "context", None) or "")
    if copy is not None:
        details.append(f"column {copy.group(1)}.{copy.group(2)}")
    elif (column := getattr(diag, "column_name", None)) is not None:
        details.append(f"column {column}")
    meaning = _MEANING.get(state or "", "the database refused a value")
    code = f", SQLSTATE {state}" if state else ""
    return (f"the database refused this {target} record: {meaning} ({'; '.join(details)}{code}); "
            "it was set aside so the rest of its page could be stored")


__all__ = ["DATA_ERRORS", "combined", "refusal", "write_isolated"]
