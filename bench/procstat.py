"""Memory and CPU figures of a process, and the machine's load, from /proc; latency percentiles."""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path


def status_mib(pid: int, key: str) -> float:
    """A `kB` line of /proc/<pid>/status (VmRSS, VmHWM) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {key} for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads) so far, from /proc/<pid>/stat."""
    # The command name may hold spaces and parentheses: count fields from after its closing ")".
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) CPU time of the whole machine since boot, from /proc/stat, in clock ticks."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = values[3] + values[4]  # idle + iowait; guest time is already inside user
    return sum(values) - idle, sum(values)


def loadavg() -> tuple[float, float, float]:
    """The 1, 5 and 15 minute load averages."""
    one, five, fifteen = Path("/proc/loadavg").read_text().split()[:3]
    return float(one), float(five), float(fifteen)


@dataclass
class Cpu:
    """CPU seconds that processes spend between start() and stop()."""

    pids: dict[str, int]
    spent: dict[str, float] = field(default_factory=dict)

    def start(self) -> None:
        self.spent = {name: -cpu_seconds(pid) for name, pid in self.pids.items()}

    def stop(self) -> None:
        self.spent = {name: spent + cpu_seconds(self.pids[name]) for name, spent in self.spent.items()}

    def per_message(self, messages: int) -> str:
        return ", ".join(f"{name} {spent / messages * 1e6:.0f}" for name, spent in self.spent.items())


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def ms(values: list[float]) -> str:
    """p50, p99 and max of latencies in seconds, as milliseconds."""
    return (
        f"p50 {pct(values, 50) * 1000:6.1f} ms  p99 {pct(values, 99) * 1000:6.1f} ms"
        f"  max {max(values) * 1000:6.1f} ms"
    )
