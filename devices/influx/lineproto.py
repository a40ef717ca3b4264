"""InfluxDB line protocol. Every number is written as a float: InfluxDB 1.x rejects a whole batch when
one field is an integer in one point and a float in another."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

_MEASUREMENT = str.maketrans({",": "\\,", " ": "\\ ", "\n": "\\n"})
_KEY = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ ", "\n": "\\n"})


@dataclass(frozen=True, slots=True)
class Point:
    """One point: numbers become float fields, strings string fields; `time_ns` since the epoch, UTC."""

    measurement: str
    tags: Mapping[str, str]
    fields: Mapping[str, float | str]
    time_ns: int


def _field(value: float | str) -> str | None:
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    if isinstance(value, bool):
        return None
    number = float(value)
    if not math.isfinite(number):
        return None
    return repr(number)


def to_line(point: Point) -> str:
    """The point as one line; ValueError if it has no field InfluxDB would take (non-finite numbers)."""
    if not point.measurement:
        raise ValueError("a point needs a measurement")
    head = point.measurement.translate(_MEASUREMENT)
    for key in sorted(point.tags):  # sorted tags: InfluxDB's fastest path
        value = point.tags[key]
        if value:  # an empty tag value is not allowed in line protocol
            head += f",{key.translate(_KEY)}={value.translate(_KEY)}"
    fields = []
    for key, raw in point.fields.items():
        encoded = _field(raw)
        if encoded is not None:
            fields.append(f"{key.translate(_KEY)}={encoded}")
    if not fields:
        raise ValueError(f"point {point.measurement!r} has no finite field")
    return f"{head} {','.join(fields)} {point.time_ns}"
