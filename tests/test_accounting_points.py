"""A print's measured and priced figures reach InfluxDB 1.6.7 as its `job` point, and match the API."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from controller.config import load_config
from devices.octoprint import OctoPrintClient
from devices.sim.follow import Broker
from devices.sim.meter_plug import SimMeterPlug
from tests.conftest import OctoPrintFactory
from tests.farm import running_farm
from tests.influxql import create_db, wait_rows
from tests.peers.servers import InfluxPeer, MosquittoPeer
from tests.test_accounting_energy import DECIMALS, PUBLISH_S, farm_config, plugs_running, print_one, sensors

COSTS = """
[costs]
energy_per_kwh = 0.40
machine_hour = 1.20
co2_g_per_kwh = 350.0
[costs.materials.PLA]
per_kg = 30.0
"""


async def test_job_point_carries_measured_energy_cost_and_co2(
    octoprint: OctoPrintFactory, mosquitto: MosquittoPeer, influxdb: InfluxPeer, tmp_path: Path
) -> None:
    (peer,) = octoprint(1)
    await create_db(influxdb)
    influx = (
        f'[influx]\napi = "v1"\nurl = "{influxdb.url}"\ndatabase = "farm"\nflush_interval = 0.2\n'
        "printer_interval = 1.0\n"
    )
    sections = sensors([("plug-a", "tele/plug-a/SENSOR", "tasmota")], mosquitto.port) + "\n" + influx + COSTS
    path = farm_config(tmp_path, peer.url, peer.api_key, ["plug-a"], sections)
    broker = Broker("127.0.0.1", mosquitto.port)
    async with OctoPrintClient(peer.url, peer.api_key) as printer:
        plug = SimMeterPlug("tasmota", "plug-a", broker, printer, publish_s=PUBLISH_S, kwh_decimals=DECIMALS)
        async with plugs_running(plug), running_farm(load_config(path), tmp_path / "etc/secrets") as farm:
            job = await print_one(farm, tmp_path, 6)
            query = "SELECT * FROM job WHERE outcome = 'completed' GROUP BY *"
            rows = await wait_rows(influxdb, query, 1, timeout=30)

    # Priced as [costs] says: 0.40/kWh, 30/kg of PLA (the slicer's 1.5 g: no scale), 1.20 per hour.
    start, end = (datetime.fromisoformat(job[key]) for key in ("started_at", "finished_at"))
    hours = (end - start).total_seconds() / 3600
    expected = job["energy_kwh"] * 0.40 + 1.5 / 1000 * 30.0 + hours * 1.20
    assert job["cost"] == pytest.approx(expected, abs=2e-4)  # money is kept to 4 decimals
    assert job["co2_g"] == pytest.approx(job["energy_kwh"] * 350.0, abs=0.1)
    (point,) = rows
    assert point["job_id"] == str(job["id"])
    assert point["printer"] == "p1"
    assert point["energy_kwh"] == pytest.approx(job["energy_kwh"])
    assert point["heatup_kwh"] == pytest.approx(job["heatup_kwh"])
    assert point["cost"] == pytest.approx(job["cost"])
    assert point["co2_g"] == pytest.approx(job["co2_g"])
    assert point["filament_est_g"] == pytest.approx(1.5)
    assert point["filament_g"] == pytest.approx(1.5)
    assert point["duration_s"] > 0
