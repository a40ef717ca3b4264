"""What a simulated plug says and hears on MQTT, per vendor: topics, payloads, commands (pure functions).

Shapes follow the vendors' own documentation as summarised in shared/notes/devices.md: Tasmota
(`tele/<topic>/SENSOR`, relay on `stat/<topic>/POWER`, command `cmnd/<topic>/POWER`), Shelly Gen2
(`<id>/status/switch:0`, JSON-RPC on `<id>/rpc`) and Zigbee2MQTT (`zigbee2mqtt/<name>`, `…/set`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class PlugVendor(StrEnum):
    """The firmware whose MQTT dialect the plug speaks."""

    tasmota = "tasmota"
    shelly = "shelly"
    zigbee2mqtt = "zigbee2mqtt"


class Action(StrEnum):
    """What a command asks of the plug."""

    on = "on"
    off = "off"
    toggle = "toggle"
    status = "status"
    reset_counter = "reset_counter"


@dataclass(frozen=True, slots=True)
class Command:
    """A decoded command; `reply_to` and `rpc_id` address a Shelly JSON-RPC answer."""

    action: Action
    reply_to: str | None = None
    rpc_id: object = None


@dataclass(frozen=True, slots=True)
class Meter:
    """One reading of the plug as it will be published (counter in kWh, unrounded)."""

    relay_on: bool
    power_w: float
    voltage_v: float
    counter_kwh: float
    time: datetime  # aware, UTC
    counter_since: datetime  # when the counter last started from 0
    by_minute_mwh: tuple[float, float, float] = (0.0, 0.0, 0.0)  # Shelly: the last three whole minutes


# kWh decimals the firmware publishes by default: Tasmota at its finest `EnergyRes 5`, Shelly's Wh
# with 3 decimals (= 6 in kWh), Zigbee2MQTT plugs commonly 2 (kWh).
DEFAULT_KWH_DECIMALS = {PlugVendor.tasmota: 5, PlugVendor.shelly: 6, PlugVendor.zigbee2mqtt: 2}


def telemetry_topic(vendor: PlugVendor, device: str) -> str:
    """The topic our sensor profile reads the plug's power and counter from."""
    return {
        PlugVendor.tasmota: f"tele/{device}/SENSOR",
        PlugVendor.shelly: f"{device}/status/switch:0",
        PlugVendor.zigbee2mqtt: f"zigbee2mqtt/{device}",
    }[vendor]


def command_filter(vendor: PlugVendor, device: str) -> str:
    """The topic filter the plug listens on for commands."""
    return {
        PlugVendor.tasmota: f"cmnd/{device}/+",
        PlugVendor.shelly: f"{device}/rpc",
        PlugVendor.zigbee2mqtt: f"zigbee2mqtt/{device}/set/#",
    }[vendor]


def command_subscriptions(vendor: PlugVendor, device: str) -> list[str]:
    """Every filter to subscribe to (Z2M takes `…/set` as well as `…/set/state`)."""
    filters = [command_filter(vendor, device)]
    if vendor is PlugVendor.zigbee2mqtt:
        filters.append(f"zigbee2mqtt/{device}/set")
    return filters


def _on_off(on: bool) -> str:
    return "ON" if on else "OFF"


def telemetry(vendor: PlugVendor, device: str, meter: Meter, kwh_decimals: int) -> tuple[str, bytes]:
    """The periodic telemetry message: (topic, payload)."""
    current = round(meter.power_w / meter.voltage_v, 3)
    voltage = meter.voltage_v  # measured on the mains side: present with the relay off too
    body: dict[str, Any]
    if vendor is PlugVendor.tasmota:
        # Tasmota's Time is local time without a zone (no SetOption52): our profile then uses receive time.
        body = {
            "Time": meter.time.astimezone().replace(tzinfo=None).isoformat(timespec="seconds"),
            "ENERGY": {
                "TotalStartTime": meter.counter_since.astimezone()
                .replace(tzinfo=None)
                .isoformat(timespec="seconds"),
                "Total": round(meter.counter_kwh, kwh_decimals),
                "Power": round(meter.power_w),
                "ApparentPower": round(meter.power_w),
                "ReactivePower": 0,
                "Factor": 1.0 if meter.power_w > 0 else 0.0,
                "Voltage": round(voltage),
                "Current": current,
            },
        }
    elif vendor is PlugVendor.shelly:
        body = shelly_status(meter, kwh_decimals)
    else:
        body = {
            "state": _on_off(meter.relay_on),
            "power": round(meter.power_w, 1),
            "energy": round(meter.counter_kwh, kwh_decimals),
            "voltage": round(voltage),
            "current": current,
            "linkquality": 120,
        }
    return telemetry_topic(vendor, device), json.dumps(body).encode()


def shelly_status(meter: Meter, kwh_decimals: int) -> dict[str, Any]:
    """Shelly's `switch:0` status object (also the answer to Switch.GetStatus)."""
    wh_decimals = max(kwh_decimals - 3, 0)
    minute_ts = int(meter.time.timestamp()) // 60 * 60
    return {
        "id": 0,
        "source": "timer",
        "output": meter.relay_on,
        "apower": round(meter.power_w, 1),
        "voltage": round(meter.voltage_v, 1),
        "freq": 50.0,
        "current": round(meter.power_w / meter.voltage_v, 3),
        "aenergy": {
            "total": round(meter.counter_kwh * 1000.0, wh_decimals),
            "by_minute": [round(v, 3) for v in meter.by_minute_mwh],
            "minute_ts": minute_ts,
        },
        "temperature": {"tC": 38.0, "tF": 100.4},
    }


def relay_report(vendor: PlugVendor, device: str, meter: Meter, kwh_decimals: int) -> tuple[str, bytes]:
    """What the plug publishes when its relay changed or was asked for: (topic, payload)."""
    if vendor is PlugVendor.tasmota:
        return f"stat/{device}/POWER", _on_off(meter.relay_on).encode()
    return telemetry(vendor, device, meter, kwh_decimals)


def parse_command(vendor: PlugVendor, device: str, topic: str, payload: bytes) -> Command | None:
    """The command a message carries, or None when it is not one this plug understands."""
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        return None
    if vendor is PlugVendor.tasmota:
        return _tasmota(device, topic, text)
    if vendor is PlugVendor.shelly:
        return _shelly(text) if topic == f"{device}/rpc" else None
    return _zigbee2mqtt(device, topic, text)


_WORDS = {
    "ON": Action.on, "1": Action.on, "OFF": Action.off, "0": Action.off,
    "TOGGLE": Action.toggle, "2": Action.toggle, "": Action.status,
}  # fmt: skip


def _tasmota(device: str, topic: str, text: str) -> Command | None:
    command = topic.removeprefix(f"cmnd/{device}/").upper()
    if command in ("POWER", "POWER1"):
        action = _WORDS.get(text.upper())
        return Command(action) if action else None
    if command == "ENERGYTOTAL" and text == "0":  # `EnergyTotal 0` zeroes the Total counter
        return Command(Action.reset_counter)
    return None


def _shelly(text: str) -> Command | None:
    try:
        body = json.loads(text)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    params = body.get("params")
    params = params if isinstance(params, dict) else {}
    if params.get("id", 0) != 0:
        return None
    src = body.get("src")
    # The answer goes to `<src>/rpc`: a source that is no plain topic level gets no answer.
    src = src if isinstance(src, str) and src and not any(c in src for c in "/+#\0") else None
    method = body.get("method")
    action: Action | None = None
    if method == "Switch.Set" and isinstance(params.get("on"), bool):
        action = Action.on if params["on"] else Action.off
    elif method == "Switch.Toggle":
        action = Action.toggle
    elif method == "Switch.GetStatus":
        action = Action.status
    elif method == "Switch.ResetCounters":
        action = Action.reset_counter
    return Command(action, reply_to=src, rpc_id=body.get("id")) if action else None


def _zigbee2mqtt(device: str, topic: str, text: str) -> Command | None:
    if topic == f"zigbee2mqtt/{device}/set/state":
        state: object = text
    elif topic == f"zigbee2mqtt/{device}/set":
        try:
            body = json.loads(text)
        except ValueError:
            return None
        state = body.get("state") if isinstance(body, dict) else None
    else:
        return None
    action = _WORDS.get(state.upper()) if isinstance(state, str) and state else None
    return Command(action) if action in (Action.on, Action.off, Action.toggle) else None


def shelly_reply(device: str, command: Command, was_on: bool, meter: Meter, kwh_decimals: int) -> bytes:
    """The JSON-RPC answer a Shelly sends to `<src>/rpc`."""
    result: dict[str, Any]
    if command.action is Action.status:
        result = shelly_status(meter, kwh_decimals)
    elif command.action is Action.reset_counter:
        result = {}
    else:
        result = {"was_on": was_on}
    return json.dumps(
        {"id": command.rpc_id, "src": device, "dst": command.reply_to, "result": result}
    ).encode()
