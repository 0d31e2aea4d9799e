"""Which streams of a connector read at once: independent ones together, dependents after.

A connector declares what each stream needs first (``StreamSpec.depends_on``: orders,
receivables and receipts need the customers they reference). :func:`run_in_waves` starts
every stream whose dependencies have finished, up to ``max_parallel`` at once, each in its
own thread: against a remote ERP a full sync is mostly waiting on HTTP round trips, so
Kingdee's four streams take the time of customers plus the longest of the other three
instead of the sum of all four. ``max_parallel`` is the connector's declared concurrency
(``CallLimits.concurrency``): a running stream mostly has one read in flight
(``hub.engine.sync.read_ahead``); a reader that overlaps calls (Kingdee's line batches beside
the next header page, Yonyou's list pages requested ahead and order details) relies on its
client to keep all its calls within the same limit (``KingdeeClient``'s and
``YonyouClient``'s read slots, shared by every stream of the run).

Failure keeps the sequential behaviour: after a stream fails no further stream is started
(its dependents could not resolve their references anyway); the ones already running
finish, since each commits page by page and stopping them halfway gains nothing; then the
first failure is raised. Results come back in the order the streams were given (dependency
order), whatever order they finished in.

:func:`run_reading_early` (what ``HubRuntime.sync`` uses) keeps that order for *writing* but
lets every stream *read* from the start: a dependent needs its dependencies' rows only when
it writes (an order resolves its customer then), so its first round trips overlap the
customers' instead of following them. Measured against the Kingdee sandbox at 200 ms a call
(``benchmarks/end_to_end.py``, round 5 in ``benchmarks/RESULTS.md``, with the read-order
changes of ``connectors.kit.paging``): 1.5 s instead of 2.0-2.1 s.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, TypeVar

from hub.contracts import StreamSpec
from hub.errors import ConfigError

T = TypeVar("T")


def run_in_waves(streams: Sequence[StreamSpec[Any]], run: Callable[[StreamSpec[Any]], T], *,
                 max_parallel: int) -> list[T]:
    """``run(stream)`` for each of ``streams``, a stream only after those of its
    ``depends_on`` that are among ``streams`` (others count as done), at most
    ``max_parallel`` at once; results in the order of ``streams``."""
    if max_parallel < 1:
        raise ConfigError(f"max_parallel must be at least 1, not {max_parallel}")
    selected = {s.name for s in streams}
    waiting = {s.name: {d for d in s.depends_on if d in selected} for s in streams}
    by_name = {s.name: s for s in streams}
    results: dict[str, T] = {}
    failure: BaseException | None = None
    running: dict[Future[T], str] = {}
    with ThreadPoolExecutor(max_workers=max_parallel, thread_name_prefix="sync-stream") as pool:
        while True:
            if failure is None:
                for name in [n for n, deps in waiting.items() if not deps]:
                    if len(running) >= max_parallel:
                        break
                    del waiting[name]
                    running[pool.submit(run, by_name[name])] = name
            if not running:
                break
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                name = running.pop(future)
                error = future.exception()
                if error is not None:
                    failure = failure or error
                    continue
                results[name] = future.result()
                for deps in waiting.values():
                    deps.discard(name)
    if failure is not None:
        raise failure
    if waiting:  # only reachable with a dependency cycle among the given streams
        raise ConfigError(f"streams {', '.join(sorted(waiting))} wait on each other (dependency cycle)")
    return [results[s.name] for s in streams]


class NotStarted(Exception):
    """Raised by a stream's ``ready`` (:func:`run_reading_early`) when the stream must not
    begin writing: a stream it depends on, or any stream of the run, failed first."""


def run_reading_early(streams: Sequence[StreamSpec[Any]], run: Callable[[StreamSpec[Any], Callable[[], None]], T],
                      *, max_parallel: int) -> list[T]:
    """``run(stream, ready)`` for each of ``streams``, all started at once (at most
    ``max_parallel`` at a time, in dependency order); results in the order of ``streams``.

    What :func:`run_in_waves` guarantees about *writing* holds here too, while every stream
    *reads* from the start: ``run`` must call ``ready()`` before it writes anything (the sync
    engine calls it before its first page is prepared: :func:`hub.engine.sync.sync_stream`),
    and ``ready()`` returns only when the streams of its ``depends_on`` among ``streams`` have
    finished (their writes committed, their after-stream work done). A stream needs its
    dependencies' rows only when its own rows are written (orders resolve their customer
    then), not to read its source, so the round trips of the first pages of orders,
    receivables and receipts overlap the customers' instead of following them.

    Failure keeps :func:`run_in_waves`'s behaviour: once a stream has failed, ``ready()``
    raises :class:`NotStarted` in every stream that has not begun writing (its dependents
    and the others alike; what they read ahead is dropped, nothing of theirs is written and
    no run of theirs is recorded); the streams already writing finish; then the first
    failure is raised. A ``run`` that ends in NotStarted counts as not started.

    Streams are handed to the pool in dependency order and the pool takes them first come,
    first served, so a stream waiting in ``ready()`` holds a thread only while every stream
    it waits for already has one: no limit can deadlock them (with ``max_parallel`` 1 they
    run one after another, as sequentially).
    """
    if max_parallel < 1:
        raise ConfigError(f"max_parallel must be at least 1, not {max_parallel}")
    ordered = _dependency_order(streams)
    selected = {s.name for s in streams}
    finished = {s.name: threading.Event() for s in streams}
    lock = threading.Lock()
    failures: list[BaseException] = []
    skipped: set[str] = set()

    def ready_for(stream: StreamSpec[Any]) -> Callable[[], None]:
        def ready() -> None:
            for name in stream.depends_on:
                if name in selected:
                    finished[name].wait()
            with lock:
                if failures:
                    raise NotStarted(f"{stream.name}: not started, a stream before it failed")
        return ready

    def task(stream: StreamSpec[Any]) -> T:
        try:
            return run(stream, ready_for(stream))
        except NotStarted:
            with lock:
                skipped.add(stream.name)
            raise
        except BaseException as exc:
            with lock:
                failures.append(exc)
            raise
        finally:
            finished[stream.name].set()

    with ThreadPoolExecutor(max_workers=max_parallel, thread_name_prefix="sync-stream") as pool:
        futures = {s.name: pool.submit(task, s) for s in ordered}
        wait(futures.values())
    if failures:
        raise failures[0]
    if skipped:  # only a run that raised NotStarted itself, no stream having failed
        raise NotStarted(f"streams {', '.join(sorted(skipped))} did not start")
    return [futures[s.name].result() for s in streams]


def _dependency_order(streams: Sequence[StreamSpec[Any]]) -> list[StreamSpec[Any]]:
    """``streams`` with each after those of its ``depends_on`` among them (otherwise in the
    given order); a cycle is a ConfigError."""
    by_name = {s.name: s for s in streams}
    done: list[StreamSpec[Any]] = []
    placed: set[str] = set()
    waiting = list(streams)
    while waiting:
        free = [s for s in waiting if all(d in placed or d not in by_name for d in s.depends_on)]
        if not free:
            raise ConfigError(f"streams {', '.join(sorted(s.name for s in waiting))} wait on each other "
                              "(dependency cycle)")
        for s in free:
            done.append(s)
            placed.add(s.name)
        waiting = [s for s in waiting if s.name not in placed]
    return done


__all__ = ["NotStarted", "run_in_waves", "run_reading_early"]
