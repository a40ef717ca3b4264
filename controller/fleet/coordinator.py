"""Fleet monitor: one coordinator per printer; push first, REST polling as fallback and reconciliation.

Each coordinator keeps its last good data, logs once when its printer goes down and once when it
recovers, and backs off (growing, capped) while the host is unreachable. Coordinators share nothing
but an HTTP session without a connection cap, so one slow or dead host never delays another.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime

import aiohttp

from controller.config import ControllerConfig, PrinterConfig
from controller.core.availability import Availability, Backoff
from controller.core.errors import NotFound
from controller.core.events import EventFeed, PrinterChanged
from controller.fleet.drivers import DriverFactory, octoprint_driver
from controller.fleet.freshness import EVENT_HOLD_S as EVENT_HOLD_S  # where it was first
from controller.fleet.freshness import RUNNING, Freshness
from controller.fleet.maintenance import Maintenance
from controller.fleet.materials import LoadedMaterials
from controller.fleet.progress import ProgressPublisher, figures
from controller.fleet.state import PrinterState, PrinterStatus, farm_state
from controller.fleet.state import state_of_event as state_of_event  # where it was first
from controller.jobs import job_id_of
from controller.jobs.beds import Beds
from controller.tasks import run_until_stopped
from devices.errors import DeviceAuthError, DeviceBusy, DeviceError
from devices.printer import EventKind, HostSnapshot, PrinterEvent

log = logging.getLogger(__name__)


# OctoPrint accepts a cancel and then takes a while (the moves in its buffer, its cancel script) while its
# frames still say the print runs; a second cancel meanwhile counts the print failed twice in the file's
# history. So a print is asked to stop once, and again only if it still runs this long after.
CANCEL_PATIENCE_S = 30.0


class PrinterCoordinator:
    """Keeps one printer's status current. `await run(stop)` until `stop` is set."""

    def __init__(
        self,
        printer: PrinterConfig,
        settings: ControllerConfig,
        session: aiohttp.ClientSession,
        feed: EventFeed,
        *,
        bed_clear: bool = True,
        beds: Beds | None = None,
        driver_factory: DriverFactory = octoprint_driver,
    ) -> None:
        self.printer = printer
        self.settings = settings
        self.driver = driver_factory(printer, settings, session)
        self.status = PrinterStatus(name=printer.name)
        # The fleet's beds (the daemon's are seeded from the store); alone, a bed of its own.
        self.beds = beds if beds is not None else Beds({printer.name: bed_clear})
        self._feed = feed
        self._progress = ProgressPublisher(feed, lambda: self.status)
        self._availability = Availability(
            log,
            Backoff(settings.poll_interval, settings.offline_backoff_max),
            down_message=f"printer={printer.name} offline: %s",
            up_message=f"printer={printer.name} recovered after %.0fs: %s",
        )
        self._fresh = Freshness()  # which frames and answers are older than the news (freshness.py)
        self._cancel_sent: tuple[str, float] | None = None  # (file, when) of the last cancel accepted
        # Out of service (set by the Fleet from its Maintenance), or leaving the config once its job
        # ends (controller/config/reload.py): either way it takes no new job.
        self.out_of_service = False
        self.retiring = False

    async def run(self, stop: asyncio.Event) -> None:
        """Poll, follow push, back off while down; returns when `stop` is set."""
        try:
            await run_until_stopped(stop, self._loop())
        finally:
            self._progress.close()
            await self.driver.close()

    async def _loop(self) -> None:
        push_failed_at: float | None = None
        while True:
            try:
                await self.poll()
            except DeviceError as exc:
                await asyncio.sleep(self._went_down(exc))
                continue
            if push_failed_at is not None and time.monotonic() - push_failed_at < self.settings.poll_interval:
                # Push keeps failing while REST works (a proxy without websockets, a login problem):
                # stay on polling at poll_interval instead of spinning.
                await asyncio.sleep(self.settings.poll_interval)
                continue
            try:
                await self._follow_push()
            except DeviceError as exc:
                # Poll at once: a dropped socket is often the first sign of a dead host.
                log.debug("printer=%s push stream down, polling: %s", self.printer.name, exc)
                push_failed_at = time.monotonic()

    async def poll(self) -> None:
        """One REST reconciliation; raises DeviceError when the host cannot be reached."""
        asked_at = time.monotonic()
        self._apply(await self.driver.snapshot(), asked_at=asked_at)

    async def _follow_push(self) -> None:
        idle = max(self.settings.reconcile_interval, 10.0)
        next_reconcile = time.monotonic() + self.settings.reconcile_interval
        async with self.driver.push(idle_timeout=idle) as items:
            async for item in items:
                if isinstance(item, HostSnapshot):
                    self._apply(item, pushed=True)
                else:
                    self.on_event(item)
                if time.monotonic() >= next_reconcile:
                    await self.poll()
                    next_reconcile = time.monotonic() + self.settings.reconcile_interval

    async def stop_print(self, remote_name: str) -> None:
        """Cancel the print of `remote_name` if this printer prints it (or may be about to start it).

        Never cancels a print of another file; an unreachable printer is stopped when it answers.
        """
        status = self.status
        if status.file is not None and status.file != remote_name:
            return  # busy with something else: never cancel a print that is not this job
        sent = self._cancel_sent
        if sent is not None and sent[0] == remote_name and time.monotonic() - sent[1] < CANCEL_PATIENCE_S:
            return  # asked already: the host is cancelling
        # Marked before the request: the queue's cancel and the tracker's round often ask at once.
        self._cancel_sent = (remote_name, time.monotonic())
        accepted = False
        try:
            await self.driver.cancel()
            accepted = True
        except DeviceBusy:
            pass  # not printing (yet): the tracker stops it if the upload still starts it
        except DeviceError as exc:
            job = job_id_of(remote_name)
            log.warning("printer=%s job=%s cannot stop the print now: %s", self.printer.name, job, exc)
        finally:
            if not accepted:
                self._cancel_sent = None  # the next ask sends it again

    @property
    def bed_clear(self) -> bool:
        """Whether the bed is known to be empty."""
        return self.beds.is_clear(self.printer.name)

    def mark_bed_used(self, *, recorded: bool = False) -> None:
        """A print is about to start or has run: nothing starts here until the bed is cleared.
        `recorded`: the store already holds it (written with the job's dispatch)."""
        if recorded:
            self.beds.dispatched(self.printer.name)
        else:
            self.beds.mark_used(self.printer.name)
        if self.status.state is PrinterState.IDLE:
            self._set(replace(self.status, state=PrinterState.AWAITING_CLEAR))

    def clear(self) -> bool:
        """The operator confirmed the bed is clear; False while printing or when it already was clear."""
        if self.bed_clear or self.status.state in RUNNING:
            return False
        log.info("printer=%s bed cleared", self.printer.name)
        self.beds.clear(self.printer.name)
        if self.status.state is PrinterState.AWAITING_CLEAR:
            self._set(replace(self.status, state=PrinterState.IDLE))
        return True

    def on_event(self, event: PrinterEvent) -> None:
        """Apply a pushed event's state at once, then publish it (the dispatcher ends jobs by it)."""
        state = state_of_event(event)
        status = self.status
        if event.kind is EventKind.PRINT_STARTED:
            self._cancel_sent = None  # a new print: a cancel now is a new one
            self._fresh.print_started()  # and a frame showing it printing is news
        if state is PrinterState.OFFLINE and status.state is PrinterState.ERROR:
            state = None  # OctoPrint disconnects after a firmware error: the error is the news
        if state is not None and not self._availability.is_down:
            state = self._bed_rule(state)
            if state is not status.state:
                self._fresh.changed_by_event(status.state)
            file = event.file_name or status.file
            progress = status.progress
            if event.kind is EventKind.PRINT_STARTED:
                progress = 0.0
            elif event.kind is EventKind.PRINT_DONE:
                progress = 100.0
            error = (event.error or status.error or "error") if state is PrinterState.ERROR else None
            new = replace(status, state=state, file=file, progress=progress, error=error)
            if new.state is not status.state:
                log.info(
                    "printer=%s state=%s was=%s (event %s)",
                    self.printer.name,
                    state,
                    status.state,
                    event.kind,
                )
            self._fresh.note_end(status, new)
            self.status = new
        self._notify(event)

    def _bed_rule(self, state: PrinterState) -> PrinterState:
        """The state as the farm shows it, marking the bed used when a print runs."""
        if state in RUNNING:
            self.beds.mark_used(self.printer.name)  # any print leaves a part (or a mess) behind, ours or not
        elif state is PrinterState.IDLE and not self.bed_clear:
            return PrinterState.AWAITING_CLEAR  # only an operator clears a bed
        return state

    @property
    def settled(self) -> bool:
        """False for a moment after an event changed the state, until the host's own frames agree.

        OctoPrint sends PrintDone or PrintCancelled before it has finished or cancelled and accepts a
        new print: a printer shown idle by an event takes no job until then.
        """
        # Leaving the config: never settled for a new job. (Maintenance is the scheduler's: a slot in
        # maintenance is never free, and its jobs' waiting reasons say why.)
        return not self.retiring and self._fresh.settled

    def _apply(self, snapshot: HostSnapshot, *, pushed: bool = False, asked_at: float | None = None) -> None:
        """A pushed frame, or a REST answer to a question asked at `asked_at` (None: just now)."""
        state = farm_state(snapshot.state)
        fresh = self._fresh
        was_unsettled = fresh.unsettled
        if pushed:
            stale = not self._availability.is_down and fresh.stale_frame(state)
        else:
            stale = not self._availability.is_down and asked_at is not None and fresh.stale_answer(asked_at)
        if stale or fresh.ended_before(state, snapshot.file_name):
            if snapshot.temperatures:
                self._set(replace(self.status, temperatures=snapshot.temperatures))
            return
        state = self._bed_rule(state)
        new = PrinterStatus(
            name=self.printer.name,
            state=state,
            detail=snapshot.state_text,
            file=snapshot.file_name,
            progress=snapshot.progress,
            temperatures=snapshot.temperatures or self.status.temperatures,
            error=snapshot.error if state is PrinterState.ERROR else None,
            last_seen=datetime.now(UTC),
        )
        if self._availability.is_down:
            self._availability.up(state)
        elif new.state is not self.status.state:
            log.info(
                "printer=%s state=%s was=%s (%s)", self.printer.name, state, self.status.state, new.detail
            )
        if not pushed:
            fresh.answered()  # the host's word: settled
            if new.state is not self.status.state:
                fresh.changed_by_answer(self.status.state)
        if was_unsettled and new.state is self.status.state:
            self.status = new
            self._notify(None)  # settled: the dispatcher may use this printer now
            return
        self._set(new)

    def _went_down(self, exc: DeviceError) -> float:
        """Offline (logged once; again when the host starts refusing our key); the delay to retry."""
        delay = self._availability.down(exc, retell=isinstance(exc, DeviceAuthError))
        # Keep the last good temperatures and file for the operator; the state says offline.
        self._set(replace(self.status, state=PrinterState.OFFLINE, detail=str(exc)))
        return delay

    def _set(self, status: PrinterStatus) -> None:
        old, self.status = self.status, status
        self._fresh.note_end(old, status)
        if status.state is not old.state:
            self._notify(None)
        elif figures(status) != figures(old):
            self._progress.changed()  # the live page's news only: no dispatch round for it

    def _notify(self, event: PrinterEvent | None) -> None:
        self._progress.covered()
        self._feed.publish_nowait(PrinterChanged(self.status, event))


class Fleet:
    """Every printer's coordinator; the daemon runs each `run(stop)` in its TaskGroup."""

    def __init__(
        self,
        printers: list[PrinterConfig],
        settings: ControllerConfig,
        session: aiohttp.ClientSession,
        beds: Beds | Mapping[str, bool] | None = None,
        feed: EventFeed | None = None,
        driver_factory: DriverFactory = octoprint_driver,
        materials: LoadedMaterials | None = None,
        maintenance: Maintenance | None = None,
    ) -> None:
        self.feed = feed or EventFeed()
        self._settings, self._session, self._driver_factory = settings, session, driver_factory
        self.maintenance = maintenance or Maintenance(p.name for p in printers)
        # What is loaded on each printer now (the daemon's from the store); else the config's.
        self.materials = LoadedMaterials.from_config(printers) if materials is None else materials
        if not isinstance(beds, Beds):  # a plain map (or every bed clear) kept in memory only
            beds = Beds({p.name: True if beds is None else beds.get(p.name, False) for p in printers})
        self.beds = beds
        self.coordinators = {
            p.name: PrinterCoordinator(
                p,
                settings,
                session,
                self.feed,
                beds=beds,
                driver_factory=driver_factory,
            )
            for p in printers
        }
        for name, coordinator in self.coordinators.items():
            coordinator.out_of_service = self.maintenance.of(name) is not None

    def get(self, name: str) -> PrinterCoordinator | None:
        return self.coordinators.get(name)

    async def begin_maintenance(self, name: str, reason: str, *, by: str | None) -> PrinterCoordinator:
        """Take a printer out of service (a print running on it goes on); see Maintenance.begin."""
        coordinator = self._known(name)
        await self.maintenance.begin(name, reason, by=by)
        coordinator.out_of_service = True
        self.feed.publish_nowait(PrinterChanged(coordinator.status))  # the API's watchers see it
        return coordinator

    async def end_maintenance(self, name: str, *, by: str | None) -> PrinterCoordinator:
        """Back in service; the dispatcher takes the change as a reason for a round."""
        coordinator = self._known(name)
        await self.maintenance.end(name, by=by)
        coordinator.out_of_service = False
        self.feed.publish_nowait(PrinterChanged(coordinator.status))
        return coordinator

    def _known(self, name: str) -> PrinterCoordinator:
        coordinator = self.coordinators.get(name)
        if coordinator is None:
            raise NotFound(f"no printer named {name!r}")
        return coordinator

    def add(self, printer: PrinterConfig) -> PrinterCoordinator:
        """A coordinator for a printer the config gained (or changed); the caller runs it.

        The map is replaced, never changed in place: loops that await while they walk the old one
        (the dispatcher's round, the timeline) finish on it and see the new one next time.
        """
        coordinator = PrinterCoordinator(
            printer,
            self._settings,
            self._session,
            self.feed,
            beds=self.beds,
            driver_factory=self._driver_factory,
        )
        self.maintenance.add_printer(printer.name)
        coordinator.out_of_service = self.maintenance.of(printer.name) is not None
        self.materials.add_printer(printer.name, printer.materials)
        self.coordinators = {**self.coordinators, printer.name: coordinator}
        return coordinator

    def remove(self, name: str) -> PrinterCoordinator | None:
        """Forget a printer the config lost; the caller stops its coordinator."""
        coordinator = self.coordinators.get(name)
        self.coordinators = {k: v for k, v in self.coordinators.items() if k != name}
        return coordinator
