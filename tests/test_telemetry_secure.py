"""Telemetry with the doors locked: mosquitto requiring a password over TLS, InfluxDB 1.6.7 with auth on.
Wrong credentials spool and say so without printing any secret; fixing them replays the spool."""

from __future__ import annotations

import asyncio
import gc
import logging
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt
import pytest

from controller.config import Config
from tests.farm import TOKENS, running_farm
from tests.helpers import config_for, metric_value
from tests.influxql import influxql, wait_rows
from tests.peers.servers import InfluxPeer, MosquittoPeer
from tests.peers.tls import TlsFiles, make_ca_and_server_cert

MQTT_USER, MQTT_PASSWORD = "farmctl", "mqtt-pw-Zq81"
INFLUX_ADMIN, INFLUX_ADMIN_PASSWORD = "admin", "admin-pw-Lk22"
ADMIN = (INFLUX_ADMIN, INFLUX_ADMIN_PASSWORD)
INFLUX_USER, INFLUX_PASSWORD = "farmctl", "influx-pw-Xe37"
SCALE = "scales/sensor/scale_1/state"
WEIGHTS = "SELECT weight_g FROM material"


@pytest.fixture
def tls(tmp_path: Path) -> TlsFiles:
    return make_ca_and_server_cert(tmp_path / "tls")


@pytest.fixture
def locked_mosquitto(tmp_path: Path, tls: TlsFiles) -> Iterator[MosquittoPeer]:
    workdir = tmp_path / "mosquitto-locked"
    workdir.mkdir()
    passwd = workdir / "passwd"
    subprocess.run(
        ["mosquitto_passwd", "-c", "-b", str(passwd), MQTT_USER, MQTT_PASSWORD], check=True, timeout=30
    )
    peer = MosquittoPeer(
        workdir,
        extra=[
            f"cafile {tls.ca}",
            f"certfile {tls.cert}",
            f"keyfile {tls.key}",
            "allow_anonymous false",
            f"password_file {passwd}",
        ],
    )
    peer.start_and_wait()
    yield peer
    peer.stop()


@pytest.fixture
def locked_influx(tmp_path: Path) -> Iterator[InfluxPeer]:
    peer = InfluxPeer(tmp_path / "influx-locked", auth=True)
    peer.start_and_wait()
    yield peer
    peer.stop()


async def influx_admin(influx: InfluxPeer, query: str, *, admin: bool = True) -> dict[str, Any]:
    params = {"q": query}
    if admin:
        params |= {"u": INFLUX_ADMIN, "p": INFLUX_ADMIN_PASSWORD}
    async with aiohttp.ClientSession() as http, http.post(f"{influx.url}/query", params=params) as resp:
        body: dict[str, Any] = await resp.json()
        assert resp.status == 200, body
        assert "error" not in body["results"][0], body
        return body


async def set_up_influx_users(influx: InfluxPeer) -> None:
    # The first user may be created without credentials and must be an admin; after that auth applies.
    admin = f"CREATE USER {INFLUX_ADMIN} WITH PASSWORD '{INFLUX_ADMIN_PASSWORD}' WITH ALL PRIVILEGES"
    await influx_admin(influx, admin, admin=False)
    await influx_admin(influx, "CREATE DATABASE farm")
    await influx_admin(influx, f"CREATE USER {INFLUX_USER} WITH PASSWORD '{INFLUX_PASSWORD}'")
    await influx_admin(influx, f"GRANT WRITE ON farm TO {INFLUX_USER}")


def secure_config(
    tmp_path: Path,
    mosquitto: MosquittoPeer,
    influx: InfluxPeer,
    tls: TlsFiles,
    *,
    mqtt_password: str = MQTT_PASSWORD,
    influx_password: str = INFLUX_PASSWORD,
) -> Config:
    secrets = tmp_path / "etc/secrets"
    secrets.mkdir(parents=True, exist_ok=True)
    (secrets / "mqtt.password").write_text(mqtt_password + "\n")
    (secrets / "influx.password").write_text(influx_password + "\n")
    (secrets / "mqtt-ca.crt").write_bytes(tls.ca.read_bytes())
    sections = f"""
[mqtt]
host = "127.0.0.1"
port = {mosquitto.port}
client_id = "farmctl-secure"
username = "{MQTT_USER}"
password_file = "secrets/mqtt.password"
tls = true
ca_file = "secrets/mqtt-ca.crt"
reconnect_max = 1.0
[[sensors]]
id = "scale-1"
topic = "{SCALE}"
profile = "esphome"
kind = "weight"
location = "room-a"
[influx]
api = "v1"
url = "{influx.url}"
database = "farm"
username = "{INFLUX_USER}"
password_file = "secrets/influx.password"
flush_interval = 0.2
retry_max = 1.0
printer_interval = 60.0
"""
    return config_for(tmp_path, [], tokens=TOKENS, sections=sections)


async def publish_tls(mosquitto: MosquittoPeer, tls: TlsFiles, values: range) -> None:
    params = aiomqtt.TLSParameters(ca_certs=str(tls.ca))
    async with aiomqtt.Client(
        "127.0.0.1", mosquitto.port, username=MQTT_USER, password=MQTT_PASSWORD, tls_params=params
    ) as client:
        for value in values:
            await client.publish(SCALE, str(value).encode(), qos=1)


async def _connect_error(port: int, ca: Path) -> str:
    """The error of a TLS connection with the right password but `ca` as the trusted CA."""
    with warnings.catch_warnings():
        # paho leaves the socket of a failed TLS handshake to the garbage collector.
        warnings.simplefilter("ignore", ResourceWarning)
        error = "connected"
        try:
            async with aiomqtt.Client(
                "127.0.0.1",
                port,
                username=MQTT_USER,
                password=MQTT_PASSWORD,
                tls_params=aiomqtt.TLSParameters(ca_certs=str(ca)),
                timeout=3,
            ):
                pass
        except aiomqtt.MqttError as exc:
            error = str(exc)
        await asyncio.sleep(0.2)  # the loop drops its last reference in a later callback
        gc.collect()
    return error


async def test_password_and_tls_broker_into_influxdb_with_auth(
    locked_mosquitto: MosquittoPeer, locked_influx: InfluxPeer, tls: TlsFiles, tmp_path: Path
) -> None:
    await set_up_influx_users(locked_influx)
    # The broker really is locked: no anonymous client, no plain TCP, no unknown CA.
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client("127.0.0.1", locked_mosquitto.port, timeout=3):
            pass
    other_ca = make_ca_and_server_cert(tmp_path / "other-ca", name="other")
    assert "CERTIFICATE_VERIFY_FAILED" in await _connect_error(locked_mosquitto.port, other_ca.ca)
    # Nor does InfluxDB take an anonymous write.
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{locked_influx.url}/write", params={"db": "farm"}, data=b"material weight_g=1") as r,
    ):
        assert r.status == 401

    config = secure_config(tmp_path, locked_mosquitto, locked_influx, tls)
    async with running_farm(config, tmp_path / "etc/secrets") as farm:
        async with asyncio.timeout(20):
            while metric_value((await farm.api.get("/metrics")).text, "farmctl_mqtt_connected") != 1:
                await asyncio.sleep(0.2)
        await publish_tls(locked_mosquitto, tls, range(100, 120))
        rows = await wait_rows(locked_influx, WEIGHTS, 20, timeout=30, auth=ADMIN)
        assert sorted(r["weight_g"] for r in rows) == [float(v) for v in range(100, 120)]


async def test_wrong_credentials_spool_without_leaking_and_replay_once_fixed(
    locked_mosquitto: MosquittoPeer,
    locked_influx: InfluxPeer,
    tls: TlsFiles,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    await set_up_influx_users(locked_influx)
    wrong_influx, wrong_mqtt = "not-the-influx-pw-77", "not-the-mqtt-pw-55"
    secrets = tmp_path / "etc/secrets"
    config = secure_config(tmp_path, locked_mosquitto, locked_influx, tls, influx_password=wrong_influx)
    async with running_farm(config, secrets) as farm:
        async with asyncio.timeout(20):
            while metric_value((await farm.api.get("/metrics")).text, "farmctl_mqtt_connected") != 1:
                await asyncio.sleep(0.2)
        await publish_tls(locked_mosquitto, tls, range(10))
        # Ten weights and the farm point written at start.
        async with asyncio.timeout(20):
            while metric_value((await farm.api.get("/metrics")).text, "farmctl_spool_points") < 11:
                await asyncio.sleep(0.2)
    assert "telemetry database refuses our credentials" in caplog.text
    assert await influxql(locked_influx, WEIGHTS, ADMIN) == []

    # InfluxDB password fixed, MQTT password now wrong: the ingest says the broker refuses it and keeps
    # retrying, while the writer replays the spool regardless.
    config = secure_config(tmp_path, locked_mosquitto, locked_influx, tls, mqtt_password=wrong_mqtt)
    async with running_farm(config, secrets) as farm:
        rows = await wait_rows(locked_influx, WEIGHTS, 10, timeout=30, auth=ADMIN)
        assert sorted(r["weight_g"] for r in rows) == [float(v) for v in range(10)]
        await asyncio.sleep(2)
        assert metric_value((await farm.api.get("/metrics")).text, "farmctl_mqtt_connected") == 0
    assert "mqtt broker 127.0.0.1" in caplog.text
    for secret in (wrong_influx, wrong_mqtt, MQTT_PASSWORD, INFLUX_PASSWORD):
        assert secret not in caplog.text
