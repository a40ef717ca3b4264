"""Sensor telemetry end to end: real payloads published to mosquitto come back from InfluxDB 1.6.7 as
exactly the expected points, and outages of the database or the broker lose nothing."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import aiomqtt
import pytest

from controller.config import Config
from controller.core.events import EventFeed
from controller.telemetry.ingest import MqttIngest
from tests.conftest import OctoPrintFactory
from tests.farm import TOKENS, print_file, running_farm
from tests.helpers import PrinterSpec, config_for, metric_value
from tests.influxql import create_db, influxql, wait_rows
from tests.peers.servers import InfluxPeer, MosquittoPeer, VictoriaPeer

SENSORS = """
[[sensors]]
id = "plug-1"
topic = "tele/plug-1/SENSOR"
profile = "tasmota"
location = "room-a"
[[sensors]]
id = "shelly-1"
topic = "shellyplugs-1/status/switch:0"
profile = "shelly"
location = "room-a"
[[sensors]]
id = "climate"
topic = "zigbee2mqtt/climate"
profile = "zigbee2mqtt"
location = "enclosure"
[[sensors]]
id = "scale-1"
topic = "scales/sensor/scale_1/state"
profile = "esphome"
kind = "weight"
location = "room-a"
[[sensors]]
id = "meter"
topic = "workshop/meter"
profile = "json"
measurement = "power"
location = "room-a"
[[sensors.fields]]
path = "watts"
field = "power_w"
[[sensors.fields]]
path = "total_wh"
field = "energy_kwh"
scale = 0.001
"""

TASMOTA = {
    "Time": "2026-11-21T10:00:00",
    "ENERGY": {"TotalStartTime": "2026-01-01T00:00:00", "Total": 12.345, "Yesterday": 0.5, "Today": 0.25,
               "Power": 123, "ApparentPower": 130, "ReactivePower": 20, "Factor": 0.95, "Voltage": 231,
               "Current": 0.55},
}  # fmt: skip
SHELLY = {"id": 0, "source": "timer", "output": True, "apower": 87.5, "voltage": 229.8, "current": 0.41,
          "aenergy": {"total": 4567.8, "by_minute": [1200.5, 1180.1, 1190.7], "minute_ts": 1795300000},
          "temperature": {"tC": 41.2, "tF": 106.2}}  # fmt: skip
Z2M = {"temperature": 27.5, "humidity": 41, "battery": 90, "linkquality": 120}
# One real-shaped message per profile, and the (measurement, sensor, field) values they must become.
PROFILE_MESSAGES = [
    ("tele/plug-1/SENSOR", json.dumps(TASMOTA).encode()),
    ("shellyplugs-1/status/switch:0", json.dumps(SHELLY).encode()),
    ("zigbee2mqtt/climate", json.dumps(Z2M).encode()),
    ("scales/sensor/scale_1/state", b"1234.5"),
    ("workshop/meter", b'{"watts": 55.5, "total_wh": 1500}'),
]
EXPECTED = {
    ("power", "plug-1", "power_w"): 123.0,
    ("power", "plug-1", "energy_kwh"): 12.345,
    ("power", "plug-1", "voltage_v"): 231.0,
    ("power", "plug-1", "current_a"): 0.55,
    ("power", "shelly-1", "power_w"): 87.5,
    ("power", "shelly-1", "energy_kwh"): 4.5678,  # the Wh counter in kWh
    ("power", "shelly-1", "voltage_v"): 229.8,
    ("power", "shelly-1", "current_a"): 0.41,
    ("environment", "climate", "temperature_c"): 27.5,
    ("environment", "climate", "humidity_pct"): 41.0,
    ("material", "scale-1", "weight_g"): 1234.5,
    ("power", "meter", "power_w"): 55.5,
    ("power", "meter", "energy_kwh"): 1.5,
}


@pytest.fixture
def shipped_mosquitto(tmp_path: Path) -> Iterator[MosquittoPeer]:
    """mosquitto with deploy/mosquitto.conf: the queue limits users get, and a login."""
    peer = MosquittoPeer(tmp_path / "mosquitto-shipped", settings="shipped")
    peer.start_and_wait()
    yield peer
    peer.stop()


def telemetry_config(tmp_path: Path, mosquitto: MosquittoPeer, influx_url: str, extra: str = "") -> Config:
    login = mosquitto.login_toml(tmp_path / "etc")
    sections = (
        f'[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.port}\nclient_id = "farmctl-{tmp_path.name[-20:]}"\n'
        f"reconnect_max = 1.0\n{login}{SENSORS}\n"
        f'[influx]\napi = "v1"\nurl = "{influx_url}"\ndatabase = "farm"\nflush_interval = 0.2\n'
        f"retry_max = 1.0\nprinter_interval = 1.0\n{extra}"
    )
    return config_for(tmp_path, [], tokens=TOKENS, sections=sections)


async def publish(mosquitto: MosquittoPeer, messages: list[tuple[str, bytes]]) -> None:
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
        for topic, payload in messages:
            await client.publish(topic, payload, qos=1)


async def test_each_profile_lands_in_influxdb_16_as_the_expected_points(
    mosquitto: MosquittoPeer, influxdb: InfluxPeer, tmp_path: Path
) -> None:
    await create_db(influxdb)
    config = telemetry_config(tmp_path, mosquitto, influxdb.url)
    async with running_farm(config, tmp_path / "etc/secrets") as farm:
        await asyncio.sleep(1.0)  # the ingest subscribes
        await publish(
            mosquitto,
            [
                *PROFILE_MESSAGES,
                ("tele/plug-1/STATE", b'{"POWER":"ON"}'),  # not subscribed: never received
                ("scales/sensor/scale_1/state", b"nan"),  # a failed HX711 read: refused, counted
                ("tele/plug-1/SENSOR", b"{not json"),
            ],
        )
        found: dict[tuple[str, str, str], float] = {}
        queries = {
            "power": (3, "SELECT * FROM power GROUP BY *"),
            "environment": (1, "SELECT * FROM environment GROUP BY *"),
            "material": (1, "SELECT * FROM material GROUP BY *"),
        }
        for measurement, (count, query) in queries.items():
            rows = await wait_rows(influxdb, query, count)
            assert len(rows) == count, rows  # one point per message, nothing twice
            for row in rows:
                assert row["location"] == ("enclosure" if row["sensor"] == "climate" else "room-a")
                for key, value in row.items():
                    if key not in ("time", "sensor", "location") and value is not None:
                        found[(measurement, row["sensor"], key)] = value
        assert found == pytest.approx(EXPECTED)
        # The farm writes its own counts too.
        farm_rows = await wait_rows(influxdb, "SELECT * FROM farm", 1)
        assert farm_rows[0]["queued"] == 0.0

        metrics = (await farm.api.get("/metrics")).text
        assert 'farmctl_mqtt_messages_rejected_total{sensor="scale-1"} 1' in metrics
        assert 'farmctl_mqtt_messages_rejected_total{sensor="plug-1"} 1' in metrics
        assert "farmctl_mqtt_messages_received_total 7" in metrics
        assert metric_value(metrics, "farmctl_mqtt_connected") == 1
        assert metric_value(metrics, "farmctl_mqtt_broker_messages_dropped_total") == 0  # mosquitto's $SYS
        assert (await farm.api.get("/metrics", headers={"Authorization": "Bearer nope"})).status_code == 401


async def test_database_outage_and_daemon_restart_lose_no_point(
    mosquitto: MosquittoPeer, influxdb: InfluxPeer, tmp_path: Path
) -> None:
    await create_db(influxdb)
    config = telemetry_config(tmp_path, mosquitto, influxdb.url)
    sent = 0

    async def send(count: int) -> None:
        nonlocal sent
        batch = [("scales/sensor/scale_1/state", f"{1000 + sent + i}".encode()) for i in range(count)]
        sent += count
        await publish(mosquitto, batch)

    async with running_farm(config, tmp_path / "etc/secrets") as farm:
        await asyncio.sleep(1.0)
        await send(20)
        await wait_rows(influxdb, "SELECT weight_g FROM material", 20)
        influxdb.stop()  # the database goes away for 30 s while the scale keeps publishing
        for _ in range(6):
            await send(20)
            await asyncio.sleep(2.5)
        metrics = (await farm.api.get("/metrics")).text
        assert "farmctl_points_spooled_total" in metrics
        spooled = metric_value(metrics, "farmctl_spool_points")
        assert spooled >= 100, metrics
    # The daemon stops during the outage and comes back: the spool on disk is still there.
    async with running_farm(config, tmp_path / "etc/secrets") as farm:
        await asyncio.sleep(1.0)
        await send(20)
        await asyncio.sleep(10)
        influxdb.start_and_wait()
        rows = await wait_rows(influxdb, "SELECT weight_g FROM material", sent, timeout=30)
        assert sorted(r["weight_g"] for r in rows) == [float(1000 + i) for i in range(sent)]
        async with asyncio.timeout(10):
            while metric_value((await farm.api.get("/metrics")).text, "farmctl_spool_points") != 0:
                await asyncio.sleep(0.2)


async def test_a_backlog_larger_than_any_buffer_arrives_whole(
    shipped_mosquitto: MosquittoPeer, influxdb: InfluxPeer, tmp_path: Path
) -> None:
    """25,000 QoS 1 messages wait on the broker (with the shipped settings) while farmctl is down. The
    broker may send them faster than they are stored; acking late makes that back-pressure (automatic
    acks once dropped already-acknowledged messages from a full in-memory queue)."""
    mosquitto = shipped_mosquitto
    await create_db(influxdb)
    config = telemetry_config(tmp_path, mosquitto, influxdb.url)
    async with running_farm(config, tmp_path / "etc/secrets"):
        await asyncio.sleep(1.0)  # the session and its subscriptions exist from now on
    total = 25_000
    async with aiomqtt.Client(
        "127.0.0.1",
        mosquitto.port,
        username=mosquitto.username,
        password=mosquitto.password,
        max_inflight_messages=500,
    ) as client:
        for start in range(0, total, 500):
            await asyncio.gather(
                *(
                    client.publish("scales/sensor/scale_1/state", str(i), qos=1)
                    for i in range(start, start + 500)
                )
            )
    async with running_farm(config, tmp_path / "etc/secrets") as farm:
        count = "SELECT count(weight_g) FROM material"
        async with asyncio.timeout(90):
            while not (rows := await influxql(influxdb, count)) or rows[0]["count"] < total:
                await asyncio.sleep(0.5)
        metrics = (await farm.api.get("/metrics")).text
    assert rows[0]["count"] == total
    assert metric_value(metrics, "farmctl_mqtt_messages_received_total") == total
    assert metric_value(metrics, "farmctl_mqtt_messages_dropped_total") == 0
    assert metric_value(metrics, "farmctl_mqtt_broker_messages_dropped_total") == 0
    weights = await influxql(influxdb, "SELECT sum(weight_g) FROM material")
    assert weights[0]["sum"] == sum(range(total))  # each value once: none lost, none twice


async def test_broker_restart_mid_stream_loses_no_qos1_message(
    mosquitto: MosquittoPeer, influxdb: InfluxPeer, tmp_path: Path
) -> None:
    await create_db(influxdb)
    config = telemetry_config(tmp_path, mosquitto, influxdb.url)
    async with running_farm(config, tmp_path / "etc/secrets"):
        await asyncio.sleep(1.0)
        await publish(mosquitto, [("scales/sensor/scale_1/state", f"{i}".encode()) for i in range(50)])
        mosquitto.stop()
        await asyncio.sleep(1)
        await asyncio.to_thread(mosquitto.start_and_wait)
        # Published while farmctl is still reconnecting: the broker holds them for its session.
        await publish(mosquitto, [("scales/sensor/scale_1/state", f"{i}".encode()) for i in range(50, 100)])
        rows = await wait_rows(influxdb, "SELECT weight_g FROM material", 100, timeout=30)
        # Every message arrived. QoS 1 is at-least-once: a message whose ack had not reached the broker
        # when it stopped (acks go out in groups, at most a millisecond late, and a message the daemon
        # was still handling is acked on a connection that is gone) is sent again after the restart. The
        # broker has at most its in-flight window (mosquitto: 20) of consecutive messages unacknowledged,
        # so at most 20 values, all within one run of 20, may be stored twice.
        weights = [r["weight_g"] for r in rows]
        assert set(weights) == {float(i) for i in range(100)}
        assert len(weights) - 100 <= 20
        twice = sorted({w for w in weights if weights.count(w) > 1})
        assert not twice or twice[-1] - twice[0] < 20, twice


async def test_api_v2_writes_reach_victoriametrics(
    mosquitto: MosquittoPeer, victoria: VictoriaPeer, tmp_path: Path
) -> None:
    (tmp_path / "etc/secrets").mkdir(parents=True)
    (tmp_path / "etc/secrets/influx.token").write_text("a-token\n")
    sections = (
        f'[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.port}\nclient_id = "farmctl-v2"\n{SENSORS}\n'
        f'[influx]\napi = "v2"\nurl = "{victoria.url}"\norg = "workshop"\nbucket = "farm"\n'
        'token_file = "secrets/influx.token"\nflush_interval = 0.2\nprinter_interval = 1.0\n'
    )
    config = config_for(tmp_path, [], tokens=TOKENS, sections=sections)
    async with running_farm(config, tmp_path / "etc/secrets"):
        await asyncio.sleep(1.0)
        await publish(mosquitto, PROFILE_MESSAGES)
        found: dict[tuple[str, str, str], float] = {}
        async with asyncio.timeout(20), aiohttp.ClientSession() as http:
            while len(found) < len(EXPECTED):
                await asyncio.sleep(0.3)
                async with http.get(f"{victoria.url}/internal/force_flush"):
                    pass
                params = {"match[]": '{sensor=~".+"}'}
                async with http.get(f"{victoria.url}/api/v1/export", params=params) as resp:
                    for line in (await resp.text()).splitlines():
                        row = json.loads(line)
                        metric = row["metric"]
                        measurement, field = metric["__name__"].split("_", 1)
                        found[(measurement, metric["sensor"], field)] = row["values"][-1]
                        assert metric["location"] == (
                            "enclosure" if metric["sensor"] == "climate" else "room-a"
                        )
                        assert len(row["values"]) == 1
    assert found == pytest.approx(EXPECTED)


async def test_printer_and_job_points_follow_a_print(
    octoprint: OctoPrintFactory, mosquitto: MosquittoPeer, influxdb: InfluxPeer, tmp_path: Path
) -> None:
    await create_db(influxdb)
    (peer,) = octoprint(1)
    sections = (
        f'[jobs]\ndispatch_interval = 0.5\n[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.port}\n'
        'client_id = "farmctl-points"\n'
        '[[sensors]]\nid = "plug-p1"\ntopic = "tele/plug-p1/SENSOR"\nprofile = "tasmota"\nprinter = "p1"\n'
        f'[influx]\napi = "v1"\nurl = "{influxdb.url}"\ndatabase = "farm"\nflush_interval = 0.2\n'
        "printer_interval = 0.5\n"
    )
    config = config_for(
        tmp_path, [PrinterSpec("p1", peer.url, peer.api_key)], tokens=TOKENS, sections=sections
    )
    async with running_farm(config, tmp_path / "etc/secrets") as farm:
        await asyncio.sleep(1.0)
        await publish(mosquitto, [("tele/plug-p1/SENSOR", json.dumps(TASMOTA).encode())])
        await farm.clear_all()
        (job,) = await farm.submit(print_file(tmp_path / "part.gcode", seconds=3), owner="alice")
        await farm.wait_job(job["id"], {"completed"})
        await asyncio.sleep(1.5)  # the next interval writes the printer's state after the print

    plug = await wait_rows(influxdb, "SELECT power_w FROM power GROUP BY *", 1)
    assert [(r["sensor"], r["printer"], r["power_w"]) for r in plug] == [("plug-p1", "p1", 123.0)]

    jobs = await wait_rows(influxdb, "SELECT * FROM job GROUP BY *", 4)
    jobs.sort(key=lambda r: int(r["time"]))
    assert [r["state"] for r in jobs] == ["queued", "dispatching", "printing", "completed"]
    assert {r["job_id"] for r in jobs} == {str(job["id"])}
    assert {(r["owner"], r["material"]) for r in jobs} == {("alice", "PLA")}
    done = jobs[-1]
    assert (done["printer"], done["outcome"], done["filament_g"]) == ("p1", "completed", 1.5)
    assert 2.0 < done["duration_s"] < 30.0

    printer = await wait_rows(influxdb, "SELECT * FROM printer GROUP BY *", 3)
    assert {(r["printer"], r["group"]) for r in printer} == {("p1", "default")}
    states = [r["state"] for r in sorted(printer, key=lambda r: int(r["time"]))]
    assert "printing" in states
    assert states[-1] == "awaiting_clear"  # the bed is used until someone clears it
    printing = [r for r in printer if r["state"] == "printing"]
    assert all(0.0 <= r["progress"] <= 100.0 for r in printing)
    # Temperatures appear once OctoPrint has polled them (every few seconds while idle).
    assert any(isinstance(r["tool_actual"], float) and r["tool_target"] == 200.0 for r in printing)
    assert any(isinstance(r["bed_actual"], float) and r["bed_target"] == 60.0 for r in printing)
    farm_counts = await influxql(influxdb, "SELECT * FROM farm")
    assert max(r["printing"] for r in farm_counts) == 1.0
    assert farm_counts[-1]["awaiting_clear"] == 1.0


async def test_ingest_stops_within_seconds_whenever_the_stop_comes(
    mosquitto: MosquittoPeer, tmp_path: Path
) -> None:
    """A stop racing the SUBACKs once left the ingest waiting for messages forever (a cancel lost
    inside asyncio.wait_for on Python 3.11); the daemon then hung on SIGTERM."""
    sensor = (
        '[[sensors]]\nid = "s{i}"\ntopic = "scales/sensor/s{i}/state"\nprofile = "esphome"\nkind = "weight"\n'
    )
    scales = "".join(sensor.format(i=i) for i in range(50))  # many SUBACKs: a wide window for the race
    sections = f'[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.port}\nclient_id = "farmctl-stop"\n{scales}'
    config = config_for(tmp_path, [], sections=sections)
    assert config.mqtt is not None

    for attempt in range(60):
        ingest = MqttIngest(config.mqtt, config.sensors, EventFeed())
        stop = asyncio.Event()
        task = asyncio.create_task(ingest.run(stop))
        await asyncio.sleep(0.002 * (attempt % 20))  # before, during and after the 50 subscribes
        stop.set()
        started = time.monotonic()
        await asyncio.wait_for(task, 5)
        assert time.monotonic() - started < 2.5, attempt
