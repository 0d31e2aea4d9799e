"""Per-recipient send budgets in Postgres (``hub.outbox.budget``): sliding windows, shared by all.

The budgets here have the shape of WeCom's per-member limits (30 a minute, 1,000 an hour,
messaging-apis.md §1.4) with smaller numbers; the two-process test over HTTP is in
``tests/e2e/test_wecom_member_budget.py``.
"""

from __future__ import annotations

import threading

import sqlalchemy as sa

from hub.contracts import RateWindow, SendBudget
from hub.outbox.budget import release, reserve, settle
from tests.conftest import scalar

BUDGET = SendBudget(scope="wecom:corp:1000002", recipient=lambda p: str(p["recipient"]),
                    windows=(RateWindow(60, 3), RateWindow(3600, 5)), unsettled_s=2.0)


def spend(db, recipient: str = "rep01", budget: SendBudget = BUDGET):
    with db.begin() as conn:
        return reserve(conn, budget, recipient)


def db_clock(db) -> float:
    """The database's clock, seconds. Waits are checked against the time that really went by
    between two readings of it (a loaded machine widens the bounds, never breaks them)."""
    return float(scalar(db, "SELECT EXTRACT(EPOCH FROM clock_timestamp())"))  # type: ignore[arg-type]


def age_spends(db, seconds: float) -> None:
    """Move every spend ``seconds`` into the past (as if that much time had gone by)."""
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE send_budget_spend SET spent_at = spent_at - make_interval(secs => :s)"),
                     {"s": seconds})


def test_the_minute_window_binds_first_then_the_hour_window(db):
    # given three sends to one member, settled
    started = db_clock(db)
    granted = [spend(db) for _ in range(3)]
    assert all(r.granted for r in granted)
    with db.begin() as conn:
        for r in granted:
            settle(conn, r.spend_id)
    # when a fourth is asked for within the minute, then it must wait for the first to leave it
    fourth = spend(db)
    assert not fourth.granted and 60 - (db_clock(db) - started) <= fourth.wait_s <= 60
    # and other members are unaffected
    assert spend(db, "rep02").granted
    # after a minute two more fit, then the hourly limit of five binds for the rest of the hour
    age_spends(db, 61)
    assert spend(db).granted and spend(db).granted
    refused = spend(db)
    assert not refused.granted and 3400 < refused.wait_s <= 3600 - 61 + 2


def test_a_send_in_flight_counts_as_sent_as_late_as_it_could_arrive(db):
    # given three sends in flight (not settled yet)
    started = db_clock(db)
    for _ in range(3):
        assert spend(db).granted
    # then the next one waits for the window plus the unsettled margin
    waiting = spend(db)
    # (an unsettled spend's time is when it could arrive at the latest: reserved + unsettled_s)
    assert 62 - (db_clock(db) - started) <= waiting.wait_s <= 62


def test_a_refused_send_gives_its_budget_back_and_old_spends_are_forgotten(db):
    first = spend(db)
    assert first.spend_id is not None
    with db.begin() as conn:
        release(conn, first.spend_id)
    assert scalar(db, "SELECT count(*) FROM send_budget_spend") == 0
    for _ in range(3):
        spend(db)
    age_spends(db, 3700)  # older than the longest window: no longer needed
    assert spend(db).granted
    assert scalar(db, "SELECT count(*) FROM send_budget_spend") == 1


def test_budgets_of_different_apps_are_separate(db):
    other_app = SendBudget(scope="wecom:corp:1000003", recipient=BUDGET.recipient, windows=BUDGET.windows)
    for _ in range(3):
        spend(db)
    assert not spend(db).granted
    assert spend(db, budget=other_app).granted


def test_reservations_racing_for_one_member_never_overspend_the_window(db):
    # given twelve reservations for one member at once, from as many connections
    start = threading.Barrier(12)
    granted: list[bool] = []
    lock = threading.Lock()

    def race() -> None:
        start.wait()
        outcome = spend(db).granted
        with lock:
            granted.append(outcome)

    threads = [threading.Thread(target=race) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # then exactly the minute's three were granted, and only three sends are recorded:
    # each reservation counted the window after the one before it had committed its send
    assert granted.count(True) == 3
    assert scalar(db, "SELECT count(*) FROM send_budget_spend") == 3


def test_a_budget_without_windows_always_has_room(db):
    unbounded = SendBudget(scope="wecom:corp:1000004", recipient=BUDGET.recipient, windows=())
    assert all(spend(db, budget=unbounded).granted for _ in range(5))
