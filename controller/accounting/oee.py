"""Utilisation and OEE of printers from their recorded state timeline and the jobs that finished.

Pure: no I/O. Figures are over printer-seconds, so a group's or the farm's figures weigh each printer by
the time it was observed, and its job counts and print times are the sums of its printers'.

Definitions (the usual OEE factors, with the farm's states):
- planned time = period - `off` - `unknown`. `off` (the plug relay is off) is planned downtime; `unknown`
  (the controller was not running, or the printer was not yet recorded) is time nobody observed, so it is
  left out instead of being guessed. Time after `now` is unknown too.
- availability = (planned - `offline` - `error`) / planned: idle, awaiting_clear, printing and paused
  count as available.
- performance = Σ slicer estimate / Σ actual print time (started_at → finished_at, heat-up and pauses
  included) over the completed jobs that have both; capped at 1.0 as OEE's ideal cycle time is the best
  possible one (a print faster than its estimate means the estimate was off, not a better printer).
- quality = completed / (completed + failed). Cancelled jobs are left out: a cancel is an operator's
  decision, not a print the printer spoiled.
- OEE = availability * performance * quality (None when a factor is undefined).
- utilisation = `printing` / planned.
- Jobs count in the period they finished in, whole (also when they started before it).
- A bed-clear wait runs from entering `awaiting_clear` after a print (the last state before it, offline,
  error, off and unknown spells aside, was printing or paused) until the printer is next idle (the
  operator confirmed the bed clear) or printing or paused (a print started on it anyway). Offline, error,
  off and unknown spells in between count in it, as the bed stays full. Not waits: the farm marking a
  bed used as it sends a print (idle → awaiting_clear → printing), and a new farm's unknown beds. A wait
  counts, whole, in the period it ended in; one still open at the period's end does not count.
  p90 interpolates between the closest ranks (statistics.quantiles, method "inclusive").
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from controller.jobs import JobState


class TimelineState(StrEnum):
    """A printer's state as the timeline records it: the farm's states plus `off` and `unknown`."""

    PRINTING = "printing"
    PAUSED = "paused"
    AWAITING_CLEAR = "awaiting_clear"
    IDLE = "idle"
    OFFLINE = "offline"
    ERROR = "error"
    OFF = "off"
    UNKNOWN = "unknown"


_NOT_PLANNED = (TimelineState.OFF, TimelineState.UNKNOWN)
_DOWN = (TimelineState.OFFLINE, TimelineState.ERROR)
_CLEARED = (TimelineState.IDLE, TimelineState.PRINTING, TimelineState.PAUSED)
_PRINTED = (TimelineState.PRINTING, TimelineState.PAUSED)
# Spells that neither start nor end a bed-clear wait: the bed stays as it was.
_UNSEEN = (TimelineState.OFFLINE, TimelineState.ERROR, TimelineState.OFF, TimelineState.UNKNOWN)
_OUTCOMES = (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED)


@dataclass(frozen=True, slots=True)
class Change:
    """From `since` on, `printer` was in `state` (one row of the timeline)."""

    printer: str
    state: TimelineState
    since: datetime


@dataclass(frozen=True, slots=True)
class FinishedJob:
    """A job that ended on `printer` at `finished_at`."""

    printer: str
    outcome: JobState
    finished_at: datetime
    started_at: datetime | None = None
    estimated_s: float | None = None


@dataclass(slots=True)
class Tally:
    """What one printer (or a sum of printers) did in a period."""

    seconds: dict[TimelineState, float] = field(default_factory=lambda: dict.fromkeys(TimelineState, 0.0))
    waits: list[float] = field(default_factory=list)
    estimated_s: float = 0.0
    actual_s: float = 0.0
    jobs: dict[JobState, int] = field(default_factory=lambda: dict.fromkeys(_OUTCOMES, 0))

    def add(self, other: Tally) -> None:
        for state, seconds in other.seconds.items():
            self.seconds[state] += seconds
        self.waits += other.waits
        self.estimated_s += other.estimated_s
        self.actual_s += other.actual_s
        for outcome, count in other.jobs.items():
            self.jobs[outcome] += count


@dataclass(frozen=True, slots=True)
class Utilisation:
    """The figures of one report row (a printer, a group or the farm)."""

    key: str
    period_s: float
    hours: dict[TimelineState, float]
    availability: float | None
    performance: float | None
    quality: float | None
    oee: float | None
    utilisation: float | None
    jobs_completed: int
    jobs_failed: int
    jobs_cancelled: int
    bed_clear_wait_median_s: float | None
    bed_clear_wait_p90_s: float | None


def tally_printer(
    changes: Iterable[Change],
    jobs: Iterable[FinishedJob],
    since: datetime,
    until: datetime,
    now: datetime | None = None,
) -> Tally:
    """One printer's tally for [since, until) from its changes (any order; those before `since` give
    the state it started the period in) and its finished jobs."""
    if since >= until:
        raise ValueError("the period must end after it starts")
    seen_until = until if now is None else max(since, min(until, now))
    tally = Tally()
    state, at = TimelineState.UNKNOWN, since
    wait_from: datetime | None = None
    last_up: TimelineState | None = None  # the last state that was not a spell of _UNSEEN

    def spend(end: datetime) -> None:
        lo, hi = max(at, since), min(end, seen_until)
        if hi > lo:
            tally.seconds[state] += (hi - lo).total_seconds()

    for change in sorted(changes, key=lambda c: c.since):
        if change.since >= until:
            break
        spend(change.since)
        if change.state is TimelineState.AWAITING_CLEAR:
            if wait_from is None and last_up in _PRINTED:
                wait_from = change.since
        elif change.state in _CLEARED and wait_from is not None:
            if change.since >= since:
                tally.waits.append((change.since - wait_from).total_seconds())
            wait_from = None
        if change.state not in _UNSEEN:
            last_up = change.state
        state, at = change.state, change.since
    spend(until)
    tally.seconds[TimelineState.UNKNOWN] += (until - seen_until).total_seconds()
    for job in jobs:
        if not since <= job.finished_at < until or job.outcome not in _OUTCOMES:
            continue
        tally.jobs[job.outcome] += 1
        if job.outcome is JobState.COMPLETED and job.estimated_s is not None and job.started_at is not None:
            actual = (job.finished_at - job.started_at).total_seconds()
            if actual > 0 and job.estimated_s > 0:
                tally.estimated_s += job.estimated_s
                tally.actual_s += actual
    return tally


def figures(key: str, tally: Tally, period_s: float) -> Utilisation:
    """The report row for a tally (one printer's or a sum)."""
    s = tally.seconds
    planned = sum(s.values()) - sum(s[x] for x in _NOT_PLANNED)
    available = planned - sum(s[x] for x in _DOWN)
    availability = available / planned if planned > 0 else None
    performance = min(1.0, tally.estimated_s / tally.actual_s) if tally.actual_s > 0 else None
    completed, failed = tally.jobs[JobState.COMPLETED], tally.jobs[JobState.FAILED]
    quality = completed / (completed + failed) if completed + failed else None
    oee = None
    if availability is not None and performance is not None and quality is not None:
        oee = availability * performance * quality
    return Utilisation(
        key=key,
        period_s=period_s,
        hours={state: seconds / 3600 for state, seconds in s.items()},
        availability=availability,
        performance=performance,
        quality=quality,
        oee=oee,
        utilisation=s[TimelineState.PRINTING] / planned if planned > 0 else None,
        jobs_completed=completed,
        jobs_failed=failed,
        jobs_cancelled=tally.jobs[JobState.CANCELLED],
        bed_clear_wait_median_s=statistics.median(tally.waits) if tally.waits else None,
        bed_clear_wait_p90_s=p90(tally.waits),
    )


def p90(values: list[float]) -> float | None:
    """The 90th percentile, interpolated between the closest ranks; None without values."""
    if len(values) < 2:
        return values[0] if values else None
    return statistics.quantiles(values, n=10, method="inclusive")[8]


def utilisation(
    changes: Iterable[Change],
    jobs: Iterable[FinishedJob],
    since: datetime,
    until: datetime,
    *,
    printers: Iterable[str] = (),
    key_of: Callable[[str], str] | None = None,
    now: datetime | None = None,
) -> list[Utilisation]:
    """Rows for [since, until): one per printer (key_of None), or per key_of(printer) (its group, or
    "farm" for all). `printers` are counted even without a recorded change (as unknown time)."""
    by_printer: dict[str, list[Change]] = {name: [] for name in printers}
    for change in changes:
        by_printer.setdefault(change.printer, []).append(change)
    jobs_of: dict[str, list[FinishedJob]] = {}
    for job in jobs:
        jobs_of.setdefault(job.printer, []).append(job)
        by_printer.setdefault(job.printer, [])
    tallies: dict[str, Tally] = {}
    for name in sorted(by_printer):
        key = name if key_of is None else key_of(name)
        tally = tally_printer(by_printer[name], jobs_of.get(name, ()), since, until, now)
        tallies.setdefault(key, Tally()).add(tally)
    period_s = (until - since).total_seconds()
    return [figures(key, tallies[key], period_s) for key in sorted(tallies)]


def grouping(group_by: str, groups: Mapping[str, str]) -> Callable[[str], str] | None:
    """key_of for a report by `printer`, `group` (printers no longer configured: "unconfigured") or
    `farm`."""
    if group_by == "printer":
        return None
    if group_by == "group":
        return lambda name: groups.get(name, "unconfigured")
    if group_by == "farm":
        return lambda name: "farm"
    raise ValueError(f"group_by must be printer, group or farm, not {group_by!r}")
