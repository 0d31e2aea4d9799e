"""A page's records on their way in: readable, one per key, mapped or rejected. No I/O.

Before a record is looked up or mapped it must have

- the shape of a record (a JSON object) and no read error from its connector
  (:data:`canonical_model.records.UNREADABLE`, e.g. a query row that did not line up with
  the fields asked for);
- a key (``StreamSpec.key_field``): text or a whole number, not empty, at most as long as
  the external ids the hub keeps, without characters Postgres text cannot hold;
- a change stamp (``StreamSpec.cursor_field``), when it has one: text or a number, at most
  :data:`STAMP_MAX_CHARS` storable characters (it is stored as the row's ``source_cursor``).

A record that has not is rejected with its position and the reason (``record 17 of page 3:
key FBillNo is a list, expected text``); the rest of the page goes on. Whether a stamp is a
valid time is the mapping's business (only the connector knows its format).

**Twins** (one key twice in a page) resolve to one record before the unchanged check: the
latest modification wins (``modified_at`` of the mapped record; a known modification beats
an unknown one), ties go to the later position, and the others are counted *superseded*.
Deciding after the check would skip the twin equal to the stored version and write the
other one, on every sync: the stored value would flip back and forth.

**Mapping**: a ``MappingError`` or a pydantic ``ValidationError`` rejects the record with a
readable reason. Anything else is a bug in the mapping (:class:`hub.errors.MappingBugError`):
the run stops before the page is written, its message carries no record values.
"""

from __future__ import annotations

import datetime as dt
import math
import traceback
from collections import Counter
from collections.abc import Sequence
from itertools import repeat
from operator import itemgetter, methodcaller
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from canonical_model.records import UNREADABLE, CanonicalRecord, MappingError, RawRecord
from canonical_model.storable import UNSTORABLE_CHARACTER, character_problem, shown, string_fields
from hub.contracts import StreamSpec
from hub.engine.bulk import latest_per_key
from hub.engine.quarantine import Rejected, describe_error, visible
from hub.errors import MappingBugError

# What a mapping may raise for a bad record (see the module docstring).
MAPPING_FAILURES = (MappingError, ValidationError)

_KEY_FITS = string_fields(CanonicalRecord)["external_id"]
assert _KEY_FITS is not None and _KEY_FITS.limit is not None
KEY_MAX_CHARS: int = _KEY_FITS.limit  # a key becomes the record's external id
_KEY_COLUMN: str = _KEY_FITS.label
STAMP_MAX_CHARS = 64  # a change time, number or version; anything longer is not a stamp
_REF_SHOWN_CHARS = 60

# (position in the page from 1, raw record, key as text, content hash)
Entry = tuple[int, RawRecord, str, str]
_RAW, _KEY, _DIGEST = itemgetter(1), itemgetter(2), itemgetter(3)


def position(page_no: int | None, index: int) -> str:
    """``record 17 of page 3: `` (empty outside a page, e.g. a quarantine retry)."""
    return "" if page_no is None else f"record {index} of page {page_no}: "


def source_ref(raw: Any, key_field: str) -> str | None:
    """The quarantine reference of a raw record: its key as text, when it has a usable one."""
    key = raw.get(key_field) if isinstance(raw, dict) else None
    if isinstance(key, str) or (isinstance(key, int) and not isinstance(key, bool)):
        return str(key)
    return None


def readable(stream: StreamSpec[Any], records: Sequence[Any], hashes: Sequence[str],
             page_no: int | None) -> tuple[list[Entry], list[Rejected]]:
    """Split a page into records with a usable key and stamp, and rejections (with reasons)."""
    key_field, cursor_field = stream.key_field, stream.cursor_field
    keys = _plain_keys(records, key_field, cursor_field)
    if keys is not None:  # the common page: checked in a few passes at C speed
        return list(zip(range(1, len(records) + 1), records, keys, hashes, strict=True)), []
    entries: list[Entry] = []
    rejected: list[Rejected] = []
    for index, (raw, digest) in enumerate(zip(records, hashes, strict=True), 1):
        problem = _record_problem(raw, key_field, cursor_field)
        if problem is None:
            entries.append((index, raw, str(raw[key_field]), digest))
        else:
            rejected.append(Rejected(source_ref(raw, key_field), position(page_no, index) + problem, raw))
    return _storable(entries, rejected, key_field, cursor_field, page_no)


def _plain_keys(records: Sequence[Any], key_field: str, cursor_field: str | None) -> list[str] | None:
    """The page's keys when every record is a plain dict with a text key of a usable length
    and a text (or no) stamp of a usable length, all storable, and none is marked unreadable;
    else None (the page then takes the careful path, record by record).

    Built from ``map`` over C-level callables (no Python frame per record): the per-record
    loop this replaces cost a first load of 200,000 records 0.2 s of CPU.
    """
    if not records or set(map(type, records)) != {dict}:
        return None
    if any(map(dict.__contains__, records, repeat(UNREADABLE))):
        return None
    try:  # itemgetter: a fifth of the cost of methodcaller("get"); a record without a key fails it
        keys: list[Any] = list(map(itemgetter(key_field), records))
    except KeyError:
        return None
    if set(map(type, keys)) != {str}:
        return None
    lengths = list(map(len, keys))
    if min(lengths) == 0 or max(lengths) > KEY_MAX_CHARS:
        return None
    texts = "".join(keys)
    if cursor_field:
        try:
            stamps = list(map(itemgetter(cursor_field), records))
        except KeyError:  # a record without a stamp (allowed): the slower way to read them
            stamps = list(map(methodcaller("get", cursor_field), records))
        if not set(map(type, stamps)) <= {str, type(None)}:
            return None
        if max(map(len, filter(None, stamps)), default=0) > STAMP_MAX_CHARS:
            return None
        texts += "".join(filter(None, stamps))
    # ASCII text holds no surrogate: then a search for NUL (memchr) is the whole check
    if "\x00" in texts or (not texts.isascii() and UNSTORABLE_CHARACTER.search(texts) is not None):
        return None
    return keys


def _storable(entries: list[Entry], rejected: list[Rejected], key_field: str, cursor_field: str | None,
              page_no: int | None) -> tuple[list[Entry], list[Rejected]]:
    """Reject entries whose key or stamp holds a character Postgres text cannot."""
    kept: list[Entry] = []
    for entry in entries:
        index, raw, key, _ = entry
        stamp = raw.get(cursor_field) if cursor_field else None
        if (problem := character_problem(key)) is not None:
            rejected.append(Rejected(key, f"{position(page_no, index)}key {key_field} {problem}", raw))
        elif isinstance(stamp, str) and (problem := character_problem(stamp)) is not None:
            rejected.append(Rejected(key, f"{position(page_no, index)}change stamp {cursor_field} {problem}", raw))
        else:
            kept.append(entry)
    return kept, rejected


def _record_problem(raw: Any, key_field: str, cursor_field: str | None) -> str | None:
    if not isinstance(raw, dict):
        return f"not a record (a JSON object) but {shown(raw)}"
    if UNREADABLE in raw:
        return str(raw[UNREADABLE])
    key = raw.get(key_field)
    if key is None:
        return f"key {key_field} is missing; every record needs one to be stored"
    if isinstance(key, bool) or not isinstance(key, str | int):
        return f"key {key_field} is {shown(key)}, expected text"
    if isinstance(key, int) and key.bit_length() > 128:  # str() refuses past 4300 digits: no text form
        return f"key {key_field} is {shown(key)}, far longer than any key the hub keeps"
    text = str(key)
    if not text.strip():
        return f"key {key_field} is empty"
    if len(text) > KEY_MAX_CHARS:
        return (f"key {key_field} is {len(text)} characters long; the hub keeps keys of at most "
                f"{KEY_MAX_CHARS} ({_KEY_COLUMN})")
    return _stamp_problem(raw.get(cursor_field), cursor_field) if cursor_field else None


def _stamp_problem(stamp: Any, cursor_field: str) -> str | None:
    if stamp is None:
        return None
    if isinstance(stamp, bool) or not isinstance(stamp, str | int | float):
        return f"change stamp {cursor_field} is {shown(stamp)}, expected a time (text) or a number"
    if isinstance(stamp, float) and not math.isfinite(stamp):
        return f"change stamp {cursor_field} is {shown(stamp)}, not a finite number"
    if isinstance(stamp, int) and stamp.bit_length() > 128:  # str() refuses past 4300 digits
        return f"change stamp {cursor_field} is {shown(stamp)}, far larger than any change time or number"
    text = str(stamp)
    if len(text) > STAMP_MAX_CHARS:
        return (f"change stamp {cursor_field} is {len(text)} characters long; a change time or number has "
                f"at most {STAMP_MAX_CHARS}")
    return None


MapResult = CanonicalRecord | Rejected


def one_per_key(stream: StreamSpec[Any], entries: list[Entry],
                page_no: int | None) -> tuple[list[Entry], int, dict[int, MapResult]]:
    """Resolve twins (see the module docstring). Returns the entries kept, how many were
    superseded, and the mapping results of the twins that won (by position), so they are
    not mapped twice."""
    keys = list(map(_KEY, entries))
    if len(set(keys)) == len(keys):
        return entries, 0, {}
    counts = Counter(keys)
    twins = [entry for entry in entries if counts[entry[2]] > 1]
    results = {entry[0]: map_entry(stream, entry, page_no) for entry in twins}

    def modified(entry: Entry) -> dt.datetime | None:
        result = results[entry[0]]
        return result.modified_at if isinstance(result, CanonicalRecord) else None

    winners, superseded = latest_per_key(twins, key=lambda entry: entry[2], modified=modified)
    won = {entry[0] for entry in winners}
    kept = [entry for entry in entries if counts[entry[2]] == 1 or entry[0] in won]
    return kept, superseded, {index: results[index] for index in won}


def map_entry(stream: StreamSpec[Any], entry: Entry, page_no: int | None) -> MapResult:
    """The canonical record of one entry, or its rejection; a mapping bug raises."""
    index, raw, key, _ = entry
    try:
        record = stream.map_record(raw)
    except MAPPING_FAILURES as exc:
        return Rejected(key, position(page_no, index) + describe_error(exc), raw)
    except Exception as exc:
        raise mapping_bug(stream, key, page_no, index, exc) from None
    if not isinstance(record, CanonicalRecord):
        raise mapping_bug(stream, key, page_no, index, TypeError(f"returned {type(record).__name__}"))
    return record


def map_entries(stream: StreamSpec[Any], entries: list[Entry], page_no: int | None,
                premapped: dict[int, MapResult]) -> tuple[list[tuple[RawRecord, CanonicalRecord, str]],
                                                           list[Rejected]]:
    """Map the entries (reusing ``premapped`` results); split records from rejections.

    A stream whose mapping can map a page (:class:`canonical_model.pages.PagedMapping`)
    maps a page without twins in one call when every record of it maps and validates that way; otherwise, and for
    records the page mapping cannot take, the page is mapped record by record, which
    names what is wrong with each bad record.
    """
    map_page = getattr(stream.map_record, "page", None)  # canonical_model.pages.PagedMapping
    if map_page is not None and entries and not premapped:
        raws = list(map(_RAW, entries))
        records = map_page(raws)
        if records is not None:
            return list(zip(raws, records, map(_DIGEST, entries), strict=True)), []
    mapped: list[tuple[RawRecord, CanonicalRecord, str]] = []
    rejected: list[Rejected] = []
    map_record = stream.map_record
    for index, raw, key, digest in entries:
        if premapped and index in premapped:
            result = premapped[index]
            if isinstance(result, Rejected):
                rejected.append(result)
            else:
                mapped.append((raw, result, digest))
            continue
        # map_entry inlined: this loop runs once per changed record (a mapping that returns
        # something else than a record fails in its target handler, as loudly)
        try:
            mapped.append((raw, map_record(raw), digest))
        except MAPPING_FAILURES as exc:
            rejected.append(Rejected(key, position(page_no, index) + describe_error(exc), raw))
        except Exception as exc:
            raise mapping_bug(stream, key, page_no, index, exc) from None
    return mapped, rejected


def mapping_bug(stream: StreamSpec[Any], key: str, page_no: int | None, index: int,
                exc: BaseException) -> MappingBugError:
    """The error a mapping bug stops the run with: where, which record (by reference),
    which exception raised where; never the exception's text, which may quote values."""
    frames = traceback.extract_tb(exc.__traceback__)[-2:] if exc.__traceback__ else []
    raised = " ← ".join(f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in reversed(frames)) or "?"
    ref = visible(key if len(key) <= _REF_SHOWN_CHARS else key[:_REF_SHOWN_CHARS] + "…")
    where = position(page_no, index).removesuffix(": ") or "a quarantined record"
    return MappingBugError(
        f"{stream.name}: the mapping raised {type(exc).__name__} ({raised}) on {where} "
        f"({stream.key_field} {ref!r}): a bug in the mapping, not bad data; nothing of that page was written"
    )


__all__ = [
    "KEY_MAX_CHARS",
    "MAPPING_FAILURES",
    "STAMP_MAX_CHARS",
    "Entry",
    "map_entries",
    "map_entry",
    "mapping_bug",
    "one_per_key",
    "position",
    "readable",
    "source_ref",
]
