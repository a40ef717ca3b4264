"""`/api/v1/jobs`: submit G-code as jobs, list them, cancel one."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import datetime
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from controller.accounting.ledger import Account, accounts_for
from controller.api.auth import Caller, require
from controller.api.errors import error_responses, success
from controller.api.examples import (
    CANCELLED_EXAMPLE,
    JOB_EVENTS_EXAMPLE,
    JOB_EXAMPLE,
    QUEUED_EXAMPLE,
    parameter,
)
from controller.api.forms import SubmitForm, submit_body
from controller.api.multipart import FormError, StreamingForm
from controller.api.services import QueueDep, ServicesDep
from controller.api.upload import UploadAborted, UploadBody
from controller.config import Role
from controller.fleet.state import PrinterState
from controller.jobs import Job, JobState
from controller.jobs.files import FileTooLarge
from controller.jobs.queue import JobQueue, check_file_name
from controller.store import MAX_ID

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])
Viewer = Annotated[Caller, Depends(require(Role.VIEWER))]
Operator = Annotated[Caller, Depends(require(Role.OPERATOR))]
# Bounded here so an id SQLite cannot hold is a plain 422, and the OpenAPI document says so.
JobId = Annotated[
    int, Path(ge=1, le=MAX_ID, description="The job's id", openapi_examples=parameter(17, "Job 17"))
]

_FORM_OVERHEAD = 64 * 1024  # room for the form fields and multipart headers around the file
_SUBMIT_ERRORS = error_responses(
    Role.OPERATOR,
    {
        400: (
            "Malformed form, missing or empty file, unsafe file name, a field after the file",
            "form field 'copies' comes after the file: send fields before the `file` part",
        ),
        413: (
            "File larger than jobs.upload_limit_mb",
            "file is larger than the limit of 50 MiB (jobs.upload_limit_mb)",
        ),
        415: ("Not G-code text", "'notes.txt' is not G-code: only .gcode, .gco, .g files are accepted"),
        422: (
            "A field out of range, no configured printer could ever take the job, or the owner is not a "
            "member or past a monthly quota",
            "bracket.gcode: no printer can take this job: no printer has material 'PETG' (loaded: PLA)",
        ),
        503: ("The daemon stopped while the file was arriving; nothing was kept", "the daemon is stopping"),
    },
)
_BAD_ID = (
    "The id is not a whole number from 1 to 2^63-1",
    "path.job_id: Input should be greater than or equal to 1",
)
_NO_JOB = ("No such job", "no job 9999")


class JobOut(BaseModel):
    """One print of one file (a submission with N copies makes N jobs)."""

    model_config = ConfigDict(json_schema_extra={"examples": [JOB_EXAMPLE]})

    id: int = Field(examples=[17])
    state: JobState = Field(
        description="queued | dispatching | printing | paused | completed | failed | cancelled"
    )
    file: str = Field(description="The uploaded file's name", examples=["bracket.gcode"])
    owner: str = Field(description="Member the print is for (billing)", examples=["alice"])
    printer: str | None = Field(None, description="Printer it is on or ran on", examples=["mk4-1"])
    priority: int = Field(0, description="Higher runs first", examples=[0])
    material: str | None = Field(None, description="Required material", examples=["PLA"])
    nozzle: float | None = Field(None, description="Required nozzle diameter, mm", examples=[0.4])
    required_printer: str | None = Field(None, description="Only this printer may take it")
    required_group: str | None = Field(None, description="Only printers of this group may take it")
    size_mm: tuple[float, float, float] | None = Field(
        None, description="Print extent x, y, z from the G-code"
    )
    created_at: datetime = Field(description="When it was submitted (UTC)", examples=["2026-12-02T09:14:03Z"])
    started_at: datetime | None = Field(None, description="When its printer started it (UTC)")
    finished_at: datetime | None = Field(None, description="When it completed, failed or was cancelled (UTC)")
    progress: float | None = Field(None, description="Percent, 0 to 100", examples=[42.5])
    estimated_s: float | None = Field(None, description="Slicer's print time estimate, seconds")
    filament_g: float | None = Field(
        None,
        description="Filament in grams: weighed by the printer's scale once the print ended, else the "
        "slicer's estimate (or computed from the moves)",
    )
    filament_est_g: float | None = Field(None, description="The slicer's estimate, grams")
    filament_measured_g: float | None = Field(
        None, description="Weighed: the scale's reading at the start less at the end"
    )
    material_drift: bool = Field(
        False, description="Measured grams differ from the estimate by more than [accounting] drift_pct"
    )
    energy_kwh: float | None = Field(
        None, description="Measured by the printer's plug(s) from start to end; null without a plug"
    )
    heatup_kwh: float | None = Field(None, description="Of energy_kwh: until the heaters reached target")
    printing_kwh: float | None = Field(None, description="Of energy_kwh: printing")
    paused_kwh: float | None = Field(None, description="Of energy_kwh: while paused")
    energy_gap_s: float | None = Field(
        None, description="The larger distance of a plug reading from the print's start or end, seconds"
    )
    waste_g: float | None = Field(None, description="A failed or cancelled print's grams")
    waste_kwh: float | None = Field(None, description="A failed or cancelled print's energy")
    cost: float | None = Field(None, description="Energy + material + machine time, in [costs] currency")
    co2_g: float | None = Field(None, description="Energy x the grid's gCO2/kWh")
    attempts: int = Field(0, description="How often it was sent to a printer")
    error: str | None = Field(None, description="Why it failed, or why it went back to the queue")
    waiting: str | None = Field(
        None,
        description="Why a queued job has not started yet (null for other states)",
        examples=["demo-1 printing job 3; no idle printer with nozzle 0.4 (demo-2 has 0.6)"],
    )


class JobsOut(BaseModel):
    """Jobs, oldest first."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"jobs": [JOB_EXAMPLE, QUEUED_EXAMPLE]}]})

    jobs: list[JobOut]


class JobEventOut(BaseModel):
    """One recorded state change of a job."""

    at: datetime = Field(description="When (UTC)")
    state: JobState = Field(description="The state the job moved to")
    printer: str | None = Field(None, description="Its printer at that moment", examples=["mk4-1"])
    detail: str | None = Field(None, description="Why", examples=["cancelled by ops"])


class JobEventsOut(BaseModel):
    """A job's state changes, oldest first."""

    model_config = ConfigDict(json_schema_extra={"examples": [JOB_EVENTS_EXAMPLE]})

    events: list[JobEventOut]


def job_out(job: Job, queue: JobQueue, account: Account | None = None) -> JobOut:
    progress = job.progress
    coordinator = queue.fleet.get(job.printer) if job.printer and job.state.active else None
    if coordinator is not None and coordinator.status.file == job.remote_name:
        live = coordinator.status
        if live.state in (PrinterState.PRINTING, PrinterState.PAUSED) and live.progress is not None:
            progress = live.progress
    req = job.requirements
    return JobOut(
        id=job.id,
        state=job.state,
        file=job.file_name,
        owner=job.owner,
        printer=job.printer,
        priority=job.priority,
        material=req.material,
        nozzle=req.nozzle,
        required_printer=req.printer,
        required_group=req.group,
        size_mm=req.size,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        progress=progress,
        estimated_s=job.estimated_s,
        filament_g=account.filament_g if account is not None else job.filament_g,
        filament_est_g=job.filament_g,
        **(_measured(account) if account is not None else {}),
        attempts=job.attempts,
        error=job.error,
        waiting=(queue.waiting.get(job.id) or "waits for the next scheduling round")
        if job.state is JobState.QUEUED
        else None,
    )


def _measured(account: Account) -> dict[str, Any]:
    gaps = [g for g in (account.gap_start_s, account.gap_end_s) if g is not None]
    return {
        "filament_measured_g": account.filament_measured_g,
        "material_drift": account.material_drift,
        "energy_kwh": account.energy_kwh,
        "heatup_kwh": account.heatup_kwh,
        "printing_kwh": account.printing_kwh,
        "paused_kwh": account.paused_kwh,
        "energy_gap_s": max(gaps) if gaps else None,
        "waste_g": account.waste_g,
        "waste_kwh": account.waste_kwh,
        "cost": account.cost,
        "co2_g": account.co2_g,
    }


async def _accounts(queue: JobQueue, jobs: list[Job]) -> dict[int, Account]:
    ids = [j.id for j in jobs if j.state.finished and j.started_at is not None]
    if not ids:
        return {}
    return await queue.store.call(queue.store.sync.read, partial(accounts_for, job_ids=ids))


def _outs(queue: JobQueue, jobs: list[Job], accounts: dict[int, Account]) -> list[JobOut]:
    return [job_out(j, queue, accounts.get(j.id)) for j in jobs]


@router.post(
    "",
    summary="Queue a G-code file",
    status_code=201,
    response_model=JobsOut,
    responses={
        **success(
            "One queued job per copy",
            {
                "jobs": [
                    {**QUEUED_EXAMPLE, "material": "PETG"},
                    {**QUEUED_EXAMPLE, "id": 19, "material": "PETG"},
                ]
            },
            status=201,
        ),
        **_SUBMIT_ERRORS,
    },
    openapi_extra=submit_body(),
)
async def submit_jobs(request: Request, farm: ServicesDep, caller: Operator) -> JobsOut:
    """Upload a sliced G-code file and queue it: multipart/form-data with the `file` part and optional
    fields `copies` (default 1), `priority` (default 0), `material` and `nozzle` (default: what the
    slicer wrote into the G-code), `printer`, `group`, `owner` (default: the token's name). Send the
    fields before the file, so a bad field is refused before the upload is stored. The file is
    streamed to disk (up to jobs.upload_limit_mb); each copy becomes a job that waits for a printer
    with a clear bed and the right material and nozzle.

    Example: `curl -H "Authorization: Bearer $TOKEN" -F copies=2 -F material=PETG
    -F file=@bracket.gcode http://<daemon>/api/v1/jobs` answers 201 with two queued jobs.

    Role: operator."""
    queue = farm.queue
    length = request.headers.get("content-length", "")
    limit = queue.config.jobs.upload_limit
    if length.isdigit() and int(length) > limit + _FORM_OVERHEAD:
        raise FileTooLarge(f"file is larger than the limit of {limit / 2**20:g} MiB (jobs.upload_limit_mb)")
    body = UploadBody(request, farm.stopping)
    form = StreamingForm(request.headers.get("content-type", ""), body.chunks(), on_file=check_file_name)
    try:
        with body.stop_watch():
            return await _submit(form, queue, caller)
    except UploadAborted as exc:
        # One line, no traceback: a client giving up (or a stop) is not a fault of the daemon. The
        # file name, if any, has passed check_file_name: plain ASCII, safe in a log line.
        log.info(
            "upload of %s by %s aborted: %s after %.1f MiB",
            form.file_name or "a file",
            caller.name,
            exc.reason,
            body.received / 2**20,
        )
        raise


async def _submit(form: StreamingForm, queue: JobQueue, caller: Caller) -> JobsOut:
    chunks = form.file_chunks()
    # Reading the first file bytes parses every field sent before the file part, so bad options fail
    # before the upload is stored.
    first = await anext(chunks, b"")
    if form.file_name is None:
        raise FormError("the form has no `file` part")
    options = SubmitForm.parse(form.fields).options()

    async def file_bytes() -> AsyncIterator[bytes]:
        if first:
            yield first
        async for chunk in chunks:
            yield chunk

    jobs = await queue.submit(form.file_name, file_bytes(), options, caller=caller.name)
    return JobsOut(jobs=[job_out(j, queue) for j in jobs])


@router.get(
    "",
    summary="List the jobs",
    response_model=JobsOut,
    responses={
        **success("The jobs, oldest first"),
        **error_responses(
            Role.VIEWER,
            {
                422: (
                    "An unknown state",
                    "query.state.0: Input should be 'queued', 'dispatching', 'printing', 'paused', "
                    "'completed', 'failed' or 'cancelled'",
                )
            },
        ),
    },
)
async def list_jobs(
    queue: QueueDep,
    _: Viewer,
    state: Annotated[
        list[JobState] | None,
        Query(
            description="Only jobs in these states (repeatable)",
            openapi_examples=parameter(["queued", "printing"], "The queue and what prints"),
        ),
    ] = None,
) -> JobsOut:
    """Every job the farm knows, oldest first, with its printer, progress, why a queued one waits, and
    once it has finished its grams, kWh, cost and CO2. `?state=queued&state=printing` shows the queue
    and what is on the printers.

    Role: viewer."""
    jobs = await queue.list(state)
    return JobsOut(jobs=_outs(queue, jobs, await _accounts(queue, jobs)))


@router.get(
    "/{job_id}",
    summary="One job",
    response_model=JobOut,
    responses={**success("The job"), **error_responses(Role.VIEWER, {404: _NO_JOB, 422: _BAD_ID})},
)
async def get_job(job_id: JobId, queue: QueueDep, _: Viewer) -> JobOut:
    """One job by its id, as the job list shows it.

    Role: viewer."""
    job = await queue.get(job_id)
    return _outs(queue, [job], await _accounts(queue, [job]))[0]


@router.get(
    "/{job_id}/events",
    summary="A job's history",
    response_model=JobEventsOut,
    responses={
        **success("The job's state changes, oldest first"),
        **error_responses(Role.VIEWER, {404: _NO_JOB, 422: _BAD_ID}),
    },
)
async def job_events(job_id: JobId, queue: QueueDep, _: Viewer) -> JobEventsOut:
    """Every state change of one job, oldest first: when it was queued, sent to which printer, started,
    paused, sent back to the queue (and why), and how it ended.

    Role: viewer."""
    events = await queue.events(job_id)  # NotFound → 404
    return JobEventsOut(
        events=[JobEventOut(at=e.at, state=e.state, printer=e.printer, detail=e.detail) for e in events]
    )


@router.post(
    "/{job_id}/cancel",
    summary="Cancel a job",
    response_model=JobOut,
    responses={
        **success("The job, cancelled", CANCELLED_EXAMPLE),
        **error_responses(
            Role.OPERATOR,
            {
                404: _NO_JOB,
                409: ("The job has already finished", "job 17 is already completed"),
                422: _BAD_ID,
            },
        ),
    },
)
async def cancel_job(job_id: JobId, queue: QueueDep, caller: Operator) -> JobOut:
    """Take a queued job out of the queue, or stop a printing one on its printer (the bed then waits to
    be cleared, and the print counts as waste). A printer that cannot be reached is stopped when it
    answers again. No body.

    Role: operator."""
    return job_out(await queue.cancel(job_id, caller=caller.name), queue)
