"""Ingest benchmark: the sync engine against raw COPY, same data, same run.

    .venv/bin/python benchmarks/ingest.py [--rows 200000] [--repeat 3] [--rss 100000,1000000] [--breakdown]

Each round, on a fresh schema:

1. baselines: the synthetic receivables (generated up front, so neither side pays for
   making the data) COPYed straight in, no mapping, no validation, no merge:
   a. into an *equivalent* table: ``LIKE receivable INCLUDING ALL`` plus its foreign key
      to customer, the same columns the engine writes (customer ids looked up before
      the clock starts). This is the target's baseline: the same rows into the same
      kind of table, constraints and indexes included;
   b. into a bare table (no foreign key, no secondary index, fewer columns), the
      baseline of earlier notes, printed for comparison;
   c. into the equivalent table in COPY's binary format (the engine COPYs a typed page in
      binary since round 7, ``hub.engine.binary_copy``): printed beside the target's
      text baseline, so the ratio can be read against either;
2. engine: the same records through ``sync_stream`` (hashing, mapping, pydantic
   validation, reference resolution, COPY or staging merge, cursor, audit);
3. re-sync with nothing changed (``--full``): every row read and hashed, none written;
4. once, peak RSS of a fresh process syncing N rows, for each N in ``--rss`` (flat =
   memory bounded by page size, not by stream size).

``--breakdown`` adds a run with the stages timed one after the other (hashing and checks, comparison,
mapping with validation, resolution and COPY), to show where the CPU goes.
``--statements`` adds a first load with every statement psycopg sends timed (wall time in
the thread that sent it, grouped by thread and statement text), to show where the wall goes.

Prints every round, then the median, as rows/s and the ratios the foundation issue sets
targets for; "cpu" is this process's CPU time (Python plus libpq), the rest of the wall
time is waiting for Postgres. Uses ``HUB_TEST_DATABASE_URL``, else Postgres on
127.0.0.1:5432/test, else the embedded one.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import secrets
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hub.contracts import Page, StreamSpec
from hub.database import Database, create_db_engine, resolve_url
from hub.engine.bulk import driver_connection
from hub.engine.sync import fingerprinted, prepare_page, stamp_range, sync_stream, write_page
from hub.engine.targets import changed_keys
from hub.settings import Settings
from hub.vault import Vault, bind
from tests.support.synthetic import CUSTOMERS, RECEIVABLES, SyntheticSource

PAGE = 5000


def database_url() -> str:
    if url := os.environ.get("HUB_TEST_DATABASE_URL"):
        return resolve_url(Settings(database_url=url))  # type: ignore[arg-type]
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=0.5).close()
        return "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    except OSError:
        return resolve_url(Settings())


def fresh_db(url: str) -> Database:
    schema = f"bench_{secrets.token_hex(4)}"
    db = Database(create_db_engine(url, schema), schema, url)
    db.upgrade()
    # a throwaway vault: contacts and users are sealed at the engine's write boundary
    bind(db.engine, Vault({"bench": os.urandom(32)}, "bench", os.urandom(32)))
    return db


def drop(db: Database) -> None:
    db.dispose()
    admin = sa.create_engine(db.url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{db.schema}" CASCADE'))
    admin.dispose()


class Prefetched:
    """The synthetic pages generated once, up front, so that neither side of the
    comparison pays for generating the data (a real connector pays for HTTP + JSON)."""

    def __init__(self, source: SyntheticSource) -> None:
        self.pages = list(RECEIVABLES.read_pages(source, None))

    def read(self, cursor: str | None) -> list[Page]:
        return [p for p in self.pages if cursor is None or (p.cursor_after or "") > cursor]


PREFETCHED = StreamSpec(
    name="receivables", source_object="receivable", target="receivable", key_field="bill", cursor_field="modified",
    read_pages=lambda src, cursor: iter(src.read(cursor)), map_record=RECEIVABLES.map_record,
)


RAW_COLUMNS = ["source_system", "external_id", "customer_id", "bill_number", "bill_date", "due_date", "currency",
               "amount", "open_amount"]


def raw_copy(db: Database, source: Prefetched, *, equivalent: bool, binary: bool = False) -> float:
    """Baseline: raw records straight into a table with COPY (text, or ``binary`` with the
    values converted to their types before the clock starts); seconds taken."""
    with db.begin() as conn:
        if equivalent:
            conn.execute(sa.text("CREATE TABLE raw_receivable (LIKE receivable INCLUDING ALL)"))
            conn.execute(sa.text("ALTER TABLE raw_receivable ADD FOREIGN KEY (customer_id) REFERENCES customer (id)"))
        else:
            conn.execute(sa.text(
                "CREATE TABLE raw_receivable (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, "
                "source_system varchar(32), external_id varchar(200), customer_id bigint, bill_number varchar(100), "
                "bill_date date, due_date date, currency varchar(3), amount numeric(18,2), open_amount numeric(18,2), "
                "UNIQUE (source_system, external_id))"))
        customer_ids = dict(conn.execute(sa.text(
            "SELECT external_id, canonical_id FROM external_identity WHERE object = 'customer'")).all())
    rows = [("synthetic", r["bill"], customer_ids[r["customer"]], r["bill"], r["date"], r["due"], r["currency"],
             r["amount"], r["open"]) for page in source.pages for r in page.records]
    if binary:
        rows = [(*row[:4], dt.date.fromisoformat(row[4]), dt.date.fromisoformat(row[5]), row[6],
                 Decimal(row[7]), Decimal(row[8])) for row in rows]
    started = time.perf_counter()
    with db.begin() as conn:
        pg = driver_connection(conn)
        options = " (FORMAT BINARY)" if binary else ""
        with pg.cursor() as cur, cur.copy(f"COPY raw_receivable ({', '.join(RAW_COLUMNS)}) FROM STDIN{options}") as copy:
            if binary:
                copy.set_types(["text", "text", "int8", "text", "date", "date", "text", "numeric", "numeric"])
            for row in rows:
                copy.write_row(row)
    elapsed = time.perf_counter() - started
    with db.begin() as conn:
        conn.execute(sa.text("DROP TABLE raw_receivable"))
    return elapsed


def one_round(url: str, source: SyntheticSource, prefetched: Prefetched, rows: int) -> dict[str, float]:
    """Baselines, first load and unchanged re-sync on a fresh schema; seconds of each."""
    db = fresh_db(url)
    try:
        sync_stream(db, "synthetic", CUSTOMERS, source)
        equivalent = raw_copy(db, prefetched, equivalent=True)
        bare = raw_copy(db, prefetched, equivalent=False)
        binary = raw_copy(db, prefetched, equivalent=True, binary=True)
        started, cpu = time.perf_counter(), time.process_time()
        first = sync_stream(db, "synthetic", PREFETCHED, prefetched)
        engine_s, engine_cpu = time.perf_counter() - started, time.process_time() - cpu
        started, cpu = time.perf_counter(), time.process_time()
        again = sync_stream(db, "synthetic", PREFETCHED, prefetched, full=True)
        resync_s, resync_cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        drop(db)
    assert first.counts.inserted == rows and again.counts.unchanged == rows, (first.counts, again.counts)
    return {"raw_copy_equivalent_s": equivalent, "raw_copy_bare_s": bare, "raw_copy_binary_s": binary,
            "engine_first_load_s": engine_s,
            "engine_first_load_cpu_s": engine_cpu, "unchanged_resync_s": resync_s, "unchanged_resync_cpu_s": resync_cpu}


def report(label: str, rows: int, m: dict[str, float]) -> None:
    """Print one round (or the median) as rows/s and the target ratios."""
    eq, bare, first, resync = (m["raw_copy_equivalent_s"], m["raw_copy_bare_s"], m["engine_first_load_s"],
                               m["unchanged_resync_s"])
    print(f"-- {label}")
    print(f"raw COPY, equivalent table {rows:>9} rows {eq:7.2f} s {rows / eq:>10,.0f} rows/s  (baseline)")
    print(f"raw COPY, bare table       {rows:>9} rows {bare:7.2f} s {rows / bare:>10,.0f} rows/s")
    binary = m["raw_copy_binary_s"]
    print(f"raw COPY, equivalent, binary {rows:>7} rows {binary:7.2f} s {rows / binary:>10,.0f} rows/s  "
          f"(engine first load: {binary / first:.2f}x of it)")
    print(f"engine first load          {rows:>9} rows {first:7.2f} s {rows / first:>10,.0f} rows/s  "
          f"{eq / first:.2f}x raw COPY (target >= 0.5x; {bare / first:.2f}x the bare table)  "
          f"cpu {m['engine_first_load_cpu_s']:.2f} s")
    print(f"unchanged re-sync          {rows:>9} rows {resync:7.2f} s {rows / resync:>10,.0f} rows/s  "
          f"{resync / first:.1%} of first load (target <= 10%)  cpu {m['unchanged_resync_cpu_s']:.2f} s")


class StageClock:
    """CPU and wall seconds per named stage, summed over pages."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = {}
        self.wall: dict[str, float] = {}
        self._mark = (time.process_time(), time.perf_counter())

    def lap(self, stage: str) -> None:
        cpu, wall = time.process_time(), time.perf_counter()
        self.cpu[stage] = self.cpu.get(stage, 0.0) + cpu - self._mark[0]
        self.wall[stage] = self.wall.get(stage, 0.0) + wall - self._mark[1]
        self._mark = (cpu, wall)


def breakdown(url: str, source: SyntheticSource, prefetched: Prefetched, rows: int) -> None:
    """Where a first load and a re-sync spend their time, stage by stage, run one stage
    after the other (the engine overlaps them; their sum is what the overlap hides)."""
    db = fresh_db(url)
    try:
        sync_stream(db, "synthetic", CUSTOMERS, source)
        for label in ("first load", "unchanged re-sync"):
            clock = StageClock()
            for page in prefetched.pages:
                hashed = next(fingerprinted(PREFETCHED, iter([page])))
                clock.lap("hash + check records")
                with db.engine.connect() as conn:
                    keys = [str(r["bill"]) for r in page.records]
                    changed_keys(conn, "receivable", "synthetic", keys, hashed.hashes,
                                 stamp_range(page.records, "modified"))
                clock.lap("compare with stored hashes")
                with db.engine.connect() as conn:
                    # prepare_page repeats the comparison (measured above); its mapping is what counts here
                    # (the key and stamp checks ran with the hashing, as in the read-ahead thread)
                    prepared = prepare_page(conn, "synthetic", PREFETCHED, hashed)
                clock.lap("compare again + map + validate")
                with db.begin() as conn:
                    write_page(conn, "synthetic", PREFETCHED, prepared, None)
                clock.lap("resolve + COPY/merge + commit")
            total_cpu = sum(clock.cpu.values())
            print(f"-- breakdown, {label}, stages run one after another "
                  f"(cpu {total_cpu:.2f} s, {total_cpu / rows * 1e6:.1f} us/record)")
            for stage, cpu in clock.cpu.items():
                print(f"   {stage:32s} cpu {cpu:6.2f} s  wall {clock.wall[stage]:6.2f} s  "
                      f"{cpu / rows * 1e6:6.1f} us/record cpu")
    finally:
        drop(db)


_SAVEPOINT_NUMBER = re.compile(r"sa_savepoint_\d+")


class StatementClock:
    """Wall seconds and count per (thread, statement), while installed: psycopg's
    ``execute``, ``copy`` (the whole COPY, rows encoded in Python included), ``commit``
    and ``rollback`` are wrapped. Benchmark only: it patches the driver process-wide."""

    def __init__(self) -> None:
        self.seen: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def add(self, statement: object, started: float) -> None:
        text = statement.as_string(None) if hasattr(statement, "as_string") else str(statement)
        text = _SAVEPOINT_NUMBER.sub("sa_savepoint_N", " ".join(str(text).split()))  # one line per kind
        label = f"{threading.current_thread().name[:10]:10s} | {text[:70]}"
        with self._lock:
            entry = self.seen.setdefault(label, [0, 0.0])
            entry[0] += 1
            entry[1] += time.perf_counter() - started

    @contextmanager
    def installed(self) -> Iterator[None]:
        cursor, connection = psycopg.Cursor, psycopg.Connection
        saved = (cursor.execute, cursor.copy, connection.commit, connection.rollback)
        clock = self

        def execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return saved[0](self, query, *args, **kwargs)
            finally:
                clock.add(query, started)

        @contextmanager
        def copy(self: Any, statement: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
            started = time.perf_counter()
            with saved[1](self, statement, *args, **kwargs) as copying:
                yield copying
            clock.add(statement, started)

        def ending(original: Any, name: str) -> Any:
            def end(self: Any) -> Any:
                started = time.perf_counter()
                try:
                    return original(self)
                finally:
                    clock.add(name, started)
            return end

        cursor.execute, cursor.copy = execute, copy  # type: ignore[method-assign]
        connection.commit = ending(saved[2], "COMMIT")  # type: ignore[method-assign]
        connection.rollback = ending(saved[3], "ROLLBACK")  # type: ignore[method-assign]
        try:
            yield
        finally:
            cursor.execute, cursor.copy, connection.commit, connection.rollback = saved  # type: ignore[method-assign]


def statements(url: str, source: SyntheticSource, prefetched: Prefetched, rows: int) -> None:
    """A first load with every statement timed (see :class:`StatementClock`)."""
    db = fresh_db(url)
    clock = StatementClock()
    try:
        sync_stream(db, "synthetic", CUSTOMERS, source)
        started, cpu = time.perf_counter(), time.process_time()
        with clock.installed():
            sync_stream(db, "synthetic", PREFETCHED, prefetched)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        drop(db)
    print(f"-- statements of one first load ({rows} rows, wall {wall:.2f} s, cpu {cpu:.2f} s), slowest first")
    for label, (count, seconds) in sorted(clock.seen.items(), key=lambda item: -item[1][1])[:20]:
        print(f"   {seconds:7.2f} s {int(count):6d}x  {label}")


def rss_child(rows: int) -> int:
    """Peak RSS (KiB) of a fresh process syncing ``rows`` receivables."""
    code = f"""
import resource, sys
sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
from benchmarks.ingest import fresh_db, drop, database_url
from hub.engine.sync import fingerprinted, prepare_page, stamp_range, sync_stream, write_page
from tests.support.synthetic import CUSTOMERS, RECEIVABLES, SyntheticSource
db = fresh_db(database_url())
src = SyntheticSource(customers=2000, receivables={rows}, page_size={PAGE})
sync_stream(db, "synthetic", CUSTOMERS, src)
sync_stream(db, "synthetic", RECEIVABLES, src)
drop(db)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the median is reported (shared machines are noisy)")
    parser.add_argument("--rss", default="100000,1000000", help="comma-separated row counts; '' to skip")
    parser.add_argument("--breakdown", action="store_true", help="also time each stage on its own")
    parser.add_argument("--statements", action="store_true", help="also time every statement of a first load")
    args = parser.parse_args()
    url = database_url()
    # Memory first, while this process is still small: a forked child's peak RSS starts
    # from the parent's at fork time (ru_maxrss survives exec), so measuring after the
    # pages below were generated would report the parent's size, not the child's.
    sizes = [int(s) for s in args.rss.split(",") if s.strip()]
    peaks = {n: rss_child(n) for n in sizes}
    source = SyntheticSource(customers=2000, receivables=args.rows, page_size=PAGE)
    prefetched = Prefetched(source)  # stands in for a network source: generated before any clock starts

    rounds = []
    for i in range(args.repeat):
        rounds.append(one_round(url, source, prefetched, args.rows))
        report(f"round {i + 1}", args.rows, rounds[-1])
    if args.breakdown:
        breakdown(url, source, prefetched, args.rows)
    if args.statements:
        statements(url, source, prefetched, args.rows)
    median = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    report(f"median of {len(rounds)}", args.rows, median)
    results: dict[str, object] = {"rows": args.rows, "rounds": len(rounds),
                                  **{key: round(value, 2) for key, value in median.items()}}
    results["first_load_vs_raw_copy"] = round(median["raw_copy_equivalent_s"] / median["engine_first_load_s"], 3)
    results["first_load_vs_bare_copy"] = round(median["raw_copy_bare_s"] / median["engine_first_load_s"], 3)
    results["first_load_vs_binary_copy"] = round(median["raw_copy_binary_s"] / median["engine_first_load_s"], 3)
    results["resync_vs_first_load"] = round(median["unchanged_resync_s"] / median["engine_first_load_s"], 3)
    if sizes:
        smallest = peaks[sizes[0]]
        for n, kib in peaks.items():
            print(f"peak RSS syncing {n:>9} rows: {kib / 1024:7.1f} MiB  ({kib / smallest:.2f}x of {sizes[0]} rows)")
        results["peak_rss_mib"] = {str(n): round(kib / 1024, 1) for n, kib in peaks.items()}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
