"""Run one callable from many threads at once, for single-flight and thread-safety tests."""

from __future__ import annotations

import threading
from collections.abc import Callable


def run_together(n: int, target: Callable[[], object]) -> list[BaseException]:
    """Start ``n`` threads that call ``target`` at the same moment; return what they raised."""
    barrier = threading.Barrier(n)
    failures: list[BaseException] = []

    def worker() -> None:
        barrier.wait()
        try:
            target()
        except BaseException as exc:  # collected and asserted by the test
            failures.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    return failures
