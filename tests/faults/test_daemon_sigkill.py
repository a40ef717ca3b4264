"""Fault: the daemon is SIGKILLed ten times, each at a random moment after a submission, with three real
virtual printers printing; the printers' own history shows every job printed exactly once.

tests/test_crash.py kills it once at each named point of dispatch (tests/crashing_daemon.py); here
the moments are random (uploads, prints, their ends, bed clears and the restart's own reconciliation
all get hit) and several jobs are in flight at once. The seed is in every failure message; set
FARMCTL_FAULT_SEED to replay a run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections import Counter
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import httpx
import pytest

from controller.config import load_config
from controller.jobs import ACTIVE_STATES, JobState
from controller.store import Store
from tests.conftest import OctoPrintFactory
from tests.farm import TOKENS, Farm, print_file
from tests.faults.conftest import bed_clearing, report
from tests.helpers import PrinterSpec, write_config
from tests.test_crash import Daemon
from tests.test_dispatch import remote_prints

pytestmark = pytest.mark.faults

KILLS = 10
PRINTERS = 3


async def _wait_up(farm: Farm, daemon: Daemon, timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while True:
            assert daemon.proc.poll() is None, daemon.log.read_text()[-3000:]
            with contextlib.suppress(httpx.TransportError):
                if (await farm.api.get("/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.05)


async def _kill_moment(rng: random.Random, state_dir: Path, submit: Awaitable[None]) -> str:
    """Submit, and wait for the moment of this kill: half of them come while an upload runs (a job is
    `dispatching`, plus 0-100 ms: before, during or just after the upload and its recording), half at
    any moment in the 4 s after the submission (prints, their ends, the operator's clears). Returns
    which kind it was."""
    if rng.random() < 0.5:
        await submit
        await asyncio.sleep(rng.uniform(0.0, 4.0))
        return "any moment"
    watch = asyncio.create_task(_dispatching(state_dir))  # watching before the submission: its
    await submit  # upload can start and end before the submission's answer arrives
    try:
        await asyncio.wait_for(watch, 5.0)
    except TimeoutError:  # every printer stayed busy
        return "upload (none came)"
    await asyncio.sleep(rng.uniform(0.0, 0.1))
    return "upload"


async def _dispatching(state_dir: Path) -> None:
    """Returns once the store shows a job `dispatching` (its upload is about to run, or runs)."""
    store = Store(state_dir / "farmctl.db")
    try:
        while not store.list_jobs([JobState.DISPATCHING]):
            await asyncio.sleep(0.005)
    finally:
        store.close()


def _states(state_dir: Path) -> Counter[str]:
    """What the store holds for the jobs right after a kill (where the kill landed)."""
    store = Store(state_dir / "farmctl.db")
    try:
        return Counter(str(j.state) for j in store.list_jobs())
    finally:
        store.close()


async def test_ten_sigkills_at_random_moments_print_every_job_exactly_once(
    octoprint: OctoPrintFactory, tmp_path: Path
) -> None:
    seed = int(os.environ.get("FARMCTL_FAULT_SEED") or time.time_ns() % 1_000_000)
    rng = random.Random(seed)  # noqa: S311 - picks moments to kill, no secret
    peers = octoprint(PRINTERS)
    specs = [PrinterSpec(f"p{i}", p.url, p.api_key) for i, p in enumerate(peers)]
    path = write_config(tmp_path, specs, tokens=TOKENS, sections="[jobs]\ndispatch_interval = 0.5\n")
    config = load_config(path, env={})
    state_dir = config.controller.state_dir
    store = Store(state_dir / "farmctl.db")
    for spec in specs:
        store.set_bed_clear(spec.name, True)  # the beds start empty
    store.close()
    tokens = {
        t.name: (tmp_path / f"etc/secrets/{t.name}.token").read_text().strip() for t in config.api.tokens
    }
    log = tmp_path / "daemon.log"
    files = tmp_path / "files"
    files.mkdir()
    submitted: list[dict[str, Any]] = []
    landed: list[dict[str, int]] = []  # per kill: jobs by state in the store just after it
    restart_s: list[float] = []
    moments: list[str] = []
    daemon: Daemon | None = None
    async with httpx.AsyncClient(
        base_url=f"http://{config.api.listen}",
        headers={"Authorization": f"Bearer {tokens['ops']}"},
        timeout=30,
    ) as api:
        farm = Farm(config, api, tokens)

        async def submit(parts: list[Path]) -> None:
            for part in parts:
                submitted.extend(await farm.submit(part))

        try:
            async with bed_clearing(farm) as cleared:
                for _ in range(KILLS):
                    started = time.monotonic()
                    daemon = Daemon(path, log)
                    await _wait_up(farm, daemon)
                    restart_s.append(time.monotonic() - started)
                    parts = [
                        print_file(files / f"part-{len(submitted) + i}.gcode", seconds=rng.uniform(1.0, 3.0))
                        for i in range(rng.randint(1, 2))
                    ]
                    moments.append(await _kill_moment(rng, state_dir, submit(parts)))
                    daemon.kill()
                    landed.append(dict(_states(state_dir)))

                # The last restart: everything still queued or in flight is finished from here.
                daemon = Daemon(path, log)
                await _wait_up(farm, daemon)
                for job in submitted:
                    await farm.wait_job(job["id"], {"completed", "failed", "cancelled"}, 120)
                final = {j["id"]: j for j in await farm.jobs()}
            await asyncio.to_thread(daemon.stop)
            assert daemon.proc.returncode == 0, daemon.log.read_text()[-3000:]
        finally:
            if daemon is not None:
                daemon.kill()

    context = f"seed={seed} (FARMCTL_FAULT_SEED replays it)"
    lost = [j for j in final.values() if j["state"] != "completed"]
    assert not lost, (context, lost)
    histories = {spec.name: await remote_prints(peer) for spec, peer in zip(specs, peers, strict=True)}
    twice = {}
    for job in submitted:
        prints = [
            (printer, counts)
            for printer, history in histories.items()
            for name, counts in history.items()
            if name.startswith(f"farmctl-{job['id']}-")
        ]
        # One file on one printer, printed once, successfully: never twice, never on two printers.
        if [counts for _, counts in prints] != [(1, 0)]:
            twice[job["id"]] = prints
    assert not twice, (context, twice)
    in_flight = [k for k in landed if any(k.get(str(s), 0) for s in ACTIVE_STATES)]
    report(
        "daemon_sigkill",
        {
            "seed": seed,
            "kills": KILLS,
            "jobs": len(submitted),
            "completed": sum(1 for j in final.values() if j["state"] == JobState.COMPLETED),
            "printed_twice": len(twice),
            "kill_moments": dict(Counter(moments)),
            "kills_with_a_job_dispatching": sum(1 for k in landed if k.get("dispatching")),
            "kills_with_a_job_printing": sum(1 for k in landed if k.get("printing")),
            "kills_with_a_job_in_flight": len(in_flight),
            "bed_clears": sum(cleared.values()),
            "max_restart_s": round(max(restart_s), 1),
        },
    )
