"""The printers' state timeline: one row (printer, state, since) each time a printer's farm state
changes, for utilisation reports; each change also as a `printer_state` point in InfluxDB.

A daemon's downtime shows as `unknown`, never as the state the printer was last seen in: a clean stop
writes `unknown` rows at once; after a crash the next start writes them at the last time this recorder
confirmed the states (each row's `seen`, renewed every `interval`), so at most `interval` of a crashed
daemon's last known state is lost to `unknown`. Until a printer has been contacted after a start, it
stays `unknown` too. `off` (the plug relay known off) is not recorded yet: the plug's relay state is not
on the event feed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime

from controller.accounting.oee import Change, FinishedJob, TimelineState
from controller.core.events import PrinterChanged
from controller.fleet.coordinator import Fleet
from controller.fleet.state import PrinterStatus
from controller.jobs import JobState
from controller.store import AsyncStore
from controller.tasks import run_until_stopped
from controller.telemetry.writer import TelemetryWriter
from devices.influx import Point, to_line

log = logging.getLogger(__name__)

SEEN_INTERVAL_S = 60.0


def stamp(at: datetime) -> str:
    """A timeline time as stored: UTC with microseconds always, so stored times compare as text."""
    return at.astimezone(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True, slots=True)
class Row:
    """The newest timeline row of a printer."""

    id: int
    state: TimelineState
    since: datetime


def newest_rows(db: sqlite3.Connection) -> dict[str, tuple[Row, datetime]]:
    """Each printer's newest row and when it was last confirmed."""
    rows = db.execute(
        "SELECT t.id, t.printer, t.state, t.since, t.seen FROM printer_timeline t"
        " WHERE t.id = (SELECT MAX(id) FROM printer_timeline WHERE printer = t.printer)"
    )
    return {
        r["printer"]: (
            Row(r["id"], TimelineState(r["state"]), datetime.fromisoformat(r["since"])),
            datetime.fromisoformat(r["seen"]),
        )
        for r in rows
    }


def append(db: sqlite3.Connection, printer: str, state: TimelineState, at: datetime) -> int:
    """Add a row: `printer` is in `state` from `at` on. Its id."""
    cur = db.execute(
        "INSERT INTO printer_timeline(printer, state, since, seen) VALUES (?,?,?,?)",
        (printer, state, stamp(at), stamp(at)),
    )
    return int(cur.lastrowid or 0)


def confirm(db: sqlite3.Connection, ids: list[int], at: datetime) -> None:
    """The rows `ids` still held at `at`."""
    db.executemany("UPDATE printer_timeline SET seen = ? WHERE id = ?", [(stamp(at), i) for i in ids])


def changes_in(db: sqlite3.Connection, since: datetime, until: datetime) -> list[Change]:
    """The rows from `since` to `until`, and for each printer the newest row before `since` (the state it
    entered the period in)."""
    # One pass over the older rows for the states at `since`: a correlated subquery per row is quadratic
    # in the history (measured with 100,000 rows, 20 printers: 67 s against 0.06 s for a week's report).
    rows = db.execute(
        "SELECT id, printer, state, since FROM printer_timeline WHERE since >= :since AND since < :until"
        " UNION ALL SELECT id, printer, state, since FROM printer_timeline WHERE id IN"
        " (SELECT MAX(id) FROM printer_timeline WHERE since < :since GROUP BY printer)"
        " ORDER BY printer, since, id",  # rows of the same time: the later one holds
        {"since": stamp(since), "until": stamp(until)},
    )
    return [Change(r["printer"], TimelineState(r["state"]), datetime.fromisoformat(r["since"])) for r in rows]


def jobs_finished(db: sqlite3.Connection, since: datetime, until: datetime) -> list[FinishedJob]:
    """Jobs that ended on a printer in [since, until)."""
    # The jobs table's times are isoformat() without fixed microseconds: select a second wider as
    # text, then exactly.
    rows = db.execute(
        "SELECT printer, state, started_at, finished_at, estimated_s FROM jobs"
        " WHERE state IN (?,?,?) AND printer IS NOT NULL AND finished_at >= ? AND finished_at < ?",
        (
            JobState.COMPLETED,
            JobState.FAILED,
            JobState.CANCELLED,
            stamp(since)[:19],
            stamp(until)[:17] + "99",
        ),
    )
    out = []
    for r in rows:
        finished = datetime.fromisoformat(r["finished_at"])
        if since <= finished < until:
            started = datetime.fromisoformat(r["started_at"]) if r["started_at"] else None
            out.append(FinishedJob(r["printer"], JobState(r["state"]), finished, started, r["estimated_s"]))
    return out


def timeline_state(status: PrinterStatus) -> TimelineState:
    """The state to record; a printer not yet contacted since the start is `unknown`."""
    if status == PrinterStatus(name=status.name):
        return TimelineState.UNKNOWN
    return TimelineState(str(status.state))


class TimelineRecorder:
    """`run(stop)` in the daemon's TaskGroup: records every printer's state changes in printer_timeline,
    and with a `writer` each as a `printer_state` point (tags printer, group; fields state, previous and
    duration_s, the seconds spent in the previous state)."""

    def __init__(
        self,
        fleet: Fleet,
        store: AsyncStore,
        writer: TelemetryWriter | None = None,
        *,
        interval: float = SEEN_INTERVAL_S,
    ) -> None:
        self.fleet = fleet
        self.store = store
        self.writer = writer
        self.interval = interval
        self._changes = fleet.feed.subscribe("printer-timeline", PrinterChanged, maxsize=1024)
        self._newest: dict[str, Row] = {}
        self._stopping = False
        self.done = asyncio.Event()  # the stop's rows are handed to the writer
        if writer is not None:
            writer.upstream.append(self.done)

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await self._start()
            # Asked to stop, the loop ends between two records: a record cut off halfway would leave a
            # stored row this recorder does not know of.
            await run_until_stopped(stop, self._loop(), on_stop=self._stop)
            await self._record_all(TimelineState.UNKNOWN)
        finally:
            self.done.set()

    def _stop(self) -> None:
        self._stopping = True
        self._changes.wake()

    async def _start(self) -> None:
        """Close the gap a crashed daemon left with `unknown` at its last confirmation."""
        newest = await self.store.call(self.store.sync.read, newest_rows)
        for printer, (row, seen) in newest.items():
            self._newest[printer] = row
            if row.state is not TimelineState.UNKNOWN:
                log.info("printer=%s timeline: unknown since %s (the daemon was not running)", printer, seen)
                await self._record(printer, TimelineState.UNKNOWN, seen)
        await self._sample()

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping:
            look_at = loop.time() + self.interval
            while not self._stopping and (left := look_at - loop.time()) > 0:
                for event in self._changes.take():
                    if event.printer in self.fleet.coordinators:
                        await self._note(event.printer, timeline_state(event.status))
                # Only the wait is timed: a record is never cut off by the timeout.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(left):
                        await self._changes.wait()
            # Also what no event told (a printer found offline at start) or a dropped event missed.
            await self._sample()
            await self.store.call(self.store.sync.transact, self._confirm)

    def _confirm(self, db: sqlite3.Connection) -> None:
        """On the store's thread: every printer's newest row still holds now."""
        confirm(db, [row.id for row in list(self._newest.values())], _now())

    async def _sample(self) -> None:
        for name, coordinator in self.fleet.coordinators.items():
            await self._note(name, timeline_state(coordinator.status))

    async def _note(self, printer: str, state: TimelineState) -> None:
        row = self._newest.get(printer)
        if row is None or row.state is not state:
            await self._record(printer, state, _now())

    async def _record_all(self, state: TimelineState) -> None:
        """At a stop: every printer in `state` from now on."""
        for name in self.fleet.coordinators:
            row = self._newest.get(name)
            if row is None or row.state is not state:
                await self._record(name, state, _now(), final=True)

    async def _record(self, printer: str, state: TimelineState, at: datetime, *, final: bool = False) -> None:
        row_id = await self.store.call(self.store.sync.transact, lambda db: append(db, printer, state, at))
        before = self._newest.get(printer)
        self._newest[printer] = Row(row_id, state, at)
        if self.writer is None:
            return
        coordinator = self.fleet.get(printer)
        fields: dict[str, float | str] = {"state": str(state), "previous": str(TimelineState.UNKNOWN)}
        if before is not None:
            fields["previous"] = str(before.state)
            fields["duration_s"] = max(0.0, (at - before.since).total_seconds())
        tags = {"printer": printer, "group": coordinator.printer.group if coordinator else ""}
        line = to_line(Point("printer_state", tags, fields, int(at.timestamp() * 1e9)))
        if final:
            self.writer.put_final([line])  # the writer's last flush takes it
        else:
            await self.writer.put(line)


def _now() -> datetime:
    return datetime.now(UTC)
