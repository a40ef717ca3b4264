"""The print queue as operators use it: submit a file as N jobs, list, cancel, clear a bed.

Dispatching and tracking live in `controller.jobs.dispatch`; this module validates what comes in and
records it, and nothing it rejects leaves a trace in the store or on disk.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from controller.accounting.members import Estimate, QuotaExceeded, check_submission
from controller.config import Config
from controller.core.errors import BadInput, Conflict, Unprocessable, UnsupportedFile
from controller.fleet.coordinator import Fleet, PrinterCoordinator
from controller.jobs import ACTIVE_STATES, Job, JobState, Requirements
from controller.jobs.files import FileStore, StoredFile
from controller.jobs.gcode import GcodeError, GcodeInfo, read_gcode_info
from controller.jobs.scheduler import PrinterSlot, explain_unprintable
from controller.jobs.waiting import WaitingBoard
from controller.store import AsyncStore, JobEvent, NotFound

log = logging.getLogger(__name__)

GCODE_SUFFIXES = (".gcode", ".gco", ".g")
MAX_NAME = 255
_NAME_PUNCTUATION = set(" ._-()+,#@[]")


class BadSubmission(BadInput):
    """The request is malformed (missing file, bad file name): 400."""


class NotGcode(UnsupportedFile):
    """The upload is not G-code text: 415."""


class Unprintable(Unprocessable):
    """No configured printer could ever take the job, or copies is out of range: 422."""


class JobConflict(Conflict):
    """The job or printer is not in a state that allows this: 409."""


@dataclass(frozen=True, slots=True)
class SubmitOptions:
    """The form fields of a submission; None means "from the G-code, or any"."""

    copies: int = 1
    priority: int = 0
    material: str | None = None
    nozzle: float | None = None
    printer: str | None = None
    group: str | None = None
    owner: str | None = None


def check_file_name(name: str) -> str:
    """The upload's name if it is a plain, short, ASCII G-code file name; else BadSubmission/NotGcode."""
    if not name:
        raise BadSubmission("the file part has no file name")
    if "/" in name or "\\" in name or name in (".", "..") or name.startswith("."):
        raise BadSubmission(f"file name {name[:80]!r} must be a plain name, without folders")
    if len(name) > MAX_NAME:
        raise BadSubmission(f"file name is {len(name)} characters long; at most {MAX_NAME} are allowed")
    if not name.isascii() or not all(c.isalnum() or c in _NAME_PUNCTUATION for c in name):
        raise BadSubmission(
            f"file name {name[:80]!r} may only use ASCII letters, digits, spaces and ._-()+,#@[]: rename it"
        )
    if name.lower().endswith(".bgcode"):
        raise NotGcode("binary G-code (.bgcode) is not supported: export plain .gcode from the slicer")
    if not name.lower().endswith(GCODE_SUFFIXES):
        raise NotGcode(f"{name!r} is not G-code: only {', '.join(GCODE_SUFFIXES)} files are accepted")
    return name


class JobQueue:
    """Submissions, cancels and bed clears against the store, the file store and the fleet."""

    def __init__(self, config: Config, store: AsyncStore, files: FileStore, fleet: Fleet) -> None:
        self.config = config
        self.store = store
        self.files = files
        self.fleet = fleet
        # Why each queued job waits; the dispatcher fills it after every round.
        self.waiting = WaitingBoard()
        # Told (owner, why) when a submission is refused for a member's quota: the notifier sets it.
        self.on_quota: Callable[[str, str], None] | None = None
        # Held from a submission's (or reprint's) quota check to its jobs' insert: two at once cannot
        # both fit in the room left for one (a store read and a write: milliseconds).
        self.admitting = asyncio.Lock()

    @property
    def slots(self) -> list[PrinterSlot]:
        """Every printer with what is loaded on it now: a job may name any material some printer holds."""
        fleet, loaded = self.fleet, self.fleet.materials
        return [
            PrinterSlot.from_config(p, fleet.coordinators[p.name].status.state, materials=loaded.of(p.name))
            for p in self.config.printers
        ]

    def check_options(self, options: SubmitOptions) -> None:
        """Reject what the config rules out before the upload is read; the form's own rules (types,
        fixed ranges) are checked where it is parsed (controller/api/forms.py)."""
        limit = self.config.jobs.max_copies
        if not 1 <= options.copies <= limit:
            raise Unprintable(f"copies must be between 1 and {limit}, not {options.copies}")
        # Constraints that no printer can ever meet fail now, before a large upload is read.
        self._check_printable(Requirements(printer=options.printer, group=options.group))

    def _check_printable(self, req: Requirements, file_name: str | None = None) -> None:
        why = explain_unprintable(req, self.slots)
        if why is not None:
            prefix = f"{file_name}: " if file_name else ""
            raise Unprintable(f"{prefix}no printer can take this job: {why}")

    async def submit(
        self, file_name: str, chunks: AsyncIterator[bytes], options: SubmitOptions, *, caller: str
    ) -> list[Job]:
        """Store the file, read its G-code metadata off the loop and queue one job per copy."""
        check_file_name(file_name)
        self.check_options(options)
        owner = options.owner or caller
        await self._check_member(owner)  # not a member, or past a quota already
        stored = await self.files.save(chunks, limit=self.config.jobs.upload_limit)
        try:
            info = await asyncio.to_thread(read_gcode_info, stored.path, display_name=file_name)
            req = Requirements(
                material=(options.material or info.material or "").strip().upper() or None,
                nozzle=options.nozzle if options.nozzle is not None else info.nozzle,
                size=info.size,
                printer=options.printer,
                group=options.group,
            )
            self._check_printable(req, file_name)
            estimate = Estimate(info.filament_g, info.estimated_s, req.material, options.copies)
            async with self.admitting:
                await self._check_member(owner, estimate)
                jobs = await self._record(stored, file_name, info, req, options, caller)
        except GcodeError as exc:
            await self._forget(stored)
            raise NotGcode(str(exc)) from None
        except BaseException:
            await self._forget(stored)
            raise
        log.info(
            "queued jobs=%s file=%s owner=%s copies=%d by=%s",
            ",".join(str(j.id) for j in jobs),
            file_name,
            jobs[0].owner,
            len(jobs),
            caller,
        )
        return jobs

    async def _check_member(self, owner: str, estimate: Estimate | None = None) -> None:
        try:
            await check_submission(self.config, self.store, owner, estimate)
        except QuotaExceeded as exc:
            if self.on_quota is not None:
                self.on_quota(owner, str(exc))
            raise

    async def _record(
        self,
        stored: StoredFile,
        file_name: str,
        info: GcodeInfo,
        req: Requirements,
        options: SubmitOptions,
        caller: str,
    ) -> list[Job]:
        sync = self.store.sync
        await self.store.call(sync.add_file, stored.sha256, stored.size, file_name)
        return await self.store.call(
            sync.add_jobs,
            file_sha256=stored.sha256,
            file_name=file_name,
            owner=options.owner or caller,
            priority=options.priority,
            requirements=req,
            copies=options.copies,
            filament_g=info.filament_g,
            estimated_s=info.estimated_s,
        )

    async def _forget(self, stored: StoredFile) -> None:
        """Remove a just-saved file unless an earlier submission of the same content uses it."""
        if not await self.store.call(self.store.sync.has_file, stored.sha256):
            await asyncio.to_thread(stored.path.unlink, missing_ok=True)

    async def get(self, job_id: int) -> Job:
        return await self.store.call(self.store.sync.get_job, job_id)

    async def events(self, job_id: int) -> list[JobEvent]:
        """A job's state changes, oldest first; NotFound for an unknown id."""
        await self.get(job_id)
        return await self.store.call(self.store.sync.events, job_id)

    async def list(self, states: list[JobState] | None = None) -> list[Job]:
        return await self.store.call(self.store.sync.list_jobs, states)

    async def cancel(self, job_id: int, *, caller: str) -> Job:
        """Cancel a job wherever it is; 409 (JobConflict) once it has finished."""
        job = await self.get(job_id)
        if job.state.finished:
            raise JobConflict(f"job {job_id} is already {job.state}")
        detail = f"cancelled by {caller}"
        job = await self.store.call(self.store.sync.transition, job_id, JobState.CANCELLED, detail=detail)
        log.info("job=%d cancelled by=%s printer=%s", job_id, caller, job.printer)
        coordinator = self.fleet.get(job.printer) if job.printer else None
        if coordinator is not None:
            await coordinator.stop_print(job.remote_name)
        return job

    async def clear(self, printer: str) -> PrinterCoordinator:
        """The operator confirmed the bed is empty: record it durably, then let jobs start there."""
        coordinator = self.fleet.get(printer)
        if coordinator is None:
            raise NotFound(f"no printer named {printer!r}")
        active = await self.store.call(self.store.sync.list_jobs, ACTIVE_STATES)
        running = [job for job in active if job.printer == printer]
        if running:
            # The printer may look idle a moment before its job's end is recorded; clearing then
            # would be undone when it is.
            raise JobConflict(f"printer {printer!r} still has job {running[0].id} ({running[0].state})")
        if not coordinator.clear():
            state = "clear already" if coordinator.bed_clear else str(coordinator.status.state)
            raise JobConflict(f"printer {printer!r} is {state}: nothing to clear")
        await self.fleet.beds.written()  # durable before the operator is told
        return coordinator
