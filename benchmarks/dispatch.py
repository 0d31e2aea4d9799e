"""Dispatch benchmark: approved orders pushed to the Kingdee sandbox by the old dispatcher
and by this one, one at a time and concurrently, in the same run.

    .venv/bin/python benchmarks/dispatch.py [--orders 1000] [--fault-orders 200] [--in-process]
                                            [--baseline-rev REV]

Each run starts from scratch: a fresh schema on the real Postgres, a freshly seeded Kingdee
sandbox on loopback (its customers synced in), N CRM orders approved (so N outbox rows of
``kingdee.sales_order``; each push is Save → Submit → Audit, plus a customer lookup or
creation). Only the dispatcher's drain is timed. Runs:

1. baseline: the dispatcher as it was before the concurrent one (``--baseline-rev``, default
   f7358a0, the last commit with the one-at-a-time dispatcher), unpacked with ``git archive`` and run in a child process
   against the same schema and sandbox: one write at a time, two order lookups per retry,
   a claim transaction per batch;
2. this dispatcher with one worker (one write at a time);
3. this dispatcher with its worker pool, within Kingdee's limit (``max_concurrent_calls``,
   a guess, 4), which the sandbox enforces (``refused`` counts its overload answers);
4. the same three under the fault mix of the reliability test (20 % HTTP 500, 10 % timeouts,
   5 % dropped replies on every call) with ``--fault-orders`` orders (the old dispatcher
   dead-letters part of them: its effects/s counts the orders it completed).

Printed per run: effects/s, calls/s, and CPU seconds per wall second of the sandbox and of
the dispatcher process (a value near 1.0 is a saturated core), plus the machine's busy
share; ratios are against the baseline of the same fault mode.

By default the sandbox runs in its own process (``hub sandbox kingdee``), so that it does not
share the dispatcher's GIL; ``--in-process`` serves it from a thread of the benchmark (then
its thread's CPU time is reported, and the old dispatcher, a child process, talks to it over
loopback all the same). Retries back off from 0.05 s (at most 1 s) instead of the production
2 s, and the client times out after 1 s, so that fault runs measure the dispatcher rather than
the waiting. Uses ``HUB_TEST_DATABASE_URL``, else Postgres on 127.0.0.1:5432/test.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hub.rules  # noqa: F401  (effect handlers)
from connectors.kingdee.settings import DEFAULT_MAX_CONCURRENT_CALLS
from connectors.kit.sandbox.server import free_port
from hub.database import Database, create_db_engine, resolve_url
from hub.registry import connector
from hub.runtime import HubRuntime, load_sandbox
from hub.settings import OutboxSettings, Settings
from tests.support.orders import approve_crm_orders

ROOT = Path(__file__).resolve().parents[1]
SCALE = 0.05  # 100 ERP customers, 1,000 ERP orders seeded
# The last commit whose dispatcher made one call at a time (the baseline of issue 11's measurement).
OLD_DISPATCHER_REV = "f7358a0"
FAULTS = (("http_500", 0.20), ("timeout", 0.10 / 0.80), ("drop_response", 0.05 / 0.70))
CLIENT_TIMEOUT_S = 1.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def database_url() -> str:
    if url := os.environ.get("HUB_TEST_DATABASE_URL"):
        return resolve_url(Settings(database_url=url))  # type: ignore[arg-type]
    return "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def fault_plan(faults: bool, service_ms: int) -> dict[str, Any]:
    """``FaultPlan.configure`` JSON: the fault mix (shares of all calls) and, armed last so that
    it takes the calls no fault hit, a service time of ``service_ms`` per call."""
    armed = [{"kind": kind, "times": None, "rate": rate, "seed": seed}
             for seed, (kind, rate) in enumerate(FAULTS)] if faults else []
    if service_ms:
        armed.append({"kind": "latency", "times": None})
    return {"timeout_s": CLIENT_TIMEOUT_S + 0.2, "latency_ms": service_ms, "faults": armed}


def cpu_seconds(stat_path: str) -> float:
    """utime + stime of a process or thread (``/proc/.../stat``)."""
    fields = Path(stat_path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class ChildSandbox:
    """``hub sandbox <system>`` in its own process (Kingdee by default, at this benchmark's scale)."""

    def __init__(self, system: str = "kingdee", scale: float | None = SCALE) -> None:
        self.system = system
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith("HUB_")}
        options = [] if scale is None else ["--scale", str(scale)]
        if system == "yonyou":  # a tenant with purchased quota: throughput, not the 60-a-minute pace
            options += ["--order-quota", "0"]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hub", "sandbox", system, "--port", str(self.port), *options],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("the sandbox did not start") from None
                time.sleep(0.1)
        self.url = f"http://127.0.0.1:{self.port}"

    def cpu(self) -> float:
        return cpu_seconds(f"/proc/{self.process.pid}/stat")

    def admin(self, path: str, body: dict[str, Any] | None = None) -> Any:
        import httpx

        with httpx.Client(base_url=self.url, timeout=10) as http:
            reply = http.post(path, json=body) if body is not None else http.get(path)
            reply.raise_for_status()
            return reply.json()

    def arm(self, *, faults: bool, service_ms: int) -> None:
        self.admin("/__sandbox__/faults", {"clear": True, **fault_plan(faults, service_ms)})

    def stats(self) -> dict[str, Any]:
        state = self.admin("/__sandbox__/state")
        return {"requests": sum(state["requests"].values()), "overloaded": state["overloaded"],
                "delayed": state["faults"]["fired"],
                "peak_in_flight": state["peak_in_flight"], "busy_seconds": state["busy_seconds"],
                "limit": state["max_concurrent_requests"]}

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


class ThreadSandbox:
    """The sandbox served from a thread of this process."""

    def __init__(self) -> None:
        sandbox = load_sandbox(connector("kingdee"))
        self.server = sandbox.serve(sandbox.create_app(scale=SCALE))
        self.url = self.server.url
        self.state = self.server.app.state.kingdee
        self._thread_stat = f"/proc/self/task/{self.server.thread.native_id}/stat"  # type: ignore[attr-defined]

    def cpu(self) -> float:
        return cpu_seconds(self._thread_stat)

    def arm(self, *, faults: bool, service_ms: int) -> None:
        self.state.faults.configure(fault_plan(faults, service_ms))

    def stats(self) -> dict[str, Any]:
        gate = self.state.gate
        return {"requests": sum(self.state.requests.values()), "overloaded": gate.overloaded,
                "peak_in_flight": gate.peak_in_flight, "busy_seconds": gate.busy_seconds, "limit": gate.limit}

    def stop(self) -> None:
        self.server.stop()


OLD_DISPATCHER = """
import json, sys, time
import hub.rules  # noqa: F401
from hub.database import Database, create_db_engine
from hub.runtime import HubRuntime
from hub.settings import OutboxSettings, Settings

url, schema, sandbox_url, timeout = sys.argv[1:5]
settings = Settings(database_url=url, database_schema=schema, sandbox=True, home="/tmp/hub-bench-dispatch")
settings = settings.with_connector("kingdee", timeout_s=float(timeout)).model_copy(
    update={"outbox": OutboxSettings(backoff_initial_s=0.05, backoff_max_s=1.0)})
runtime = HubRuntime(settings, Database(create_db_engine(url, schema), schema, url), actor="bench-old",
                     sandbox_urls={"kingdee": sandbox_url})
dispatcher = runtime.dispatcher(kinds=["kingdee.sales_order"])
cpu, started = time.process_time(), time.perf_counter()
counts = dispatcher.drain(wait_for_scheduled=True, timeout_s=7200)
print(json.dumps({"seconds": time.perf_counter() - started, "cpu": time.process_time() - cpu, **vars(counts)}))
"""


def old_tree(rev: str) -> Path:
    """The hub as of ``rev``, unpacked once under /tmp (``git archive``)."""
    commit = subprocess.run(["git", "rev-parse", rev], cwd=ROOT, check=True, capture_output=True,
                            text=True).stdout.strip()
    target = Path(tempfile.gettempdir()) / f"hub-dispatch-baseline-{commit[:12]}"
    if not (target / "hub" / "outbox").is_dir():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", commit], cwd=ROOT, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs so far (``/proc/stat``)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


@dataclass
class Run:
    label: str
    faults: bool
    orders: int
    done: int
    dead: int
    seconds: float
    calls: int
    sandbox_cpu: float
    dispatcher_cpu: float
    machine_busy: float
    peak_in_flight: int
    refused: int
    attempts: int
    slots_busy: float  # the sandbox's serving slots in use, share of (wall time x its limit)
    baseline: bool = False

    @property
    def effects_per_s(self) -> float:
        return self.done / self.seconds

    def line(self, baseline: Run | None) -> str:
        ratio = self.effects_per_s / baseline.effects_per_s if baseline else 1.0
        return (f"{self.label:<44} {self.done:>5}/{self.orders} done {self.dead:>4} dead {self.seconds:7.1f} s "
                f"{self.effects_per_s:7.1f} effects/s {ratio:6.2f}x {self.calls / self.seconds:6.0f} calls/s "
                f"{self.attempts / self.orders:5.2f} attempts/order | peak {self.peak_in_flight} in flight, "
                f"{self.refused} refused, slots busy {self.slots_busy:.0%} | cpu/wall sandbox {self.sandbox_cpu / self.seconds:.2f}, dispatcher "
                f"{self.dispatcher_cpu / self.seconds:.2f}, machine busy {self.machine_busy:.0%}")


def one_run(url: str, label: str, orders: int, *, workers: int | None, faults: bool, in_process: bool,
            concurrency: int, service_ms: int, baseline_tree: Path | None = None) -> Run:
    """Prepare a fresh schema and sandbox, then time one dispatcher over ``orders`` orders:
    this one with ``workers`` workers, or the old one from ``baseline_tree``."""
    schema = f"bench_{secrets.token_hex(4)}"
    db = Database(create_db_engine(url, schema), schema, url)
    db.upgrade()
    sandbox: ChildSandbox | ThreadSandbox = ThreadSandbox() if in_process else ChildSandbox()
    try:
        settings = Settings(database_url=url, database_schema=schema, sandbox=True,  # type: ignore[arg-type]
                            home=Path("/tmp/hub-bench-dispatch"))
        settings = settings.with_connector("kingdee", timeout_s=CLIENT_TIMEOUT_S,
                                           max_concurrent_calls=concurrency).model_copy(update={
            "outbox": OutboxSettings(workers=workers or 1, backoff_initial_s=0.05, backoff_max_s=1.0)})
        runtime = HubRuntime(settings, db, actor="bench", sandbox_urls={"kingdee": sandbox.url})
        runtime.sync("kingdee", "customers")
        approve_crm_orders(db, orders)
        sandbox.arm(faults=faults, service_ms=service_ms)
        before, sandbox_cpu, busy = sandbox.stats(), sandbox.cpu(), machine_busy()
        if baseline_tree is not None:
            result = run_old(baseline_tree, url, schema, sandbox.url)
            seconds, dispatcher_cpu, done, dead = result["seconds"], result["cpu"], result["done"], result["dead"]
        else:
            dispatcher = runtime.dispatcher(kinds=["kingdee.sales_order"])
            own_cpu, started = time.process_time(), time.perf_counter()
            counts = dispatcher.drain(wait_for_scheduled=True, timeout_s=7200)
            seconds, dispatcher_cpu = time.perf_counter() - started, time.process_time() - own_cpu
            done, dead = counts.done, counts.dead + counts.failed
        sandbox_cpu = sandbox.cpu() - sandbox_cpu
        busy_after = machine_busy()
        if in_process and baseline_tree is None:
            dispatcher_cpu -= sandbox_cpu
        after = sandbox.stats()
        with db.begin() as conn:
            attempts = conn.execute(sa.text("SELECT sum(attempts) FROM outbox")).scalar_one()
        runtime.close()
        share = (busy_after[0] - busy[0]) / max(busy_after[1] - busy[1], 1)
        slots = (after["busy_seconds"] - before["busy_seconds"]) / (seconds * (after["limit"] or 1))
        return Run(label, faults, orders, done, dead, seconds, after["requests"] - before["requests"], sandbox_cpu,
                   dispatcher_cpu, share, after["peak_in_flight"], after["overloaded"] - before["overloaded"],
                   int(attempts), slots, baseline=baseline_tree is not None)
    finally:
        sandbox.stop()
        db.dispose()
        admin = sa.create_engine(url)
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def run_old(tree: Path, url: str, schema: str, sandbox_url: str) -> dict[str, Any]:
    """The old dispatcher in a child process on the prepared schema; its JSON report."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("HUB_")}
    env["PYTHONPATH"] = str(tree)
    child = subprocess.run([sys.executable, "-c", OLD_DISPATCHER, url, schema, sandbox_url, str(CLIENT_TIMEOUT_S)],
                           cwd=tree, env=env, capture_output=True, text=True, check=False)
    if child.returncode != 0:
        raise RuntimeError(f"old dispatcher failed: {child.stderr[-2000:]}")
    report: dict[str, Any] = json.loads(child.stdout.strip().splitlines()[-1])
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--fault-orders", type=int, default=200, help="orders of the fault runs (0: skip them)")
    parser.add_argument("--workers", type=int, default=OutboxSettings().workers)
    parser.add_argument("--in-process", action="store_true", help="serve the sandbox from a thread of this process")
    parser.add_argument("--kingdee-concurrency", type=int, default=DEFAULT_MAX_CONCURRENT_CALLS,
                        help="writes in flight the hub allows itself against Kingdee (default: the guessed limit)")
    parser.add_argument("--service-ms", type=int, default=0,
                        help="the sandbox takes this long to answer each call (a real ERP is not instant)")
    parser.add_argument("--baseline-rev", default=OLD_DISPATCHER_REV,
                        help=f"git revision of the old dispatcher (default: {OLD_DISPATCHER_REV})")
    args = parser.parse_args()
    url = database_url()
    rev = args.baseline_rev
    tree = old_tree(rev)
    where = "in-process thread" if args.in_process else "own process"
    print(f"Kingdee sandbox ({where}, scale {SCALE}) on loopback, Postgres {url.rsplit('@', 1)[-1]}, "
          f"{os.cpu_count()} CPUs, load {Path('/proc/loadavg').read_text().split()[0]}; "
          f"Save → Submit → Audit per order, {args.service_ms} ms service time per call; "
          f"baseline: the dispatcher of {rev[:10]}")
    plan: list[tuple[str, int, int | None, bool]] = []
    for faults, orders in ((False, args.orders), (True, args.fault_orders)):
        if not orders:
            continue
        mode = "faults 20/10/5 %" if faults else "no faults"
        plan += [(f"{mode}, old dispatcher (baseline)", orders, None, faults),
                 (f"{mode}, this one, 1 worker", orders, 1, faults),
                 (f"{mode}, this one, {args.workers} workers", orders, args.workers, faults)]
    runs: list[Run] = []
    for label, orders, workers, faults in plan:
        run = one_run(url, label, orders, workers=workers, faults=faults, in_process=args.in_process,
                      concurrency=args.kingdee_concurrency, service_ms=args.service_ms,
                      baseline_tree=tree if workers is None else None)
        baseline = next((r for r in runs if r.baseline and r.faults == faults), None)
        print(run.line(baseline), flush=True)
        runs.append(run)


if __name__ == "__main__":
    main()
