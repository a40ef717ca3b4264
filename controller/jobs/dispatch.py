"""Dispatch: scheduling rounds that start queued jobs on free printers, and the uploads.

Crash safety rests on three rules:
1. a job is recorded `dispatching` on its printer, with the bed as used, in one transaction before any
   byte is uploaded;
2. the file name on the printer carries the job id (`farmctl-<id>-….gcode`);
3. a `dispatching` job whose upload is not running in this process is resolved by asking its printer
   (controller.jobs.tracking), never by uploading again blindly.
So after a SIGKILL anywhere, the restarted daemon finds each job either never started (back to the
queue), printing (tracked on), or ended (recorded), and no print starts twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from controller.config import JobsConfig
from controller.core.events import JobChanged, PrinterChanged
from controller.fleet.coordinator import Fleet, PrinterCoordinator
from controller.fleet.state import PrinterState
from controller.jobs import ACTIVE_STATES, IllegalTransition, Job, JobState, job_id_of
from controller.jobs.files import FileStore
from controller.jobs.scheduler import PrinterSlot, schedule
from controller.jobs.tracking import Tracker
from controller.jobs.waiting import WaitingBoard, waiting_reasons
from controller.store import AsyncStore
from controller.tasks import run_until_stopped
from devices.errors import DeviceError, DeviceUnavailable, DeviceUnreachable

log = logging.getLogger(__name__)


class Dispatcher:
    """Runs scheduling rounds: each follows every active job (the Tracker), then starts what can start.
    One per daemon, in its TaskGroup."""

    def __init__(
        self,
        store: AsyncStore,
        files: FileStore,
        fleet: Fleet,
        settings: JobsConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        waiting: WaitingBoard | None = None,
    ) -> None:
        self.store = store
        self.files = files
        self.fleet = fleet
        self.settings = settings
        self._clock = clock
        self.tracker = Tracker(store, list(fleet.coordinators), settings, clock=clock)
        # Printer changes (with the push events a job may end by) and job changes: each is a reason
        # for a round. DROP_OLDEST: a round reads every printer and job afresh anyway, and the
        # tracking rules never rest on an event alone (a missed end is read from the file history).
        self._changes = fleet.feed.subscribe_all("dispatcher", (PrinterChanged, JobChanged), maxsize=4096)
        self.waiting = waiting or WaitingBoard()
        self._uploading: dict[str, int] = {}  # printer → job whose upload runs in this process
        self._last_start: float | None = None
        self._owner_served: dict[str, float] = {}

    def checkpoint(self, name: str) -> None:
        """A named point of a dispatch: before_upload, after_upload, after_start_recorded. Does nothing;
        the crash tests stop the process at one (tests/crashing_daemon.py)."""

    def _take_changes(self) -> None:
        for change in self._changes.take():
            # A job change, or a printer change without an event, is only a reason for a round.
            if isinstance(change, PrinterChanged) and change.event is not None:
                self.tracker.note(change.printer, change.event)

    async def run(self, stop: asyncio.Event, tg: asyncio.TaskGroup) -> None:
        """Rounds until `stop`; uploads run as their own tasks in `tg` so tracking never waits on one."""

        async def loop() -> None:
            while True:
                self._take_changes()
                await self.round(stop, tg)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.settings.dispatch_interval):
                        await self._changes.wait()

        await run_until_stopped(stop, loop())

    async def round(self, stop: asyncio.Event, tg: asyncio.TaskGroup) -> None:
        """Follow every active job, then start what can start."""
        # Taken before the jobs are read: an upload that ends in between has already recorded its
        # outcome, and only this task starts new ones.
        uploading = set(self._uploading)
        active = await self.store.call(self.store.sync.list_jobs, ACTIVE_STATES)
        on_printer = {job.printer: job for job in active if job.printer}
        for name, coordinator in self.fleet.coordinators.items():
            if name not in uploading:
                await self.tracker.check(coordinator, on_printer.get(name))
        await self._start_jobs(stop, tg, on_printer)

    async def _start_jobs(
        self, stop: asyncio.Event, tg: asyncio.TaskGroup, on_printer: dict[str, Job]
    ) -> None:
        slots = []
        for name, coordinator in self.fleet.coordinators.items():
            state = coordinator.status.state
            busy = name in on_printer or name in self._uploading
            if busy or (state is PrinterState.IDLE and not coordinator.settled):
                state = PrinterState.PRINTING
            elif not coordinator.bed_clear and state is PrinterState.IDLE:
                state = PrinterState.AWAITING_CLEAR  # an offline or failed printer says so instead
            job = on_printer.get(name)
            job_id = job.id if job else self._uploading.get(name, job_id_of(coordinator.status.file))
            loaded = self.fleet.materials.of(name)
            reason = self.fleet.maintenance.reason(name)  # in maintenance: never free, and it says why
            slot = PrinterSlot.from_config(
                coordinator.printer, state, job_id, materials=loaded, maintenance=reason
            )
            slots.append(slot)
        queued = await self.store.call(self.store.sync.list_jobs, [JobState.QUEUED])
        now = self._clock()
        plan = schedule(
            queued,
            slots,
            now=now,
            last_start=self._last_start,
            min_gap_s=self.settings.min_start_gap,
            owner_last_served=self._owner_served,
        )
        by_id = {job.id: job for job in queued}
        if plan:
            await self.fleet.beds.written()  # a bed change still on its way never lands after a dispatch
        for assignment in plan:
            job, coordinator = by_id[assignment.job_id], self.fleet.coordinators[assignment.printer]
            name = coordinator.printer.name
            try:
                # Dispatching, and the bed used, in one transaction: whatever happens next, only an
                # operator (or proof that nothing printed) makes this bed clear again.
                job = await self.store.call(self.store.sync.start_dispatch, job.id, name)
            except IllegalTransition:
                continue  # cancelled since the list was read
            coordinator.mark_bed_used(recorded=True)
            self._last_start = now
            self._owner_served[job.owner] = now
            self._uploading[name] = job.id
            log.info("job=%d dispatching to printer=%s file=%s", job.id, name, job.file_name)
            tg.create_task(run_until_stopped(stop, self._upload(coordinator, job)), name=f"upload:{job.id}")
        self.waiting.update(
            waiting_reasons(
                queued,
                slots,
                plan,
                now=now,
                last_start=self._last_start,
                min_gap_s=self.settings.min_start_gap,
            )
        )

    async def _upload(self, coordinator: PrinterCoordinator, job: Job) -> None:
        name = coordinator.printer.name
        requeue = self.tracker.requeue
        try:
            self.checkpoint("before_upload")
            result = await coordinator.driver.upload(
                self.files.path_of(job.file_sha256), job.remote_name, select=True, start=True
            )
            self.checkpoint("after_upload")
        except DeviceUnreachable as exc:  # no connection was made: certainly not started
            await requeue(coordinator, job, f"cannot reach {name}: {exc}", bed_was_clear=True)
            return
        except DeviceUnavailable as exc:
            # Did it start? Only the printer knows: the next round asks it (Tracker.check).
            log.warning("job=%d printer=%s upload interrupted, will ask the printer: %s", job.id, name, exc)
            return
        except DeviceError as exc:
            await requeue(coordinator, job, f"upload refused by {name}: {exc}", bed_was_clear=True)
            return
        finally:
            self._uploading.pop(name, None)
            self._changes.wake()
        if not result.started:
            await requeue(coordinator, job, f"{name} did not start the print (it was busy)")
            return
        try:
            await self.store.call(self.store.sync.transition, job.id, JobState.PRINTING, printer=name)
        except IllegalTransition:  # cancelled while uploading
            log.info("job=%d was cancelled during its upload: stopping it on printer=%s", job.id, name)
            await coordinator.stop_print(job.remote_name)
            return
        self.checkpoint("after_start_recorded")
        log.info("job=%d printing on printer=%s", job.id, name)
