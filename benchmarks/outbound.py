"""Outbound throughput: outbox effects against each sandbox, and dispatchers scaled out.

    .venv/bin/python benchmarks/outbound.py [--kinds kingdee.sales_order yonyou.sales_order crm.webhook]
                                            [--effects 10000] [--latency-effects 1000] [--latency-ms 100]
                                            [--processes 1 2 4] [--scale-out-effects 2000] [--chat-effects 750]

Per outbox kind, on a fresh schema of the real Postgres and a sandbox in its own process
(``hub sandbox <system>``), each enforcing its platform's limits (the ERPs their
concurrency, ``ServingGate``):

1. ``--effects`` effects with no injected latency, then ``--latency-effects`` with
   ``--latency-ms`` on every call (the sandbox's ``latency`` fault), drained by one
   dispatcher in this process (``HubRuntime.dispatcher().drain``). Printed: effects/s, the
   calls each effect took, the concurrency used (peak calls in flight at the sandbox and the
   connector's cap), and the share of wall time the kind was held at its cap (sampled from
   the outbox every 20 ms: work was waiting and the limit, not the hub, held it back). With
   latency the ideal is cap ÷ (calls per effect × latency); the ratio to it is printed.
2. Scale-out: ``--processes`` dispatcher processes (``hub dispatch --wait``, configured by
   environment, as deployed) over one outbox of ``--scale-out-effects`` effects, released
   to all of them at once: effects/s per process count; then zero duplicates and zero lost,
   checked on the sandbox's own state (the ERP's order count grew by exactly the effects;
   the CRM receiver accepted each delivery id once) and on the outbox (all done).

Effects: ``<erp>.sales_order`` is an approved CRM order (Save → Submit → Audit, plus a
customer lookup or creation; the ERP's customers are synced first); ``crm.webhook`` is a
signed ``lead.assigned`` event to the CRM's receiver, over 500 customers (deliveries of
one customer go out in order, ``ordering_key``); ``wecom.reminder``, ``dingtalk.reminder``
and ``dingtalk.todo`` are reminders (a WeCom app message, a DingTalk work notice) and
DingTalk to-dos for CRM tasks due within the hour, spread over the sales reps of the demo
CRM, whose accounts come from the platform's directory (synced from the sandbox first, as
the fault matrix does, ``tests/support/writer_cases.py``). The chat platforms' own limits
hold and are what bounds them: WeCom's per-member budget (30 messages a minute, 1,000 an
hour; ``deferred`` counts rows the send budget put back), DingTalk's 20 calls a second per
app (the client paces itself; ``paced`` is the seconds its pacer waited). ``--chat-effects``
sizes them (by default 750: WeCom's minute budget over its 25 reps); they are not scaled
out (their limits are per app and per person, whatever the processes).

"At the cap" is the share of 20 ms samples in which work waited for the kind's concurrency
cap: on a dispatcher with call slots (``hub.outbox.slots``), a worker was waiting for a slot
while every slot was taken; on an older one, the rows in progress were at the cap while
ready rows waited. Uses ``HUB_TEST_DATABASE_URL``, else Postgres on 127.0.0.1:5432/test.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hub.rules  # noqa: F401  (effect handlers, webhook feed)
from benchmarks.dispatch import ChildSandbox, cpu_seconds, database_url
from benchmarks.end_to_end import FreshSchema, machine, uptime
from connectors.crm.sandbox import SANDBOX_SECRET
from connectors.kit import pacing
from hub import prepared
from hub.demo.data import load_crm_demo
from hub.registry import connector
from hub.rules import webhooks
from hub.rules.reminders import ReminderPolicy, evaluate_reminders
from hub.rules.todos import TodoPolicy, evaluate_todos
from hub.runtime import HubRuntime, load_sandbox
from hub.settings import OutboxSettings
from tests.support.dispatchers import dispatcher_env, start_dispatcher
from tests.support.orders import approve_crm_orders

FAST_RETRIES = {"backoff_initial_s": 0.05, "backoff_max_s": 1.0}
WEBHOOK_CUSTOMERS = 500
ERPS = ("kingdee", "yonyou")  # their sandboxes take a seed size (--scale)
CHAT_KINDS = ("wecom.reminder", "dingtalk.reminder", "dingtalk.todo")
HOME = Path("/tmp/hub-bench-outbound")


def system_of(kind: str) -> str:
    return kind.partition(".")[0]


def connector_settings(kind: str, sandbox_url: str) -> dict[str, Any]:
    """What the hub needs beyond sandbox mode to write ``kind`` (the CRM's webhook endpoint)."""
    if kind == "crm.webhook":
        return {"base_url": sandbox_url + "/webhooks", "signing_secret": SANDBOX_SECRET}
    if kind == "yonyou.sales_order":  # a tenant with purchased quota (the sandbox's is off too)
        return {"order_calls_per_minute": 0}
    return {}


def prepare(kind: str, runtime: HubRuntime, n: int) -> None:
    """Put ``n`` effects of ``kind`` into the outbox."""
    db = runtime.db
    if kind.endswith(".sales_order"):
        erp = system_of(kind)
        runtime.sync(erp, "customers")
        approve_crm_orders(db, n, erp_system=erp, max_attempts=20)
        return
    if kind in CHAT_KINDS:
        due_tasks(kind, runtime, n)
        return
    if kind == "crm.webhook":
        with db.begin() as conn:
            customers = [conn.execute(sa.text("INSERT INTO customer (name, normalized_name) VALUES (:n, :n) "
                                              "RETURNING id"), {"n": f"基准{i}号贸易有限公司"}).scalar_one()
                         for i in range(WEBHOOK_CUSTOMERS)]
            for i in range(n):
                cid = customers[i % len(customers)]
                webhooks.emit(conn, "lead.assigned", customer_id=cid, subject=f"lead:{i}",
                              data={"lead_id": i, "owner_user_id": 7, "rule": "region"})
        runtime.feed_outbox()  # events become outbox rows (the dispatcher would do it on its first claim)
        return
    raise SystemExit(f"no preparation for {kind}")


def due_tasks(kind: str, runtime: HubRuntime, n: int) -> None:
    """The demo CRM with the platform's directory synced onto it, ``n`` tasks due within the
    hour spread over its sales reps, and the rules' reminders or to-dos for them queued."""
    system = system_of(kind)
    seed: dict[str, Any] = load_sandbox(connector(system)).demo_seed()  # type: ignore[misc]
    now = dt.datetime.now(dt.UTC)
    with runtime.db.begin() as conn:
        load_crm_demo(conn, seed["people"], seed["companies"], now=now, orders=0)
        conn.execute(sa.text("DELETE FROM task"))
        conn.execute(sa.text("UPDATE customer SET assigned_at = NULL"))  # no first-follow-up tasks here
    runtime.sync(system, "directory")
    column = f"{system}_userid"
    with runtime.db.begin() as conn:
        reps = conn.execute(sa.text(
            f"SELECT id FROM internal_user WHERE active AND {column} IS NOT NULL AND title LIKE '%销售代表%' "
            "ORDER BY id")).scalars().all()
        conn.execute(sa.text(
            "INSERT INTO task (title, description, assignee_id, due_at, customer_id) "
            "SELECT '跟进任务 ' || i, '报价跟进', (CAST(:reps AS bigint[]))[1 + i % :n_reps], "
            "now() + interval '30 minutes', (SELECT min(id) FROM customer) FROM generate_series(0, :n - 1) AS i"),
            {"reps": list(reps), "n_reps": len(reps), "n": n})
        if kind.endswith(".todo"):
            queued = evaluate_todos(conn, now, TodoPolicy()).queued
        else:
            queued = evaluate_reminders(conn, now, ReminderPolicy(channels=(system,))).queued
    if queued != n:
        raise RuntimeError(f"{kind}: {queued} effects queued for {n} tasks")


def sandbox_figures(sandbox: ChildSandbox) -> dict[str, Any]:
    """Calls served, peak in flight, the sandbox's cap, and what it holds of the effects."""
    if sandbox.system == "crm":
        state = sandbox.admin("/__sandbox__/deliveries")
        return {"calls": state["arrivals"], "peak": state["peak_in_flight"], "held": len(state["accepted"]),
                "duplicates": state["duplicates"], "refused": len(state["rejected"])}
    state = sandbox.admin("/__sandbox__/state")
    if sandbox.system == "wecom":  # over the per-member limit WeCom drops messages silently: "dropped"
        return {"calls": sum(state["api_calls"].values()), "peak": state.get("peak_in_flight", {}).get("message/send", 0),
                "held": state["deliveries"], "duplicates": state["duplicates_suppressed"],
                "refused": state.get("refused", 0) + state["dropped"]}
    if sandbox.system == "dingtalk":
        return {"calls": sum(state["calls"].values()), "peak": state["peak_in_flight"],
                "held": state["todos"] + state["deliveries"], "duplicates": state["suppressed"],
                "refused": state["throttled"]}
    held = state["counts"]["SAL_SaleOrder"] if sandbox.system == "kingdee" else state["orders"]
    return {"calls": sum(state["requests"].values()), "peak": state["peak_in_flight"], "held": held,
            "duplicates": 0, "refused": state["overloaded"]}


class CapSampler:
    """Samples, every 20 ms, whether work waits for ``kind``'s concurrency cap (module docstring)."""

    def __init__(self, db: Any, kind: str, cap: int, dispatcher: Any) -> None:
        self.db, self.kind, self.cap = db, kind, cap
        self.slots = getattr(dispatcher, "slots", None)  # a dispatcher with call slots
        self.samples = self.capped = self.statements = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        query = sa.text("SELECT count(*) FILTER (WHERE status = 'in_progress'), "
                        "count(*) FILTER (WHERE status = 'pending' AND next_attempt_at <= now()) "
                        "FROM outbox WHERE kind = :k")
        while not self._stop.wait(0.02):
            if self.slots is not None:
                now = self.slots.figures(system_of(self.kind))
                capped = now.in_flight >= self.cap and now.waiting > 0
            else:
                with self.db.engine.connect() as conn:
                    in_flight, ready = conn.execute(query, {"k": self.kind}).one()
                self.statements += 1  # its own query, not the dispatcher's
                capped = in_flight >= self.cap and ready > 0
            self.samples += 1
            self.capped += int(capped)

    def __enter__(self) -> CapSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def share(self) -> float:
        return self.capped / max(self.samples, 1)


@dataclass
class Result:
    kind: str
    latency_ms: int
    effects: int
    done: int
    seconds: float
    calls: int
    peak: int
    cap: int
    capped: float
    refused: int
    cpu: float
    deferred: int = 0
    paced_s: float = 0.0
    sandbox_cpu: float = 0.0
    qps: float | None = None  # the calls a second the client paces itself to (DingTalk), if any
    slot_ms: float | None = None  # a slot held per hold: a write, or one call (CallLimits.per_call)
    call_ms: float | None = None  # the audited duration of the calls, per hold
    statements: int = 0  # on the hub's engine (not the call slots' own connections)
    commits: int = 0

    def line(self) -> str:
        rate = self.done / self.seconds
        per_effect = self.calls / max(self.done, 1)
        text = (f"{self.kind:<20} {self.latency_ms:>4} ms/call {self.done:>6}/{self.effects} done {self.seconds:7.1f} s "
                f"{rate:7.1f} effects/s | {per_effect:.2f} calls/effect, peak {self.peak} in flight (cap {self.cap}), "
                f"at the cap {self.capped:.0%} of the time, {self.refused} refused, dispatcher cpu/wall "
                f"{self.cpu / self.seconds:.2f}, sandbox cpu/wall {self.sandbox_cpu / self.seconds:.2f} | "
                f"{self.statements / max(self.done, 1):.1f} statements and {self.commits / max(self.done, 1):.1f} "
                "commits per effect")
        if self.slot_ms is not None and self.call_ms is not None:
            text += (f" | a slot held {self.slot_ms:.1f} ms per hold (a write, or a call with per_call), the "
                     f"calls' audited time {self.call_ms:.1f} ms per hold")
        if self.deferred or self.paced_s:
            text += f" | send budget deferred {self.deferred} rows, client paced {self.paced_s:.1f} s in all"
        if self.latency_ms:
            ideal = self.cap / (per_effect * self.latency_ms / 1000)
            text += f" | ideal cap/(calls x latency) {ideal:.1f}/s, ratio {rate / ideal:.2f}"
            if self.qps is not None and self.qps / per_effect < ideal:
                paced = self.qps / per_effect
                text += f"; below the app's {self.qps:g} calls/s: ideal {paced:.1f}/s, ratio {rate / paced:.2f}"
        return text


def one_dispatcher(url: str, kind: str, n: int, latency_ms: int) -> Result:
    """``n`` effects of ``kind`` drained by one in-process dispatcher."""
    system = system_of(kind)
    sandbox = ChildSandbox(system, 0.05 if system in ERPS else None)
    schema = FreshSchema(url)
    try:
        runtime = schema.runtime(system, sandbox.url, **connector_settings(kind, sandbox.url))
        runtime.settings = runtime.settings.model_copy(update={"outbox": OutboxSettings(**FAST_RETRIES)})
        prepare(kind, runtime, n)
        sandbox.admin("/__sandbox__/faults", {"clear": True, "latency_ms": latency_ms,
                                              "faults": [{"kind": "latency", "times": None}] if latency_ms else []})
        before = sandbox_figures(sandbox)
        cap = runtime.call_limits(system).concurrency
        dispatcher = runtime.dispatcher(kinds=[kind])
        paced = sum(p.waited_s for p in pacing._SHARED.values())
        with schema.db.engine.connect() as conn:
            audited_before = conn.execute(sa.text("SELECT COALESCE(max(id), 0) FROM audit_log")).scalar_one()
        tally = {"statements": 0, "commits": 0}
        sent_prepared = prepared.sent()  # statements sent on the driver's connection (not SQLAlchemy's events)

        def statement(*_: object) -> None:
            tally["statements"] += 1

        def commit(*_: object) -> None:
            tally["commits"] += 1

        sa.event.listen(schema.db.engine, "before_cursor_execute", statement)
        sa.event.listen(schema.db.engine, "commit", commit)
        with CapSampler(schema.db, kind, cap, dispatcher) as sampler:
            cpu, started, sandbox_cpu = time.process_time(), time.perf_counter(), sandbox.cpu()
            counts = dispatcher.drain(wait_for_scheduled=True, timeout_s=7200)
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
            sandbox_cpu = sandbox.cpu() - sandbox_cpu
        tally["statements"] += prepared.sent() - sent_prepared
        sa.event.remove(schema.db.engine, "before_cursor_execute", statement)
        sa.event.remove(schema.db.engine, "commit", commit)
        after = sandbox_figures(sandbox)
        paced = sum(p.waited_s for p in pacing._SHARED.values()) - paced
        slot_ms = call_ms = None
        if sampler.slots is not None:
            held = sampler.slots.figures(system)
            slot_ms = held.held_s * 1000 / max(held.writes, 1)
            with schema.db.engine.connect() as conn:  # the calls' own time, as the clients audited it
                call_ms = float(conn.execute(sa.text(
                    "SELECT COALESCE(sum(duration_ms), 0) FROM audit_log WHERE actor NOT LIKE 'dispatcher:%' "
                    "AND system = :s AND id > :before"), {"s": system, "before": audited_before}).scalar_one()) / max(held.writes, 1)
        runtime.close()
        return Result(kind, latency_ms, n, counts.done, seconds, after["calls"] - before["calls"], after["peak"], cap,
                      sampler.share, after["refused"] - before["refused"], cpu, deferred=counts.deferred, paced_s=paced,
                      sandbox_cpu=sandbox_cpu, statements=tally["statements"] - sampler.statements,
                      commits=tally["commits"], slot_ms=slot_ms, call_ms=call_ms,
                      qps=getattr(runtime.connector_settings(system), "max_qps", None))
    finally:
        schema.drop()
        sandbox.stop()


def scale_out(url: str, kind: str, n: int, processes: int, workers: int | None = None) -> str:
    """``n`` effects of ``kind`` drained by ``processes`` dispatcher processes (``workers`` each,
    if given: ``OutboxSettings.workers``); checked for duplicates and losses on the sandbox's state."""
    system = system_of(kind)
    sandbox = ChildSandbox(system, 0.05 if system in ERPS else None)
    schema = FreshSchema(url)
    children = []
    try:
        runtime = schema.runtime(system, sandbox.url, **connector_settings(kind, sandbox.url))
        prepare(kind, runtime, n)
        runtime.close()
        with schema.db.begin() as conn:
            conn.execute(sa.text("UPDATE outbox SET next_attempt_at = now() + interval '1 hour'"))
        before = sandbox_figures(sandbox)
        HOME.mkdir(parents=True, exist_ok=True)
        env = dispatcher_env(schema.db, HOME, sandboxes={system: sandbox.url},
                             connectors={system: connector_settings(kind, sandbox.url)},
                             outbox={**FAST_RETRIES, **({"workers": workers} if workers else {})})
        names = [f"bench-{schema.schema}-{i}" for i in range(processes)]
        children = [start_dispatcher({**env, "PGAPPNAME": name}, kind) for name in names]
        while True:  # every process connected (past its imports) before the work is released
            with schema.db.engine.connect() as conn:
                up = conn.execute(sa.text("SELECT count(DISTINCT application_name) FROM pg_stat_activity "
                                          "WHERE application_name = ANY(:n)"), {"n": names}).scalar_one()
            if up == processes:
                break
            if any(c.poll() is not None for c in children):
                raise RuntimeError("a dispatcher process exited before the work was released")
            time.sleep(0.1)
        cpus = [0.0] * processes
        started = time.perf_counter()
        with schema.db.begin() as conn:
            conn.execute(sa.text("UPDATE outbox SET next_attempt_at = now()"))
        for i, child in enumerate(children):
            while child.poll() is None:
                with contextlib.suppress(OSError):  # it may exit between poll and read
                    cpus[i] = cpu_seconds(f"/proc/{child.pid}/stat")
                time.sleep(0.05)
        seconds = time.perf_counter() - started
        after = sandbox_figures(sandbox)
        with schema.db.begin() as conn:
            not_done = conn.execute(sa.text("SELECT count(*) FROM outbox WHERE status <> 'done'")).scalar_one()
            workers = conn.execute(sa.text(
                "SELECT count(DISTINCT split_part(actor, ':', 3)) FROM audit_log WHERE actor LIKE 'dispatcher:%' "
                "AND outcome IN ('ok', 'adopted')")).scalar_one()
        held = after["held"] - before["held"]
        duplicates = max(held - n, 0) + after["duplicates"] - before["duplicates"]
        lost = n - min(held, n) + not_done
        if duplicates or lost:
            raise AssertionError(f"{kind}, {processes} processes: {duplicates} duplicates, {lost} lost")
        return (f"{kind:<20} {processes} process(es): {n} effects in {seconds:6.1f} s = {n / seconds:7.1f} effects/s; "
                f"{workers} of them did work; 0 duplicates, 0 lost (sandbox holds {held} new, outbox all done); "
                f"peak {after['peak']} in flight, {after['refused'] - before['refused']} refused; "
                f"dispatcher cpu/wall {sum(cpus) / seconds:.2f}")
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait(timeout=30)
        schema.drop()
        sandbox.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kinds", nargs="+", default=["kingdee.sales_order", "yonyou.sales_order", "crm.webhook",
                                                       *CHAT_KINDS])
    parser.add_argument("--effects", type=int, default=10_000, help="effects per kind without latency (0: skip)")
    parser.add_argument("--latency-effects", type=int, default=1_000, help="effects per kind with latency (0: skip)")
    parser.add_argument("--chat-effects", type=int, default=750,
                        help="effects per chat kind (reminders, to-dos), with and without latency (0: skip)")
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument("--processes", nargs="*", type=int, default=[1, 2, 4])
    parser.add_argument("--scale-out-effects", type=int, default=2_000)
    parser.add_argument("--scale-out-workers", type=int, nargs="*", default=[0],
                        help="workers per scale-out process (0: the default); with fewer workers than the "
                             "system's rows held (twice its cap) a second process gets rows too")
    args = parser.parse_args()
    url = database_url()
    print(f"# outbound, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {machine()}, {uptime()}", flush=True)
    for kind in args.kinds:
        sizes = ((args.chat_effects, 0), (args.chat_effects, args.latency_ms)) if kind in CHAT_KINDS else (
            (args.effects, 0), (args.latency_effects, args.latency_ms))
        for n, latency in sizes:
            if n:
                print(one_dispatcher(url, kind, n, latency).line(), f"({uptime()})", flush=True)
        for processes in args.processes if kind not in CHAT_KINDS else ():
            for workers in args.scale_out_workers:
                print(scale_out(url, kind, args.scale_out_effects, processes, workers or None),
                      f"workers {workers or 'default'} ({uptime()})", flush=True)


if __name__ == "__main__":
    main()
