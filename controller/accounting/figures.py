"""A finished print's measured figures from the marks taken while it ran (pure).

Marks are readings of the printer's plugs (their summed running total) and scale taken at the job's
start, when its heaters reached their targets, at each pause and resume, every few minutes, and at its
end. Energy splits into heat-up (start → heated), paused (pause → resume) and printing (the rest).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from controller.jobs import JobState


class Phase(StrEnum):
    """Why a mark was taken."""

    START = "start"
    HEATED = "heated"  # every heater within HEATED_WITHIN_C of its target for the first time
    PAUSED = "paused"
    RESUMED = "resumed"
    TICK = "tick"  # every [accounting] tick: the profile a time-of-day tariff is applied to
    END = "end"


@dataclass(frozen=True, slots=True)
class Mark:
    """One reading taken of a running job; energy/weight None until resolved (or with no device)."""

    seq: int
    at: datetime
    phase: Phase
    energy_kwh: float | None = None
    gap_s: float | None = None
    weight_g: float | None = None
    co2_g_per_kwh: float | None = None


@dataclass(frozen=True, slots=True)
class Figures:
    """What a print measured; None where no device measured it."""

    energy_kwh: float | None
    heatup_kwh: float | None
    printing_kwh: float | None
    paused_kwh: float | None
    gap_start_s: float | None
    gap_end_s: float | None
    filament_est_g: float | None
    filament_measured_g: float | None
    material_drift: bool
    waste_g: float | None
    waste_kwh: float | None
    print_s: float


def _delta(a: Mark, b: Mark) -> float | None:
    if a.energy_kwh is None or b.energy_kwh is None:
        return None
    return max(0.0, b.energy_kwh - a.energy_kwh)


def measure(
    marks: Sequence[Mark],
    *,
    outcome: JobState,
    estimate_g: float | None,
    progress: float | None,
    drift_pct: float,
) -> Figures:
    """The figures of one print from its marks (the first START to the last END)."""
    start = next(m for m in marks if m.phase is Phase.START)
    end = next(m for m in reversed(marks) if m.phase is Phase.END)
    # In time order, within the print: a mark taken late (a status seen after the end) counts not.
    ordered = sorted((m for m in marks if start.at <= m.at <= end.at), key=lambda m: (m.at, m.seq))
    energy = _delta(start, end)
    heated = next((m for m in ordered if m.phase is Phase.HEATED), None)
    # Never heated (cancelled while heating, or no heater reported): all of it was heat-up.
    heatup = _delta(start, heated) if heated is not None else energy
    paused: float | None = 0.0 if energy is not None else None
    pause_at: Mark | None = None
    for mark in ordered:
        if mark.phase is Phase.PAUSED and pause_at is None:
            pause_at = mark
        elif mark.phase in (Phase.RESUMED, Phase.END) and pause_at is not None:
            part = _delta(pause_at, mark)
            paused = None if paused is None or part is None else paused + part
            pause_at = None
    printing = None
    if energy is not None and heatup is not None and paused is not None:
        printing = max(0.0, energy - heatup - paused)

    measured = None
    if start.weight_g is not None and end.weight_g is not None:
        # A spool swapped or a hand on the scale can make the end heavier: no measurement then.
        used = start.weight_g - end.weight_g
        measured = used if used >= 0 else None
    drift = (
        measured is not None
        and estimate_g is not None
        and estimate_g > 0
        and abs(measured - estimate_g) / estimate_g * 100 > drift_pct
    )
    waste_g = waste_kwh = None
    if outcome in (JobState.FAILED, JobState.CANCELLED):
        if measured is not None:
            waste_g = measured
        elif estimate_g is not None:
            waste_g = estimate_g * min(100.0, max(0.0, progress or 0.0)) / 100
        waste_kwh = energy
    return Figures(
        energy_kwh=energy,
        heatup_kwh=heatup,
        printing_kwh=printing,
        paused_kwh=paused,
        gap_start_s=start.gap_s,
        gap_end_s=end.gap_s,
        filament_est_g=estimate_g,
        filament_measured_g=measured,
        material_drift=drift,
        waste_g=waste_g,
        waste_kwh=waste_kwh,
        print_s=max(0.0, (end.at - start.at).total_seconds()),
    )


def profile(marks: Sequence[Mark]) -> list[tuple[datetime, float, float | None]]:
    """(time, kWh since the start, grid gCO2/kWh then) for each mark with energy, start to end."""
    start = next(m for m in marks if m.phase is Phase.START)
    end = next(m for m in reversed(marks) if m.phase is Phase.END)
    if start.energy_kwh is None or end.energy_kwh is None:
        return []
    base = start.energy_kwh
    ordered = sorted((m for m in marks if start.at <= m.at <= end.at), key=lambda m: (m.at, m.seq))
    out: list[tuple[datetime, float, float | None]] = []
    top = 0.0
    for m in ordered:
        if m.energy_kwh is None:
            continue
        top = max(top, m.energy_kwh - base)  # a cumulative profile never falls
        out.append((m.at, top, m.co2_g_per_kwh))
    return out
