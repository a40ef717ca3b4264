"""Shared pieces of the fault suite: QoS 1 sensors that publish until told to stop, the telemetry config
for them, a bed-clearing operator that outlives daemon crashes, and a one-line figures report."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiomqtt
import httpx
import pytest

from tests.farm import Farm
from tests.peers.servers import MosquittoPeer
from tests.test_mqtt_broker_limits import broker


@pytest.fixture
def shipped_broker(tmp_path: Path) -> Iterator[MosquittoPeer]:
    """mosquitto running deploy/mosquitto.conf (queue limits, persistence, a login) on loopback."""
    yield from broker(tmp_path, "shipped")


def scale_topic(index: int) -> str:
    return f"scales/sensor/scale_{index}/state"


def scale_sensors(count: int) -> str:
    """[[sensors]] for `count` ESPHome scales (one weight_g field each)."""
    return "".join(
        f'[[sensors]]\nid = "scale-{i}"\ntopic = "{scale_topic(i)}"\nprofile = "esphome"\nkind = "weight"\n'
        for i in range(count)
    )


def telemetry_sections(
    mosquitto: MosquittoPeer, influx_url: str, etc: Path, *, sensors: int, client_id: str, extra: str = ""
) -> str:
    """[mqtt] with the broker's login, the scales, and a v1 [influx] that writes and retries quickly."""
    return (
        f'[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.port}\nclient_id = "{client_id}"\n'
        f"reconnect_max = 1.0\n{mosquitto.login_toml(etc)}{scale_sensors(sensors)}\n"
        f'[influx]\napi = "v1"\nurl = "{influx_url}"\ndatabase = "farm"\nflush_interval = 0.2\n'
        f"retry_max = 1.0\n{extra}"
    )


class Sensor:
    """A device publishing a new QoS 1 reading every `interval` seconds (values base, base+1, ...).

    A reading counts as published once the broker acknowledged it. One that was not acknowledged (the
    broker went away) is published again after reconnecting, as QoS 1 devices do: the broker may then
    hold it twice, so those values are kept in `resent`.
    """

    def __init__(self, mosquitto: MosquittoPeer, index: int, interval: float) -> None:
        self.mosquitto = mosquitto
        self.topic = scale_topic(index)
        self.interval = interval
        self.first = index * 1_000_000  # each sensor its own range: every value names its message
        self.next_value = self.first
        self.acked: list[int] = []
        self.resent: set[int] = set()
        self.reconnects = 0

    @property
    def attempted(self) -> range:
        """Every value this sensor tried to publish (acknowledged or not)."""
        return range(self.first, self.next_value)

    async def run(self, stop: asyncio.Event) -> None:
        pending: int | None = None
        while not stop.is_set():
            client = aiomqtt.Client(
                "127.0.0.1",
                self.mosquitto.port,
                username=self.mosquitto.username,
                password=self.mosquitto.password,
                timeout=2.0,  # a PUBACK lost with the broker: give up on it soon and send again
            )
            try:
                async with client:
                    while not stop.is_set():
                        if pending is None:
                            pending, self.next_value = self.next_value, self.next_value + 1
                        await client.publish(self.topic, str(pending), qos=1)
                        self.acked.append(pending)
                        pending = None
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(stop.wait(), self.interval)
            except aiomqtt.MqttError:
                # A publish that timed out leaves aiomqtt's disconnect error unread, and asyncio
                # would print "Future exception was never retrieved" for it: read it.
                lost = client._disconnected
                if lost.done() and not lost.cancelled():
                    lost.exception()
                if pending is not None:
                    self.resent.add(pending)
                self.reconnects += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.2)


@contextlib.asynccontextmanager
async def publishing(sensors: list[Sensor]) -> AsyncIterator[asyncio.Event]:
    """Run the sensors until the block ends (or until the yielded event is set)."""
    stop = asyncio.Event()
    tasks = [asyncio.create_task(s.run(stop)) for s in sensors]
    try:
        yield stop
    finally:
        stop.set()
        await asyncio.gather(*tasks)


@contextlib.asynccontextmanager
async def bed_clearing(farm: Farm) -> AsyncIterator[dict[str, int]]:
    """An operator who confirms each bed as soon as its printer asks, and keeps at it while the daemon
    is down (a refused connection is only a pause). Yields the count of clears per printer."""
    cleared: dict[str, int] = {}

    async def run() -> None:
        while True:
            with contextlib.suppress(httpx.TransportError):
                for name, printer in (await farm.printers()).items():
                    if printer["state"] == "awaiting_clear" and (await farm.clear(name)).status_code == 200:
                        cleared[name] = cleared.get(name, 0) + 1
            await asyncio.sleep(0.2)

    task = asyncio.create_task(run())
    try:
        yield cleared
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def report(name: str, figures: dict[str, object]) -> None:
    """The run's figures on one line (shown with `pytest -s`; docs/reliability.md quotes them)."""
    text = " ".join(f"{k}={v}" for k, v in figures.items())
    print(f"\nFIGURES {name}: {text}", file=sys.stderr)
