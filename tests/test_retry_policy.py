"""The retry policy: each kind of failure against the [jobs] budgets."""

from __future__ import annotations

import pytest

from controller.config import JobsConfig
from controller.jobs.retry import FailureKind, decide

JOBS = JobsConfig(retry_after_error=2, retry_after_offline=1)


@pytest.mark.parametrize(
    ("kind", "failures", "requeue", "budget"),
    [
        # A printer error: retried while the job's failures stay within retry_after_error.
        (FailureKind.ERROR, 1, True, 2),
        (FailureKind.ERROR, 2, True, 2),
        (FailureKind.ERROR, 3, False, 2),
        # Offline past the grace, and a print the host lost: both spend retry_after_offline.
        (FailureKind.OFFLINE, 1, True, 1),
        (FailureKind.OFFLINE, 2, False, 1),
        (FailureKind.LOST, 1, True, 1),
        (FailureKind.LOST, 2, False, 1),
        # Another file printing: whether ours ran is unknown, so never again unasked.
        (FailureKind.FOREIGN, 1, False, 0),
    ],
)
def test_each_kind_is_requeued_only_within_its_budget(
    kind: FailureKind, failures: int, requeue: bool, budget: int
) -> None:
    decision = decide(kind, failures, JOBS)
    assert (decision.requeue, decision.failures, decision.budget) == (requeue, failures, budget)


@pytest.mark.parametrize("kind", list(FailureKind))
def test_a_zero_budget_never_requeues(kind: FailureKind) -> None:
    assert not decide(kind, 1, JobsConfig(retry_after_error=0, retry_after_offline=0)).requeue


def test_a_foreign_print_is_never_retried_even_with_generous_budgets() -> None:
    assert not decide(
        FailureKind.FOREIGN, 1, JobsConfig(retry_after_error=10, retry_after_offline=10)
    ).requeue


def test_the_requeued_job_says_which_retry_it_is() -> None:
    assert (
        decide(FailureKind.ERROR, 1, JOBS).detail("Thermal runaway") == "retry 1 of 2 after: Thermal runaway"
    )
