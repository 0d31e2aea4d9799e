"""End to end where users wait: a full ERP sync against a slow ERP, beside its floor.

    .venv/bin/python benchmarks/end_to_end.py [--systems kingdee yonyou] [--latency-ms 200 1000]
                                              [--scale 0.25]

For each ERP sandbox (in its own process, ``hub sandbox <system>``) and each injected
latency (the sandbox's ``latency`` fault on every business call, ``connectors.kit.sandbox.
faults``), on a fresh schema of the real Postgres each time:

1. *one after another*: each stream synced alone, in dependency order, as ``hub sync`` did
   before; per stream the calls it made (the sandbox counts the delayed ones) and its time;
2. *waves*: ``HubRuntime.sync(system)``, what ``hub sync <system>`` runs now: customers, then
   the streams that need only customers at once, within the connector's concurrency (since
   round 5 those read from the start and write after customers: still called "waves").

The one-after-another run's floor is its slot floor: latency × Σ over streams of ⌈calls ÷
limit⌉. (It was all calls × latency, as if a stream made one call at a time; but Kingdee's
order line batches and Yonyou's order details overlap within their stream, so runs came in
under that "floor": 12.7 s against 19.0 s, ratio 0.67, for Kingdee at 1 s. Not a bound.)

Two floors of the waves, both from the calls each stream made (counted by the sandbox, alone):

- *slot floor*, a true lower bound: a wave (customers; then the streams that need only
  customers) cannot end before ⌈its calls ÷ the vendor's concurrency limit⌉ round trips,
  since every call costs one latency and at most ``limit`` are in flight; the next wave
  starts after it. So the floor is latency × Σ over waves of ⌈calls ÷ limit⌉. A reader that
  overlaps its calls (Kingdee's line batches beside the next header page) can come close to
  it; none can go under it. (The earlier "critical path" floor counted a stream's calls as
  one after another, so overlapping readers came in under it: not a bound.)
- *rough floor*, the issue's: all calls × latency ÷ the streams that can run at once (the
  dependents of customers). Not a bound either way (customers cannot run beside them, and
  the limit may allow more calls than streams); it is the issue's target reference.
- *all-at-once floor* (added in round 5, branch inbound7): latency × ⌈all calls ÷ limit⌉.
  Since ``HubRuntime.sync`` lets the dependents *read* while customers are synced (they
  still write after them, ``hub.engine.schedule.run_reading_early``), a wave no longer ends
  before the next one's calls begin, and the slot floor above bounds only a sync in waves
  (Kingdee at 1 s then ran in 5.5-5.7 s against its 6.0 s). Whatever the order of the
  calls, at most ``limit`` are in flight and each costs a latency, so this one is a lower
  bound of any schedule. The slot floor and the rough floor are printed as before.

Ratios are wall time over floor, in the same run. "hub CPU" is this process's CPU time
(every thread) during the waves sync: the sandbox and Postgres run in other processes, so it
is the hub's own work, less noisy than wall time on a shared machine. Uses ``HUB_TEST_DATABASE_URL``, else Postgres on
127.0.0.1:5432/test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import secrets
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import hub.rules  # noqa: F401  (sync hooks: owners, collections)
from benchmarks.dispatch import ChildSandbox, database_url, machine_busy
from hub.database import Database, create_db_engine
from hub.registry import connector
from hub.runtime import HubRuntime, ordered_streams
from hub.settings import Settings


def uptime() -> str:
    """``uptime``'s load figures, printed next to every result (the machine is shared)."""
    one, five, fifteen = Path("/proc/loadavg").read_text().split()[:3]
    return f"load average {one}, {five}, {fifteen} on {os.cpu_count()} CPUs"


def machine() -> str:
    return f"{platform.node()} ({platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()})"


class FreshSchema:
    """A migrated schema of its own, dropped afterwards."""

    def __init__(self, url: str) -> None:
        self.url, self.schema = url, f"bench_{secrets.token_hex(4)}"
        self.db = Database(create_db_engine(url, self.schema), self.schema, url)
        self.db.upgrade()

    def runtime(self, system: str, sandbox_url: str, **connector_settings: Any) -> HubRuntime:
        settings = Settings(database_url=self.url, database_schema=self.schema, sandbox=True,  # type: ignore[arg-type]
                            home=Path("/tmp/hub-bench-e2e"))
        if system == "yonyou":  # a tenant with purchased quota (its sandbox's is off too)
            connector_settings = {"order_calls_per_minute": 0, **connector_settings}
        if connector_settings:
            settings = settings.with_connector(system, **connector_settings)
        return HubRuntime(settings, self.db, actor="bench", sandbox_urls={system: sandbox_url})

    def drop(self) -> None:
        self.db.dispose()
        admin = sa.create_engine(self.url)
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
        admin.dispose()


@dataclass
class InboundRun:
    system: str
    latency_ms: int
    calls: dict[str, int]  # per stream, one after another
    sequential_s: float
    waves_s: float
    waves_calls: int
    rows: int
    peak_in_flight: int
    limit: int
    refused: int
    busy: float
    cpu_s: float = 0.0  # CPU seconds of this (the hub's) process during the waves sync, all its threads

    def floor_s(self, deps: dict[str, tuple[str, ...]]) -> float:
        """Latency × Σ over waves of ⌈the wave's calls ÷ the concurrency limit⌉ (module doc)."""
        depth: dict[str, int] = {}
        for name in self.calls:  # dependency order
            depth[name] = 1 + max((depth[d] for d in deps[name] if d in depth), default=-1)
        waves: dict[int, int] = {}
        for name, calls in self.calls.items():
            waves[depth[name]] = waves.get(depth[name], 0) + calls
        limit = max(self.limit, 1)
        return sum(-(-calls // limit) for calls in waves.values()) * self.latency_ms / 1000

    def sequential_floor_s(self) -> float:
        """Latency × Σ over streams of ⌈the stream's calls ÷ the concurrency limit⌉: streams one
        after another, each overlapping its own calls at most up to the limit (module doc)."""
        limit = max(self.limit, 1)
        return sum(-(-calls // limit) for calls in self.calls.values()) * self.latency_ms / 1000

    def all_at_once_floor_s(self) -> float:
        """Latency × ⌈all calls ÷ the concurrency limit⌉: a bound of any schedule (module doc)."""
        limit = max(self.limit, 1)
        return -(-sum(self.calls.values()) // limit) * self.latency_ms / 1000

    def rough_floor_s(self, deps: dict[str, tuple[str, ...]]) -> float:
        """The issue's bound: all calls × latency ÷ the streams that can run at once."""
        at_once = max(sum(1 for d in deps.values() if name in d) for name in deps) or 1
        return sum(self.calls.values()) * self.latency_ms / 1000 / at_once

    def lines(self) -> list[str]:
        deps = {s.name: s.depends_on for s in ordered_streams(connector(self.system))}
        floor, sequential_floor = self.floor_s(deps), self.sequential_floor_s()
        per_stream = ", ".join(f"{k} {v}" for k, v in self.calls.items())
        return [
            f"{self.system}, {self.latency_ms} ms per call: {sum(self.calls.values())} calls ({per_stream}), "
            f"{self.rows:,} rows",
            f"  one after another {self.sequential_s:7.1f} s  (its slot floor, streams x ceil(calls / limit "
            f"{self.limit}) {sequential_floor:.1f} s, ratio {self.sequential_s / sequential_floor:.2f})",
            f"  waves             {self.waves_s:7.1f} s ({self.waves_calls} calls)  slot floor (waves x "
            f"ceil(calls / limit {self.limit})) {floor:.1f} s, ratio {self.waves_s / floor:.2f}; rough floor "
            f"(calls x latency / {self._at_once(deps)}) {self.rough_floor_s(deps):.1f} s, ratio "
            f"{self.waves_s / self.rough_floor_s(deps):.2f}; all-at-once floor (ceil(calls / limit {self.limit})) "
            f"{self.all_at_once_floor_s():.1f} s, ratio {self.waves_s / self.all_at_once_floor_s():.2f}; "
            f"speed-up {self.sequential_s / self.waves_s:.2f}x; "
            f"peak {self.peak_in_flight} calls in flight (limit {self.limit}), {self.refused} refused, "
            f"machine busy {self.busy:.0%}, hub CPU {self.cpu_s:.2f} s",
        ]

    @staticmethod
    def _at_once(deps: dict[str, tuple[str, ...]]) -> int:
        return max(sum(1 for d in deps.values() if name in d) for name in deps) or 1


def inbound(url: str, system: str, latency_ms: int, scale: float) -> InboundRun:
    """Sync ``system`` one stream after another, then in waves, against a sandbox answering
    every business call after ``latency_ms``."""
    sandbox = ChildSandbox(system, scale)
    try:
        sandbox.admin("/__sandbox__/faults", {"clear": True, "latency_ms": latency_ms,
                                              "faults": [{"kind": "latency", "times": None}]})
        names = [s.name for s in ordered_streams(connector(system))]
        calls: dict[str, int] = {}
        schema = FreshSchema(url)
        try:
            runtime = schema.runtime(system, sandbox.url)
            runtime.client(system)  # sign-in is not part of a stream
            started = time.perf_counter()
            for name in names:
                before = sandbox.stats()["delayed"]
                runtime.sync(system, name)
                calls[name] = sandbox.stats()["delayed"] - before
            sequential = time.perf_counter() - started
            runtime.close()
        finally:
            schema.drop()
        schema = FreshSchema(url)
        try:
            runtime = schema.runtime(system, sandbox.url)
            runtime.client(system)
            before, busy = sandbox.stats(), machine_busy()
            started, cpu_started = time.perf_counter(), time.process_time()
            reports = runtime.sync(system)
            waves, cpu = time.perf_counter() - started, time.process_time() - cpu_started
            after, busy_after = sandbox.stats(), machine_busy()
            runtime.close()
        finally:
            schema.drop()
        share = (busy_after[0] - busy[0]) / max(busy_after[1] - busy[1], 1)
        return InboundRun(system, latency_ms, calls, sequential, waves, after["delayed"] - before["delayed"],
                          sum(r.counts.read for r in reports), after["peak_in_flight"], after["limit"] or 0,
                          after["overloaded"] - before["overloaded"], share, cpu)
    finally:
        sandbox.stop()


RUN_JOB = """
import json, sys, time
from pathlib import Path
from hub.settings import Settings
from pipelines.definitions import build_definitions
from pipelines.in_process import run_job
from pipelines.resources import HubResource

url, schema, job, urls = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
settings = Settings(database_url=url, database_schema=schema, sandbox=True, home=Path("/tmp/hub-bench-e2e"))
defs = build_definitions(HubResource.from_settings(settings, sandbox_urls=urls), settings)
print("ready", flush=True)
sys.stdin.readline()  # started together: each waits for the go
started = time.perf_counter()
outcome = run_job(defs, job)
print(json.dumps({"seconds": time.perf_counter() - started, "success": outcome.success, "errors": outcome.errors,
                  "read": sum(int(m.get("read", 0)) for m in outcome.assets.values())}), flush=True)
"""


def dagster_runs(url: str, latency_ms: int, scale: float) -> list[str]:
    """``kingdee_inbound`` and ``yonyou_inbound`` as two Dagster runs in two processes (two run
    workers), each alone, then both at once, on one schema per pass; rows read must agree."""
    import json
    import subprocess

    sandboxes = {system: ChildSandbox(system, scale) for system in ("kingdee", "yonyou")}
    lines = []
    try:
        for sandbox in sandboxes.values():
            sandbox.admin("/__sandbox__/faults", {"clear": True, "latency_ms": latency_ms,
                                                  "faults": [{"kind": "latency", "times": None}]})
        urls = json.dumps({system: sb.url for system, sb in sandboxes.items()})
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith("HUB_")}
        env["HUB_YONYOU__ORDER_CALLS_PER_MINUTE"] = "0"  # a tenant with purchased quota, as its sandbox
        root = Path(__file__).resolve().parents[1]
        results: dict[str, list[dict[str, Any]]] = {}
        for together in (False, True):
            schema = FreshSchema(url)
            try:
                jobs = ["kingdee_inbound", "yonyou_inbound"]
                batches = [jobs] if together else [[job] for job in jobs]
                for batch in batches:
                    children = [subprocess.Popen([sys.executable, "-c", RUN_JOB, url, schema.schema, job, urls],
                                                 cwd=root, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                                 text=True) for job in batch]
                    for child in children:  # imports and definitions done before the clock starts
                        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
                    batch_started = time.perf_counter()
                    for child in children:
                        assert child.stdin is not None
                        child.stdin.write("go\n")
                        child.stdin.flush()
                    outs = [json.loads(child.communicate(timeout=3600)[0].strip().splitlines()[-1])
                            for child in children]
                    for job, out in zip(batch, outs, strict=True):
                        if not out["success"]:
                            raise RuntimeError(f"{job} failed: {out['errors']}")
                        out["job"], out["wall"] = job, time.perf_counter() - batch_started
                    results.setdefault("together" if together else "alone", []).extend(outs)
            finally:
                schema.drop()
        alone, together_runs = results["alone"], results["together"]
        read_alone = {r["job"]: r["read"] for r in alone}
        read_together = {r["job"]: r["read"] for r in together_runs}
        if read_alone != read_together:
            raise AssertionError(f"rows read differ: alone {read_alone}, together {read_together}")
        sum_alone = sum(r["seconds"] for r in alone)
        wall_together = max(r["wall"] for r in together_runs)
        lines.append(f"dagster, {latency_ms} ms per call: " + ", ".join(
            f"{r['job']} alone {r['seconds']:.1f} s" for r in alone)
            + f"; both at once {wall_together:.1f} s (one after another {sum_alone:.1f} s, "
            f"{sum_alone / wall_together:.2f}x); rows read the same alone and together {read_together}")
    finally:
        for sandbox in sandboxes.values():
            sandbox.stop()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--systems", nargs="*", default=["kingdee", "yonyou"])
    parser.add_argument("--latency-ms", nargs="+", type=int, default=[200, 1000])
    parser.add_argument("--dagster", action="store_true",
                        help="also: kingdee_inbound and yonyou_inbound as two Dagster runs at once")
    parser.add_argument("--scale", type=float, default=0.25,
                        help="sandbox seed size (1.0: Kingdee 2,000 customers and 20,000 orders)")
    args = parser.parse_args()
    url = database_url()
    print(f"# inbound end to end, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {machine()}, "
          f"sandbox scale {args.scale}, {uptime()}", flush=True)
    for system in args.systems:
        for latency in args.latency_ms:
            run = inbound(url, system, latency, args.scale)
            for line in run.lines():
                print(line, flush=True)
            print(f"  ({uptime()})", flush=True)
    if args.dagster:
        for line in dagster_runs(url, args.latency_ms[0], args.scale):
            print(line, f"({uptime()})", flush=True)


if __name__ == "__main__":
    main()
