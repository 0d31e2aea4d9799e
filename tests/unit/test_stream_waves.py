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


# -- run_reading_early: every stream reads at once, writes after what it depends on ------------

def test_dependents_read_while_their_dependency_runs_and_write_only_after_it_finished():
    from hub.engine.schedule import run_reading_early

    # given customers that finish only once the three dependents are reading (a barrier of four)
    all_reading = threading.Barrier(4, timeout=30)
    log: list[str] = []
    lock = threading.Lock()

    def note(what: str) -> None:
        with lock:
            log.append(what)

    def run(s: StreamSpec[object], ready) -> str:
        note(f"read {s.name}")
        all_reading.wait()  # BrokenBarrierError if the dependents started only after customers
        ready()
        note(f"write {s.name}")
        return s.name.upper()

    # when they run with room for four at once
    results = run_reading_early(ERP, run, max_parallel=4)

    # then all four read together, customers wrote first and the others only after it had finished
    assert sorted(log[:4]) == ["read customers", "read orders", "read receipts", "read receivables"]
    assert log[4] == "write customers"
    assert sorted(log[5:]) == ["write orders", "write receipts", "write receivables"]
    assert results == ["CUSTOMERS", "ORDERS", "RECEIVABLES", "RECEIPTS"]


def test_when_a_stream_fails_the_ones_not_yet_writing_are_told_not_to_start_and_the_failure_is_raised():
    from hub.engine.schedule import NotStarted, run_reading_early

    wrote: list[str] = []
    told: list[str] = []

    def run(s: StreamSpec[object], ready) -> None:
        if s.name == "customers":
            raise RuntimeError("customers: HTTP 500")
        try:
            ready()
        except NotStarted:
            told.append(s.name)
            raise
        wrote.append(s.name)

    # when the stream the others depend on fails
    with pytest.raises(RuntimeError, match="customers: HTTP 500"):
        run_reading_early(ERP, run, max_parallel=4)

    # then none of its dependents wrote: each was told not to start
    assert wrote == [] and sorted(told) == ["orders", "receipts", "receivables"]


def test_an_independent_stream_not_yet_writing_is_not_started_after_a_failure_either():
    from hub.engine.schedule import NotStarted, run_reading_early

    failed = threading.Event()
    outcome: dict[str, str] = {}

    def run(s: StreamSpec[object], ready) -> None:
        if s.name == "a":
            failed.set()
            raise RuntimeError("a failed")
        assert failed.wait(timeout=30)
        try:
            ready()
            outcome[s.name] = "wrote"
        except NotStarted:
            outcome[s.name] = "not started"
            raise

    with pytest.raises(RuntimeError, match="a failed"):
        run_reading_early([stream("a"), stream("b")], run, max_parallel=2)
    assert outcome == {"b": "not started"}


def test_reading_early_with_room_for_one_runs_them_one_after_another_without_waiting_for_ever():
    from hub.engine.schedule import run_reading_early

    log: list[str] = []

    def run(s: StreamSpec[object], ready) -> str:
        ready()
        log.append(s.name)
        return s.name

    # given the dependents listed before what they need, and room for one stream at a time
    results = run_reading_early([RECEIPTS, ORDERS, CUSTOMERS, RECEIVABLES], run, max_parallel=1)

    # then customers ran first, every stream ran, and results follow the given order
    assert log[0] == "customers" and sorted(log) == ["customers", "orders", "receipts", "receivables"]
    assert results == ["receipts", "orders", "customers", "receivables"]


def test_reading_early_refuses_a_cycle_and_a_zero_limit_and_ignores_streams_not_selected():
    from hub.engine.schedule import run_reading_early

    with pytest.raises(ConfigError, match="dependency cycle"):
        run_reading_early([stream("a", "b"), stream("b", "a")], lambda s, ready: None, max_parallel=2)
    with pytest.raises(ConfigError, match="at least 1"):
        run_reading_early(ERP, lambda s, ready: None, max_parallel=0)
    assert run_reading_early([RECEIVABLES], lambda s, ready: (ready(), s.name)[1], max_parallel=1) == ["receivables"]
