"""Outbox failure accounting, leases and limits on a real Postgres.

What ends a row: a permanent refusal (failed), transient failures beyond the retry *time*
budget (dead), unexpected exceptions (bugs) or lost leases beyond ``max_attempts`` (dead).
Whatever a writer raises, the row never stays ``in_progress``. The external system is the
scripted ledger of ``tests.support.ledger``.
"""

from __future__ import annotations

import datetime as dt
import threading

import sqlalchemy as sa

from hub.contracts import Attempt, CallLimits, RateWindow, SendBudget, WriteResult
from hub.errors import RetryableError
from hub.outbox import Dispatcher, effects, enqueue, replay
from hub.outbox.tracebacks import redact
from hub.settings import OutboxSettings
from tests.conftest import rows, scalar
from tests.support.ledger import Ledger, LedgerWriter, drain_together

FAST = OutboxSettings(max_attempts=3, backoff_initial_s=0.01, backoff_max_s=0.05, lease_s=10)


def queue(db, n: int, kind: str = "ledger.thing", max_attempts: int = FAST.max_attempts, **payload) -> None:
    with db.begin() as conn:
        for i in range(n):
            enqueue(conn, kind, f"{kind}-{i}", {"n": i, **payload}, max_attempts=max_attempts)


def expire_leases(db) -> None:
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE outbox SET locked_until = now() - interval '1 second' "
                             "WHERE status = 'in_progress'"))


def test_a_writer_bug_is_retried_then_dead_lettered_after_max_attempts_with_its_traceback_audited(db):
    # given a writer that raises KeyError (not a ConnectorError: a bug) on every call
    ledger = Ledger(script=["bug"] * 10)
    writer = LedgerWriter(ledger)
    queue(db, 1)

    # when the outbox is drained, then nothing escapes the dispatcher
    counts = Dispatcher(db, lambda kind: writer, FAST).drain(wait_for_scheduled=True, timeout_s=10)

    # and the row was tried max_attempts times, then dead-lettered, never left in_progress
    assert (counts.retried, counts.dead, ledger.applies) == (2, 1, 3)
    row = rows(db, "SELECT status, attempts, unexpected_failures, last_error, locked_by FROM outbox")[0]
    assert (row.status, row.attempts, row.unexpected_failures, row.locked_by) == ("dead", 3, 3, None)
    assert row.last_error.startswith("3 unexpected failures (max_attempts 3); last error: KeyError: 'no such field'")
    assert writer.recorded == ["dead:'no such field'"]
    # every attempt is audited with the traceback, which names the failing line
    audited = rows(db, "SELECT outcome, attempt, error, detail FROM audit_log ORDER BY attempt")
    assert [(a.outcome, a.attempt) for a in audited] == [("retry", 1), ("retry", 2), ("dead", 3)]
    for entry in audited:
        assert entry.error.endswith("KeyError: 'no such field'")
        assert entry.detail["traceback"].startswith("Traceback (most recent call last):")
        assert 'return WriteResult(external_id=payload["no such field"])' in entry.detail["traceback"]


def test_transient_failures_are_not_bounded_by_max_attempts(db):
    # given a system that fails and throttles ten times in a row, with max_attempts 3
    ledger = Ledger(script=["fail", "throttle"] * 5)
    writer = LedgerWriter(ledger)
    queue(db, 1)
    counts = Dispatcher(db, lambda kind: writer, FAST).drain(wait_for_scheduled=True, timeout_s=10)
    # then the row kept being retried within its time budget and went through
    assert (counts.retried, counts.done, counts.dead) == (10, 1, 0)
    assert scalar(db, "SELECT unexpected_failures FROM outbox") == 0


def test_a_rate_limited_retry_waits_the_platforms_retry_after(db):
    # (long enough that the retry cannot fall due within the run, however slow the machine)
    ledger = Ledger(script=["throttle"], retry_after=30)
    writer = LedgerWriter(ledger)
    queue(db, 1)
    counts = Dispatcher(db, lambda kind: writer, FAST).run_once()
    assert counts.retried == 1
    wait = scalar(db, "SELECT EXTRACT(EPOCH FROM next_attempt_at - updated_at) FROM outbox")
    assert 30 <= float(wait) <= 33  # retry_after plus at most 10 % jitter
    # the platform refused the call: nothing was applied, so no lookup is needed next time
    assert scalar(db, "SELECT outcome_unknown FROM outbox") is False


def test_a_reclaimed_row_counts_and_is_dead_lettered_when_its_dispatchers_keep_dying(db):
    ledger = Ledger()
    writer = LedgerWriter(ledger)
    queue(db, 1)
    # given dispatchers that claim the row and die before recording anything, again and again
    for n in range(FAST.max_attempts):
        [item] = Dispatcher(db, lambda kind: writer, FAST, worker_id=f"doomed-{n}").claim(1)
        assert item.unexpected_failures == n  # each retake counted the lost attempt
        expire_leases(db)

    # when the next dispatcher retakes it for the max_attempts-th time
    counts = Dispatcher(db, lambda kind: writer, FAST, worker_id="rescuer").drain()

    # then it is dead-lettered, not retried forever, and the writer is not called
    assert (counts.reclaimed, counts.dead, counts.done, ledger.applies) == (1, 1, 0, 0)
    row = rows(db, "SELECT status, unexpected_failures, outcome_unknown, last_error FROM outbox")[0]
    assert (row.status, row.unexpected_failures, row.outcome_unknown) == ("dead", 3, True)
    assert "retaken 3 times from dispatchers that died or stalled" in row.last_error
    lost = rows(db, "SELECT actor, attempt, error FROM audit_log WHERE outcome = 'lease_lost' ORDER BY attempt")
    assert [(r.attempt, r.error.split(" expired")[0]) for r in lost] == [
        (1, "lease of doomed-0"), (2, "lease of doomed-1"), (3, "lease of doomed-2")]
    assert writer.recorded == ["dead:retaken 3 times from dispatchers that died or stalled while holding it "
                               "(max_attempts 3)"]


def test_a_dispatcher_that_lost_its_lease_never_overwrites_the_outcome_of_the_one_that_retook_the_row(db):
    ledger = Ledger()
    writer = LedgerWriter(ledger)
    queue(db, 1)
    stalled = Dispatcher(db, lambda kind: writer, FAST, worker_id="stalled")
    [item] = stalled.claim(1)
    expire_leases(db)
    # given another dispatcher retook the row and completed it
    assert Dispatcher(db, lambda kind: writer, FAST, worker_id="rescuer").drain().done == 1
    # when the stalled one finally finishes its (failed) attempt
    ledger.script.append("fail")
    counts = Dispatcher(db, lambda kind: writer, FAST, worker_id="stalled").drain()
    stalled.process(item, counts)
    # then the row keeps the rescuer's outcome
    assert scalar(db, "SELECT status FROM outbox") == "done"
    assert scalar(db, "SELECT count(*) FROM audit_log WHERE actor = 'dispatcher:stalled'") == 0


def test_a_live_dispatcher_keeps_rows_whose_writes_outlast_the_lease(db):
    # given writes that take twice the lease, and two dispatchers racing for them
    ledger = Ledger(call_s=1.0)
    writer = LedgerWriter(ledger)
    queue(db, 4)
    drain_together(db, writer, FAST.model_copy(update={"lease_s": 0.5}), dispatchers=2, concurrency=2)
    # then the heartbeat kept every lease alive: no row was retaken or written twice
    assert scalar(db, "SELECT count(*) FROM audit_log WHERE outcome = 'lease_lost'") == 0
    assert [r.attempts for r in rows(db, "SELECT attempts FROM outbox")] == [1, 1, 1, 1]
    assert ledger.applies == 4 and set(ledger.effects.values()) == {1}


def test_writes_run_concurrently_but_never_beyond_the_systems_limit_across_dispatchers(db):
    # given 60 slow writes and two dispatchers, the system allowing 3 in flight
    ledger = Ledger(call_s=0.05)
    writer = LedgerWriter(ledger)
    queue(db, 60)
    drain_together(db, writer, FAST, dispatchers=2, concurrency=3)
    # then the writes overlapped up to the limit and no further
    assert ledger.peak_in_flight == 3
    assert scalar(db, "SELECT count(*) FROM outbox WHERE status = 'done'") == 60
    assert set(ledger.effects.values()) == {1}


def test_a_systems_slot_is_held_while_the_writer_runs_not_while_the_hub_records_the_outcome(db):
    # given a system that allows one write at a time, and two rows for it
    second_write_started = threading.Event()

    class Recorder(LedgerWriter):
        def apply(self, key, payload, attempt: Attempt) -> WriteResult:
            if key.endswith("-1"):
                second_write_started.set()
            return super().apply(key, payload, attempt)

        def record_result(self, conn, kind, payload, result: WriteResult) -> None:
            # the first row's outcome is being recorded (its transaction open) until the second
            # row's write has started; failing after a generous wait rather than hanging
            if result.external_id.endswith("-0"):
                self.overlapped = second_write_started.wait(timeout=60)
            super().record_result(conn, kind, payload, result)

    ledger = Ledger()
    writer = Recorder(ledger)
    queue(db, 2)
    limits = CallLimits(concurrency=1)
    # (leases outlasting the wait: a lapsed lease would free the first row's slot anyway)
    settings = FAST.model_copy(update={"lease_s": 300})
    counts = Dispatcher(db, lambda kind: writer, settings, limits_for=lambda system: limits).drain()
    # then the second write went out while the hub was still recording the first one's outcome,
    # and the system never had more than one write in flight
    assert counts.done == 2 and writer.overlapped
    assert ledger.peak_in_flight == 1
    assert set(ledger.effects.values()) == {1}


def test_a_failed_multi_step_write_records_how_far_it_got(db):
    # given a writer that completes step one, reports it, then fails
    class TwoSteps(LedgerWriter):
        def apply(self, key, payload, attempt: Attempt) -> WriteResult:
            attempt.progress(WriteResult(external_id=f"B-{key}", status="saved"))
            raise RetryableError("HTTP 502 on step two", system="ledger", operation="step2")

    writer = TwoSteps(Ledger())
    queue(db, 1)
    # (a backoff the run cannot outlast: under load a 10 ms retry fell due within the same run)
    slow_retry = FAST.model_copy(update={"backoff_initial_s": 30, "backoff_max_s": 60})
    counts = Dispatcher(db, lambda kind: writer, slow_retry).run_once()
    # then the rules heard of the progress, and the row keeps it beside the retry
    assert counts.retried == 1
    assert writer.progress == [("B-ledger.thing-0", "saved")]
    result = scalar(db, "SELECT result FROM outbox")
    assert (result["external_id"], result["status"], result["complete"]) == ("B-ledger.thing-0", "saved", False)


def test_a_spent_send_budget_defers_rows_without_counting_an_attempt(db):
    # given a recipient who may get 2 messages per 60 s, and 3 queued for them
    ledger = Ledger()
    writer = LedgerWriter(ledger)
    queue(db, 3, recipient="Mgr01")
    budget = SendBudget(scope="ledger:app", recipient=lambda p: p["recipient"].lower(),
                        windows=(RateWindow(60, 2),), unsettled_s=1)
    limits = CallLimits(concurrency=4, budgets={"thing": budget})
    counts = Dispatcher(db, lambda kind: writer, FAST, limits_for=lambda s: limits).drain()
    # then two went out and the third waits for the window, untouched
    assert (counts.done, counts.deferred, counts.claimed) == (2, 1, 2)
    waiting = rows(db, "SELECT attempts, first_attempt_at, next_attempt_at - updated_at AS wait FROM outbox "
                       "WHERE status = 'pending'")[0]
    assert waiting.attempts == 0 and waiting.first_attempt_at is None
    # (60 s after the first send, which counts as sent up to unsettled_s late while in flight: the
    # first send was reserved in the claim that deferred the row, so the wait counts from that
    # transaction's start; the upper bound allows for a slow transaction, not a fast machine)
    assert dt.timedelta(seconds=61) <= waiting.wait <= dt.timedelta(seconds=66), waiting.wait
    spends = rows(db, "SELECT recipient, spent_at <= now() AS settled FROM send_budget_spend")
    assert [(s.recipient, s.settled) for s in spends] == [("mgr01", True)] * 2


def test_every_kind_needs_a_registered_handler_before_anything_is_claimed(db):
    queue(db, 1, kind="ledger.unregistered_writer")
    try:
        Dispatcher(db, lambda kind: LedgerWriter(Ledger()), FAST).drain()
    except Exception as exc:
        assert "no effect handler registered" in str(exc)
    else:
        raise AssertionError("a kind without a handler must be refused")
    assert scalar(db, "SELECT status FROM outbox") == "pending"
    assert "unregistered_writer" not in effects.registered()


def test_tracebacks_lose_credentials_before_the_audit_sees_them():
    text = ("KeyError: 'token=abc123XYZ' app_secret: 'shh-its-secret' Authorization: Bearer eyJhbGciOi.J9xx "
            "session 0123456789abcdef0123456789abcdef "
            "sig dGhpcyBpcyBhIHZlcnkgbG9uZyBiYXNlNjQgc3RyaW5nIGZvciB0ZXN0cw== in test_long_function_name_kept_as_is")
    cleaned = redact(text)
    for secret in ("abc123XYZ", "shh-its-secret", "eyJhbGciOi", "0123456789abcdef0123", "dGhpcyBpcyBh"):
        assert secret not in cleaned
    assert "test_long_function_name_kept_as_is" in cleaned and "KeyError" in cleaned


def test_a_failing_effect_handler_dead_letters_the_row_and_a_replay_adopts_the_write(db):
    # given a write that succeeds, and rules whose handler of the outcome has a bug
    ledger = Ledger()
    writer = LedgerWriter(ledger)
    broken = True

    def on_done(conn, kind, payload, result):
        if broken:
            raise ValueError("rules bug")
        writer.record_result(conn, kind, payload, result)

    effects.register("thing", effects.EffectHandler(on_done=on_done, on_failed=writer.record_failure))
    queue(db, 1)
    counts = Dispatcher(db, lambda kind: writer, FAST).drain()
    # then the row is dead-lettered (not left in_progress), the outcome marked unknown, the bug audited
    assert (counts.dead, ledger.effects) == (1, {"ledger.thing-0": 1})
    row = rows(db, "SELECT status, outcome_unknown, last_error FROM outbox")[0]
    assert (row.status, row.outcome_unknown) == ("dead", True)
    assert "the on_done handler of ledger.thing raised ValueError: rules bug" in row.last_error
    assert 'raise ValueError("rules bug")' in scalar(db, "SELECT detail->>'traceback' FROM audit_log "
                                                         "WHERE outcome = 'dead'")

    # when the bug is fixed and the row replayed, then the write is adopted, not repeated
    broken = False
    with db.begin() as conn:
        replay(conn, None)
    counts = Dispatcher(db, lambda kind: writer, FAST).drain()
    assert (counts.done, counts.adopted, ledger.applies) == (1, 1, 1)
    assert writer.recorded == ["ledger.thing-0"]
