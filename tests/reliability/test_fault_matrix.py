"""The fault matrix: every outbox writer under every fault its platform can throw, and all at once.

For each writer of ``tests.support.writer_cases.WRITER_CASES`` (ERP orders to Kingdee and
Yonyou, reminders to WeCom and DingTalk, DingTalk to-dos, OA approvals of CRM orders in DingTalk
and WeCom — their creates, and the checks a callback or the reconcile poll queues to re-read a
decided instance —, webhooks to the CRM) one sandbox is
started, and then for each fault of :data:`FAULTS` in turn, effects are queued the way the rules
queue them and dispatched by the real dispatcher, over real HTTP, with that fault armed. Each
cell (writer × fault) is judged from the sandbox's own state and the audit:

- zero lost and zero duplicates: every effect of the cell is in the sandbox exactly once;
- no dead letters: every fault here is transient (the cell's outbox rows all end ``done``);
- the fault really struck;

and at the end, over all cells: every attempt of every row has exactly one audited outcome,
and every request the sandbox saw to a write operation has its audit row (a dropped or
timed-out one included). The test prints the writer's row of the matrix.

"lost_write_reply" drops the reply of the write operations only (the write applied), on the first
write and half the rest, so every writer surely has writes it must find again rather than repeat.
"everything" is the mix of the issue: 20 % HTTP 500, 10 % timeouts, 5 % dropped replies of all
requests, and the token expiring every 100th request (every 15th in the suite's short run).
The suite runs 5 effects per single-fault cell and 30 in "everything"; ``SOAK_EFFECTS=1000``
(``make soak``) runs 100 per single-fault cell and 1,000 in "everything".
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack

import pytest

from connectors.kit.sandbox import FaultPlan
from hub.database import Database
from hub.registry import writer_kinds
from tests.conftest import rows, scalar
from tests.support.writer_cases import (
    CLIENT_TIMEOUT_S,
    EFFECTS_OF_WRITER,
    WRITER_CASES,
    World,
    WriterCase,
    not_near_shanghai_midnight,
)

SOAK = int(os.environ.get("SOAK_EFFECTS", "0"))
EFFECTS = SOAK // 10 or 5  # per single-fault cell
MIXED_EFFECTS = SOAK or 30  # in the "everything" column
TOKEN_LIFE = 100 if SOAK else 15  # requests a token lives under "everything" (the suite's runs are short)
# a cell's dispatcher gives up waiting after this: a cell that livelocks fails in the suite within
# two minutes, the stuck rows named, instead of holding a worker for many
DRAIN_S = 600 if SOAK else 120

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(max(600, 10 * SOAK))]

MIX = {"http_500": 0.20, "timeout": 0.10, "drop_response": 0.05}


def everything(plan: FaultPlan, case: WriterCase) -> None:
    """The issue's mix; the token expires every ``TOKEN_LIFE`` requests where there is one."""
    if case.tokens:
        plan.arm("auth_expired", every=TOKEN_LIFE, times=None)
    plan.arm_shares(MIX, seed=6)


def single(kind: str) -> Callable[[FaultPlan, WriterCase], None]:
    """``kind`` strikes the cell's first request (so it surely strikes, however few the effects)
    and then a seeded third of the requests.

    Not "every third request": a writer whose retry makes exactly three requests before its
    write (Kingdee's order lookup, customer lookup, salesperson lookup) then has its third one
    struck on every attempt, for ever, once the rows in flight fall into step; with timeouts
    they do (each costs the same 0.5 s), and kingdee.sales_order × timeout retried three rows
    thousands of times until the retry budget. A random third leaves every attempt a chance.
    """
    def arm(plan: FaultPlan, _: WriterCase) -> None:
        plan.arm(kind, times=1)
        plan.arm(kind, rate=1 / 3, seed=3, times=None)
    return arm


def lost_write_replies(plan: FaultPlan, case: WriterCase) -> None:
    """``drop_response`` on the write operations only: the write applied, its reply lost, on the
    first write and a seeded half of the rest. Under "drop_response" the lookups before a write
    take most of the strikes; here every lost reply is one of a write the platform did apply
    (an approval created, a message sent), which the next attempt must find, not repeat."""
    plan.arm("drop_response", times=1, operations=list(case.write_operations))
    plan.arm("drop_response", rate=1 / 2, seed=5, times=None, operations=list(case.write_operations))


# fault → how to arm it for a writer; under "everything" the kinds strike at random (seeded)
# shares of all requests.
FAULTS: dict[str, Callable[[FaultPlan, WriterCase], object]] = {
    kind: single(kind) for kind in ("http_500", "timeout", "drop_response", "auth_expired", "rate_limit", "busy")
} | {
    "lost_write_reply": lost_write_replies,
    "everything": everything,
}
STRIKES = {"lost_write_reply": "drop_response"}  # the fault kind a column's name stands for


def audited_calls(db, system: str) -> Counter[str]:
    """Audit rows of HTTP exchanges with ``system``, per operation (lower case)."""
    return Counter({r.op: r.n for r in rows(  # (webhook calls are audited as "webhook:<event type>")
        db, "SELECT lower(split_part(operation, ':', 1)) AS op, count(*) AS n FROM audit_log WHERE system = :s "
            "AND actor NOT LIKE 'dispatcher:%' GROUP BY 1", s=system)})


def faults_of(case: WriterCase) -> list[str]:
    """The matrix's columns for ``case`` (a writer without a token cannot have it expire)."""
    return [fault for fault in FAULTS if case.tokens or fault != "auth_expired"]


def cell(case: WriterCase, world: World, db: Database, fault: str, effects: int) -> str:
    """Queue ``effects`` effects, dispatch them under ``fault``; what went wrong ("" when nothing)."""
    expected = case.enqueue(world, db, effects)
    plan = world.faults
    struck_before = len(plan.history)
    FAULTS[fault](plan, case)
    counts = world.hub.dispatcher(kinds=[case.kind]).drain(wait_for_scheduled=True, timeout_s=DRAIN_S)
    plan.clear()
    written = case.written(world)
    problems = []
    if lost := expected - set(written):
        problems.append(f"{len(lost)} lost, e.g. {sorted(lost)[:3]}")
    if twice := [key for key in expected if written[key] > 1]:
        problems.append(f"{len(twice)} written more than once, e.g. {twice[:3]}")
    if counts.dead or counts.failed:
        problems.append(f"{counts.dead} dead, {counts.failed} failed")
    unfinished = rows(db, "SELECT status, count(*) AS n FROM outbox o WHERE kind = :k AND status <> 'done' "
                          f"AND {case.rows_sql} GROUP BY status", k=case.kind)
    if unfinished:
        problems.append(f"outbox rows not done: {[tuple(r) for r in unfinished]}")
    fired = {kind for _, kind in plan.history[struck_before:]}
    mix = {*MIX, *(["auth_expired"] if case.tokens else [])}
    if fired != (mix if fault == "everything" else {STRIKES.get(fault, fault)}):
        problems.append(f"faults that struck: {sorted(fired)}")
    return "; ".join(problems)


def test_every_effect_of_every_writer_the_outbox_dispatches_is_in_the_matrix():
    # a writer registered without its case here (or an approval's checks without theirs) fails this
    covered: dict[str, set[str]] = {}
    for case in WRITER_CASES:
        covered.setdefault(case.kind, set()).add(case.effect)
    needed = {kind: set(EFFECTS_OF_WRITER.get(kind.partition(".")[2], ("",))) for kind in writer_kinds()}
    assert covered == needed


@pytest.mark.parametrize("case", WRITER_CASES, ids=str)
def test_each_effect_reaches_the_platform_exactly_once_under_each_fault_and_every_call_is_audited(
        case: WriterCase, settings, db, monkeypatch):
    if case.kind == "dingtalk.reminder":
        not_near_shanghai_midnight()
    columns = faults_of(case)
    total = sum(MIXED_EFFECTS if fault == "everything" else EFFECTS for fault in columns)
    with ExitStack() as stack:
        # given the writer's platform and the source of its effects
        world = case.start(settings, db, stack, monkeypatch)
        case.prepare(world, db, total)
        plan = world.faults
        plan.timeout_s = CLIENT_TIMEOUT_S + 0.2  # the "timeout" fault outlasts the client's patience
        requests_before = Counter(plan.requests)
        calls_before = audited_calls(db, case.system)

        # when effects are queued and dispatched under each fault in turn
        matrix = {fault: cell(case, world, db, fault, MIXED_EFFECTS if fault == "everything" else EFFECTS)
                  for fault in columns}
        print(f"\n{case.kind}: " + ", ".join(f"{fault} {'FAIL: ' + problem if problem else 'pass'}"
                                            for fault, problem in matrix.items()))

        # then every cell passed: none lost, none twice, no dead letter, the fault struck
        assert {fault: problem for fault, problem in matrix.items() if problem} == {}
        assert sum(case.written(world).values()) == total
        # and every attempt of every row has exactly one audited outcome
        audited = rows(db, "SELECT o.attempts, array_agg(a.attempt ORDER BY a.attempt) AS outcomes "
                           "FROM outbox o JOIN audit_log a ON a.key = o.idempotency_key AND a.actor LIKE 'dispatcher:%' "
                           f"WHERE o.kind = :k AND {case.rows_sql} GROUP BY o.id, o.attempts", k=case.kind)
        assert len(audited) == total
        assert [r for r in audited if r.outcomes != list(range(1, r.attempts + 1))] == []
        # and every request the platform saw to a write operation has its audit row (the client
        # may also record one that never got there: a timeout before the sandbox read it)
        seen = Counter(plan.requests) - requests_before
        calls = audited_calls(db, case.system) - calls_before
        assert all(calls[op] >= seen[op] for op in case.write_operations), (calls, seen)
        assert sum(seen[op] for op in case.write_operations) >= total
        attempts = sum(r.attempts for r in audited)
        on_writes = Counter(k for op, k in plan.history if op.lower() in case.write_operations)
        carried = "reads" if case.effect == "check" else "writes"  # a check's effect is a read of the instance
        print(f"{case.kind}: {total} effects, {attempts} attempts, {sum(seen.values())} requests "
              f"({sum(seen[op] for op in case.write_operations)} {carried}), faults "
              f"{dict(Counter(k for _, k in plan.history))}, of them on {carried} {dict(on_writes)}")


@pytest.mark.parametrize("case", [c for c in WRITER_CASES if c.refusal], ids=str)
def test_only_effects_the_platform_refused_for_good_fail_and_the_rest_go_through_once(
        case: WriterCase, settings, db, monkeypatch):
    assert case.refusal is not None
    with ExitStack() as stack:
        # given effects queued for the writer
        world = case.start(settings, db, stack, monkeypatch)
        case.prepare(world, db, EFFECTS * 3)
        expected = case.enqueue(world, db, EFFECTS * 3)
        # when the platform refuses every third request for good
        world.faults.arm(case.refusal, every=3, times=None)
        counts = world.hub.dispatcher(kinds=[case.kind]).drain(wait_for_scheduled=True, timeout_s=300)
        refused = len(world.faults.history)

        # then exactly the refused effects failed, at once (one attempt, no retry), and were not written
        failed = rows(db, "SELECT idempotency_key, attempts, last_error FROM outbox o WHERE kind = :k "
                          f"AND status = 'failed' AND {case.rows_sql}", k=case.kind)
        assert refused > 0 and len(failed) == refused == counts.failed and counts.dead == 0
        assert {r.attempts for r in failed} == {1}
        # and every other effect went through exactly once
        written = case.written(world)
        assert set(written.values()) == {1} and len(written) == len(expected) - refused
        assert scalar(db, f"SELECT count(*) FROM outbox o WHERE kind = :k AND status = 'done' AND {case.rows_sql}",
                      k=case.kind) == len(expected) - refused
        print(f"\n{case.kind}: {refused} of {len(expected)} refused for good → failed (replayable), "
              f"the rest written once; e.g. {failed[0].last_error[:80]}")
