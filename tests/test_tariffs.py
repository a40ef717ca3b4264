"""Cost and CO2 of a job against figures worked out by hand (the arithmetic is next to each figure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from controller.accounting.tariffs import (
    EnergyMark,
    JobCosts,
    co2_g,
    energy_cost,
    machine_cost,
    material_cost,
    price_job,
    price_per_kwh_at,
)
from controller.config.costs import CostsConfig

BERLIN = ZoneInfo("Europe/Berlin")
NIGHT = {"start": "22:00", "end": "06:00", "per_kwh": 0.20}


def tariff(**keys: Any) -> CostsConfig:
    """[costs] in Berlin: 0.30 a kWh, the night (22:00-06:00) at 0.20 unless `energy_windows` is given."""
    values: dict[str, Any] = {"timezone": "Europe/Berlin", "energy_per_kwh": 0.30, "energy_windows": [NIGHT]}
    return CostsConfig.model_validate(values | keys)


def local(text: str) -> datetime:
    """A Berlin wall-clock time (not in a skipped or repeated hour)."""
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def steady(start: datetime, hours: float, kw: float) -> list[EnergyMark]:
    """A start and an end mark of a job drawing `kw` for `hours` of real time."""
    return [EnergyMark(start, 0.0), EnergyMark(start + timedelta(hours=hours), hours * kw)]


def test_a_job_entirely_in_the_base_tariff() -> None:
    profile = [
        EnergyMark(local("2026-01-14T10:00"), 0.0),
        EnergyMark(local("2026-01-14T11:00"), 0.5),
        EnergyMark(local("2026-01-14T12:00"), 1.2),
    ]
    # 1.2 kWh x 0.30 = 0.36
    assert energy_cost(profile, tariff()) == 0.36
    # no windows at all: the same 1.2 x 0.30
    assert energy_cost(profile, tariff(energy_windows=[])) == 0.36


def test_a_job_crossing_into_the_night_window_splits_a_segment_by_time() -> None:
    # One segment 21:00-23:00 of 2 kWh: 1 h before 22:00, 1 h after.
    # 1 kWh x 0.30 + 1 kWh x 0.20 = 0.30 + 0.20 = 0.50
    assert energy_cost(steady(local("2026-01-14T21:00"), 2, 1.0), tariff()) == 0.50
    profile = [
        EnergyMark(local("2026-01-14T21:00"), 0.0),
        EnergyMark(local("2026-01-14T21:30"), 0.2),
        EnergyMark(local("2026-01-14T22:30"), 1.2),  # 1.0 kWh from 21:30 to 22:30: half before 22:00
        EnergyMark(local("2026-01-14T23:00"), 1.5),
    ]
    # 0.2 x 0.30 + 0.5 x 0.30 + 0.5 x 0.20 + 0.3 x 0.20 = 0.06 + 0.15 + 0.10 + 0.06 = 0.37
    assert energy_cost(profile, tariff()) == 0.37


def test_a_window_wrapping_midnight() -> None:
    # 23:00 to 07:00 next day at 1 kW = 8 kWh: 23:00-06:00 is 7 h of night, 06:00-07:00 1 h of base.
    # 7 x 0.20 + 1 x 0.30 = 1.40 + 0.30 = 1.70
    assert energy_cost(steady(local("2026-01-14T23:00"), 8, 1.0), tariff()) == 1.70
    # Starting after midnight, inside the window begun the evening before: 02:00-08:00 at 1 kW.
    # 4 h x 0.20 + 2 h x 0.30 = 0.80 + 0.60 = 1.40
    assert energy_cost(steady(local("2026-01-15T02:00"), 6, 1.0), tariff()) == 1.40


def test_a_job_spanning_the_start_of_dst() -> None:
    # Berlin 2026-03-29: 02:00 CET (UTC+1) becomes 03:00 CEST (UTC+2), at 01:00 UTC.
    # Job 20:00 UTC (21:00 CET) to 06:00 UTC (08:00 CEST): 10 real hours at 0.1 kW = 1.0 kWh.
    # Night 22:00 CET = 21:00 UTC to 06:00 CEST = 04:00 UTC: 7 real hours (the wall's 8 less the skipped).
    # 0.7 kWh x 0.20 + 0.3 kWh x 0.30 = 0.14 + 0.09 = 0.23
    # (an offset kept at UTC+1 all night would give 0.8 x 0.2 + 0.2 x 0.3 = 0.22)
    assert energy_cost(steady(utc("2026-03-28T20:00"), 10, 0.1), tariff()) == 0.23


def test_a_job_spanning_the_end_of_dst() -> None:
    # Berlin 2026-10-25: 03:00 CEST (UTC+2) becomes 02:00 CET (UTC+1), at 01:00 UTC.
    # Job 19:00 UTC (21:00 CEST) to 07:00 UTC (08:00 CET): 12 real hours at 0.1 kW = 1.2 kWh.
    # Night 22:00 CEST = 20:00 UTC to 06:00 CET = 05:00 UTC: 9 real hours.
    # 0.9 kWh x 0.20 + 0.3 kWh x 0.30 = 0.18 + 0.09 = 0.27
    assert energy_cost(steady(utc("2026-10-24T19:00"), 12, 0.1), tariff()) == 0.27


def test_windows_inside_the_repeated_and_the_skipped_hour_follow_the_wall_clock() -> None:
    early = {"start": "02:00", "end": "02:30", "per_kwh": 0.10}
    # 2026-10-25 the wall shows 02:00-02:30 twice: 00:00-00:30 UTC (CEST) and 01:00-01:30 UTC (CET).
    # Job 00:00-02:00 UTC at 1 kW = 2 kWh: 1 h in the window, 1 h not.
    # 1 x 0.10 + 1 x 0.30 = 0.40
    assert energy_cost(steady(utc("2026-10-25T00:00"), 2, 1.0), tariff(energy_windows=[early])) == 0.40
    skipped = {"start": "02:30", "end": "03:30", "per_kwh": 0.10}
    # 2026-03-29 the wall jumps from 02:00 to 03:00 at 01:00 UTC: the window runs from the jump
    # (01:00 UTC) to 03:30 CEST (01:30 UTC). Job 00:00-02:00 UTC at 1 kW: 0.5 h in the window.
    # 0.5 x 0.10 + 1.5 x 0.30 = 0.05 + 0.45 = 0.50
    assert energy_cost(steady(utc("2026-03-29T00:00"), 2, 1.0), tariff(energy_windows=[skipped])) == 0.50
    assert price_per_kwh_at(utc("2026-03-29T00:59"), tariff(energy_windows=[skipped])) == 0.30
    assert price_per_kwh_at(utc("2026-03-29T01:00"), tariff(energy_windows=[skipped])) == 0.10


def test_windows_for_some_days_only() -> None:
    weekend = {"start": "00:00", "end": "24:00", "per_kwh": 0.15, "days": ["sat", "sun"]}
    costs = tariff(energy_windows=[weekend])
    # Friday 2026-01-16 23:00 to Saturday 01:00 at 1 kW: 1 x 0.30 + 1 x 0.15 = 0.45
    assert energy_cost(steady(local("2026-01-16T23:00"), 2, 1.0), costs) == 0.45
    # A night window of Friday only runs into Saturday morning: Fri 21:00 to Sat 07:00 at 1 kW.
    friday = tariff(energy_windows=[dict(NIGHT, days=["fri"])])
    # 1 h x 0.30 + 8 h x 0.20 + 1 h x 0.30 = 0.30 + 1.60 + 0.30 = 2.20
    assert energy_cost(steady(local("2026-01-16T21:00"), 10, 1.0), friday) == 2.2
    # ...and the Thursday night is not discounted: Thu 21:00 to 23:00: 2 x 0.30 = 0.60
    assert energy_cost(steady(local("2026-01-15T21:00"), 2, 1.0), friday) == 0.6


def test_co2_from_a_constant() -> None:
    profile = steady(local("2026-01-14T10:00"), 3, 0.4)
    # 1.2 kWh x 400 g/kWh = 480 g
    assert co2_g(profile, tariff(co2_g_per_kwh=400)) == 480.0
    assert co2_g(profile, tariff()) is None


def test_co2_from_varying_intensity_marks() -> None:
    t = local("2026-01-14T10:00")
    profile = [
        EnergyMark(t, 0.0, 300.0),
        EnergyMark(t + timedelta(hours=1), 0.5, None),  # no new reading: 300 still holds
        EnergyMark(t + timedelta(hours=2), 1.5, 500.0),
        EnergyMark(t + timedelta(hours=3), 2.0, 100.0),  # the end mark's intensity prices nothing
    ]
    # 0.5 x 300 + 1.0 x 300 + 0.5 x 500 = 150 + 300 + 250 = 700 g
    assert co2_g(profile, tariff()) == 700.0
    late = [EnergyMark(t, 0.0), EnergyMark(t + timedelta(hours=1), 1.0), *profile[2:]]
    # Before the job's first reading: the constant if set, else that first reading.
    # with 250: 1.0 x 250 + 0.5 x 250 + 0.5 x 500 = 250 + 125 + 250 = 625 g
    assert co2_g(late, tariff(co2_g_per_kwh=250)) == 625.0
    # without: 1.0 x 500 + 0.5 x 500 + 0.5 x 500 = 500 + 250 + 250 = 1000 g
    assert co2_g(late, tariff()) == 1000.0


def test_material_per_kg() -> None:
    costs = tariff(materials={"pla": {"per_kg": 25.0}, "PETG": {"per_kg": 30}})
    # 123.4 g / 1000 x 25.00 = 3.085
    assert material_cost(123.4, "PLA", costs) == 3.085
    # 1000 g x 30/kg = 30.0, named in any case
    assert material_cost(1000, "petg", costs) == 30.0
    assert material_cost(50, "TPU", costs) is None
    assert material_cost(None, "PLA", costs) is None
    assert material_cost(50, None, costs) is None
    with pytest.raises(ValueError, match="grams must be"):
        material_cost(-1, "PLA", costs)


def test_machine_hours() -> None:
    costs = tariff(machine_hour=1.20)
    # 2.5 h x 1.20 = 3.00; 5400 s = 1.5 h x 1.20 = 1.80
    assert machine_cost(9000, costs) == 3.0
    assert machine_cost(5400, costs) == 1.8
    assert machine_cost(5400, tariff()) is None


def test_price_job_sums_the_parts_and_rounds_money_to_four_decimals() -> None:
    costs = tariff(machine_hour=1.2, materials={"PLA": {"per_kg": 25.0}}, co2_g_per_kwh=380)
    profile = steady(local("2026-01-14T21:00"), 2, 1.0)
    # energy 1 x 0.30 + 1 x 0.20 = 0.50; material 123.4 g x 25/kg = 3.085; machine 1.5 h x 1.2 = 1.80
    # cost 0.50 + 3.085 + 1.80 = 5.385; CO2 2 kWh x 380 = 760 g
    assert price_job(profile, 123.4, "PLA", 5400, costs) == JobCosts(5.385, 0.5, 3.085, 1.8, 760.0)
    # 1/3 kWh x 0.30 = 0.1 exactly; 7 g x 25/kg = 0.175; 1 s x 1.2/h = 0.000333.. -> 0.0003
    third = [EnergyMark(local("2026-01-14T10:00"), 0.0), EnergyMark(local("2026-01-14T10:20"), 1 / 3)]
    assert price_job(third, 7, "PLA", 1, costs) == JobCosts(0.2753, 0.1, 0.175, 0.0003, 126.7)  # 1/3 x 380
    # An unpriced material adds nothing; energy not measured (no plug) leaves energy and CO2 unknown.
    assert price_job(None, 50, "TPU", 3600, costs) == JobCosts(1.2, None, None, 1.2, None)


def test_nothing_priced_gives_none_everywhere() -> None:
    costs = CostsConfig()
    profile = steady(local("2026-01-14T10:00"), 1, 1.0)
    assert price_job(profile, 100, "PLA", 3600, costs) == JobCosts(None, None, None, None, None)
    assert price_per_kwh_at(local("2026-01-14T10:00"), costs) is None
    # A price of 0 is a price: free energy costs 0, not "unknown".
    free = CostsConfig(energy_per_kwh=0)
    assert price_job(profile, None, None, 0, free) == JobCosts(0.0, 0.0, None, None, None)


TEN = datetime(2026, 1, 14, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        ([EnergyMark(TEN, 0.0)], "at least a start and an end mark"),
        ([EnergyMark(TEN, 0.0), EnergyMark(datetime(2026, 1, 14, 11), 1.0)], "aware"),
        ([EnergyMark(TEN, 0.0), EnergyMark(TEN - timedelta(hours=1), 1.0)], "time order"),
        ([EnergyMark(TEN, 1.0), EnergyMark(TEN + timedelta(hours=1), 0.5)], "must not drop"),
        ([EnergyMark(TEN, 0.0), EnergyMark(TEN + timedelta(hours=1), float("nan"))], "must not drop"),
    ],
)
def test_a_malformed_profile_is_refused(profile: list[EnergyMark], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        energy_cost(profile, tariff())


def test_marks_at_one_instant_and_many_marks() -> None:
    t = local("2026-01-14T21:50")
    # 0.1 kWh in no time at 21:50 (base) then a steady 1 kW to 22:10: 0.1 x 0.30 + 1/6 x 0.30 + 1/6 x 0.20
    # = 0.03 + 0.05 + 0.0333.. = 0.1133
    profile = [EnergyMark(t, 0.0), EnergyMark(t, 0.1), EnergyMark(t + timedelta(minutes=20), 0.1 + 1 / 3)]
    assert energy_cost(profile, tariff()) == 0.1133
    # A mark every 10 s for 24 h at 0.5 kW = 12 kWh: 8 h of night (6 h in the morning, 2 h in the evening)
    # 4 kWh x 0.20 + 8 kWh x 0.30 = 0.80 + 2.40 = 3.20
    start = local("2026-01-14T00:00")
    many = [EnergyMark(start + timedelta(seconds=10 * i), i * 10 / 3600 * 0.5) for i in range(8641)]
    assert energy_cost(many, tariff()) == 3.2
