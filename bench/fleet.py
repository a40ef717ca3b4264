"""The daemon with a fleet: N OctoPrint virtual printers + M offline ones (closed loopback ports).

1. farmctl's CPU (% of one core, utime+stime from /proc over the window) and RSS in three windows:
   idle fleet; idle after one print each (every printer awaiting_clear); all N printing.
2. Status latency: from OctoPrint's answer to a start (upload with select+print) or a cancel until
   farmctl's GET /api/v1/printers/{name} shows printing / awaiting_clear, polled every 5 ms; split
   at the first push event that implies the new state (seen on a socket of our own).
3. A fleet of --fleet-size configured printers (the N real ones, the rest offline), idle.
Baseline in the same windows: the floor, a bare aiohttp loop holding the same N push websockets
(passive login, auth, farmctl's subscription and throttle, every frame JSON-decoded).

    .venv/bin/python bench/fleet.py [--printers 20] [--offline 50] [--window 60] [--trials 10]
    .venv/bin/python bench/fleet.py --printers 3 --offline 5 --window 10 --trials 4   # quick
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.procstat import cpu_seconds, loadavg, machine_jiffies, status_mib  # noqa: E402
from bench.push_floor import FLOOR_SUBSCRIBE  # noqa: E402
from devices.localproc import LocalProcess, free_port  # noqa: E402
from tests.peers.octoprint import OctoPrintPeer, make_template  # noqa: E402

if TYPE_CHECKING:  # the floor process imports aiohttp only: the project's modules load in the bench
    from devices.octoprint import OctoPrintClient

POLL_S = 0.005
START_BATCH = 4  # OctoPrints started at once: each burns ~2 s of CPU starting on a 2-core machine
FLOOR = Path(__file__).resolve().with_name("push_floor.py")


# --- processes ---------------------------------------------------------------------------------------


def start_peers(peers: list[OctoPrintPeer]) -> None:
    for i in range(0, len(peers), START_BATCH):
        batch = peers[i : i + START_BATCH]
        for peer in batch:
            peer.start()
        for peer in batch:
            peer.wait_ready(peer.ready, 180)


def stop_all(procs: Sequence[LocalProcess]) -> None:
    """SIGTERM every one of our PIDs at once, then wait; SIGKILL any that lingers."""
    running = [p for p in procs if p.running()]
    for proc in running:
        os.kill(proc.pid, signal.SIGTERM)
    for proc in running:
        assert proc.proc is not None
        try:
            proc.proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def farm_config(work: Path, real: list[OctoPrintPeer], offline: int, token: str) -> tuple[Path, str]:
    """A farmctl.toml with the daemon's default intervals, N real printers then `offline` dead ones;
    its path and API URL."""
    etc = work / "etc"
    (etc / "secrets").mkdir(parents=True, exist_ok=True)
    (etc / "secrets/bench.token").write_text(token + "\n")
    (etc / "secrets/dead.key").write_text("0" * 32 + "\n")
    lines = ["[controller]", f'state_dir = "{work / "state"}"']
    listen = f"127.0.0.1:{free_port()}"
    lines += ["[api]", f'listen = "{listen}"']
    lines += ["[[api.tokens]]", 'name = "bench"', 'role = "operator"', 'token_file = "secrets/bench.token"']
    for i, peer in enumerate(real):
        (etc / f"secrets/p{i}.key").write_text(peer.api_key + "\n")
        lines += ["[[printers]]", f'name = "p{i}"', f'url = "{peer.url}"']
        lines.append(f'api_key_file = "secrets/p{i}.key"')
    for i in range(offline):  # free_port(): nothing listens there, so every connect is refused at once
        url = f"http://127.0.0.1:{free_port()}"
        lines += ["[[printers]]", f'name = "dead{i}"', f'url = "{url}"', 'api_key_file = "secrets/dead.key"']
    path = etc / "farmctl.toml"
    path.write_text("\n".join(lines) + "\n")
    return path, f"http://{listen}"


def gcode(path: Path, dwell_ms: int, count: int) -> Path:
    """A print of `count` dwells (instant heat: the peers' ambient is 250 °C)."""
    body = "M104 S200\nM140 S60\nM190 S60\nM109 S200\nG28\nG90\n" + f"G4 P{dwell_ms}\n" * count
    path.write_text(body + "M104 S0\nM140 S0\n")
    return path


# --- windows -----------------------------------------------------------------------------------------


async def floor_frames(floor_proc: subprocess.Popen[str]) -> int:
    os.kill(floor_proc.pid, signal.SIGUSR1)
    assert floor_proc.stdout is not None
    return int(await asyncio.to_thread(floor_proc.stdout.readline))


async def window(name: str, seconds: float, pids: dict[str, int], floor_proc: subprocess.Popen[str]) -> Any:
    """CPU % of one core and the largest RSS of our processes over a window; the machine's busy %."""
    print(f"  window {name!r}: {seconds:.0f} s", flush=True)
    frames, (busy0, total0) = await floor_frames(floor_proc), machine_jiffies()
    cpu0 = {k: cpu_seconds(pid) for k, pid in pids.items()}
    t0, rss = time.monotonic(), {k: [status_mib(pid, "VmRSS")] for k, pid in pids.items()}
    while (left := t0 + seconds - time.monotonic()) > 0:
        await asyncio.sleep(min(1.0, left))
        for k, pid in pids.items():
            rss[k].append(status_mib(pid, "VmRSS"))
    elapsed, (busy1, total1) = time.monotonic() - t0, machine_jiffies()
    out: dict[str, Any] = {"window": name, "seconds": round(elapsed, 1)}
    for k, pid in pids.items():
        cpu = (cpu_seconds(pid) - cpu0[k]) / elapsed * 100
        out[k] = {"cpu_pct": round(cpu, 2), "rss_mib": round(max(rss[k]), 1)}
    out["floor_frames_per_s"] = round((await floor_frames(floor_proc) - frames) / elapsed, 1)
    out["machine_busy_pct_of_2_cores"] = round((busy1 - busy0) / (total1 - total0) * 100, 1)
    shown = "; ".join(f"{k} {out[k]['cpu_pct']:.2f}% CPU {out[k]['rss_mib']:.1f} MiB" for k in pids)
    print(f"    {shown}; machine {out['machine_busy_pct_of_2_cores']}% busy", flush=True)
    return out | {"loadavg_1m": loadavg()[0]}


# --- farmctl's API and the printers ------------------------------------------------------------------


def each(names: list[str], *ok: str) -> dict[str, frozenset[str]]:
    return dict.fromkeys(names, frozenset(ok))


async def wait_states(
    api: aiohttp.ClientSession, want: dict[str, frozenset[str]], daemon: LocalProcess, timeout: float = 120
) -> None:
    async with asyncio.timeout(timeout):
        while True:
            if not daemon.running():
                raise RuntimeError(f"farmctl exited:\n{daemon.log_tail()}")
            with contextlib.suppress(aiohttp.ClientError):
                async with api.get("/api/v1/printers") as resp:
                    now = {p["name"]: p["state"] for p in await resp.json()} if resp.status == 200 else {}
                if now and all(now.get(name) in ok for name, ok in want.items()):
                    return
            await asyncio.sleep(0.1)


async def clear_beds(api: aiohttp.ClientSession, names: list[str]) -> None:
    for name in names:
        async with api.post(f"/api/v1/printers/{name}/clear") as resp:
            if resp.status not in (200, 409):  # 409: already clear
                raise RuntimeError(f"{name}: clear answered {resp.status}: {await resp.text()}")


async def until_state(api: aiohttp.ClientSession, name: str, state: str) -> float:
    """perf_counter() when farmctl's API first answers with `state` for the printer."""
    async with asyncio.timeout(30):
        while True:
            t = time.perf_counter()
            async with api.get(f"/api/v1/printers/{name}") as resp:
                body = await resp.json()
            if body["state"] == state:
                return time.perf_counter()
            await asyncio.sleep(max(0.0, POLL_S - (time.perf_counter() - t)))


async def until_ready(clients: list[OctoPrintClient]) -> None:
    """Until each OctoPrint takes a new print: it sends PrintCancelled before it has finished cancelling."""
    async with asyncio.timeout(60):
        for client in clients:
            while not (await client.snapshot()).flags.ready:
                await asyncio.sleep(0.05)


async def print_everywhere(clients: list[OctoPrintClient], path: Path, tag: str) -> None:
    await until_ready(clients)
    results = await asyncio.gather(*(c.upload(path, f"{tag}-{i}.gcode") for i, c in enumerate(clients)))
    if not all(r.started for r in results):
        raise RuntimeError(f"{tag}: not every printer started")


# --- latency -----------------------------------------------------------------------------------------


async def trial(
    api: aiohttp.ClientSession, client: OctoPrintClient, name: str, path: Path, n: int
) -> dict[str, float]:
    """One start and one cancel: seconds from OctoPrint's answer, and from the first push event."""
    from controller.fleet.coordinator import state_of_event
    from controller.fleet.state import PrinterState
    from devices.octoprint import PrinterEvent, PushStream

    events: list[tuple[float, PrinterState]] = []

    async def watch() -> None:
        async with PushStream(client) as stream:
            ready.set()
            async for item in stream:
                if isinstance(item, PrinterEvent) and (state := state_of_event(item)) is not None:
                    events.append((time.perf_counter(), state))

    def first(state: PrinterState, after: float) -> float:
        return next((t for t, s in events if s is state and t >= after), float("nan"))

    async def step(command: Awaitable[object], state: str, implied: PrinterState) -> tuple[float, float]:
        """(shown - answered, shown - first event): polled from the send, as it may show before the answer."""
        sent = time.perf_counter()
        poll = asyncio.create_task(until_state(api, name, state))
        try:
            await command
        except BaseException:
            poll.cancel()
            raise
        answered = time.perf_counter()
        shown = await poll
        return shown - answered, shown - first(implied, sent)

    async def upload() -> None:
        if not (await client.upload(path, f"trial-{n}.gcode")).started:
            raise RuntimeError(f"{name}: trial print did not start")

    ready = asyncio.Event()
    watcher = asyncio.create_task(watch())
    try:
        await asyncio.wait_for(ready.wait(), 10)
        await asyncio.sleep(0.3)  # past the socket's history frame
        start, start_event = await step(upload(), "printing", PrinterState.PRINTING)
        await asyncio.sleep(random.uniform(0.5, 1.5))  # noqa: S311 - off the 1 s frame beat, not crypto
        end, end_event = await step(client.cancel(), "awaiting_clear", PrinterState.IDLE)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    return {"start": start, "start_after_event": start_event, "end": end, "end_after_event": end_event}


def summary(values: list[float], *, from_answer: bool) -> dict[str, float]:
    """Median, max and min in ms. From the answer, a state shown before it arrived counts as 0 ms."""
    ms = sorted(v * 1000 for v in values if v == v)  # NaN: no event seen
    if not ms:
        return {}
    early = sum(v < 0 for v in ms)
    ms = [max(0.0, v) for v in ms] if from_answer else ms
    out = {"n": len(ms), "median_ms": statistics.median(ms), "max_ms": ms[-1], "min_ms": ms[0]}
    return {k: round(v, 1) for k, v in out.items()} | ({"shown_before_answer": early} if from_answer else {})


# --- the run -----------------------------------------------------------------------------------------


async def run_bench(args: argparse.Namespace, work: Path, peers: list[OctoPrintPeer]) -> dict[str, Any]:
    from devices.octoprint import OctoPrintClient, push

    if push._SUBSCRIBE != FLOOR_SUBSCRIBE:
        print("  note: farmctl's push subscription changed; update FLOOR_SUBSCRIBE", flush=True)
    names = [f"p{i}" for i in range(len(peers))]
    token = secrets.token_hex(16)
    spec = work / "floor.json"
    spec.write_text(json.dumps([{"url": p.url, "key": p.api_key} for p in peers]))
    argv = [sys.executable, str(FLOOR), str(spec)]
    floor_proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    procs: list[LocalProcess] = []
    clients = [OctoPrintClient(p.url, p.api_key) for p in peers]
    result: dict[str, Any] = {"windows": []}
    try:
        assert floor_proc.stdout is not None
        if (await asyncio.to_thread(floor_proc.stdout.readline)).strip() != "ready":
            raise RuntimeError("the floor did not connect")
        for size, offline in (("fleet", args.offline), ("big", args.fleet_size - len(peers))):
            farm = work / size
            config, url = farm_config(farm, peers, offline, token)
            argv = [sys.executable, "-m", "controller", "run", "--config", str(config)]
            daemon = LocalProcess("farmctl", argv, farm, env={"PYTHONPATH": str(ROOT)})
            procs.append(daemon)
            daemon.start()
            pids = {"farmctl": daemon.pid, "floor": floor_proc.pid}
            auth = {"Authorization": f"Bearer {token}"}
            async with aiohttp.ClientSession(url, headers=auth) as api:
                gone = [f"dead{i}" for i in range(offline)]
                await wait_states(api, each(names, "idle", "awaiting_clear") | each(gone, "offline"), daemon)
                await clear_beds(api, names)
                await wait_states(api, each(names, "idle"), daemon)
                await asyncio.sleep(args.settle)
                label = "idle" if size == "fleet" else f"idle, {len(peers) + offline} printers"
                result["windows"].append(await window(label, args.window, pids, floor_proc))
                if size == "fleet":
                    await fleet_phases(args, api, daemon, clients, (pids, floor_proc), work, result)
            stop_all([daemon])
            report_log(daemon, gone)
    finally:
        stop_all(procs)
        if floor_proc.poll() is None:
            os.kill(floor_proc.pid, signal.SIGTERM)
            floor_proc.wait(20)
        for client in clients:
            await client.close()
    return result


async def fleet_phases(
    args: argparse.Namespace,
    api: aiohttp.ClientSession,
    daemon: LocalProcess,
    clients: list[OctoPrintClient],
    procs: tuple[dict[str, int], subprocess.Popen[str]],
    work: Path,
    result: dict[str, Any],
) -> None:
    """After the idle window: one print each, the latency trials, all printing."""
    names = [f"p{i}" for i in range(len(clients))]
    await print_everywhere(clients, gcode(work / "short.gcode", 250, 4), "short")
    await wait_states(api, each(names, "awaiting_clear"), daemon)
    await asyncio.sleep(args.settle)
    result["windows"].append(await window("idle after a print (awaiting_clear)", args.window, *procs))

    trial_file = gcode(work / "trial.gcode", 100, 600)  # 60 s; a 100 ms dwell keeps cancels quick
    samples: list[dict[str, float]] = []
    for n in range(args.trials):
        i = n % len(clients)
        await wait_states(api, each([names[i]], "awaiting_clear"), daemon)
        await until_ready([clients[i]])
        await asyncio.sleep(random.uniform(0.5, 1.5))  # noqa: S311 - off the 1 s frame beat, not crypto
        samples.append(await trial(api, clients[i], names[i], trial_file, n))
        shown = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in samples[-1].items())
        print(f"  trial {n}: {shown}", flush=True)
    result["trials_ms"] = [{k: round(v * 1000, 1) for k, v in s.items()} for s in samples]
    result["latency"] = {
        k: summary([s[k] for s in samples], from_answer=k in ("start", "end")) for k in samples[0]
    }

    seconds = args.settle + args.window + 60
    await wait_states(api, each(names, "awaiting_clear"), daemon)
    await print_everywhere(clients, gcode(work / "long.gcode", 1000, int(seconds)), "long")
    await wait_states(api, each(names, "printing"), daemon)
    await asyncio.sleep(args.settle)
    result["windows"].append(await window("all printing", args.window, *procs))
    await asyncio.gather(*(c.cancel() for c in clients))
    await wait_states(api, each(names, "awaiting_clear"), daemon)


def report_log(daemon: LocalProcess, dead: list[str]) -> None:
    """The daemon's warnings and errors, less the expected 'offline' line of each dead printer."""
    odd = [
        line
        for line in daemon.log_path.read_text(errors="replace").splitlines()
        if (" WARNING " in line or " ERROR " in line)
        and "printer=%s offline" not in line  # the rate limiter's count of those lines
        and not any(f"printer={d} " in line for d in dead)
    ]
    for line in odd[:10]:
        print(f"  daemon log: {line}")
    if len(odd) > 10:
        print(f"  daemon log: ... {len(odd) - 10} more warnings/errors")


def report(result: dict[str, Any]) -> None:
    print(f"\n{'window':<40} {'farmctl CPU':>11} {'floor CPU':>9} {'ratio':>6}"
          f" {'farmctl RSS':>11} {'floor RSS':>9} {'ratio':>6} {'frames/s':>8} {'machine':>7}")  # fmt: skip
    for w in result["windows"]:
        f, b = w["farmctl"], w["floor"]
        cpu_ratio = f"{f['cpu_pct'] / b['cpu_pct']:>5.1f}x" if b["cpu_pct"] else "    -"
        print(
            f"{w['window']:<40} {f['cpu_pct']:>10.2f}% {b['cpu_pct']:>8.2f}% {cpu_ratio}"
            f" {f['rss_mib']:>7.1f} MiB {b['rss_mib']:>5.1f} MiB {f['rss_mib'] / b['rss_mib']:>5.1f}x"
            f" {w['floor_frames_per_s']:>8.1f} {w['machine_busy_pct_of_2_cores']:>6.1f}%"
        )
    print("  CPU: % of one core over the window; RSS: largest 1 s sample in it; frames/s: what the floor")
    print("  received; machine: busy share of both cores (all processes on the machine).\n")
    for key, s in result["latency"].items():
        if s:
            early = (
                f", shown before the answer in {s['shown_before_answer']}" if key in {"start", "end"} else ""
            )
            print(f"{key:<18} median {s['median_ms']:6.1f} ms, max {s['max_ms']:6.1f} ms"
                  f" (min {s['min_ms']:.1f}, {s['n']} trials{early})")  # fmt: skip
    for key in ("start", "end"):
        s = result["latency"][key]
        ok = s["median_ms"] <= 50 and s["max_ms"] <= 250
        print(f"target for {key} (median <= 50 ms, max <= 250 ms): {'met' if ok else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--printers", type=int, default=20, help="OctoPrint virtual printers")
    parser.add_argument("--offline", type=int, default=50, help="printers on closed loopback ports")
    parser.add_argument("--fleet-size", type=int, default=200, help="configured printers, last window")
    parser.add_argument("--window", type=float, default=60.0, help="seconds per CPU/RSS window")
    parser.add_argument("--settle", type=float, default=10.0, help="seconds before each window")
    parser.add_argument("--trials", type=int, default=10, help="latency trials (a start and an end each)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file ('-': stdout)")
    args = parser.parse_args()
    before = loadavg()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="farmctl-fleet-") as tmp:
        work = Path(tmp)
        api_key = make_template(work / "template")
        peers = [OctoPrintPeer(work / "template", api_key, work / f"p{i}") for i in range(args.printers)]
        try:
            start_peers(peers)
            result = asyncio.run(run_bench(args, work, peers))
        finally:
            stop_all(peers)
    result |= {"printers": args.printers, "offline": args.offline, "fleet_size": args.fleet_size,
               "window_s": args.window, "loadavg_before": before, "loadavg_after": loadavg(),
               "minutes": round((time.monotonic() - started) / 60, 1)}  # fmt: skip
    print(f"\n{args.printers} OctoPrint virtual printers + {args.offline} offline; last window"
          f" {args.fleet_size} configured ({args.printers} real). Load average before {before},"
          f" after {result['loadavg_after']}; {result['minutes']} min.")  # fmt: skip
    report(result)
    if args.json:
        text = json.dumps(result, indent=2)
        if str(args.json) == "-":
            print(text)
        else:
            args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
