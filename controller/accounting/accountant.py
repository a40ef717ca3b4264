"""The accountant: measured energy, material, cost and CO2 of every print, from the event feed.

`run(stop)` in the daemon's TaskGroup. Plug and scale readings (SensorReadings) feed each plug's
running total (accounting/meter.py) and each scale's weight series. Job changes are read from the
durable job_events table past a stored cursor (JobChanged on the feed is the signal), so a daemon
restart misses none: a print's start, heat-up end, pauses, resumes, a tick every few minutes and its
end are marks, stored as they are taken and resolved once every device has reported past them (or
[accounting] settle_s has passed). When the end is resolved the print's figures are measured, priced
and stored as the job's account, with the next passport record, in one transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial

from controller.accounting import ledger, passport
from controller.accounting.figures import Mark, Phase, measure, profile
from controller.accounting.ledger import ACCOUNTING_CURSOR, Account
from controller.accounting.meter import PlugMeter, Series, Source
from controller.accounting.tariffs import EnergyMark, price_job
from controller.config import Config, PrinterConfig
from controller.core.events import EventFeed, JobChanged, SensorReadings
from controller.fleet.coordinator import Fleet
from controller.jobs import Job, JobState
from controller.store import AsyncStore
from controller.store.db import JobEvent
from controller.tasks import run_until_stopped

log = logging.getLogger(__name__)

# A heater within this many °C of its target counts as heated (the end of a print's heat-up).
HEATED_WITHIN_C = 3.0
# A mark every this many seconds of a running print: the profile a time-of-day tariff applies to.
TICK_S = 300.0
# How often the job events are read without a JobChanged to signal them (a missed signal: the feed
# drops the oldest events of a full subscription).
ROUND_S = 1.0
# A payload time this close to the receive time is the same moment told in whole seconds.
CLOCK_SLACK_S = 2.0
# How often the plugs' running totals are stored (a restart continues from the last stored total;
# the counter itself is cumulative, so nothing between is lost unless the plug also reset then).
SAVE_EVERY_S = 5.0


@dataclass
class OpenPrint:
    """A print being accounted: its printer, its marks so far and which still wait for readings."""

    job_id: int
    printer: str
    marks: list[Mark] = field(default_factory=list)
    pending: set[int] = field(default_factory=set)  # seqs of marks not yet resolved
    paused: bool = False
    heated: bool = False
    outcome: JobState | None = None
    job: Job | None = None

    def add(self, phase: Phase, at: datetime) -> Mark:
        mark = Mark(len(self.marks) + 1 if not self.marks else self.marks[-1].seq + 1, at, phase)
        self.marks.append(mark)
        self.pending.add(mark.seq)
        return mark


def _t(reading_time: datetime | None, received_ns: int) -> float:
    """When a sample was taken: the receive time, unless the payload's own time (whole seconds, as
    Tasmota sends it) says the message is older than that (queued by the broker while we were away)."""
    received = received_ns / 1e9
    if reading_time is None:
        return received
    stamped = reading_time.timestamp()
    return received if abs(received - stamped) < CLOCK_SLACK_S else stamped


class Accountant:
    """Turns readings and job changes into each print's measured figures (see the module docstring)."""

    def __init__(self, config: Config, fleet: Fleet, store: AsyncStore, feed: EventFeed) -> None:
        self.settings = config.accounting
        self.costs = config.costs
        self.fleet = fleet
        self.store = store
        self.printers: dict[str, PrinterConfig] = {p.name: p for p in config.printers}
        self.meters: dict[str, PlugMeter] = {}
        self.scales: dict[str, Series] = {p.scale: Series() for p in config.printers if p.scale}
        self._plugs = {plug for p in config.printers for plug in p.plugs}
        self._co2_sensor: str | None = getattr(config.costs, "co2_sensor", None)
        self.intensity: float | None = None  # the grid's gCO2/kWh as last read from co2_sensor
        self.open: dict[int, OpenPrint] = {}
        self._cursor = 0
        self._saved_at = 0.0
        self._next_job_read = 0.0
        wanted = frozenset({*self._plugs, *self.scales, *([self._co2_sensor] if self._co2_sensor else [])})
        self._sub = feed.subscribe_all(
            "accounting", (SensorReadings, JobChanged), maxsize=4096, sensors=wanted
        )  # a round per reading of every sensor cost the ingest an eighth of its pace (bench/ingest.py)

    async def run(self, stop: asyncio.Event) -> None:
        await self._load()
        await run_until_stopped(stop, self._loop())
        await self._round()
        await self._save(force=True)

    async def _load(self) -> None:
        sync = self.store.sync
        states = await self.store.call(sync.read, ledger.load_meters)
        self.meters = {plug: PlugMeter(plug, states.get(plug)) for plug in self._plugs}
        cursor = await self.store.call(sync.cursor, ACCOUNTING_CURSOR)
        if cursor is None:  # a new farm, or one from before accounting: history is not replayed
            cursor = await self.store.call(sync.last_event_id)
            await self.store.call(sync.set_cursor, ACCOUNTING_CURSOR, cursor)
        self._cursor = cursor
        for job_id, marks in (await self.store.call(sync.read, ledger.open_marks)).items():
            job = await self.store.call(sync.get_job, job_id)
            printer = job.printer or ""
            print_ = OpenPrint(job_id, printer, [m for m, _ in marks], job=job)
            print_.pending = {m.seq for m, resolved in marks if not resolved}
            print_.heated = any(m.phase is Phase.HEATED for m in print_.marks)
            print_.paused = job.state is JobState.PAUSED
            if any(m.phase is Phase.END for m in print_.marks):
                print_.outcome = job.state if job.state.finished else JobState.FAILED
            self.open[job_id] = print_
        if self.open:
            log.info("accounting: %d prints continue from before the restart", len(self.open))

    async def _loop(self) -> None:
        while True:
            await self._round()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(ROUND_S):
                    await self._sub.wait()

    async def _round(self) -> None:
        """Take the readings that came; read job_events only after a JobChanged or every ROUND_S: the
        readings of a busy broker wake this loop thousands of times a second (bench/ingest.py), and a
        store call each time cost the ingest a tenth of its pace."""
        changed = False
        for event in self._sub.take():
            if isinstance(event, SensorReadings):
                self.on_readings(event)
            else:
                changed = True
        now = time.time()
        if changed or now >= self._next_job_read:
            self._next_job_read = now + ROUND_S
            await self._job_events()
        self._watch_running(now)
        await self._resolve(now)
        await self._save()

    # -- readings ---------------------------------------------------------------------------------

    def on_readings(self, event: SensorReadings) -> None:
        sensor = event.sensor
        if sensor in self._plugs:
            meter = self.meters[sensor]
            for r in event.readings:
                t = _t(r.time, event.received_ns)
                power = r.fields.get("power_w")
                if power is not None:
                    meter.power(t, power)
                energy = r.fields.get("energy_kwh")
                if energy is not None:
                    meter.counter(t, energy)
        elif sensor in self.scales:
            for r in event.readings:
                weight = r.fields.get("weight_g")
                if weight is not None:
                    self.scales[sensor].add(_t(r.time, event.received_ns), weight)
        elif sensor == self._co2_sensor:
            for r in event.readings:
                value = r.fields.get("co2_g_per_kwh")
                if value is not None and value >= 0:
                    self.intensity = value

    # -- job changes ------------------------------------------------------------------------------

    async def _job_events(self) -> None:
        sync = self.store.sync
        while True:
            batch = await self.store.call(sync.events_after, self._cursor)
            for event_id, event, job in batch:
                added = self._apply(event, job)
                if added is not None:
                    await self.store.call(
                        sync.transact,
                        partial(ledger.add_marks, job_id=added[0], marks=added[1], resolved=False),
                    )
                self._cursor = event_id
            if batch:
                await self.store.call(sync.set_cursor, ACCOUNTING_CURSOR, self._cursor)
            if len(batch) < 500:
                return

    def _apply(self, event: JobEvent, job: Job) -> tuple[int, list[Mark]] | None:
        """The marks a job event adds to its print (and the print's job id)."""
        print_ = self.open.get(event.job_id)
        state = event.state
        added: list[Mark] = []
        if print_ is None or print_.outcome is not None:
            if state not in (JobState.PRINTING, JobState.PAUSED) and not state.finished:
                return None
            if state.finished and job.started_at is None:
                return None  # never printed: nothing was made or used
            if print_ is not None and print_.outcome is not None:
                return None  # ended already; its account is on its way
            printer = event.printer or job.printer or ""
            print_ = self.open[event.job_id] = OpenPrint(event.job_id, printer, job=job)
            added.append(print_.add(Phase.START, job.started_at or event.at))
        print_.job = job
        if state is JobState.PAUSED and not print_.paused:
            print_.paused = True
            added.append(print_.add(Phase.PAUSED, event.at))
        elif state is JobState.PRINTING and print_.paused:
            print_.paused = False
            added.append(print_.add(Phase.RESUMED, event.at))
        elif state.finished:
            print_.outcome = state
            end = max(job.finished_at or event.at, print_.marks[0].at)
            added.append(print_.add(Phase.END, end))
        return (event.job_id, added) if added else None

    def _watch_running(self, now: float) -> None:
        """Heat-up end and ticks of the prints still running (printer temperatures from the fleet)."""
        for print_ in self.open.values():
            if print_.outcome is not None:
                continue
            at = datetime.fromtimestamp(now, UTC)
            if not print_.heated and self._heated(print_.printer):
                print_.heated = True
                print_.add(Phase.HEATED, at)
            elif now - print_.marks[-1].at.timestamp() >= TICK_S:
                print_.add(Phase.TICK, at)

    def _heated(self, printer: str) -> bool:
        coordinator = self.fleet.get(printer)
        if coordinator is None:
            return False
        heaters = [t for t in coordinator.status.temperatures.values() if t.target]
        return bool(heaters) and all(
            t.actual is not None and t.target is not None and t.actual >= t.target - HEATED_WITHIN_C
            for t in heaters
        )

    # -- resolving marks and finishing prints -----------------------------------------------------

    async def _resolve(self, now: float) -> None:
        for print_ in list(self.open.values()):
            printer = self.printers.get(print_.printer)
            plugs = [self.meters[p] for p in printer.plugs] if printer else []
            scale = self.scales.get(printer.scale) if printer and printer.scale else None
            done: list[Mark] = []
            for i, mark in enumerate(print_.marks):
                if mark.seq not in print_.pending:
                    continue
                t = mark.at.timestamp()
                devices = [m.series for m in plugs] + ([scale] if scale is not None else [])
                waited = now - t >= self.settings.settle_s
                if not waited and not all(s.has_after(t) for s in devices):
                    continue
                print_.marks[i] = mark = self._read(mark, plugs, scale)
                print_.pending.discard(mark.seq)
                done.append(mark)
            if done:
                # With the plugs' totals they were read from: after a restart the totals continue
                # from these, so a mark and the readings after it are counted on one scale.
                states = {m.sensor: m.state() for m in plugs}
                write = partial(ledger.add_read_marks, job_id=print_.job_id, marks=done, states=states)
                await self.store.call(self.store.sync.transact, write)
            if print_.outcome is not None and not print_.pending:
                await self._finish(print_, plugs)

    def _read(self, mark: Mark, plugs: list[PlugMeter], scale: Series | None) -> Mark:
        t = mark.at.timestamp()
        values = [v for v in (m.series.at(t) for m in plugs) if v is not None]
        energy = sum(v.value for v in values) if values else None
        gap = max((v.gap_s for v in values), default=None)
        weight = scale.at(t) if scale is not None else None
        return replace(
            mark,
            energy_kwh=energy,
            gap_s=gap,
            weight_g=weight.value if weight is not None else None,
            co2_g_per_kwh=self.intensity,
        )

    async def _finish(self, print_: OpenPrint, plugs: list[PlugMeter]) -> None:
        job = print_.job
        if job is None:
            job = await self.store.call(self.store.sync.get_job, print_.job_id)
        assert print_.outcome is not None
        figures = measure(
            print_.marks,
            outcome=print_.outcome,
            estimate_g=job.filament_g,
            progress=100.0 if print_.outcome is JobState.COMPLETED else job.progress,
            drift_pct=self.settings.drift_pct,
        )
        grams = figures.filament_measured_g
        if grams is None and job.filament_g is not None:
            share = 1.0 if print_.outcome is JobState.COMPLETED else (job.progress or 0.0) / 100
            grams = job.filament_g * min(1.0, max(0.0, share))
        marks = [EnergyMark(at, kwh, co2) for at, kwh, co2 in profile(print_.marks)]
        if len(marks) < 2:
            marks = []
        priced = price_job(marks or None, grams, job.requirements.material, figures.print_s, self.costs)
        sources = {m.source for m in plugs if m.source is not None}
        source = Source.COUNTER if sources == {Source.COUNTER} else next(iter(sources), None)
        now = datetime.now(UTC)
        printer = self.printers.get(print_.printer)
        account = ledger.account_from(job.id, figures, source, now, priced)

        def store(db: sqlite3.Connection) -> Account:
            stored = ledger.write_account(db, account)
            group = printer.group if printer is not None else None
            passport.append(db, job.id, now, group=group, currency=self.costs.currency)
            return stored

        stored = await self.store.call(self.store.sync.transact, store)
        del self.open[print_.job_id]
        self._log(job, stored)

    def _log(self, job: Job, account: Account) -> None:
        def fmt(value: float | None, unit: str, digits: int = 3) -> str:
            return "unmeasured" if value is None else f"{value:.{digits}f} {unit}"

        log.info(
            "job=%d %s: energy %s (heat-up %s, gap %s/%s s), filament %s (estimate %s)%s, cost %s, CO2 %s",
            job.id,
            job.state,
            fmt(account.energy_kwh, "kWh"),
            fmt(account.heatup_kwh, "kWh"),
            fmt(account.gap_start_s, "", 1).strip(),
            fmt(account.gap_end_s, "", 1).strip(),
            fmt(account.filament_measured_g, "g", 1),
            fmt(account.filament_est_g, "g", 1),
            " DRIFT" if account.material_drift else "",
            fmt(account.cost, self.costs.currency, 2),
            fmt(account.co2_g, "g", 1),
        )
        if account.material_drift:
            log.warning(
                "job=%d measured %.1f g of filament, the slicer said %.1f g (over %.0f%% apart)",
                job.id,
                account.filament_measured_g or 0.0,
                account.filament_est_g or 0.0,
                self.settings.drift_pct,
            )

    async def _save(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._saved_at < SAVE_EVERY_S:
            return
        self._saved_at = now
        dirty = {m.sensor: m.state() for m in self.meters.values() if m.dirty}
        if not dirty:
            return
        for m in self.meters.values():
            m.dirty = False
        await self.store.call(self.store.sync.transact, partial(ledger.save_meters, states=dirty))
