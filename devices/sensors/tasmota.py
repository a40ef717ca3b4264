"""Tasmota: `tele/<t>/SENSOR` (and the `Status 10` answer `stat/<t>/STATUS10`) → power and environment.

- Tasmota's `Time` is local time without a zone, so readings carry no time (receive time is used),
  unless `SetOption52 1` adds the UTC offset to it.
- Multi-channel devices send arrays (`"Power": [12, 0]`): channel 1 (index 0) is read. For another
  channel use the json profile with a path such as `ENERGY.Power.1`.
- Climate: the first top-level object with `Temperature` or `Humidity` (AM2301, SI7021, DS18B20,
  BME280, SHT3X, …) becomes an environment reading; the ESP32 chip's own temperature is not one. With
  several probes on one device, configure one json-profile sensor per probe (`DS18B20-2.Temperature`).
  `"TempUnit": "F"` is converted to °C.
- Every other topic of the device (`STATE`, `LWT`, `RESULT`, `POWER`, …) carries nothing we record.
"""

from __future__ import annotations

from typing import Any

from devices.sensors.model import PayloadError, Reading, SensorSpec
from devices.sensors.values import fields_from, load_object, number, reading, show, utc_from_iso

_ENERGY = {"Power": "power_w", "Total": "energy_kwh", "Voltage": "voltage_v", "Current": "current_a"}
_CLIMATE = {"Temperature": "temperature_c", "Humidity": "humidity_pct"}


def decode_tasmota(spec: SensorSpec, topic: str, payload: bytes) -> list[Reading]:
    """Readings from a Tasmota telemetry message; [] for the device's other topics."""
    last = topic.rsplit("/", 1)[-1]
    if last not in ("SENSOR", "STATUS10"):
        return []
    body = load_object(spec, payload)
    if last == "STATUS10":
        status = body.get("StatusSNS")
        if not isinstance(status, dict):
            raise PayloadError("STATUS10 answer has no StatusSNS object")
        body = status
    time = utc_from_iso(body.get("Time"))
    readings: list[Reading] = []
    energy = body.get("ENERGY")
    if energy is not None:
        if not isinstance(energy, dict):
            raise PayloadError(f"ENERGY is {show(energy)}, not an object")
        fields = _energy_fields(energy)
        if not fields:
            raise PayloadError("ENERGY carries none of Power, Total, Voltage, Current")
        readings.append(reading(spec, "power", fields, time))
    probe = _climate_probe(body)
    if probe is not None:
        name, values = probe
        fields = fields_from(values, _CLIMATE, name + ".")
        if "temperature_c" in fields and body.get("TempUnit") == "F":
            fields["temperature_c"] = (fields["temperature_c"] - 32.0) / 1.8
        if fields:
            readings.append(reading(spec, "environment", fields, time))
        elif not readings:
            raise PayloadError(f"{name} reported neither Temperature nor Humidity (failed read?)")
    return readings


def _energy_fields(energy: dict[str, Any]) -> dict[str, float]:
    fields: dict[str, float] = {}
    for key, field in _ENERGY.items():
        raw = energy.get(key)
        where = "ENERGY." + key
        if isinstance(raw, list):
            raw, where = (raw[0] if raw else None), where + "[0]"
        value = number(raw, where)
        if value is not None:
            fields[field] = value
    return fields


def _climate_probe(body: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    for key, value in body.items():
        if key == "ENERGY" or key.startswith("ESP") or not isinstance(value, dict):
            continue
        if "Temperature" in value or "Humidity" in value:
            return ascii(key)[1:-1][:30], value
    return None
