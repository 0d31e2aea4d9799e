"""The kit's pacer: at most N calls in any window, across threads, shared per app in a process."""

from __future__ import annotations

import threading

import pytest

from connectors.kit.pacing import Pacer, shared_pacer


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 3))
        self.now += seconds


def test_the_n_plus_first_call_waits_until_the_first_leaves_the_window():
    time = FakeTime()
    pacer = Pacer(3, margin_s=0.1, clock=time.clock, sleep=time.sleep)
    waits = [pacer.wait() for _ in range(3)]
    time.now += 0.5
    fourth = pacer.wait()
    assert waits == [0.0, 0.0, 0.0] and fourth == pytest.approx(0.6) and time.slept == [0.6]
    assert pacer.waited_s == pytest.approx(0.6)


def test_calls_spread_out_need_no_wait():
    time = FakeTime()
    pacer = Pacer(2, clock=time.clock, sleep=time.sleep)
    for _ in range(6):
        assert pacer.wait() == 0.0
        time.now += 0.6
    assert time.slept == []


def test_threads_share_one_budget():
    pacer = Pacer(1000)
    threads = [threading.Thread(target=pacer.wait) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(pacer._sent) == 50


def test_one_pacer_per_key_in_a_process_and_a_new_rate_replaces_it():
    first = shared_pacer("test:app@host", 20)
    assert shared_pacer("test:app@host", 20) is first
    assert shared_pacer("test:other@host", 20) is not first
    assert shared_pacer("test:app@host", 40).limit == 40
