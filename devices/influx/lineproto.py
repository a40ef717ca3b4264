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
    if type(value) is float:  # the common case
        return repr(value) if math.isfinite(value) else None
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    if isinstance(value, bool):
        return None
    number = float(value)
    if not math.isfinite(number):
        return None
    return repr(number)


def line_head(measurement: str, tags: Mapping[str, str]) -> str:
    """`measurement,tag=value,...`: the series part of a line, tags sorted, empty tag values left out."""
    if not measurement:
        raise ValueError("a point needs a measurement")
    head = measurement.translate(_MEASUREMENT)
    for key in sorted(tags):  # sorted tags: InfluxDB's fastest path
        value = tags[key]
        if value:  # an empty tag value is not allowed in line protocol
            head += f",{key.translate(_KEY)}={value.translate(_KEY)}"
    return head


def line_fields(fields: Mapping[str, float | str]) -> str:
    """`key=value,...`; ValueError if no field is one InfluxDB would take (non-finite numbers)."""
    encoded = []
    for key, raw in fields.items():
        value = _field(raw)
        if value is not None:
            encoded.append(f"{key.translate(_KEY)}={value}")
    if not encoded:
        raise ValueError("a point needs at least one finite field")
    return ",".join(encoded)


def to_line(point: Point) -> str:
    """The point as one line; ValueError if it has no field InfluxDB would take (non-finite numbers)."""
    head = line_head(point.measurement, point.tags)
    try:
        fields = line_fields(point.fields)
    except ValueError:
        raise ValueError(f"point {point.measurement!r} has no finite field") from None
    return f"{head} {fields} {point.time_ns}"
