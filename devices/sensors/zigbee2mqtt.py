"""Zigbee2MQTT (JSON output, its default): `<base>/<friendly_name>` → power and environment readings.

- power (W), energy (kWh), voltage, current → power; temperature, humidity → environment; a payload
  with both gives two readings.
- A power reading needs power, energy or current: battery sensors (Aqara, SONOFF SNZB) publish the
  battery's `voltage` in mV, which is no mains voltage and is not recorded on its own.
- Time: `last_seen` when Z2M adds it (`ISO_8601`, `ISO_8601_local` with offset, or `epoch` ms).
- []: `<base>/bridge/…`, `…/availability`, `…/set`, `…/get` (also `…/set/<attr>`), and device
  messages without any of these fields (buttons, lights). Friendly names may contain `/`, but not a
  level called `bridge`. The `attribute` output mode (plain values on `<name>/<attr>`) is not supported.
"""

from __future__ import annotations

from datetime import datetime

from devices.sensors.model import Reading, SensorSpec
from devices.sensors.values import fields_from, load_object, reading, utc_from_epoch, utc_from_iso

_MAINS = {"power": "power_w", "energy": "energy_kwh", "current": "current_a"}
_CLIMATE = {"temperature": "temperature_c", "humidity": "humidity_pct"}
_NOT_STATE = frozenset({"availability", "set", "get"})


def decode_zigbee2mqtt(spec: SensorSpec, topic: str, payload: bytes) -> list[Reading]:
    """Readings from a device state message; [] for bridge, availability and command topics."""
    levels = topic.split("/")
    if "bridge" in levels[:-1] or levels[-1] in _NOT_STATE or (len(levels) > 1 and levels[-2] in _NOT_STATE):
        return []
    body = load_object(spec, payload)
    time = _last_seen(body.get("last_seen"))
    readings: list[Reading] = []
    power = fields_from(body, _MAINS)
    if power:
        power.update(fields_from(body, {"voltage": "voltage_v"}))
        readings.append(reading(spec, "power", power, time))
    climate = fields_from(body, _CLIMATE)
    if climate:
        readings.append(reading(spec, "environment", climate, time))
    return readings


def _last_seen(value: object) -> datetime | None:
    if isinstance(value, str):
        return utc_from_iso(value)
    return utc_from_epoch(value, per_second=1000)
