"""The InfluxDB sink: a subscriber of the event feed that turns sensor readings into lines for the writer.

Its subscription waits rather than drops (Overflow.WAIT): the MQTT ingest acknowledges a QoS 1 message
once the sink's queue holds its readings, so a full queue is back-pressure on the broker. At a stop, what
the sink holds is handed to the writer before the writer's last flush (`done`), so an acknowledged
reading is never left behind in memory by a clean stop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

from controller.core.events import EventFeed, Overflow, SensorReadings
from controller.tasks import run_until_stopped
from controller.telemetry.writer import TelemetryWriter
from devices.influx import line_fields, line_head

log = logging.getLogger(__name__)

QUEUE_MESSAGES = 1000  # MQTT messages' readings waiting for the sink (each a few lines)
HEADS_MAX = 4096
REFUSED_LOG_INTERVAL_S = 60.0


@dataclass
class SinkStats:
    """Counters for /metrics."""

    points: int = 0
    refused: int = 0  # readings no line could be made of (a non-finite value, say)


class InfluxSink:
    """`run(stop)` in the daemon's TaskGroup, beside the writer it feeds."""

    def __init__(self, feed: EventFeed, writer: TelemetryWriter, *, maxsize: int = QUEUE_MESSAGES) -> None:
        self.writer = writer
        self.lines = LineMaker()
        self.stats = self.lines.stats
        self.done = asyncio.Event()
        self._sub = feed.subscribe("influx-sink", SensorReadings, maxsize=maxsize, overflow=Overflow.WAIT)
        self._pending: deque[str] = deque()

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await run_until_stopped(stop, self._loop())
        finally:
            for event in self._sub.take():
                self._pending.extend(self.lines(event))
            self.writer.put_final(list(self._pending))
            self._pending.clear()
            self.done.set()

    async def _loop(self) -> None:
        while True:
            await self._sub.wait()
            for event in self._sub.take():
                self._pending.extend(self.lines(event))
            while self._pending:
                # Popped only once queued: a cancel while the writer is full leaves the line here.
                await self.writer.put(self._pending[0])
                self._pending.popleft()


class LineMaker:
    """Readings to line protocol, with the line heads cached: readings share their sensor's tags
    object, so there are few (measurement, tags) keys."""

    def __init__(self) -> None:
        self.stats = SinkStats()
        self._heads: dict[tuple[str, Mapping[str, str]], str] = {}
        self._refused_log_at = -REFUSED_LOG_INTERVAL_S

    def __call__(self, event: SensorReadings) -> list[str]:
        """Line protocol for each reading of `event` (received time where the device gave none)."""
        out = []
        for reading in event.readings:
            when = int(reading.time.timestamp() * 1e9) if reading.time else event.received_ns
            try:  # the reading's tags already carry sensor=<id> and the config's tags
                out.append(
                    f"{self._head(reading.measurement, reading.tags)} {line_fields(reading.fields)} {when}"
                )
            except ValueError as exc:
                self._refused(event.sensor, exc)
        self.stats.points += len(out)
        return out

    def _head(self, measurement: str, tags: Mapping[str, str]) -> str:
        key = (measurement, tags)
        head = self._heads.get(key)
        if head is None:
            if len(self._heads) >= HEADS_MAX:
                self._heads.clear()
            head = self._heads[key] = line_head(measurement, tags)
        return head

    def _refused(self, sensor: str, exc: ValueError) -> None:
        self.stats.refused += 1
        now = time.monotonic()
        if now - self._refused_log_at >= REFUSED_LOG_INTERVAL_S:
            self._refused_log_at = now
            log.warning("sensor=%s reading not stored (%d so far): %s", sensor, self.stats.refused, exc)
