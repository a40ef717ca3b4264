"""The event feed: what happens in the farm, as typed events, to every part that wants to know.

Printer changes (and, apart, a printer's progress between them), job changes and decoded sensor
readings are published once; each consumer (the InfluxDB sink, the dispatcher, accounting, the
utilisation timeline, notifications and live web updates) subscribes to the kinds it needs with its own
bounded queue and an overflow policy:
- WAIT: the publisher waits for room (the InfluxDB sink: a reading must not be lost, and the MQTT ingest
  acknowledges a message only once the sink has it, so a full queue is back-pressure on the broker);
- DROP_OLDEST: the oldest waiting event goes, counted and logged (views that need the latest state).
Job events are also durable (the store's job_events table): a consumer that must not miss one reads the
table from its own stored cursor and takes JobChanged only as the signal that there is more to read.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

from controller.fleet.state import PrinterStatus
from controller.jobs import JobState
from devices.printer import PrinterEvent
from devices.sensors import Reading

log = logging.getLogger(__name__)

OVERFLOW_LOG_INTERVAL_S = 60.0


@dataclass(frozen=True, slots=True)
class PrinterChanged:
    """A printer's status changed, or its host sent an event (`event`) a job may end by."""

    status: PrinterStatus
    event: PrinterEvent | None = None

    @property
    def printer(self) -> str:
        return self.status.name


@dataclass(frozen=True, slots=True)
class PrinterProgress:
    """A printer's figures (progress, temperatures, file, the host's words) moved without a state change.
    At most one a second per printer (controller/fleet/progress.py). Only the live updates take it: the
    dispatcher, the notifier and the timeline have nothing to do for it."""

    status: PrinterStatus

    @property
    def printer(self) -> str:
        return self.status.name


@dataclass(frozen=True, slots=True)
class JobChanged:
    """A job moved to `state`; `event_id` is its row in the store's job_events table."""

    event_id: int
    job_id: int
    state: JobState
    printer: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class SensorReadings:
    """What one MQTT message on a sensor's topic gave: decoded points (devices' Reading: measurement,
    fields in our units, tags with the sensor id and its printer or location binding, sample time or
    None) and when it was received. One event per message, not per value: the ingest's pace is the
    broker's (bench/ingest.py), and an event per value would cost it a third of that."""

    sensor: str
    readings: tuple[Reading, ...]
    received_ns: int


# Our field names end in their unit (DESIGN.md schema).
_UNITS = {"_w": "W", "_kwh": "kWh", "_v": "V", "_a": "A", "_g": "g", "_c": "°C", "_pct": "%"}


def unit_of(field: str) -> str:
    """The unit of a reading's field by its name (`power_w` → W); "" when the name carries none."""
    return next((unit for suffix, unit in _UNITS.items() if field.endswith(suffix)), "")


Event = PrinterChanged | PrinterProgress | JobChanged | SensorReadings
E = TypeVar("E", bound=Event)


class Overflow(StrEnum):
    """What a full subscription does with the next event."""

    WAIT = "wait"
    DROP_OLDEST = "drop_oldest"


class Subscription(Generic[E]):
    """One consumer's bounded queue of events of some kinds. `async for event in sub` or `await sub.get()`."""

    def __init__(
        self,
        name: str,
        kinds: tuple[type[Any], ...],
        maxsize: int,
        overflow: Overflow,
        sensors: frozenset[str] | None = None,
    ) -> None:
        if maxsize < 1:
            raise ValueError("a subscription holds at least one event")
        self.name = name
        self.kinds = kinds
        self.sensors = sensors
        self.maxsize = maxsize
        self.overflow = overflow
        self.dropped = 0
        self._items: deque[E] = deque()
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._woken = False
        self._logged_at = -OVERFLOW_LOG_INTERVAL_S
        self._logged_dropped = 0

    def __len__(self) -> int:
        return len(self._items)

    def offer(self, item: E) -> bool:
        """Queue `item` without waiting; False only when full under WAIT (the caller must wait_room)."""
        if self.sensors is not None and isinstance(item, SensorReadings) and item.sensor not in self.sensors:
            return True  # not one of its sensors: a busy broker's readings must not wake it
        if len(self._items) >= self.maxsize:
            if self.overflow is Overflow.WAIT:
                self._room.clear()
                return False
            self._items.popleft()
            self.count_drop()
        self._items.append(item)
        self._ready.set()
        return True

    async def put(self, item: E) -> None:
        """Queue `item`, waiting for room under WAIT."""
        while not self.offer(item):
            await self._room.wait()

    def count_drop(self) -> None:
        """Count (and log, at most once a minute) an event this subscription did not get."""
        self.dropped += 1
        now = time.monotonic()
        if now - self._logged_at >= OVERFLOW_LOG_INTERVAL_S:
            log.warning(
                "event feed: subscriber %s fell behind, %d %s events dropped (%d in all)",
                self.name,
                self.dropped - self._logged_dropped,
                "/".join(kind.__name__ for kind in self.kinds),
                self.dropped,
            )
            self._logged_at = now
            self._logged_dropped = self.dropped

    def take(self, limit: int | None = None) -> list[E]:
        """Everything waiting (at most `limit`), oldest first, without waiting."""
        count = len(self._items) if limit is None else min(limit, len(self._items))
        out = [self._items.popleft() for _ in range(count)]
        if not self._items:
            self._ready.clear()
        if out:
            self._room.set()
        return out

    def wake(self) -> None:
        """Let the consumer's next wait() return with nothing new (its own reason to look again)."""
        self._woken = True
        self._ready.set()

    async def wait(self) -> None:
        """Until something waits or wake() was called (at once if so)."""
        while not self._items and not self._woken:
            self._ready.clear()
            await self._ready.wait()
        self._woken = False

    async def get(self) -> E:
        """The oldest waiting event, waiting for one."""
        while not self._items:
            await self.wait()
        (item,) = self.take(1)
        return item

    def __aiter__(self) -> AsyncIterator[E]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[E]:
        while True:
            yield await self.get()


class EventFeed:
    """Publish events to every subscription of their kind. One per daemon."""

    def __init__(self) -> None:
        self._subs: dict[type, list[Subscription[Any]]] = {}

    def subscribe(
        self, name: str, kind: type[E], *, maxsize: int = 1024, overflow: Overflow = Overflow.DROP_OLDEST
    ) -> Subscription[E]:
        """A new subscription to events of `kind`."""
        sub: Subscription[E] = Subscription(name, (kind,), maxsize, overflow)
        self._subs.setdefault(kind, []).append(sub)
        return sub

    def subscribe_all(
        self,
        name: str,
        kinds: tuple[type[Event], ...],
        *,
        maxsize: int = 1024,
        overflow: Overflow = Overflow.DROP_OLDEST,
        sensors: frozenset[str] | None = None,
    ) -> Subscription[Event]:
        """One subscription (one queue, in publishing order) to events of several kinds; with `sensors`,
        only the SensorReadings of those sensors."""
        sub: Subscription[Event] = Subscription(name, kinds, maxsize, overflow, sensors)
        for kind in kinds:
            self._subs.setdefault(kind, []).append(sub)
        return sub

    @property
    def subscriptions(self) -> list[Subscription[Any]]:
        """Every subscription once (one of several kinds is listed under each), for /metrics."""
        return list({id(sub): sub for subs in self._subs.values() for sub in subs}.values())

    def publish_nowait(self, event: Event) -> None:
        """Publish from synchronous code. A full WAIT subscription drops it too (counted and logged): a
        kind that a WAIT subscriber takes must be published with `await publish()`."""
        for sub in self._subs.get(type(event), ()):
            if not sub.offer(event):
                sub.count_drop()

    async def publish(self, event: Event) -> None:
        """Publish, waiting for room in WAIT subscriptions."""
        for sub in self._subs.get(type(event), ()):
            if not sub.offer(event):
                await sub.put(event)
