"""Day-to-day operations against a daemon with real OctoPrint virtual printers: pause and resume a print,
move a queued job, reprint a finished one, take a printer out of service and back; the roles, the
refusals, and the CLI commands (with `--watch`)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from controller.config import load_config
from controller.fleet.state import PrinterState
from controller.jobs import Job, JobState, Requirements
from controller.jobs.operations import Move, moved_priority
from controller.jobs.scheduler import Assignment, PrinterSlot, schedule
from controller.jobs.waiting import waiting_reasons
from tests.conftest import OctoPrintFactory
from tests.farm import TOKENS, Farm, print_file, running_farm
from tests.helpers import PrinterSpec, write_config
from tests.test_cli_queue import farmctl
from tests.test_dispatch import operator

FAST = "[jobs]\ndispatch_interval = 0.5\n"


def _cli(tmp_path: Path, role: str = "ops") -> tuple[str, ...]:
    return (
        "--config",
        str(tmp_path / "etc/farmctl.toml"),
        "--token-file",
        str(tmp_path / f"etc/secrets/{role}.token"),
    )


async def _idle(farm: Farm, name: str, timeout: float = 30.0) -> None:
    """Wait until the printer is up and confirm its bed once it asks."""
    async with asyncio.timeout(timeout):
        while True:
            state = (await farm.printers())[name]["state"]
            if state == "idle":
                return
            if state == "awaiting_clear":
                await farm.clear(name)
            await asyncio.sleep(0.2)


async def _until_accepted(farm: Farm, path: str) -> None:
    async with asyncio.timeout(30):
        while True:
            resp = await farm.api.post(path)
            if resp.status_code == 200:
                return
            assert resp.status_code == 409, resp.text
            await asyncio.sleep(0.3)


async def test_pause_and_resume_a_real_print(octoprint: OctoPrintFactory, tmp_path: Path) -> None:
    (peer,) = octoprint(1)
    path = write_config(tmp_path, [PrinterSpec("p1", peer.url, peer.api_key)], tokens=TOKENS, sections=FAST)
    config = load_config(path, env={})
    async with running_farm(config, tmp_path / "etc/secrets") as farm:
        await _idle(farm, "p1")
        (job,) = await farm.submit(print_file(tmp_path / "long.gcode", seconds=25))
        jid = job["id"]
        # Not printing yet (or any more): nothing to pause or resume.
        early = await farm.api.post(f"/api/v1/jobs/{jid}/resume")
        assert early.status_code == 409, early.text
        await farm.wait_job(jid, {"printing"}, 30)
        viewer = await farm.api.post(f"/api/v1/jobs/{jid}/pause", headers=farm.as_role("viewer"))
        assert viewer.status_code == 403, viewer.text
        assert (await farm.api.post("/api/v1/jobs/99999/pause")).status_code == 404
        assert (await farm.api.post("/api/v1/jobs/0/pause")).status_code == 422
        assert (await farm.api.post(f"/api/v1/jobs/{jid}/resume")).status_code == 409  # printing, not paused

        # The printer's pause is seen by the normal tracking: job and printer both say paused.
        # The printer's frames may not name our file for a moment after the start: 409 until they do.
        await _until_accepted(farm, f"/api/v1/jobs/{jid}/pause")
        await farm.wait_job(jid, {"paused"}, 15)
        assert (await farm.printers())["p1"]["state"] == "paused"
        await asyncio.sleep(1.5)  # the printer's next frames bring the progress where it stopped
        paused = await farm.job(jid)
        await asyncio.sleep(3)  # a paused print stays paused: it neither ends nor moves on
        held = await farm.job(jid)
        assert held["state"] == "paused"
        assert held["progress"] == pytest.approx(paused["progress"], abs=1)
        assert (await farm.api.post(f"/api/v1/jobs/{jid}/pause")).status_code == 409

        # The CLI resumes it; the print runs to its end.
        resumed = await farmctl("resume", str(jid), *_cli(tmp_path))
        assert resumed.code == 0, resumed
        assert f"job {jid} (long.gcode) on p1: resume sent" in resumed.out
        await farm.wait_job(jid, {"printing"}, 15)
        refused = await farmctl("pause", str(jid), *_cli(tmp_path, "viewer"))
        assert refused.code == 77, refused
        paused_again = await farmctl("pause", str(jid), *_cli(tmp_path))
        assert paused_again.code == 0, paused_again
        await farm.wait_job(jid, {"paused"}, 15)
        # Right after a pause the printer may still be pausing: 409 until it has paused.
        await _until_accepted(farm, f"/api/v1/jobs/{jid}/resume")
        done = await farm.wait_job(jid, {"completed", "failed", "cancelled"}, 90)
        assert done["state"] == "completed", done
        states = [e["state"] for e in (await farm.api.get(f"/api/v1/jobs/{jid}/events")).json()["events"]]
        assert states == [
            "queued",
            "dispatching",
            "printing",
            "paused",
            "printing",
            "paused",
            "printing",
            "completed",
        ]


def test_a_move_sets_a_priority_that_puts_the_job_where_asked() -> None:
    job = _job(1, priority=0)
    assert moved_priority(job, [0, 0, 5], Move.UP) == 1  # past its own level, below the 5
    assert moved_priority(_job(1, priority=1), [0, 0, 5], Move.UP) == 6
    assert moved_priority(job, [0, 0, 5], Move.TOP) == 6
    assert moved_priority(job, [0, 3], Move.DOWN) == -1
    assert moved_priority(job, [0, 3], Move.BOTTOM) == -1
    assert moved_priority(job, [], Move.TOP) == 0  # alone: stays as it is
    assert moved_priority(_job(1, priority=9), [0, 3], Move.TOP) == 9  # already first


async def test_move_changes_the_dispatch_order(octoprint: OctoPrintFactory, tmp_path: Path) -> None:
    (peer,) = octoprint(1)
    path = write_config(tmp_path, [PrinterSpec("p1", peer.url, peer.api_key)], tokens=TOKENS, sections=FAST)
    config = load_config(path, env={})
    part = print_file(tmp_path / "part.gcode", seconds=0.5)
    async with running_farm(config, tmp_path / "etc/secrets") as farm:
        # A fresh farm does not know the bed is clear: all three wait while they are moved.
        a, b, c = (await farm.submit(part))[0], (await farm.submit(part))[0], (await farm.submit(part))[0]
        top = await farmctl("queue", "move", str(c["id"]), "top", *_cli(tmp_path))
        assert top.code == 0, top
        assert f"job {c['id']} (part.gcode): priority 1" in top.out
        down = await farm.api.post(f"/api/v1/jobs/{a['id']}/move", json={"to": "down"})
        assert down.status_code == 200, down.text
        assert down.json()["priority"] == -1
        given = await farm.api.post(f"/api/v1/jobs/{b['id']}/move", json={"priority": 0})
        assert given.status_code == 200
        assert given.json()["priority"] == 0

        for body in (
            {"to": "sideways"},
            {},
            {"to": "up", "priority": 2},
            {"priority": 5000},
            {"to": "up", "x": 1},
        ):
            bad = await farm.api.post(f"/api/v1/jobs/{b['id']}/move", json=body)
            assert bad.status_code == 422, (body, bad.text)
        viewer = await farm.api.post(
            f"/api/v1/jobs/{b['id']}/move", json={"to": "up"}, headers=farm.as_role("viewer")
        )
        assert viewer.status_code == 403
        assert (await farm.api.post("/api/v1/jobs/99999/move", json={"to": "up"})).status_code == 404
        bad_cli = await farmctl("queue", "move", str(b["id"]), "sideways", *_cli(tmp_path))
        assert bad_cli.code == 2, bad_cli  # click's usage error: not one of top, up, down, bottom

        async with operator(farm):
            for job in (a, b, c):
                await farm.wait_job(job["id"], {"completed"}, 90)
        started = {j["id"]: j["started_at"] for j in await farm.jobs()}
        assert sorted((started[c["id"]], started[b["id"]], started[a["id"]])) == [
            started[c["id"]],
            started[b["id"]],
            started[a["id"]],
        ]
        printed = await farm.api.post(f"/api/v1/jobs/{c['id']}/move", json={"to": "up"})
        assert printed.status_code == 409, printed.text  # no longer queued


async def test_reprint_queues_the_same_file_for_the_same_owner(
    octoprint: OctoPrintFactory, tmp_path: Path
) -> None:
    (peer,) = octoprint(1)
    members = '[[members]]\nname = "alice"\nquota_g = 4.0\n[membership]\nunknown_owners = "allow"\n'
    path = write_config(
        tmp_path, [PrinterSpec("p1", peer.url, peer.api_key)], tokens=TOKENS, sections=FAST + members
    )
    config = load_config(path, env={})
    async with running_farm(config, tmp_path / "etc/secrets") as farm:
        await _idle(farm, "p1")
        (first,) = await farm.submit(print_file(tmp_path / "hook.gcode"), owner="alice", priority=2)
        early = await farm.api.post(f"/api/v1/jobs/{first['id']}/reprint")
        assert early.status_code == 409, early.text  # not finished yet
        await farm.wait_job(first["id"], {"completed"}, 60)

        viewer = await farm.api.post(f"/api/v1/jobs/{first['id']}/reprint", headers=farm.as_role("viewer"))
        assert viewer.status_code == 403
        again = await farmctl("queue", "reprint", str(first["id"]), "--json", *_cli(tmp_path))
        assert again.code == 0, again
        second = json.loads(again.out)
        assert second["id"] != first["id"]
        assert second["state"] == "queued"
        keys = ("file", "owner", "priority", "material", "nozzle", "size_mm")
        assert {k: second[k] for k in keys} == {k: first[k] for k in keys}
        async with operator(farm):
            await farm.wait_job(second["id"], {"completed"}, 60)

        # alice has used 3 g of 4: one more 1.5 g print is past her quota.
        over = await farm.api.post(f"/api/v1/jobs/{first['id']}/reprint")
        assert over.status_code == 422, over.text
        assert "alice has used 3.00g of a 4g monthly filament quota" in over.json()["error"]

        # The file store lost the file: 410, and nothing is queued.
        stored = (
            config.controller.state_dir / "files" / f"{farm.store().get_job(first['id']).file_sha256}.gcode"
        )
        stored.unlink()
        gone = await farm.api.post(f"/api/v1/jobs/{second['id']}/reprint")
        assert gone.status_code == 410, gone.text
        assert "no longer stored" in gone.json()["error"]
        assert (await farm.api.post("/api/v1/jobs/99999/reprint")).status_code == 404
        assert [j["state"] for j in await farm.jobs()] == ["completed", "completed"]


async def test_maintenance_blocks_dispatch_survives_a_restart_and_spares_a_running_print(
    octoprint: OctoPrintFactory, tmp_path: Path
) -> None:
    (peer,) = octoprint(1)
    path = write_config(tmp_path, [PrinterSpec("p1", peer.url, peer.api_key)], tokens=TOKENS, sections=FAST)
    config = load_config(path, env={})
    async with running_farm(config, tmp_path / "etc/secrets") as farm:
        await _idle(farm, "p1")
        (running,) = await farm.submit(print_file(tmp_path / "running.gcode", seconds=4))
        await farm.wait_job(running["id"], {"printing"}, 30)
        # Taken out mid-print: the print goes on to its end.
        out = await farmctl("printers", "maintenance", "p1", "--reason", "nozzle swap", *_cli(tmp_path))
        assert out.code == 0, out
        assert out.out.strip() == "p1: printing, in maintenance: nozzle swap"
        printer = (await farm.printers())["p1"]
        assert printer["maintenance"]["reason"] == "nozzle swap"
        assert printer["maintenance"]["by"] == "ops"
        assert (await farm.wait_job(running["id"], {"completed", "failed", "cancelled"}, 60))[
            "state"
        ] == "completed"

        # Bed cleared, printer idle, but out of service: a new job waits.
        await _idle(farm, "p1")
        (waiting,) = await farm.submit(print_file(tmp_path / "waiting.gcode"))
        await asyncio.sleep(3)  # several dispatch rounds
        queued = await farm.job(waiting["id"])
        assert queued["state"] == "queued"
        assert queued["waiting"] == "p1 in maintenance: nozzle swap"

        twice = await farm.api.post("/api/v1/printers/p1/maintenance", json={"reason": "again"})
        assert twice.status_code == 409, twice.text
        for body in ({"reason": ""}, {"reason": "   "}, {"reason": "x" * 201}, {"reason": "a\nb"}, {}):
            bad = await farm.api.post("/api/v1/printers/p1/maintenance", json=body)
            assert bad.status_code == 422, (body, bad.text)
        assert (
            await farm.api.post("/api/v1/printers/nope/maintenance", json={"reason": "x"})
        ).status_code == 404
        viewer = await farm.api.delete("/api/v1/printers/p1/maintenance", headers=farm.as_role("viewer"))
        assert viewer.status_code == 403
        listing = await farmctl("printers", *_cli(tmp_path, "viewer"))
        assert listing.code == 0, listing
        assert "maintenance: nozzle swap" in listing.out

    # A restart keeps the printer out of service.
    async with running_farm(config, tmp_path / "etc/secrets") as farm:
        printer = (await farm.printers())["p1"]
        assert printer["maintenance"]["reason"] == "nozzle swap"
        await asyncio.sleep(3)
        assert (await farm.job(waiting["id"]))["state"] == "queued"
        back = await farmctl("printers", "back", "p1", *_cli(tmp_path))
        assert back.code == 0, back
        assert "in service" in back.out
        assert (await farm.printers())["p1"]["maintenance"] is None
        assert (await farm.api.delete("/api/v1/printers/p1/maintenance")).status_code == 409
        await _idle(farm, "p1")
        assert (await farm.wait_job(waiting["id"], {"completed"}, 60))["state"] == "completed"


def test_waiting_reason_names_a_printer_in_maintenance() -> None:
    slot = PrinterSlot(
        "p1", "default", ("PLA",), 0.4, (220.0, 220.0, 250.0), PrinterState.IDLE, None, "nozzle swap"
    )
    job = _job(7)
    assert schedule([job], [slot], now=0.0, last_start=None) == []
    assert waiting_reasons([job], [slot], [], now=0.0, last_start=None) == {
        7: "p1 in maintenance: nozzle swap"
    }
    free = PrinterSlot("p2", "default", ("PLA",), 0.4, (220.0, 220.0, 250.0), PrinterState.IDLE)
    assert schedule([job], [slot, free], now=0.0, last_start=None) == [Assignment(7, "p2")]


async def test_watch_redraws_until_ctrl_c(octoprint: OctoPrintFactory, tmp_path: Path) -> None:
    (peer,) = octoprint(1)
    path = write_config(tmp_path, [PrinterSpec("p1", peer.url, peer.api_key)], tokens=TOKENS, sections=FAST)
    config = load_config(path, env={})
    async with running_farm(config, tmp_path / "etc/secrets") as farm:
        await farm.submit(print_file(tmp_path / "w.gcode"))
        # `--watch 0.5`, and `--watch` alone before the other options: every 2 s.
        for command, every, shows in (
            (("printers", "--watch", "0.5"), "0.5", "p1"),
            (("queue", "--watch"), "2", "w.gcode"),
        ):
            env = {k: v for k, v in os.environ.items() if not k.startswith("FARMCTL_")}
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "controller", *command, *_cli(tmp_path, "viewer"),
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
            )  # fmt: skip
            assert proc.stdout is not None
            seen = b""
            async with asyncio.timeout(30):
                while seen.count(f"every {every}s: farmctl".encode()) < 3:
                    chunk = await proc.stdout.read(4096)
                    assert chunk, (seen, await proc.communicate())  # it exited instead of redrawing
                    seen += chunk
            proc.send_signal(signal.SIGINT)
            async with asyncio.timeout(10):
                rest, err = await proc.communicate()
            assert proc.returncode == 130, err
            text = (seen + rest).decode()
            assert "\x1b[" not in text  # piped: no terminal control codes, one header per redraw
            assert shows in text
        too_fast = await farmctl("printers", "--watch", "0.1", *_cli(tmp_path, "viewer"))
        assert too_fast.code == 64, too_fast


def _job(job_id: int, priority: int = 0) -> Job:
    return Job(
        job_id, JobState.QUEUED, "0" * 64, "a.gcode", "alice", priority, Requirements(), datetime.now(UTC)
    )
