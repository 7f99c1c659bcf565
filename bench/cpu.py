"""Where a measurement's CPU went on the whole machine, per request: the server's workers, the
database, Redis, the drain job, the load generator, and the rest (the kernel's own threads and
interrupts, other processes).

On this benchmark's machine everything shares the same cores, so an endpoint's throughput follows
the CPU *all* of them spend per request, not the workers' alone: that is what the reference
(which reads and writes nothing) does not pay. `Snapshot` takes the machine's busy time
(`/proc/stat`), every process's CPU time by group and the driver's finished children (the load
generator runs as one, and is gone before the second snapshot); `per_request` subtracts two.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
GROUPS = ("workers", "postgres", "redis", "drain job", "load generator", "kernel & other")


def machine_busy_seconds() -> float:
    """CPU time the machine's cores were busy so far: user, nice, system, irq, softirq (not idle,
    I/O wait or time stolen by the hypervisor)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq = fields[:7]
    return (user + nice + system + irq + softirq) / CLOCK_TICKS


def _processes() -> dict[int, tuple[str, float]]:
    """{pid: (command name, CPU seconds)} of every process now."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            head, tail = (entry / "stat").read_text().rsplit(")", 1)
        except OSError:
            continue
        fields = tail.split()
        found[int(entry.name)] = (
            head.split("(", 1)[1],
            (int(fields[11]) + int(fields[12])) / CLOCK_TICKS,
        )
    return found


@dataclass
class Snapshot:
    machine: float
    processes: dict[int, tuple[str, float]]
    children: float  # the driver's finished children (the load generator)

    @classmethod
    def take(cls) -> Snapshot:
        used = resource.getrusage(resource.RUSAGE_CHILDREN)
        return cls(machine_busy_seconds(), _processes(), used.ru_utime + used.ru_stime)


def per_request(before: Snapshot, after: Snapshot, server, requests: int) -> dict[str, float]:
    """CPU ms per request of each group (GROUPS) between two snapshots, and `all`."""
    workers = {server.process.pid, *server.worker_pids()}
    drainer = server.drainer.pid if server.drainer is not None else None
    me = os.getpid()
    seconds = dict.fromkeys(GROUPS, 0.0)
    seconds["load generator"] = after.children - before.children
    for pid, (name, cpu) in after.processes.items():
        if pid == me:
            continue  # the driver waits for its load generator meanwhile
        used = cpu - before.processes.get(pid, (name, 0.0))[1]
        if pid in workers:
            seconds["workers"] += used
        elif pid == drainer:
            seconds["drain job"] += used
        elif name.startswith("postgres"):
            seconds["postgres"] += used
        elif name.startswith("redis"):
            seconds["redis"] += used
    total = after.machine - before.machine
    seconds["kernel & other"] = max(0.0, total - sum(seconds.values()))
    share = 1000 / max(1, requests)
    figures = {group: used * share for group, used in seconds.items()}
    figures["all"] = total * share
    return figures
