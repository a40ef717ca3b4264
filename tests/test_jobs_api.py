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


def _on_disk(root: Path) -> list[Path]:
    """Every file and folder the file store holds: a refused upload may leave neither behind."""
    return sorted((root / "files").rglob("*"))


async def test_bad_submissions_get_a_clear_4xx_and_change_nothing(
    octoprint: OctoPrintFactory, tmp_path: Path
) -> None:
    (peer,) = octoprint(1)
    specs = [PrinterSpec("p1", peer.url, peer.api_key, group="prusa")]
    config = config_for(
        tmp_path, specs, tokens=TOKENS, sections="[jobs]\nupload_limit_mb = 1\nmax_copies = 50\n"
    )
    good = print_file(tmp_path / "good.gcode").read_bytes()
    async with running_farm(config, tmp_path / "etc/secrets") as farm:
        (kept,) = await farm.submit(tmp_path / "good.gcode")
        files_before = _on_disk(config.controller.state_dir)

        async def post(name: str, body: bytes, **fields: str) -> tuple[int, str]:
            resp = await farm.api.post("/api/v1/jobs", data=fields, files={"file": (name, body)})
            return resp.status_code, resp.json()["error"]

        cases: list[tuple[tuple[int, str], int, str]] = [
            (await post("empty.gcode", b""), 400, "empty"),
            (await post("huge.gcode", b"G1 X1\n" * 200_000), 413, "limit of 1 MiB"),
            (await post("notes.txt", b"hello"), 415, "not G-code"),
            (await post("image.gcode", b"\x89PNG\r\n\x1a\n\x00\x00binary"), 415, "binary"),
            (await post("words.gcode", b"just some text\nno commands\n"), 415, "no G, M or T command"),
            (await post("part.bgcode", b"GCDE\x01\x00"), 415, "binary G-code"),
            (await post("../../etc/passwd", good), 400, "without folders"),
            (await post("..\\..\\boot.gcode", good), 400, "without folders"),
            (await post("x" * 294 + ".gcode", good), 400, "300 characters"),
            (await post("Halterung-groß.gcode", good), 400, "ASCII"),
            (await post("part\u202egcode.exe.gcode", good), 400, "ASCII"),
            (await post("good.gcode", good, printer="nope"), 422, "no printer named 'nope'"),
            (await post("good.gcode", good, group="west"), 422, "no printer in group 'west'"),
            (await post("good.gcode", good, material="ABS"), 422, "no printer has material 'ABS'"),
            (await post("good.gcode", good, nozzle="0.8"), 422, "0.8 mm nozzle"),
            (await post("good.gcode", good, copies="0"), 422, "copies must be between 1 and 50"),
            (await post("good.gcode", good, copies="10000"), 422, "copies must be between 1 and 50"),
            (await post("good.gcode", good, copies="two"), 422, "whole number"),
            (await post("good.gcode", good, colour="red"), 400, "unknown form field 'colour'"),
        ]
        for (status, message), want_status, want_text in cases:
            assert (status, want_text in message) == (want_status, True), (status, message, want_text)

        # Malformed forms: a field after the file, no file part, not multipart at all.
        boundary = "b0undary"
        late_field = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.gcode"\r\n\r\n'
            f"G1 X1\r\n--{boundary}\r\n"
            f'Content-Disposition: form-data; name="copies"\r\n\r\n2\r\n--{boundary}--\r\n'
        )
        resp = await farm.api.post(
            "/api/v1/jobs",
            content=late_field.encode(),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        assert resp.status_code == 400
        assert "before the `file` part" in resp.json()["error"]
        resp = await farm.api.post("/api/v1/jobs", data={"copies": "1"}, files={"other": ("x.txt", b"x")})
        assert resp.status_code == 400
        resp = await farm.api.post("/api/v1/jobs", json={"file": "x"})
        assert resp.status_code == 400
        assert "multipart/form-data" in resp.json()["error"]

        # Nothing was queued and nothing new is kept on disk.
        assert [j["id"] for j in await farm.jobs()] == [kept["id"]]
        assert _on_disk(config.controller.state_dir) == files_before
        assert not list((config.controller.state_dir / "files" / "partial").iterdir())
