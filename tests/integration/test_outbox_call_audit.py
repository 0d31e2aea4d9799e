"""The audit rows of a per-call writer's calls, held back and committed by the dispatcher.

A connector's client audits each HTTP exchange (``hub.audit.AuditObserver``). Under the
dispatcher a per-call writer's rows are held back on the worker's thread
(``hub.audit.deferred_calls``): an earlier call's row is committed before the write's next
call starts, the last call's row with the attempt's outcome, in one commit. These tests
drive a two-call writer through the real ``connectors.kit.http.send`` (an
``httpx.MockTransport`` plays the system) on a real Postgres, and read the audit from a
connection of their own, as a crash would leave it.
"""

from __future__ import annotations

from typing import Any

import httpx
import sqlalchemy as sa

from connectors.kit.http import CallContext, json_object, send
from hub.audit import AuditObserver
from hub.contracts import Attempt, CallLimits, WriteResult
from hub.outbox import Dispatcher, effects, enqueue
from hub.settings import OutboxSettings
from tests.conftest import rows, scalar

FAST = OutboxSettings(max_attempts=3, backoff_initial_s=0.01, backoff_max_s=0.05, lease_s=10)
KIND = "twostep.callpair"


class TwoCallWriter:
    """Writes an effect with two calls, ``first`` then ``second``; ``on_second`` runs in the
    system while it answers the second call (what the tests look at meanwhile)."""

    def __init__(self, db: Any, on_second: Any = None, second_status: int = 200) -> None:
        self.observer = AuditObserver(db.engine, actor="test:twostep")
        self.on_second = on_second
        self.second_status = second_status
        self.http = httpx.Client(transport=httpx.MockTransport(self._answer), base_url="http://system.test")

    def _answer(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/second":
            if self.on_second is not None:
                self.on_second()
            return httpx.Response(self.second_status, json={"ok": self.second_status == 200})
        return httpx.Response(200, json={"ok": True})

    def _call(self, operation: str, key: str) -> dict[str, Any]:
        call = CallContext("twostep", operation, key=key)
        return send(self.http, self.http.build_request("POST", f"/{operation}"), call, self.observer,
                    lambda response, timer: json_object(response, call))

    def apply(self, key: str, payload: dict[str, Any], attempt: Attempt) -> WriteResult:
        """The writer contract: two calls, one after the other."""
        self._call("first", key)
        self._call("second", key)
        return WriteResult(external_id=f"ext-{key}", status="created")


def _no_change(*args: Any) -> None:
    """The rules change nothing for this kind."""


effects.register("callpair", effects.EffectHandler(on_done=_no_change, on_failed=_no_change))


def audit_rows(db) -> list[Any]:
    return rows(db, "SELECT id, actor, operation, outcome, attempt FROM audit_log ORDER BY id")


def dispatcher(db, writer: TwoCallWriter) -> Dispatcher:
    limits = CallLimits(concurrency=2, per_call=True)
    return Dispatcher(db, lambda kind: writer, FAST, kinds=[KIND], worker_id="d1", limits_for=lambda s: limits)


def queue(db) -> None:
    with db.begin() as conn:
        enqueue(conn, KIND, "k-0", {"n": 0}, max_attempts=FAST.max_attempts)


def test_an_earlier_calls_row_is_committed_before_the_next_call_and_the_last_with_the_outcome(db):
    # given a two-call write, and a look at the audit (committed rows only) during its second call
    seen: list[list[str]] = []
    writer = TwoCallWriter(db, on_second=lambda: seen.append([r.operation for r in audit_rows(db)]))
    queue(db)

    counts = dispatcher(db, writer).drain()

    # then the first call was on record before the second went out
    assert seen == [["first"]]
    # and the second call and the outcome were committed together, in order, each audited once
    assert counts.done == 1
    assert [(r.actor, r.operation, r.outcome) for r in audit_rows(db)] == [
        ("test:twostep", "first", "ok"), ("test:twostep", "second", "ok"), ("dispatcher:d1", KIND, "ok")]
    assert scalar(db, "SELECT status FROM outbox") == "done"


def test_a_failed_attempts_calls_are_audited_with_its_retry(db):
    # given a system that answers the second call with a 500, then recovers
    writer = TwoCallWriter(db, second_status=500)

    def recover() -> None:
        writer.second_status = 200

    queue(db)
    first_attempt = dispatcher(db, writer).run_once(1)
    assert first_attempt.retried == 1
    # then the failed attempt's two calls are on record with its retry
    assert [(r.operation, r.outcome) for r in audit_rows(db)] == [("first", "ok"), ("second", "error"),
                                                                  (KIND, "retry")]
    recover()
    with db.begin() as conn:
        conn.execute(sa.text("UPDATE outbox SET next_attempt_at = now()"))
    assert dispatcher(db, writer).drain().done == 1
    assert [(r.operation, r.outcome, r.attempt) for r in audit_rows(db)][3:] == [
        ("first", "ok", 1), ("second", "ok", 1), (KIND, "ok", 2)]


def test_calls_of_a_row_retaken_meanwhile_are_audited_though_its_outcome_is_not_recorded(db):
    # given the row is retaken by another dispatcher while the write's second call is under way
    def retaken() -> None:
        with db.begin() as conn:
            conn.execute(sa.text("UPDATE outbox SET locked_by = 'd2', attempts = attempts + 1"))

    writer = TwoCallWriter(db, on_second=retaken)
    queue(db)

    counts = dispatcher(db, writer).drain()

    # then this dispatcher records no outcome, but both calls it made are on record
    assert counts.done == 0
    assert [(r.operation, r.outcome) for r in audit_rows(db)] == [("first", "ok"), ("second", "ok")]
    assert rows(db, "SELECT status, locked_by FROM outbox")[0] == ("in_progress", "d2")


def test_when_the_statement_committing_an_earlier_calls_row_fails_the_next_call_is_not_made(db, monkeypatch):
    # given a two-call write, and a database that does not answer the statement that commits the
    # first call's row before the second call (once)
    from hub.outbox import slots

    seconds: list[str] = []
    writer = TwoCallWriter(db, on_second=lambda: seconds.append("second"))
    real_execute = slots.prepared.execute
    failed: list[str] = []

    def execute(conn: Any, query: str, params: Any, **kwargs: Any) -> Any:
        if query.startswith("INSERT INTO audit_log") and not failed:
            failed.append(query)
            raise sa.exc.OperationalError(query, {}, Exception("server closed the connection"))
        return real_execute(conn, query, params, **kwargs)

    monkeypatch.setattr(slots.prepared, "execute", execute)  # the slot connection's statements (hub.audit's too)
    queue(db)

    counts = dispatcher(db, writer).run_once(1)

    # then the second call was not sent (its report is an error), the attempt is retried, and the
    # first call's row is on record with the retry (held back until the outcome's transaction)
    assert failed and seconds == []
    assert counts.retried == 1
    assert [(r.operation, r.outcome) for r in audit_rows(db)] == [("first", "ok"), ("second", "error"),
                                                                  (KIND, "retry")]
    assert "audit not written: the database did not answer" in scalar(db, "SELECT last_error FROM outbox")
