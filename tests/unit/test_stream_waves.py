"""Streams that do not depend on each other run at once; dependents wait; a failure stops new starts.

``hub.engine.schedule.run_in_waves`` over stream specs whose ``run`` records what happened,
using events (never timings) to prove what ran at the same time.
"""

from __future__ import annotations

import threading

import pytest

from hub.contracts import Page, StreamSpec
from hub.engine.schedule import run_in_waves
from hub.errors import ConfigError


def stream(name: str, *depends_on: str) -> StreamSpec[object]:
    return StreamSpec(name=name, source_object=name, target="receivable", key_field="id", cursor_field=None,
                      read_pages=lambda client, cursor: iter([Page([])]), map_record=lambda raw: raw,  # type: ignore[arg-type,return-value]
                      depends_on=depends_on)


CUSTOMERS = stream("customers")
ORDERS, RECEIVABLES, RECEIPTS = stream("orders", "customers"), stream("receivables", "customers"), \
    stream("receipts", "customers")
ERP = [CUSTOMERS, ORDERS, RECEIVABLES, RECEIPTS]


def test_the_independent_streams_run_together_after_the_one_they_all_need():
    # given three streams that each wait until all three are running (a barrier), after customers
    all_three_running = threading.Barrier(3, timeout=30)
    log: list[str] = []

    def run(s: StreamSpec[object]) -> str:
        log.append(f"start {s.name}")
        if s.name != "customers":
            all_three_running.wait()  # raises BrokenBarrierError if they were run one at a time
        log.append(f"end {s.name}")
        return s.name.upper()

    # when they run with room for four at once
    results = run_in_waves(ERP, run, max_parallel=4)

    # then customers finished before any other started, the other three met at the barrier,
    # and the results come back in the given order
    assert log[:2] == ["start customers", "end customers"]
    assert sorted(log[2:5]) == ["start orders", "start receipts", "start receivables"]
    assert results == ["CUSTOMERS", "ORDERS", "RECEIVABLES", "RECEIPTS"]


def test_no_more_streams_run_at_once_than_allowed():
    # given a limit of two and three independent streams
    lock = threading.Lock()
    running, peak = 0, 0
    release = threading.Event()

    def run(s: StreamSpec[object]) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            if running == 2:
                release.set()
        release.wait(timeout=30)
        with lock:
            running -= 1

    # when they run
    run_in_waves([stream("a"), stream("b"), stream("c")], run, max_parallel=2)

    # then never more than two ran at the same time
    assert peak == 2


def test_a_failed_stream_stops_its_dependents_and_any_new_start_and_is_raised():
    started: list[str] = []

    def run(s: StreamSpec[object]) -> None:
        started.append(s.name)
        if s.name == "customers":
            raise RuntimeError("customers: HTTP 500")

    # when the stream the others depend on fails
    with pytest.raises(RuntimeError, match="customers: HTTP 500"):
        run_in_waves(ERP, run, max_parallel=4)

    # then nothing that depends on it was started
    assert started == ["customers"]


def test_a_stream_selected_alone_does_not_wait_for_streams_not_selected():
    assert run_in_waves([RECEIVABLES], lambda s: s.name, max_parallel=1) == ["receivables"]


def test_a_dependency_cycle_and_a_zero_limit_are_configuration_errors():
    with pytest.raises(ConfigError, match="dependency cycle"):
        run_in_waves([stream("a", "b"), stream("b", "a")], lambda s: None, max_parallel=2)
    with pytest.raises(ConfigError, match="at least 1"):
        run_in_waves(ERP, lambda s: None, max_parallel=0)
