"""InfluxDB driver: line protocol and the v1 (/write) and v2 (influxdb-client) writers."""

from devices.influx.lineproto import Point, line_fields, line_head, to_line
from devices.influx.writers import (
    InfluxAuthError,
    InfluxRejected,
    InfluxUnavailable,
    V1Writer,
    V2Writer,
    Writer,
)

__all__ = [
    "InfluxAuthError",
    "InfluxRejected",
    "InfluxUnavailable",
    "Point",
    "V1Writer",
    "V2Writer",
    "Writer",
    "line_fields",
    "line_head",
    "to_line",
]
