"""Print jobs: states, the legal transitions between them, and the job value the queue works with."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class JobState(StrEnum):
    """Job states (DESIGN.md): queued → dispatching → printing ⇄ paused → completed | failed | cancelled."""

    QUEUED = "queued"
    DISPATCHING = "dispatching"
    PRINTING = "printing"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED)


TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.DISPATCHING, JobState.CANCELLED}),
    # dispatching → queued: the upload did not start the print; the job waits for another printer.
    JobState.DISPATCHING: frozenset(
        {JobState.QUEUED, JobState.PRINTING, JobState.FAILED, JobState.CANCELLED, JobState.COMPLETED}
    ),
    JobState.PRINTING: frozenset({JobState.PAUSED, JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED}),
    JobState.PAUSED: frozenset({JobState.PRINTING, JobState.FAILED, JobState.CANCELLED}),
    JobState.COMPLETED: frozenset(),
    JobState.FAILED: frozenset({JobState.QUEUED}),  # a retry policy may requeue a failed job
    JobState.CANCELLED: frozenset(),
}


class IllegalTransition(ValueError):
    """A job was asked to move to a state it cannot reach from where it is."""


def check_transition(current: JobState, new: JobState) -> None:
    """Raise IllegalTransition unless `current → new` is allowed."""
    if new not in TRANSITIONS[current]:
        raise IllegalTransition(f"job cannot go from {current} to {new}")


@dataclass(frozen=True, slots=True)
class Requirements:
    """What a printer must offer to take a job. None means "any"."""

    material: str | None = None
    nozzle: float | None = None
    # Extent of the print in mm (x, y, z) from G-code bounds; must fit the build volume.
    size: tuple[float, float, float] | None = None
    printer: str | None = None
    group: str | None = None


@dataclass(frozen=True, slots=True)
class Job:
    """One print of one file on one printer (a submission with N copies makes N jobs)."""

    id: int
    state: JobState
    file_sha256: str
    file_name: str
    owner: str
    priority: int
    requirements: Requirements
    created_at: datetime
    printer: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    progress: float | None = None
    error: str | None = None
    attempts: int = 0
