"""The broker's queue for farmctl while it is away: deploy/mosquitto.conf keeps a day of messages, and
with mosquitto's defaults (1000 per client) the messages the broker drops show in /metrics and the log."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import paho.mqtt.client as mqtt
import pytest

from controller.config import Config, MqttConfig
from controller.core.events import EventFeed
from controller.telemetry.ingest import BROKER_DROPPED_TOPIC, MqttIngest
from tests.farm import TOKENS, Farm, running_farm
from tests.helpers import config_for, metric_value
from tests.influxql import create_db, influxql
from tests.peers.servers import (
    MACHINE_OPTIONS,
    SHIPPED_MOSQUITTO_CONF,
    InfluxPeer,
    MosquittoPeer,
    QueueSettings,
)

SCALE = "scales/sensor/scale_1/state"
SENSOR = f'[[sensors]]\nid = "scale-1"\ntopic = "{SCALE}"\nprofile = "esphome"\nkind = "weight"\n'
COUNT = "SELECT count(weight_g) FROM material"
DROPPED = "farmctl_mqtt_broker_messages_dropped_total"


def broker(tmp_path: Path, settings: QueueSettings) -> Iterator[MosquittoPeer]:
    peer = MosquittoPeer(tmp_path / f"mosquitto-{settings}", settings=settings)
    peer.start_and_wait()
    yield peer
    peer.stop()


@pytest.fixture
def shipped(tmp_path: Path) -> Iterator[MosquittoPeer]:
    yield from broker(tmp_path, "shipped")


@pytest.fixture
def stock(tmp_path: Path) -> Iterator[MosquittoPeer]:
    yield from broker(tmp_path, "stock")


def farm_config(tmp_path: Path, mosquitto: MosquittoPeer, influx: InfluxPeer) -> Config:
    login = mosquitto.login_toml(tmp_path / "etc")
    sections = (
        f'[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.port}\nclient_id = "farmctl-limits"\n'
        f"reconnect_max = 1.0\n{login}{SENSOR}\n"
        f'[influx]\napi = "v1"\nurl = "{influx.url}"\ndatabase = "farm"\nflush_interval = 0.2\n'
    )
    return config_for(tmp_path, [], tokens=TOKENS, sections=sections)


def client(mosquitto: MosquittoPeer, **kwargs: Any) -> aiomqtt.Client:
    return aiomqtt.Client(
        "127.0.0.1", mosquitto.port, username=mosquitto.username, password=mosquitto.password, **kwargs
    )


async def publish_weights(mosquitto: MosquittoPeer, first: int, count: int) -> None:
    """QoS 1 readings first..first+count-1, each acknowledged by the broker."""
    async with client(mosquitto, max_inflight_messages=500) as pub:
        for start in range(first, first + count, 500):
            batch = range(start, min(start + 500, first + count))
            await asyncio.gather(*(pub.publish(SCALE, str(i), qos=1) for i in batch))


async def stored(influx: InfluxPeer) -> int:
    rows = await influxql(influx, COUNT)
    return int(rows[0]["count"]) if rows else 0


async def wait_dropped(farm: Farm, count: int) -> str:
    """/metrics once it shows the broker's count at `count` (it publishes the count every 10 s)."""
    async with asyncio.timeout(30):
        while True:
            metrics = (await farm.api.get("/metrics")).text
            if f"\n{DROPPED} {float(count)}\n" in metrics:  # prometheus_client writes floats
                return metrics
            await asyncio.sleep(0.5)


async def wait_stored(influx: InfluxPeer, count: int) -> None:
    async with asyncio.timeout(60):
        while await stored(influx) < count:
            await asyncio.sleep(0.3)


def drop_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "mqtt broker dropped" in r.getMessage()]


@pytest.fixture(autouse=True)
def _ingest_warnings(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="controller.telemetry.ingest")


def test_the_shipped_config_has_no_comment_on_an_option_line() -> None:
    """mosquitto 2.0.11 reads a trailing comment as part of a string value, or refuses the line."""
    for number, line in enumerate(SHIPPED_MOSQUITTO_CONF.read_text().splitlines(), 1):
        assert line.startswith("#") or "#" not in line, (number, line)


async def test_mosquitto_runs_the_shipped_config_and_wants_a_login(shipped: MosquittoPeer) -> None:
    # What the test changed: the machine's paths and port, and the user to run as.
    shipped_lines = SHIPPED_MOSQUITTO_CONF.read_text().splitlines()
    run_lines = (shipped.workdir / "mosquitto.conf").read_text().splitlines()
    assert run_lines[0] == "user root"
    changed = {a.split()[0] for a, b in zip(shipped_lines, run_lines[1:], strict=True) if a != b}
    assert changed == set(MACHINE_OPTIONS)
    with pytest.raises(aiomqtt.MqttError, match="Not authorized"):
        async with aiomqtt.Client("127.0.0.1", shipped.port):
            pass
    async with client(shipped) as sub:
        await sub.subscribe(SCALE, qos=1)
        await sub.publish(SCALE, b"1.0", qos=1)
        async with asyncio.timeout(5):
            message = await anext(sub.messages)
    assert message.payload == b"1.0"
    assert shipped.running()


async def test_the_shipped_queue_keeps_3000_messages_while_farmctl_is_down_and_across_a_broker_restart(
    shipped: MosquittoPeer, influxdb: InfluxPeer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    await create_db(influxdb)
    config = farm_config(tmp_path, shipped, influxdb)
    async with running_farm(config, tmp_path / "etc/secrets"):
        await asyncio.sleep(1.0)  # the session and its subscription exist from now on
    total = 3000
    await publish_weights(shipped, 0, total)
    shipped.stop()  # the queue is saved on the way down ...
    shipped.start_and_wait()  # ... and read back
    async with running_farm(config, tmp_path / "etc/secrets") as farm:
        await wait_stored(influxdb, total)
        await wait_dropped(farm, 0)
    assert await stored(influxdb) == total
    weights = await influxql(influxdb, "SELECT sum(weight_g) FROM material")
    assert weights[0]["sum"] == sum(range(total))  # each reading once
    assert drop_warnings(caplog) == []


async def test_a_stock_broker_drops_beyond_1000_and_farmctl_shows_it_once(
    stock: MosquittoPeer, influxdb: InfluxPeer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """mosquitto's default queue (1000 per client) acknowledges every publish and drops what does not
    fit; farmctl cannot see which readings are gone, but shows the broker's count of them."""
    await create_db(influxdb)
    config = farm_config(tmp_path, stock, influxdb)
    async with running_farm(config, tmp_path / "etc/secrets"):
        await asyncio.sleep(1.0)
    await publish_weights(stock, 0, 3000)
    async with running_farm(config, tmp_path / "etc/secrets") as farm:
        await wait_stored(influxdb, 1000)
        metrics = await wait_dropped(farm, 2000)
        assert metric_value(metrics, "farmctl_mqtt_messages_received_total") == 1000
        assert drop_warnings(caplog) == [
            "mqtt broker dropped 2000 messages (2000 since it started): a client's queue was full "
            "(mosquitto max_queued_messages / max_queued_bytes, its log names the client); "
            "sensor readings may be missing"
        ]
        assert "Outgoing messages are being dropped for client farmctl-limits" in stock.log_tail(100)

        # A forgotten session (an old client id) whose queue stays full makes the count rise every
        # 10 s: the metric follows, the log does not repeat itself.
        async with client(stock, identifier="old-farmctl", clean_session=False) as old:
            await old.subscribe(SCALE, qos=1)
        # farmctl takes all (published in steps it keeps up with, so its own stock queue never fills
        # on a busy machine); the old session keeps 1000 of the 1500.
        for step in range(6):
            await publish_weights(stock, 3000 + 250 * step, 250)
            await wait_stored(influxdb, 1250 + 250 * step)
        await wait_dropped(farm, 2500)
        assert len(drop_warnings(caplog)) == 1
    assert await stored(influxdb) == 2500


def test_a_count_that_is_no_number_is_ignored(tmp_path: Path) -> None:
    """Only mosquitto publishes under $SYS, but whatever comes there must not stop the ingest."""
    config = config_for(tmp_path, [], sections=f"[mqtt]\n{SENSOR}")
    assert isinstance(config.mqtt, MqttConfig)

    ingest = MqttIngest(config.mqtt, config.sensors, EventFeed())
    for payload in (b"", b"many", b"12.5", "\u00e9".encode()):
        message = mqtt.MQTTMessage(topic=BROKER_DROPPED_TOPIC.encode())
        message.payload = payload
        ingest._on_broker_dropped(None, None, message)
    assert ingest.stats.broker_dropped is None
    message.payload = b"7"
    ingest._on_broker_dropped(None, None, message)
    assert ingest.stats.broker_dropped == 7
