"""Tracking: each active job's print followed to its end, from the printer's events, state and history.

A `dispatching` job whose upload is not running in this process (the daemon restarted, or the upload
broke off) is resolved by asking its printer what it prints and its own per-file print history, never
by uploading again. A print's end is taken from its push event; when none came (push down, restart),
from the file history once the printer has looked idle for EVENT_SETTLE_S.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable

from controller.config import JobsConfig
from controller.fleet.coordinator import PrinterCoordinator
from controller.fleet.state import PrinterState
from controller.jobs import IllegalTransition, Job, JobState, job_id_of
from controller.jobs.retry import FailureKind, decide
from controller.store import AsyncStore, NotFound
from devices.errors import DeviceError
from devices.printer import EventKind, PrinterEvent, RemoteFile

log = logging.getLogger(__name__)

# How long a printer may look idle after our print without a PrintDone/PrintFailed event arriving
# before the outcome is read from its file history instead (push down, or the daemon restarted).
EVENT_SETTLE_S = 3.0
_TERMINAL = {EventKind.PRINT_DONE, EventKind.PRINT_FAILED, EventKind.PRINT_CANCELLED}
TRACKED_EVENTS = _TERMINAL | {EventKind.PRINT_PAUSED, EventKind.PRINT_RESUMED}
_RUNNING = (PrinterState.PRINTING, PrinterState.PAUSED)


class Tracker:
    """Follows the job on each printer and records how it ends; the dispatcher calls `check` each round."""

    def __init__(
        self,
        store: AsyncStore,
        printers: list[str],
        settings: JobsConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.settings = settings
        self._clock = clock
        self._events: dict[str, deque[PrinterEvent]] = {n: deque(maxlen=32) for n in printers}
        self._offline_since: dict[int, float] = {}
        self._idle_since: dict[int, float] = {}
        self._noted_foreign: set[tuple[str, str]] = set()

    def note(self, printer: str, event: PrinterEvent) -> None:
        """Keep a pushed event a job may end by, for the printer's next check."""
        if event.kind in TRACKED_EVENTS and printer in self._events:
            self._events[printer].append(event)

    async def check(self, coordinator: PrinterCoordinator, job: Job | None) -> None:
        """One look at a printer: its active job (`job`), or a farmctl print it has without one."""
        name = coordinator.printer.name
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

    async def _resolve_dispatch(self, coordinator: PrinterCoordinator, job: Job) -> None:
        """A `dispatching` job with no upload running here: ask the printer what became of it."""
        if not await self._reachable(coordinator, job):
            return
        await coordinator.poll()  # fresh: the last status may predate the upload
        status = coordinator.status
        if status.state in _RUNNING:
            if status.file == job.remote_name:
                log.info("job=%d found printing on printer=%s", job.id, coordinator.printer.name)
                await self._move(job, JobState.PRINTING, coordinator)
                if status.state is PrinterState.PAUSED:
                    await self._move(job, JobState.PAUSED, coordinator)
            else:
                await self.requeue(coordinator, job, f"{coordinator.printer.name} is busy with {status.file}")
            return
        if not await self._ended_by_history(coordinator, job, "printed while farmctl was not watching"):
            await self.requeue(coordinator, job, "the upload did not start the print")

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
                reason = event.error or "the printer reported the print failed"
                await self._fail(coordinator, job, reason, FailureKind.ERROR)
                return
            if event.kind is EventKind.PRINT_PAUSED and job.state is JobState.PRINTING:
                job = await self._move(job, JobState.PAUSED, coordinator)
            elif event.kind is EventKind.PRINT_RESUMED and job.state is JobState.PAUSED:
                job = await self._move(job, JobState.PRINTING, coordinator)
        if not await self._reachable(coordinator, job):
            return
        status = coordinator.status
        if status.state not in _RUNNING or status.file != job.remote_name:
            # A verdict that ends a job rests on a fresh answer, never on a pushed frame that may
            # predate our upload (the first "Printing" frame can still name the previous file).
            await coordinator.poll()
            status = coordinator.status
        running = status.state in _RUNNING
        if status.state is PrinterState.ERROR:
            await self._fail(coordinator, job, status.error or status.detail, FailureKind.ERROR)
        elif running and status.file != job.remote_name:
            reason = f"the printer is printing another file ({status.file})"
            await self._fail(coordinator, job, reason, FailureKind.FOREIGN)
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
            await self._fail(coordinator, job, "the printer no longer knows this print", FailureKind.LOST)

    async def _ended_by_history(
        self, coordinator: PrinterCoordinator, job: Job, completed: str | None
    ) -> bool:
        """Finish the job from the printer's own print count for its file; False if it never ended there."""
        remote = await self._remote_file(coordinator, job)
        if remote is not None and remote.successes:
            await self._finish(coordinator, job, JobState.COMPLETED, completed)
        elif remote is not None and remote.failures:
            detail = "print ended early while farmctl was not watching"
            await self._finish(coordinator, job, JobState.FAILED, detail)
        else:
            return False
        return True

    async def _reachable(self, coordinator: PrinterCoordinator, job: Job) -> bool:
        """False while the printer is offline; fails the job once it has been offline for the grace period."""
        if coordinator.status.state is not PrinterState.OFFLINE:
            self._offline_since.pop(job.id, None)
            return True
        since = self._offline_since.setdefault(job.id, self._clock())
        grace = self.settings.offline_grace
        if self._clock() - since >= grace:
            await self._fail(
                coordinator, job, f"printer offline for more than {grace:g}s", FailureKind.OFFLINE
            )
        return False

    async def _check_foreign(self, coordinator: PrinterCoordinator) -> None:
        """A printer with no active job of ours that prints a farmctl file: stop it if it was cancelled."""
        status = coordinator.status
        job_id = job_id_of(status.file)
        if job_id is None or status.state not in _RUNNING:
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

    async def requeue(
        self, coordinator: PrinterCoordinator, job: Job, reason: str, *, bed_was_clear: bool = False
    ) -> None:
        """Back to the queue, nothing printed; `bed_was_clear`: give the bed back as it was when chosen."""
        try:
            await self.store.call(self.store.sync.transition, job.id, JobState.QUEUED, detail=reason)
        except IllegalTransition:
            return  # cancelled meanwhile
        log.warning("job=%d back in the queue: %s", job.id, reason)
        if bed_was_clear:
            coordinator.clear()

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
        # No bed marking here: the bed was marked used, durably, with the dispatch.
        name = coordinator.printer.name
        log.info("job=%d %s on printer=%s%s", job.id, state, name, f": {detail}" if detail else "")

    async def _fail(self, coordinator: PrinterCoordinator, job: Job, reason: str, kind: FailureKind) -> None:
        """Failed, then back to the queue if the retry policy allows it for this kind."""
        await self._finish(coordinator, job, JobState.FAILED, reason)
        events = await self.store.call(self.store.sync.events, job.id)
        decision = decide(kind, sum(1 for e in events if e.state is JobState.FAILED), self.settings)
        if decision.requeue:
            detail = decision.detail(reason)
            with contextlib.suppress(IllegalTransition):
                await self.store.call(self.store.sync.transition, job.id, JobState.QUEUED, detail=detail)
                log.info("job=%d requeued (%s)", job.id, detail)

    async def _remote_file(self, coordinator: PrinterCoordinator, job: Job) -> RemoteFile | None:
        for remote in await coordinator.driver.files():
            if remote.name == job.remote_name:
                return remote
        return None
