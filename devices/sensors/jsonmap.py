"""The json profile: any JSON object; each FieldMap reads the number at a dotted path and scales it.

- Path segments are object keys, or list indices as integers (`sensors.0.value`); a key that itself
  contains a dot cannot be addressed.
- A path that is absent or null is skipped; a value that is there but is no finite number (also after
  scaling) is a PayloadError, and so is a message in which no mapping found a value.
- Every message on the spec's topic is decoded, and readings carry no time (the format is unknown).
"""

from __future__ import annotations

import math

from devices.sensors.model import PayloadError, Reading, SensorSpec
from devices.sensors.values import excerpt, load_object, number, reading

_MAX_INDEX_DIGITS = 9


def decode_json(spec: SensorSpec, topic: str, payload: bytes) -> list[Reading]:
    """One reading with every mapped field the payload carries."""
    if spec.measurement is None:
        raise PayloadError(f"sensor {spec.id!r} has no measurement configured")
    body = load_object(spec, payload)
    fields: dict[str, float] = {}
    for mapping in spec.fields:
        value = number(_lookup(body, mapping.path), mapping.path)
        if value is None:
            continue
        scaled = value * mapping.scale
        if not math.isfinite(scaled):
            raise PayloadError(f"{mapping.path} times {mapping.scale} is out of range")
        fields[mapping.field] = scaled
    if not fields:
        paths = ", ".join(m.path for m in spec.fields)
        raise PayloadError(f"none of {paths[:80]} is in the payload: {excerpt(payload)}")
    return [reading(spec, spec.measurement, fields)]


def _lookup(root: object, path: str) -> object:
    node = root
    for part in path.split("."):
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isascii() and part.isdigit() and len(part) <= _MAX_INDEX_DIGITS:
            index = int(part)
            node = node[index] if index < len(node) else None
        else:
            return None
    return node
