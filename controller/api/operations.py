"""Operations on jobs and printers: pause, resume, move and reprint a job; take a printer out of service
and back. Each route documents its request, its answer, every status and the role it needs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Self

from fastapi import APIRouter, Body, Depends
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from controller.api.auth import Caller, require
from controller.api.errors import JSON_BODY_LIMIT, TOO_LARGE, Described, Responses, error_responses, success
from controller.api.examples import IDLE_EXAMPLE, JOB_EXAMPLE, QUEUED_EXAMPLE
from controller.api.jobs import JobId, JobOut, job_out
from controller.api.printers import PrinterName, PrinterOut, printer_out
from controller.api.services import FleetDep, QueueDep
from controller.config import Role
from controller.fleet.maintenance import MAX_REASON, check_reason
from controller.jobs.operations import PRIORITY_MAX, PRIORITY_MIN, JobOperations, Move

jobs_router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])
printers_router = APIRouter(prefix="/api/v1/printers", tags=["printers"])
Operator = Annotated[Caller, Depends(require(Role.OPERATOR))]

_BAD_ID = "The id is not a whole number from 1 to 2^63-1"
_BAD_NAME = "Not a printer name: letters, digits, _ . - and at most 64 characters"
_NO_JOB = ("No such job", "no job 9999")
_NOT_TEXT = ("The body cannot be read as text (not UTF-8)", "There was an error parsing the body")
_REFUSED_KEY = (
    "The printer's host refused farmctl's API key",
    "POST http://mk4-1.local/api/job: 403 access denied (check the API key)",
)
_UNREACHABLE = (
    "The printer's host cannot be reached",
    "POST http://mk4-1.local/api/job: cannot connect (Connection refused)",
)


def _answer(
    description: str, example: dict[str, Any], role: Role, codes: Mapping[int, Described]
) -> Responses:
    """The 200 answer with its example, then the errors (error_responses) with theirs."""
    return {**success(description, example), **error_responses(role, codes)}


@jobs_router.post(
    "/{job_id}/pause",
    summary="Pause a print",
    response_model=JobOut,
    responses=_answer(
        "The job; it turns `paused` once the printer reports it",
        JOB_EXAMPLE,
        Role.OPERATOR,
        {
            404: _NO_JOB,
            409: (
                "The job is not printing, its printer does not show its file yet, or the printer refused",
                "job 17 is paused, not printing",
            ),
            422: (_BAD_ID, "path.job_id: Input should be greater than or equal to 1"),
            502: _REFUSED_KEY,
            503: _UNREACHABLE,
        },
    ),
)
async def pause_job(job_id: JobId, queue: QueueDep, caller: Operator) -> JobOut:
    """Pause a printing job: the printer is asked to pause (OctoPrint parks the head as its pause script
    says); the job turns `paused` when the printer reports it, usually within a second. No body.

    Example: `POST /api/v1/jobs/17/pause` → 200 with the job (still `printing` at that moment).

    Role: operator."""
    return job_out(await JobOperations(queue).pause(job_id, caller=caller.name), queue)


@jobs_router.post(
    "/{job_id}/resume",
    summary="Resume a paused print",
    response_model=JobOut,
    responses=_answer(
        "The job; it turns `printing` once the printer reports it",
        {**JOB_EXAMPLE, "state": "paused"},
        Role.OPERATOR,
        {
            404: _NO_JOB,
            409: ("The job is not paused, or the printer refused", "job 17 is printing, not paused"),
            422: (_BAD_ID, "path.job_id: Input should be greater than or equal to 1"),
            502: _REFUSED_KEY,
            503: _UNREACHABLE,
        },
    ),
)
async def resume_job(job_id: JobId, queue: QueueDep, caller: Operator) -> JobOut:
    """Resume a paused job: the printer is asked to resume; the job turns `printing` when the printer
    reports it. No body.

    Example: `POST /api/v1/jobs/17/resume` → 200 with the job (still `paused` at that moment).

    Role: operator."""
    return job_out(await JobOperations(queue).resume(job_id, caller=caller.name), queue)


class MoveIn(BaseModel):
    """Where the queued job goes: `to` one of top, up, down, bottom, or a new `priority`."""

    model_config = ConfigDict(extra="forbid")

    to: Move | None = Field(
        None,
        description="top: above every other queued job; up: above the next priority level of another "
        "queued job (its own included); down: below the next one; bottom: below every other",
        examples=["up"],
    )
    priority: int | None = Field(
        None, ge=PRIORITY_MIN, le=PRIORITY_MAX, description="Set this priority instead", examples=[5]
    )

    @model_validator(mode="after")
    def _one(self) -> Self:
        if (self.to is None) == (self.priority is None):
            raise PydanticCustomError("move", "give either `to` (top, up, down, bottom) or `priority`")
        return self


_MOVE_EXAMPLES: dict[str, Any] = {
    "up": {"summary": "Past the next priority level", "value": {"to": "up"}},
    "top": {"summary": "Before every other queued job", "value": {"to": "top"}},
    "priority": {"summary": "A priority of its own", "value": {"priority": 5}},
}


@jobs_router.post(
    "/{job_id}/move",
    summary="Move a queued job up or down",
    max_body_size=JSON_BODY_LIMIT,
    response_model=JobOut,
    responses=_answer(
        "The job with its new priority",
        {**QUEUED_EXAMPLE, "priority": 1},
        Role.OPERATOR,
        {
            400: _NOT_TEXT,
            413: TOO_LARGE,
            404: _NO_JOB,
            409: (
                "The job is no longer queued, or it cannot move further (priorities stay in -1000..1000)",
                "job 17 is printing: only a queued job can be moved",
            ),
            422: (
                f"{_BAD_ID}; or the body is not JSON, or has not exactly one of `to` and `priority`",
                "body: give either `to` (top, up, down, bottom) or `priority`",
            ),
        },
    ),
)
async def move_job(
    job_id: JobId,
    body: Annotated[MoveIn, Body(openapi_examples=_MOVE_EXAMPLES)],
    queue: QueueDep,
    caller: Operator,
) -> JobOut:
    """Change a queued job's place in the queue. The scheduler starts the highest priority first and,
    within one priority, shares printers fairly between owners, oldest job first; so a move sets the
    job's priority. A move that changes nothing (already at the top) answers the job as it is.

    Example: `POST /api/v1/jobs/18/move` with `{"to": "up"}` → 200 with the job and its new priority.

    Role: operator."""
    job = await JobOperations(queue).move(job_id, to=body.to, priority=body.priority, caller=caller.name)
    return job_out(job, queue)


@jobs_router.post(
    "/{job_id}/reprint",
    summary="Print a finished job again",
    status_code=201,
    response_model=JobOut,
    responses={
        **success(
            "The new job, queued",
            {**QUEUED_EXAMPLE, "id": 20, "waiting": "waits for the next scheduling round"},
            status=201,
        ),
        **error_responses(
            Role.OPERATOR,
            {
                404: _NO_JOB,
                409: (
                    "The job has not finished yet",
                    "job 17 is printing: only a finished job can be printed again",
                ),
                410: (
                    "The job's G-code is no longer stored",
                    "job 17's file bracket.gcode is no longer stored: upload it again",
                ),
                422: f"{_BAD_ID}; or no configured printer can take it now, or its owner is past a "
                "monthly quota or no longer a member",
            },
        ),
    },
)
async def reprint_job(job_id: JobId, queue: QueueDep, caller: Operator) -> JobOut:
    """Queue a finished (completed, failed or cancelled) job's file again as a new job: same file, owner,
    priority and requirements; the owner's quota is checked as for an upload. No body.

    Example: `POST /api/v1/jobs/17/reprint` → 201 with the new job.

    Role: operator."""
    return job_out(await JobOperations(queue).reprint(job_id, caller=caller.name), queue)


class MaintenanceIn(BaseModel):
    """Why the printer is taken out of service."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(
        min_length=1,
        max_length=MAX_REASON,
        description="One line, shown on the printer and in the reason a job waits",
        examples=["nozzle swap"],
    )

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str) -> str:
        try:
            return check_reason(value)
        except ValueError as exc:
            raise PydanticCustomError("reason", str(exc)) from None


_CHANGE_ERRORS = {404: ("No printer of that name", "no printer named 'mk4-9'")}


@printers_router.post(
    "/{name}/maintenance",
    summary="Take a printer out of service",
    max_body_size=JSON_BODY_LIMIT,
    response_model=PrinterOut,
    responses=_answer(
        "The printer with its `maintenance`",
        {
            **IDLE_EXAMPLE,
            "maintenance": {"reason": "nozzle swap", "since": "2026-12-02T10:02:40Z", "by": "ops"},
        },
        Role.OPERATOR,
        {
            400: _NOT_TEXT,
            413: TOO_LARGE,
            **_CHANGE_ERRORS,
            409: (
                "The printer is in maintenance already",
                "printer 'mk4-1' is in maintenance already since 2026-12-02 10:02Z",
            ),
            422: f"{_BAD_NAME}; or the body is not JSON, has no reason, or a reason longer than {MAX_REASON} "
            "or not one line",
        },
    ),
)
async def begin_maintenance(
    name: PrinterName,
    body: Annotated[
        MaintenanceIn,
        Body(openapi_examples={"nozzle": {"summary": "A nozzle swap", "value": {"reason": "nozzle swap"}}}),
    ],
    fleet: FleetDep,
    caller: Operator,
) -> PrinterOut:
    """Take a printer out of service: it takes no new job until it is brought back, and each job that
    waits for it says "mk4-1 in maintenance: nozzle swap". A print running on it goes on to its end.
    Kept across restarts.

    Example: `POST /api/v1/printers/mk4-1/maintenance` with `{"reason": "nozzle swap"}` → 200 with the
    printer and its `maintenance`.

    Role: operator."""
    return printer_out(await fleet.begin_maintenance(name, body.reason, by=caller.name), fleet)


@printers_router.delete(
    "/{name}/maintenance",
    summary="Bring a printer back into service",
    response_model=PrinterOut,
    responses=_answer(
        "The printer, `maintenance` null",
        IDLE_EXAMPLE,
        Role.OPERATOR,
        {
            **_CHANGE_ERRORS,
            409: ("The printer is not in maintenance", "printer 'mk4-1' is not in maintenance"),
            422: _BAD_NAME,
        },
    ),
)
async def end_maintenance(name: PrinterName, fleet: FleetDep, caller: Operator) -> PrinterOut:
    """Bring a printer back into service: queued jobs may start on it from the next scheduling round,
    which this starts. No body.

    Example: `DELETE /api/v1/printers/mk4-1/maintenance` → 200 with the printer, `maintenance` null.

    Role: operator."""
    return printer_out(await fleet.end_maintenance(name, by=caller.name), fleet)
