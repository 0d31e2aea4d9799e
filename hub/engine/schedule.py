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
"""

from __future__ import annotations

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


__all__ = ["run_in_waves"]
