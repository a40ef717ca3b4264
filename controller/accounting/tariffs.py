"""A job's cost and CO2 from its energy profile and the [costs] tariffs: pure functions, no I/O.

Energy between two marks is taken as spread evenly over the time between them, so a tariff window
boundary that falls between marks splits that segment's energy by time. Windows are wall-clock times in
the configured zone: a window is in force whenever the clock on the wall shows a time inside it, so it
is in force twice in the hour repeated when DST ends, and a boundary inside the hour skipped when DST
starts takes effect when the clock jumps.

Rounding: every figure returned is rounded, money to 4 decimals (a hundredth of a cent, so a month's sum
over hundreds of jobs is still right to the cent; show it to 2) and CO2 to 0.1 g. A job's `cost` is the
rounded sum of its rounded parts, so the stored parts add up to the stored total.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from itertools import pairwise

from controller.config.costs import DAY_MINUTES, CostsConfig, EnergyWindow

MONEY_DECIMALS = 4
CO2_DECIMALS = 1
# Cumulative kWh may drop by float noise when the accountant sums several plugs; more is a caller's bug.
_KWH_NOISE = 1e-9
# A stretch of time with one energy price: from, to (UTC), price per kWh.
_Piece = tuple[datetime, datetime, float]


@dataclass(frozen=True, slots=True)
class EnergyMark:
    """One point of a job's energy profile: when, kWh used since the job started, grid g/kWh then."""

    at: datetime
    kwh: float
    co2_g_per_kwh: float | None = None


@dataclass(frozen=True, slots=True)
class JobCosts:
    """What one job cost (currency of [costs]) and emitted; None where it is not priced or not known."""

    cost: float | None
    cost_energy: float | None
    cost_material: float | None
    cost_machine: float | None
    co2_g: float | None


def price_job(
    profile: Sequence[EnergyMark] | None,
    grams: float | None,
    material: str | None,
    print_seconds: float,
    costs: CostsConfig,
) -> JobCosts:
    """Every figure of a finished job; `profile` None when its energy was not measured.

    `cost` sums the parts that are priced (None when none is): an unpriced material adds nothing.
    """
    energy = None if profile is None else energy_cost(profile, costs)
    parts = (energy, material_cost(grams, material, costs), machine_cost(print_seconds, costs))
    known = [p for p in parts if p is not None]
    total = _money(sum(known)) if known else None
    emitted = None if profile is None else co2_g(profile, costs)
    return JobCosts(total, *parts, co2_g=emitted)


def energy_cost(profile: Sequence[EnergyMark], costs: CostsConfig) -> float | None:
    """The energy's price, each window's price applied inside it, the base price outside; None if unpriced."""
    marks = _checked(profile)
    base = costs.energy_per_kwh
    if base is None:
        return None
    if not costs.energy_windows:
        return _money(max(marks[-1].kwh - marks[0].kwh, 0.0) * base)
    pieces = _tariff_pieces(marks[0].at, marks[-1].at, costs)
    total = 0.0
    first = 0  # the first piece that may still overlap a segment (both are in time order)
    for a, b in pairwise(marks):
        kwh = max(b.kwh - a.kwh, 0.0)
        if kwh == 0:
            continue
        span = (b.at - a.at).total_seconds()
        if span == 0:  # two marks at one instant: the energy is priced at that instant
            total += kwh * _price_at(a.at, costs, base)
            continue
        while pieces[first][1] <= a.at:
            first += 1
        for start, end, price in pieces[first:]:
            if start >= b.at:
                break
            overlap = (min(end, b.at) - max(start, a.at)).total_seconds()
            total += kwh * overlap / span * price
    return _money(total)


def co2_g(profile: Sequence[EnergyMark], costs: CostsConfig) -> float | None:
    """Grams of CO2: each segment's kWh times the grid intensity known at its start; None if none is known.

    A mark without an intensity carries the last one known; before the job's first reading the constant
    `co2_g_per_kwh` applies, or, without one, the job's first reading.
    """
    marks = _checked(profile)
    readings = [m.co2_g_per_kwh for m in marks if m.co2_g_per_kwh is not None]
    known = costs.co2_g_per_kwh if costs.co2_g_per_kwh is not None else next(iter(readings), None)
    if known is None:
        return None
    total = 0.0
    for a, b in pairwise(marks):
        if a.co2_g_per_kwh is not None:
            known = a.co2_g_per_kwh
        total += max(b.kwh - a.kwh, 0.0) * known
    return round(total, CO2_DECIMALS)


def material_cost(grams: float | None, material: str | None, costs: CostsConfig) -> float | None:
    """The material's price per kg times the grams; None if grams, material or its price is unknown."""
    if grams is None or material is None:
        return None
    if grams < 0 or not math.isfinite(grams):
        raise ValueError(f"grams must be a finite number at least 0, got {grams!r}")
    price = costs.materials.get(material.strip().upper())
    return None if price is None else _money(grams / 1000 * price.per_kg)


def machine_cost(seconds: float, costs: CostsConfig) -> float | None:
    """Print hours times `machine_hour`; None when no machine-hour rate is set."""
    if seconds < 0 or not math.isfinite(seconds):
        raise ValueError(f"print seconds must be a finite number at least 0, got {seconds!r}")
    return None if costs.machine_hour is None else _money(seconds / 3600 * costs.machine_hour)


def price_per_kwh_at(at: datetime, costs: CostsConfig) -> float | None:
    """The energy price in force at an instant (aware datetime); None when energy is not priced."""
    if at.tzinfo is None:
        raise ValueError("at must be an aware datetime")
    base = costs.energy_per_kwh
    return None if base is None else _price_at(at, costs, base)


def _money(value: float) -> float:
    return round(value, MONEY_DECIMALS)


def _checked(profile: Sequence[EnergyMark]) -> Sequence[EnergyMark]:
    """The profile, refused with a ValueError unless it is at least two aware marks in time order."""
    if len(profile) < 2:
        raise ValueError(f"an energy profile needs at least a start and an end mark, got {len(profile)}")
    for a, b in pairwise(profile):
        if a.at.tzinfo is None or b.at.tzinfo is None:
            raise ValueError("energy mark times must be aware datetimes")
        if b.at < a.at:
            raise ValueError(f"energy marks out of time order: {b.at.isoformat()} after {a.at.isoformat()}")
        if b.kwh < a.kwh - _KWH_NOISE or not math.isfinite(b.kwh - a.kwh):
            raise ValueError(f"cumulative kWh must not drop: {b.kwh!r} at {b.at.isoformat()} after {a.kwh!r}")
    return profile


def _price_at(at: datetime, costs: CostsConfig, base: float) -> float:
    wall = at.astimezone(costs.zone)
    minute = wall.hour * 60 + wall.minute + (wall.second + wall.microsecond / 1e6) / 60
    for window in costs.energy_windows:
        if _in_window(window, wall.date(), minute):
            return window.per_kwh
    return base


def _in_window(window: EnergyWindow, day: date, minute: float) -> bool:
    """Whether a wall-clock minute of `day` lies in the window (a wrapping one started the day before)."""
    start, end = window.start_minute, window.end_minute
    if start < end:
        return start <= minute < end and window.on_day(day.weekday())
    yesterday = (day.weekday() - 1) % 7
    return (minute >= start and window.on_day(day.weekday())) or (minute < end and window.on_day(yesterday))


def _tariff_pieces(start: datetime, end: datetime, costs: CostsConfig) -> list[_Piece]:
    """[start, end] cut where the price may change, each piece with its price (in time order, in UTC).

    Cuts: every instant the wall clock reads a window boundary or midnight (twice in a repeated hour),
    and every change of the zone's UTC offset (where the clock jumps over or back across a boundary).
    """
    zone, base = costs.zone, costs.energy_per_kwh or 0.0
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    minutes = {0} | {m % DAY_MINUTES for w in costs.energy_windows for m in (w.start_minute, w.end_minute)}
    cuts = {start, end}
    day = start.astimezone(zone).date() - timedelta(days=1)
    while day <= end.astimezone(zone).date() + timedelta(days=1):
        for minute in minutes:
            wall = datetime.combine(day, time()) + timedelta(minutes=minute)
            cuts.update(at for at in _instants(wall, zone) if start < at < end)
        day += timedelta(days=1)
    # Midnights are cuts, so no two cuts are more than a day apart: at most one offset change between.
    cuts.update(t for a, b in pairwise(sorted(cuts)) if (t := _offset_change(a, b, zone)) is not None)
    ordered = sorted(cuts)
    return [(a, b, _price_at(a + (b - a) / 2, costs, base)) for a, b in pairwise(ordered)]


def _instants(wall: datetime, zone: tzinfo) -> list[datetime]:
    """The UTC instants the clock in `zone` reads `wall` (naive): one, two, or none in a skipped hour."""
    found: list[datetime] = []
    for fold in (0, 1):
        at = wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)
        if at.astimezone(zone).replace(tzinfo=None) == wall and at not in found:
            found.append(at)
    return found


def _offset_change(a: datetime, b: datetime, zone: tzinfo) -> datetime | None:
    """The instant in (a, b] the zone's UTC offset changes, if it does (bisection to the second)."""
    before = a.astimezone(zone).utcoffset()
    if b.astimezone(zone).utcoffset() == before:
        return None
    # tz database transitions fall on whole seconds, so bisecting whole POSIX seconds finds one exactly.
    low, high = math.floor(a.timestamp()), math.ceil(b.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == before:
            low = middle
        else:
            high = middle
    return datetime.fromtimestamp(high, UTC)
