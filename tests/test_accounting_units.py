"""Pure accounting decisions: a plug's running total, interpolation at a mark, a print's figures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest

from controller.accounting import ledger
from controller.accounting.figures import Mark, Phase, measure, profile
from controller.accounting.ledger import Account
from controller.accounting.meter import PlugMeter, Series, Source
from controller.jobs import JobState
from controller.store import Store
from tests.jobrows import add_job

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_counter_rises_add_and_a_reset_adds_what_was_counted_since() -> None:
    meter = PlugMeter("plug-1")
    meter.counter(0, 10.000)  # the first reading is the baseline
    meter.counter(10, 10.250)
    meter.counter(20, 10.2499999)  # rounding in the plug's report, not a reset
    assert meter.total_kwh == pytest.approx(0.250)
    meter.counter(30, 0.010)  # EnergyReset: counted 0.010 since
    meter.counter(40, 0.030)
    assert meter.total_kwh == pytest.approx(0.250 + 0.010 + 0.020)
    assert meter.resets == 1
    assert meter.source is Source.COUNTER


def test_power_is_integrated_only_for_a_plug_without_a_counter() -> None:
    meter = PlugMeter("plug-1")
    for second in range(0, 37, 6):
        meter.power(second, 100.0)
    assert meter.total_kwh == pytest.approx(100 * 36 / 3_600_000)  # 100 W for 36 s = 1 Wh
    assert meter.source is Source.POWER

    counted = PlugMeter("plug-2")
    counted.counter(0, 1.0)
    counted.power(5, 2000.0)
    counted.counter(10, 1.001)
    assert counted.total_kwh == pytest.approx(0.001)  # the counter rules once seen


def test_a_restored_meter_continues_its_total_across_a_restart() -> None:
    before = PlugMeter("plug-1")
    before.counter(0, 5.0)
    before.counter(10, 5.5)
    state = before.state()
    after = PlugMeter("plug-1", state)
    after.counter(100, 5.75)  # the counter went on while the daemon was down
    assert after.total_kwh == pytest.approx(0.75)
    # Between the stored sample and the next, the total is interpolated.
    value = after.series.at(55)
    assert value is not None
    assert value.value == pytest.approx(0.625)
    assert value.gap_s == pytest.approx(45)


def test_series_interpolates_between_samples_and_reports_the_gap() -> None:
    series = Series()
    assert series.at(5) is None
    series.add(0, 0.0)
    series.add(10, 1.0)
    series.add(9, 5.0)  # out of order: ignored
    middle = series.at(2.5)
    assert middle is not None
    assert middle.value == pytest.approx(0.25)
    assert middle.gap_s == pytest.approx(2.5)
    late = series.at(14)
    assert late is not None
    assert late.value == 1.0
    assert late.gap_s == pytest.approx(4)
    assert series.has_after(10)
    assert not series.has_after(10.5)


def test_figures_split_heat_up_pause_and_printing() -> None:
    marks = [
        Mark(1, at(0), Phase.START, 1.000, 0.5, weight_g=900.0),
        Mark(2, at(300), Phase.HEATED, 1.050, 0.2),
        Mark(3, at(1000), Phase.PAUSED, 1.150, 0.4),
        Mark(4, at(1600), Phase.RESUMED, 1.160, 0.1),
        Mark(5, at(2000), Phase.TICK, 1.200, 0.3),
        Mark(6, at(3600), Phase.END, 1.300, 0.9, weight_g=860.0),
        Mark(7, at(3700), Phase.TICK, 1.400, 0.1),  # taken after the end: not part of the print
    ]
    figures = measure(marks, outcome=JobState.COMPLETED, estimate_g=41.0, progress=100, drift_pct=10)
    assert figures.energy_kwh == pytest.approx(0.300)
    assert figures.heatup_kwh == pytest.approx(0.050)
    assert figures.paused_kwh == pytest.approx(0.010)
    assert figures.printing_kwh == pytest.approx(0.240)
    assert (figures.gap_start_s, figures.gap_end_s) == (0.5, 0.9)
    assert figures.filament_measured_g == pytest.approx(40.0)
    assert not figures.material_drift  # 40 vs 41 g: 2.4 %
    assert figures.waste_g is None
    assert figures.waste_kwh is None
    assert figures.print_s == 3600
    assert [round(kwh, 3) for _, kwh, _ in profile(marks)] == [0, 0.05, 0.15, 0.16, 0.2, 0.3]


def test_a_failed_print_is_waste_and_drift_is_flagged() -> None:
    marks = [
        Mark(1, at(0), Phase.START, 2.0, 0.1),
        Mark(2, at(600), Phase.END, 2.1, 0.1),
    ]
    failed = measure(marks, outcome=JobState.FAILED, estimate_g=50.0, progress=30, drift_pct=10)
    assert failed.waste_g == pytest.approx(15.0)  # no scale: estimate x progress
    assert failed.waste_kwh == pytest.approx(0.1)
    assert failed.heatup_kwh == pytest.approx(0.1)  # never heated: all of it was heat-up

    weighed = [
        Mark(1, at(0), Phase.START, None, None, weight_g=1000.0),
        Mark(2, at(600), Phase.END, None, None, weight_g=930.0),
    ]
    cancelled = measure(weighed, outcome=JobState.CANCELLED, estimate_g=50.0, progress=90, drift_pct=10)
    assert cancelled.energy_kwh is None
    assert cancelled.waste_kwh is None
    assert cancelled.waste_g == pytest.approx(70.0)  # measured wins over the estimate
    assert cancelled.material_drift  # 70 g against 50 g: 40 % apart


def test_a_coarse_counter_is_refined_by_power_between_its_steps() -> None:
    # A Zigbee2MQTT plug reporting kWh with 2 decimals: steps of 10 Wh. 360 W for 50 s is 5 Wh.
    meter = PlugMeter("dryer")
    meter.counter(0, 1.00)
    meter.counter(1, 1.01)  # one step seen: the resolution is 0.01 kWh
    meter.power(1, 360.0)
    for second in range(2, 52):
        meter.counter(second, 1.01)
        meter.power(second, 360.0)
    refined = meter.series.at(51)
    assert refined is not None
    assert refined.value == pytest.approx(0.01 + 0.005)
    # The filled-in part never exceeds one step: the counter rules over the long run.
    for second in range(52, 300):
        meter.power(second, 360.0)
    capped = meter.series.at(299)
    assert capped is not None
    assert capped.value == pytest.approx(0.02)
    meter.counter(300, 1.03)
    assert meter.total_kwh == pytest.approx(0.03)


def test_a_coarse_counter_that_has_not_stepped_yet_is_refined_by_its_decimals() -> None:
    meter = PlugMeter("dryer")
    meter.counter(0, 3.57)  # 2 decimals: steps of at most 0.01 kWh
    meter.power(0, 36.0)
    meter.counter(100, 3.57)
    meter.power(100, 36.0)  # 36 W for 100 s = 1 Wh, below one step
    value = meter.series.at(100)
    assert value is not None
    assert value.value == pytest.approx(0.001)


def test_a_reset_between_reports_keeps_the_power_drawn_before_it() -> None:
    meter = PlugMeter("plug-1")
    meter.power(0, 3600.0)
    meter.counter(0, 5.0)
    meter.power(10, 3600.0)  # 3.6 kW for 10 s: 0.01 kWh
    meter.counter(10, 0.004)  # reset 4 s before this report: the counter has only the last 0.004
    assert meter.total_kwh == pytest.approx(0.01)
    assert meter.resets == 1


def test_a_retried_job_sums_its_attempts_and_each_attempt_is_kept_apart(tmp_path: Path) -> None:
    store = Store(tmp_path / "farm.db")
    try:
        job_id = add_job(store, owner="ada", state="failed", finished=at(600), attempts=1)
        first = Account(job_id, energy_kwh=0.10, waste_kwh=0.10, waste_g=3.0, accounted_at=at(610))
        store.transact(partial(ledger.write_account, account=first))
        store.transact(lambda db: db.execute("UPDATE jobs SET attempts = 2 WHERE id = ?", (job_id,)))
        second = Account(job_id, energy_kwh=0.30, accounted_at=at(4000))
        summed = store.transact(partial(ledger.write_account, account=second))
        assert summed.energy_kwh == pytest.approx(0.40)  # the job's account: both attempts
        assert summed.waste_g == pytest.approx(3.0)
        # The job point of each end carries that attempt only, so sums over points count each once.
        one = store.read(partial(ledger.attempt_account, job_id=job_id, since=at(600)))
        two = store.read(partial(ledger.attempt_account, job_id=job_id, since=at(3990)))
        assert one is not None
        assert two is not None
        assert (one.energy_kwh, two.energy_kwh) == (0.10, 0.30)
        assert store.read(partial(ledger.attempt_account, job_id=job_id, since=at(4001))) is None
    finally:
        store.close()
