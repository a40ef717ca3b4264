"""Dispatch and tracking against real OctoPrint virtual printers: matching, priorities, the bed-clear
gate, printer errors with the retry policy, and cancels from either side."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

from devices.octoprint import OctoPrintClient
from tests.conftest import OctoPrintFactory
from tests.farm import TOKENS, Farm, print_file, running_farm
from tests.helpers import PrinterSpec, config_for
from tests.peers.octoprint import OctoPrintPeer

FAST = "[jobs]\ndispatch_interval = 0.5\n"


class Operator:
    """Clears each bed a moment after its printer asks, and remembers when."""

    def __init__(self, farm: Farm) -> None:
        self.farm = farm
        # When each clear was sent and answered.
        self.cleared: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)

    async def run(self) -> None:
        while True:
            for name, printer in (await self.farm.printers()).items():
                if printer["state"] == "awaiting_clear":
                    await asyncio.sleep(0.3)  # walking over to the printer
                    sent = _now()
                    resp = await self.farm.clear(name)
                    if resp.status_code == 200:
                        self.cleared[name].append((sent, _now()))
                    else:  # its job's end is not recorded yet; look again
                        assert resp.status_code == 409, resp.text
            await asyncio.sleep(0.2)


def _now() -> datetime:
    return datetime.now().astimezone()


@contextlib.asynccontextmanager
async def operator(farm: Farm) -> AsyncIterator[Operator]:
    op = Operator(farm)
    task = asyncio.create_task(op.run())
    try:
        yield op
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def remote_prints(peer: OctoPrintPeer) -> dict[str, tuple[int, int]]:
    """The printer host's own history: file name → (successful prints, failed prints)."""
    async with OctoPrintClient(peer.url, peer.api_key) as client:
        return {f.name: (f.successes, f.failures) for f in await client.files()}


def _t(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def test_ten_jobs_match_their_printers_one_at_a_time_after_each_clear(
    octoprint: OctoPrintFactory, tmp_path: Path
) -> None:
    pla, petg, wide = octoprint(3)
    specs = [
        PrinterSpec("pla", pla.url, pla.api_key, group="prusa", materials=("PLA",)),
        PrinterSpec("petg", petg.url, petg.api_key, group="prusa", materials=("PETG",)),
        PrinterSpec("wide", wide.url, wide.api_key, group="big", materials=("PLA", "PETG"), nozzle=0.6),
    ]
    config = config_for(tmp_path, specs, tokens=TOKENS, sections=FAST)
    files = tmp_path / "files"
    files.mkdir()
    async with running_farm(config, tmp_path / "etc/secrets") as farm:
        submitted: list[tuple[dict[str, Any], set[str]]] = []

        async def submit(name: str, allowed: set[str], **kwargs: Any) -> None:
            path = print_file(files / name, seconds=1.0, material=kwargs.pop("material", "PLA"),
                              nozzle=kwargs.pop("nozzle", 0.4))  # fmt: skip
            for job in await farm.submit(path, **kwargs):
                submitted.append((job, allowed))

        await submit("pla.gcode", {"pla"}, copies=3, owner="alice")
        await submit("petg.gcode", {"petg"}, material="PETG", copies=2, owner="bob")
        await submit("fine.gcode", {"wide"}, nozzle=0.6, copies=2, owner="carol")
        await submit("big-petg.gcode", {"wide"}, material="PETG", nozzle=0.6, group="big", owner="dave")
        await submit("urgent.gcode", {"petg"}, material="PETG", printer="petg", priority=5, owner="erin")
        # The form overrides the file's material: a PETG-sliced file asked for in PLA, in group prusa.
        await submit("override.gcode", {"pla"}, material="PLA", group="prusa", owner="bob")
        assert len(submitted) == 10
        assert all(job["state"] == "queued" for job, _ in submitted)
        urgent_id = next(job["id"] for job, _ in submitted if job["file"] == "urgent.gcode")

        async with operator(farm) as op:
            for job, _ in submitted:
                await farm.wait_job(job["id"], {"completed", "failed", "cancelled"}, timeout=120)
        jobs = {j["id"]: j for j in await farm.jobs()}

    by_printer: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for job, allowed in submitted:
        final = jobs[job["id"]]
        assert final["state"] == "completed", final
        assert final["printer"] in allowed, final
        assert final["progress"] == 100.0
        by_printer[final["printer"]].append(final)
    # Priority first: the urgent job was the first to start on its printer.
    assert min(by_printer["petg"], key=lambda j: _t(j["started_at"]))["id"] == urgent_id
    for name, runs in by_printer.items():
        runs.sort(key=lambda j: _t(j["started_at"]))
        clears = op.cleared[name]
        for before, after in itertools.pairwise(runs):
            # Never two at once, and never before the bed was cleared after the previous print.
            assert _t(before["finished_at"]) <= _t(after["started_at"]), (before, after)
            assert any(
                _t(before["finished_at"]) <= answered and sent <= _t(after["started_at"])
                for sent, answered in clears
            ), (
                name,
                before["id"],
                after["id"],
                clears,
            )
    # The printers' own history: each job's file printed exactly once, successfully.
    for name, peer in (("pla", pla), ("petg", petg), ("wide", wide)):
        history = await remote_prints(peer)
        for job in by_printer[name]:
            remote = [counts for file, counts in history.items() if file.startswith(f"farmctl-{job['id']}-")]
            assert remote == [(1, 0)], (name, job["id"], history)


async def test_printer_error_fails_and_requeues_while_others_print_and_cancels_from_both_sides(
    octoprint: OctoPrintFactory, tmp_path: Path
) -> None:
    a, b, c = octoprint(3)
    specs = [PrinterSpec(n, p.url, p.api_key) for n, p in (("a", a), ("b", b), ("c", c))]
    config = config_for(tmp_path, specs, tokens=TOKENS, sections=FAST + "retry_after_error = 1\n")
    async with (
        running_farm(config, tmp_path / "etc/secrets") as farm,
        OctoPrintClient(a.url, a.api_key) as on_a,
    ):
        await farm.clear_all()
        (doomed,) = await farm.submit(print_file(tmp_path / "doomed.gcode", seconds=6), printer="a")
        (steady,) = await farm.submit(print_file(tmp_path / "steady.gcode", seconds=6), printer="b")
        (stopped,) = await farm.submit(print_file(tmp_path / "stop-me.gcode", seconds=30), printer="c")
        await farm.wait_job(doomed["id"], {"printing"}, 30)
        await farm.wait_job(stopped["id"], {"printing"}, 30)

        # A firmware error on a mid-print: the job fails and goes back to the queue (retry 1 of 1) ...
        await on_a.send_commands(["!!DEBUG:trigger_fatal_error_marlin"])
        requeued = await farm.wait_job(doomed["id"], {"queued"}, 30)
        assert "retry 1 of 1" in (requeued["error"] or "")
        # ... while b carries on printing its job to the end.
        assert (await farm.job(steady["id"]))["state"] == "printing"
        assert (await farm.wait_job(steady["id"], {"completed"}, 30))["printer"] == "b"

        # Cancelled through the API: the print stops on c and c waits for its bed to be cleared.
        cancelled = await farm.api.post(f"/api/v1/jobs/{stopped['id']}/cancel")
        assert cancelled.status_code == 200
        assert cancelled.json()["state"] == "cancelled"
        await _wait_printer(farm, "c", "awaiting_clear")

        # Cancelled on OctoPrint itself: recorded as cancelled, and never requeued.
        assert (await farm.clear("c")).status_code == 200
        (on_host,) = await farm.submit(print_file(tmp_path / "host.gcode", seconds=30), printer="c")
        await farm.wait_job(on_host["id"], {"printing"}, 30)
        async with OctoPrintClient(c.url, c.api_key) as on_c:
            await on_c.cancel()
        assert (await farm.wait_job(on_host["id"], {"cancelled"}, 30))["state"] == "cancelled"
        await asyncio.sleep(2)
        assert (await farm.job(on_host["id"]))["state"] == "cancelled"

        # a comes back after a reconnect, its bed is cleared, and the requeued job prints there.
        await on_a.connect()
        await _wait_printer(farm, "a", "awaiting_clear")
        assert (await farm.clear("a")).status_code == 200
        done = await farm.wait_job(doomed["id"], {"completed", "failed"}, 60)
        assert done["state"] == "completed"
        assert done["attempts"] == 2
        # A second error after the one retry would have left it failed: the budget is per job.
        store = farm.store()
        states = [e.state for e in store.events(doomed["id"])]
        store.close()
        assert [str(s) for s in states] == [
            "queued", "dispatching", "printing", "failed", "queued", "dispatching", "printing", "completed",
        ]  # fmt: skip
    history = await remote_prints(c)
    assert history[next(n for n in history if n.startswith(f"farmctl-{stopped['id']}-"))] == (0, 1)


async def _wait_printer(farm: Farm, name: str, state: str, timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while (await farm.printers())[name]["state"] != state:
            await asyncio.sleep(0.2)


async def test_printer_offline_mid_print_fails_the_job_after_the_grace_period(
    octoprint: OctoPrintFactory, tmp_path: Path
) -> None:
    a, b = octoprint(2)
    specs = [PrinterSpec("a", a.url, a.api_key), PrinterSpec("b", b.url, b.api_key)]
    sections = FAST + "offline_grace = 3.0\nretry_after_offline = 0\n"
    config = config_for(tmp_path, specs, tokens=TOKENS, sections=sections)
    async with running_farm(config, tmp_path / "etc/secrets") as farm:
        await farm.clear_all()
        (lost,) = await farm.submit(print_file(tmp_path / "lost.gcode", seconds=30), printer="a")
        (kept,) = await farm.submit(print_file(tmp_path / "kept.gcode", seconds=8), printer="b")
        await farm.wait_job(lost["id"], {"printing"}, 30)
        await farm.wait_job(kept["id"], {"printing"}, 30)
        a.kill()  # the host dies mid-print
        await _wait_printer(farm, "a", "offline")
        # Still printing as far as anyone knows, within the grace period ...
        assert (await farm.job(lost["id"]))["state"] == "printing"
        failed = await farm.wait_job(lost["id"], {"failed", "queued"}, 30)
        # ... then failed, and not requeued (retry_after_offline = 0), while b finishes its print.
        assert failed["state"] == "failed"
        assert "offline for more than 3s" in failed["error"]
        assert (await farm.wait_job(kept["id"], {"completed"}, 30))["printer"] == "b"
        await asyncio.sleep(1)
        assert (await farm.job(lost["id"]))["state"] == "failed"
        # The host comes back idle: the half print is still on the bed.
        await asyncio.to_thread(a.restart)
        await _wait_printer(farm, "a", "awaiting_clear", 60)
