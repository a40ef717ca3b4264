"""Dispatch and tracking: queued jobs onto free printers, and each print's outcome back into the store.

Crash safety rests on three rules:
1. a job is recorded `dispatching` on its printer (and the bed as used) before any byte is uploaded;
2. the file name on the printer carries the job id (`farmctl-<id>-….gcode`);
3. a `dispatching` job whose upload is not running in this process is resolved by asking its printer
   (what it prints, and its own per-file print history), never by uploading again blindly.
So after a SIGKILL anywhere, the restarted daemon finds each job either never started (back to the
queue), printing (tracked on), or ended (recorded), and no print starts twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections import deque
from collections.abc import Callable

from controller.config import JobsConfig
from controller.core.events import JobChanged, PrinterChanged
from controller.files import FileStore
from controller.fleet import Fleet, PrinterCoordinator
from controller.jobs import ACTIVE_STATES, IllegalTransition, Job, JobState, job_id_of
from controller.printers import PrinterState
from controller.scheduler import PrinterSlot, schedule
from controller.store import AsyncStore, NotFound
from controller.tasks import run_until_stopped
from controller.waiting import WaitingBoard, waiting_reasons
from devices.errors import DeviceError, DeviceUnavailable, DeviceUnreachable
from devices.octoprint import EventKind, PrinterEvent, RemoteFile

log = logging.getLogger(__name__)

# Test hook: the SIGKILL tests name a point of dispatch here and the daemon kills itself there.
CRASHPOINT_ENV = "FARMCTL_CRASHPOINT"
# How long a printer may look idle after our print without a PrintDone/PrintFailed event arriving
# before the outcome is read from its file history instead (push down, or the daemon restarted).
EVENT_SETTLE_S = 3.0
_TERMINAL = {EventKind.PRINT_DONE, EventKind.PRINT_FAILED, EventKind.PRINT_CANCELLED}
_TRACKED = _TERMINAL | {EventKind.PRINT_PAUSED, EventKind.PRINT_RESUMED}


def _crashpoint(name: str) -> None:
    if os.environ.get(CRASHPOINT_ENV) == name:
        log.warning("crash point %s reached: killing the daemon (test hook)", name)
        os.kill(os.getpid(), signal.SIGKILL)


class Dispatcher:
    """Runs scheduling rounds and follows every active job. One per daemon, in its TaskGroup."""

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
        # Printer changes (with the push events a job may end by) and job changes: each is a reason
        # for a round. DROP_OLDEST: a round reads every printer and job afresh anyway, and the
        # tracking rules never rest on an event alone (a missed end is read from the file history).
        self._changes = fleet.feed.subscribe_all("dispatcher", (PrinterChanged, JobChanged), maxsize=4096)
        self.waiting = waiting or WaitingBoard()
        self._events: dict[str, deque[PrinterEvent]] = {n: deque(maxlen=32) for n in fleet.coordinators}
        self._uploading: dict[str, int] = {}  # printer → job whose upload runs in this process
        self._beds: dict[str, bool] = {n: c.bed_clear for n, c in fleet.coordinators.items()}
        self._offline_since: dict[int, float] = {}
        self._idle_since: dict[int, float] = {}
        self._noted_foreign: set[tuple[str, str]] = set()
        self._last_start: float | None = None
        self._owner_served: dict[str, float] = {}

    def _take_changes(self) -> None:
        for change in self._changes.take():
            if not isinstance(change, PrinterChanged) or change.event is None:
                continue  # a job change is only a reason for a round
            if change.event.kind in _TRACKED and change.printer in self._events:
                self._events[change.printer].append(change.event)

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
        """Persist bed changes, follow every active job, then start what can start."""
        await self._sync_beds()
        # Taken before the jobs are read: an upload that ends in between has already recorded its
        # outcome, and only this task starts new ones.
        uploading = set(self._uploading)
        active = await self.store.call(self.store.sync.list_jobs, ACTIVE_STATES)
        on_printer = {job.printer: job for job in active if job.printer}
        for name, coordinator in self.fleet.coordinators.items():
            if name in uploading:
                continue
            job = on_printer.get(name)
            events = list(self._events[name])
            self._events[name].clear()
            try:
                if job is None:
                    await self._check_foreign(coordinator)
                elif job.state is JobState.DISPATCHING:
                    await self._resolve_dispatch(coordinator, job)
                else:
                    await self._follow(coordinator, job, events)
            except DeviceError as exc:  # the printer dropped out mid-check; the next round retries
                log.debug("printer=%s check deferred: %s", name, exc)
            except IllegalTransition as exc:  # changed meanwhile (a cancel through the API)
                log.debug("printer=%s job=%s changed during the round: %s", name, job and job.id, exc)
        await self._start_jobs(stop, tg, on_printer)

    # --- starting jobs -------------------------------------------------------------------------------

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
            slots.append(PrinterSlot.from_config(coordinator.printer, state, job_id))
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
        for assignment in plan:
            job, coordinator = by_id[assignment.job_id], self.fleet.coordinators[assignment.printer]
            try:
                job = await self.store.call(
                    self.store.sync.transition, job.id, JobState.DISPATCHING, printer=coordinator.printer.name
                )
            except IllegalTransition:
                continue  # cancelled since the list was read
            # Used from now on: whatever happens next, only an operator (or proof that nothing
            # printed) makes this bed clear again.
            coordinator.mark_bed_used()
            await self._persist_bed(coordinator.printer.name, clear=False)
            self._last_start = now
            self._owner_served[job.owner] = now
            self._uploading[coordinator.printer.name] = job.id
            log.info(
                "job=%d dispatching to printer=%s file=%s", job.id, coordinator.printer.name, job.file_name
            )
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
        try:
            _crashpoint("before_upload")
            result = await coordinator.driver.upload(
                self.files.path_of(job.file_sha256), job.remote_name, select=True, start=True
            )
            _crashpoint("after_upload")
        except DeviceUnreachable as exc:  # no connection was made: certainly not started
            await self._requeue(coordinator, job, f"cannot reach {name}: {exc}", bed_was_clear=True)
            return
        except DeviceUnavailable as exc:
            # Did it start? Only the printer knows: the next round asks it (see _resolve_dispatch).
            log.warning("job=%d printer=%s upload interrupted, will ask the printer: %s", job.id, name, exc)
            return
        except DeviceError as exc:
            await self._requeue(coordinator, job, f"upload refused by {name}: {exc}", bed_was_clear=True)
            return
        finally:
            self._uploading.pop(name, None)
            self._changes.wake()
        if not result.started:
            await self._requeue(coordinator, job, f"{name} did not start the print (it was busy)")
            return
        try:
            await self.store.call(self.store.sync.transition, job.id, JobState.PRINTING, printer=name)
        except IllegalTransition:  # cancelled while uploading
            log.info("job=%d was cancelled during its upload: stopping it on printer=%s", job.id, name)
            await coordinator.stop_print(job.remote_name)
            return
        _crashpoint("after_start_recorded")
        log.info("job=%d printing on printer=%s", job.id, name)

    async def _requeue(
        self, coordinator: PrinterCoordinator, job: Job, reason: str, *, bed_was_clear: bool = False
    ) -> None:
        try:
            await self.store.call(self.store.sync.transition, job.id, JobState.QUEUED, detail=reason)
        except IllegalTransition:
            return  # cancelled meanwhile
        log.warning("job=%d back in the queue: %s", job.id, reason)
        # Nothing printed: the bed is as clear as it was when this printer was chosen.
        if bed_was_clear and coordinator.clear():
            await self._persist_bed(coordinator.printer.name, clear=True)

    # --- following active jobs -----------------------------------------------------------------------

    async def _resolve_dispatch(self, coordinator: PrinterCoordinator, job: Job) -> None:
        """A `dispatching` job with no upload running here: ask the printer what became of it."""
        if not await self._reachable(coordinator, job):
            return
        await coordinator.poll()  # fresh: the last status may predate the upload
        status = coordinator.status
        if status.state in (PrinterState.PRINTING, PrinterState.PAUSED):
            if status.file == job.remote_name:
                log.info("job=%d found printing on printer=%s", job.id, coordinator.printer.name)
                await self._move(job, JobState.PRINTING, coordinator)
                if status.state is PrinterState.PAUSED:
                    await self._move(job, JobState.PAUSED, coordinator)
            else:
                await self._requeue(
                    coordinator, job, f"{coordinator.printer.name} is busy with {status.file}"
                )
            return
        if not await self._ended_by_history(coordinator, job, "printed while farmctl was not watching"):
            await self._requeue(coordinator, job, "the upload did not start the print")

    async def _follow(self, coordinator: PrinterCoordinator, job: Job, events: list[PrinterEvent]) -> None:
        """A printing or paused job: events first, then the printer's state."""
        for event in events:
            if event.file_name is not None and job_id_of(event.file_name) != job.id:
                continue
            if event.kind is EventKind.PRINT_DONE:
                await self._finish(coordinator, job, JobState.COMPLETED, None)
                return
            if event.kind is EventKind.PRINT_CANCELLED or (
                event.kind is EventKind.PRINT_FAILED and event.reason == "cancelled"
            ):
                await self._finish(coordinator, job, JobState.CANCELLED, "cancelled on the printer")
                return
            if event.kind is EventKind.PRINT_FAILED:
                await self._fail(
                    coordinator, job, event.error or "the printer reported the print failed", "error"
                )
                return
            if event.kind is EventKind.PRINT_PAUSED and job.state is JobState.PRINTING:
                job = await self._move(job, JobState.PAUSED, coordinator)
            elif event.kind is EventKind.PRINT_RESUMED and job.state is JobState.PAUSED:
                job = await self._move(job, JobState.PRINTING, coordinator)
        if not await self._reachable(coordinator, job):
            return
        status = coordinator.status
        running = status.state in (PrinterState.PRINTING, PrinterState.PAUSED)
        if not running or status.file != job.remote_name:
            # A verdict that ends a job rests on a fresh answer, never on a pushed frame that may
            # predate our upload (the first "Printing" frame can still name the previous file).
            await coordinator.poll()
            status = coordinator.status
            running = status.state in (PrinterState.PRINTING, PrinterState.PAUSED)
        if status.state is PrinterState.ERROR:
            await self._fail(coordinator, job, status.error or status.detail, "error")
        elif running and status.file != job.remote_name:
            # Someone started another print by hand. Whether ours ran is unknown: never retried.
            await self._fail(coordinator, job, f"the printer is printing another file ({status.file})", None)
        elif running:
            self._idle_since.pop(job.id, None)
            want = JobState.PAUSED if status.state is PrinterState.PAUSED else JobState.PRINTING
            if job.state is not want:
                await self._move(job, want, coordinator)
        else:
            await self._settle(coordinator, job)

    async def _settle(self, coordinator: PrinterCoordinator, job: Job) -> None:
        """Our print is no longer running and no event said how it ended: read the file history."""
        first = self._idle_since.setdefault(job.id, self._clock())
        if self._clock() - first < EVENT_SETTLE_S:
            return
        if not await self._ended_by_history(coordinator, job, None):
            # No trace of the print ending: the host lost it (OctoPrint restarted mid-print).
            await self._fail(coordinator, job, "the printer no longer knows this print", "offline")

    async def _ended_by_history(
        self, coordinator: PrinterCoordinator, job: Job, completed: str | None
    ) -> bool:
        """Finish the job from the printer's own print count for its file; False if it never ended there."""
        remote = await self._remote_file(coordinator, job)
        if remote is not None and remote.successes:
            await self._finish(coordinator, job, JobState.COMPLETED, completed)
        elif remote is not None and remote.failures:
            await self._finish(
                coordinator, job, JobState.FAILED, "print ended early while farmctl was not watching"
            )
        else:
            return False
        return True

    async def _reachable(self, coordinator: PrinterCoordinator, job: Job) -> bool:
        """False while the printer is offline; fails the job once it has been offline for the grace period."""
        if coordinator.status.state is not PrinterState.OFFLINE:
            self._offline_since.pop(job.id, None)
            return True
        since = self._offline_since.setdefault(job.id, self._clock())
        if self._clock() - since >= self.settings.offline_grace:
            grace = self.settings.offline_grace
            await self._fail(coordinator, job, f"printer offline for more than {grace:g}s", "offline")
        return False

    async def _check_foreign(self, coordinator: PrinterCoordinator) -> None:
        """A printer with no active job of ours that prints a farmctl file: stop it if it was cancelled."""
        status = coordinator.status
        job_id = job_id_of(status.file)
        if job_id is None or status.state not in (PrinterState.PRINTING, PrinterState.PAUSED):
            return
        name = coordinator.printer.name
        try:
            job = await self.store.call(self.store.sync.get_job, job_id)
        except NotFound:
            return
        first_time = (name, status.file or "") not in self._noted_foreign
        self._noted_foreign.add((name, status.file or ""))
        if job.state is JobState.CANCELLED:
            if first_time:
                log.info("job=%d is cancelled but printing on printer=%s: stopping it", job_id, name)
            await coordinator.stop_print(job.remote_name)
        elif job.state is JobState.QUEUED and first_time:
            # Never adopted: a status that lags the PrintFailed event of a requeued job looks the same.
            # The printer is busy either way, so nothing else starts there meanwhile.
            log.warning("printer=%s prints %s of job=%d, which is queued", name, status.file, job_id)
        elif first_time:  # the frames that trail a job's end ("Finishing")
            log.debug("printer=%s still reports %s of job=%d (%s)", name, status.file, job_id, job.state)

    # --- outcomes ------------------------------------------------------------------------------------

    async def _move(self, job: Job, state: JobState, coordinator: PrinterCoordinator) -> Job:
        return await self.store.call(
            self.store.sync.transition, job.id, state, printer=coordinator.printer.name
        )

    async def _finish(
        self, coordinator: PrinterCoordinator, job: Job, state: JobState, detail: str | None
    ) -> None:
        self._offline_since.pop(job.id, None)
        self._idle_since.pop(job.id, None)
        try:
            await self.store.call(self.store.sync.transition, job.id, state, detail=detail)
        except IllegalTransition:
            return  # finished by someone else (a cancel through the API) in the meantime
        # No bed marking here: the bed was marked used, durably, before the upload.
        log.info(
            "job=%d %s on printer=%s%s",
            job.id,
            state,
            coordinator.printer.name,
            f": {detail}" if detail else "",
        )

    async def _fail(self, coordinator: PrinterCoordinator, job: Job, reason: str, kind: str | None) -> None:
        """Failed, then back to the queue if the retry policy for this kind ("error", "offline") allows."""
        await self._finish(coordinator, job, JobState.FAILED, reason)
        if kind is None:
            return
        budget = self.settings.retry_after_error if kind == "error" else self.settings.retry_after_offline
        events = await self.store.call(self.store.sync.events, job.id)
        failures = sum(1 for e in events if e.state is JobState.FAILED)
        if failures <= budget:
            detail = f"retry {failures} of {budget} after: {reason}"
            with contextlib.suppress(IllegalTransition):
                await self.store.call(self.store.sync.transition, job.id, JobState.QUEUED, detail=detail)
                log.info("job=%d requeued (%s)", job.id, detail)

    async def _remote_file(self, coordinator: PrinterCoordinator, job: Job) -> RemoteFile | None:
        for remote in await coordinator.driver.files():
            if remote.name == job.remote_name:
                return remote
        return None

    # --- beds ----------------------------------------------------------------------------------------

    async def _sync_beds(self) -> None:
        """Persist beds the fleet saw used (a print it did not start, say) since the last round."""
        for name, coordinator in self.fleet.coordinators.items():
            if coordinator.bed_clear != self._beds.get(name):
                await self._persist_bed(name, clear=coordinator.bed_clear)

    async def _persist_bed(self, printer: str, *, clear: bool) -> None:
        await self.store.call(self.store.sync.set_bed_clear, printer, clear)
        self._beds[printer] = clear
