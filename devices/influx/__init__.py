"""InfluxDB driver: line protocol and the v1 (/write) and v2 (influxdb-client) writers."""

from devices.influx.lineproto import Point, to_line
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
    "to_line",
]
