"""Submitting, listing and cancelling jobs over the API, and every way a submission can be refused."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import OctoPrintFactory
from tests.farm import TOKENS, print_file, running_farm
from tests.helpers import PrinterSpec, config_for


async def test_submit_list_get_and_cancel_a_queued_job(octoprint: OctoPrintFactory, tmp_path: Path) -> None:
    (peer,) = octoprint(1)
    config = config_for(tmp_path, [PrinterSpec("p1", peer.url, peer.api_key)], tokens=TOKENS)
    async with running_farm(config, tmp_path / "etc/secrets") as farm:
        # The bed is not confirmed yet, so nothing starts: the jobs stay queued.
        jobs = await farm.submit(print_file(tmp_path / "bracket.gcode"), copies=2, owner="alice", priority=3)
        assert [j["state"] for j in jobs] == ["queued", "queued"]
        first = jobs[0]
        assert (first["file"], first["owner"], first["priority"], first["material"]) == (
            "bracket.gcode",
            "alice",
            3,
            "PLA",
        )
        assert first["nozzle"] == 0.4
        assert first["size_mm"] == [50.0, 40.0, 0.4]  # the far corner: the part must fit where it was sliced
        assert first["filament_g"] == 1.5
        listed = await farm.jobs()
        assert [j["id"] for j in listed] == [j["id"] for j in jobs]
        cancelled = await farm.api.post(f"/api/v1/jobs/{first['id']}/cancel")
        assert cancelled.status_code == 200
        assert cancelled.json()["state"] == "cancelled"
        again = await farm.api.post(f"/api/v1/jobs/{first['id']}/cancel")
        assert again.status_code == 409
        assert "already cancelled" in again.json()["error"]
        queued = await farm.api.get("/api/v1/jobs", params={"state": "queued"})
        assert [j["id"] for j in queued.json()["jobs"]] == [jobs[1]["id"]]
        # The viewer may look but not submit.
        viewer = farm.as_role("viewer")
        assert (await farm.api.get(f"/api/v1/jobs/{jobs[1]['id']}", headers=viewer)).status_code == 200
        with (tmp_path / "bracket.gcode").open("rb") as f:
            refused = await farm.api.post("/api/v1/jobs", files={"file": ("b.gcode", f)}, headers=viewer)
        assert refused.status_code == 403
        assert (await farm.api.get("/api/v1/jobs/9999")).status_code == 404
