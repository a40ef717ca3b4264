"""The retry policy: whether a failed job goes back to the queue. Pure: no store, no clock."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from controller.config import JobsConfig


class FailureKind(StrEnum):
    """Why a job failed, as far as the retry policy cares."""

    ERROR = "error"  # the printer reported an error (thermal runaway, firmware halt)
    OFFLINE = "offline"  # the printer stayed offline longer than offline_grace
    LOST = "lost"  # the host no longer knows the print (it restarted mid-print)
    FOREIGN = "foreign"  # another file prints there: whether ours ran is unknown


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """Requeue or not; `failures` counts this failure, `budget` is the kind's allowance (0: none)."""

    requeue: bool
    failures: int
    budget: int

    def detail(self, reason: str) -> str:
        """The note the requeued job carries."""
        return f"retry {self.failures} of {self.budget} after: {reason}"


def budget_for(kind: FailureKind, jobs: JobsConfig) -> int:
    """How many failures of this kind a job may have and still be retried."""
    if kind is FailureKind.ERROR:
        return jobs.retry_after_error
    if kind in (FailureKind.OFFLINE, FailureKind.LOST):
        # A lost print is a host that went away and came back: the offline allowance.
        return jobs.retry_after_offline
    return 0  # FOREIGN: the part may be on the bed already, so never printed again unasked


def decide(kind: FailureKind, failures: int, jobs: JobsConfig) -> RetryDecision:
    """`failures`: the job's recorded failures including this one (every kind counts toward the budget)."""
    budget = budget_for(kind, jobs)
    return RetryDecision(
        requeue=kind is not FailureKind.FOREIGN and failures <= budget, failures=failures, budget=budget
    )
