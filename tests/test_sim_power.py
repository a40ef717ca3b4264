"""The simulated devices' pure parts: power model, ground-truth trace, plug wire formats, extrusion."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devices.printer import HostState, Temperature
from devices.sensors import Profile, SensorSpec, decode
from devices.sim import plug_wire as wire
from devices.sim.extrusion import grams, profile
from devices.sim.plug_wire import Action, Meter, PlugVendor
from devices.sim.power import HeaterModel, PowerModel, printer_power_w
from devices.sim.scale import job_progress
from devices.sim.trace import Trace

HEATERS = {"bed": HeaterModel(200.0, 0.3, 10.0), "tool0": HeaterModel(40.0, 0.5, 10.0)}
MODEL = PowerModel(standby_w=4.0, motion_w=15.0, heaters=HEATERS)
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def temps(bed: tuple[float, float], tool: tuple[float, float]) -> dict[str, Temperature]:
    return {"bed": Temperature(*bed), "tool0": Temperature(*tool)}


def test_heater_draws_full_power_far_below_target_and_holds_at_it() -> None:
    bed = HeaterModel(max_w=200.0, hold_duty=0.3, band_c=10.0)
    assert bed.power_w(Temperature(21.0, 60.0)) == 200.0
    assert bed.power_w(Temperature(55.0, 60.0)) == pytest.approx(200.0 * 0.8)
    assert bed.power_w(Temperature(60.0, 60.0)) == pytest.approx(60.0)
    assert bed.power_w(Temperature(250.0, 60.0)) == pytest.approx(60.0)  # instant-heat printers: holding
    assert bed.power_w(Temperature(60.0, 0.0)) == 0.0
    assert bed.power_w(None) == 0.0
    with pytest.raises(ValueError, match="hold_duty"):
        HeaterModel(max_w=200.0, hold_duty=1.5)


def test_printer_power_by_state() -> None:
    hot = temps((60.0, 60.0), (200.0, 200.0))
    cold = temps((21.0, 0.0), (21.0, 0.0))
    holding = 4.0 + 60.0 + 20.0
    assert printer_power_w(MODEL, relay_on=False, state=HostState.PRINTING, temperatures=hot) == 0.0
    assert printer_power_w(MODEL, relay_on=True, state=HostState.IDLE, temperatures=cold) == 4.0
    assert printer_power_w(MODEL, relay_on=True, state=HostState.OFFLINE, temperatures=hot) == 4.0
    assert printer_power_w(MODEL, relay_on=True, state=HostState.PAUSED, temperatures=hot) == holding
    assert printer_power_w(MODEL, relay_on=True, state=HostState.PRINTING, temperatures=hot) == holding + 15.0
    heating = temps((21.0, 60.0), (21.0, 200.0))
    assert printer_power_w(MODEL, relay_on=True, state=HostState.PRINTING, temperatures=heating) == 259.0


def test_trace_interpolates_and_survives_a_counter_reset(tmp_path: Path) -> None:
    trace = Trace("consumed_kwh", log_path=tmp_path / "truth.jsonl")
    s0 = T0.timestamp()
    trace.add(s0, 1.0, counter_kwh=5.0)
    trace.add(s0 + 10, 2.0, counter_kwh=6.0)
    trace.add(s0 + 10, 2.0, counter_kwh=0.0)  # reset
    trace.add(s0 + 20, 4.0, counter_kwh=2.0)
    trace.close()
    assert trace.total_at(T0 + timedelta(seconds=5)) == pytest.approx(1.5)
    assert trace.between(T0 + timedelta(seconds=5), T0 + timedelta(seconds=15)) == pytest.approx(1.5)
    assert trace.between(T0 - timedelta(hours=1), T0 + timedelta(hours=1)) == pytest.approx(3.0)
    assert trace.counter_at(T0 + timedelta(seconds=5), "counter_kwh") == pytest.approx(5.5)
    assert trace.counter_at(T0 + timedelta(seconds=15), "counter_kwh") == pytest.approx(1.0)
    assert trace.counter_at(T0 - timedelta(seconds=1), "counter_kwh") is None
    lines = [json.loads(line) for line in (tmp_path / "truth.jsonl").read_text().splitlines()]
    assert lines[0] == {"t": "2026-12-01T12:00:00.000+00:00", "consumed_kwh": 1.0, "counter_kwh": 5.0}
    assert len(lines) == 4
    with pytest.raises(ValueError, match="no zone"):
        trace.total_at(datetime(2026, 12, 1, 12, 0))  # naive: the point of the test
    with pytest.raises(ValueError, match="below the last"):
        trace.add(s0 + 30, 3.0)


def test_stepped_trace_holds_the_last_sample() -> None:
    trace = Trace("used_g", steps=True)
    trace.add(T0.timestamp(), 0.0)
    trace.add(T0.timestamp() + 10, 3.0)
    assert trace.total_at(T0 + timedelta(seconds=9)) == 0.0
    assert trace.between(T0 + timedelta(seconds=5), T0 + timedelta(seconds=10)) == 3.0


def test_trace_refuses_times_it_no_longer_keeps() -> None:
    trace = Trace("used_g", maxlen=3)
    for i in range(5):
        trace.add(T0.timestamp() + i, float(i))
    assert trace.between(T0 + timedelta(seconds=2), T0 + timedelta(seconds=4)) == 2.0
    with pytest.raises(ValueError, match="older than the trace"):
        trace.total_at(T0)


def meter(**kwargs: object) -> Meter:
    values: dict[str, object] = {"relay_on": True, "power_w": 115.0, "voltage_v": 230.0,
                                 "counter_kwh": 1.23456789, "time": T0, "counter_since": T0}  # fmt: skip
    values.update(kwargs)
    return Meter(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("vendor", "profile_name", "energy"),
    [
        (PlugVendor.tasmota, Profile.tasmota, 1.23457),
        (PlugVendor.shelly, Profile.shelly, 1.234568),
        (PlugVendor.zigbee2mqtt, Profile.zigbee2mqtt, 1.23),
    ],
)
def test_telemetry_is_read_by_our_profiles(vendor: PlugVendor, profile_name: Profile, energy: float) -> None:
    decimals = wire.DEFAULT_KWH_DECIMALS[vendor]
    topic, payload = wire.telemetry(vendor, "plug-a", meter(), decimals)
    spec = SensorSpec(id="plug-a", profile=profile_name, topic=wire.telemetry_topic(vendor, "plug-a"))
    (reading,) = decode(spec, topic, payload)
    assert reading.measurement == "power"
    assert reading.fields["power_w"] == pytest.approx(115.0)
    assert reading.fields["energy_kwh"] == pytest.approx(energy, abs=1e-9)
    assert reading.fields["current_a"] == pytest.approx(0.5)
    off = decode(spec, *wire.telemetry(vendor, "plug-a", meter(relay_on=False, power_w=0.0), decimals))
    assert off[0].fields["power_w"] == 0.0


@pytest.mark.parametrize(
    ("vendor", "topic", "payload", "action"),
    [
        (PlugVendor.tasmota, "cmnd/p/POWER", b"OFF", Action.off),
        (PlugVendor.tasmota, "cmnd/p/Power", b"on", Action.on),
        (PlugVendor.tasmota, "cmnd/p/POWER", b"TOGGLE", Action.toggle),
        (PlugVendor.tasmota, "cmnd/p/POWER", b"", Action.status),
        (PlugVendor.tasmota, "cmnd/p/EnergyTotal", b"0", Action.reset_counter),
        (PlugVendor.tasmota, "cmnd/p/POWER", b"maybe", None),
        (PlugVendor.tasmota, "cmnd/p/Restart", b"1", None),
        (PlugVendor.shelly, "p/rpc",
         b'{"id":7,"src":"farm","method":"Switch.Set","params":{"id":0,"on":false}}', Action.off),
        (PlugVendor.shelly, "p/rpc", b'{"id":7,"method":"Switch.Toggle","params":{"id":0}}', Action.toggle),
        (PlugVendor.shelly, "p/rpc", b'{"id":7,"method":"Switch.ResetCounters"}', Action.reset_counter),
        (PlugVendor.shelly, "p/rpc", b'{"id":7,"method":"Switch.Set","params":{"id":1,"on":true}}', None),
        (PlugVendor.shelly, "p/rpc", b'{"id":7,"method":"Switch.Set","params":{"on":"yes"}}', None),
        (PlugVendor.shelly, "p/rpc", b"[1, 2", None),
        (PlugVendor.zigbee2mqtt, "zigbee2mqtt/p/set", b'{"state": "OFF"}', Action.off),
        (PlugVendor.zigbee2mqtt, "zigbee2mqtt/p/set/state", b"ON", Action.on),
        (PlugVendor.zigbee2mqtt, "zigbee2mqtt/p/set", b'{"brightness": 3}', None),
        (PlugVendor.zigbee2mqtt, "zigbee2mqtt/p/set", b"\xff\xfe", None),
    ],
)  # fmt: skip
def test_commands_of_each_vendor(
    vendor: PlugVendor, topic: str, payload: bytes, action: Action | None
) -> None:
    command = wire.parse_command(vendor, "p", topic, payload)
    assert (command.action if command else None) == action


def test_shelly_answers_its_rpc_caller() -> None:
    rpc = b'{"id":7,"src":"farm","method":"Switch.Set","params":{"id":0,"on":false}}'
    command = wire.parse_command(PlugVendor.shelly, "p", "p/rpc", rpc)
    assert command is not None
    reply = json.loads(wire.shelly_reply("p", command, True, meter(), 6))
    assert reply == {"id": 7, "src": "p", "dst": "farm", "result": {"was_on": True}}
    sneaky = wire.parse_command(PlugVendor.shelly, "p", "p/rpc", rpc.replace(b'"farm"', b'"x/#"'))
    assert sneaky is not None
    assert sneaky.reply_to is None  # no answer to a topic filter


def test_extrusion_profile_follows_modes_resets_and_retractions() -> None:
    gcode = b"\n".join([
        b"M83 ; relative E",
        b"G1 X1 E2.0",
        b"G1 E-1 ; retract",
        b"G1 E1  ; unretract: nothing new drawn",
        b"G1 X2 E3",          # drawn 5
        b"M82",
        b"G92 E0",
        b"G1 X3 E4",          # drawn 9
        b"G1 X4 E10 ; comment E99",  # drawn 15
        b"G92 E100",
        b"G1 X5 E101.5",      # drawn 16.5
        b"G91",
        b"G1 X1 E0.5",        # relative again: 17
        b"M104 S0",
    ]) + b"\n"  # fmt: skip
    prof = profile(gcode)
    assert prof.total_mm == pytest.approx(17.0)
    assert prof.size == len(gcode)
    assert prof.drawn_at(0) == 0.0
    first = gcode.index(b"G1 E-1")
    assert prof.drawn_at(first) == pytest.approx(2.0)
    assert prof.drawn_at(len(gcode)) == pytest.approx(17.0)
    assert grams(1000.0, "PLA") == pytest.approx(2.982, abs=1e-3)
    assert grams(1000.0, "petg") == pytest.approx(3.055, abs=1e-3)
    with pytest.raises(ValueError, match="density"):
        grams(1.0, "WOOD")


def test_job_progress_reads_what_it_can() -> None:
    body = {"state": "Printing", "job": {"file": {"path": "a/b.gcode"}}, "progress": {"filepos": 1234}}
    progress = job_progress(body)
    assert (progress.state, progress.path, progress.filepos, progress.active) == (
        "Printing",
        "a/b.gcode",
        1234,
        True,
    )
    empty = job_progress({"state": "Operational", "job": {"file": {"path": None}}, "progress": None})
    assert (empty.path, empty.filepos, empty.active) == (None, None, False)
    assert job_progress([1]).state == "Unknown"
