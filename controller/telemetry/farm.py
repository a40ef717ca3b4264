"""Printer, farm and job points (DESIGN.md schema): printers and farm counts every interval, and every
job state change as a `job` point stamped with the time it happened."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from controller.fleet import Fleet
from controller.jobs import JobState
from controller.printers import PrinterState
from controller.store import AsyncStore
from devices.influx import Point, to_line

log = logging.getLogger(__name__)


class FarmTelemetry:
    """`run(stop)` in the daemon's TaskGroup; writes through `out` (the telemetry writer's put)."""

    def __init__(
        self, fleet: Fleet, store: AsyncStore, out: Callable[[str], Awaitable[None]], *, interval: float
    ) -> None:
        self.fleet = fleet
        self.store = store
        self.out = out
        self.interval = interval
        self._cursor: int | None = None

    async def run(self, stop: asyncio.Event) -> None:
        # Job changes from before this start were written by the previous run (or are history).
        self._cursor = await self.store.call(self.store.sync.last_event_id)
        while not stop.is_set():
            await self.tick()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)
        await self.jobs()  # what changed during the last interval

    async def tick(self) -> None:
        await self.printers()
        await self.jobs()

    async def printers(self) -> None:
        now = time.time_ns()
        counts = dict.fromkeys(("printing", "awaiting_clear", "idle", "offline"), 0.0)
        for coordinator in self.fleet.coordinators.values():
            status = coordinator.status
            fields: dict[str, float | str] = {"state": str(status.state)}
            if status.progress is not None:
                fields["progress"] = status.progress
            for key, prefix in (("tool0", "tool"), ("bed", "bed")):
                temp = status.temperatures.get(key)
                if temp is not None and temp.actual is not None:
                    fields[f"{prefix}_actual"] = temp.actual
                if temp is not None and temp.target is not None:
                    fields[f"{prefix}_target"] = temp.target
            tags = {"printer": coordinator.printer.name, "group": coordinator.printer.group}
            await self.out(to_line(Point("printer", tags, fields, now)))
            state = status.state
            key = "printing" if state in (PrinterState.PRINTING, PrinterState.PAUSED) else str(state)
            if key in counts:
                counts[key] += 1
        jobs = await self.store.call(self.store.sync.count_jobs)
        counts["queued"] = float(jobs.get(JobState.QUEUED, 0))
        await self.out(to_line(Point("farm", {}, counts, now)))

    async def jobs(self) -> None:
        """One `job` point per job state change since the last call."""
        if self._cursor is None:
            return
        while True:
            batch = await self.store.call(self.store.sync.events_after, self._cursor)
            for event_id, event, job in batch:
                fields: dict[str, float | str] = {"job_id": str(job.id), "state": str(event.state)}
                if event.state.finished and job.started_at and job.finished_at:
                    fields["duration_s"] = (job.finished_at - job.started_at).total_seconds()
                if job.filament_g is not None and event.state is JobState.COMPLETED:
                    fields["filament_g"] = job.filament_g
                tags = {
                    "printer": event.printer or "",
                    "owner": job.owner,
                    "material": job.requirements.material or "",
                    "outcome": str(event.state),
                }
                await self.out(to_line(Point("job", tags, fields, int(event.at.timestamp() * 1e9))))
                self._cursor = event_id
            if len(batch) < 500:
                return
