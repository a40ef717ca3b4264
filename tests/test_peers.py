"""The other real peers start, answer and stop by PID: mosquitto, InfluxDB 1.6.7, VictoriaMetrics."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import aiomqtt

from tests.peers.servers import InfluxPeer, MosquittoPeer, VictoriaPeer


async def test_mosquitto_delivers_qos1_and_keeps_a_persistent_session(
    mosquitto: MosquittoPeer, tmp_path: Path
) -> None:
    topic = f"farmctl-test/{tmp_path.name}/plug"
    sub = aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="farmctl-sub", clean_session=False)
    async with sub:
        await sub.subscribe(topic, qos=1)
    # Published while the subscriber is away and across a broker restart: held by its session.
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as pub:
        for i in range(5):
            await pub.publish(topic, f"{i}", qos=1)
    mosquitto.stop()
    mosquitto.start_and_wait()
    got: list[str] = []
    async with aiomqtt.Client(
        "127.0.0.1", mosquitto.port, identifier="farmctl-sub", clean_session=False
    ) as sub:
        async with asyncio.timeout(10):
            async for message in sub.messages:
                got.append(bytes(message.payload).decode())
                if len(got) == 5:
                    break
    assert got == ["0", "1", "2", "3", "4"]


async def test_influxdb_16_writes_and_queries_influxql(influxdb: InfluxPeer) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{influxdb.url}/query", params={"q": "CREATE DATABASE farm"}) as resp:
            assert resp.status == 200
        line = "power,sensor=plug-1,printer=mk4 power_w=123.5,energy_kwh=1.25 1700000000000000000"
        async with http.post(f"{influxdb.url}/write", params={"db": "farm"}, data=line) as resp:
            assert resp.status == 204
        async with http.post(f"{influxdb.url}/write", params={"db": "farm"}, data="bad line") as resp:
            assert resp.status == 400
        q = {"db": "farm", "q": "SELECT power_w FROM power WHERE printer = 'mk4'"}
        async with http.get(f"{influxdb.url}/query", params=q) as resp:
            body = await resp.json()
    series = body["results"][0]["series"][0]
    assert series["values"] == [["2023-11-14T22:13:20Z", 123.5]]


async def test_victoriametrics_accepts_line_protocol(victoria: VictoriaPeer) -> None:
    async with aiohttp.ClientSession() as http:
        line = "environment,sensor=encl-1,location=east temperature_c=24.5 1700000000000000000"
        async with http.post(f"{victoria.url}/write", data=line) as resp:
            assert resp.status == 204
        async with http.get(f"{victoria.url}/internal/force_flush") as resp:
            assert resp.status == 200
        params = {"match[]": "environment_temperature_c", "start": "1699999990", "end": "1700000010"}
        async with http.get(f"{victoria.url}/api/v1/export", params=params) as resp:
            text = await resp.text()
    assert '"sensor":"encl-1"' in text
    assert "24.5" in text
