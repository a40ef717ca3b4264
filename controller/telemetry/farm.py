"""Printer, farm and job points (DESIGN.md schema): printers and farm counts every interval, and every
job state change as a `job` point stamped with the time it happened."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from datetime import UTC, datetime
from functools import partial

from controller.accounting.ledger import Account, attempt_account
from controller.core.events import JobChanged
from controller.fleet.coordinator import Fleet
from controller.fleet.state import PrinterState
from controller.jobs import JobState
from controller.store import AsyncStore
from controller.tasks import run_until_stopped
from controller.telemetry.writer import TelemetryWriter
from devices.influx import Point, to_line

log = logging.getLogger(__name__)


# The stored cursor of the job points in the store's job_events (see FarmTelemetry.jobs).
JOB_POINTS_CURSOR = "influx-job-points"


class FarmTelemetry:
    """`run(stop)` in the daemon's TaskGroup: printer and farm points every `interval`, and a job point
    for every recorded job change, at once (JobChanged on the feed) and never lost.

    Job points are read from the durable job_events table from a stored cursor, which moves only past
    points the writer has settled (written, or spooled to disk): after a crash the points that were
    still in memory are sent again (the same point twice is one point to InfluxDB: same series, same
    time)."""

    def __init__(
        self,
        fleet: Fleet,
        store: AsyncStore,
        writer: TelemetryWriter,
        *,
        interval: float,
        account_wait_s: float = 0.0,
    ) -> None:
        self.fleet = fleet
        self.account_wait_s = account_wait_s
        self.store = store
        self.writer = writer
        self.interval = interval
        self._cursor: int | None = None
        self._stored: int | None = None
        self._unsettled: deque[tuple[int, int]] = deque()  # (writer sequence, job event id)
        feed = store.feed
        self._changes = feed.subscribe("job-points", JobChanged, maxsize=256) if feed is not None else None

    async def run(self, stop: asyncio.Event) -> None:
        stored = await self.store.call(self.store.sync.cursor, JOB_POINTS_CURSOR)
        if stored is None:
            # No cursor yet (a new farm, or one from before cursors): the history is not replayed.
            stored = await self.store.call(self.store.sync.last_event_id)
            await self.store.call(self.store.sync.set_cursor, JOB_POINTS_CURSOR, stored)
        self._cursor = self._stored = stored
        await run_until_stopped(stop, self._loop())
        await self.jobs()  # what changed since the last round
        await self.save_cursor()

    async def _loop(self) -> None:
        next_tick = time.monotonic()
        while True:
            if time.monotonic() >= next_tick:
                await self.printers()
                next_tick = time.monotonic() + self.interval
            await self.jobs()
            await self.save_cursor()
            if self._changes is None:
                await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
                continue
            # A JobChanged is only the signal: the points come from the table.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, next_tick - time.monotonic())):
                    await self._changes.wait()
            self._changes.take()

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
            await self.writer.put(to_line(Point("printer", tags, fields, now)))
            state = status.state
            key = "printing" if state in (PrinterState.PRINTING, PrinterState.PAUSED) else str(state)
            if key in counts:
                counts[key] += 1
        jobs = await self.store.call(self.store.sync.count_jobs)
        counts["queued"] = float(jobs.get(JobState.QUEUED, 0))
        await self.writer.put(to_line(Point("farm", {}, counts, now)))

    async def jobs(self) -> None:
        """One `job` point per job state change since the last call; the end of a print carries its
        measured figures, so with an accountant its point waits (at most `account_wait_s`) for them."""
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
                if job.estimated_s is not None and event.state.finished:
                    fields["estimated_s"] = job.estimated_s  # performance (OEE) in Grafana
                if event.state.finished and job.started_at is not None and self.account_wait_s > 0:
                    read = partial(attempt_account, job_id=job.id, since=event.at)
                    account = await self.store.call(self.store.sync.read, read)
                    waited = (datetime.now(UTC) - event.at).total_seconds()
                    if account is None and waited < self.account_wait_s:
                        return  # the next round looks again; after that, written without
                    if account is not None:
                        fields.update(account_fields(account))
                tags = {
                    "printer": event.printer or "",
                    "owner": job.owner,
                    "material": job.requirements.material or "",
                    "outcome": str(event.state),
                }
                seq = await self.writer.put(
                    to_line(Point("job", tags, fields, int(event.at.timestamp() * 1e9)))
                )
                self._unsettled.append((seq, event_id))
                self._cursor = event_id
            if len(batch) < 500:
                return

    async def save_cursor(self) -> None:
        """Store the cursor past every job point the writer has settled."""
        settled = self.writer.settled
        newest = None
        while self._unsettled and self._unsettled[0][0] <= settled:
            newest = self._unsettled.popleft()[1]
        if newest is not None and newest != self._stored:
            await self.store.call(self.store.sync.set_cursor, JOB_POINTS_CURSOR, newest)
            self._stored = newest


def account_fields(account: Account) -> dict[str, float]:
    """The `job` point's measured fields (DESIGN.md schema): those an account has."""
    values = {
        "energy_kwh": account.energy_kwh,
        "heatup_kwh": account.heatup_kwh,
        "filament_g": account.filament_g,
        "filament_est_g": account.filament_est_g,
        "waste_g": account.waste_g,
        "waste_kwh": account.waste_kwh,
        "cost": account.cost,
        "co2_g": account.co2_g,
    }
    return {name: float(value) for name, value in values.items() if value is not None}
