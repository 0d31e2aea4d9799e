"""Where the CPU of one outbound effect goes: ``benchmarks/outbound.py`` with every process's
CPU (``/proc/<pid>/stat`` utime + stime) read just before and just after each drain.

    .venv/bin/python benchmarks/outbound_cpu.py [the arguments of benchmarks/outbound.py]

Before each result line it prints a ``CPUPROBE`` line: the drain's wall time, the machine's
busy CPU-seconds over it (``/proc/stat``, every process, ours or not), and the CPU-seconds of
the dispatcher (this process), the Postgres backends (``postgres``), the sandbox (its child
``python``) and the next busiest. Divide by the effects for the CPU of one effect; on a
machine of N cores, more than N ÷ (target rate) seconds of CPU per effect cannot reach it.
Only the drains are measured (not the schema, the sandbox's seeding nor the effects' setup).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import benchmarks.outbound as outbound

TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu() -> dict[int, tuple[str, float]]:
    """Every process's name and CPU-seconds so far."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # gone meanwhile
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        found[int(pid)] = (name, (int(fields[11]) + int(fields[12])) / TICKS)
    return found


def machine_busy() -> float:
    """CPU-seconds the machine spent on anything but idle and I/O wait, since boot."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / TICKS


class Probe(outbound.CapSampler):
    """The benchmark's cap sampler, which wraps exactly each drain, measuring CPU too."""

    def __enter__(self) -> Probe:
        self._before, self._busy, self._started = process_cpu(), machine_busy(), time.perf_counter()
        super().__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        super().__exit__(*exc)
        after, wall, busy = process_cpu(), time.perf_counter() - self._started, machine_busy() - self._busy
        groups: dict[str, float] = {}
        for pid, (name, cpu) in after.items():
            spent = cpu - self._before.get(pid, (name, 0.0))[1]
            if spent > 0:
                group = "dispatcher" if pid == os.getpid() else "postgres" if name.startswith("postgres") else name
                groups[group] = groups.get(group, 0.0) + spent
        top = sorted(groups.items(), key=lambda kv: -kv[1])[:6]
        print(f"CPUPROBE {self.kind}: wall {wall:.2f} s, machine busy {busy:.2f} CPU-s ({busy / wall:.2f} cores); "
              + ", ".join(f"{name} {cpu:.2f}" for name, cpu in top), flush=True)


if __name__ == "__main__":
    outbound.CapSampler = Probe  # type: ignore[misc]
    outbound.main()
