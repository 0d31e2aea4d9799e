"""The inbound sync engine: pages from a stream into the canonical store, crash-safe.

For each page the stream yields, one transaction does all of (pages with nothing to write
may share one, see :class:`PageCommitter`):

1. check every raw record's key and change stamp, keep one record per key (latest
   modification wins, the others count as *superseded*) and map the changed ones (pure
   mapping); failures become quarantine rows with their position and reason
   (``hub.engine.intake``);
2. resolve references and identities, and bulk-merge through staging + COPY
   (``hub.engine.targets``), rejecting unresolvable records into quarantine; records the
   database still refuses are isolated into quarantine (``hub.engine.isolation``);
3. advance the stream's cursor to the page's ``cursor_after``;
4. append an audit row for the batch.

Every record read is accounted for: read = inserted + updated + unchanged + quarantined
+ superseded, per page and per run. One bad record never stops a stream; a mapping *bug*
(anything but a MappingError or validation error) stops the run before its page is written,
with an error that names the record by reference, never by its values.

A crash anywhere loses nothing (the uncommitted page is read again from the stored
cursor) and duplicates nothing (rows are merged by natural key; unchanged rows cost
no write). Memory is bounded by the page size: the engine never holds a whole stream.
Reading (with hashing and the key checks of step 1), preparing (the unchanged check in
Postgres, mapping) and writing overlap: the next page is read, hashed and checked
(:func:`read_ahead`, :func:`fingerprinted`) while this one is compared with the store and
mapped, and the previous one is written, so HTTP, Python and Postgres work at the same
time; writes stay in page order. A stream that must wait before it writes (its
dependencies, its before-stream hooks: ``sync_stream``'s ``ready``) reads its first pages
meanwhile, from the cursor it will write after, and writes nothing until it may.
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
import queue
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass
from itertools import compress
from operator import itemgetter
from pathlib import Path
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from canonical_model.storable import UNSTORABLE_CHARACTER
from hub import prepared as prepared_statements
from hub.audit import audit_row, audit_rows_statement, mask_personal_data, write_audit
from hub.contracts import Page, StreamSpec
from hub.database import Database
from hub.engine import runs
from hub.engine.bulk import change_hash, change_hashes
from hub.engine.intake import Entry, MapResult, map_entries, one_per_key, position, readable
from hub.engine.isolation import DATA_ERRORS, write_isolated
from hub.engine.links import CustomerLinks
from hub.engine.quarantine import Rejected, store_rejected, stored_record, visible
from hub.engine.targets import HANDLERS, Mapped, PageContext, changed_keys
from hub.errors import HubError
from hub.vault import vault_for

log = logging.getLogger(__name__)
_KEY, _DIGEST = itemgetter(2), itemgetter(3)  # of an Entry
T = TypeVar("T")


@dataclass
class SyncCounts:
    """Counts of one stream run; also the Dagster materialization metadata.

    ``read = inserted + updated + unchanged + quarantined + superseded``: ``superseded``
    records were read but replaced by a later version of the same record in the same page.
    """

    read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    quarantined: int = 0
    superseded: int = 0
    pages: int = 0

    def add(self, other: SyncCounts) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)


@dataclass
class SyncReport:
    """Outcome of :func:`sync_stream`."""

    system: str
    stream: str
    run_id: int
    counts: SyncCounts
    cursor_before: str | None
    cursor_after: str | None
    duration_s: float


def get_cursor(conn: Connection, system: str, stream: str) -> str | None:
    """The stored cursor of (system, stream), or None before the first sync."""
    return conn.execute(
        sa.text("SELECT value FROM sync_cursor WHERE connector = :c AND stream = :s"), {"c": system, "s": stream}
    ).scalar()


# Moves a stream's cursor forward, never back (GREATEST); sent with the page's audit rows in one
# pipeline (PageCommitter._record_pages).
_ADVANCE_CURSOR = ("INSERT INTO sync_cursor (connector, stream, value) VALUES (%(c)s, %(s)s, %(v)s) "
                   "ON CONFLICT (connector, stream) DO UPDATE SET value = GREATEST(sync_cursor.value, "
                   "EXCLUDED.value), updated_at = now()")


@dataclass
class Intake:
    """A page's records after the checks that need no database (:mod:`hub.engine.intake`):
    readable ones, one per key, with their keys, hashes and stamp range for the unchanged
    check; the page number it was checked as names rejected records by position."""

    page_no: int | None
    entries: list[Entry]
    rejected: list[Rejected]
    superseded: int
    premapped: dict[int, MapResult]
    keys: list[str]
    hashes: list[str]
    stamps: tuple[str, str] | None


def take_in(stream: StreamSpec, records: list[Any], hashes: list[str], page_no: int | None) -> Intake:
    """Check keys and stamps, keep one record per key (:mod:`hub.engine.intake`). Pure: it
    runs in the read-ahead thread (see :func:`fingerprinted`)."""
    entries, rejected = readable(stream, records, hashes, page_no)
    entries, superseded, premapped = one_per_key(stream, entries, page_no)
    kept = records if len(entries) == len(records) else [raw for _, raw, _, _ in entries]
    return Intake(page_no, entries, rejected, superseded, premapped, list(map(_KEY, entries)),
                  hashes if kept is records else list(map(_DIGEST, entries)), stamp_range(kept, stream.cursor_field))


@dataclass
class HashedPage:
    """A page as read, with the content hash of each record (same order) and, when read
    through :func:`fingerprinted`, its :class:`Intake`."""

    page: Page
    hashes: list[str]
    intake: Intake | None = None


def fingerprinted(stream: StreamSpec, pages: Iterator[Page]) -> Iterator[HashedPage]:
    """Hash and check each page's records as it is read (pages numbered from 1).

    In the read-ahead thread this overlaps with the page before waiting on Postgres for its
    unchanged check: measured on an unchanged re-sync of 200,000 receivables, that check is
    a 5-8 ms wait a page in the database, as long as this Python work, which before ran
    after it in the same thread.
    """
    for page_no, page in enumerate(pages, 1):
        hashes = change_hashes(page.records, stream.mapping_version)
        yield HashedPage(page, hashes, take_in(stream, page.records, hashes, page_no))


@dataclass
class PreparedPage:
    """A page after the work that needs no write: checks, twins, the unchanged check, mapping."""

    page: Page
    mapped: list[Mapped]
    rejected: list[Rejected]
    unchanged: int
    all_new: bool  # none of the page's keys was stored when looked up
    superseded: int = 0
    page_no: int | None = None


def prepare_page(conn: Connection, system: str, stream: StreamSpec, hashed: HashedPage,
                 page_no: int | None = 1) -> PreparedPage:
    """Check keys and stamps, keep one record per key, skip the records whose stored hash
    is equal, map the rest (see :mod:`hub.engine.intake`). The checks are those done by
    :func:`fingerprinted` when it numbered the page alike, else done here.

    Reads only. It may run while the previous page's transaction is still open (see
    :func:`sync_stream`): a hash it reads can then be stale, which costs at most a
    needless rewrite, because the merge compares hashes again when it writes.
    """
    intake = hashed.intake
    if intake is None or intake.page_no != page_no:
        intake = take_in(stream, hashed.page.records, hashed.hashes, page_no)
    entries, keys = intake.entries, intake.keys
    check = changed_keys(conn, stream.target, system, keys, intake.hashes, intake.stamps)
    # the entries whose stored hash differs (or that have none), at C speed; keys are distinct
    changed: list[Entry]
    if len(check.changed) == len(entries):
        changed = entries
    else:
        changed = list(compress(entries, map(check.changed.__contains__, keys))) if check.changed else []
    mapped, map_rejected = map_entries(stream, changed, page_no, intake.premapped)
    return PreparedPage(hashed.page, mapped, [*intake.rejected, *map_rejected], len(entries) - len(changed),
                        check.held == 0, intake.superseded, page_no)


def stamp_range(records: list[dict[str, Any]], cursor_field: str | None) -> tuple[str, str] | None:
    """Lowest and highest change stamp (cursor field value, as text, as
    :meth:`hub.engine.targets.PageContext.stamp` stores it) of a page's records; None when a
    record has none (the lookup then probes every key)."""
    if not cursor_field or not records:
        return None
    try:  # itemgetter runs at C speed; a record without the field has no stamp
        values: list[Any] = list(map(itemgetter(cursor_field), records))
    except KeyError:
        return None
    if None in values:
        return None
    stamps: list[str] = values if set(map(type, values)) == {str} else [str(v) for v in values]
    return min(stamps), max(stamps)


def write_page(conn: Connection, system: str, stream: StreamSpec, prepared: PreparedPage,
               run_id: int | None, links: CustomerLinks | None = None, *, optimistic: bool = False) -> SyncCounts:
    """Resolve, merge and quarantine a prepared page on ``conn`` (the page's transaction);
    ``links``: the run's memory of customer links (:class:`hub.engine.links.CustomerLinks`);
    ``optimistic``: see :func:`hub.engine.isolation.write_isolated` (a refusal raises)."""
    ctx = PageContext(conn, system, stream.name, run_id, all_new=prepared.all_new, cursor_field=stream.cursor_field,
                      links=links)
    outcome = write_isolated(ctx, HANDLERS[stream.target], prepared.mapped, stream.target, optimistic=optimistic)
    rejected = [*prepared.rejected, *_positioned(prepared, outcome.rejected)]
    store_rejected(conn, system, stream.name, run_id, rejected)
    return SyncCounts(
        read=len(prepared.page.records), inserted=outcome.inserted, updated=outcome.updated,
        unchanged=outcome.unchanged + prepared.unchanged, quarantined=len(rejected),
        superseded=prepared.superseded + outcome.superseded, pages=1,
    )


def _positioned(prepared: PreparedPage, rejected: list[Rejected]) -> list[Rejected]:
    """Rejections made while writing (unknown references, refused by the database), with the
    record's position in its page in front of the reason, like those made before."""
    if not rejected or prepared.page_no is None:
        return rejected
    index_of = {id(raw): index for index, raw in enumerate(prepared.page.records, 1)}
    return [Rejected(r.source_ref, position(prepared.page_no, index_of[id(r.payload)]) + r.reason, r.payload)
            if id(r.payload) in index_of else r for r in rejected]


_DONE = object()


def read_ahead(pages: Iterator[T]) -> ReadAhead[T]:
    """Yield ``pages`` while a background thread already fetches the next one
    (:class:`ReadAhead`, started at once)."""
    return ReadAhead(pages)


class ReadAhead(Generic[T]):
    """Yield ``pages`` while a background thread already fetches the next one.

    Reading (HTTP, JSON) and ingesting (mapping, Postgres) then overlap. At most one page
    waits in the hand-over queue, so at most three are in memory (being read, waiting,
    being ingested). An exception in the reader is re-raised here, in order; when the
    consumer stops early (:meth:`close`) the reader is told to stop and is not waited on
    beyond the page it is fetching, and the source is closed by the reader's thread.

    The thread starts at once, not at the first ``next``: a stream that must wait before it
    writes (:func:`sync_stream`'s ``ready``) reads its first pages meanwhile.
    """

    def __init__(self, pages: Iterator[T]) -> None:
        self._handover: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._finished = False
        self._thread = threading.Thread(target=self._reader, args=(pages,), name="sync-read-ahead", daemon=True)
        self._thread.start()

    def _hand_over(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._handover.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _reader(self, pages: Iterator[T]) -> None:
        try:
            for page in pages:
                if not self._hand_over(page):
                    return
            self._hand_over(_DONE)
        except BaseException as exc:  # handed to the consumer and re-raised there, in order
            self._hand_over(exc)
        finally:
            close = getattr(pages, "close", None)
            if callable(close):  # a generator source stops its own helpers (its calls in flight end first)
                close()

    def __iter__(self) -> ReadAhead[T]:
        return self

    def __next__(self) -> T:
        if self._finished:
            raise StopIteration
        item = self._handover.get()
        if item is _DONE:
            self.close()
            raise StopIteration
        if isinstance(item, BaseException):
            self.close()
            raise item
        return item

    def close(self) -> None:
        """Stop reading: the reader ends after the page it is fetching, unwaited for."""
        self._finished = True
        self._stop.set()


def sync_stream(
    db: Database, system: str, stream: StreamSpec, client: Any, *, full: bool = False,
    on_page: Callable[[SyncCounts], None] | None = None, ready: Callable[[], None] | None = None,
) -> SyncReport:
    """Read ``stream`` from its cursor (or from the start with ``full``) into the store.

    While it runs, threads take turns quickly (:func:`quick_thread_switches`).

    ``ready``, when given, is called before the first page is prepared or anything of the
    run is written: it returns when the stream may write (the streams it depends on have
    been synced, its before-stream work is done: :func:`hub.engine.schedule.run_reading_early`)
    and raises when it may not, which ends the stream before its run began (no ``sync_run``
    row, nothing written). Meanwhile the first pages are already read (:class:`ReadAhead`
    holds at most three), from the cursor stored when the stream started; if the cursor is
    another when ``ready`` returns (a before-stream hook reset it), those pages are dropped
    and the read starts again from the cursor as it is then. The run's row, its lock and
    ``cursor_before`` are taken after ``ready``, as if the run had started then.
    """
    with quick_thread_switches():
        return _sync_stream(db, system, stream, client, full=full, on_page=on_page, ready=ready)


def _sync_stream(
    db: Database, system: str, stream: StreamSpec, client: Any, *, full: bool,
    on_page: Callable[[SyncCounts], None] | None, ready: Callable[[], None] | None,
) -> SyncReport:
    started = dt.datetime.now(dt.UTC)
    actor = f"sync:{system}/{stream.name}"
    early: ReadAhead[HashedPage] | None = None
    early_cursor: str | None = None
    if ready is not None:
        with db.begin() as conn:
            early_cursor = None if full else get_cursor(conn, system, stream.name)
        early = read_ahead(fingerprinted(stream, stream.read_pages(client, early_cursor)))
        try:
            ready()
        except BaseException:
            early.close()
            raise
    try:
        with db.begin() as conn:
            runs.close_abandoned(conn, actor=actor)
            cursor_before = get_cursor(conn, system, stream.name)
            run_id = int(conn.execute(
                sa.text("INSERT INTO sync_run (connector, stream, cursor_before) VALUES (:c, :s, :v) RETURNING id"),
                {"c": system, "s": stream.name, "v": cursor_before},
            ).scalar_one())
    except BaseException:
        if early is not None:
            early.close()
        raise
    if early is not None and not full and cursor_before != early_cursor:
        early.close()  # read from a cursor that is no longer the stream's: start again from this one
        early = None
    counts = SyncCounts()
    try:
        # Three pages move at once: one is read (read_ahead), one is prepared here, the one
        # before it is written by the writer thread. Writes stay in page order, one
        # transaction each, so the crash-safety argument is the same as sequentially.
        # Each side keeps one connection for the run (see :func:`run_connections`).
        pages = early if early is not None else \
            read_ahead(fingerprinted(stream, stream.read_pages(client, None if full else cursor_before)))
        with closing(pages), long_lived_heap_frozen(), run_connections(db) as (reading, page_writes), \
                runs.holding(reading, run_id), \
                ThreadPoolExecutor(max_workers=1, thread_name_prefix="sync-write") as writer:
            writing: Future[list[SyncCounts]] | None = None
            committer = PageCommitter(page_writes, system, stream, run_id, actor)
            try:
                for page_no, hashed in enumerate(pages, 1):
                    with reading.begin():  # reads only, in autocommit (see run_connections): hashes read fresh
                        prepared = prepare_page(reading, system, stream, hashed, page_no)
                    if writing is not None:
                        done, writing = writing, None
                        _collect(done.result(), counts, on_page)
                    writing = writer.submit(committer.commit, prepared)
            finally:
                # a page already handed to the writer commits even when reading fails
                # afterwards; count it, so the run's numbers match the database
                if writing is not None:
                    _collect(writing.result(), counts, on_page)
                _collect(writer.submit(committer.flush).result(), counts, on_page)
        if counts.inserted >= ANALYZE_AFTER_ROWS:
            refresh_statistics(db, stream.target)
    except Exception as exc:
        error = failure_text(exc)
        with db.begin() as conn:
            _finish_run(conn, run_id, "failed", counts, error=error)
            write_audit(conn, actor=actor, system=system, operation=f"run:{stream.name}", outcome="error",
                        error=error, detail={"run_id": run_id, **asdict(counts)})
        log.error("sync %s/%s failed: %s", system, stream.name, error)
        raise
    with db.begin() as conn:
        cursor_after = get_cursor(conn, system, stream.name)
        _finish_run(conn, run_id, "succeeded", counts, cursor_after=cursor_after)
        write_audit(conn, actor=actor, system=system, operation=f"run:{stream.name}", outcome="ok",
                    detail={"run_id": run_id, **asdict(counts)})
    duration = (dt.datetime.now(dt.UTC) - started).total_seconds()
    log.info("synced %s/%s: %s in %.1fs", system, stream.name, asdict(counts), duration)
    return SyncReport(system, stream.name, run_id, counts, cursor_before, cursor_after, duration)


# The interpreter's thread switch interval while a sync runs, in seconds (Python's default is
# 0.005); see quick_thread_switches.
SYNC_SWITCH_INTERVAL = 0.001


class _SwitchInterval:
    """The process's thread switch interval, lowered while any sync runs (a count of them)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0
        self._before = 0.0

    def enter(self, interval: float) -> None:
        with self._lock:
            if self._running == 0:
                self._before = sys.getswitchinterval()
                sys.setswitchinterval(min(interval, self._before))
            self._running += 1

    def exit(self) -> None:
        with self._lock:
            self._running -= 1
            if self._running == 0:
                sys.setswitchinterval(self._before)


_SWITCHES = _SwitchInterval()


@contextmanager
def quick_thread_switches(interval: float | None = None) -> Iterator[None]:
    """Let a thread waiting for the GIL have it sooner while syncs run: the interpreter's
    switch interval (:func:`sys.setswitchinterval`) is ``interval`` (default
    :data:`SYNC_SWITCH_INTERVAL`, 1 ms; never raised) from the first sync in the process
    until the last one ends, then as it was.

    A sync is mostly threads waiting on sockets (HTTP replies, Postgres) beside a few that
    compute (parsing replies, hashing, mapping). A thread whose socket became ready waits
    for the one computing to give up the GIL, up to the switch interval (5 ms by default),
    and the writer thread, the engine's critical path, waits so after each of its round
    trips to Postgres (about eight a page). Measured on ``benchmarks/end_to_end.py``'s
    Kingdee sync at 200 ms a call, alternated in one process at load 1.3-3.3: 1 ms made the
    sync faster in 19 pairs of 22 (median ratio to the floor 1.37 against 1.47 at load
    1.5-1.7), with the same CPU, and in 4 of 5 pairs of the benchmark's own runs (1.80
    against 1.98 at load 1.5-2.6; benchmarks/RESULTS.md, inbound round 6). Process-wide, like
    :func:`long_lived_heap_frozen`: other threads of the process (a web server) also switch
    more often meanwhile, which costs them little.
    """
    _SWITCHES.enter(SYNC_SWITCH_INTERVAL if interval is None else interval)
    try:
        yield
    finally:
        _SWITCHES.exit()


@contextmanager
def long_lived_heap_frozen() -> Iterator[None]:
    """Keep the cyclic garbage collector off the objects that existed before the sync.

    A sync allocates several objects per record; every few thousand allocations CPython's
    collector runs, and its full collections traverse every tracked object in the
    process: in a Dagster step or the web server that is the whole imported framework,
    and in the benchmark the prefetched pages. ``gc.freeze`` moves what exists now out of
    the collector's sight until :func:`gc.unfreeze`; the sync's own objects are still
    collected as usual. Measured on the 200k-receivable benchmark, three rounds each: first
    load CPU 10.3 s instead of 11.8 s, wall time 13.5 s instead of 15.2 s (medians).
    Process-wide: two syncs overlapping in one process may unfreeze each other's heap
    early, which costs only that speed-up.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@contextmanager
def run_connections(db: Database) -> Iterator[tuple[Connection, Connection]]:
    """Two connections held for a whole run: one for preparing pages (reads), one for the
    writer thread's page transactions; only the writer thread uses the second.

    Checking a pooled connection out per page cost a ``pool_pre_ping`` round trip each
    time, two a page, on the engine's critical path (measured on a 100k-receivable first
    load under load 16: 0.73 s of 17.6 s wall in pings). A connection lost mid-run fails
    the run either way; the next run's checkout pings again.
    """
    with db.engine.connect() as reading, db.engine.connect() as writing:
        # Reads in autocommit: each lookup sees what is committed when it runs (as fresh as
        # a transaction a page, see :func:`prepare_page`) without a BEGIN and a COMMIT
        # round trip a page.
        yield reading.execution_options(isolation_level="AUTOCOMMIT"), writing


# Pages with nothing to write that may share one transaction (see PageCommitter).
QUIET_PAGES_PER_COMMIT = 20


class PageCommitter:
    """The writer thread's page transactions, in page order; only that thread uses it.

    A page that writes anything (rows, quarantine) is one transaction with its cursor and
    its audit row, as always. A *quiet* page, whose records were all unchanged (or
    superseded), writes only its cursor and audit row; up to
    :data:`QUIET_PAGES_PER_COMMIT` quiet pages in a row share one transaction, committed
    before the next page that writes begins, when the group is full, and at the end of the
    run. An unchanged re-sync is all quiet pages: measured on 200,000 receivables (40
    pages), the writer's cursor upsert, audit insert and COMMIT (a WAL flush) of each page
    summed to 0.75-0.85 s in re-syncs of 1.6-3.3 s (load 4-20). Crash safety is the same:
    an uncommitted group is read again from the stored cursor, and its records were
    unchanged, so that costs a read. A page's counts are handed back when its transaction
    commits, so the run's numbers always match the database.
    """

    def __init__(self, conn: Connection, system: str, stream: StreamSpec, run_id: int, actor: str) -> None:
        self.conn, self.system, self.stream, self.run_id, self.actor = conn, system, stream, run_id, actor
        self.links = CustomerLinks(system)  # the customer links this run's pages looked up
        self._group: sa.engine.RootTransaction | None = None
        self._pending: list[SyncCounts] = []
        self._audit: list[dict[str, Any]] = []
        self._cursors: list[str] = []

    def commit(self, prepared: PreparedPage) -> list[SyncCounts]:
        """Write ``prepared``; the counts of the pages committed by this call."""
        cursor_after = prepared.page.cursor_after
        if cursor_after is not None and UNSTORABLE_CHARACTER.search(cursor_after):
            raise HubError(f"{self.system}/{self.stream.name}: page {prepared.page_no} ends at a cursor value "
                           "Postgres cannot store (NUL or a lone surrogate): the connector must compute cursors "
                           "from readable stamps")
        if prepared.mapped or prepared.rejected:
            done = self.flush()
            try:
                with self.conn.begin():
                    return [*done, self._write(prepared, optimistic=True)]
            except DATA_ERRORS:
                pass  # refused by the database: rolled back, written again with each record isolated
            with self.conn.begin():
                return [*done, self._write(prepared)]
        if self._group is None:
            self._group = self.conn.begin()
        # the group's cursors (one pipelined statement) and audit rows are written when it
        # commits, in page order: a quiet page then costs one round trip (its audit row)
        # instead of three (cursor, audit row, COMMIT with its WAL flush)
        page_counts = write_page(self.conn, self.system, self.stream, prepared, self.run_id, self.links)
        self._pending.append(page_counts)
        if cursor_after is not None:
            self._cursors.append(cursor_after)
        self._audit.append(self._audit_row(page_counts, cursor_after))
        return self.flush() if len(self._pending) >= QUIET_PAGES_PER_COMMIT else []

    def flush(self) -> list[SyncCounts]:
        """Commit the open group of quiet pages, if any; their counts."""
        group, self._group = self._group, None
        if group is None:
            return []
        self._record_pages(self._cursors, self._audit)
        group.commit()
        done, self._pending, self._audit, self._cursors = self._pending, [], [], []
        return done

    def _write(self, prepared: PreparedPage, *, optimistic: bool = False) -> SyncCounts:
        page_counts = write_page(self.conn, self.system, self.stream, prepared, self.run_id, self.links,
                                 optimistic=optimistic)
        cursor_after = prepared.page.cursor_after
        self._record_pages([] if cursor_after is None else [cursor_after], [self._audit_row(page_counts, cursor_after)])
        return page_counts

    def _record_pages(self, cursors: list[str], audit_rows: list[dict[str, Any]]) -> None:
        """Advance the cursor to each of ``cursors`` in turn and append the pages' audit rows,
        sent in one pipeline: one wait for the writer thread, not one a statement. A round trip
        on the writer, the first load's critical path, costs it more than the round trip: the
        GIL, taken meanwhile by the threads reading and mapping pages, comes back only at their
        next switch (cProfile of a first load at load 2.4: 24 ms a page for a one-row lock)."""
        statements = [(_ADVANCE_CURSOR, {"c": self.system, "s": self.stream.name, "v": value}) for value in cursors]
        statements.append(audit_rows_statement(audit_rows))
        prepared_statements.execute_pipelined(self.conn, statements)

    def _audit_row(self, page_counts: SyncCounts, cursor_after: str | None) -> dict[str, Any]:
        """The page's audit row (:func:`hub.audit.audit_row`)."""
        return audit_row(actor=self.actor, system=self.system, operation=f"batch:{self.stream.name}", outcome="ok",
                         detail={"run_id": self.run_id, **asdict(page_counts), "cursor_after": cursor_after})


def _collect(committed: list[SyncCounts], counts: SyncCounts, on_page: Callable[[SyncCounts], None] | None) -> None:
    for page_counts in committed:
        counts.add(page_counts)
        if on_page is not None:
            on_page(counts)


# The tables a target writes to, where that is not the table of the target's name.
_TARGET_TABLES = {"customer": ("customer", "external_identity"), "task_completion": ("task", "external_identity")}
ANALYZE_AFTER_ROWS = 10_000
# The statistics target of the ANALYZE after a run (Postgres's default is 100): the sample is
# 300 rows per unit, so 3,000 rows instead of 30,000.
QUICK_STATISTICS_TARGET = 10
# Every column of a table, in order, quoted: the column list of its quick ANALYZE.
_COLUMNS = sa.text("SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute "
                   "WHERE attrelid = CAST(:t AS regclass) AND attnum > 0 AND NOT attisdropped")


def refresh_statistics(db: Database, target: str) -> None:
    """ANALYZE the tables a target's rows went to, after a run that inserted many: quickly,
    from a small sample, and leaving the full ANALYZE owed to autovacuum.

    The engine's own key lookups do not need statistics (see :func:`hub.engine.bulk.each_key`),
    but everything that reads the table next does (the receivables summary rebuilt right
    after a ledger sync, profile pages, reports, rules): right after a bulk load the
    planner has no statistics for the new rows (row counts, distinct customers, dates), and
    autovacuum catches up only later.

    What those plans need first is the size and a rough shape of each column, so this
    ANALYZE samples :data:`QUICK_STATISTICS_TARGET` x 300 rows. Measured on 200,000
    receivables: 22 ms instead of 198 ms with the default 30,000 (a first load takes about
    4 s); the sample found 199,980 rows and 2,003 distinct customers (2,000 stored). The
    columns are named, every one of them: an ANALYZE with a column list does not reset the
    table's count of changes since its last ANALYZE (Postgres resets it only for an
    ANALYZE without one; measured: 200,000 before and after), so autovacuum, where it runs
    (Postgres's default), still sees the load and runs its own full-sample ANALYZE at its
    next round (``autovacuum_naptime``, a minute by default), replacing these rough
    statistics. Without autovacuum they stay until the next large run or a manual ANALYZE.
    """
    with db.begin() as conn:
        conn.execute(sa.text(f"SET LOCAL default_statistics_target = {QUICK_STATISTICS_TARGET}"))
        for table in _TARGET_TABLES.get(target, (target,)):
            columns = conn.execute(_COLUMNS, {"t": f'"{table}"'}).scalar_one()
            conn.execute(sa.text(f'ANALYZE "{table}" ({columns})'))


def _finish_run(conn: Connection, run_id: int, status: str, counts: SyncCounts, *,
                cursor_after: str | None = None, error: str | None = None) -> None:
    conn.execute(
        sa.text("UPDATE sync_run SET finished_at = now(), status = :status, counts = CAST(:counts AS jsonb), "
                "cursor_after = :cursor, error = :error WHERE id = :id"),
        {"status": status, "counts": _json(asdict(counts)), "cursor": cursor_after, "error": error, "id": run_id},
    )


def retry_quarantined(db: Database, system: str, stream: StreamSpec, *, limit: int = 10_000,
                      actor: str = "quarantine:retry") -> SyncCounts:
    """Run open quarantine rows of one stream through the checks, mapping and merge again.

    Each row's record is read from its exact JSON text (``payload_text``). Rows that now
    pass are marked resolved; rows that still fail stay open with the new reason and one
    more attempt counted. Runs in one transaction, audited as ``actor`` (the CLI's, or the
    signed-in person's on the operations page).
    """
    counts = SyncCounts()
    handler = HANDLERS[stream.target]
    with db.begin() as conn:
        rows = conn.execute(
            sa.text("SELECT id, payload, payload_text FROM quarantine WHERE status = 'open' AND system = :sys "
                    "AND stream = :st ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED"),
            {"sys": system, "st": stream.name, "limit": limit},
        ).all()
        for row_id, payload, payload_text in rows:
            raw = stored_record(payload, payload_text, vault_for(conn))
            entries, rejected = readable(stream, [raw], [change_hash(raw, stream.mapping_version)], None)
            mapped, map_rejected = map_entries(stream, entries, None, {})
            ctx = PageContext(conn, system, stream.name, None, cursor_field=stream.cursor_field)
            outcome = write_isolated(ctx, handler, mapped, stream.target)
            rejected.extend([*map_rejected, *outcome.rejected])
            counts.read += 1
            counts.inserted += outcome.inserted
            counts.updated += outcome.updated
            counts.unchanged += outcome.unchanged
            if rejected:
                counts.quarantined += 1
                conn.execute(sa.text("UPDATE quarantine SET reason = :r, attempts = attempts + 1 WHERE id = :id"),
                             {"r": mask_personal_data(visible(rejected[0].reason)), "id": row_id})
            else:
                conn.execute(sa.text("UPDATE quarantine SET status = 'resolved', resolved_at = now() WHERE id = :id"),
                             {"id": row_id})
        write_audit(conn, actor=actor, system=system, operation=f"retry:{stream.name}",
                    outcome="ok", detail=asdict(counts))
    return counts


# Errors whose text is built by the hub or the network stack from codes and addresses, never
# from records; any other exception's text may quote a value (psycopg's DETAIL and CONTEXT
# lines do), so only its type and where it was raised are kept.
_TRUSTED_TEXT = (HubError, OSError, TimeoutError)


def failure_text(exc: BaseException) -> str:
    """The run's failure as sync_run and the audit keep it: no record values."""
    if isinstance(exc, _TRUSTED_TEXT):
        return str(exc)[:2000]
    error: Any = getattr(exc, "orig", None) or exc
    diag = getattr(error, "diag", None)
    primary = getattr(diag, "message_primary", None)
    state = getattr(diag, "sqlstate", None)
    frames = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    raised = "".join(f" at {Path(f.filename).name}:{f.lineno} in {f.name}" for f in frames)
    what = f": {primary}" + (f" (SQLSTATE {state})" if state else "") if primary else ""
    return f"{type(exc).__name__}{what}{raised} (the message is not kept: it may quote record values)"


def _json(value: Any) -> str:
    import json

    return json.dumps(value, default=str)
