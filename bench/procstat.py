"""Memory figures of a process from /proc."""

from __future__ import annotations

from pathlib import Path


def status_mib(pid: int, key: str) -> float:
    """A `kB` line of /proc/<pid>/status (VmRSS, VmHWM) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {key} for pid {pid}")
