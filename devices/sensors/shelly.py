"""Shelly Gen2/Gen3 (Plus Plug S, Plus 1PM, PM Mini, H&T) over MQTT → power and environment readings.

- `<id>/status/switch:N`, `<id>/status/pm1:N` ("Generic status update over MQTT"): apower, voltage,
  current, aenergy.total (Wh counter, converted to kWh). Negative apower is kept: metering devices
  report exported power that way.
- `<id>/status/temperature:N`, `<id>/status/humidity:N` (H&T): tC → °C, rh → %.
- `<id>/events/rpc` NotifyStatus/NotifyFullStatus ("RPC status notifications"): the same components,
  partial (only what changed); the time comes from `params.ts`. Other RPC events carry nothing ([]).
- One sensor is one channel: the index the spec's topic names (`…/status/switch:1`), else 0; other
  channels' messages are [] so `<id>/status/+` on a Plus 2PM does not mix its two relays.
- `aenergy.minute_ts` is the start of the by_minute window, not the sample time: status has no time.
"""

from __future__ import annotations

import re
from typing import Any

from devices.sensors.model import PayloadError, Reading, SensorSpec
from devices.sensors.values import fields_from, load_object, number, reading, utc_from_epoch

_COMPONENT = re.compile(r"(switch|pm1|temperature|humidity):([0-9]{1,3})")
_POWER = {"apower": "power_w", "voltage": "voltage_v", "current": "current_a"}
_EXPECTED = {
    "switch": "apower, voltage, current or aenergy.total (a Shelly without metering?)",
    "pm1": "apower, voltage, current or aenergy.total",
    "temperature": "tC (failed read?)",
    "humidity": "rh (failed read?)",
}


def decode_shelly(spec: SensorSpec, topic: str, payload: bytes) -> list[Reading]:
    """Readings from a Shelly status message or RPC notification; [] for the device's other topics."""
    levels = topic.split("/")
    channel = _channel(spec.topic)
    if len(levels) >= 2 and levels[-2] == "status":
        component = _COMPONENT.fullmatch(levels[-1])
        if component is None or int(component[2]) != channel:
            return []
        kind, name = component[1], levels[-1]
        measurement, fields = _decode_component(kind, load_object(spec, payload), name)
        if not fields:
            raise PayloadError(f"{name} carries no {_EXPECTED[kind]}")
        return [reading(spec, measurement, fields)]
    if levels[-2:] == ["events", "rpc"]:
        return _notification(spec, channel, load_object(spec, payload))
    return []


def _channel(spec_topic: str) -> int:
    component = _COMPONENT.fullmatch(spec_topic.rsplit("/", 1)[-1])
    return int(component[2]) if component else 0


def _decode_component(kind: str, body: dict[str, Any], name: str) -> tuple[str, dict[str, float]]:
    if kind == "temperature":
        return "environment", fields_from(body, {"tC": "temperature_c"}, name + ".")
    if kind == "humidity":
        return "environment", fields_from(body, {"rh": "humidity_pct"}, name + ".")
    fields = fields_from(body, _POWER, name + ".")
    energy = body.get("aenergy")
    if energy is not None:
        if not isinstance(energy, dict):
            raise PayloadError(f"{name}.aenergy is not an object")
        total_wh = number(energy.get("total"), name + ".aenergy.total")
        if total_wh is not None:
            fields["energy_kwh"] = total_wh / 1000.0
    return "power", fields


def _notification(spec: SensorSpec, channel: int, body: dict[str, Any]) -> list[Reading]:
    if body.get("method") not in ("NotifyStatus", "NotifyFullStatus"):
        return []
    params = body.get("params")
    if not isinstance(params, dict):
        raise PayloadError(f"{body['method']} has no params object")
    time = utc_from_epoch(params.get("ts"))
    merged: dict[str, dict[str, float]] = {}
    for key, value in params.items():
        component = _COMPONENT.fullmatch(key)
        if component is None or int(component[2]) != channel:
            continue
        if not isinstance(value, dict):
            raise PayloadError(f"{key} in {body['method']} is not an object")
        measurement, fields = _decode_component(component[1], value, key)
        merged.setdefault(measurement, {}).update(fields)
    return [reading(spec, m, fields, time) for m, fields in merged.items() if fields]
