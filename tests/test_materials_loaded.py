"""The material loaded on a printer at run time: `POST /api/v1/printers/{name}/material`, `farmctl load`,
recorded with time and caller, kept across restarts, and what the scheduler and the waiting reasons use."""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from controller.config import load_config
from controller.core.errors import NotFound
from controller.fleet.materials import LoadedMaterials, normalise
from controller.fleet.state import PrinterState
from controller.jobs import Job, JobState, Requirements
from controller.jobs.scheduler import Assignment, PrinterSlot, schedule
from controller.jobs.waiting import waiting_reasons
from controller.store import AsyncStore, Store
from tests.conftest import OctoPrintFactory
from tests.farm import TOKENS, Farm, print_file, running_farm
from tests.helpers import PrinterSpec, config_for, write_config
from tests.test_cli_queue import farmctl

# A long interval: a job that starts soon after a load was started by the load's wake-up, not a timer.
SLOW_ROUNDS = "[jobs]\ndispatch_interval = 60\n"


def _job(job_id: int, material: str) -> Job:
    return Job(
        id=job_id,
        state=JobState.QUEUED,
        file_sha256="0" * 64,
        file_name="part.gcode",
        owner="alice",
        priority=0,
        requirements=Requirements(material=material),
        created_at=datetime(2026, 12, 1, tzinfo=UTC) + timedelta(seconds=job_id),
    )


def test_scheduler_matches_what_is_loaded_not_the_config(tmp_path: Path) -> None:
    specs = [PrinterSpec("a", "http://127.0.0.1:9", "k"), PrinterSpec("b", "http://127.0.0.1:9", "k")]
    a, b = config_for(tmp_path, specs).printers  # both PLA in the config
    jobs = [_job(1, "PETG"), _job(2, "PLA")]

    # b's spool was swapped to PETG: the PETG job goes there, the PLA job to a.
    slots = [
        PrinterSlot.from_config(a, PrinterState.IDLE, materials=("PLA",)),
        PrinterSlot.from_config(b, PrinterState.IDLE, materials=("PETG",)),
    ]
    assert schedule(jobs, slots, now=0.0, last_start=None) == [Assignment(1, "b"), Assignment(2, "a")]

    # Both hold PLA: the PETG job waits, saying what each printer that would otherwise fit holds.
    slots = [PrinterSlot.from_config(p, PrinterState.IDLE, materials=("PLA",)) for p in (a, b)]
    plan = schedule(jobs, slots, now=0.0, last_start=None)
    assert plan == [Assignment(2, "a")]
    reasons = waiting_reasons(jobs, slots, plan, now=0.0, last_start=None)
    assert reasons == {1: "no printer has PETG loaded (a has PLA, b has PLA)"}

    # PETG only on a busy printer: the idle one is named with what it holds.
    slots = [
        PrinterSlot.from_config(a, PrinterState.PRINTING, 7, materials=("PETG",)),
        PrinterSlot.from_config(b, PrinterState.IDLE, materials=("PLA", "ASA")),
    ]
    plan = schedule(jobs[:1], slots, now=0.0, last_start=None)
    assert plan == []
    assert waiting_reasons(jobs[:1], slots, plan, now=0.0, last_start=None) == {
        1: "a printing job 7; no idle printer with material PETG (b has PLA/ASA)"
    }


@pytest.mark.parametrize(
    ("given", "loaded"),
    [(["petg"], ("PETG",)), (["PLA", "pla", "PA12-CF", "PLA+"], ("PLA", "PA12-CF", "PLA+"))],
)
def test_material_names_are_kept_upper_case_without_repeats(
    given: list[str], loaded: tuple[str, ...]
) -> None:
    assert normalise(given) == loaded


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ([], "name at least one material"),
        (["PLA SILK"], "'PLA SILK' is not a material name"),
        ([" PLA"], "' PLA' is not a material name"),
        (["X" * 33], "is not a material name"),
        # A dotless i upper-cases to an ASCII I: the name is checked before upper-casing.
        (["\u0131"], "'\u0131' is not a material name"),
        ([f"M{i}" for i in range(17)], "17 materials given; a printer holds at most 16"),
    ],
)
def test_what_is_not_a_material_list_is_refused(given: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        normalise(given)


async def test_the_last_recorded_load_counts_after_a_restart_and_the_config_before_any(
    tmp_path: Path,
) -> None:
    specs = [
        PrinterSpec("a", "http://127.0.0.1:9", "k"),
        PrinterSpec("b", "http://127.0.0.1:9", "k", materials=("ASA",)),
    ]
    printers = config_for(tmp_path, specs).printers
    store = AsyncStore(Store(tmp_path / "farmctl.db"))
    try:
        loaded = await LoadedMaterials.load(store, printers)
        assert (loaded.of("a"), loaded.of("b")) == (("PLA",), ("ASA",))
        await loaded.change("a", ["PETG"], by="ops")
        await loaded.change("a", ["petg", "TPU"], by="admin")
        with pytest.raises(NotFound):
            await loaded.change("c", ["PLA"], by="ops")
        assert loaded.of("a") == ("PETG", "TPU")
    finally:
        store.close()

    store = AsyncStore(Store(tmp_path / "farmctl.db"))
    try:
        again = await LoadedMaterials.load(store, printers)
        assert (again.of("a"), again.of("b")) == (("PETG", "TPU"), ("ASA",))
        history = await again.history("a")
        assert [(h.materials, h.by) for h in history] == [(("PETG", "TPU"), "admin"), (("PETG",), "ops")]
        assert history[0].at >= history[1].at
        assert datetime.now(UTC) - history[0].at < timedelta(minutes=1)
        assert await again.history("b") == []
    finally:
        store.close()


async def _wait_reason(farm: Farm, job_id: int, text: str, timeout: float = 20.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            job = await farm.job(job_id)
            if job["waiting"] == text:
                return job
            await asyncio.sleep(0.1)


async def test_a_job_waiting_for_its_material_starts_once_an_operator_loads_it(
    octoprint: OctoPrintFactory, tmp_path: Path
) -> None:
    one, two = octoprint(2)
    specs = [PrinterSpec("p1", one.url, one.api_key), PrinterSpec("p2", two.url, two.api_key)]
    config = config_for(tmp_path, specs, tokens=TOKENS, sections=SLOW_ROUNDS)
    petg = print_file(tmp_path / "petg.gcode", material="PETG")
    async with running_farm(config, tmp_path / "etc/secrets") as farm:
        # PETG on p1 for a moment: a job may name a material some printer holds.
        loaded = await farm.api.post("/api/v1/printers/p1/material", json={"materials": ["petg"]})
        assert loaded.status_code == 200, loaded.text
        assert loaded.json()["materials"] == ["PETG"]
        (job,) = await farm.submit(petg)
        assert job["material"] == "PETG"
        # The spool goes back to PLA before either bed is cleared: no printer holds PETG now.
        assert (
            await farm.api.post("/api/v1/printers/p1/material", json={"materials": ["PLA"]})
        ).status_code == 200
        await farm.clear_all()
        await _wait_reason(farm, job["id"], "no printer has PETG loaded (p1 has PLA, p2 has PLA)")
        printers = await farm.printers()
        assert [printers[n]["materials"] for n in ("p1", "p2")] == [["PLA"], ["PLA"]]
        assert all(printers[n]["state"] == "idle" for n in ("p1", "p2"))
        await asyncio.sleep(1.0)
        assert (await farm.job(job["id"]))["state"] == "queued"

        started = time.monotonic()
        answer = await farm.api.post("/api/v1/printers/p2/material", json={"materials": ["PETG"]})
        assert answer.status_code == 200, answer.text
        assert (answer.json()["name"], answer.json()["materials"]) == ("p2", ["PETG"])
        running = await farm.wait_job(job["id"], {"dispatching", "printing", "completed"}, timeout=10)
        # Started by the load's wake-up: the next timed round is a minute away.
        assert time.monotonic() - started < 10
        assert running["printer"] == "p2"
        await farm.wait_job(job["id"], {"completed"})

    # A restart keeps what was loaded (not the config's PLA), with who loaded it and when.
    async with running_farm(config, tmp_path / "etc/secrets") as farm:
        printers = await farm.printers()
        assert (printers["p1"]["materials"], printers["p2"]["materials"]) == (["PLA"], ["PETG"])
        history = await farm.api.get("/api/v1/printers/p1/materials/history", headers=farm.as_role("viewer"))
        assert history.status_code == 200, history.text
        assert [(h["materials"], h["by"]) for h in history.json()] == [(["PLA"], "ops"), (["PETG"], "ops")]
        assert datetime.fromisoformat(history.json()[0]["at"]) <= datetime.now(UTC)
        limited = await farm.api.get("/api/v1/printers/p1/materials/history", params={"limit": 1})
        assert [h["materials"] for h in limited.json()] == [["PLA"]]
        # A second PETG job is accepted (p2 holds PETG) and starts there once its bed is cleared.
        (second,) = await farm.submit(petg)
        await farm.clear_all()
        assert (await farm.wait_job(second["id"], {"printing", "completed"}, timeout=20))["printer"] == "p2"


async def test_loading_refuses_viewers_bad_bodies_and_unknown_printers_and_farmctl_load_works(
    octoprint: OctoPrintFactory, tmp_path: Path
) -> None:
    (peer,) = octoprint(1)
    path = write_config(tmp_path, [PrinterSpec("p1", peer.url, peer.api_key)], tokens=TOKENS)
    config = load_config(path, env={})
    viewer = ("--config", str(path))  # the config's first token is the viewer's
    ops = (*viewer, "--token-file", str(tmp_path / "etc/secrets/ops.token"))
    async with running_farm(config, tmp_path / "etc/secrets") as farm:
        url = "/api/v1/printers/p1/material"
        refused = await farm.api.post(url, json={"materials": ["PETG"]}, headers=farm.as_role("viewer"))
        assert refused.status_code == 403, refused.text
        bad_bodies: list[tuple[Any, str]] = [
            ({}, "body.materials: Field required"),
            ({"material": "PETG"}, "body.materials: Field required"),
            ({"materials": []}, "body.materials: List should have at least 1 item"),
            ({"materials": "PETG"}, "body.materials: Input should be a valid list"),
            ({"materials": ["PLA SILK"]}, "body.materials: 'PLA SILK' is not a material name"),
            ({"materials": ["PETG"], "by": "someone"}, "body.by: Extra inputs are not permitted"),
            ([f"M{i}" for i in range(17)], "body: Input should be a valid dictionary"),
            (
                {"materials": [f"M{i}" for i in range(17)]},
                "body.materials: List should have at most 16 items",
            ),
        ]
        for body, message in bad_bodies:
            resp = await farm.api.post(url, json=body)
            assert resp.status_code == 422, (body, resp.text)
            assert message in resp.json()["error"], (body, resp.text)
        not_json = await farm.api.post(url, content=b"PETG", headers={"Content-Type": "application/json"})
        assert not_json.status_code == 422, not_json.text
        missing = await farm.api.post("/api/v1/printers/p9/material", json={"materials": ["PETG"]})
        assert (missing.status_code, missing.json()) == (404, {"error": "no printer named 'p9'"})
        assert (await farm.api.get("/api/v1/printers/p9/materials/history")).status_code == 404
        assert (await farm.api.get("/api/v1/printers/p1/materials/history?limit=0")).status_code == 422
        # Nothing refused was recorded.
        assert (await farm.api.get("/api/v1/printers/p1/materials/history")).json() == []
        assert (await farm.printers())["p1"]["materials"] == ["PLA"]

        done = await farmctl("load", "p1", "petg", "PLA", *ops)
        assert done.code == 0, done
        assert done.out.strip().startswith("p1: ")
        assert done.out.strip().endswith(", loaded PETG/PLA")
        assert (await farm.printers())["p1"]["materials"] == ["PETG", "PLA"]
        as_json = await farmctl("load", "p1", "ASA", "--json", *ops)
        assert as_json.code == 0, as_json
        assert json.loads(as_json.out)["materials"] == ["ASA"]

        by_viewer = await farmctl("load", "p1", "PETG", *viewer)
        assert by_viewer.code == 77, by_viewer
        assert "needs operator" in by_viewer.err
        not_material = await farmctl("load", "p1", "PLA SILK", *ops)
        assert not_material.code == 65, not_material
        assert "'PLA SILK' is not a material name" in not_material.err
        unknown = await farmctl("load", "p9", "PLA", *ops)
        assert unknown.code == 1, unknown
        assert "no printer named 'p9'" in unknown.err
        assert (await farm.printers())["p1"]["materials"] == ["ASA"]

    helped = await farmctl("load", "--help")
    assert helped.code == 0, helped
    assert "farmctl load mk4-1 PETG" in helped.out
    assert "Exit codes:" in helped.out
