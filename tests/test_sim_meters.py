"""The simulated plug and scale against the real broker and real virtual printers: what they publish,
read back through our own sensor profiles, agrees with their ground truth and with the printer."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
import pytest

from devices.octoprint import OctoPrintClient
from devices.sensors import Profile, Reading, SensorSpec, decode
from devices.sim import plug_wire as wire
from devices.sim.extrusion import grams, profile
from devices.sim.follow import Broker
from devices.sim.meter_plug import SimMeterPlug
from devices.sim.plug_wire import PlugVendor
from devices.sim.power import HeaterModel, PowerModel
from devices.sim.scale import SimScale
from devices.virtual_octoprint import VirtualOctoPrint
from tests.conftest import OctoPrintFactory
from tests.helpers import eventually
from tests.peers.octoprint import octoprint_bin
from tests.peers.servers import MosquittoPeer

PROFILES = {PlugVendor.tasmota: Profile.tasmota, PlugVendor.shelly: Profile.shelly,
            PlugVendor.zigbee2mqtt: Profile.zigbee2mqtt}  # fmt: skip


@dataclass(frozen=True)
class Heard:
    at: datetime
    topic: str
    payload: bytes


class Listener:
    """Everything published on `filters`, with its receive time."""

    def __init__(self) -> None:
        self.heard: list[Heard] = []

    def on(self, topic: str) -> list[Heard]:
        return [h for h in self.heard if h.topic == topic]

    def readings(self, spec: SensorSpec) -> list[tuple[datetime, Reading]]:
        return [(h.at, r) for h in self.on(spec.topic) for r in decode(spec, h.topic, h.payload)]


@contextlib.asynccontextmanager
async def listening(
    mosquitto: MosquittoPeer, *filters: str
) -> AsyncIterator[tuple[Listener, aiomqtt.Client]]:
    listener = Listener()
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
        for topic_filter in filters:
            await client.subscribe(topic_filter, qos=1)

        async def receive() -> None:
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                listener.heard.append(Heard(datetime.now(UTC), message.topic.value, message.payload))

        task = asyncio.create_task(receive())
        try:
            yield listener, client
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@contextlib.asynccontextmanager
async def running(device: SimMeterPlug | SimScale) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(device.run(stop))
    try:
        async with asyncio.timeout(10):
            await device.connected.wait()
        yield
    finally:
        stop.set()
        async with asyncio.timeout(10):
            await task


def print_file(path: Path, moves: int, e_per_move: float, *, length_mm: int = 1) -> Path:
    """Heat to 60/200 °C, print `moves` extruding moves along X, cool down. The virtual printer spends
    a tenth of a move's real duration on it: 0.2 s for 100 mm at 50 mm/s."""
    lines = ["M140 S60", "M104 S200", "M190 S60", "M109 S200", "G28", "G90", "M83"]
    lines += [f"G1 X{10 + (i % 2) * length_mm} Y10 E{e_per_move} F3000" for i in range(moves)]
    lines += ["M104 S0", "M140 S0"]
    path.write_text("\n".join(lines) + "\n")
    return path


async def wait_state(client: OctoPrintClient, prefix: str, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not (await client.snapshot()).state_text.startswith(prefix):
            await asyncio.sleep(0.1)


async def test_plug_power_follows_a_print_and_its_counter_matches_its_truth(
    mosquitto: MosquittoPeer, octoprint: OctoPrintFactory, tmp_path: Path
) -> None:
    (peer,) = octoprint(1)
    spec = SensorSpec(id="plug", profile=Profile.shelly, topic="shelly-1/status/switch:0")
    broker = Broker("127.0.0.1", mosquitto.port)
    async with (
        OctoPrintClient(peer.url, peer.api_key) as printer,
        listening(mosquitto, spec.topic) as (heard, _),
    ):
        plug = SimMeterPlug("shelly", "shelly-1", broker, printer, publish_s=0.3, qos=1,
                            trace_log=tmp_path / "truth.jsonl")  # fmt: skip
        async with running(plug):
            await eventually(lambda: len(heard.readings(spec)) >= 3, 10, "idle readings")
            idle = heard.readings(spec)[-1][1].fields["power_w"]
            upload = await printer.upload(print_file(tmp_path / "p.gcode", 20, 2.0, length_mm=100), "p.gcode")
            assert upload.started
            await wait_state(printer, "Printing", 10)
            await wait_state(printer, "Operational", 60)
            await asyncio.sleep(1.5)  # the cooled-down printer's power is published
        readings = heard.readings(spec)
    powers = [r.fields["power_w"] for _, r in readings]
    assert idle == pytest.approx(4.0)  # standby: the heaters' targets are 0
    assert max(powers) >= 100.0  # the bed holds 60 °C, the hotend 200 °C, the motors run
    assert powers[-1] == pytest.approx(4.0)
    # What the plug published is its own truth: the counter at each receive time (up to the rounding
    # of 0.001 Wh and the time a message takes on loopback) ...
    for at, reading in readings:
        truth = plug.counter_kwh_at(at)
        assert truth is not None
        assert reading.fields["energy_kwh"] == pytest.approx(truth, abs=1e-6 + max(powers) * 0.05 / 3.6e6)
    # ... and the energy between the first and last message is within 1 % of the truth's, or the
    # counter's own resolution (0.001 Wh, rounded at both ends) plus loopback time where that is more.
    (first_at, first), (last_at, last) = readings[0], readings[-1]
    measured = last.fields["energy_kwh"] - first.fields["energy_kwh"]
    lag = 2 * max(powers) * 0.05 / 3.6e6
    assert measured == pytest.approx(plug.energy_kwh_between(first_at, last_at), rel=0.01, abs=1e-6 + lag)
    # The counter integrates the power it published: holding each power sample until the next one
    # is off by at most each change of power times the time between the two samples around it.
    pairs = [(a.fields["power_w"], b.fields["power_w"], (tb - ta).total_seconds())
             for (ta, a), (tb, b) in itertools.pairwise(readings)]  # fmt: skip
    held_j = sum(p0 * dt for p0, _, dt in pairs)
    bound_j = sum(abs(p1 - p0) * dt for p0, p1, dt in pairs) + 1.0
    assert abs(measured * 3.6e6 - held_j) <= bound_j
    assert bound_j < 0.5 * held_j  # the bound says something
    assert (tmp_path / "truth.jsonl").read_text().count("\n") == len(plug.trace)


async def test_heat_up_draws_full_heater_power_then_holds(
    mosquitto: MosquittoPeer, octoprint_template: tuple[Path, str], tmp_path: Path
) -> None:
    template, api_key = octoprint_template
    peer = VirtualOctoPrint(octoprint_bin(), template, api_key, tmp_path / "slow", instant_heat=False)
    peer.start_and_wait()
    model = PowerModel(standby_w=4.0, motion_w=15.0, heaters={"bed": HeaterModel(200.0, 0.3)})
    try:
        async with OctoPrintClient(peer.url, peer.api_key) as printer:
            plug = SimMeterPlug("tasmota", "slow", Broker("127.0.0.1", mosquitto.port), printer, model=model,
                                publish_s=0.3)  # fmt: skip
            async with running(plug):
                await eventually(lambda: plug.power_w == 4.0, 10, "standby")
                await printer.send_commands(["M140 S55"])  # ~21 °C → 55 °C at the simulator's 10 °C/s
                await eventually(lambda: plug.power_w == 204.0, 10, "full bed power while heating")
                await eventually(lambda: plug.power_w == pytest.approx(64.0), 15, "holding power at 55 °C")
                await printer.send_commands(["M140 S0"])
                await eventually(lambda: plug.power_w == 4.0, 10, "standby after the bed is off")
    finally:
        peer.stop()


@pytest.mark.parametrize(
    ("vendor", "off", "on"),
    [
        (PlugVendor.tasmota, ("cmnd/dev/POWER", b"OFF"), ("cmnd/dev/POWER", b"ON")),
        (PlugVendor.shelly,
         ("dev/rpc", b'{"id":1,"src":"farm","method":"Switch.Set","params":{"id":0,"on":false}}'),
         ("dev/rpc", b'{"id":2,"src":"farm","method":"Switch.Set","params":{"id":0,"on":true}}')),
        (PlugVendor.zigbee2mqtt, ("zigbee2mqtt/dev/set", b'{"state": "OFF"}'),
         ("zigbee2mqtt/dev/set", b'{"state": "ON"}')),
    ],
)  # fmt: skip
async def test_relay_command_switches_the_load_off_and_on(
    mosquitto: MosquittoPeer, vendor: PlugVendor, off: tuple[str, bytes], on: tuple[str, bytes]
) -> None:
    # No printer: a constant 60 W load (a filament dryer).
    plug = SimMeterPlug(vendor, "dev", Broker("127.0.0.1", mosquitto.port), model=PowerModel(standby_w=60.0),
                        publish_s=0.2, kwh_decimals=9)  # fmt: skip
    spec = SensorSpec(id="dev", profile=PROFILES[vendor], topic=wire.telemetry_topic(vendor, "dev"))
    async with listening(mosquitto, "#") as (heard, client), running(plug):
        await eventually(lambda: len(heard.readings(spec)) >= 2, 10, "readings")
        assert heard.readings(spec)[-1][1].fields["power_w"] == 60.0
        await client.publish(*off, qos=1)
        await eventually(lambda: heard.readings(spec)[-1][1].fields["power_w"] == 0.0, 5, "0 W after OFF")
        assert not plug.relay_on
        frozen = heard.readings(spec)[-1][1].fields["energy_kwh"]
        await asyncio.sleep(0.5)
        assert heard.readings(spec)[-1][1].fields["energy_kwh"] == frozen  # nothing flows with the relay off
        await client.publish(*on, qos=1)
        await eventually(lambda: heard.readings(spec)[-1][1].fields["power_w"] == 60.0, 5, "60 W after ON")
        assert plug.relay_on
    if vendor is PlugVendor.tasmota:
        assert [h.payload for h in heard.on("stat/dev/POWER")] == [b"ON", b"OFF", b"ON"]
    if vendor is PlugVendor.shelly:
        replies = [json.loads(h.payload) for h in heard.on("farm/rpc")]
        assert [r["result"] for r in replies] == [{"was_on": True}, {"was_on": False}]


async def test_relay_off_cuts_the_printers_mains(
    mosquitto: MosquittoPeer, octoprint: OctoPrintFactory
) -> None:
    (peer,) = octoprint(1)
    async with (
        OctoPrintClient(peer.url, peer.api_key) as printer,
        listening(mosquitto, "stat/#") as (_, client),
    ):
        plug = SimMeterPlug("tasmota", "p1", Broker("127.0.0.1", mosquitto.port), printer, cuts_printer=True)
        async with running(plug):
            await client.publish("cmnd/p1/POWER", b"OFF", qos=1)
            await wait_state(printer, "Offline", 10)
            assert plug.power_w == 0.0
            await client.publish("cmnd/p1/POWER", b"ON", qos=1)
            await wait_state(printer, "Operational", 10)
            await eventually(lambda: plug.power_w == 4.0, 5, "standby power again")


async def test_counter_reset_and_restart(mosquitto: MosquittoPeer) -> None:
    plug = SimMeterPlug("zigbee2mqtt", "dev", Broker("127.0.0.1", mosquitto.port),
                        model=PowerModel(standby_w=2000.0), publish_s=0.2, kwh_decimals=8)  # fmt: skip
    spec = SensorSpec(id="dev", profile=Profile.zigbee2mqtt, topic="zigbee2mqtt/dev")
    async with listening(mosquitto, spec.topic) as (heard, _), running(plug):
        await eventually(lambda: len(heard.readings(spec)) >= 4, 10, "readings")
        before = heard.readings(spec)[-1][1].fields["energy_kwh"]
        assert before > 0
        plug.reset_counter()
        count = len(heard.readings(spec))
        await eventually(lambda: len(heard.readings(spec)) > count, 5, "a reading after the reset")
        after_at, after = heard.readings(spec)[-1]
        assert after.fields["energy_kwh"] < before  # the published counter dropped
        # The truth still counts what flowed across the reset.
        truth = plug.energy_kwh_between(heard.readings(spec)[0][0], after_at)
        assert truth > before

        plug.restart(1.5)
        restarted = datetime.now(UTC)
        await eventually(lambda: heard.readings(spec)[-1][0] > restarted, 10, "publishing after the reboot")
        gaps = [(b[0] - a[0]).total_seconds() for a, b in itertools.pairwise(heard.readings(spec))]
        assert max(gaps) >= 1.4  # nothing was published while it rebooted
        assert heard.readings(spec)[-1][1].fields["energy_kwh"] > after.fields["energy_kwh"]  # counter kept


async def test_plug_publishes_again_after_a_broker_restart(mosquitto: MosquittoPeer) -> None:
    plug = SimMeterPlug("tasmota", "dev", Broker("127.0.0.1", mosquitto.port), publish_s=0.2)
    async with running(plug):
        await asyncio.to_thread(mosquitto.stop)
        await eventually(lambda: not plug.connected.is_set(), 5, "the plug to notice")
        await asyncio.to_thread(mosquitto.start_and_wait)
        async with listening(mosquitto, "tele/dev/SENSOR") as (heard, _):
            await eventually(lambda: len(heard.on("tele/dev/SENSOR")) >= 2, 10, "telemetry after the restart")


async def test_scale_weight_falls_by_the_files_filament(
    mosquitto: MosquittoPeer, octoprint: OctoPrintFactory, tmp_path: Path
) -> None:
    (peer,) = octoprint(1)
    source = print_file(tmp_path / "s.gcode", 40, 30.0, length_mm=40)  # 1200 mm of PLA in ~3 s
    expected_g = grams(profile(source.read_bytes()).total_mm, "PLA")
    assert expected_g == pytest.approx(3.58, abs=0.01)
    spec = SensorSpec(id="scale", profile=Profile.esphome, kind="weight", topic="scales/sensor/spool_a/state")
    async with (
        OctoPrintClient(peer.url, peer.api_key) as printer,
        listening(mosquitto, spec.topic) as (heard, _),
    ):
        scale = SimScale("spool_a", Broker("127.0.0.1", mosquitto.port), printer, filament_g=800.0,
                         publish_s=0.3, decimals=2)  # fmt: skip
        async with running(scale):
            await eventually(lambda: len(heard.readings(spec)) >= 2, 10, "weights")
            start_at = datetime.now(UTC)
            assert (await printer.upload(source, "s.gcode")).started
            await wait_state(printer, "Printing", 10)
            samples = len(heard.readings(spec))
            await wait_state(printer, "Operational", 60)
            await asyncio.sleep(1.0)
            end_at = datetime.now(UTC)
        readings = heard.readings(spec)
    weights = [r.fields["weight_g"] for _, r in readings]
    assert weights[0] == pytest.approx(1020.0)  # 220 g spool + 800 g of filament
    assert weights[-1] == pytest.approx(1020.0 - expected_g, abs=0.02)
    assert any(weights[0] > w > weights[-1] for w in weights[samples:])  # it fell during the print
    assert weights == sorted(weights, reverse=True)
    assert scale.grams_used_between(start_at, end_at) == pytest.approx(expected_g, rel=0.001)
