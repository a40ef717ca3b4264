"""Print jobs: states, the legal transitions between them, and the job value the queue works with."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from controller.core.errors import Conflict


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

    @property
    def active(self) -> bool:
        """On a printer (or on its way there)."""
        return self in ACTIVE_STATES


ACTIVE_STATES = (JobState.DISPATCHING, JobState.PRINTING, JobState.PAUSED)

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


class IllegalTransition(Conflict):
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
    filament_g: float | None = None
    estimated_s: float | None = None

    @property
    def remote_name(self) -> str:
        """The file name on the printer host; it carries the job id so a restart can find the job."""
        return remote_name(self.id, self.file_name)


_REMOTE = re.compile(r"^farmctl-(\d+)-[A-Za-z0-9_-]*\.gcode$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def remote_name(job_id: int, file_name: str) -> str:
    """`farmctl-<id>-<stem>.gcode` with an ASCII stem of at most 40 characters."""
    stem = file_name.rsplit(".", 1)[0]
    ascii_stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    safe = _UNSAFE.sub("_", ascii_stem).strip("_")[:40] or "print"
    return f"farmctl-{job_id}-{safe}.gcode"


def job_id_of(name: str | None) -> int | None:
    """The job id in a printer-side file name made by remote_name(), else None."""
    match = _REMOTE.match(name.rsplit("/", 1)[-1]) if name else None
    return int(match.group(1)) if match else None
