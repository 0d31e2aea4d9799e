"""The outbox dispatcher's state machine on a real Postgres.

The external system here is a small in-memory ledger with the same failure modes a
sandbox injects (it applies a write and then "loses" the response, refuses, throttles:
``tests.support.ledger``); the connector end-to-end tests repeat these scenarios over HTTP
against the sandboxes. Failure accounting, leases and limits: ``test_outbox_failures.py``.
"""

from __future__ import annotations

import pytest

from hub.outbox import Dispatcher, enqueue, replay
from hub.settings import OutboxSettings
from tests.conftest import rows, scalar
from tests.support.ledger import Ledger, LedgerWriter, drain_together

FAST = OutboxSettings(max_attempts=4, backoff_initial_s=0.01, backoff_max_s=0.05, lease_s=10)


def queue(db, n: int, kind: str = "ledger.thing") -> None:
    with db.begin() as conn:
        for i in range(n):
            enqueue(conn, kind, f"thing-{i}", {"n": i}, max_attempts=FAST.max_attempts)


def test_enqueue_is_idempotent(db):
    with db.begin() as conn:
        first = enqueue(conn, "ledger.thing", "k1", {"a": 1})
        again = enqueue(conn, "ledger.thing", "k1", {"a": 2})
    assert first is not None and again is None
    assert scalar(db, "SELECT count(*) FROM outbox") == 1


def test_lost_response_is_adopted_on_retry_with_exactly_one_effect(db):
    # given the external system applies the write but the response is lost
    ledger = Ledger(script=["lose_response"])
    writer = LedgerWriter(ledger)
    queue(db, 1)

    counts = Dispatcher(db, lambda kind: writer, FAST).drain(wait_for_scheduled=True, timeout_s=10)

    # then the retry looked the effect up and adopted it instead of applying again
    assert ledger.effects == {"thing-0": 1}
    assert ledger.applies == 1
    assert (counts.done, counts.adopted, counts.retried) == (1, 1, 1)
    row = rows(db, "SELECT status, attempts, result FROM outbox")[0]
    assert (row.status, row.attempts, row.result["adopted"]) == ("done", 2, True)
    assert scalar(db, "SELECT count(*) FROM audit_log WHERE outcome = 'adopted'") == 1


def test_rate_limits_and_transient_errors_are_retried_then_succeed(db):
    ledger = Ledger(script=["throttle", "fail"])
    writer = LedgerWriter(ledger)
    queue(db, 1)
    counts = Dispatcher(db, lambda kind: writer, FAST).drain(wait_for_scheduled=True, timeout_s=10)
    assert counts.done == 1 and ledger.effects == {"thing-0": 1}


def test_permanent_errors_are_not_retried(db):
    ledger = Ledger(script=["refuse"])
    writer = LedgerWriter(ledger)
    queue(db, 1)
    counts = Dispatcher(db, lambda kind: writer, FAST).drain(wait_for_scheduled=True, timeout_s=10)
    assert (counts.failed, ledger.applies) == (1, 1)
    assert rows(db, "SELECT status, last_error FROM outbox")[0].status == "failed"
    assert writer.recorded[0].startswith("failed:")


def test_a_retry_after_a_lost_response_never_calls_apply_again(db):
    # given the first attempt applied the effect and every later call would fail
    ledger = Ledger(script=["lose_response", "fail", "fail", "fail"])
    writer = LedgerWriter(ledger)
    queue(db, 1)
    counts = Dispatcher(db, lambda kind: writer, FAST).drain(wait_for_scheduled=True, timeout_s=10)
    # then attempt 2 finds the effect and adopts it without touching apply
    assert counts.done == 1 and counts.adopted == 1 and ledger.applies == 1


def test_an_outage_longer_than_the_retry_budget_dead_letters_then_replay_delivers_once(db):
    # given a row whose system fails every call for longer than the retry budget (a row
    # allowed 2 attempts: the budget, not the attempt count, decides for transient errors; 0.6 s
    # holds several attempts even when each claim and outcome takes ~100 ms on a busy machine)
    ledger2 = Ledger(script=["fail"] * 1000)
    writer2 = LedgerWriter(ledger2)
    with db.begin() as conn:
        enqueue(conn, "ledger.other", "other-1", {}, max_attempts=2)
    short = FAST.model_copy(update={"retry_budget_s": 0.6})
    counts = Dispatcher(db, lambda kind: writer2, short, kinds=["ledger.other"]).drain(wait_for_scheduled=True,
                                                                                     timeout_s=10)
    # then it is retried for the budget's length (more often than its max_attempts), then dead
    assert counts.dead == 1 and counts.retried > 2
    row = rows(db, "SELECT status, last_error, unexpected_failures FROM outbox WHERE idempotency_key = 'other-1'")[0]
    assert (row.status, row.unexpected_failures) == ("dead", 0)
    assert row.last_error.startswith("retry budget of 0.6 s used up; last error: ledger.apply: HTTP 500")
    assert writer2.recorded == ["dead:ledger.apply: HTTP 500"]

    # when a person replays it after the outage
    ledger2.script.clear()
    with db.begin() as conn:
        assert replay(conn, None) == 1
    counts = Dispatcher(db, lambda kind: writer2, FAST, kinds=["ledger.other"]).drain(wait_for_scheduled=True,
                                                                                    timeout_s=10)
    assert counts.done == 1 and ledger2.effects == {"other-1": 1}
    assert scalar(db, "SELECT count(*) FROM audit_log WHERE operation = 'dlq:replay'") == 1


def test_replay_of_an_unknown_id_is_a_clear_error(db):
    from hub.errors import NotFoundError

    with pytest.raises(NotFoundError, match="no dead or failed outbox row with id 999"), db.begin() as conn:
        replay(conn, [999])


def test_concurrent_dispatchers_never_process_a_row_twice(db):
    # given 200 rows and four dispatchers racing on them, the system allowing more writes
    # in flight than one dispatcher's workers
    ledger = Ledger()
    writer = LedgerWriter(ledger)
    queue(db, 200)
    drain_together(db, writer, FAST, dispatchers=4, concurrency=4 * FAST.workers)

    assert len(ledger.effects) == 200 and set(ledger.effects.values()) == {1}
    assert ledger.applies == 200
    assert scalar(db, "SELECT count(*) FROM outbox WHERE status = 'done'") == 200
    workers = {r.locked_by for r in rows(db, "SELECT DISTINCT actor AS locked_by FROM audit_log")}
    assert len(workers) > 1  # the work was actually shared


def test_a_row_held_by_a_dead_dispatcher_is_retaken_and_looked_up_first(db):
    ledger = Ledger()
    writer = LedgerWriter(ledger)
    queue(db, 1)
    # given a dispatcher claimed the row, applied it, and died before recording anything
    crashed = Dispatcher(db, lambda kind: writer, FAST, worker_id="crashed")
    [item] = crashed.claim(1)
    writer.apply(item.key, item.payload, item.attempt)
    with db.begin() as conn:
        conn.execute(__import__("sqlalchemy").text("UPDATE outbox SET locked_until = now() - interval '1 second'"))

    # when another dispatcher runs, it retakes the row with the outcome unknown and adopts the effect
    counts = Dispatcher(db, lambda kind: writer, FAST, worker_id="rescuer").drain()
    assert counts.adopted == 1 and ledger.effects == {"thing-0": 1}
