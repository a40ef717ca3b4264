"""Measured energy per print: a real virtual printer, simulated metering plugs publishing over the real
broker, the real daemon. Each print's energy_kwh must be within 1 % of what the plugs themselves
counted between the job's started_at and finished_at."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from controller.config import load_config
from devices.octoprint import OctoPrintClient
from devices.sim.follow import Broker
from devices.sim.meter_plug import SimMeterPlug
from devices.sim.scale import SimScale
from tests.conftest import OctoPrintFactory
from tests.farm import TOKENS, Farm, print_file, running_farm
from tests.helpers import PrinterSpec, write_config
from tests.peers.servers import MosquittoPeer
from tests.test_crash import Daemon

# Plugs report every 0.25 s here (a real Tasmota at most every 10 s): the few-second test prints then
# have readings close to their start and end; the gap the accountant reports says how close.
PUBLISH_S = 0.25
# And their counters carry 7 decimals of kWh (Tasmota at most 5): these prints use a quarter of a Wh,
# and 1 % of that is below a real counter's step. The coarse-counter case has a test of its own.
DECIMALS = 7


def sensors(plugs: list[tuple[str, str, str]], port: int) -> str:
    """[mqtt] and one [[sensors]] entry per (id, topic, profile), all bound to printer p1."""
    lines = ["[mqtt]", 'host = "127.0.0.1"', f"port = {port}", "[accounting]", "settle_s = 10"]
    for sensor_id, topic, profile in plugs:
        lines += ["[[sensors]]", f'id = "{sensor_id}"', f'topic = "{topic}"', f'profile = "{profile}"']
        lines.append('printer = "p1"')
    return "\n".join(lines)


@contextlib.asynccontextmanager
async def plugs_running(*plugs: SimMeterPlug | SimScale) -> AsyncIterator[None]:
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        for plug in plugs:
            tg.create_task(plug.run(stop))
        try:
            async with asyncio.timeout(15):
                for plug in plugs:
                    await plug.connected.wait()
            yield
        finally:
            stop.set()


async def print_one(farm: Farm, tmp_path: Path, seconds: float, during: Any = None) -> dict[str, Any]:
    """Submit a print, let it run to completion (calling `during(job)` once it prints), and return the
    job once its measured figures are in."""
    await farm.clear_all()
    (job,) = await farm.submit(print_file(tmp_path / "part.gcode", seconds=seconds))
    await farm.wait_job(job["id"], {"printing"}, 60)
    if during is not None:
        await during(job)
    await farm.wait_job(job["id"], {"completed"}, 120)
    async with asyncio.timeout(30):
        while (job := await farm.job(job["id"]))["energy_kwh"] is None:
            await asyncio.sleep(0.2)
    return job


def truth(job: dict[str, Any], *plugs: SimMeterPlug) -> float:
    start = datetime.fromisoformat(job["started_at"])
    end = datetime.fromisoformat(job["finished_at"])
    return sum(p.energy_kwh_between(start, end) for p in plugs)


def farm_config(tmp_path: Path, url: str, key: str, plug_ids: list[str], sections: str) -> Path:
    plug = "[" + ", ".join(f'"{p}"' for p in plug_ids) + "]"
    spec = PrinterSpec("p1", url, key, extra=(f"plug = {plug}",))
    return write_config(tmp_path, [spec], tokens=TOKENS, sections=sections)


async def test_print_energy_matches_the_plug_also_across_a_counter_reset(
    octoprint: OctoPrintFactory, mosquitto: MosquittoPeer, tmp_path: Path
) -> None:
    (peer,) = octoprint(1)
    broker = Broker("127.0.0.1", mosquitto.port)
    topic = "tele/plug-a/SENSOR"
    path = farm_config(
        tmp_path, peer.url, peer.api_key, ["plug-a"], sensors([("plug-a", topic, "tasmota")], mosquitto.port)
    )
    async with OctoPrintClient(peer.url, peer.api_key) as printer:
        plug = SimMeterPlug("tasmota", "plug-a", broker, printer, publish_s=PUBLISH_S, kwh_decimals=DECIMALS)
        async with plugs_running(plug), running_farm(load_config(path), tmp_path / "etc/secrets") as farm:
            job = await print_one(farm, tmp_path, 8)
            expected = truth(job, plug)
            assert expected > 0
            assert job["energy_kwh"] == pytest.approx(expected, rel=0.01)
            assert job["energy_gap_s"] is not None
            assert job["energy_gap_s"] <= 2 * PUBLISH_S
            heat = job["heatup_kwh"]
            assert heat is not None
            assert heat + job["printing_kwh"] + job["paused_kwh"] == pytest.approx(job["energy_kwh"])

            async def reset(_: dict[str, Any]) -> None:
                await asyncio.sleep(2)
                plug.reset_counter()  # EnergyReset mid-print: the counter starts from 0

            job = await print_one(farm, tmp_path, 8, during=reset)
            assert job["energy_kwh"] == pytest.approx(truth(job, plug), rel=0.01)


async def test_two_plugs_on_one_printer_are_summed(
    octoprint: OctoPrintFactory, mosquitto: MosquittoPeer, tmp_path: Path
) -> None:
    (peer,) = octoprint(1)
    broker = Broker("127.0.0.1", mosquitto.port)
    specs = [
        ("plug-a", "shellyplug-a/status/switch:0", "shelly"),
        ("dryer", "zigbee2mqtt/dryer", "zigbee2mqtt"),
    ]
    path = farm_config(tmp_path, peer.url, peer.api_key, ["plug-a", "dryer"], sensors(specs, mosquitto.port))
    async with OctoPrintClient(peer.url, peer.api_key) as printer:
        plug = SimMeterPlug(
            "shelly", "shellyplug-a", broker, printer, publish_s=PUBLISH_S, kwh_decimals=DECIMALS
        )
        dryer = SimMeterPlug("zigbee2mqtt", "dryer", broker, None, publish_s=PUBLISH_S)  # a steady load
        async with (
            plugs_running(plug, dryer),
            running_farm(load_config(path), tmp_path / "etc/secrets") as farm,
        ):
            job = await print_one(farm, tmp_path, 8)
            both = truth(job, plug, dryer)
            assert truth(job, dryer) > 0
            assert job["energy_kwh"] == pytest.approx(both, rel=0.01)
            assert job["energy_kwh"] > truth(job, plug) * 1.01  # the dryer's share is in it


def extruding_file(path: Path, moves: int) -> Path:
    """A PLA print that extrudes 50 mm of 1.75 mm filament per move (0.149 g), dwelling between."""
    lines = ["; generated by PrusaSlicer 2.7.1", "M104 S200", "M140 S60", "G28", "G90", "M83"]
    for i in range(moves):
        lines += [f"G1 X{20 + (i % 2) * 100} Y20 E50 F3000", "G4 P250"]
    # As a slicer's end code does: the last extrusion is a moment before the end (the scale, which
    # polls OctoPrint, shows it a poll later).
    lines += ["G4 P1500", "M104 S0", "M140 S0", "", f"; filament used [g] = {moves * 0.149:.2f}"]
    lines += ["; prusaslicer_config = begin", "; filament_type = PLA", "; nozzle_diameter = 0.4"]
    lines.append("; prusaslicer_config = end")
    path.write_text("\n".join(lines) + "\n")
    return path


async def test_a_daemon_killed_mid_print_still_measures_the_whole_print(
    octoprint: OctoPrintFactory, mosquitto: MosquittoPeer, tmp_path: Path
) -> None:
    """SIGKILL while printing, restart: the start readings were stored, so energy and grams cover the
    whole print, also what the plug and scale reported while no daemon listened."""
    (peer,) = octoprint(1)
    broker = Broker("127.0.0.1", mosquitto.port)
    specs = [("plug-a", "tele/plug-a/SENSOR", "tasmota")]
    scale_lines = [
        "[[sensors]]",
        'id = "scale-a"',
        'topic = "scales/sensor/spool_a/state"',
        'profile = "esphome"',
        'kind = "weight"',
        'printer = "p1"',
    ]
    sections = sensors(specs, mosquitto.port) + "\n" + "\n".join(scale_lines)
    spec = PrinterSpec("p1", peer.url, peer.api_key, extra=('plug = "plug-a"', 'scale = "scale-a"'))
    path = write_config(tmp_path, [spec], tokens=TOKENS, sections=sections)
    config = load_config(path)
    token = (tmp_path / "etc/secrets/ops.token").read_text().strip()
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        OctoPrintClient(peer.url, peer.api_key) as printer,
        httpx.AsyncClient(base_url=f"http://{config.api.listen}", headers=headers, timeout=30) as api,
    ):
        plug = SimMeterPlug("tasmota", "plug-a", broker, printer, publish_s=PUBLISH_S, kwh_decimals=DECIMALS)
        scale = SimScale("spool_a", broker, printer, publish_s=PUBLISH_S, decimals=3)
        async with plugs_running(plug, scale):
            daemon = Daemon(path, tmp_path / "daemon.log")
            try:
                await _up(api, daemon)
                assert (await api.post("/api/v1/printers/p1/clear")).status_code in (200, 409)
                with extruding_file(tmp_path / "part.gcode", 40).open("rb") as f:
                    resp = await api.post("/api/v1/jobs", files={"file": ("part.gcode", f)})
                assert resp.status_code == 201, resp.text
                job_id = resp.json()["jobs"][0]["id"]
                await _until(api, job_id, lambda j: j["state"] == "printing", 60)
                await asyncio.sleep(4)
                daemon.kill()
                await asyncio.sleep(3)  # readings go by with no daemon listening
                daemon = Daemon(path, tmp_path / "daemon.log")
                await _up(api, daemon)
                job = await _until(api, job_id, lambda j: j["energy_kwh"] is not None, 120)
            finally:
                daemon.stop()
    assert job["state"] == "completed"
    start = datetime.fromisoformat(job["started_at"])
    end = datetime.fromisoformat(job["finished_at"])
    assert job["energy_kwh"] == pytest.approx(plug.energy_kwh_between(start, end), rel=0.01), job
    used = scale.grams_used_between(start, end)
    assert used > 3  # 40 moves of 0.149 g
    assert job["filament_measured_g"] == pytest.approx(used, rel=0.01), job
    assert job["filament_g"] == job["filament_measured_g"]


async def _up(api: httpx.AsyncClient, daemon: Daemon) -> None:
    async with asyncio.timeout(30):
        while True:
            assert daemon.proc.poll() is None, daemon.log.read_text()[-3000:]
            with contextlib.suppress(httpx.TransportError):
                if (await api.get("/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.05)


async def _until(api: httpx.AsyncClient, job_id: int, check: Any, timeout: float) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            with contextlib.suppress(httpx.TransportError):
                resp = await api.get(f"/api/v1/jobs/{job_id}")
                if resp.status_code == 200 and check(job := resp.json()):
                    return dict(job)
            await asyncio.sleep(0.2)
