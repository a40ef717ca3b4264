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

import pytest

from controller.config import load_config
from devices.octoprint import OctoPrintClient
from devices.sim.follow import Broker
from devices.sim.meter_plug import SimMeterPlug
from tests.conftest import OctoPrintFactory
from tests.farm import TOKENS, Farm, print_file, running_farm
from tests.helpers import PrinterSpec, write_config
from tests.peers.servers import MosquittoPeer

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
async def plugs_running(*plugs: SimMeterPlug) -> AsyncIterator[None]:
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
