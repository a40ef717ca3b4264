"""Sensor ingest end to end: mosquitto → farmctl (a daemon subprocess) → InfluxDB 1.6.7, against a bare
aiomqtt receive loop on the same broker in the same run.

1. Throughput: N QoS 1 messages (half Tasmota plug telemetry, half ESPHome scale states, spread over
   50 configured sensors) wait on the broker for a persistent session; then the consumer connects and
   drains them. Bare loop: first message → Nth message received. farmctl: first message received (the
   first point's own timestamp, which is its receive time) → the Nth point written (InfluxDB accepted
   it; the daemon's /metrics count, polled; InfluxDB's own count is checked once at the end).
   The two take turns for --rounds rounds (the pace of this shared machine drifts by ±20 % from
   minute to minute); the median of the per-round ratios is the figure.
2. Latency at a steady 1,000 msg/s: each scale message carries its sequence number as the weight;
   bare loop: publish → received; farmctl: publish → the point visible in InfluxDB (polled every 10 ms
   for points received since the oldest one not seen yet was sent). Measured at the default
   flush_interval (1 s: the batching age dominates) and at 0.1 s (the pipeline's own cost).
3. The daemon's RSS: idle after start, and its high-water mark (VmHWM) after each phase.

    .venv/bin/python bench/ingest.py [--messages 30000] [--rounds 5] [--seconds 10] [--rate 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.procstat import Cpu, ms, status_mib  # noqa: E402
from devices.localproc import LocalProcess, free_port  # noqa: E402
from tests.helpers import metric_value, write_config  # noqa: E402
from tests.peers.servers import InfluxPeer, MosquittoPeer  # noqa: E402

PLUGS = 25
SCALES = 25
POLL_S = 0.01
LOOK_BACK_S = 0.1
DRAIN_POLL_S = 0.1
END_POLL_S = 0.01
RECEIVED = "farmctl_mqtt_messages_received_total"
WRITTEN = "farmctl_points_written_total"


def sensors_toml() -> str:
    lines = []
    for i in range(PLUGS):
        lines += ["[[sensors]]", f'id = "plug-{i}"', f'topic = "tele/plug-{i}/SENSOR"', 'profile = "tasmota"']
        lines += ['location = "hall"']
    for i in range(SCALES):
        lines += ["[[sensors]]", f'id = "scale-{i}"', f'topic = "scales/sensor/scale_{i}/state"']
        lines += ['profile = "esphome"', 'kind = "weight"', 'location = "hall"']
    return "\n".join(lines) + "\n"


TOPICS = [f"tele/plug-{i}/SENSOR" for i in range(PLUGS)] + [
    f"scales/sensor/scale_{i}/state" for i in range(SCALES)
]


def plug_payload(seq: int) -> bytes:
    energy = {"Total": 12.3 + seq / 1000, "Power": 100 + seq % 50, "Voltage": 230, "Current": 0.45}
    return json.dumps({"Time": "2026-11-21T10:00:00", "ENERGY": energy}).encode()


def mixed_messages(count: int) -> list[tuple[str, bytes]]:
    out = []
    for seq in range(count):
        if seq % 2:
            out.append((f"tele/plug-{seq // 2 % PLUGS}/SENSOR", plug_payload(seq)))
        else:
            out.append((f"scales/sensor/scale_{seq // 2 % SCALES}/state", f"{seq}.5".encode()))
    return out


async def publish_all(port: int, messages: list[tuple[str, bytes]]) -> None:
    async with aiomqtt.Client("127.0.0.1", port, identifier="bench-pub", max_inflight_messages=200) as client:
        for start in range(0, len(messages), 100):
            chunk = messages[start : start + 100]
            await asyncio.gather(*(client.publish(t, p, qos=1) for t, p in chunk))


class Influx:
    def __init__(self, url: str) -> None:
        self.url = url
        self.http = aiohttp.ClientSession()

    async def query(self, q: str) -> list[dict[str, Any]]:
        params = {"db": "bench", "q": q, "epoch": "ns"}
        async with self.http.post(f"{self.url}/query", params=params) as resp:
            body = await resp.json()
        results: list[dict[str, Any]] = body["results"]
        return results

    async def count(self) -> int:
        results = await self.query("SELECT count(weight_g) FROM material; SELECT count(power_w) FROM power")
        return sum(int(r["series"][0]["values"][0][1]) for r in results if r.get("series"))

    async def first_time(self) -> float:
        results = await self.query("SELECT first(weight_g) FROM material; SELECT first(power_w) FROM power")
        return min(int(r["series"][0]["values"][0][0]) for r in results if r.get("series")) / 1e9

    async def reset(self) -> None:
        await self.query("DROP DATABASE bench; CREATE DATABASE bench")

    async def close(self) -> None:
        await self.http.close()


@dataclass
class Daemon:
    work: Path
    mqtt_port: int
    influx_url: str
    flush_interval: float
    client_id: str
    rss_idle: float = 0.0
    hwm: float = 0.0
    proc: LocalProcess | None = None
    api: str = ""
    token: str = field(default="", repr=False)

    def write(self) -> Path:
        port = free_port()
        self.api = f"http://127.0.0.1:{port}"
        sections = (
            f'[mqtt]\nhost = "127.0.0.1"\nport = {self.mqtt_port}\nclient_id = "{self.client_id}"\n'
            f"{sensors_toml()}\n"
            f'[influx]\napi = "v1"\nurl = "{self.influx_url}"\ndatabase = "bench"\n'
            f"flush_interval = {self.flush_interval}\nprinter_interval = 600\n"
        )
        config = write_config(self.work, [], api_port=port, tokens={"viewer": "viewer"}, sections=sections)
        self.token = (self.work / "etc/secrets/viewer.token").read_text().strip()
        return config

    async def start(self) -> None:
        config = self.write()
        argv = [sys.executable, "-m", "controller", "run", "--config", str(config)]
        self.proc = LocalProcess("farmctl", argv, self.work, env={"PYTHONPATH": str(ROOT)})
        self.proc.start()
        async with asyncio.timeout(30), aiohttp.ClientSession() as http:
            # Connected means subscribed to every sensor topic: the session holds them all from now on.
            while (await self.metrics(http, "farmctl_mqtt_connected")) != [1]:
                await asyncio.sleep(0.05)
        self.rss_idle = self.rss_idle or status_mib(self.proc.pid, "VmRSS")  # the first, fresh start

    async def metrics(self, http: aiohttp.ClientSession, *names: str) -> list[float]:
        """Unlabelled samples of one /metrics answer; -1 each while the API does not answer yet."""
        try:
            headers = {"Authorization": f"Bearer {self.token}"}
            async with http.get(f"{self.api}/metrics", headers=headers) as resp:
                text = await resp.text()
        except aiohttp.ClientError:
            return [-1.0 for _ in names]
        return [metric_value(text, name) for name in names]

    def stop(self) -> None:
        if self.proc is not None:
            self.hwm = max(self.hwm, status_mib(self.proc.pid, "VmHWM"))
            self.proc.stop(20)
            for line in self.proc.log_path.read_text().splitlines():
                if " WARNING " in line or " ERROR " in line:
                    print(f"  daemon log: {line}")
            self.proc = None


def bare_session(port: int) -> aiomqtt.Client:
    """aiomqtt with its defaults (automatic acks, unbounded queue) and a persistent session."""
    return aiomqtt.Client("127.0.0.1", port, identifier="bench-bare", clean_session=False)


async def forget_session(port: int, client_id: str) -> None:
    """End a persistent session: the broker would go on queueing every message for it, which slows it
    down in the phases after (a save of its persistence file each second)."""
    async with aiomqtt.Client("127.0.0.1", port, identifier=client_id, clean_session=True):
        pass


async def bare_drain(port: int, messages: list[tuple[str, bytes]], cpu: Cpu) -> float:
    """Messages per second of a bare aiomqtt loop draining a backlog held for its session."""
    async with bare_session(port) as client:
        for topic in TOPICS:
            await client.subscribe(topic, qos=1)
    await publish_all(port, messages)
    received = 0
    cpu.start()
    async with bare_session(port) as client:
        async for _ in client.messages:
            if received == 0:
                first = time.time()
            received += 1
            if received == len(messages):
                break
    rate = len(messages) / (time.time() - first)
    cpu.stop()
    await forget_session(port, "bench-bare")
    return rate


async def farm_drain(
    daemon: Daemon, influx: Influx, port: int, messages: list[tuple[str, bytes]], cpu: Cpu
) -> tuple[float, float]:
    """Messages per second from the first received to (1) all received by farmctl, (2) the last point
    visible in InfluxDB (which includes the writer's end-of-burst wait of 0.1 s and the last write)."""
    await daemon.start()  # creates the persistent session
    daemon.stop()
    await publish_all(port, messages)
    await daemon.start()
    assert daemon.proc is not None
    cpu.pids["farmctl"] = daemon.proc.pid
    cpu.start()
    received_at = 0.0
    async with asyncio.timeout(300), aiohttp.ClientSession() as http:
        # The daemon's own counters say when the last point was written (InfluxDB answered 204: the
        # point is stored and visible); InfluxDB is asked only once, at the end, to confirm. Counting
        # in InfluxDB every poll made it scan a growing series ten times a second, CPU that the
        # broker and the daemon share on a small machine and that the bare loop's phase never paid.
        while True:
            received, written = await daemon.metrics(http, RECEIVED, WRITTEN)
            if not received_at and received >= len(messages):
                received_at = time.time()
            if written >= len(messages):
                break
            # Not faster during the drain: the polls would take CPU from the daemon. Once all is
            # received, only the last write is awaited: polled closely, not to blur the end.
            await asyncio.sleep(END_POLL_S if received_at else DRAIN_POLL_S)
    done = time.time()
    cpu.stop()
    received_at = received_at or done
    first = await influx.first_time()
    daemon.stop()
    await forget_session(port, daemon.client_id)
    assert await influx.count() == len(messages), "points lost or doubled"
    return len(messages) / (received_at - first), len(messages) / (done - first)


async def paced(port: int, rate: int, seconds: float, sent: dict[int, float]) -> None:
    """Scale messages at `rate` per second, each carrying its sequence number as the weight."""
    total = int(rate * seconds)
    client = aiomqtt.Client("127.0.0.1", port, identifier="bench-pace", max_inflight_messages=200)
    async with client:
        start = time.monotonic()
        tasks = set()
        for seq in range(total):
            due = start + seq / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            sent[seq] = time.time()
            topic = f"scales/sensor/scale_{seq % SCALES}/state"
            task = asyncio.create_task(client.publish(topic, str(seq), qos=1))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)


async def bare_latency(port: int, rate: int, seconds: float) -> list[float]:
    sent: dict[int, float] = {}
    latency: list[float] = []
    total = int(rate * seconds)
    async with aiomqtt.Client("127.0.0.1", port, identifier="bench-bare-live", clean_session=True) as client:
        for topic in TOPICS[PLUGS:]:
            await client.subscribe(topic, qos=1)
        publisher = asyncio.create_task(paced(port, rate, seconds, sent))
        async for message in client.messages:
            latency.append(time.time() - sent[int(bytes(message.payload).decode())])
            if len(latency) == total:
                break
        await publisher
    return latency


async def farm_latency(daemon: Daemon, influx: Influx, port: int, rate: int, seconds: float) -> list[float]:
    await influx.reset()
    await daemon.start()
    sent: dict[int, float] = {}
    seen: dict[int, float] = {}
    total = int(rate * seconds)
    publisher = asyncio.create_task(paced(port, rate, seconds, sent))
    oldest = 0  # every sequence number below it has been seen
    deadline = time.monotonic() + seconds + 60
    while len(seen) < total:
        if time.monotonic() > deadline:
            missing = sorted(set(range(total)) - set(seen))
            stored = await influx.query("SELECT count(weight_g) FROM material")
            raise RuntimeError(f"{len(missing)} points not seen, e.g. {missing[:10]}; stored: {stored}")
        # Points not seen yet were received after they were sent: ask for everything received since
        # the oldest of them was sent (a batch need not become visible all at once).
        while oldest in seen:
            oldest += 1
        since = int((sent.get(oldest, time.time()) - LOOK_BACK_S) * 1e9)
        results = await influx.query(f"SELECT weight_g FROM material WHERE time > {since:d}")  # noqa: S608
        now = time.time()
        for series in (r.get("series", []) for r in results):
            for row in series[0]["values"] if series else []:
                seen.setdefault(int(row[1]), now)
        await asyncio.sleep(POLL_S)
    await publisher
    daemon.stop()
    await forget_session(port, daemon.client_id)
    return [seen[seq] - sent[seq] for seq in range(total)]


async def bench(args: argparse.Namespace, work: Path, mosquitto: MosquittoPeer, influxdb: InfluxPeer) -> None:
    influx = Influx(influxdb.url)
    await influx.reset()
    # Each its own MQTT session: a session from an earlier phase would hold that phase's messages.
    daemons = {
        f: Daemon(work / f"farm-{f}", mosquitto.port, influxdb.url, f, f"farmctl-{f}") for f in (1.0, 0.1)
    }
    drainers: list[Daemon] = []
    try:
        messages = mixed_messages(args.messages)
        print(
            f"throughput, {args.messages} QoS 1 messages, {PLUGS + SCALES} sensors, drained from a backlog"
            f" ({args.rounds} rounds, bare loop and farmctl taking turns):"
        )
        rounds: list[tuple[float, float, float]] = []
        for r in range(args.rounds):
            await influx.reset()
            drainers.append(
                Daemon(work / f"drain-{r}", mosquitto.port, influxdb.url, 1.0, f"farmctl-drain-{r}")
            )
            bare_cpu = Cpu({"bare loop": os.getpid(), "mosquitto": mosquitto.pid})
            farm_cpu = Cpu({"mosquitto": mosquitto.pid, "influxd": influxdb.pid})
            bare_rate = await bare_drain(mosquitto.port, messages, bare_cpu)
            taken_rate, farm_rate = await farm_drain(drainers[-1], influx, mosquitto.port, messages, farm_cpu)
            rounds.append((bare_rate, taken_rate, farm_rate))
            print(
                f"  round {r + 1}: bare {bare_rate:6.0f} msg/s, farmctl received {taken_rate:6.0f}"
                f" ({taken_rate / bare_rate:.0%}), in InfluxDB {farm_rate:6.0f} ({farm_rate / bare_rate:.0%})"
            )
            bare_cpu_text, farm_cpu_text = (cpu.per_message(len(messages)) for cpu in (bare_cpu, farm_cpu))
            print(f"    CPU µs per message: bare phase {bare_cpu_text}; farmctl phase {farm_cpu_text}")
        bare_rate, taken_rate, farm_rate = (statistics.median(column) for column in zip(*rounds, strict=True))
        # The ratio is taken within each round (the two ran minutes apart at most), then its median.
        taken_ratio = statistics.median(taken / bare for bare, taken, _ in rounds)
        farm_ratio = statistics.median(farm / bare for bare, _, farm in rounds)
        print("  medians (of the rates; of the ratios within each round):")
        print(f"  bare aiomqtt receive loop   : {bare_rate:8.0f} msg/s")
        print(f"  farmctl received and decoded: {taken_rate:8.0f} msg/s  ({taken_ratio:.0%} of bare)")
        print(f"  farmctl broker -> InfluxDB  : {farm_rate:8.0f} msg/s  ({farm_ratio:.0%} of bare)")
        bare = await bare_latency(mosquitto.port, args.rate, args.seconds)
        print(f"latency at {args.rate} msg/s for {args.seconds:g} s:")
        print(f"  bare aiomqtt publish -> received          : {ms(bare)}")
        for flush, daemon in daemons.items():
            lat = await farm_latency(daemon, influx, mosquitto.port, args.rate, args.seconds)
            print(f"  farmctl publish -> in InfluxDB, flush {flush:g} s: {ms(lat)}")
        idle, peak = drainers[0].rss_idle, max(d.hwm for d in drainers)
        print(f"daemon RSS draining the backlog: idle {idle:.1f} MiB, peak {peak:.1f} MiB")
        for flush, daemon in daemons.items():
            print(f"daemon RSS at {args.rate} msg/s, flush {flush:g} s: peak {daemon.hwm:.1f} MiB")
    finally:
        for daemon in (*daemons.values(), *drainers):
            daemon.stop()
        await influx.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=30_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    # aiomqtt warns on each publish while more than 10 await their PUBACK; the paced publisher does that.
    logging.getLogger("mqtt").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        mosquitto = MosquittoPeer(work / "mosquitto")
        influxdb = InfluxPeer(work / "influxdb")
        try:
            mosquitto.start_and_wait()
            influxdb.start_and_wait()
            asyncio.run(bench(args, work, mosquitto, influxdb))
        finally:
            mosquitto.stop()
            influxdb.stop()


if __name__ == "__main__":
    main()
