"""Set-based upsert through a staging table: COPY in, one INSERT … ON CONFLICT out.

Per page the engine stages rows with ``COPY`` into a temporary table that is dropped
at commit, then merges them with::

    INSERT INTO target (…) SELECT … FROM stage
    ON CONFLICT (key) DO UPDATE SET … WHERE target.content_hash IS DISTINCT FROM EXCLUDED.content_hash
    RETURNING id, (xmax = 0) AS inserted

so an unchanged record costs no write, and the RETURNING rows tell inserted from
updated; staged minus returned is "unchanged".
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import pickle
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any, TypeVar

import msgspec
import psycopg
import sqlalchemy as sa
import xxhash
from psycopg import Connection as PgConnection
from psycopg import sql
from psycopg.types.json import Jsonb
from sqlalchemy.engine import Connection

from hub.engine.binary_copy import binary_types

T = TypeVar("T")


def driver_connection(conn: Connection) -> PgConnection[Any]:
    """The psycopg connection under a SQLAlchemy connection (same transaction)."""
    raw = conn.connection.driver_connection
    assert raw is not None
    return raw


def each_key(table: str, match: str, keys: str = ":keys") -> str:
    """A FROM clause joining every key of a page to the rows of ``table`` that ``match`` it.

    ``match`` is a condition on ``t`` (the table) and ``k.key``; the keys come from one
    JSON text parameter, ``:keys`` (see :func:`page_keys`; ``keys`` names the placeholder,
    ``%(keys)s`` for :func:`fetch_pairs`)::

        SELECT k.key, t.content_hash FROM {each_key("receivable", "t.external_id = k.key")}

    Why not ``col = ANY(:list)`` or a plain join (measured, 2,000-5,000 keys a page):
    psycopg adapts a Python list element by element (~10 ms a page); and during a first
    load the planner has no statistics yet, believes the table tiny, and answers both forms
    by reading every row of the source system, per page: 20 ms at 25k rows, 103 ms at 200k,
    quadratic over the load (``= ANY`` as a filter compared 2,000 customers with 2,000 refs,
    60 ms). ``LATERAL … OFFSET 0`` (the fence keeps the planner from flattening it) makes it
    one index probe per key, whatever the statistics say.
    """
    return (f"jsonb_array_elements_text(CAST({keys} AS jsonb)) AS k(key) "
            f"CROSS JOIN LATERAL (SELECT * FROM {table} t WHERE {match} OFFSET 0) AS t")


def key_range(column: str, keys: str = "%(keys)s") -> str:
    """A condition: ``column`` lies between the lowest and the highest of the page's keys
    (the JSON text parameter of :func:`each_key`), both computed by the database.

    The database orders them, in the column's collation, so every stored row whose key
    equals one of the page's keys is inside the range: a range scan over the unique index,
    filtered to the page's keys, answers exactly what one probe per key answers. When keys
    arrive in order (bill numbers counting up, customers of a numbered range) that is one
    walk along the index instead of thousands of descents (see :func:`fetch_in_key_range`).
    """
    elements = f"jsonb_array_elements_text(CAST({keys} AS jsonb)) AS k(key)"
    return f"{column} BETWEEN (SELECT min(key) FROM {elements}) AND (SELECT max(key) FROM {elements})"


def fetch_in_key_range(conn: Connection, query: str, params: dict[str, Any],
                       keys: Sequence[str]) -> dict[Any, Any] | None:
    """The (key, value) rows of ``query`` (a two-column query whose condition includes
    :func:`key_range`, with ``%(keys)s`` and ``%(limit)s`` placeholders) for ``keys``;
    None when the range holds more than twice as many rows as there are keys (keys spread
    over a large table: the caller then probes key by key, see :func:`each_key`).

    Measured on a first load of 200,000 receivables (pages of 5,000, keys in order): the
    page's keys are past every stored one, the range is empty, and the lookup costs one
    index descent instead of 5,000.
    """
    wanted = set(keys)
    limit = 2 * len(wanted)
    rows = fetch_pairs(conn, query, {**params, "keys": page_keys(wanted), "limit": limit + 1})
    if len(rows) > limit:
        return None
    return {key: value for key, value in rows if key in wanted}


def page_keys(keys: Iterable[str]) -> str:
    """The ``:keys`` parameter of :func:`each_key`: distinct keys, first-seen order, as JSON."""
    return json.dumps(list(dict.fromkeys(keys)), ensure_ascii=False)


def fetch_pairs(conn: Connection, query: str, params: dict[str, Any]) -> list[tuple[Any, Any]]:
    """The rows of a two-column query, fetched by psycopg directly (``%(name)s``
    placeholders). For the per-page key lookups, which return up to a page of rows:
    SQLAlchemy's row objects cost as much again as psycopg's fetch (measured on 100k
    lookups: 0.19 s on top of 0.21 s)."""
    with driver_connection(conn).cursor() as cur:
        cur.execute(query, params)
        return cur.fetchall()


def content_hash(raw: Any, mapping_version: str) -> str:
    """Stable hash of any Python value (``repr``, or its pickle for an integer too long to
    print) plus a version label.

    The identity of a quarantined payload (``quarantine.payload_hash``: one open row per
    bad record) and the fallback of :func:`change_hashes` for a record its encoder cannot
    take. ``repr`` depends on key order: a vendor that reorders keys gets a new hash.
    """
    try:
        text = f"{mapping_version}|{raw!r}".encode()
    except ValueError:  # an integer too long to print (Python's int-to-text limit): hash its pickle
        text = mapping_version.encode() + b"|" + pickle.dumps(raw, protocol=5)
    return hashlib.blake2b(text, digest_size=16).hexdigest()


# MessagePack keeps apart what change detection must tell apart and JSON would not: NaN and
# null, 1 and 1.0 and True, the key 1 and the key "1". "deterministic" sorts dict keys, so a
# vendor that reorders a record's keys does not look like a change.
_ENCODE = msgspec.msgpack.Encoder(order="deterministic").encode
_DIGEST = xxhash.xxh3_128_hexdigest
# what msgspec refuses: an integer past 64 bits (OverflowError), a lone surrogate
# (UnicodeEncodeError, a ValueError), a type it does not know (TypeError), nesting too deep
_UNENCODABLE = (TypeError, ValueError, OverflowError, RecursionError)

# The change hash's format. It is part of every hash (see :func:`change_hash_seed`), so a
# new format changes every hash once, exactly as a new mapping version does. Change it
# whenever the encoding or the digest changes.
CHANGE_HASH_FORMAT = "msgpack+xxh3-128"


def change_hash_seed(mapping_version: str) -> int:
    """The 64-bit seed of :func:`change_hashes` for ``mapping_version``: the hash format and
    the mapping version, hashed. Seeding XXH3 with it puts both into every record's hash
    without concatenating a prefix to each encoded record (a copy of it per record)."""
    return xxhash.xxh3_64_intdigest(f"{CHANGE_HASH_FORMAT}\x00{mapping_version}".encode())


def change_hashes(records: Sequence[Any], mapping_version: str) -> list[str]:
    """The change-detection hash of each raw record of a page, plus the mapping version.

    Hashing the *raw* record lets the engine skip unchanged records before mapping and
    validating them, which is what makes a re-sync with nothing changed cheap. Each record
    is encoded by msgspec's MessagePack encoder and hashed by XXH3-128 (32 hex digits),
    seeded with the format and the mapping version (:func:`change_hash_seed`), the page in
    one chain of C calls (no Python frame per record). Measured on a page of 5,000
    synthetic receivables: 0.41 us a record (0.34 us of it the encoding), where msgpack +
    blake2b-128 took 1.32 us and ``repr`` + blake2b 2.6 us. A page holding a record the
    encoder cannot take hashes that record with :func:`content_hash` (a different input
    format, so the two never meet).

    XXH3 is not a cryptographic hash: someone who controls a record's contents could craft
    a change that keeps its hash. What it guards is a skipped rewrite of a record that
    person could change anyway, not a secret; 128 bits make an accidental match as
    unlikely as blake2b's did.

    **Upgrading from blake2b** (the format before :data:`CHANGE_HASH_FORMAT`, up to round
    4 of the ingest work): every stored hash differs from the new one, so the first sync of
    each stream after the upgrade finds every record changed and rewrites it once (counted
    as *updated*; the values written are the ones stored, so the rewrite notifies no
    receivable change), and from the next sync on the records are unchanged again. It costs
    one mapping and merge per stored row, like a new mapping version. A receivable whose
    values are the ones stored keeps its ``fetched_at`` (:func:`kept_when_same`), so an
    automation rule on ``receivable_changed`` (:mod:`hub.rules.automation.triggers`, which
    finds bills by ``fetched_at``) does not fire for the rewrite.

    Values that MessagePack encodes alike hash alike: a ``Decimal`` and its text, a tuple
    and a list, a ``datetime`` and its ISO text are not JSON types and do not occur in
    records read from JSON; a mapping that told them apart would see no change.
    """
    seed = change_hash_seed(mapping_version)
    try:
        encoded = list(map(_ENCODE, records))
    except _UNENCODABLE:
        return [change_hash(raw, mapping_version) for raw in records]
    return list(map(_DIGEST, encoded, repeat(seed)))


def change_hash(raw: Any, mapping_version: str) -> str:
    """:func:`change_hashes` of one record."""
    try:
        return _DIGEST(_ENCODE(raw), change_hash_seed(mapping_version))
    except _UNENCODABLE:
        return content_hash(raw, mapping_version)


def kept_when_same(column: str, compared: Sequence[str]) -> str:
    """An ``update_exprs`` value for :func:`merge_rows`: ``column`` keeps its stored value
    when none of ``compared`` differs from the incoming row, else takes the incoming one.

    For ``fetched_at``, which automation triggers read as "when this record last changed"
    (``receivable_changed``): a rewrite that changes only the hash (a new mapping version,
    a new change-hash format) must not look like a change there.
    """
    stored = ", ".join(f"t.{c}" for c in compared)
    incoming = ", ".join(f"EXCLUDED.{c}" for c in compared)
    return f"CASE WHEN ROW({stored}) IS NOT DISTINCT FROM ROW({incoming}) THEN t.{column} ELSE EXCLUDED.{column} END"


@dataclass(frozen=True)
class MergeResult:
    """What one merge did: ids of written rows split into inserted and updated.

    After the all-new fast path the ids are not known (COPY returns none): ``inserted``
    is then the count and ``inserted_ids`` empty.
    """

    inserted_ids: list[int]
    updated_ids: list[int]
    staged: int
    copied: int = 0  # rows written by the all-new fast path

    @property
    def inserted(self) -> int:
        return len(self.inserted_ids) + self.copied

    @property
    def updated(self) -> int:
        return len(self.updated_ids)

    @property
    def unchanged(self) -> int:
        return self.staged - self.inserted - self.updated


def merge_rows(
    conn: Connection,
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    key: Sequence[str],
    update: Sequence[str] | None = None,
    update_exprs: dict[str, str] | None = None,
    conflict_where: str | None = None,
    assume_new: bool = False,
    guarded: bool = False,
    json_columns: Sequence[str] = (),
    typed: bool = False,
) -> MergeResult:
    """Stage ``rows`` with COPY and merge them into ``table``.

    ``key`` names the unique constraint's columns; ``update`` the columns to overwrite
    on conflict (default: all but the key); ``update_exprs`` overrides single columns
    with a SQL expression (e.g. keep the CRM's value for an echoed order);
    ``conflict_where`` is a SQL fragment appended to the conflict target for partial
    unique indexes; ``json_columns`` names the columns whose values are dicts for JSONB.
    Rows must carry a ``content_hash`` column.

    ``assume_new``: the caller saw none of these keys in the table, so the rows are
    COPYed straight in (no staging, no conflict handling: about half the server work of
    a first load). Should another writer have inserted one of them meanwhile, the
    unique violation rolls back to a savepoint and the normal merge runs instead.
    ``typed``: every row's values are of the types of a validated schema, so the first row
    decides whether the COPY can go in binary (:func:`hub.engine.binary_copy.binary_types`).
    ``guarded``: the caller already runs this in a savepoint of its own and merges again
    without ``assume_new`` when the unique violation reaches it
    (:func:`hub.engine.isolation.write_isolated`), so the fast path opens none: one
    ``SAVEPOINT`` and ``RELEASE`` fewer a page on the writer's critical path.
    """
    rows = list(rows)
    if not rows:  # a page of unchanged records: no staging table to create and drop
        return MergeResult([], [], 0)
    json_positions = [columns.index(c) for c in json_columns]
    if assume_new and guarded:
        _copy_into(driver_connection(conn), table, columns, rows, json_positions, typed)
        return MergeResult([], [], len(rows), copied=len(rows))
    if assume_new:
        try:
            with conn.begin_nested():
                _copy_into(driver_connection(conn), table, columns, rows, json_positions, typed)
            return MergeResult([], [], len(rows), copied=len(rows))
        except (sa.exc.IntegrityError, psycopg.errors.UniqueViolation):
            pass  # a concurrent writer got there first: merge properly below
    pg = driver_connection(conn)
    stage = sql.Identifier(f"_stage_{table}")
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    with pg.cursor() as cur:
        cur.execute(sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
            stage, cols, sql.Identifier(table)))
        staged = _copy(cur, stage, table, columns, rows, json_positions, typed)
        to_update = [c for c in (update if update is not None else columns) if c not in key]
        exprs = update_exprs or {}
        set_clause = sql.SQL(", ").join(
            sql.SQL("{} = {}").format(sql.Identifier(c), sql.SQL(exprs.get(c, f"EXCLUDED.{c}")))
            for c in to_update
        )
        target = sql.SQL(", ").join(sql.Identifier(c) for c in key)
        if conflict_where:
            target = sql.SQL("{} WHERE {}").format(target, sql.SQL(conflict_where))
        cur.execute(sql.SQL(
            "INSERT INTO {table} AS t ({cols}) SELECT {cols} FROM {stage} "
            "ON CONFLICT ({target}) DO UPDATE SET {sets} "
            "WHERE t.content_hash IS DISTINCT FROM EXCLUDED.content_hash "
            "RETURNING t.id, (t.xmax = 0) AS inserted"
        ).format(table=sql.Identifier(table), cols=cols, stage=stage, target=target, sets=set_clause))
        inserted: list[int] = []
        updated: list[int] = []
        for row_id, was_inserted in cur.fetchall():
            (inserted if was_inserted else updated).append(row_id)
        cur.execute(sql.SQL("DROP TABLE {}").format(stage))
    return MergeResult(inserted, updated, staged)


def _copy_into(pg: PgConnection[Any], table: str, columns: Sequence[str], rows: list[Sequence[Any]],
               json_positions: Sequence[int], typed: bool = False) -> None:
    with pg.cursor() as cur:
        _copy(cur, sql.Identifier(table), table, columns, rows, json_positions, typed)


def _copy(cur: psycopg.Cursor[Any], into: sql.Composable, table: str, columns: Sequence[str],
          rows: list[Sequence[Any]], json_positions: Sequence[int], typed: bool = False) -> int:
    """COPY ``rows`` into ``into`` (``table`` or its staging table), in binary when every
    value allows it (:mod:`hub.engine.binary_copy`), else in text; the rows written."""
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    oids = binary_types(table, columns, rows, json_positions, typed=typed)
    binary = sql.SQL(" (FORMAT BINARY)" if oids is not None else "")
    with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN{}").format(into, cols, binary)) as copy:
        if oids is not None:
            copy.set_types(oids)
        return _write_rows(copy, rows, json_positions)


def _write_rows(copy: Any, rows: list[Sequence[Any]], json_columns: Sequence[int] = ()) -> int:
    """Write rows to a COPY; values in ``json_columns`` (positions) go as JSONB. Declared,
    not detected: checking every value's type costs ~10 % of a first load, and an
    undeclared dict fails loudly in psycopg ("cannot adapt type 'dict'")."""
    if not json_columns:
        for row in rows:
            copy.write_row(row)
        return len(rows)
    for row in rows:
        values = list(row)
        for i in json_columns:
            if values[i] is not None:
                values[i] = Jsonb(values[i])
        copy.write_row(values)
    return len(rows)


_UNKNOWN_TIME = dt.datetime.min.replace(tzinfo=dt.UTC)


def latest_per_key(items: Sequence[T], key: Callable[[T], Hashable],
                   modified: Callable[[T], dt.datetime | None],
                   keys: Sequence[Hashable] | None = None) -> tuple[list[T], int]:
    """One item per key: the latest ``modified`` wins (a known time beats an unknown one),
    ties go to the later item. Returns the kept items, in the order their keys first
    appeared, and how many were superseded.

    A page may hold one record twice, and ON CONFLICT cannot touch one row twice in a
    statement; choosing by modification time, not position alone, keeps the stored value
    stable when a source repeats a record with different contents. ``keys``: the items'
    keys when the caller has them already (computed at C speed), else ``key`` is called.
    """
    if keys is None:
        keys = list(map(key, items))
    if len(set(keys)) == len(keys):  # the common page: no key twice
        return list(items), 0
    best: dict[Hashable, T] = {}
    for k, item in zip(keys, items, strict=True):
        held = best.get(k)
        if held is None or (modified(item) or _UNKNOWN_TIME) >= (modified(held) or _UNKNOWN_TIME):
            best[k] = item
    return list(best.values()), len(items) - len(best)
