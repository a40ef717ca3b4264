"""OEE, utilisation and bed-clear waits from a scripted timeline, against figures worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from controller.accounting.oee import Change, FinishedJob, TimelineState, grouping, p90, utilisation
from controller.jobs import JobState

S = TimelineState
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)  # the period: 08:00 to 18:00, 10 h = 36,000 s
T1 = T0 + timedelta(hours=10)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


# Printer a, hour by hour from 08:00 (hour 0):
#   -5 … -2  printing (before the period)
#   -2 … 1   awaiting_clear (entered 06:00, before the period)   in period: 1 h
#    1 … 4   printing                                             3 h
#    4 … 4.5 awaiting_clear                                       0.5 h
#  4.5 … 5   offline (bed still not cleared)                      0.5 h
#    5 … 5.25 awaiting_clear                                      0.25 h
# 5.25 … 7   idle                                                 1.75 h
#    7 … 8   error                                                1 h
#    8 … 9   off (plug off)                                       1 h
#    9 … 10  unknown (daemon stopped)                             1 h
# Bed-clear waits ended in the period: 06:00 → 09:00 = 3 h = 10,800 s (whole, though it began before
# 08:00; ended by a print started on it), and 12:00 → 13:15 = 1.25 h = 4,500 s (the offline half hour
# counts: the bed stayed full).
A = [
    Change("a", S.PRINTING, at(-5)),
    Change("a", S.AWAITING_CLEAR, at(-2)),
    Change("a", S.PRINTING, at(1)),
    Change("a", S.AWAITING_CLEAR, at(4)),
    Change("a", S.OFFLINE, at(4.5)),
    Change("a", S.AWAITING_CLEAR, at(5)),
    Change("a", S.IDLE, at(5.25)),
    Change("a", S.ERROR, at(7)),
    Change("a", S.OFF, at(8)),
    Change("a", S.UNKNOWN, at(9)),
    Change("a", S.PRINTING, at(10)),  # at `until`: outside the period
]
# Printer b: not recorded until 10:00 (2 h unknown), idle, then the farm marks its bed used as it sends
# a print (idle → awaiting_clear for 6 min → printing: not a bed-clear wait), printing open at 18:00:
#    0 … 1  unknown   1 … 1.5  awaiting_clear   1.5 … 2  unknown          → unknown 1.5 h
#    2 … 3.9  idle   3.9 … 4  awaiting_clear   4 … 10  printing (6 h)   → planned 10 - 1.5 = 8.5 h
B = [
    Change("b", S.AWAITING_CLEAR, at(1)),  # a new farm's unknown bed: not a wait either
    Change("b", S.UNKNOWN, at(1.5)),
    Change("b", S.IDLE, at(2)),
    Change("b", S.AWAITING_CLEAR, at(3.9)),
    Change("b", S.PRINTING, at(4)),
]
JOBS = [
    # a: completed, estimated 2.5 h, ran 1 → 4 (3 h)
    FinishedJob("a", JobState.COMPLETED, at(4), at(1), 2.5 * 3600),
    # a: failed (quality), no estimate
    FinishedJob("a", JobState.FAILED, at(7), at(6), None),
    # a: cancelled: neither in quality nor in performance
    FinishedJob("a", JobState.CANCELLED, at(6.5), at(6), 3600),
    # a: finished before the period: not counted
    FinishedJob("a", JobState.COMPLETED, at(-0.5), at(-3), 3600),
    # b: completed, estimated 1.5 h, ran 08:00 → 09:00 (1 h): 150 % is capped at 100 %
    FinishedJob("b", JobState.COMPLETED, at(1), at(0), 1.5 * 3600),
]


def test_a_printers_hours_factors_and_bed_clear_waits() -> None:
    jobs_a = [job for job in JOBS if job.printer == "a"]
    (row,) = utilisation(A, jobs_a, T0, T1, printers=["a"])
    row_a = next(r for r in utilisation(A + B, JOBS, T0, T1) if r.key == "a")
    assert row == row_a
    assert row.period_s == 36_000
    assert row.hours == pytest.approx(
        {
            S.AWAITING_CLEAR: 1 + 0.5 + 0.25,
            S.PRINTING: 3,
            S.OFFLINE: 0.5,
            S.IDLE: 1.75,
            S.ERROR: 1,
            S.OFF: 1,
            S.UNKNOWN: 1,
            S.PAUSED: 0,
        }
    )
    # planned = 10 - off 1 - unknown 1 = 8 h; available = 8 - offline 0.5 - error 1 = 6.5 h
    assert row.availability == pytest.approx(6.5 / 8)  # 0.8125
    assert row.utilisation == pytest.approx(3 / 8)  # printing / planned
    assert row.performance == pytest.approx(2.5 / 3)  # 0.8333
    assert row.quality == pytest.approx(1 / 2)  # 1 completed, 1 failed; the cancel is left out
    assert row.oee == pytest.approx(0.8125 * (2.5 / 3) * 0.5)  # 0.33854
    assert (row.jobs_completed, row.jobs_failed, row.jobs_cancelled) == (1, 1, 1)
    # waits 10,800 s and 4,500 s: median 7,650; p90 = 4,500 + 0.9 * (10,800 - 4,500) = 10,170
    assert row.bed_clear_wait_median_s == pytest.approx(7_650)
    assert row.bed_clear_wait_p90_s == pytest.approx(10_170)


def test_the_farm_sums_printer_hours_and_jobs() -> None:
    (farm,) = utilisation(A + B, JOBS, T0, T1, key_of=grouping("farm", {}))
    assert farm.key == "farm"
    assert farm.period_s == 36_000
    # b: planned 8.5 h, all available; a: planned 8, available 6.5
    assert farm.hours[S.PRINTING] == pytest.approx(3 + 6)
    assert farm.hours[S.UNKNOWN] == pytest.approx(1 + 1.5)
    assert farm.availability == pytest.approx((6.5 + 8.5) / (8 + 8.5))  # 0.90909
    assert farm.utilisation == pytest.approx(9 / 16.5)
    # Σ estimate / Σ actual = (2.5 + 1.5) / (3 + 1) = 1.0 — b's fast print lifts a's slow one
    assert farm.performance == pytest.approx(1.0)
    assert farm.quality == pytest.approx(2 / 3)
    assert farm.oee == pytest.approx((15 / 16.5) * 1.0 * (2 / 3))  # 0.60606
    assert farm.bed_clear_wait_median_s == pytest.approx(7_650)  # b had no wait


def test_groups_undefined_factors_and_time_not_yet_come() -> None:
    groups = {"a": "mk4", "b": "mini"}
    rows = utilisation(A + B, JOBS, T0, T1, key_of=grouping("group", groups), printers=["a", "b", "c"])
    assert [r.key for r in rows] == ["mini", "mk4", "unconfigured"]
    mini = rows[0]
    assert mini.performance == 1.0  # 1.5 h estimated in 1 h: capped
    assert mini.quality == 1.0
    assert mini.bed_clear_wait_median_s is None  # b's two spells in awaiting_clear were no waits
    assert mini.bed_clear_wait_p90_s is None
    c = rows[2]  # configured, never recorded: all unknown, nothing defined
    assert c.hours[S.UNKNOWN] == 10
    assert (c.availability, c.performance, c.quality, c.oee, c.utilisation) == (None,) * 5
    # "now" at 14:00: b's printing from 12:00 counts 2 h, the 4 h after now are unknown
    (b,) = utilisation(B, [], T0, T1, now=at(6))
    assert b.hours[S.PRINTING] == pytest.approx(2)
    assert b.hours[S.UNKNOWN] == pytest.approx(1.5 + 4)
    assert b.availability == 1.0


def test_p90_and_bad_periods() -> None:
    assert p90([]) is None
    assert p90([42.0]) == 42.0
    assert p90([float(v) for v in range(1, 11)]) == pytest.approx(9.1)  # 9 + 0.1 * (10 - 9)
    with pytest.raises(ValueError, match="end after"):
        utilisation(A, [], T1, T0)
    with pytest.raises(ValueError, match="group_by"):
        grouping("owner", {})
