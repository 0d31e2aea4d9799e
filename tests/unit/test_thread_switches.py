"""While syncs run, the interpreter switches threads quickly (``hub.engine.sync.quick_thread_switches``):
lowered by the first sync, restored when the last one ends, never raised."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

import pytest

from hub.engine.sync import SYNC_SWITCH_INTERVAL, quick_thread_switches


@pytest.fixture(autouse=True)
def default_interval() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.005)
    yield
    sys.setswitchinterval(before)


def test_given_overlapping_syncs_when_they_run_then_threads_switch_quickly_until_the_last_one_ends() -> None:
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, float] = {}

    def first() -> None:
        with quick_thread_switches():
            first_in.set()
            assert second_in.wait(30)
        first_out.set()

    def second() -> None:
        assert first_in.wait(30)
        with quick_thread_switches():
            second_in.set()
            assert first_out.wait(30)
            seen["after the first ended"] = sys.getswitchinterval()

    # given two syncs in two threads, the second starting while the first runs
    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    # when the first ends, then the interval stays low for the second; after both, it is as before
    assert seen == {"after the first ended": SYNC_SWITCH_INTERVAL}
    assert sys.getswitchinterval() == 0.005


def test_given_an_interval_already_lower_when_a_sync_runs_then_it_is_not_raised() -> None:
    sys.setswitchinterval(0.0005)
    with quick_thread_switches():
        assert sys.getswitchinterval() == 0.0005
    assert sys.getswitchinterval() == 0.0005


def test_given_a_sync_that_fails_when_it_ends_then_the_interval_is_restored() -> None:
    with pytest.raises(RuntimeError), quick_thread_switches():
        assert sys.getswitchinterval() == SYNC_SWITCH_INTERVAL
        raise RuntimeError("the sync failed")
    assert sys.getswitchinterval() == 0.005
