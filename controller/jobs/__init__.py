"""Print jobs: the job model (re-exported here), G-code, the queue, scheduling, dispatch and tracking."""

from controller.jobs.model import (
    ACTIVE_STATES,
    TRANSITIONS,
    IllegalTransition,
    Job,
    JobState,
    Requirements,
    check_transition,
    job_id_of,
    remote_name,
)

__all__ = [
    "ACTIVE_STATES",
    "TRANSITIONS",
    "IllegalTransition",
    "Job",
    "JobState",
    "Requirements",
    "check_transition",
    "job_id_of",
    "remote_name",
]
