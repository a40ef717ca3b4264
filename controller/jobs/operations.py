"""Day-to-day operations on jobs: pause and resume a print, move a queued job, reprint a finished one.

Pause and resume only ask the printer: the job becomes `paused` or `printing` when the printer's own
events say so (controller.jobs.tracking), as it would for a pause pressed on the printer.

Moving works on priority, the one order the scheduler knows: it takes the highest priority first and,
within a priority, shares the printers fairly between owners, oldest job first. So `up` lifts a job just
above the next priority level held by another queued job (its own level included), `down` puts it just
below the next one, `top`/`bottom` above or below every other queued job.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from enum import StrEnum
from typing import ClassVar

from controller.accounting.members import Estimate, check_submission
from controller.core.errors import FarmError
from controller.fleet.coordinator import PrinterCoordinator
from controller.jobs import Job, JobState
from controller.jobs.queue import JobConflict, JobQueue, Unprintable
from controller.jobs.scheduler import explain_unprintable

log = logging.getLogger(__name__)

# The range a submission's priority may take (controller/api/forms.py); a move stays inside it.
PRIORITY_MIN, PRIORITY_MAX = -1000, 1000


class FileGone(FarmError):
    """The job's G-code is no longer in the file store: it cannot be printed again (410)."""

    status: ClassVar[int] = 410


class Move(StrEnum):
    """Where a queued job goes."""

    TOP = "top"
    UP = "up"
    DOWN = "down"
    BOTTOM = "bottom"


def moved_priority(job: Job, others: list[int], to: Move) -> int:
    """The priority that puts `job` where `to` says among the other queued jobs' priorities `others`."""
    mine = job.priority
    if to is Move.TOP:
        return max(mine, max(others, default=mine - 1) + 1)
    if to is Move.BOTTOM:
        return min(mine, min(others, default=mine + 1) - 1)
    if to is Move.UP:
        level = min((p for p in others if p >= mine), default=None)
        return mine if level is None else level + 1
    level = max((p for p in others if p <= mine), default=None)
    return mine if level is None else level - 1


def _set_priority(db: sqlite3.Connection, job_id: int, priority: int) -> int:
    return db.execute(
        "UPDATE jobs SET priority = ? WHERE id = ? AND state = ?", (priority, job_id, JobState.QUEUED)
    ).rowcount


class JobOperations:
    """Pause, resume, move and reprint against the queue's store, files and fleet."""

    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue

    def _printing_on(self, job: Job, *, want: JobState) -> PrinterCoordinator:
        """The coordinator of the printer that runs `job` now, when the job is in `want`; else 409."""
        if job.state is not want:
            raise JobConflict(f"job {job.id} is {job.state}, not {want}")
        coordinator = self.queue.fleet.get(job.printer) if job.printer else None
        if coordinator is None:
            raise JobConflict(f"job {job.id} is on printer {job.printer!r}, which is no longer configured")
        if coordinator.status.file != job.remote_name:
            # Never pause or resume a print that is not this job's (the frames may lag its start).
            raise JobConflict(
                f"printer {job.printer} does not show job {job.id}'s file yet ({coordinator.status.state}); "
                "try again in a moment"
            )
        return coordinator

    async def pause(self, job_id: int, *, caller: str) -> Job:
        """Ask the printer to pause the job's print; 409 unless it is printing there."""
        job = await self.queue.get(job_id)
        coordinator = self._printing_on(job, want=JobState.PRINTING)
        await coordinator.driver.pause()  # DeviceBusy (409) when the printer is not printing after all
        log.info("job=%d pause sent to printer=%s by=%s", job.id, job.printer, caller)
        return job

    async def resume(self, job_id: int, *, caller: str) -> Job:
        """Ask the printer to resume the job's paused print; 409 unless it is paused there."""
        job = await self.queue.get(job_id)
        coordinator = self._printing_on(job, want=JobState.PAUSED)
        # The farm shows OctoPrint's "Pausing" as paused already, but OctoPrint ignores a resume until
        # its pause script has run: ask it afresh, and refuse rather than send a resume it drops.
        await coordinator.poll()
        if coordinator.status.detail.strip().lower().startswith("pausing"):
            raise JobConflict(f"printer {job.printer} is still pausing job {job.id}; resume it in a moment")
        await coordinator.driver.resume()
        log.info("job=%d resume sent to printer=%s by=%s", job.id, job.printer, caller)
        return job

    async def move(
        self, job_id: int, *, to: Move | None = None, priority: int | None = None, caller: str
    ) -> Job:
        """Move a queued job (`to`) or give it a `priority`; 409 once it has left the queue."""
        store = self.queue.store
        job = await self.queue.get(job_id)
        if job.state is not JobState.QUEUED:
            raise JobConflict(f"job {job_id} is {job.state}: only a queued job can be moved")
        if priority is None:
            queued = await self.queue.list([JobState.QUEUED])
            others = [j.priority for j in queued if j.id != job_id]
            priority = moved_priority(job, others, to or Move.TOP)
            if not PRIORITY_MIN <= priority <= PRIORITY_MAX:
                raise JobConflict(
                    f"job {job_id} cannot move {to}: priorities stay within {PRIORITY_MIN}..{PRIORITY_MAX}"
                )
        if priority != job.priority:
            new = priority
            if not await store.call(store.sync.transact, lambda db: _set_priority(db, job_id, new)):
                raise JobConflict(f"job {job_id} left the queue meanwhile")
            log.info("job=%d priority=%d was=%d by=%s", job_id, new, job.priority, caller)
        return await self.queue.get(job_id)

    async def reprint(self, job_id: int, *, caller: str) -> Job:
        """Queue the finished job's file again for the same owner with the same requirements.

        409 while the job has not finished, 410 when its file is gone, 422 when no printer can take
        it any more or the owner is past a quota.
        """
        queue, store = self.queue, self.queue.store
        job = await queue.get(job_id)
        if not job.state.finished:
            raise JobConflict(f"job {job_id} is {job.state}: only a finished job can be printed again")
        path = queue.files.path_of(job.file_sha256)
        recorded = await store.call(store.sync.has_file, job.file_sha256)
        if not recorded or not await asyncio.to_thread(path.is_file):
            raise FileGone(f"job {job_id}'s file {job.file_name} is no longer stored: upload it again")
        req = job.requirements
        why = explain_unprintable(req, queue.slots)
        if why is not None:
            raise Unprintable(f"{job.file_name}: no printer can take this job: {why}")
        estimate = Estimate(job.filament_g, job.estimated_s, req.material, 1)
        async with queue.admitting:  # the quota check and the insert as one step (queue.py)
            await check_submission(queue.config, store, job.owner, estimate)
            (new,) = await store.call(
                store.sync.add_jobs,
                file_sha256=job.file_sha256,
                file_name=job.file_name,
                owner=job.owner,
                priority=job.priority,
                requirements=req,
                copies=1,
                filament_g=job.filament_g,
                estimated_s=job.estimated_s,
            )
        log.info(
            "queued job=%d reprint of job=%d file=%s owner=%s by=%s",
            new.id,
            job_id,
            job.file_name,
            job.owner,
            caller,
        )
        return new
