"""A short simulated farm run that fills an InfluxDB 1.x with what the daemon writes: two virtual
printers with metering plugs, a spool scale, room and enclosure sensors, three completed jobs and one
that fails on a printer error. For tests that query that data (tests/test_dashboards.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from controller.config import load_config
from devices.octoprint import OctoPrintClient
from devices.sim.follow import Broker
from devices.sim.meter_plug import SimMeterPlug
from devices.sim.scale import SimScale
from tests.farm import TOKENS, Farm, print_file, running_farm
from tests.helpers import PrinterSpec, write_config
from tests.influxql import create_db, wait_rows
from tests.peers.octoprint import OctoPrintPeer
from tests.peers.servers import InfluxPeer, MosquittoPeer

PUBLISH_S = 0.25  # plugs and scale report often, so a few-second print has readings around it
LOCATIONS = ("workshop", "enclosure-1")


@dataclass(frozen=True)
class FarmRun:
    """When the run was (ns since the epoch), for a dashboard time range around it, and each printer's
    performance as the daemon's utilisation report gives it for the run."""

    started_ns: int
    ended_ns: int
    performance: dict[str, float | None]


def sections(mosquitto: MosquittoPeer, influx: InfluxPeer) -> str:
    lines = [
        "[jobs]",
        "dispatch_interval = 0.5",
        "retry_after_error = 0",  # the failed job stays failed
        "[mqtt]",
        'host = "127.0.0.1"',
        f"port = {mosquitto.port}",
        'client_id = "farmctl-dashboards"',
        "[influx]",
        'api = "v1"',
        f'url = "{influx.url}"',
        'database = "farm"',
        "flush_interval = 0.2",
        "retry_max = 1.0",
        "printer_interval = 1.0",
        "[costs]",
        "energy_per_kwh = 0.30",
        "co2_g_per_kwh = 400.0",
        "[costs.materials.PLA]",
        "per_kg = 25.0",
        "[accounting]",
        "settle_s = 2",
        "[[members]]",
        'name = "alice"',
        "[[members]]",
        'name = "bob"',
    ]
    sensors = [
        ("plug-1", "tele/plug-1/SENSOR", "tasmota", 'printer = "p1"'),
        ("plug-2", "tele/plug-2/SENSOR", "tasmota", 'printer = "p2"'),
        ("scale-1", "scales/sensor/spool_1/state", "esphome", 'printer = "p1"\nkind = "weight"'),
    ]
    sensors += [
        (f"climate-{loc}", f"zigbee2mqtt/{loc}", "zigbee2mqtt", f'location = "{loc}"') for loc in LOCATIONS
    ]
    for sensor_id, topic, profile, extra in sensors:
        lines += ["[[sensors]]", f'id = "{sensor_id}"', f'topic = "{topic}"', f'profile = "{profile}"', extra]
    return "\n".join(lines)


async def climate(broker: Broker, stop: asyncio.Event) -> None:
    """Zigbee2MQTT temperature and humidity sensors, one per location, every half second."""
    async with broker.client("climate-sensors") as client:
        tick = 0
        while not stop.is_set():
            for i, location in enumerate(LOCATIONS):
                payload = {
                    "temperature": 21.0 + 5 * i + tick % 3 * 0.1,
                    "humidity": 45.0 - i,
                    "linkquality": 90,
                }
                await client.publish(f"zigbee2mqtt/{location}", json.dumps(payload))
            tick += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)


@contextlib.asynccontextmanager
async def devices(broker: Broker, p1: OctoPrintClient, p2: OctoPrintClient) -> AsyncIterator[None]:
    """The plugs, the scale and the climate sensors, publishing until the block ends."""
    plugs = [
        SimMeterPlug("tasmota", "plug-1", broker, p1, publish_s=PUBLISH_S, kwh_decimals=7),
        SimMeterPlug("tasmota", "plug-2", broker, p2, publish_s=PUBLISH_S, kwh_decimals=7),
    ]
    meters: list[SimMeterPlug | SimScale] = [
        *plugs,
        SimScale("spool_1", broker, p1, publish_s=PUBLISH_S, decimals=2),
    ]
    stop = asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        for device in meters:
            tg.create_task(device.run(stop))
        tg.create_task(climate(broker, stop))
        try:
            async with asyncio.timeout(15):
                for device in meters:
                    await device.connected.wait()
            yield
        finally:
            stop.set()


def estimated(path: Path, estimate: str) -> Path:
    """The G-code file with the slicer's print time estimate set to `estimate` ("10m")."""
    lines = path.read_text().splitlines()
    key = "; estimated printing time (normal mode) = "
    text = "\n".join(key + estimate if line.startswith(key) else line for line in lines) + "\n"
    assert key + estimate in text
    path.write_text(text)
    return path


async def print_jobs(farm: Farm, tmp: Path, p2: OctoPrintClient) -> None:
    """Two rounds: each printer completes a job; then p1 completes one while p2's fails mid-print.

    p1's prints take less than their estimate (performance capped at 1), p2's longer (below 1)."""
    await farm.clear_all()
    short = estimated(print_file(tmp / "part.gcode", seconds=3), "1s")
    overestimated = estimated(print_file(tmp / "part-p1.gcode", seconds=3), "10m")
    first = [
        (await farm.submit(path, printer=p, owner=o))[0]
        for path, p, o in ((overestimated, "p1", "alice"), (short, "p2", "bob"))
    ]
    for job in first:
        await farm.wait_job(job["id"], {"completed"}, 90)
    await farm.clear_all()
    (done,) = await farm.submit(overestimated, printer="p1", owner="alice")
    (doomed,) = await farm.submit(print_file(tmp / "long.gcode", seconds=30), printer="p2", owner="bob")
    await farm.wait_job(doomed["id"], {"printing"}, 60)
    await asyncio.sleep(2)  # some way into the print
    await p2.send_commands(["!!DEBUG:trigger_fatal_error_marlin"])
    assert (await farm.wait_job(doomed["id"], {"failed"}, 60))["state"] == "failed"
    await farm.wait_job(done["id"], {"completed"}, 90)
    await p2.connect()  # the operator brings p2 back: its state shows beside p1's


async def simulate(
    peers: list[OctoPrintPeer], mosquitto: MosquittoPeer, influx: InfluxPeer, tmp: Path
) -> FarmRun:
    """Run the farm until every job end is in InfluxDB with its measured figures."""
    started = time.time_ns()
    await create_db(influx)
    one, two = peers
    printers = [
        PrinterSpec("p1", one.url, one.api_key, group="mk4", extra=('plug = "plug-1"', 'scale = "scale-1"')),
        PrinterSpec("p2", two.url, two.api_key, group="mini", extra=('plug = "plug-2"',)),
    ]
    path = write_config(tmp, printers, tokens=TOKENS, sections=sections(mosquitto, influx))
    broker = Broker("127.0.0.1", mosquitto.port)
    async with (
        OctoPrintClient(one.url, one.api_key) as p1,
        OctoPrintClient(two.url, two.api_key) as p2,
        devices(broker, p1, p2),
        running_farm(load_config(path), tmp / "etc/secrets") as farm,
    ):
        await print_jobs(farm, tmp, p2)
        # Every end (3 completed, 1 failed) with its measured energy; the waste of the failed one.
        await wait_rows(influx, 'SELECT "energy_kwh" FROM "job" WHERE "energy_kwh" >= 0', 4, timeout=60)
        await wait_rows(influx, 'SELECT "waste_kwh" FROM "job"', 1, timeout=30)
        await asyncio.sleep(2)  # p2's return to the timeline, a few more printer points
        since = datetime.fromtimestamp(started / 1e9, UTC).isoformat()
        resp = await farm.api.get("/api/v1/reports/utilisation", params={"since": since})
        assert resp.status_code == 200, resp.text
        performance = {row["key"]: row["performance"] for row in resp.json()["rows"]}
    return FarmRun(started, time.time_ns(), performance)
