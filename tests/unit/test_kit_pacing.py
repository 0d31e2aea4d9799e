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


def test_a_per_minute_quota_lets_n_calls_through_then_holds_the_next_until_the_first_is_a_window_old():
    # given a pacer of 60 calls in any 60 s window (+1 s margin), as Yonyou's order quota
    time = FakeTime()
    pacer = Pacer(60, window_s=60.0, margin_s=1.0, clock=time.clock, sleep=time.sleep)
    # when 60 calls go out at once, none waits
    assert [pacer.wait() for _ in range(60)] == [0.0] * 60
    # then the 61st, ten seconds later, waits for the first to be 61 s old
    time.now += 10.0
    assert pacer.wait() == pytest.approx(51.0)
    # and the 62nd goes at once: the other 59 of the first minute left the window with the first
    assert pacer.wait() == 0.0 and time.slept == [51.0]
    assert pacer.window_s == 61.0 and pacer.limit == 60


def test_shared_pacers_of_one_key_differ_by_window_and_the_per_second_default_is_unchanged():
    per_second = shared_pacer("test:window@host", 60)
    assert per_second.window_s == pytest.approx(1.1)
    per_minute = shared_pacer("test:window@host", 60, window_s=60.0, margin_s=1.0)
    assert per_minute is not per_second and per_minute.window_s == 61.0
    assert shared_pacer("test:window@host", 60, window_s=60.0, margin_s=1.0) is per_minute
