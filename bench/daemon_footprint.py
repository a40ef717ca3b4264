"""Daemon start-up time and idle memory with two OctoPrint virtual printers.

Baseline, measured in the same run: a bare Python interpreter (start-up of `python -c pass`, RSS of
an idle `python -c 'sleep'`). Prints figures and ratios; not part of the test run.

    .venv/bin/python -m bench.daemon_footprint [--runs 5] [--idle 15]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.procstat import status_mib  # noqa: E402
from tests.helpers import PrinterSpec, closed_port_printers, write_config  # noqa: E402
from tests.peers.octoprint import OctoPrintPeer, make_template  # noqa: E402


def time_to_ready(config: Path, workdir: Path) -> tuple[float, subprocess.Popen[bytes]]:
    path = workdir / f"notify-{time.monotonic_ns()}.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(60)
    start = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "controller", "run", "--config", str(config)],
        env={**os.environ, "NOTIFY_SOCKET": str(path)},
        stderr=subprocess.DEVNULL,
    )
    while b"READY=1" not in sock.recv(4096):
        pass
    elapsed = time.perf_counter() - start
    sock.close()
    return elapsed, proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    os.kill(proc.pid, signal.SIGTERM)
    proc.wait(20)


def baseline(runs: int) -> tuple[float, float]:
    starts = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        starts.append(time.perf_counter() - t)
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    time.sleep(0.5)
    rss = status_mib(idle.pid, "VmRSS")
    os.kill(idle.pid, signal.SIGTERM)
    idle.wait()
    return statistics.median(starts), rss


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--idle", type=float, default=15.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        api_key = make_template(work / "template")
        printers = [OctoPrintPeer(work / "template", api_key, work / f"p{i}") for i in range(2)]
        for p in printers:
            p.start_and_wait()
        try:
            specs = [PrinterSpec(f"p{i}", p.url, p.api_key) for i, p in enumerate(printers)]
            config = write_config(work / "two", specs, tokens={"v": "viewer"})
            starts = []
            for _ in range(args.runs):
                elapsed, proc = time_to_ready(config, work)
                starts.append(elapsed)
                stop(proc)
            _, proc = time_to_ready(config, work)
            time.sleep(args.idle)
            idle_rss = status_mib(proc.pid, "VmRSS")
            stop(proc)
            config20 = write_config(
                work / "dead", [*specs, *closed_port_printers(20)], tokens={"v": "viewer"}
            )
            _, proc = time_to_ready(config20, work)
            time.sleep(args.idle)
            rss20 = status_mib(proc.pid, "VmRSS")
            stop(proc)
        finally:
            for p in printers:
                p.stop()
    base_start, base_rss = baseline(args.runs)
    start = statistics.median(starts)
    print(
        f"start-up to READY=1, 2 printers : median {start * 1000:.0f} ms over {args.runs} runs"
        f" (min {min(starts) * 1000:.0f}, max {max(starts) * 1000:.0f})"
    )
    ratio = start / base_start
    print(f"bare python start-up (baseline) : median {base_start * 1000:.0f} ms  -> ratio {ratio:.1f}x")
    print(f"idle RSS after {args.idle:.0f}s, 2 printers  : {idle_rss:.1f} MiB")
    print(f"idle RSS, 2 + 20 dead printers  : {rss20:.1f} MiB")
    print(f"bare python RSS (baseline)      : {base_rss:.1f} MiB  -> ratio {idle_rss / base_rss:.1f}x")


if __name__ == "__main__":
    main()
