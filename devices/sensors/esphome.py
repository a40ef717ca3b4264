"""ESPHome (MQTT mode): `<prefix>/sensor/<name>/state` carries one number as text; `spec.kind` says which.

- Units are taken as published: power in W, energy in kWh, weight in g (hx711 `calibrate_linear` to
  grams), temperature in °C. `total_daily_energy` and `integration` publish Wh from a W sensor: add
  `filters: [multiply: 0.001]` and `unit_of_measurement: kWh` to them in the ESPHome config.
- `nan` is what ESPHome publishes for a failed read: a PayloadError, so the operator sees it.
- With an exact topic in the spec every message on it is the state (custom `state_topic:` works). With a
  wildcard filter only `…/sensor/<name>/state` topics are read; `<prefix>/status` (online/offline),
  `…/debug` and other components are []. Give each ESPHome sensor its own exact topic: a filter
  spanning several entities would record them all as the same kind.
"""

from __future__ import annotations

from devices.sensors.model import ESPHOME_KINDS, PayloadError, Reading, SensorSpec
from devices.sensors.topics import has_wildcard
from devices.sensors.values import parse_number, reading, text_of


def decode_esphome(spec: SensorSpec, topic: str, payload: bytes) -> list[Reading]:
    """The one reading an entity state carries; [] for the node's other topics."""
    levels = topic.split("/")
    is_state = len(levels) >= 3 and levels[-1] == "state" and levels[-3] == "sensor"
    if has_wildcard(spec.topic) and not is_state:
        return []
    default_measurement, field = ESPHOME_KINDS[spec.kind or ""]
    text = text_of(spec, payload).strip()
    if text.lower() == "nan":
        raise PayloadError("ESPHome published nan: the sensor read failed")
    if not text:
        raise PayloadError("ESPHome state is empty")
    value = parse_number(text, "ESPHome state")
    return [reading(spec, spec.measurement or default_measurement, {field: value})]
